"""The agent loop, defined once: system prompt -> user -> call -> real tool result -> reply.

Data building, evaluation and `fteforge chat` all assemble conversations here, so the prompt a
model is trained on is byte for byte the prompt it is evaluated and served with.
"""

from __future__ import annotations

import calendar
import datetime as dt
from typing import Any

from fteforge.specs import AgenticSpec, ToolsSpec
from fteforge.taskapi import dump_result
from fteforge.toolformat import tool_call_message, tool_result_message


def today_label(day: dt.date | str) -> str:
    """'2026-11-23 (Monday)': the weekday lets a model resolve 'next Friday' without arithmetic on names."""
    day = dt.date.fromisoformat(day) if isinstance(day, str) else day
    return f"{day.isoformat()} ({day.strftime('%A')})"


# How many days after today the system prompt spells out (0: none). A 135M model gets "next Friday" or
# "the end of the month" wrong as arithmetic on names and dates (issue 8: 6 of 22 agentic failures
# of v5_ties were dates off by days); with each coming day written out it copies instead of counts.
CALENDAR_DAYS = 7


def calendar_label(day: dt.date | str, days: int | None = None) -> str:
    """The coming days with their weekday, and the phrases resolve_date maps to them, e.g.
    'Coming days: Tuesday 2026-11-24 (tomorrow), Wednesday 2026-11-25 (day after tomorrow), ...'."""
    day = dt.date.fromisoformat(day) if isinstance(day, str) else day
    days = CALENDAR_DAYS if days is None else days
    if days <= 0:
        return ""
    week_end = day + dt.timedelta(days=6 - day.weekday())
    month_end = day.replace(day=calendar.monthrange(day.year, day.month)[1])
    marks: dict[dt.date, list[str]] = {}
    for when, mark in ((day + dt.timedelta(days=1), "tomorrow"), (day + dt.timedelta(days=2), "day after tomorrow"),
                       (week_end, "end of week"), (month_end, "end of month")):
        marks.setdefault(when, []).append(mark)
    shown = [day + dt.timedelta(days=i) for i in range(1, days + 1)]
    parts = [f"{d.strftime('%A')} {d.isoformat()}" + (f" ({', '.join(marks[d])})" if d in marks else "") for d in shown]
    # today itself or beyond the window: still named, so "by the end of the month" never needs a count
    extra = [f"{', '.join(marks[d])} {d.isoformat()}" for d in sorted(marks) if d not in shown]
    return "Coming days: " + ", ".join(parts) + "." + (f" Also: {'; '.join(extra)}." if extra else "")


def system_message(spec: AgenticSpec) -> dict[str, str]:
    return {"role": "system", "content": spec.system_prompt}


def conversation(
    spec: AgenticSpec,
    user: str,
    call: tuple[str, dict[str, Any]] | None = None,
    result: dict[str, Any] | None = None,
    reply: str | None = None,
) -> list[dict[str, Any]]:
    """Messages of one exchange; `call` and `result` go together, `reply` is the last assistant turn."""
    msgs: list[dict[str, Any]] = [system_message(spec), {"role": "user", "content": user}]
    if call is not None:
        msgs.append(tool_call_message(*call))
        if result is not None:
            msgs.append(tool_result_message(dump_result(result)))
    if reply is not None:
        msgs.append({"role": "assistant", "content": reply})
    return msgs


def render(tokenizer, messages: list[dict[str, Any]], tools: ToolsSpec, today: dt.date | str,
           add_generation_prompt: bool = False) -> str:
    """The exact text a model sees, through the project's chat template."""
    return tokenizer.apply_chat_template(
        messages, tools=tools.as_json_schemas(), today=today_label(today), calendar=calendar_label(today),
        tokenize=False,
        add_generation_prompt=add_generation_prompt,
    )
