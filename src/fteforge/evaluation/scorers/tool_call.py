"""The tool-call scorer: one assistant turn against an EvalCase's expected tool and argument regexes."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from fteforge.data.records import EvalCase
from fteforge.dates import arguments_validator, date_fields, resolve_dates
from fteforge.evaluation.scorers import SCORERS
from fteforge.specs.tools import ToolsSpec
from fteforge.toolformat import parse_reply


@dataclass
class ToolCallScore:
    """What one assistant turn did with tools, and whether that was right for its case.

    `json_valid` and `schema_valid` are None when they cannot be judged (no call; for schema_valid also an
    unknown tool or a payload without a name), so rates over calls skip them instead of counting them.
    """

    case_id: str
    expected_tool: str | None
    called: str | None
    n_calls: int
    json_valid: bool | None
    schema_valid: bool | None
    hallucinated: bool
    tool_correct: bool
    arg_matches: dict[str, bool] = field(default_factory=dict)
    arguments: dict[str, Any] | None = None
    passed: bool = False
    score: float = 0.0
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def arg_as_text(value: Any) -> str:
    """An argument as the string its regex is matched against: strings as-is, anything else JSON-encoded."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _schema_error(err: Any) -> str:
    where = "/".join(str(p) for p in err.absolute_path)
    return f"schema: {where + ': ' if where else ''}{err.message}"


@SCORERS.register("tool_call")
class ToolCallScorer:
    """Tool call vs the case: right tool (or rightly no call), valid JSON, schema-valid arguments, every
    expected argument regex matched (re.search; arrays/objects JSON-encoded). Score 1 on pass, else 0."""

    def __init__(self, tools: ToolsSpec):
        self.tools = tools
        self._validators = {t.name: arguments_validator(t.parameters) for t in tools.tools}
        self._date_fields = {t.name: date_fields(t.parameters) for t in tools.tools}

    def score(self, case: EvalCase, generated: str) -> ToolCallScore:
        parsed = parse_reply(generated)
        expected = case.expected_tool
        problems: list[str] = []

        json_valid: bool | None = None
        schema_valid: bool | None = None
        if parsed.n_calls:
            try:
                json.loads(parsed.raw_calls[0])
                json_valid = True
            except json.JSONDecodeError:
                json_valid = False
        name = parsed.name
        hallucinated = name is not None and name not in self._validators

        if name is not None and not hallucinated:
            errors = sorted(self._validators[name].iter_errors(parsed.arguments),
                            key=lambda e: (list(e.absolute_path), e.message))
            schema_valid = not errors
            problems += [_schema_error(e) for e in errors]
        elif parsed.n_calls and json_valid:
            schema_valid = False if name is None else None  # a payload with no usable name is malformed

        if expected is None:
            tool_correct = parsed.n_calls == 0
            if not tool_correct:
                got = name if name is not None else "a malformed call"
                problems.insert(0, f"expected no call, got {got}")
        else:
            tool_correct = name == expected
            if not tool_correct:
                if parsed.n_calls == 0:
                    got = "no call"
                elif name is None:
                    got = f"an unreadable call ({parsed.error})"
                else:
                    got = name + (" (not a known tool)" if hallucinated else "")
                problems.insert(0, f"expected {expected}, got {got}")
        if hallucinated and expected is None:
            problems.append(f"{name} is not a known tool")
        if parsed.n_calls > 1:
            problems.append(f"{parsed.n_calls} tool calls in one turn, expected at most one")

        arg_matches: dict[str, bool] = {}
        if expected is not None:
            args = parsed.arguments if tool_correct and parsed.arguments is not None else {}
            # A date is right when it names the right day: the Task API resolves phrases against the case's
            # today, so "next Friday" and its YYYY-MM-DD count the same (a case without a today is left raw).
            resolved = resolve_dates(args, self._date_fields[name], case.today) if args and case.today else args
            for arg, pattern in case.expected_args.items():
                if arg not in args:
                    arg_matches[arg] = False
                    if tool_correct:
                        problems.append(f"arg {arg} missing (expected ~ {pattern})")
                    continue
                text = arg_as_text(resolved[arg])
                arg_matches[arg] = re.search(pattern, text) is not None
                if not arg_matches[arg]:
                    said = arg_as_text(args[arg])
                    problems.append(f"arg {arg}={said!r}{f' (= {text})' if said != text else ''} !~ {pattern}")

        passed = tool_correct and parsed.n_calls <= 1 and all(arg_matches.values())
        if expected is not None:
            passed = passed and bool(json_valid) and bool(schema_valid)
        return ToolCallScore(
            case_id=case.id, expected_tool=expected, called=name, n_calls=parsed.n_calls,
            json_valid=json_valid, schema_valid=schema_valid, hallucinated=hallucinated,
            tool_correct=tool_correct, arg_matches=arg_matches, arguments=parsed.arguments,
            passed=passed, score=1.0 if passed else 0.0, reason="; ".join(problems),
        )
