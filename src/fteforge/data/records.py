"""On-disk formats: training examples and evaluation cases (JSON Lines), written atomically.

Training example (one per line):
    {"id", "adapter", "category", "scenario", "today": "YYYY-MM-DD", "setup_tasks": [...],
     "messages": [system, user, (assistant call, tool result)?, assistant reply?],
     "train_turn": index of the one assistant message this adapter learns, "meta": {...}}

Evaluation case (one per line; the format users bring their own suites in, see docs/eval_suite_format.md):
    {"id", "kind": "persona"|"agentic"|"combined", "input": "user text" (or "messages": [...]),
     "expected_tool": name or null (null = no call expected),
     "expected_args": {arg: regex matched with re.search against the value as a string; arrays JSON-encoded},
     "expected_traits": [...], "not_expected": [...], "today": "YYYY-MM-DD", "setup_tasks": [...]}
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from fteforge.errors import FteforgeError
from fteforge.specs.base import SpecModel


class Example(SpecModel):
    id: str
    adapter: str
    category: str
    scenario: str
    today: str
    setup_tasks: list[dict[str, Any]] = Field(default_factory=list)
    messages: list[dict[str, Any]] = Field(min_length=2)
    train_turn: int
    meta: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _turn(self) -> Example:
        if not (0 <= self.train_turn < len(self.messages)) or self.messages[self.train_turn]["role"] != "assistant":
            raise ValueError("train_turn must index an assistant message")
        return self

    @property
    def user(self) -> str:
        return next(m["content"] for m in self.messages if m["role"] == "user")

    @property
    def target(self) -> dict[str, Any]:
        return self.messages[self.train_turn]


class EvalCase(SpecModel):
    id: str = Field(min_length=1)
    kind: Literal["persona", "agentic", "combined"]
    input: str | None = None
    messages: list[dict[str, Any]] | None = None
    expected_tool: str | None = None
    expected_args: dict[str, str] = Field(default_factory=dict)
    expected_traits: list[str] = Field(default_factory=list)
    not_expected: list[str] = Field(default_factory=list)
    today: str | None = None
    setup_tasks: list[dict[str, Any]] = Field(default_factory=list)
    category: str | None = None
    notes: str | None = None

    @model_validator(mode="after")
    def _input(self) -> EvalCase:
        if (self.input is None) == (self.messages is None):
            raise ValueError("give exactly one of `input` (user text) or `messages`")
        if self.expected_args and self.expected_tool is None:
            raise ValueError("expected_args needs expected_tool")
        return self

    @field_validator("expected_args")
    @classmethod
    def _regexes(cls, v: dict[str, str]) -> dict[str, str]:
        for arg, pattern in v.items():
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"expected_args.{arg}: invalid regex {pattern!r}: {exc}") from None
        return v

    @property
    def user_text(self) -> str:
        if self.input is not None:
            return self.input
        return [m for m in self.messages if m["role"] == "user"][-1]["content"]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write rows atomically: a reader never sees a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        raise FteforgeError(f"{path}: file not found")
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise FteforgeError(f"{path}:{n}: not valid JSON ({exc.msg})") from None
    return rows


def load_examples(path: Path) -> list[Example]:
    return [Example.model_validate(r) for r in read_jsonl(path)]


def load_suite(path: Path) -> list[EvalCase]:
    """Read an evaluation suite; every problem names the file, the line and the field."""
    cases, problems, seen = [], [], set()
    for n, row in enumerate(read_jsonl(path), 1):
        try:
            case = EvalCase.model_validate(row)
        except ValidationError as err:
            for e in err.errors():
                field = ".".join(str(p) for p in e["loc"]) or "<case>"
                problems.append(f"{path}: case {n} ({row.get('id', '?')}): {field}: {e['msg'].removeprefix('Value error, ')}")
            continue
        if case.id in seen:
            problems.append(f"{path}: case {n}: id {case.id!r} is used twice")
        seen.add(case.id)
        cases.append(case)
    if problems:
        raise FteforgeError("invalid evaluation suite:\n  " + "\n  ".join(problems))
    if not cases:
        raise FteforgeError(f"{path}: the suite has no cases")
    return cases
