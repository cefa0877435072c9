"""The entities conversations talk about, split into disjoint train and eval pools.

Held-out evaluation starts here: an eval case never mentions a task title, tag, category, note or
date anchor that any training example used, so a model can only pass it by generalising.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Literal

Split = Literal["train", "eval"]

TITLES: dict[Split, list[str]] = {
    "train": [
        "Review the quarterly report", "Call the dentist", "Prepare slides for Monday", "Renew car insurance",
        "Book flights for the conference", "Write the project proposal", "Clean the garage", "Pay the electricity bill",
        "Update my resume", "Plan the team offsite", "Order printer ink", "Send the invoice to Acme",
        "Read chapter four", "Fix the leaking tap", "Schedule a one-on-one with Sam", "Draft the newsletter",
        "Back up the laptop", "Buy a birthday gift for Mia", "Submit the expense report", "Water the plants",
        "Prepare the onboarding checklist", "Reply to the landlord", "Organize the shared drive", "Walk the dog",
        "Finish the security training", "Call the bank about the card", "Outline the blog post", "Return library books",
        "Refactor the login module", "Plan meals for the week", "Email the design team", "Cancel the gym trial",
        "Review pull request 42", "Get the car serviced", "Sort the tax documents", "Set up the new monitor",
        "Write thank-you notes", "Update the roadmap", "Pick up dry cleaning", "Prepare interview questions",
        "Defrost the freezer", "Archive old emails", "Call grandma", "Print the boarding passes",
        "Renew the domain name", "Draft the quarterly goals", "Replace the smoke alarm battery", "Buy new headphones",
        "Write the test plan", "Collect the parcel", "Register for the workshop", "Proofread the brochure",
        "Book a haircut", "Migrate the database", "Pay the credit card bill", "Vacuum the living room",
        "Schedule the car inspection", "Send the meeting recap", "Label the storage boxes", "Review the vendor contract",
        "Fill in the timesheet", "Mow the lawn", "Reset the router", "Prepare the training agenda",
        "Return the rental car", "Clear the inbox", "Sketch the homepage layout", "Bake cookies for the team",
        "Confirm the hotel booking", "Repair the bike tire", "Write the incident report", "Buy stamps",
        "Sign up for swimming lessons", "Install the software update", "Tidy the desk", "Send flowers to Ana",
    ],
    "eval": [
        "Review the budget", "Prepare the client demo", "Call the plumber", "Submit the grant application",
        "Renew my passport", "Write the release notes", "Organize the photo archive", "Book a table for Friday",
        "Draft the hiring plan", "Clean out the fridge", "Pay the water bill", "Finish the marketing proposal",
        "Schedule the vet appointment", "Update the team wiki", "Send the contract to Lena", "Prepare the board memo",
        "Order new running shoes", "Plan the product launch", "Check the server logs", "Buy groceries for the party",
    ],
}

TAGS: dict[Split, list[str]] = {
    "train": ["urgent-ish", "q3", "admin", "errand", "reading", "client", "deep-work", "weekly", "phone", "home",
              "q1", "q2", "backlog", "quick-win", "garden", "kids", "ops", "design", "writing", "meetings",
              "someday", "car", "paperwork", "shopping"],
    "eval": ["finance", "q4", "launch", "family", "research", "travel-prep"],
}

CATEGORIES: dict[Split, list[str]] = {
    "train": ["work", "personal", "health", "home", "errands", "learning", "admin", "projects", "hobbies",
              "school", "garden", "social", "chores", "career", "volunteering", "pets"],
    "eval": ["finance", "family", "travel", "fitness"],
}

DESCRIPTIONS: dict[Split, list[str]] = {
    "train": [
        "Focus on the numbers from last month", "Bring the printed copy", "Ask about the weekend rates",
        "Include the timeline and owners", "Check the warranty first", "Use the new template",
        "Ask for the discount code", "Keep it under two pages", "Bring the spare key", "Double-check the totals",
        "Call before noon", "Take photos for the record", "Use the blue folder", "Loop in the legal team",
    ],
    "eval": [
        "Compare against last year's figures", "Cover the open risks", "Mention the revised scope",
        "Attach the signed pages",
    ],
}

NOTES: dict[Split, list[str]] = {
    "train": ["Sent a copy to the team", "Took longer than planned", "All items checked", "Left a voicemail",
              "Paid by card", "Waiting on a reply", "Done ahead of schedule", "Filed in the shared folder",
              "Receipt is in my email", "Two items still missing"],
    "eval": ["Shared the summary with finance", "Everything matched", "Needs a follow-up next month"],
}

QUERIES: dict[Split, list[str]] = {
    "train": ["report", "dentist", "slides", "insurance", "invoice", "resume", "email", "car", "contract",
              "lawn", "hotel", "bill", "router", "plan"],
    "eval": ["budget", "demo", "passport", "proposal"],
}

# "Today" in the system prompt: different anchors per split so relative dates resolve differently.
TODAYS: dict[Split, list[str]] = {
    "train": ["2026-03-02", "2026-05-14", "2026-07-08", "2026-09-21", "2026-10-30", "2026-12-09",
              "2026-01-12", "2026-02-26", "2026-04-03", "2026-04-29", "2026-06-01", "2026-08-13",
              "2026-08-28", "2026-10-05", "2027-02-10", "2027-03-24"],
    "eval": ["2026-11-23", "2027-01-15", "2026-06-17"],
}


def rng_for(seed: int, *names: object) -> random.Random:
    """A generator seeded from the global seed and a label, so each piece is reproducible on its own."""
    return random.Random(f"{seed}:" + ":".join(str(n) for n in names))


def seed_state(rng: random.Random, split: Split, today: dt.date, n: int = 5) -> list[dict]:
    """A plausible starting task list (titles from the split's pool) for the Task API."""
    tasks = []
    for title in rng.sample(TITLES[split], n):
        task: dict = {"title": title, "priority": rng.choice(["low", "medium", "high", "urgent"])}
        if rng.random() < 0.7:
            task["due_date"] = (today + dt.timedelta(days=rng.randint(-5, 14))).isoformat()
        if rng.random() < 0.4:
            task["category"] = rng.choice(CATEGORIES[split])
        if rng.random() < 0.4:
            task["tags"] = rng.sample(TAGS[split], 1)
        tasks.append(task)
    return tasks


def all_entities(split: Split) -> set[str]:
    return {x.lower() for pool in (TITLES, TAGS, CATEGORIES, DESCRIPTIONS, NOTES, QUERIES) for x in pool[split]}
