"""A real, SQLite-backed Task API: the tools the agentic adapter calls, executed for real.

Every result is a JSON-serialisable dict because it is fed back to the model as the tool turn of the
agent loop; datasets and evaluations replay the same calls, so output is deterministic (a fixed
`today`, stable task ordering, `dump_result` sorts keys) and the same state gives the same text.

Security rule: every tool call is validated against its JSON Schema (from the ToolsSpec) before it
is executed. A model can emit any name and any arguments, so an unknown tool or an invalid argument
object is answered with an error result and nothing touches the database. Errors are results, not
exceptions, so the model can read the message and repair its call.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fteforge.dates import DATE_FORMAT, DATE_HINT, arguments_validator, date_fields, resolve_dates
from fteforge.specs.tools import ToolsSpec

Result = dict[str, Any]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    title TEXT NOT NULL,
    description TEXT,
    priority TEXT NOT NULL DEFAULT 'medium',
    due_date TEXT,
    tags TEXT NOT NULL DEFAULT '[]',
    category TEXT,
    recurrence TEXT NOT NULL DEFAULT 'none',
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'completed')),
    notes TEXT,
    created_on TEXT NOT NULL,
    completed_on TEXT
)
"""
_FIELDS = ("title", "description", "priority", "due_date", "tags", "category", "recurrence")
_ORDER = "ORDER BY due_date IS NULL, due_date, id"


class ToolError(Exception):
    """A call that was valid but cannot be carried out (unknown or ambiguous task)."""

    def __init__(self, code: str, message: str, **extra: Any):
        super().__init__(message)
        self.code, self.message, self.extra = code, message, extra


def compact(value: Any) -> Any:
    """Drop null fields and empty lists: they carry no information and cost the model tokens."""
    if isinstance(value, dict):
        return {k: compact(v) for k, v in value.items() if v is not None and v != []}
    if isinstance(value, list):
        return [compact(v) for v in value]
    return value


def dump_result(result: Result) -> str:
    """The text of a result as the model sees it: compact, sorted keys so equal states give equal text."""
    return json.dumps(compact(result), sort_keys=True, ensure_ascii=False)


class TaskAPI:
    """The five Task API tools over one SQLite database; `execute` is the only way in."""

    def __init__(self, db_path: str | Path = ":memory:", *, tools: ToolsSpec, today: dt.date | str):
        if isinstance(today, dt.datetime):
            today = today.date()
        self.today = today if isinstance(today, dt.date) else dt.date.fromisoformat(today)
        self._handlers: dict[str, Callable[[dict[str, Any]], Result]] = {
            "create_task": self._create, "list_tasks": self._list, "complete_task": self._complete,
            "update_task": self._update, "delete_task": self._delete,
        }
        # A spec tool without a handler would validate and then fail at run time; refuse it up front.
        unhandled = [n for n in tools.names if n not in self._handlers]
        if unhandled:
            raise ValueError(f"no implementation for tools {unhandled} in ToolsSpec {tools.name!r}")
        self.tools = tools
        self._validators = {t.name: arguments_validator(t.parameters) for t in tools.tools}
        self._date_fields = {t.name: date_fields(t.parameters) for t in tools.tools}
        if str(db_path) != ":memory:":
            Path(db_path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(db_path))
        self._db.row_factory = sqlite3.Row
        self._db.execute(_SCHEMA)
        self._db.commit()

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> TaskAPI:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- entry point -------------------------------------------------------------------------------

    def validate_call(self, name: Any, arguments: Any) -> Result | None:
        """The error result of a call that must not run (unknown tool, invalid arguments), None if it may.

        Public so a caller (`fteforge chat`) can refuse a call before anything executes, with the same
        reasons `execute` gives.
        """
        # Only tools the spec declares may run, even if a handler exists for the name.
        if not isinstance(name, str) or name not in self._validators:
            name = name if isinstance(name, str) else repr(name)
            return _error(name, "unknown_tool", f"unknown tool {name!r}; available tools: {', '.join(self.tools.names)}")
        problems = self._check(name, arguments)
        if problems:
            return _error(name, "invalid_arguments", "; ".join(problems))
        return None

    def execute(self, name: str, arguments: dict[str, Any]) -> Result:
        """Validate one tool call against its schema, then run it; never raises for a bad call.

        Date phrases ("next Friday") are resolved against this API's `today` after validation, so the
        database and every result hold YYYY-MM-DD.
        """
        refused = self.validate_call(name, arguments)
        if refused is not None:
            return refused
        try:
            payload = self._handlers[name](resolve_dates(arguments, self._date_fields[name], self.today))
        except ToolError as err:
            return _error(name, err.code, err.message, **err.extra)
        return {"ok": True, "tool": name, **payload}

    def _check(self, name: str, arguments: Any) -> list[str]:
        if not isinstance(arguments, dict):
            return [f"arguments must be a JSON object, got {type(arguments).__name__}"]
        schema = self.tools.get(name).parameters
        problems = [_describe(e, schema) for e in self._validators[name].iter_errors(arguments)]
        return sorted(set(problems))

    # -- tools -------------------------------------------------------------------------------------

    def _create(self, args: dict[str, Any]) -> Result:
        cur = self._db.execute(
            "INSERT INTO tasks (title, description, priority, due_date, tags, category, recurrence, created_on)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (args["title"], args.get("description"), args.get("priority", "medium"), args.get("due_date"),
             json.dumps(args.get("tags", []), ensure_ascii=False), args.get("category"),
             args.get("recurrence", "none"), self.today.isoformat()),
        )
        self._db.commit()
        return {"task": self._get(cur.lastrowid)}

    def _list(self, args: dict[str, Any]) -> Result:
        where, params = [], []
        status = args.get("status", "pending")
        if status != "all":
            where.append("status = ?")
            params.append(status)
        if "priority" in args:
            where.append("priority = ?")
            params.append(args["priority"])
        # Tasks without a due date cannot be before or after anything, so date filters drop them.
        if "due_before" in args:
            where.append("due_date IS NOT NULL AND due_date <= ?")
            params.append(args["due_before"])
        if "due_after" in args:
            where.append("due_date IS NOT NULL AND due_date >= ?")
            params.append(args["due_after"])
        sql = "SELECT * FROM tasks" + (" WHERE " + " AND ".join(where) if where else "") + " " + _ORDER
        tasks = [self._task(row) for row in self._db.execute(sql, params)]
        # Case-insensitive text matching is done in Python: SQLite's LOWER only folds ASCII.
        if "tag" in args:
            tag = args["tag"].casefold()
            tasks = [t for t in tasks if tag in (x.casefold() for x in t["tags"])]
        if "category" in args:
            tasks = [t for t in tasks if (t["category"] or "").casefold() == args["category"].casefold()]
        if "query" in args:
            q = args["query"].casefold()
            tasks = [t for t in tasks if q in f"{t['title']}\n{t['description'] or ''}".casefold()]
        return {"count": len(tasks), "tasks": tasks}

    def _complete(self, args: dict[str, Any]) -> Result:
        task = self._resolve(args["task_id"])
        # Completing twice is a harmless repeat (the user said it again), not an error.
        if task["status"] == "completed":
            return {"task": task, "already_completed": True}
        notes = task["notes"]
        if args.get("notes"):
            notes = f"{notes}\n{args['notes']}" if notes else args["notes"]
        self._db.execute(
            "UPDATE tasks SET status = 'completed', completed_on = ?, notes = ? WHERE id = ?",
            (self.today.isoformat(), notes, task["id"]),
        )
        self._db.commit()
        return {"task": self._get(task["id"]), "already_completed": False}

    def _update(self, args: dict[str, Any]) -> Result:
        task = self._resolve(args["task_id"])
        # Report only real changes, so the model does not claim to have changed what was already so.
        changed = [f for f in _FIELDS if f in args and args[f] != task[f]]
        for field in changed:
            value = json.dumps(args[field], ensure_ascii=False) if field == "tags" else args[field]
            self._db.execute(f"UPDATE tasks SET {field} = ? WHERE id = ?", (value, task["id"]))
        self._db.commit()
        return {"task": self._get(task["id"]), "changed": changed}

    def _delete(self, args: dict[str, Any]) -> Result:
        task = self._resolve(args["task_id"])
        self._db.execute("DELETE FROM tasks WHERE id = ?", (task["id"],))
        self._db.commit()
        return {"task": task}

    # -- helpers -----------------------------------------------------------------------------------

    def _resolve(self, ref: str) -> dict[str, Any]:
        """A task by numeric id or by the title the user used: exact first, then a unique substring."""
        ref = ref.strip()
        if ref.isascii() and ref.isdigit():
            row = self._db.execute("SELECT * FROM tasks WHERE id = ?", (int(ref),)).fetchone()
            if row is None:
                raise ToolError("not_found", f"no task with id {ref} (task_id={ref!r})")
            return self._task(row)
        tasks = [self._task(row) for row in self._db.execute(f"SELECT * FROM tasks {_ORDER}")]
        key = ref.casefold()
        matches = [t for t in tasks if t["title"].casefold() == key] or [
            t for t in tasks if key in t["title"].casefold()
        ]
        if not matches:
            raise ToolError("not_found", f"no task matches task_id={ref!r}; pass a numeric id or a task's title")
        if len(matches) > 1:
            candidates = [{"id": t["id"], "title": t["title"], "status": t["status"]} for t in matches]
            listed = ", ".join(f"{c['id']} ({c['title']!r}, {c['status']})" for c in candidates)
            raise ToolError(
                "ambiguous", f"task_id={ref!r} matches {len(matches)} tasks: {listed}; pass the numeric id",
                candidates=candidates,
            )
        return matches[0]

    def _get(self, task_id: int | None) -> dict[str, Any]:
        return self._task(self._db.execute("SELECT * FROM tasks WHERE id = ?", (task_id,)).fetchone())

    def _task(self, row: sqlite3.Row) -> dict[str, Any]:
        task = dict(row)
        task["tags"] = json.loads(task["tags"])
        # ISO dates compare correctly as strings.
        task["overdue"] = (
            task["status"] == "pending" and task["due_date"] is not None and task["due_date"] < self.today.isoformat()
        )
        return task


def _error(tool: str, code: str, message: str, **extra: Any) -> Result:
    return {"ok": False, "tool": tool, "error": {"code": code, "message": message, **extra}}


def _describe(err: Any, schema: dict[str, Any]) -> str:
    """A schema violation in words the model can act on: which argument, and what was expected."""
    props = schema.get("properties", {})
    if err.validator == "required":
        missing = [r for r in err.validator_value if r not in err.instance]
        return f"missing required argument(s) {', '.join(repr(m) for m in missing)}"
    if err.validator == "additionalProperties":
        extra = sorted(set(err.instance) - set(props))
        return f"unknown argument(s) {', '.join(repr(e) for e in extra)}; allowed: {', '.join(props)}"
    if err.validator == "minProperties":
        return f"give at least one field to change besides task_id: {', '.join(p for p in props if p != 'task_id')}"
    where = "/".join(str(p) for p in err.absolute_path)
    if err.validator == "enum":
        return f"argument '{where}': {err.instance!r} is not one of {', '.join(err.validator_value)}"
    if err.validator == "format" and props.get(where, {}).get("format") == DATE_FORMAT:
        what = "a real date" if re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(err.instance)) else "a date I can read"
        return f"argument '{where}': {err.instance!r} is not {what}; {DATE_HINT}"
    return f"argument '{where}': {err.message}" if where else err.message


def seed_tasks(api: TaskAPI, tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Create tasks through `execute`, to build realistic states for datasets and evals.

    A task may carry `"status": "completed"` (and `"notes"`); it is then completed via complete_task,
    so seeded states only ever arise through the same validated calls the model makes.
    """
    created = []
    for spec in tasks:
        spec = dict(spec)
        status, notes = spec.pop("status", "pending"), spec.pop("notes", None)
        if status not in ("pending", "completed"):
            raise ValueError(f"seed task {spec!r}: status must be 'pending' or 'completed', got {status!r}")
        result = api.execute("create_task", spec)
        if result["ok"] and status == "completed":
            done_args = {"task_id": str(result["task"]["id"]), **({"notes": notes} if notes else {})}
            result = api.execute("complete_task", done_args)
        if not result["ok"]:
            raise ValueError(f"seed task {spec!r}: {result['error']['message']}")
        created.append(result["task"])
    return created
