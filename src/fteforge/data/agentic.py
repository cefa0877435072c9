"""Agentic training data and held-out eval cases: user requests -> exactly one valid Task API call.

What the data teaches is the contract the adapter is scored on, so the conventions live here:

- Titles: a `title` argument, and a `task_id` that names a task by title, is the user's words with
  the first letter capitalised ("add review the budget" -> "Review the budget"); the rest is copied
  as written. Descriptions, notes, tags, categories and queries are copied exactly.
- Priorities: "urgent" -> urgent; "high priority"/"high-priority" -> high; "medium/normal priority"
  -> medium; "low priority"/"low-priority"/"not important" -> low.
- Dates are the user's own words for the day, without the preposition ("by the end of the month"
  -> due_date="the end of the month", "on March 14th" -> "March 14th"); the Task API resolves them
  against its today (`fteforge.dates`), so the model copies and never does calendar arithmetic.
- List filters: "due before/by X" -> due_before=X and "due after X" -> due_after=X (the API is
  inclusive); "due this week" -> due_before="the end of the week"; "due today" -> both bounds
  "today"; "due in the next N days" -> due_after="today", due_before="in N days"; "overdue" ->
  status=pending + due_before="yesterday"; "show my tasks" -> no arguments.
- Tasks are named by numeric id ("task 3", "#3", "number 3") or by their full title.

Held out by construction: eval cases draw entities and `today` from world.py's eval pools and
phrase requests with their own *eval* templates, which share no string with the training ones.
Only the value phrasings ("urgent", "next Friday") are shared: those are what the model must map.
"""

from __future__ import annotations

import calendar
import copy
import datetime as dt
import math
import random
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft202012Validator

from fteforge.agent import conversation
from fteforge.data.records import EvalCase, Example
from fteforge.data.world import (
    CATEGORIES,
    DESCRIPTIONS,
    NOTES,
    QUERIES,
    TAGS,
    TITLES,
    TODAYS,
    Split,
    rng_for,
    seed_state,
)
from fteforge.dates import NUMBER_WORDS, arguments_validator, date_fields, resolve_date, resolve_dates
from fteforge.errors import FteforgeError
from fteforge.specs import AgenticSpec, ToolsSpec
from fteforge.taskapi import TaskAPI, seed_tasks

NoCallReplies = Callable[[str, str, random.Random], str]
Template = str | tuple[str, dict[str, Any]]  # a fixed-args template states its arguments outright

# -- value phrasings (shared by train and eval: these mappings are what the model must learn) -------

PRIORITY_MODS = [
    (", urgent", "urgent"), (" - it's urgent", "urgent"), (" and make it urgent", "urgent"),
    (", high priority", "high"), (" with high priority", "high"), (" (high-priority)", "high"),
    (", low priority", "low"), (" - not important", "low"), (" as low-priority", "low"),
    (", medium priority", "medium"), (" at normal priority", "medium"),
]
PRIORITY_WORDS = [
    ("urgent", "urgent"), ("high priority", "high"), ("high-priority", "high"), ("low priority", "low"),
    ("low-priority", "low"), ("not important", "low"), ("medium priority", "medium"),
]
PRIORITY_ADJ = [(w, v) for w, v in PRIORITY_WORDS if w != "not important"]
TAG_MODS = {1: [" tagged {a}", " with the tag {a}", ", tag: {a}", " labelled {a}"],
            2: [" tagged {a} and {b}", " (tags: {a}, {b})", " with the tags {a} and {b}"]}
CATEGORY_MODS = [" in the {c} category", " under {c}", ", category {c}", " filed under {c}"]
RECURRENCE_MODS = [
    (" every day", "daily"), (" daily", "daily"), (", repeating every week", "weekly"), (" weekly", "weekly"),
    (" every week", "weekly"), (" every month", "monthly"), (" once a month", "monthly"), (", monthly", "monthly"),
]
RECURRENCE_WORDS = [("daily", "daily"), ("every day", "daily"), ("weekly", "weekly"), ("every week", "weekly"),
                    ("monthly", "monthly"), ("every month", "monthly")]
DESCRIPTION_MODS = [", description: {d}", ' with the details "{d}"', ". Details: {d}", " (description: {d})"]
ID_REFS = ["task {n}", "#{n}", "number {n}", "task #{n}", "item {n}", "task number {n}"]
TITLE_REFS = ['"{t}"', "{t}", 'the "{t}" task', "the task {t}"]
# More ways of saying the same values, used by training examples only: eval cases draw from the shared
# lists alone (and so stay byte-identical), while training sees each value in more surroundings.
TRAIN_ONLY_MODS: dict[str, list] = {
    "priority": [(" - high priority", "high"), (", it's urgent", "urgent"), (" (urgent)", "urgent"),
                 (", priority low", "low"), (" (low priority)", "low"), (", priority high", "high")],
    "tags_1": [" and tag it {a}", " (tag {a})", ", tagged {a}"],
    "tags_2": [", tags {a} and {b}", " tagged {a}, {b}", " and tag it {a} and {b}"],
    "category": [" (category: {c})", " in {c}", ", put it under {c}", " for the {c} category"],
    "recurrence": [(", every day", "daily"), (" each week", "weekly"), (", repeat monthly", "monthly"),
                   (" on a daily basis", "daily"), (", recurring weekly", "weekly"), (" each month", "monthly")],
    "description": [", details: {d}", " - description: {d}", ' and describe it as "{d}"'],
    "id_refs": ["task no. {n}", "id {n}", "the task with id {n}", "task {n} on my list"],
    "title_refs": ["'{t}'", 'the task called "{t}"', "the {t} task"],
}

# Small talk around a request, train-only: a user rarely types the bare command, and a 135M model that
# only ever saw bare commands read the frame as content (held-out "task please: Finish the proposal"
# -> complete_task). Every suffix starts with punctuation, so a frame never runs into a title.
FRAME_PREFIXES = ["ok, ", "okay so ", "quick one: ", "hi! ", "hey TaskMaster, ", "alright, ", "one more thing: ",
                  "right - ", "so, ", "hmm, ", "next: ", "also, ", "when you get a sec, ", "oh and ", "TaskMaster: "]
FRAME_SUFFIXES = [", thanks", ", thank you!", " - cheers", ", pls", " (ty)", " :)", ", if you can", " - appreciated",
                  "! thx", ". thanks a lot"]


def frame_request(text: str, rng: random.Random) -> str:
    """The request with a train-only opener, closer or both around it (its words untouched)."""
    roll = rng.random()
    if roll < 0.8:
        text = rng.choice(FRAME_PREFIXES) + text
    if roll >= 0.45:
        text = text + rng.choice(FRAME_SUFFIXES)
    return text


# -- phrasing templates: {title}/{x} for create; {ref} names a task; the rest are scenario slots ------

CREATE_TRAIN = [
    "add {title}{x}", "Add a task: {title}{x}", "can you add a task to {title}{x}?", "hey, remind me to {title}{x}",
    'please put "{title}" on my list{x}', "new task - {title}{x}", "I need to {title}{x}. can you add that?",
    'real quick: create a task called "{title}"{x}, thanks', "todo: {title}{x}",
    "don't let me forget to {title}{x}", "Could you please add {title} to my tasks{x}?",
    "create a task: {title}{x}", "add to my to-do list: {title}{x}", "I have to {title}{x}, add it please",
    "can you note down {title}{x}?", "need a reminder to {title}{x}", "Please create {title}{x}.",
    "jot this down: {title}{x}", "new to-do: {title}{x}", "add {title} to the list{x}",
    "make me a task to {title}{x}", "could you log a task: {title}{x}", "let's add {title}{x}",
    "i should {title}{x} - add it", "set up a task for me: {title}{x}", "remind me: {title}{x}",
    # A quoted title after a creating verb is a new task, whatever follows it: the update frames quote
    # titles too, and 1.18.1's models read 'Log "X" with this description: ...' as an update.
    'record "{title}" as a new task{x}', 'jot down "{title}"{x}', 'write down "{title}" for me{x}',
    'new one for my list: "{title}"{x}',
]
CREATE_EVAL = [
    "put down {title}{x} for me", 'Create a to-do that says "{title}"{x}.', "would you mind adding {title}{x}?",
    "ok so I gotta {title}{x}, track that", "task please: {title}{x}", "make a new item for me: {title}{x}",
    "help me remember to {title}{x}",
]
COMPLETE_TRAIN = [
    "mark {ref} as done", "I finished {ref}", "{ref} is done", "complete {ref} please", "done with {ref}!",
    "hey, check off {ref}", "can you mark {ref} complete?", "just wrapped up {ref}, tick it off",
    "{ref} is finished", "mark {ref} as completed", "I've done {ref}", "cross off {ref}", "finally finished {ref}!",
    "complete {ref}", "you can mark {ref} done now", "{ref} - done, tick it", "got {ref} done today",
    "mark off {ref} please",
    # Minimal pairs with the update frames ("set {ref} to {p}", "change {ref} to {p} please", "hey, {ref} is
    # {p} now", "update {ref}: priority {pv}"): with a status word in the slot the request is a completion,
    # since update_task has no status field. Without these the frame verb picked the tool, and "set ... to
    # <status>" went to update_task in every model of 1.17.0.
    "set {ref} to done", "change {ref} to finished please", "hey, {ref} is finished now", "update {ref}: status done",
    "set the status of {ref} to done", "can you switch {ref} to done?",
]
COMPLETE_EVAL = ["{ref} - finished it", "please close {ref}", "all done with {ref}", "set {ref} to completed"]
DELETE_TRAIN = [
    "delete {ref}", "remove {ref} from my list", "get rid of {ref}", "please drop {ref}",
    "{ref} isn't needed anymore, delete it", "can you remove {ref}?", "hey, scrap {ref}", "trash {ref} please",
    "delete {ref} from my tasks", "remove {ref}", "cancel {ref}, I won't do it", "{ref} is obsolete, remove it",
    "take {ref} off the list", "please delete {ref}", "drop {ref} from the list", "no need for {ref} anymore, delete",
]
DELETE_EVAL = ["erase {ref}", "I don't need {ref}, take it off", "could you wipe {ref}?", "{ref} can go, delete"]

TEMPLATES: dict[str, tuple[list[Template], list[Template]]] = {  # scenario -> (train, eval)
    "complete with notes": (
        ["mark {ref} done, note: {note}", "finished {ref} - {note}", 'complete {ref} with the note "{note}"',
         "{ref} is done. notes: {note}", "close out {ref} and add a note: {note}",
         "hey, I wrapped up {ref}. add this note: {note}", 'I finished {ref}, note "{note}"',
         "complete {ref} - note: {note}", "check off {ref} and note {note}", "{ref} done; notes: {note}"],
        ['done with {ref}; jot down "{note}"', "completed {ref} (note: {note})", "finish off {ref} and record: {note}"]),
    "list everything": (
        ["what's on my list?", "show me my tasks", "list my tasks", "what do I have to do?",
         "hey, what tasks do I have?", "can you pull up my to-do list?", "give me a rundown of my tasks please",
         "show my to-do list", "what tasks are there?", "list everything I have", "what am I working on?",
         "let me see my tasks", "which tasks do I have?", "show all tasks"],
        ["remind me what I've got going on", "what's left for me?", "display my to-dos", "could I see my task list?"]),
    "list by status": (
        [("which tasks have I completed?", {"status": "completed"}), ("show me everything I've finished", {"status": "completed"}),
         ("list my done tasks", {"status": "completed"}), ("hey, what have I already checked off?", {"status": "completed"}),
         ("what's still pending?", {"status": "pending"}), ("show open tasks please", {"status": "pending"}),
         ("list all my tasks, including the finished ones", {"status": "all"}),
         ("show every task, done or not", {"status": "all"}),
         ("list my completed tasks", {"status": "completed"}), ("what did I finish already?", {"status": "completed"}),
         ("which tasks are still open?", {"status": "pending"}), ("list pending tasks", {"status": "pending"}),
         ("what haven't I done yet?", {"status": "pending"}),
         ("show all tasks, finished and unfinished", {"status": "all"}),
         ("list every task including completed ones", {"status": "all"}),
         # A status word inside an "everything" request still means all: pairs with "list my done tasks".
         ("list everything, done ones included", {"status": "all"}),
         ("show my tasks, finished and open alike", {"status": "all"})],
        [("which ones did I wrap up?", {"status": "completed"}), ("any tasks I've completed lately?", {"status": "completed"}),
         ("what remains unfinished?", {"status": "pending"}), ("show the whole list, completed ones too", {"status": "all"})]),
    "list by priority": (
        ["show my {p} tasks", "what's {p} on my list?", "list {p} tasks please", "any {p} tasks?",
         "which of my tasks are {p}?", "hey, pull up everything {p}", "filter my tasks by priority: {pv}",
         "list only the {p} ones", "what {p} tasks do I have?", "show me everything marked {p}",
         "tasks with priority {pv}?"],
        ["I only want to see {p} items", "got anything {p} for me?", "display the {p} stuff"]),
    "list due before or after a date": (
        ["show tasks {w}", "what's {w}?", "list everything {w}", "which tasks are {w}?", "anything {w}?",
         "hey, what do I have {w}?", "pull up my tasks {w} please", "list my tasks {w}", "what do I need to do {w}?",
         "show me what's {w}", "are there tasks {w}?"],
        ["I want to see what is {w}", "tell me which to-dos are {w}", "got any items {w}?"]),
    "list by tag": (
        ["show tasks tagged {tag}", "what's tagged {tag}?", "anything with the tag {tag}?", "filter by tag {tag} please",
         "which tasks have the {tag} tag?", "hey, find everything labelled {tag}", "list the {tag} tasks",
         "show me tasks with tag {tag}", "what's labelled {tag}?", "tasks tagged {tag} please"],
        ["pull up items carrying the {tag} label", "give me the {tag}-tagged ones", "tasks marked with tag {tag}?"]),
    "list by category": (
        ["what's in the {cat} category?", "list everything under {cat}", "any tasks filed under {cat}?",
         "filter by category: {cat}", "which tasks are in the {cat} category?", "hey, show me my {cat} category",
         "list my {cat} tasks", "show tasks in category {cat}", "what's under {cat}?", "category {cat}: what's there?"],
        ["display the {cat} bucket", "I want the tasks from category {cat} only", "anything sitting in {cat}?"]),
    "search by keyword": (
        ["search for {q}", "find tasks about {q}", "anything mentioning {q}?", "look up {q} in my tasks",
         "do I have a task about {q}?", 'which tasks mention "{q}"?', "hey, search my list for {q} please",
         "find {q}", "search my tasks for {q}", "any task with {q} in it?", "look for {q} on my list"],
        ["is there something on my list about {q}?", "locate tasks with {q} in them", "query my tasks for {q}"]),
    "change priority": (
        ["make {ref} {p}", "set the priority of {ref} to {pv}", "hey, {ref} is {p} now", "change {ref} to {p} please",
         "can you mark {ref} as {p}?", "real quick, {ref} should be {p}", "update {ref}: priority {pv}",
         "bump {ref} to {p}", "{ref} needs to be {p}", "change the priority on {ref} to {pv}",
         "set {ref} to {p}", "please make {ref} {p}"],
        ["I'd like {ref} to be {p}", "{ref}: switch it to {p}", "please flag {ref} as {p}"]),
    "move the due date": (
        ["move {ref} to {d}", "push {ref} to {d}", "change the due date of {ref} to {d}", "hey, {ref} is now due {dd}",
         "reschedule {ref} for {d}", "can you make {ref} due {dd}?", "postpone {ref} to {d}",
         "set the deadline of {ref} to {d}", "{ref} should be due {dd}", "update {ref} - due {dd}",
         "bring {ref} forward to {d}", "change {ref}'s due date to {d}"],
        ["shift {ref} over to {d}", "the deadline for {ref} changed, it's {d} now", "update {ref} so it's due {dd}"]),
    "rename a task": (
        ["rename {ref} to {new}", 'change the title of {ref} to "{new}"', 'call {ref} "{new}" instead',
         "{ref} should be called {new}", "hey, retitle {ref}: {new}", "can you rename {ref} as {new}?",
         "update the name of {ref} to {new}", 'rename {ref}: "{new}"', "edit {ref}, new title {new}",
         "change {ref}'s title to {new}"],
        ['give {ref} the name "{new}"', "swap the title on {ref} for {new}", "{ref} -> {new}, please"]),
    "change description": (
        ['set the description of {ref} to "{desc}"', "add details to {ref}: {desc}", "update {ref}'s description: {desc}",
         "change the description on {ref} to: {desc}", "hey, describe {ref} as {desc}", "{ref} details: {desc}",
         "edit the description of {ref}: {desc}", 'give {ref} the description "{desc}"',
         "update {ref} with the details: {desc}", "the description for {ref} should say {desc}"],
        ['for {ref}, write "{desc}" in the description', "put this in the description of {ref}: {desc}",
         "{ref} needs a description - {desc}"]),
    "set tags": (
        ["tag {ref} with {tags}", "set the tags on {ref} to {tags}", "label {ref} {tags}", "{ref} needs the tags {tags}",
         "hey, tag {ref}: {tags}", "can you add the tag {tags} to {ref}?", "update {ref} with the tags {tags}",
         "tags for {ref}: {tags}", "mark {ref} with the tags {tags}", "give {ref} the tags {tags}"],
        ["apply tags {tags} to {ref}", "{ref} should carry {tags} as tags", "put the labels {tags} on {ref}"]),
    "change category": (
        ["move {ref} to the {cat} category", "put {ref} under {cat}", "change the category of {ref} to {cat}",
         "file {ref} under {cat}", "hey, {ref} belongs in the {cat} category", "can you set the category of {ref} to {cat}?",
         "update {ref}: category {cat}", "{ref} should be in {cat}", "set {ref}'s category to {cat}",
         "assign {ref} to the {cat} category"],
        ["recategorize {ref} as {cat}", "{ref} goes in {cat} now", "switch {ref} into the {cat} category"]),
    "change recurrence": (
        ["make {ref} repeat {r}", "set {ref} to recur {r}", "{ref} should happen {r} from now on",
         "change the recurrence of {ref} to {r}", "hey, {ref} repeats {r} now", "update {ref} to repeat {r}",
         "{ref} should recur {r}", "make {ref} a recurring task, {r}", "set {ref} to repeat {r}",
         ("{ref} doesn't need to recur anymore", {"recurrence": "none"}),
         ("stop repeating {ref}", {"recurrence": "none"}), ("{ref} is a one-off, it shouldn't repeat", {"recurrence": "none"})],
        ["have {ref} recur {r}", "switch {ref} to {r}", ("{ref} no longer needs to repeat", {"recurrence": "none"})]),
    "greetings and chit-chat": (
        ["hi", "hello!", "hey TaskMaster", "good morning", "how are you today?", "thanks, that's all for now",
         "thank you so much!", "what's up?", "good evening, how's it going?", "hey there, nice to meet you",
         "bye for now", "you're pretty helpful, thanks", "who are you?", "what can you do?", "ok cool",
         "have a nice day", "hey!", "good afternoon", "thanks a lot", "how's your day going?", "see you tomorrow",
         "nice work", "are you a robot?", "hello there", "great, thanks!", "good night"],
        ["yo!", "morning TaskMaster, hope you're well", "cheers, talk later", "hiya, how have you been?",
         "appreciate the help today", "what's your name?"]),
    "productivity coaching questions": (
        ["how do I prioritize when everything feels urgent?", "I keep procrastinating, any tips?",
         "I'm feeling overwhelmed by my workload", "what's a good way to plan my week?",
         "how can I stay focused when working from home?", "any advice for breaking big projects into steps?",
         "I can't get motivated today", "is the pomodoro technique worth trying?", "how many tasks should I plan per day?",
         "how do I stop multitasking?", "what should I do first in the morning to be productive?",
         "I always underestimate how long things take. help?", "how do I say no to extra work?",
         "tips for keeping a to-do list manageable?", "I feel like I'm not making progress on anything",
         "how do I get back on track after a lost week?", "how do I build a daily routine that sticks?",
         "I have too many meetings, how do I get work done?", "what's time blocking?",
         "how do I keep momentum on a long project?", "should I do the hardest task first?",
         "I'm stressed about a deadline", "how can I plan a productive weekend?", "how do I stop checking email so often?"],
        ["my to-do list keeps growing faster than I can finish it, what do I do?",
         "how should I handle constant interruptions?", "what's the best way to look back on my week on Fridays?",
         "I get distracted by my phone all the time", "how do I decide what to drop when I'm overloaded?",
         "could you give me a strategy for deep focus?"]),
    "out-of-scope requests": (
        ["what's the weather like tomorrow?", "write me a poem about autumn", "what is 17 times 23?",
         "translate 'good morning' into Spanish", "tell me a joke", "what's the capital of Australia?",
         "can you recommend a good movie?", "give me a recipe for pancakes", "who won the World Cup in 2018?",
         "can you book me an Uber?", "explain quantum computing in one sentence", "what's the square root of 144?",
         "write a haiku about coffee", "how do I convert miles to kilometers?", "play some music",
         "what time is it in Tokyo?", "what's 45 plus 19?", "how much is 12 percent of 300?",
         "write a short story about a dragon", "who painted the Mona Lisa?", "send a text to my brother",
         "what's the population of Canada?", "tell me a fun fact", "how tall is Mount Everest?",
         "set an alarm for 7am", "what is the speed of light?", "sing me a song", "how many ounces in a pound?"],
        ["will it rain this weekend?", "compose a limerick about cats", "what is 250 divided by 5?",
         "how do you say thank you in Japanese?", "recommend a podcast about history", "order me a pizza"]),
}
for _name in ("create with a title only", "create with priority", "create with an absolute due date",
              "create with a relative due date", "create with tags", "create with a category", "create a recurring task",
              "create with a description", "create with several arguments at once"):
    TEMPLATES[_name] = (CREATE_TRAIN, CREATE_EVAL)
for _name in ("complete by numeric id", "complete by title"):
    TEMPLATES[_name] = (COMPLETE_TRAIN, COMPLETE_EVAL)
for _name in ("delete by numeric id", "delete by title"):
    TEMPLATES[_name] = (DELETE_TRAIN, DELETE_EVAL)

# Built-in no-call replies in TaskMaster's shape (ACKNOWLEDGE -> DELIVER -> PROPEL); the persona
# builder normally supplies its own so both adapters learn the same tokens for these turns.
FALLBACK_REPLIES = {
    "greetings and chit-chat": [
        "Hi, great to see you! I'm here to keep your tasks organised and your momentum going. Want me to show what's on your list today?",
        "Hello! Happy to help you plan, add or check off tasks. What would you like to tackle first?",
        "Hey there, thanks for stopping by! Your task list is ready whenever you are. Shall we look at what's due this week?",
        "Glad you're here! I can add, update, complete or list your tasks. Ready to pick the next thing to work on?",
    ],
    "productivity coaching questions": [
        "That's a great question, and plenty of people wrestle with it. Start with the task that has the closest deadline and give it 25 focused minutes. Want me to list your high-priority tasks so we can choose together?",
        "That sounds like a lot on your plate, and it makes sense to feel stuck. Let's tackle this step by step: pick one small task you can finish today and do it first. Would you like me to pull up what's due soon?",
        "Good thinking to ask. A simple plan helps: choose your top three tasks for the day and protect time for the first one. Shall we look at your list and pick them?",
        "Totally fair, focus is hard to hold. Try short blocks with one task open at a time; every block counts as progress. Want me to show today's tasks so we can pick the first one?",
    ],
    "out-of-scope requests": [
        "Good question, though that's outside what I can help with here: I manage your tasks and keep your plans on track. Want me to add a task for it or show what's on your list?",
        "Happy to help where I can, but that one is outside my lane; I focus on your tasks and priorities. Shall we check what's due this week?",
        "Fair ask! That's not something I can do, since I work with your task list. Want me to create a reminder for it instead?",
        "That sounds fun, though it's beyond what I handle; my focus is your to-do list. Ready to pick your next task together?",
    ],
}

# -- dates ------------------------------------------------------------------------------------------

def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def _absolute(rng: random.Random, day: dt.date) -> str:
    month = day.strftime("%B")
    return rng.choice([day.isoformat(), f"{month} {day.day}", f"{day.day} {month}", f"{month} {_ordinal(day.day)}"])


def _date_phrase(rng: random.Random, today: dt.date, kind: str = "any", form: str = "prep") -> tuple[str, str]:
    """(phrase as said, the date argument): the argument is the user's own words for the day, which the
    Task API resolves (`fteforge.dates`). form: "prep" adds a preposition ("due Friday"), "to" fits
    after to/for, "due" fits after the word due; each expression lists the prepositions it reads
    naturally with."""
    kind = rng.choice(["abs", "rel"]) if kind == "any" else kind
    if kind == "abs":
        options = [(_absolute(rng, today + dt.timedelta(days=rng.randint(1, 80))), ["due", "by", "on"])]
    else:
        weekday, n = rng.choice(calendar.day_name), rng.randint(2, 10)
        n_text = str(n) if rng.random() < 0.5 else next(k for k, v in NUMBER_WORDS.items() if v == n and k != "a")
        options = [
            ("today", ["due", "for"]), ("tomorrow", ["", "due", "by", "for"]), ("the day after tomorrow", ["due", "by"]),
            (f"next {weekday}", ["", "due", "by", "for"]), (weekday, ["on", "by", "due"]),
            ("the end of the week", ["by"]), ("the end of the month", ["by"]), (f"in {n_text} days", ["", "due"]),
            (rng.choice(["in a week", "in two weeks"]), ["", "due"]),
        ]
    if form == "to":
        options = [o for o in options if not o[0].startswith("in ")]
    elif form == "due":
        options = [o for o in options if "due" in o[1]]
    expr, preps = rng.choice(options)
    phrase = f"{rng.choice(preps)} {expr}".strip() if form == "prep" else expr
    resolve_date(expr, today)  # a phrase the API could not read would be a generator bug
    return phrase, expr


# -- scenario builders: each returns (template slots, call arguments) ------------------------------


@dataclass
class _Ctx:
    rng: random.Random
    split: Split
    today: dt.date
    tasks: list[dict[str, Any]]
    template: str
    ref: dict[str, Any] | None = None  # the task a call refers to (eval accepts its id or its title)


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _as_typed(ctx: _Ctx, title: str) -> str:
    """Users type titles capitalised or not; the argument is capitalised either way (`_cap`)."""
    return title if ctx.rng.random() < 0.5 else title[:1].lower() + title[1:]


def _ref(ctx: _Ctx, by: str, pending: bool = False) -> tuple[str, str]:
    """(phrase naming a seeded task, task_id), by numeric id or by full title."""
    rng = ctx.rng
    task = rng.choice([t for t in ctx.tasks if t["status"] == "pending" or not pending])
    ctx.ref = task
    if (by if by != "any" else rng.choice(["id", "title"])) == "id":
        return rng.choice(_phrasings(ctx, "id_refs", ID_REFS)).format(n=task["id"]), str(task["id"])
    typed = _as_typed(ctx, task["title"])
    return rng.choice(_phrasings(ctx, "title_refs", TITLE_REFS)).format(t=typed), _cap(typed)


def _phrasings(ctx: _Ctx, kind: str, shared: list) -> list:
    return shared + TRAIN_ONLY_MODS[kind] if ctx.split == "train" else shared


def _pick(ctx: _Ctx, pool: dict[Split, list[str]]) -> str:
    return ctx.rng.choice(pool[ctx.split])


def _modifier(ctx: _Ctx, kind: str) -> tuple[str, dict[str, Any]]:
    rng = ctx.rng
    if kind == "priority":
        phrase, value = rng.choice(_phrasings(ctx, "priority", PRIORITY_MODS))
        return phrase, {"priority": value}
    if kind in ("date", "abs_date", "rel_date"):
        phrase, said = _date_phrase(rng, ctx.today, {"date": "any", "abs_date": "abs", "rel_date": "rel"}[kind])
        return " " + phrase, {"due_date": said}
    if kind == "tags":
        tags = rng.sample(TAGS[ctx.split], rng.choice([1, 1, 2]))
        mods = _phrasings(ctx, f"tags_{len(tags)}", TAG_MODS[len(tags)])
        return rng.choice(mods).format(a=tags[0], b=tags[-1]), {"tags": tags}
    if kind == "category":
        cat = _pick(ctx, CATEGORIES)
        return rng.choice(_phrasings(ctx, "category", CATEGORY_MODS)).format(c=cat), {"category": cat}
    if kind == "recurrence":
        phrase, value = rng.choice(_phrasings(ctx, "recurrence", RECURRENCE_MODS))
        return phrase, {"recurrence": value}
    desc = _pick(ctx, DESCRIPTIONS)
    return rng.choice(_phrasings(ctx, "description", DESCRIPTION_MODS)).format(d=desc), {"description": desc}


def _create(*kinds: str) -> Callable[[_Ctx], tuple[dict, dict]]:
    def build(ctx: _Ctx) -> tuple[dict, dict]:
        taken = {t["title"] for t in ctx.tasks}
        typed = _as_typed(ctx, ctx.rng.choice([t for t in TITLES[ctx.split] if t not in taken]))
        chosen = list(kinds)
        if chosen == ["several"]:
            chosen = ["priority", "date", "tags", *ctx.rng.sample(["category", "description", "recurrence"], 1)]
            ctx.rng.shuffle(chosen)  # word order varies; the arguments do not
            # Free text last, so nothing after it could be read as part of the description.
            chosen.sort(key=lambda k: k == "description")
        args, parts = {"title": _cap(typed)}, []
        for kind in chosen:
            phrase, extra = _modifier(ctx, kind)
            parts.append(phrase)
            args |= extra
        # Commas between modifiers: "tagged home weekly" would leave "weekly" a tag or a recurrence.
        rest = [p.lstrip(" ,-.") for p in parts[1:]]
        x = "".join(parts[:1] + [", " + p[:1].lower() + p[1:] for p in rest])
        return {"title": typed, "x": x}, args
    return build


def _by_ref(by: str, pending: bool = False, extra: Callable[[_Ctx], tuple[dict, dict]] | None = None):
    def build(ctx: _Ctx) -> tuple[dict, dict]:
        phrase, task_id = _ref(ctx, by, pending)
        slots, args = extra(ctx) if extra else ({}, {})
        return {"ref": phrase, **slots}, {"task_id": task_id, **args}
    return build


def _priority(ctx: _Ctx) -> tuple[dict, dict]:
    current = ctx.ref["priority"] if ctx.ref else None  # a real change, not a no-op update
    word, value = ctx.rng.choice([p for p in PRIORITY_WORDS if p[1] != current])
    return {"p": word, "pv": value}, {"priority": value}


def _list_priority(ctx: _Ctx) -> tuple[dict, dict]:
    word, value = ctx.rng.choice(PRIORITY_ADJ)
    return {"p": word, "pv": value}, {"priority": value}


def _due(ctx: _Ctx) -> tuple[dict, dict]:
    form = "to" if "{d}" in ctx.template else "due"
    phrase, said = _date_phrase(ctx.rng, ctx.today, "any", form)
    return {"d": phrase, "dd": phrase}, {"due_date": said}


def _rename(ctx: _Ctx) -> tuple[dict, dict]:
    taken = {t["title"] for t in ctx.tasks}
    typed = _as_typed(ctx, ctx.rng.choice([t for t in TITLES[ctx.split] if t not in taken]))
    return {"new": typed}, {"title": _cap(typed)}


def _tags(ctx: _Ctx) -> tuple[dict, dict]:
    tags = ctx.rng.sample(TAGS[ctx.split], ctx.rng.choice([1, 2]))
    return {"tags": ctx.rng.choice([" and ", ", "]).join(tags)}, {"tags": tags}


def _recurrence(ctx: _Ctx) -> tuple[dict, dict]:
    word, value = ctx.rng.choice(RECURRENCE_WORDS)
    return {"r": word}, {"recurrence": value}


def _slot(name: str, pool: dict[Split, list[str]], arg: str) -> Callable[[_Ctx], tuple[dict, dict]]:
    def build(ctx: _Ctx) -> tuple[dict, dict]:
        value = _pick(ctx, pool)
        return {name: value}, {arg: value}
    return build


def _list_dates(ctx: _Ctx) -> tuple[dict, dict]:
    rng, today = ctx.rng, ctx.today
    kind = rng.choice(["before", "by", "after", "week", "overdue", "today", "between", "next"])
    if kind in ("before", "by", "after"):
        # "before today" means overdue and "after tomorrow" reads as a date; leave both to other phrasings.
        phrase, said = _date_phrase(rng, today, "any", "to")
        while phrase in ("today", "tomorrow", "the day after tomorrow"):
            phrase, said = _date_phrase(rng, today, "any", "to")
        arg = "due_after" if kind == "after" else "due_before"
        return {"w": f"due {kind} {phrase}"}, {arg: said}
    if kind == "week":
        return {"w": "due this week"}, {"due_before": "the end of the week"}
    if kind == "overdue":
        return {"w": "overdue"}, {"status": "pending", "due_before": "yesterday"}
    if kind == "today":
        return {"w": "due today"}, {"due_after": "today", "due_before": "today"}
    if kind == "next":
        n = rng.randint(2, 14)
        return {"w": f"due in the next {n} days"}, {"due_after": "today", "due_before": f"in {n} days"}
    start = today + dt.timedelta(days=rng.randint(0, 10))
    end = start + dt.timedelta(days=rng.randint(3, 20))
    start_said, end_said = _absolute(rng, start), _absolute(rng, end)
    return {"w": f"due between {start_said} and {end_said}"}, {"due_after": start_said, "due_before": end_said}


def _none(ctx: _Ctx) -> tuple[dict, dict]:
    return {}, {}


@dataclass(frozen=True)
class _Scenario:
    tool: str | None
    build: Callable[[_Ctx], tuple[dict, dict]]
    train: list[Template] = field(default_factory=list)
    eval: list[Template] = field(default_factory=list)


_BUILDERS: dict[str, tuple[str | None, Callable[[_Ctx], tuple[dict, dict]]]] = {
    "create with a title only": ("create_task", _create()),
    "create with priority": ("create_task", _create("priority")),
    "create with an absolute due date": ("create_task", _create("abs_date")),
    "create with a relative due date": ("create_task", _create("rel_date")),
    "create with tags": ("create_task", _create("tags")),
    "create with a category": ("create_task", _create("category")),
    "create a recurring task": ("create_task", _create("recurrence")),
    "create with a description": ("create_task", _create("description")),
    "create with several arguments at once": ("create_task", _create("several")),
    "list everything": ("list_tasks", _none),
    "list by status": ("list_tasks", _none),
    "list by priority": ("list_tasks", _list_priority),
    "list due before or after a date": ("list_tasks", _list_dates),
    "list by tag": ("list_tasks", _slot("tag", TAGS, "tag")),
    "list by category": ("list_tasks", _slot("cat", CATEGORIES, "category")),
    "search by keyword": ("list_tasks", _slot("q", QUERIES, "query")),
    "complete by numeric id": ("complete_task", _by_ref("id", pending=True)),
    "complete by title": ("complete_task", _by_ref("title", pending=True)),
    "complete with notes": ("complete_task", _by_ref("any", True, _slot("note", NOTES, "notes"))),
    "change priority": ("update_task", _by_ref("any", extra=_priority)),
    "move the due date": ("update_task", _by_ref("any", extra=_due)),
    "rename a task": ("update_task", _by_ref("any", extra=_rename)),
    "change description": ("update_task", _by_ref("any", extra=_slot("desc", DESCRIPTIONS, "description"))),
    "set tags": ("update_task", _by_ref("any", extra=_tags)),
    "change category": ("update_task", _by_ref("any", extra=_slot("cat", CATEGORIES, "category"))),
    "change recurrence": ("update_task", _by_ref("any", extra=_recurrence)),
    "delete by numeric id": ("delete_task", _by_ref("id")),
    "delete by title": ("delete_task", _by_ref("title")),
    "greetings and chit-chat": (None, _none),
    "productivity coaching questions": (None, _none),
    "out-of-scope requests": (None, _none),
}
SCENARIOS = {name: _Scenario(tool, build, *TEMPLATES[name]) for name, (tool, build) in _BUILDERS.items()}


def _scenario(category: str, tools: list[str], name: str) -> _Scenario:
    scn = SCENARIOS.get(name.lower())
    if scn is None:
        raise FteforgeError(f"agentic spec: categories.{category}: no generator for scenario {name!r}; "
                            f"known scenarios: {', '.join(sorted(SCENARIOS))}")
    if (scn.tool is None) != (not tools) or (scn.tool is not None and scn.tool not in tools):
        raise FteforgeError(f"agentic spec: categories.{category}: scenario {name!r} calls "
                            f"{scn.tool or 'no tool'}, but the category lists tools {tools}")
    return scn


# -- drawing one exchange ---------------------------------------------------------------------------


@dataclass
class _Draw:
    today: str
    setup: list[dict[str, Any]]
    user: str
    template: str
    args: dict[str, Any] | None
    result: dict[str, Any] | None
    ref: dict[str, Any] | None


def _draw(scn: _Scenario, template: Template, rng: random.Random, split: Split, tools: ToolsSpec,
          validators: dict[str, Draft202012Validator]) -> _Draw:
    """Seed a fresh Task API, phrase the request, and run the implied call for real."""
    text, fixed = (template, {}) if isinstance(template, str) else template
    today = dt.date.fromisoformat(rng.choice(TODAYS[split]))
    setup = seed_state(rng, split, today, n=5)
    if rng.random() < 0.3:  # a finished task in the list makes status filters and refs realistic
        rng.choice(setup)["status"] = "completed"
    with TaskAPI(":memory:", tools=tools, today=today) as api:
        ctx = _Ctx(rng, split, today, seed_tasks(api, setup), text)
        slots, args = scn.build(ctx)
        user = text.format(**slots)
        if scn.tool is None:
            return _Draw(today.isoformat(), setup, user, text, None, None, None)
        # Keys in schema order whatever the word order: one fixed target layout is easier to learn.
        args = {k: (args | fixed)[k] for k in tools.get(scn.tool).argument_names if k in args | fixed}
        problems = [e.message for e in validators[scn.tool].iter_errors(args)]
        if problems:
            raise FteforgeError(f"generator bug: {scn.tool}({args}) from {user!r} is invalid: {'; '.join(problems)}")
        result = api.execute(scn.tool, args)
    if not result["ok"]:
        raise FteforgeError(f"generator bug: {scn.tool}({args}) from {user!r} failed: {result['error']['message']}")
    return _Draw(today.isoformat(), setup, user, text, args, result, ctx.ref)


def _validators(tools: ToolsSpec) -> dict[str, Draft202012Validator]:
    return {t.name: arguments_validator(t.parameters) for t in tools.tools}


def _template_order(seed: int, split: str, category: str, name: str, templates: list[Template]) -> list[Template]:
    """Templates in a seeded order, used round-robin so every phrasing appears before any repeats."""
    order = list(templates)
    rng_for(seed, split, category, name, "templates").shuffle(order)
    return order


def _category_counts(spec: AgenticSpec, scale: float) -> dict[str, int]:
    matrix = spec.scenario_matrix
    counts = {name: math.ceil(cat.target_count * scale) for name, cat in matrix.categories.items()}
    no_call = [name for name, cat in matrix.categories.items() if not cat.tools]
    frac = matrix.min_no_call_fraction
    if frac > 0 and not no_call:
        raise FteforgeError(f"agentic spec: min_no_call_fraction is {frac} but no category has `tools: []`; "
                            "add a no-call category")
    if frac >= 1 and len(no_call) < len(counts):
        raise FteforgeError("agentic spec: min_no_call_fraction 1 leaves no room for tool-calling categories")
    # target_count is a minimum, so topping up the no-call share is allowed.
    while no_call and counts[no_call[0]] < frac * sum(counts.values()) - sum(counts[c] for c in no_call[1:]):
        counts[no_call[0]] += 1
    return counts


def _ngram_ratios(texts: list[str]) -> dict[str, float]:
    tokens = [re.findall(r"[\w'-]+|[^\w\s]", t.lower()) for t in texts]
    ratios = {}
    for n in (1, 2, 3):
        grams = [tuple(ts[i:i + n]) for ts in tokens for i in range(len(ts) - n + 1)]
        ratios[str(n)] = round(len(set(grams)) / len(grams), 4) if grams else 0.0
    return ratios


# -- requests in the persona builder's words --------------------------------------------------------

# The two "multiple" scenarios plan one call for two tasks: a convention the agentic data does not teach.
PERSONA_PHRASED_SKIP = {"Create multiple tasks at once", "Complete multiple tasks"}
PERSONA_PHRASED_SOURCE = "persona_phrasings"  # meta["source"]: the persona data never borrows these back


def persona_phrased_examples(spec: AgenticSpec, tools: ToolsSpec, seed: int, n: int) -> list[Example]:
    """`n` call examples whose requests use the persona builder's training phrasings (TRAIN_USERS),
    plus enough of its no-call requests (with its replies) to keep the spec's min_no_call_fraction.

    Why: the two adapters meet the same requests after the merge, but each learned calls from its own
    phrasing. The persona data already borrows agentic requests (data/mixing.py); this is the other
    direction. Diagnosed on 1.15.0's combined suite (persona-style held-out requests): the agentic
    adapter called the right tool with the right arguments in 0.33 of the cases, the persona adapter
    in 0.71, and the merges mostly picked update_task for a create request. Scenes come from the same
    planner and train pools as the persona data (held-out phrasings and entities never enter), round-robin
    over its single-call scenarios; every call is schema-checked and executed for real.
    """
    from fteforge.data.generators.template import (
        NOCALL,
        TASK_SCENARIOS,
        compose_nocall,
        plan_nocall,
        plan_task_scene,
        run_call,
    )

    validators = _validators(tools)
    scenarios = [(cat, name) for cat, names in TASK_SCENARIOS.items() for name in names
                 if name not in PERSONA_PHRASED_SKIP]
    category_of = {}
    for cat_name, cat in spec.scenario_matrix.categories.items():
        for tool in cat.tools:
            category_of.setdefault(tool, cat_name)
    examples = []
    for i in range(n):
        cat, name = scenarios[i % len(scenarios)]
        scene = plan_task_scene(cat, name, rng_for(seed, "persona-phrased", i), "train")
        tool, planned = scene.call
        if tool not in category_of:
            raise FteforgeError(f"agentic spec: no category lists tool {tool!r}, which the persona scenario "
                                f"{name!r} calls; add it to a category or set agentic_data.persona_phrasings: 0")
        args = {k: planned[k] for k in tools.get(tool).argument_names if k in planned}
        problems = [e.message for e in validators[tool].iter_errors(args)]
        result = run_call(tools, scene.today, scene.setup_tasks, (tool, args))
        if problems or not result.get("ok"):
            raise FteforgeError(f"generator bug: {tool}({args}) from {scene.user!r}: {problems or result}")
        examples.append(Example(
            id=f"agentic-persona_phrased-{i:04d}", adapter=spec.adapter, category=category_of[tool], scenario=name,
            today=scene.today, setup_tasks=scene.setup_tasks, messages=conversation(spec, scene.user, call=(tool, args)),
            train_turn=2, meta={"tool": tool, "args": copy.deepcopy(args), "tool_result": result,
                                "template": scene.template, "source": PERSONA_PHRASED_SOURCE},
        ))
    no_call_category = next((c for c, cat in spec.scenario_matrix.categories.items() if not cat.tools), None)
    frac = spec.scenario_matrix.min_no_call_fraction
    n_no_call = math.ceil(n * frac / (1 - frac)) if n and no_call_category and frac < 1 else 0
    chats = [(cat, name) for cat, names in NOCALL.items() for name in names]
    for i in range(n_no_call):
        cat, name = chats[i % len(chats)]
        rng = rng_for(seed, "persona-phrased-no-call", i)
        user, variant, slots, template = plan_nocall(cat, name, rng, "train")
        today = dt.date.fromisoformat(rng.choice(TODAYS["train"]))
        examples.append(Example(
            id=f"agentic-persona_phrased-nc{i:04d}", adapter=spec.adapter, category=no_call_category,
            scenario=name, today=today.isoformat(), setup_tasks=seed_state(rng, "train", today),
            messages=conversation(spec, user, reply=compose_nocall(variant, rng, slots)), train_turn=2,
            meta={"tool": None, "args": None, "tool_result": None, "template": template,
                  "source": PERSONA_PHRASED_SOURCE},
        ))
    return examples


# -- public API -------------------------------------------------------------------------------------


def build_agentic_dataset(
    spec: AgenticSpec, tools: ToolsSpec, seed: int = 0, scale: float = 1.0,
    no_call_replies: NoCallReplies | None = None, framing: float = 0.0, persona_phrasings: int = 0,
) -> tuple[list[Example], dict[str, Any]]:
    """Training examples and coverage stats; every call was validated and executed for real.

    Call examples are [system, user, assistant call] (meta holds tool, args and the real
    tool_result, for the persona builder); no-call examples are [system, user, assistant reply],
    the reply from `no_call_replies(scenario name as in the spec, user text, rng)` or built in.
    Each category gets at least ceil(target_count * scale) examples, round-robin over its
    scenarios; the no-call category is topped up to min_no_call_fraction if needed. A `framing` share
    of the requests gets a train-only opener/closer (`frame_request`), drawn from its own generator so
    every example's request, call and Task API state stay what they are without it.
    `persona_phrasings` call examples in the persona builder's words follow (`persona_phrased_examples`).
    """
    if scale <= 0:
        raise FteforgeError(f"agentic data: scale must be > 0, got {scale}")
    if not 0 <= framing <= 1:
        raise FteforgeError(f"params.yaml: agentic_data.framing must be in [0, 1], got {framing}")
    if persona_phrasings < 0:
        raise FteforgeError(f"params.yaml: agentic_data.persona_phrasings must be >= 0, got {persona_phrasings}")
    validators, counts = _validators(tools), _category_counts(spec, scale)
    examples: list[Example] = []
    for cat_name, cat in spec.scenario_matrix.categories.items():
        scenarios = [(name, _scenario(cat_name, cat.tools, name)) for name in cat.scenarios]
        orders = [_template_order(seed, "train", cat_name, name, scn.train) for name, scn in scenarios]
        for i in range(counts[cat_name]):
            (name, scn), order = scenarios[i % len(scenarios)], orders[i % len(scenarios)]
            template = order[(i // len(scenarios)) % len(order)]
            rng = rng_for(seed, cat_name, i)
            d = _draw(scn, template, rng, "train", tools, validators)
            frame_rng = rng_for(seed, cat_name, i, "frame")
            if frame_rng.random() < framing:
                d.user = frame_request(d.user, frame_rng)
            meta: dict[str, Any] = {"tool": scn.tool, "args": copy.deepcopy(d.args), "tool_result": d.result,
                                    "template": d.template}
            if scn.tool is None:
                reply = (no_call_replies(name, d.user, rng) if no_call_replies
                         else rng.choice(FALLBACK_REPLIES[name.lower()]))
                messages = conversation(spec, d.user, reply=reply)
                meta["reply_source"] = "custom" if no_call_replies else "builtin"
            else:
                messages = conversation(spec, d.user, call=(scn.tool, d.args))
            examples.append(Example(
                id=f"agentic-{cat_name}-{i:04d}", adapter=spec.adapter, category=cat_name, scenario=name,
                today=d.today, setup_tasks=d.setup, messages=messages, train_turn=2, meta=meta,
            ))
    examples += persona_phrased_examples(spec, tools, seed, persona_phrasings)
    return examples, _stats(examples, tools, scale)


def _stats(examples: list[Example], tools: ToolsSpec, scale: float) -> dict[str, Any]:
    coverage = {t.name: dict.fromkeys(t.argument_names, 0) for t in tools.tools}
    for ex in examples:
        for arg in ex.meta["args"] or {}:
            coverage[ex.meta["tool"]][arg] += 1
    per_tool = Counter(ex.meta["tool"] or "no_call" for ex in examples)
    uncovered = [f"{tool}.{arg}" for tool, args in coverage.items() for arg, n in args.items() if n == 0]
    uncovered += [f"{tool} (never called)" for tool in tools.names if per_tool[tool] == 0 and not coverage[tool]]
    if uncovered and scale >= 1:
        raise FteforgeError(f"agentic data: no example uses {', '.join(uncovered)}; "
                            "add a scenario that exercises them to the agentic spec")
    texts = [ex.user for ex in examples]
    no_call = sum(1 for ex in examples if ex.meta["tool"] is None)
    return {
        "n_examples": len(examples),
        "persona_phrased": sum(1 for ex in examples if ex.meta.get("source") == PERSONA_PHRASED_SOURCE),
        "per_category": dict(Counter(ex.category for ex in examples)),
        "per_scenario": dict(Counter(ex.scenario for ex in examples)),
        "per_tool": dict(per_tool),
        "arg_coverage": coverage,
        "uncovered_args": uncovered,
        "no_call_fraction": round(no_call / len(examples), 4) if examples else 0.0,
        "distinct_user_texts": len(set(texts)),
        "distinct_templates": len({ex.meta["template"] for ex in examples}),
        "distinct_ngram_ratio": _ngram_ratios(texts),
    }


def _esc(text: str) -> str:
    """re.escape, minus escaping spaces and dashes, so the suite stays readable."""
    return re.sub(r"([.^$*+?{}\[\]\\|()])", r"\\\1", text)


def _expected_args(tool: str, args: dict[str, Any], ref: dict[str, Any] | None) -> dict[str, str]:
    """Regexes (re.search on the value as a string) that accept every right answer."""
    out = {}
    for arg, value in args.items():
        if tool == "list_tasks" and arg == "status" and value == "pending":
            continue  # pending is the default: omitting it is just as right
        if arg == "task_id":
            out[arg] = rf"^({ref['id']}|(?i:{_esc(ref['title'])}))$"
        elif arg == "tags" and len(value) == 1:
            out[arg] = rf'(?i)^\["{_esc(value[0])}"\]$'
        elif arg == "tags":  # any order, no extra tags
            ahead = "".join(f'(?=.*"{_esc(t)}")' for t in value)
            out[arg] = rf'(?i)^\[{ahead}"[^"]*"(\s*,\s*"[^"]*"){{{len(value) - 1}}}\]$'
        elif arg in ("priority", "status", "recurrence", "due_date", "due_before", "due_after"):
            out[arg] = f"^{value}$"
        else:
            out[arg] = rf"(?i)^{_esc(value)}\.?$"
    return out


def _eval_quotas(spec: AgenticSpec, n: int) -> dict[str, int]:
    cats = spec.scenario_matrix.categories
    total = sum(c.target_count for c in cats.values())
    raw = {name: n * c.target_count / total for name, c in cats.items()}
    quota = {name: math.floor(v) for name, v in raw.items()}
    for name in sorted(raw, key=lambda k: quota[k] - raw[k])[: n - sum(quota.values())]:
        quota[name] += 1
    no_call = [name for name, c in cats.items() if not c.tools]
    calling = [name for name in cats if name not in no_call]
    # At least a fifth no-call cases, so no_call_accuracy rests on enough of them.
    need = math.ceil(max(spec.scenario_matrix.min_no_call_fraction, 0.2) * n)
    if not no_call or n < need + len(calling):
        raise FteforgeError(f"agentic eval: n={n} cannot hold {need} no-call cases and one case per tool category")
    for name in calling:
        while quota[name] < 1:
            quota[max(quota, key=quota.get)] -= 1
            quota[name] += 1
    while sum(quota[c] for c in no_call) < need:
        quota[max(calling, key=quota.get)] -= 1
        quota[no_call[0]] += 1
    return quota


def eval_cases_with_reference(
    spec: AgenticSpec, tools: ToolsSpec, seed: int = 1000, n: int = 70,
) -> list[tuple[EvalCase, dict[str, Any] | None]]:
    """Eval cases, each with the call the generator intended (None for no-call), for checking the regexes."""
    validators, out = _validators(tools), []
    for cat_name, k in _eval_quotas(spec, n).items():
        cat = spec.scenario_matrix.categories[cat_name]
        scenarios = [(name, _scenario(cat_name, cat.tools, name)) for name in cat.scenarios]
        orders = [_template_order(seed, "eval", cat_name, name, scn.eval) for name, scn in scenarios]
        for j in range(k):
            (name, scn), order = scenarios[j % len(scenarios)], orders[j % len(scenarios)]
            d = _draw(scn, order[(j // len(scenarios)) % len(order)], rng_for(seed, "eval", cat_name, j), "eval",
                      tools, validators)
            case = EvalCase(
                id=f"agentic-eval-{len(out):03d}", kind="agentic", input=d.user, expected_tool=scn.tool,
                # The regexes hold the day meant, so any way of naming it that the API resolves passes.
                expected_args=_expected_args(scn.tool, resolve_dates(d.args, date_fields(tools.get(scn.tool).parameters),
                                                                     d.today), d.ref) if scn.tool else {},
                today=d.today, setup_tasks=d.setup, category=cat_name, notes=name,
            )
            out.append((case, d.args))
    return out


def build_agentic_eval_cases(spec: AgenticSpec, tools: ToolsSpec, seed: int = 1000, n: int = 70) -> list[EvalCase]:
    """Held-out agentic cases: eval pools, eval `today`s and eval-only phrasings; >= 20% no-call."""
    return [case for case, _ in eval_cases_with_reference(spec, tools, seed, n)]
