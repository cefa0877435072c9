"""The SQLite-backed Task API: every tool, every filter, validation before execution, persistence."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from fteforge.specs import load_spec
from fteforge.taskapi import TaskAPI, dump_result, seed_tasks

SPEC = Path(__file__).resolve().parents[1] / "specs" / "task_api_tools.yaml"
TODAY = "2026-03-10"
SEED = [
    {"title": "Review the budget", "description": "Q1 numbers", "priority": "high",
     "due_date": "2026-03-05", "tags": ["Finance", "work"], "category": "Work"},
    {"title": "Buy milk", "priority": "low", "due_date": "2026-03-12", "tags": ["errands"],
     "category": "Home"},
    {"title": "Call mom", "recurrence": "weekly", "category": "Family"},
    {"title": "File taxes", "description": "send the budget sheet to the accountant",
     "priority": "urgent", "due_date": "2026-04-15", "tags": ["finance"], "category": "home"},
    {"title": "Old report", "due_date": "2026-03-01", "status": "completed", "notes": "sent"},
]


@pytest.fixture(scope="module")
def tools():
    return load_spec(SPEC)


@pytest.fixture
def api(tools):
    with TaskAPI(tools=tools, today=TODAY) as api:
        yield api


@pytest.fixture
def seeded(api):
    seed_tasks(api, SEED)
    return api


def all_tasks(api):
    return api.execute("list_tasks", {"status": "all"})["tasks"]


def ids(result):
    return [t["id"] for t in result["tasks"]]


# -- happy paths ----------------------------------------------------------------------------------

def test_create_task_returns_full_task(api):
    r = api.execute("create_task", {"title": "Write report", "due_date": "2026-03-11", "tags": ["work"]})
    assert r["ok"] is True and r["tool"] == "create_task"
    assert r["task"] == {
        "id": 1, "title": "Write report", "description": None, "priority": "medium",
        "due_date": "2026-03-11", "tags": ["work"], "category": None, "recurrence": "none",
        "status": "pending", "notes": None, "created_on": TODAY, "completed_on": None, "overdue": False,
    }


def test_list_default_is_pending_sorted_by_due_date_nulls_last(seeded):
    r = seeded.execute("list_tasks", {})
    assert r["ok"] and r["count"] == 4
    assert [t["title"] for t in r["tasks"]] == ["Review the budget", "Buy milk", "File taxes", "Call mom"]
    assert [t["overdue"] for t in r["tasks"]] == [True, False, False, False]


def test_complete_task_by_id_and_title(seeded):
    r = seeded.execute("complete_task", {"task_id": "2", "notes": "got oat milk"})
    assert r["ok"] and r["already_completed"] is False
    assert r["task"]["status"] == "completed" and r["task"]["completed_on"] == TODAY
    assert r["task"]["notes"] == "got oat milk"
    r = seeded.execute("complete_task", {"task_id": "review the budget"})
    assert r["ok"] and r["task"]["id"] == 1 and r["task"]["overdue"] is False


def test_complete_appends_notes_and_is_idempotent(seeded):
    # Notes can only pre-exist through the database itself; the API must still keep them.
    seeded._db.execute("UPDATE tasks SET notes = 'first' WHERE id = 3")
    r = seeded.execute("complete_task", {"task_id": "Call mom", "notes": "second"})
    assert r["task"]["notes"] == "first\nsecond"
    again = seeded.execute("complete_task", {"task_id": "3"})
    assert again["ok"] and again["already_completed"] is True and again["task"] == r["task"]


def test_update_task_changes_only_given_fields(seeded):
    before = next(t for t in all_tasks(seeded) if t["id"] == 2)
    r = seeded.execute("update_task", {"task_id": "buy milk", "priority": "high", "tags": ["errands", "x"],
                                       "category": "Home"})
    assert r["ok"] and r["changed"] == ["priority", "tags"]
    after = r["task"]
    assert after["priority"] == "high" and after["tags"] == ["errands", "x"]
    assert {k: v for k, v in after.items() if k not in ("priority", "tags")} == {
        k: v for k, v in before.items() if k not in ("priority", "tags")
    }
    assert next(t for t in all_tasks(seeded) if t["id"] == 2) == after


def test_delete_task_returns_deleted_task(seeded):
    r = seeded.execute("delete_task", {"task_id": "Call mom"})
    assert r["ok"] and r["task"]["id"] == 3 and r["task"]["recurrence"] == "weekly"
    assert 3 not in [t["id"] for t in all_tasks(seeded)]
    assert seeded.execute("delete_task", {"task_id": "3"})["error"]["code"] == "not_found"


# -- list_tasks filters ---------------------------------------------------------------------------

@pytest.mark.parametrize(("args", "expected"), [
    ({"status": "completed"}, [5]),
    ({"status": "all"}, [5, 1, 2, 4, 3]),
    ({"priority": "urgent"}, [4]),
    ({"due_before": "2026-03-12"}, [1, 2]),  # inclusive, undated tasks excluded
    ({"due_after": "2026-03-12"}, [2, 4]),  # inclusive
    ({"due_after": "2026-03-06", "due_before": "2026-04-15"}, [2, 4]),
    ({"tag": "FINANCE"}, [1, 4]),  # case-insensitive, exact membership
    ({"tag": "fin"}, []),
    ({"category": "HOME"}, [2, 4]),
    ({"query": "BUDGET"}, [1, 4]),  # title or description
    ({"query": "q1 num"}, [1]),
    ({"status": "all", "query": "report"}, [5]),
    ({"priority": "high", "tag": "work", "category": "work"}, [1]),
])
def test_list_filters(seeded, args, expected):
    r = seeded.execute("list_tasks", args)
    assert r["ok"] and ids(r) == expected and r["count"] == len(expected)


def test_overdue_only_for_pending_past_due(seeded):
    by_id = {t["id"]: t for t in all_tasks(seeded)}
    assert by_id[1]["overdue"] is True  # pending, due 03-05
    assert by_id[5]["overdue"] is False  # completed, due 03-01
    assert by_id[3]["overdue"] is False  # no due date


# -- validation before execution ------------------------------------------------------------------

@pytest.mark.parametrize(("name", "args", "mentions"), [
    ("create_task", {"description": "no title"}, "title"),
    ("create_task", {"title": ""}, "title"),
    ("create_task", {"title": "x", "priority": "critical"}, "priority"),
    ("create_task", {"title": "x", "due_date": "2026-13-40"}, "due_date"),
    ("create_task", {"title": "x", "due_date": "2026-02-30"}, "due_date"),
    ("create_task", {"title": "x", "due_date": "sometime soon"}, "due_date"),
    ("create_task", {"title": "x", "due_date": "February 30"}, "due_date"),
    ("create_task", {"title": "x", "colour": "red"}, "colour"),
    ("create_task", {"title": "x", "tags": "work"}, "tags"),
    ("create_task", {"title": 42}, "title"),
    ("create_task", ["title", "x"], "object"),
    ("list_tasks", {"status": "done"}, "status"),
    ("list_tasks", {"due_before": "2026-3-1"}, "due_before"),
    ("complete_task", {"task_id": 1}, "task_id"),
    ("complete_task", {}, "task_id"),
    ("update_task", {"task_id": "1"}, "at least one field"),
    ("update_task", {"task_id": "1", "status": "completed"}, "status"),
    ("delete_task", {"task_id": "1", "force": True}, "force"),
])
def test_invalid_arguments_change_nothing(seeded, name, args, mentions):
    before = all_tasks(seeded)
    r = seeded.execute(name, args)
    assert r["ok"] is False and r["tool"] == name
    assert r["error"]["code"] == "invalid_arguments"
    assert mentions in r["error"]["message"]
    assert all_tasks(seeded) == before
    json.dumps(r)


def test_unknown_tool(api):
    r = api.execute("drop_table", {"name": "tasks"})
    assert r == {"ok": False, "tool": "drop_table", "error": {"code": "unknown_tool", "message": r["error"]["message"]}}
    assert "create_task" in r["error"]["message"]
    assert api.execute(None, {})["error"]["code"] == "unknown_tool"  # type: ignore[arg-type]


# -- task resolution ------------------------------------------------------------------------------

@pytest.mark.parametrize("task_id", ["99", "budget review", "walk the dog"])
def test_unknown_task_is_not_found(seeded, task_id):
    before = all_tasks(seeded)
    for name in ("complete_task", "delete_task"):
        r = seeded.execute(name, {"task_id": task_id})
        assert r["error"]["code"] == "not_found" and task_id in r["error"]["message"]
    r = seeded.execute("update_task", {"task_id": task_id, "priority": "low"})
    assert r["error"]["code"] == "not_found"
    assert all_tasks(seeded) == before


def test_unique_substring_resolves(seeded):
    assert seeded.execute("complete_task", {"task_id": "budget"})["task"]["id"] == 1
    assert seeded.execute("delete_task", {"task_id": "TAXES"})["task"]["id"] == 4


def test_exact_title_beats_substring(api):
    seed_tasks(api, [{"title": "Pay rent"}, {"title": "Pay rent reminder"}])
    assert api.execute("delete_task", {"task_id": "pay RENT"})["task"]["id"] == 1


def test_ambiguous_title_lists_candidates(seeded):
    seed_tasks(seeded, [{"title": "Call dad"}])
    before = all_tasks(seeded)
    r = seeded.execute("complete_task", {"task_id": "call"})
    assert r["ok"] is False and r["error"]["code"] == "ambiguous"
    assert [c["id"] for c in r["error"]["candidates"]] == [3, 6]
    assert "Call mom" in r["error"]["message"] and "Call dad" in r["error"]["message"]
    assert all_tasks(seeded) == before


# -- persistence, determinism, construction -------------------------------------------------------

def test_persists_across_instances(tools, tmp_path):
    db = tmp_path / "sub" / "tasks.db"
    with TaskAPI(db, tools=tools, today=dt.date(2026, 3, 10)) as api:
        seed_tasks(api, [{"title": "A", "due_date": "2026-03-01"}, {"title": "B"}])
        api.execute("complete_task", {"task_id": "B"})
    with TaskAPI(str(db), tools=tools, today="2026-03-20") as api:
        r = api.execute("list_tasks", {"status": "all"})
        assert [(t["title"], t["status"], t["overdue"]) for t in r["tasks"]] == [
            ("A", "pending", True), ("B", "completed", False),
        ]
        assert api.execute("create_task", {"title": "C"})["task"]["id"] == 3


def test_results_are_json_serialisable_and_deterministic(tools, seeded):
    calls = [
        ("list_tasks", {"status": "all"}), ("update_task", {"task_id": "1", "priority": "low"}),
        ("complete_task", {"task_id": "milk"}), ("delete_task", {"task_id": "4"}),
        ("complete_task", {"task_id": "call"}), ("list_tasks", {"priority": "bogus"}), ("nope", {}),
    ]
    first = [dump_result(seeded.execute(n, a)) for n, a in calls]
    assert all(json.loads(text) for text in first)
    with TaskAPI(tools=tools, today=TODAY) as other:
        seed_tasks(other, SEED)
        assert [dump_result(other.execute(n, a)) for n, a in calls] == first


def test_seed_tasks_rejects_invalid_seed(api):
    with pytest.raises(ValueError, match="priority"):
        seed_tasks(api, [{"title": "x", "priority": "nope"}])


def test_spec_tool_without_handler_is_refused(tools):
    extra = tools.model_copy(update={"tools": [*tools.tools, tools.get("delete_task").model_copy(
        update={"name": "archive_task"})]})
    with pytest.raises(ValueError, match="archive_task"):
        TaskAPI(tools=extra, today=TODAY)
