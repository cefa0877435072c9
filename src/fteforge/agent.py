"""The agent loop, defined once: system prompt -> user -> call -> real tool result -> reply.

Data building, evaluation and `fteforge chat` all assemble conversations here, so the prompt a
model is trained on is byte for byte the prompt it is evaluated and served with.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fteforge.specs import AgenticSpec, ToolsSpec
from fteforge.taskapi import dump_result
from fteforge.toolformat import tool_call_message, tool_result_message


def today_label(day: dt.date | str) -> str:
    """'2026-11-23 (Monday)': the day the Task API resolves date phrases against, as the model sees it."""
    day = dt.date.fromisoformat(day) if isinstance(day, str) else day
    return f"{day.isoformat()} ({day.strftime('%A')})"


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
        messages, tools=tools.as_json_schemas(), today=today_label(today), tokenize=False,
        add_generation_prompt=add_generation_prompt,
    )
