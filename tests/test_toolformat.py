"""The pinned tool-call format: the chat template and the Python writer/parser agree exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoTokenizer

from fteforge.specs import load_spec
from fteforge.toolformat import (
    format_tool_call,
    parse_reply,
    tool_call_message,
    tool_result_message,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tok(smollm2_tokenizer_dir):
    return AutoTokenizer.from_pretrained(smollm2_tokenizer_dir)


@pytest.fixture(scope="module")
def tools():
    return load_spec(REPO / "specs" / "task_api_tools.yaml")


def test_template_renders_the_call_exactly_as_python_writes_it(tok, tools) -> None:
    args = {"title": "Review the budget", "due_date": "2026-11-27", "tags": ["finance", "q4"]}
    msgs = [
        {"role": "system", "content": "You are TaskMaster."},
        {"role": "user", "content": "Add a task to review the budget by Friday, tag finance and q4"},
        tool_call_message("create_task", args),
        tool_result_message({"ok": True, "task": {"id": 1}}),
        {"role": "assistant", "content": "Great choice! It's on your list."},
    ]
    text = tok.apply_chat_template(msgs, tools=tools.as_json_schemas(), today="2026-11-23 (Monday)", tokenize=False)
    assert "<|im_start|>assistant\n" + format_tool_call("create_task", args) + "<|im_end|>" in text
    assert "<|im_start|>tool\n<tool_response>" in text
    assert "Today is 2026-11-23 (Monday)." in text
    # each tool shows up as a compact signature derived from its JSON Schema
    assert "create_task(title*: string, description: string, priority: low|medium|high|urgent, due_date: date" in text
    assert "delete_task(task_id*: string)" in text
    parsed = parse_reply(format_tool_call("create_task", args))
    assert (parsed.name, parsed.arguments) == ("create_task", args)


def test_template_has_no_stock_default_system_prompt(tok) -> None:
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert "SmolLM" not in text
    assert text.endswith("<|im_start|>assistant\n")


@pytest.mark.parametrize(
    "text,name,error",
    [
        ('<tool_call>{"name": "list_tasks", "arguments": {}}</tool_call>', "list_tasks", None),
        ('<tool_call>{"name": "list_tasks", "arguments": {"status": "all"}}', "list_tasks", None),  # stopped at EOS
        ("Nice work! Ready for what's next?", None, None),
        ('<tool_call>{"name": "list_tasks", "arguments": {</tool_call>', None, "not valid JSON"),
        ('<tool_call>{"arguments": {}}</tool_call>', None, 'string "name"'),
        ('<tool_call>{"name": "x", "arguments": [1]}</tool_call>', None, '"arguments" must be an object'),
    ],
)
def test_parse_reply(text: str, name: str | None, error: str | None) -> None:
    r = parse_reply(text + "<|im_end|>")
    assert r.name == name
    assert (r.error is None) if error is None else (error in r.error)


def test_parse_reply_keeps_prose_and_counts_calls() -> None:
    r = parse_reply('On it! <tool_call>{"name": "a", "arguments": {}}</tool_call><tool_call>{"name": "b"}</tool_call>')
    assert r.text == "On it!" and r.n_calls == 2 and r.name == "a"


# -- the calendar line: every date phrase resolve_date knows is spelled out, and agrees with it -------

@pytest.mark.parametrize("today", ["2026-11-23", "2026-11-29", "2027-01-15", "2026-02-27", "2026-12-31"])
def test_calendar_names_the_dates_the_data_resolves_phrases_to(today: str) -> None:
    import calendar as cal
    import datetime as dt
    import re

    from fteforge.agent import calendar_label
    from fteforge.data.agentic import resolve_date

    label = calendar_label(today, days=7)
    day = dt.date.fromisoformat(today)
    for phrase, mark in [("tomorrow", "tomorrow"), ("the day after tomorrow", "day after tomorrow"),
                         ("the end of the week", "end of week"), ("the end of the month", "end of month")]:
        iso = resolve_date(phrase, day)
        entries = [e for e in re.findall(r"[A-Za-z ]*\d{4}-\d{2}-\d{2}(?: \([^)]*\))?", label) if iso in e]
        assert len(entries) == 1 and mark in entries[0], (phrase, label)
    for weekday in cal.day_name:  # "next Friday" and "Friday" are the first Friday after today
        assert f"{weekday} {resolve_date('next ' + weekday, day)}" in label
    assert calendar_label(today, days=0) == ""


def test_render_puts_the_calendar_after_today_so_the_shared_prefix_stays(tok, tools) -> None:
    from fteforge.agent import render

    msgs = [{"role": "system", "content": "You are TaskMaster."}, {"role": "user", "content": "hi"}]
    monday, friday = (render(tok, msgs, tools, d, add_generation_prompt=True) for d in ("2026-11-23", "2026-11-27"))
    head = monday.split("Today is")[0]
    assert friday.startswith(head)
    assert "Today is 2026-11-23 (Monday).\nComing days: Tuesday 2026-11-24 (tomorrow)," in monday
    assert "Sunday 2026-11-29 (day after tomorrow, end of week)" in friday
