"""Date phrases: the grammar the Task API resolves, its schema format, and what the scorer makes of it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from fteforge.data.records import EvalCase
from fteforge.dates import (
    DATE_FORMAT,
    NUMBER_WORDS,
    arguments_validator,
    could_become_date_phrase,
    date_fields,
    is_date_phrase,
    resolve_date,
    resolve_dates,
)
from fteforge.evaluation.scorers.tool_call import ToolCallScorer
from fteforge.specs import load_spec_set
from fteforge.taskapi import TaskAPI
from fteforge.toolformat import format_tool_call

SPECS = load_spec_set(Path(__file__).resolve().parents[1] / "specs")


@pytest.mark.parametrize(("phrase", "today", "expected"), [
    ("today", "2026-03-02", "2026-03-02"),
    ("tomorrow", "2026-03-02", "2026-03-03"),
    ("yesterday", "2026-03-01", "2026-02-28"),
    ("the day after tomorrow", "2026-12-30", "2027-01-01"),
    ("in 3 days", "2026-03-02", "2026-03-05"),
    ("in three days", "2026-02-27", "2026-03-02"),
    ("three days from now", "2026-02-27", "2026-03-02"),
    ("in 14 days", "2026-03-02", "2026-03-16"),
    ("in a week", "2026-03-02", "2026-03-09"),
    ("in two weeks", "2026-03-02", "2026-03-16"),
    ("next Friday", "2026-03-02", "2026-03-06"),  # Monday -> the coming Friday
    ("Friday", "2026-03-06", "2026-03-13"),  # on a Friday, "Friday" is a week later
    ("next Monday", "2026-03-01", "2026-03-02"),
    ("the end of the week", "2026-03-04", "2026-03-08"),  # Sunday
    ("end of the week", "2026-03-08", "2026-03-08"),  # already Sunday
    ("the end of the month", "2026-02-10", "2026-02-28"),
    ("2026-03-14", "2026-03-02", "2026-03-14"),
    ("March 14", "2026-03-02", "2026-03-14"),
    ("14 March", "2026-05-14", "2027-03-14"),  # already past this year -> next year
    ("March 14th", "2026-03-14", "2026-03-14"),
    ("February 29", "2026-03-01", "2028-02-29"),  # waits for a leap year
    # words a model copies along with the day do not change it
    ("by Friday", "2026-03-02", "2026-03-06"),
    ("due  the End of the Month", "2026-02-10", "2026-02-28"),
    ("on March 14th", "2026-03-02", "2026-03-14"),
])
def test_resolve_date(phrase, today, expected):
    assert resolve_date(phrase, dt.date.fromisoformat(today)) == expected
    assert resolve_date(phrase, today) == expected  # an ISO string is a today too


@pytest.mark.parametrize("phrase", ["sometime soon", "February 30", "2026-02-30", "in many days", "next month",
                                    "2026-3-1", ""])
def test_unreadable_phrases_are_refused_with_the_grammar(phrase):
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        resolve_date(phrase, dt.date(2026, 3, 2))
    assert not is_date_phrase(phrase)


def _phrases_the_resolver_accepts() -> list[str]:
    """Many spellings of every rule, lead words and odd case included."""
    import itertools
    import random

    from fteforge.data.generators.template import relative_when

    words = ["today", "tomorrow", "yesterday", "the day after tomorrow", "day after tomorrow", "end of week",
             "the end of this week", "end of the month", "the end of this month", "2027-01-31", "1st December",
             "December 1st", "September 30", "22nd April", "in 12 weeks", "in one day", "in a week"]
    words += [f"in {n} {u}" for n, u in itertools.product(list(NUMBER_WORDS)[:6] + ["3", "10"], ["days", "weeks", "day"])]
    words += [f"{n} {u} from now" for n, u in itertools.product(["two", "5", "a"], ["days", "week"])]
    words += [f"{nxt}{d}" for nxt, d in itertools.product(["", "next "], ["monday", "Friday", "SUNDAY"])]
    rng, today = random.Random(0), dt.date(2027, 1, 15)
    for _ in range(60):
        _, adverbial, noun = relative_when(rng, today)
        words += [adverbial, noun]
    return words + [f"{lead}{w}" for lead, w in itertools.product(["by ", "due ", "due by ", "until  "], words[:8])]


def test_every_prefix_of_a_resolvable_phrase_is_allowed_while_it_is_written():
    phrases = _phrases_the_resolver_accepts()
    assert len(phrases) > 150
    for phrase in phrases:
        assert is_date_phrase(phrase), phrase
        for end in range(len(phrase) + 1):
            assert could_become_date_phrase(phrase[:end]), (phrase, phrase[:end])


@pytest.mark.parametrize("prefix", ["inactive", "by the end of the weekm", "the day aftex", "next month", "in many",
                                    "Fridays", "sometime", "in 3 months", "3 days ago", "end of the year",
                                    "friday!", "by by tomorrow x"])
def test_a_wrong_word_is_refused_where_it_is_written(prefix):
    """The decoder calls this at every token, so a phrase that cannot resolve stops at its first wrong word."""
    assert not could_become_date_phrase(prefix)
    assert not is_date_phrase(prefix)


@pytest.mark.parametrize("phrase", ["in 99999999 days", "in 1000 weeks", "4000 days from now"])
def test_a_count_past_three_digits_is_refused_not_a_crash(phrase):
    """A constrained decoder tries long digit runs; one past Python's last date raised OverflowError."""
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        resolve_date(phrase, dt.date(2026, 3, 2))
    assert not is_date_phrase(phrase)
    assert not could_become_date_phrase(phrase)
    assert resolve_date("in 999 weeks", dt.date(2026, 3, 2)) == "2045-04-24"


def test_format_is_checked_and_other_formats_still_are():
    schema = {"type": "object", "properties": {"day": {"type": "string", "format": DATE_FORMAT},
                                               "iso": {"type": "string", "format": "date"}}}
    v = arguments_validator(schema)
    assert not list(v.iter_errors({"day": "next Friday", "iso": "2026-03-02"}))
    assert sorted(e.path[0] for e in v.iter_errors({"day": "soonish", "iso": "tomorrow"})) == ["day", "iso"]
    assert date_fields(schema) == ["day"]


def test_every_date_argument_of_the_task_api_takes_phrases():
    found = {t.name: date_fields(t.parameters) for t in SPECS.tools.tools}
    assert found == {"create_task": ["due_date"], "list_tasks": ["due_before", "due_after"], "complete_task": [],
                     "update_task": ["due_date"], "delete_task": []}


def test_task_api_stores_and_filters_by_the_resolved_day():
    with TaskAPI(tools=SPECS.tools, today="2026-03-02") as api:  # a Monday
        made = api.execute("create_task", {"title": "Water the garden", "due_date": "by Friday"})
        assert made["ok"] and made["task"]["due_date"] == "2026-03-06"
        api.execute("create_task", {"title": "File taxes", "due_date": "the end of the month"})
        week = api.execute("list_tasks", {"due_after": "today", "due_before": "the end of the week"})
        assert [t["title"] for t in week["tasks"]] == ["Water the garden"]
        moved = api.execute("update_task", {"task_id": "1", "due_date": "in two weeks"})
        assert moved["task"]["due_date"] == "2026-03-16" and moved["changed"] == ["due_date"]
        bad = api.execute("create_task", {"title": "Someday", "due_date": "whenever"})
        assert bad["ok"] is False and "next Friday" in bad["error"]["message"]  # the message lists what works
        assert api.execute("list_tasks", {"status": "all"})["count"] == 2


def test_resolve_dates_leaves_other_and_unreadable_values_alone():
    args = {"title": "Friday", "due_date": "Friday", "due_before": "whenever"}
    assert resolve_dates(args, ["due_date", "due_before"], "2026-03-02") == {
        "title": "Friday", "due_date": "2026-03-06", "due_before": "whenever"}


def test_scorer_counts_a_phrase_for_the_day_it_names():
    scorer = ToolCallScorer(SPECS.tools)
    case = EvalCase(id="c", kind="agentic", input="add water the garden by Friday", today="2026-03-02",
                    expected_tool="create_task", expected_args={"title": "(?i)water the garden", "due_date": "^2026-03-06$"})
    for said in ("Friday", "by Friday", "2026-03-06", "next Friday"):
        s = scorer.score(case, format_tool_call("create_task", {"title": "Water the garden", "due_date": said}))
        assert s.passed, (said, s.reason)
    wrong = scorer.score(case, format_tool_call("create_task", {"title": "Water the garden", "due_date": "Thursday"}))
    assert not wrong.passed and wrong.reason == "arg due_date='Thursday' (= 2026-03-05) !~ ^2026-03-06$"
    # the call keeps the model's words; only the comparison uses the day
    assert wrong.arguments["due_date"] == "Thursday"
