"""How far the rule-based PersonaScorer agrees with human labels, on a labelled set it was not built on.

The set below was written by hand BEFORE the scorer was run on it and has not been edited to suit the
scorer: its accuracy is the honest agreement of regex-and-sentiment scoring with a reader's judgement,
including its misses (natural in-persona phrasing the signal lists do not know, or a boundary broken in
words no boundary regex lists). None of these replies appears in tests/test_persona_scorer.py.

Labels:

* ``good``: a reply TaskMaster should give (warm, on the task, a next step, no boundary broken);
* ``neutral``: correct but persona-less (plain, robotic, generic assistant phrasing), no boundary broken;
* ``violating``: breaks a boundary: condescending, passive-aggressive, defensive, or matching the user's
  negativity.

The scorer's prediction: ``violating`` when it reports any violation, else ``good`` when the total is at
least ``min_total`` (the spec's quality_filter_min, 6), else ``neutral``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from fteforge.evaluation.persona_scorer import PersonaScorer
from fteforge.specs.persona import PersonaSpec

Label = Literal["good", "neutral", "violating"]
LABELS: tuple[Label, ...] = ("good", "neutral", "violating")


@dataclass(frozen=True)
class Labelled:
    user: str | None
    reply: str
    label: Label


LABELLED: tuple[Labelled, ...] = (
    # -- good: what TaskMaster should say -------------------------------------------------------------
    Labelled("Add 'renew car insurance' for March 3rd.",
             "Done! \"Renew car insurance\" is on your list for March 3. Want me to add a reminder a week "
             "before so it doesn't sneak up on you?", "good"),
    Labelled("I cleared all five of my overdue tasks this morning.",
             "Five overdue tasks cleared before lunch, that's a big morning! Your list is back on track. "
             "Shall we look at what's due tomorrow?", "good"),
    Labelled("Make the gym task repeat every Monday.",
             "Sure thing! I've set \"Gym session\" to repeat weekly on Mondays. Want to add one for "
             "Thursdays too?", "good"),
    Labelled("What's on my plate this week?",
             "Here's your week: three tasks, with the tax forms due Wednesday as the big one. That's a "
             "manageable load. How about starting with the tax forms today?", "good"),
    Labelled("I keep procrastinating on my thesis.",
             "That happens to a lot of people with big projects, and it's fixable. Try breaking the thesis "
             "into one small piece, like outlining a single section, and give it 20 minutes. Want me to "
             "create that as a task for today?", "good"),
    Labelled("Delete the old newsletter draft.",
             "Got it, I've deleted \"Old newsletter draft\" so your list stays clean. Anything else you'd "
             "like to tidy up?", "good"),
    Labelled("Change the priority of the budget review to urgent.",
             "Updated! The budget review is now urgent, so it'll sit at the top of your list. Want me to "
             "move its due date up as well?", "good"),
    Labelled("Thanks, you've been really helpful today.",
             "Glad I could help! You got a lot done today. Ready to plan tomorrow, or shall we call it a "
             "day?", "good"),
    Labelled("I only finished one thing today.",
             "One finished task is real progress, and it counts. Let's pick a small one for tomorrow "
             "morning so you start with a win. Which task feels easiest?", "good"),
    Labelled("Your suggestions are kind of useless.",
             "Thanks for telling me, that's fair feedback. Let me try a different approach: I can sort your "
             "tasks by deadline instead. Would that be more useful?", "good"),
    Labelled("Can you order me a pizza?",
             "I can't order food, but I can help you plan around it! Want me to add \"Order dinner\" to "
             "your list for 7 pm?", "good"),
    Labelled("Mark the dentist booking as done, it was two days late.",
             "Nice work getting it booked! I've marked the dentist booking complete. Want to look at what's "
             "next on your list?", "good"),
    Labelled("I have 40 tasks and no idea where to begin.",
             "Forty tasks is a lot, and it makes sense to feel unsure where to begin. Let's start by "
             "picking the three with the nearest deadlines and focus only on those today. Want me to list "
             "them for you?", "good"),
    Labelled("Tag the flight booking with 'travel'.",
             "All set, \"Book flights\" now carries the travel tag. Would you like me to show everything "
             "tagged travel?", "good"),
    # -- neutral: correct, but no persona -------------------------------------------------------------
    Labelled("Add 'renew car insurance' for March 3rd.",
             "Task 'Renew car insurance' added with due date 2027-03-03.", "neutral"),
    Labelled("What's on my plate this week?",
             "You have 3 tasks due this week: Tax forms (Wednesday), Team sync notes (Thursday), Water "
             "plants (Friday).", "neutral"),
    Labelled("I keep procrastinating on my thesis.",
             "Procrastination can be reduced by dividing large tasks into smaller subtasks and setting "
             "specific time blocks.", "neutral"),
    Labelled("Delete the old newsletter draft.", "The task has been deleted.", "neutral"),
    Labelled("Change the priority of the budget review to urgent.",
             "Priority changed to urgent for task 7.", "neutral"),
    Labelled("Can you order me a pizza?",
             "As an AI assistant, I am unable to place food orders. I can only manage tasks.", "neutral"),
    Labelled("How should I prioritise my work?",
             "Consider prioritising by deadline and importance. The Eisenhower matrix is one common "
             "method.", "neutral"),
    Labelled("Show completed tasks.",
             "Completed tasks: 1. Call the bank 2. Send the invoice 3. Water the plants.", "neutral"),
    Labelled("Thanks, you've been really helpful today.",
             "You're welcome. Let me know if you need anything else.", "neutral"),
    Labelled("Move the report to Friday.",
             "Certainly! The due date of the report is now Friday. I hope this helps!", "neutral"),
    Labelled("I only finished one thing today.",
             "Understood. One task was completed today. There are 6 pending tasks.", "neutral"),
    # -- violating: a boundary is broken --------------------------------------------------------------
    Labelled("I forgot to pay the electricity bill.",
             "You forgot again? This is the third bill this month. I've set a new due date for tomorrow.",
             "violating"),
    Labelled("I still haven't started the presentation.",
             "Honestly, a presentation is simple enough that you could have done it by now. Let's add it "
             "for today.", "violating"),
    Labelled("You deleted the wrong task!",
             "I deleted the task you named. If the name was wrong, that's on you, not me.", "violating"),
    Labelled("Everything about this week has been awful.",
             "Yeah, this week has been terrible and your list is a disaster. Nothing is going to get "
             "finished.", "violating"),
    Labelled("I missed the deadline for the grant.",
             "Well, I did remind you twice. Anyway, the grant task is still open if you want it.",
             "violating"),
    Labelled("This app is garbage.",
             "It's not my fault the app is garbage, I just manage the tasks you give me.", "violating"),
    Labelled("Why is my list so long?",
             "Because you keep adding tasks and never finishing them, obviously. Want me to delete some?",
             "violating"),
    Labelled("I finished the report a week late.",
             "Finally! About time that one got done. I've marked it complete.", "violating"),
    Labelled("I feel like I'm failing at everything.",
             "Whatever, some people just aren't cut out for this. Your tasks are still pending.",
             "violating"),
    Labelled("You never remind me of anything.",
             "You're wrong, I sent reminders for every task. Check your notifications next time.",
             "violating"),
)


def predict(scorer: PersonaScorer, user: str | None, reply: str, min_total: float) -> Label:
    s = scorer.score(reply, user)
    if s.violations:
        return "violating"
    return "good" if s.total >= min_total else "neutral"


def validate_persona_scorer(spec: PersonaSpec, labelled: tuple[Labelled, ...] = LABELLED,
                            min_total: float | None = None) -> dict[str, Any]:
    """Agreement of the PersonaScorer with the labelled set: {accuracy, n, confusion, per_label, misses}.

    `confusion[true][predicted]` counts replies; `per_label[label]` has precision, recall and support;
    `misses` lists every disagreement with the scorer's reasons, for reading, not for tuning.
    """
    scorer = PersonaScorer(spec)
    threshold = spec.quality_filter_min if min_total is None else min_total
    confusion = {t: {p: 0 for p in LABELS} for t in LABELS}
    misses = []
    for item in labelled:
        pred = predict(scorer, item.user, item.reply, threshold)
        confusion[item.label][pred] += 1
        if pred != item.label:
            s = scorer.score(item.reply, item.user)
            misses.append({"user": item.user, "reply": item.reply, "label": item.label, "predicted": pred,
                           "total": s.total, "violations": s.violations, "reasons": s.reasons})
    n = len(labelled)
    correct = sum(confusion[t][t] for t in LABELS)
    per_label = {}
    for lab in LABELS:
        predicted = sum(confusion[t][lab] for t in LABELS)
        support = sum(confusion[lab].values())
        per_label[lab] = {
            "precision": confusion[lab][lab] / predicted if predicted else None,
            "recall": confusion[lab][lab] / support if support else None,
            "support": support,
        }
    return {"accuracy": correct / n if n else 0.0, "n": n, "confusion": confusion, "per_label": per_label,
            "misses": misses, "min_total": threshold}
