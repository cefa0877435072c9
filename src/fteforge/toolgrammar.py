"""Schema-constrained decoding of tool calls: once a model opens `<tool_call>`, it can only write a call
that passes the tool's JSON Schema, in the pinned format.

Why: the evaluation's schema failures of a 135M model are mostly one wrong token - a key the tool does
not have (`bucket` for `category`, `tags` on list_tasks), a tool name that does not exist, an
update_task closed with only its `task_id`. Validation before execution (taskapi) refuses such calls;
here the decoder never writes them, the way llama.cpp grammars or Outlines do for JSON. Whether to call
a tool, and which one, stays the model's choice: nothing is constrained outside `<tool_call>`, and a
name that is no tool is left as written. Forcing it onto a real tool would turn a request the model
misread ("divide 250 by 3") into a call that runs (measured: `delete_task` with task_id "250"), where
the unknown name is refused before execution and counted as a hallucinated tool.

Outside a call, two rules hold: no assistant turn starts a `<tool_response>`, and the reply to a tool
result writes no tool markup at all. Only the tool role writes results; a model that writes one
invents a tool's output for the user to believe (see `TOOL_RESPONSE_OPEN` below for how often the
pipeline's models did, and why the reply rule is needed too).

`CallGrammar.viable(text)` says whether `text` (what follows `<tool_call>`) can still be completed into
a valid call followed by `</tool_call>`. `ToolCallConstraint` is a transformers logits processor that,
inside a call, keeps only the best-scored token whose text keeps the call viable (constrained greedy). The format is the one the chat template renders and the models are trained on:
`{"name": "<tool>", "arguments": {"<key>": <value>, ...}}` with `json.dumps` separators.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

from fteforge.dates import DATE_FORMAT, could_become_date_phrase, is_date_phrase
from fteforge.specs import ToolsSpec
from fteforge.toolformat import CALL_CLOSE, CALL_OPEN, END_OF_TURN

# How the model's tool calls were decoded, recorded in EVALUATION_RESULTS.json `system`; a release's
# samples and `fteforge chat` decode the same way as the evaluation that released it.
TOOL_CALLS_CONSTRAINED, TOOL_CALLS_FREE = "schema-constrained", "free"


def constrained_in(results: dict[str, Any]) -> bool:
    """Whether an EVALUATION_RESULTS.json was measured with constrained tool calls (older files: no)."""
    return (results.get("system") or {}).get("tool_calls") == TOOL_CALLS_CONSTRAINED


_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_HEX = set("0123456789abcdefABCDEF")
_DATE_SHAPE = "dddd-dd-dd"


class _Incomplete(Exception):
    """The text ended while it was still a valid prefix."""


class _Invalid(Exception):
    """No continuation of the text can be a valid call."""


def _literal(s: str, i: int, lit: str) -> int:
    n = min(len(s) - i, len(lit))
    if s[i:i + n] != lit[:n]:
        raise _Invalid
    if n < len(lit):
        raise _Incomplete
    return i + len(lit)


def _string(s: str, i: int, prefix_ok: Callable[[str], bool], complete_ok: Callable[[str], bool],
            escapes: bool = True) -> tuple[int, str]:
    """A JSON string at s[i]; `prefix_ok` vets the content so far, `complete_ok` the closed content.

    Names, keys, enum values and dates are plain text, so they take no escapes: a half-written
    `\\u00` cannot be vetted until its last digit, and by then the model has paid for it.
    """
    i = _literal(s, i, '"')
    out: list[str] = []
    while True:
        if not prefix_ok("".join(out)):
            raise _Invalid
        if i >= len(s):
            raise _Incomplete
        c = s[i]
        if c == '"':
            if not complete_ok("".join(out)):
                raise _Invalid
            return i + 1, "".join(out)
        if c == "\\":
            if not escapes:
                raise _Invalid
            if i + 1 >= len(s):
                raise _Incomplete
            e = s[i + 1]
            if e in _ESCAPES:
                out.append(_ESCAPES[e])
                i += 2
            elif e == "u":
                digits = s[i + 2:i + 6]
                if not set(digits) <= _HEX:
                    raise _Invalid
                if len(digits) < 4:
                    raise _Incomplete
                out.append(chr(int(digits, 16)))
                i += 6
            else:
                raise _Invalid
        elif ord(c) < 0x20:
            raise _Invalid
        else:
            out.append(c)
            i += 1


def _choice(s: str, i: int, options: list[str]) -> tuple[int, str]:
    """A string that must be one of `options`."""
    return _string(s, i, lambda v: any(o.startswith(v) for o in options), lambda v: v in options, escapes=False)


def _date_prefix(v: str) -> bool:
    """YYYY-MM-DD so far, with a month 01-12 and a day 01-31 (the month's own length is checked at close)."""
    if len(v) > len(_DATE_SHAPE) or not all(
        (ch.isdigit() and ch.isascii()) if shape == "d" else ch == shape for ch, shape in zip(v, _DATE_SHAPE, strict=False)
    ):
        return False
    month, day = v[5:7], v[8:10]
    return ((month[:1] in ("", "0", "1")) and (len(month) < 2 or "01" <= month <= "12")
            and (day[:1] in ("", "0", "1", "2", "3")) and (len(day) < 2 or "01" <= day <= "31"))


def _is_date(v: str) -> bool:
    try:
        return _date_prefix(v) and dt.date.fromisoformat(v) is not None and len(v) == len(_DATE_SHAPE)
    except ValueError:
        return False


def _phrase_prefix(v: str) -> bool:
    """Could still become a date phrase: an ISO date so far, or the start of a phrase in its grammar."""
    if v[:4].isascii() and v[:4].isdigit() and len(v) >= 4:
        return _date_prefix(v)
    return len(v) <= 40 and v.isascii() and could_become_date_phrase(v)


class _Value:
    """A parser for one JSON value under a (small) JSON Schema: the types tool arguments use."""

    def __init__(self, schema: dict[str, Any], where: str):
        self.schema, self.where = schema, where
        kind = schema.get("type")
        if "enum" in schema and all(isinstance(e, str) for e in schema["enum"]):
            kind = "enum"
        if kind not in ("string", "enum", "array", "integer", "number", "boolean"):
            raise ValueError(f"{where}: constrained decoding cannot follow a schema of type {kind!r} "
                             "(supported: string, string enum, array, integer, number, boolean); "
                             "turn it off with evaluate.constrain_tool_calls: false")
        self.kind = kind
        self.items = _Value(schema.get("items", {"type": "string"}), f"{where}.items") if kind == "array" else None

    def parse(self, s: str, i: int) -> int:
        if self.kind == "enum":
            return _choice(s, i, [str(e) for e in self.schema["enum"]])[0]
        if self.kind == "string":
            return self._string(s, i)
        if self.kind == "array":
            return self._array(s, i)
        if self.kind == "boolean":
            if i < len(s) and s[i] == "f":
                return _literal(s, i, "false")
            return _literal(s, i, "true")
        return self._number(s, i)

    def _string(self, s: str, i: int) -> int:
        lo = self.schema.get("minLength", 0)
        hi = self.schema.get("maxLength")
        date = self.schema.get("format") == "date"
        phrase = self.schema.get("format") == DATE_FORMAT
        pattern = re.compile(self.schema["pattern"]) if "pattern" in self.schema else None

        def prefix_ok(v: str) -> bool:
            return ((hi is None or len(v) <= hi) and (not date or _date_prefix(v))
                    and (not phrase or _phrase_prefix(v)))

        def complete_ok(v: str) -> bool:
            return (len(v) >= lo and (not date or _is_date(v)) and (not phrase or is_date_phrase(v))
                    and (pattern is None or pattern.search(v) is not None))

        return _string(s, i, prefix_ok, complete_ok, escapes=not (date or phrase))[0]

    def _array(self, s: str, i: int) -> int:
        assert self.items is not None
        i = _literal(s, i, "[")
        lo, n = self.schema.get("minItems", 0), 0
        while True:
            if i >= len(s):
                raise _Incomplete
            if s[i] == "]":
                if n < lo:
                    raise _Invalid
                return i + 1
            if n:
                i = _literal(s, i, ", ")
            i = self.items.parse(s, i)
            n += 1

    def _number(self, s: str, i: int) -> int:
        j = i
        if j < len(s) and s[j] == "-":
            j += 1
        start = j
        while j < len(s) and s[j].isdigit() and s[j].isascii():
            j += 1
        if self.kind == "number" and j < len(s) and s[j] == "." and j > start:
            j += 1
            while j < len(s) and s[j].isdigit() and s[j].isascii():
                j += 1
        if j >= len(s):
            raise _Incomplete  # a number only ends at the next separator
        if j == start or (s[j - 1] == "."):
            raise _Invalid
        return j


class _Arguments:
    """The arguments object of one tool: known keys once each, required and minProperties before `}`."""

    def __init__(self, tool: str, schema: dict[str, Any]):
        props = schema.get("properties", {})
        self.values = {k: _Value(v, f"{tool}.{k}") for k, v in props.items()}
        self.required = set(schema.get("required", []))
        self.min_props = schema.get("minProperties", 0)

    def _can_close(self, used: list[str]) -> bool:
        return self.required <= set(used) and len(used) >= self.min_props

    def parse(self, s: str, i: int) -> int:
        i = _literal(s, i, "{")
        used: list[str] = []
        while True:
            if i >= len(s):
                raise _Incomplete
            if s[i] == "}":
                if not self._can_close(used):
                    raise _Invalid
                return i + 1
            if used:
                i = _literal(s, i, ", ")
            free = [k for k in self.values if k not in used]
            if not free:
                raise _Invalid
            i, key = _choice(s, i, free)
            i = _literal(s, i, ": ")
            i = self.values[key].parse(s, i)
            used.append(key)
            if i >= len(s):
                raise _Incomplete
            if s[i] not in "},":
                raise _Invalid


class CallGrammar:
    """Which texts after `<tool_call>` can still become a schema-valid call of one of `tools`."""

    def __init__(self, tools: ToolsSpec):
        self.names = tools.names
        self.arguments = {t.name: _Arguments(t.name, t.parameters) for t in tools.tools}

    def viable(self, text: str) -> bool:
        try:
            i = _literal(text, 0, '{"name": ')
            i, name = _string(text, i, lambda v: True, lambda v: True)
            if name not in self.arguments:
                return True
            i = _literal(text, i, ', "arguments": ')
            i = self.arguments[name].parse(text, i)
            i = _literal(text, i, "}")
        except _Incomplete:
            return True
        except _Invalid:
            return False
        rest = text[i:]
        return CALL_CLOSE.startswith(rest) or rest.startswith(CALL_CLOSE)


def open_call(text: str) -> str | None:
    """The body of the call `text` has opened and not closed yet, or None when it is outside a call."""
    at = text.rfind(CALL_OPEN)
    if at < 0:
        return None
    body = text[at + len(CALL_OPEN):]
    return None if CALL_CLOSE in body else body


# Prompt tokens read before the generated ones. 8 held `<tool_call>` itself, but a prompt that already
# carries the start of a call (a forced `{"name": "delete_task", ...` prefix) pushed the tag out of reach
# and left the rest unconstrained; 64 covers a prefix up to the arguments' first values.
_HEAD_TOKENS = 64

# Only the tool role writes a result (the chat template wraps it as `<tool_response>...`). An assistant turn
# that writes one invents a tool's output: measured on 1.12.0, the agentic adapter did so in all 65 of its
# replies after a real result, and the merges inherited it (v1_ties 11 of 57, v2_ties 4, v5_ties 2),
# showing the user made-up task lists. The shortest text that starts the marker and not `<tool_call>`:
TOOL_RESPONSE_OPEN, TOOL_RESPONSE_CLOSE = "<tool_response>", "</tool_response>"
_FABRICATED = TOOL_RESPONSE_OPEN[:next(i for i, (a, b) in enumerate(zip(TOOL_RESPONSE_OPEN, CALL_OPEN, strict=False))
                                      if a != b) + 1]
# The reply to a tool result is prose (the loop runs one call per user message). Refusing only `<tool_r`
# there left the models writing a second `<tool_call>` instead (measured: every refused reply of 1.13.0's
# first try came out empty), so a reply refuses the markup's first character: no `<`, `<t`, ... `<tool`.
_MARKUP = "<tool"
_REPLY_HEAD_TOKENS = 16  # enough prompt tokens for `</tool_response><|im_end|>` and the assistant header


def _writes(text: str, marker: str, or_starts_it: bool) -> bool:
    """Whether `text` (a turn's tail plus one token's piece) contains `marker`, or, with `or_starts_it`, ends in
    the beginning of it."""
    return marker in text or (or_starts_it and any(text.endswith(marker[:k]) for k in range(1, len(marker))))


class Vocabulary:
    """Every token's text, and the tokens grouped by their first character, built once per tokenizer.

    Why the grouping: when none of the top k tokens keeps the call viable, a scan of the whole
    vocabulary in score order took seconds at a step (measured: agentic adapter, latency p95 1.7 s ->
    5.1 s). A token can only be viable if its first character is, so the scan first asks which of the
    few hundred first characters fit, then ranks only the tokens that start with one of them.
    """

    def __init__(self, tokenizer: Any):
        import torch

        n = len(tokenizer)
        self.pieces = tokenizer.batch_decode([[i] for i in range(n)], skip_special_tokens=False,
                                             clean_up_tokenization_spaces=False)
        groups: dict[str, list[int]] = {}
        for token, piece in enumerate(self.pieces):
            groups.setdefault(piece[:1], []).append(token)
        self.by_first = {c: torch.tensor(ids) for c, ids in groups.items()}


class ToolCallConstraint:
    """Logits processor: inside an open `<tool_call>`, only the best token that keeps the call viable;
    outside a call, never the start of a `<tool_response>` (a fabricated tool result), and in the reply
    to a tool result no tool markup at all (`refused` counts the steps either rule changed).

    One instance serves one `generate` call: the first call sees the prompt width, later columns are
    the generated tokens; the prompt's last few tokens count too, so a prompt that ends in an open
    `<tool_call>` (a forced call) is constrained from its first token. Rows that already hit a stop
    token are skipped. The top `top_k` tokens are tried first and almost always hold one (`steps`);
    else every token whose first character fits is ranked (`deep`: measured on SmolLM2, a model set on
    a tool key that does not exist ranks the letters of the real ones below the top 64). A call that is
    already invalid (the token that opened it carried a wrong character) is left alone (`abandoned`).
    """

    def __init__(self, tokenizer: Any, grammar: CallGrammar, vocab: Vocabulary, stops: list[int],
                 top_k: int = 64):
        self.tokenizer, self.grammar, self.vocab, self.stops, self.top_k = tokenizer, grammar, vocab, set(stops), top_k
        self.start: int | None = None
        self._heads: list[str] = []
        self._replies: list[bool] = []  # rows whose prompt ends with a tool result
        self.steps = self.deep = self.abandoned = self.refused = 0

    def _text(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    def _first_viable(self, body: str, tokens: list[int], scores: Any) -> int | None:
        pieces = self.vocab.pieces
        for token in tokens:
            if scores[token] == float("-inf"):
                return None
            if token < len(pieces) and self.grammar.viable(body + pieces[token]):
                return token
        return None

    def _best(self, body: str, scores: Any) -> int | None:
        import torch

        # the ranking runs on the host: the vocabulary's id groups live there, and on a GPU every
        # element read of `scores` below would otherwise be a device sync (and cross-device indexing fails)
        scores = scores.detach().cpu()
        k = min(self.top_k, scores.shape[-1])
        token = self._first_viable(body, torch.topk(scores, k).indices.tolist(), scores)
        if token is not None:
            return token
        fits = [ids for c, ids in self.vocab.by_first.items() if self.grammar.viable(body + c)]
        if not fits:
            return None
        ids = torch.cat(fits)
        ranked = ids[torch.argsort(scores[ids], descending=True)].tolist()
        token = self._first_viable(body, ranked, scores)
        self.deep += token is not None
        return token

    def _refuse(self, marker: str, or_starts_it: bool, tail: str, scores: Any, row: int) -> None:
        """Keep the best token that does not write `marker` (`_writes`): one check per step, a search only
        when the best one would."""
        import torch

        pieces = self.vocab.pieces
        best = int(torch.argmax(scores[row]))
        if best >= len(pieces) or not _writes(tail + pieces[best], marker, or_starts_it):
            return
        ranked = torch.topk(scores[row].detach().cpu(), min(self.top_k, scores.shape[-1])).indices.tolist()
        token = next((t for t in ranked if t < len(pieces) and not _writes(tail + pieces[t], marker, or_starts_it)),
                     None)
        if token is not None:
            self.refused += 1
            kept = scores[row, token].clone()
            scores[row] = float("-inf")
            scores[row, token] = kept

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        if self.start is None:
            self.start = input_ids.shape[1]
            self._heads = [self._text(row) for row in input_ids[:, max(0, self.start - _HEAD_TOKENS):].tolist()]
            self._replies = [TOOL_RESPONSE_CLOSE + END_OF_TURN in self._text(row)
                             for row in input_ids[:, max(0, self.start - _REPLY_HEAD_TOKENS):].tolist()]
        for row, ids in enumerate(input_ids[:, self.start:].tolist()):
            if self.stops.intersection(ids):
                continue
            generated = self._text(ids)
            text = self._heads[row] + generated
            body = open_call(text)
            if body is None:
                marker, starts = (_MARKUP, True) if self._replies[row] else (_FABRICATED, False)
                self._refuse(marker, starts, generated[max(0, len(generated) - len(marker)):], scores, row)
                continue
            if not self.grammar.viable(body):
                self.abandoned += 1
                continue
            self.steps += 1
            token = self._best(body, scores[row])
            if token is not None:
                best = scores[row, token].clone()
                scores[row] = float("-inf")
                scores[row, token] = best
        return scores


def constraint_factory(tokenizer: Any, tools: ToolsSpec, stops: list[int],
                       top_k: int = 64) -> Callable[[], ToolCallConstraint]:
    """A fresh processor per generate call, over one grammar and vocabulary built (and checked) once."""
    grammar, vocab = CallGrammar(tools), Vocabulary(tokenizer)
    return lambda: ToolCallConstraint(tokenizer, grammar, vocab, stops, top_k)
