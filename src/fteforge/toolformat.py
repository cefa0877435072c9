"""The pinned tool-call format (fteforge-chatml-tools-v1), shared by data, evaluation and serving.

The chat template in `templates/chat_template.jinja` is the single definition of how a conversation
becomes text; this module writes and parses the one piece models generate themselves: the call.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

FORMAT_NAME = "fteforge-chatml-tools-v1"
CALL_OPEN, CALL_CLOSE = "<tool_call>", "</tool_call>"
END_OF_TURN = "<|im_end|>"

_CALL_RE = re.compile(r"<tool_call>(.*?)(?:</tool_call>|$)", re.DOTALL)


def chat_template() -> str:
    """The project's Jinja chat template (installed with the package)."""
    return resources.files("fteforge").joinpath("templates/chat_template.jinja").read_text(encoding="utf-8")


def format_tool_call(name: str, arguments: dict[str, Any]) -> str:
    """The exact text an assistant turn holds when it calls a tool (matches the chat template)."""
    return CALL_OPEN + json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False) + CALL_CLOSE


def tool_call_message(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """An assistant message carrying one call, in the transformers `tool_calls` layout."""
    return {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"type": "function", "function": {"name": name, "arguments": arguments}}],
    }


def tool_result_message(result: Any) -> dict[str, Any]:
    content = result if isinstance(result, str) else json.dumps(result, ensure_ascii=False, sort_keys=True)
    return {"role": "tool", "content": content}


@dataclass
class ParsedReply:
    """What a model's assistant turn contained: prose, at most one call, and any format problem."""

    text: str
    name: str | None = None
    arguments: dict[str, Any] | None = None
    error: str | None = None
    n_calls: int = 0
    raw_calls: list[str] = field(default_factory=list)

    @property
    def has_call(self) -> bool:
        return self.n_calls > 0


def parse_reply(text: str) -> ParsedReply:
    """Split generated text into prose and the first tool call; never raises on bad model output."""
    text = text.split(END_OF_TURN)[0]
    raw = [m.strip() for m in _CALL_RE.findall(text)]
    prose = _CALL_RE.sub("", text).strip()
    reply = ParsedReply(text=prose, n_calls=len(raw), raw_calls=raw)
    if not raw:
        return reply
    try:
        payload = json.loads(raw[0])
    except json.JSONDecodeError as exc:
        reply.error = f"tool call is not valid JSON: {exc.msg} at char {exc.pos}"
        return reply
    if not isinstance(payload, dict) or not isinstance(payload.get("name"), str):
        reply.error = 'tool call must be an object with a string "name"'
        return reply
    args = payload.get("arguments", {})
    if not isinstance(args, dict):
        reply.error = '"arguments" must be an object'
        return reply
    reply.name, reply.arguments = payload["name"], args
    return reply
