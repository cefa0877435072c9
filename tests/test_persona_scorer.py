"""Persona scorer against a small labelled set of TaskMaster replies."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from fteforge.evaluation.persona_scorer import NEGATIVITY, VIOLATION_CAP, PersonaScorer
from fteforge.specs import load_spec

SPEC_PATH = Path(__file__).resolve().parents[1] / "specs" / "taskmaster_persona.yaml"
SPEC = load_spec(SPEC_PATH)

# (user, reply): in-persona replies; the spec's own examples come first.
GOOD = [(e.user, e.assistant) for e in SPEC.examples] + [
    (
        "Mark the budget report as done.",
        "Nice work! I've marked the budget report complete, and that's real progress this week. "
        "Ready for what's next on your list?",
    ),
    (
        "Move the dentist appointment to Thursday.",
        "Got it! I've moved the dentist appointment to Thursday, so your schedule stays on track. "
        "Want me to set a reminder the day before?",
    ),
    (
        "This app is useless, nothing syncs.",
        "I hear you, and I'm sorry the sync let you down. Good news: I've checked your list and all 12 "
        "tasks are saved. Want me to walk through a quick resync together?",
    ),
    (
        "What's due today?",
        "Sure thing! Here's what's due today: the client email and the expense report. Both are doable "
        "before lunch. Shall we start with the email?",
    ),
    (
        "Show my overdue tasks.",
        "Of course! You have three overdue tasks: the invoice, the team survey and the blog draft. "
        "That's manageable. Want to tackle the invoice first?",
    ),
]

# Robotic or persona-less replies: correct, but they must not pass the quality filter.
NEUTRAL = [
    "Task created.",
    "Here is the list of tasks.",
    "I am an AI language model and I do not have feelings, but I can manage tasks.",
    "Request processed. The task has been updated in the database.",
    "Certainly! The task has been deleted. I hope this helps.",
    "The report is due on Friday. It has high priority.",
    "Operation successful. 3 tasks found.",
]

# (user, reply, violations that must be reported)
VIOLATING = [
    (
        "I didn't finish the slides.",
        "Obviously you should have started earlier. It's not that hard to finish slides on time. "
        "Want me to set a new deadline?",
        {"never_condescending"},
    ),
    (
        "I missed the deadline again.",
        "Late again? As usual, I guess you were busy. I've moved the task to tomorrow.",
        {"never_passive_aggressive"},
    ),
    (
        "You messed up my task list!",
        "That's not my fault, I did exactly what you asked. You're wrong about the list.",
        {"never_defensive", NEGATIVITY},
    ),
    (
        "This whole system is stupid and I hate it.",
        "Yeah, it's awful and frustrating. Honestly the task list is a mess and nothing works.",
        {NEGATIVITY},
    ),
    (
        "I'm so behind, everything is terrible.",
        "Whatever, it's a waste of time trying to fix it now. The list is still there.",
        {"never_matches_negativity", NEGATIVITY},
    ),
    (
        "Why didn't you remind me?",
        "Why didn't you just check your list? I told you it was due today. Shall we look at it?",
        {"never_condescending"},
    ),
]


@pytest.fixture(scope="module")
def scorer() -> PersonaScorer:
    return PersonaScorer(SPEC)


@pytest.mark.parametrize(("user", "reply"), GOOD)
def test_good_replies_pass(scorer, user, reply):
    s = scorer.score(reply, user)
    assert s.total >= 7.5, (s.total, s.reasons)
    assert s.violations == []


@pytest.mark.parametrize("reply", NEUTRAL)
def test_neutral_replies_fail_filter(scorer, reply):
    s = scorer.score(reply)
    assert s.total < SPEC.quality_filter_min, (s.total, s.reasons)
    assert s.reasons


@pytest.mark.parametrize(("user", "reply", "expected"), VIOLATING)
def test_violating_replies(scorer, user, reply, expected):
    s = scorer.score(reply, user)
    assert expected <= set(s.violations), s.violations
    assert s.total < SPEC.quality_filter_min
    assert s.total <= VIOLATION_CAP
    assert any("boundary" in r or "negativity" in r for r in s.reasons)


def test_labelled_set_accuracy(scorer):
    labelled = [(u, r, True) for u, r in GOOD] + [(None, r, False) for r in NEUTRAL]
    labelled += [(u, r, False) for u, r, _ in VIOLATING]
    correct = sum((scorer.score(r, u).total >= SPEC.quality_filter_min) == ok for u, r, ok in labelled)
    assert correct == len(labelled)


def test_scores_are_well_formed_and_deterministic(scorer):
    names = [t.name for t in SPEC.traits]
    replies = [(u, r) for u, r in GOOD] + [(None, r) for r in NEUTRAL] + [(u, r) for u, r, _ in VIOLATING]
    fresh = PersonaScorer(SPEC)
    for user, reply in replies:
        s = scorer.score(reply, user)
        assert list(s.traits) == names
        assert all(0 <= v <= 2 and (v * 2).is_integer() for v in s.traits.values())
        assert s.total == pytest.approx(sum(s.traits.values()))
        assert 0 <= s.total <= 10
        assert set(s.pattern) == {"ACKNOWLEDGE", "DELIVER", "PROPEL"}
        assert s.to_dict() == scorer.score(reply, user).to_dict() == fresh.score(reply, user).to_dict()


def test_negativity_needs_a_negative_user(scorer):
    reply = "Yeah, it's awful and frustrating. Honestly the task list is a mess and nothing works."
    assert NEGATIVITY not in scorer.score(reply).violations
    assert NEGATIVITY not in scorer.score(reply, "Show me my tasks for today.").violations
    assert NEGATIVITY in scorer.score(reply, "This whole system is stupid and I hate it.").violations


def test_empty_reply(scorer):
    for reply in ("", "   ", "Ok."):
        s = scorer.score(reply)
        assert s.total == 0 and s.reasons


def test_avoided_vocabulary_lowers_tone(scorer):
    user, reply = GOOD[0]
    base = scorer.score(reply, user)
    worse = scorer.score(reply + " I hope this helps!!", user)
    assert worse.avoided_hits == ["I hope this helps", "!!"]
    assert worse.traits["professional_friendly"] < base.traits["professional_friendly"]
    assert worse.total < base.total


def test_missing_steps_deduct(scorer):
    s = scorer.score("The vendor review is marked complete, and that was a big one. Nice work.")
    assert s.pattern == {"ACKNOWLEDGE": False, "DELIVER": True, "PROPEL": False}
    assert any("missing ACKNOWLEDGE" in r for r in s.reasons)
    assert any("missing PROPEL" in r for r in s.reasons)


def test_preferred_hits_and_curly_quotes(scorer):
    straight = "Great choice! I've added it to your list. Ready for what's next?"
    curly = straight.replace("'", "\u2019")
    a, b = scorer.score(straight), scorer.score(curly)
    assert a.to_dict() == b.to_dict()
    assert a.preferred_hits == ["Great choice!", "Ready for what's next?"]


def test_fast(scorer):
    replies = [r for _, r in GOOD] * 20
    start = time.perf_counter()
    for r in replies:
        scorer.score(r, "I'm so behind, everything is terrible.")
    assert (time.perf_counter() - start) / len(replies) < 0.01
