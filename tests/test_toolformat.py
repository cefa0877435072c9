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


def test_render_ends_the_system_turn_with_today(tok, tools) -> None:
    """Since 1.17.0 no date lines follow today: the Task API resolves date phrases, the model copies them."""
    from fteforge.agent import render

    text = render(tok, [{"role": "user", "content": "hi"}], tools, "2026-11-28")  # a Saturday
    assert "Today is 2026-11-28 (Saturday).<|im_end|>" in text
    assert "due_date: date-phrase" in text  # the signature says a phrase is accepted
    bare = tok.apply_chat_template([{"role": "user", "content": "hi"}], tools=tools.as_json_schemas(),
                                   today="2026-11-28 (Saturday)", tokenize=False)
    assert bare == text
