"""`fteforge chat`: a released model as the TaskMaster agent, over a real SQLite Task API file.

Each user message goes through the agent loop `fteforge.agent` defines (and training and evaluation
use): the model's first turn; when it holds a tool call, the call is checked, run against the Task
API and its result fed back; then the model's final reply. At most one call runs per user message,
as in training: a call inside the final turn is not run (its prose is the reply).

Refusals. A model can write any name and any arguments, so a call is checked BEFORE it runs and a
call that fails the check never reaches `TaskAPI.execute`, so nothing is written:

* unparseable (not JSON, no string "name", non-object "arguments") -> refused with the parse error;
* more than one call in the turn -> refused, none runs (running the first of several would carry
  out half of what the model meant);
* an unknown tool (a hallucinated name) or arguments that break the tool's JSON Schema -> refused
  with the reason `TaskAPI.validate_call` gives (the same words `execute` would).

A refused call is still answered: its error result is fed back as the tool turn, so the model can
apologise or ask for what was missing instead of pretending it worked. The exchange records it as
`call.executed = False` with `call.refused_reason`; the refusal's error result is its `tool_result`.
A call that passes the check and runs but fails (no such task, an ambiguous title) is not a refusal:
it was executed, and its error result is the tool result.

History. The session keeps every exchange (user, call, result, reply) and replays them before the
new message. When the rendered prompt exceeds `max_context` tokens the oldest exchanges are dropped
(whole exchanges, so a call is never separated from its result); the system prompt always stays.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fteforge.agent import render, system_message
from fteforge.errors import FteforgeError
from fteforge.specs import SpecSet
from fteforge.taskapi import TaskAPI, dump_result
from fteforge.toolformat import END_OF_TURN, ParsedReply, parse_reply, tool_call_message, tool_result_message

Message = dict[str, Any]
DEFAULT_MAX_CONTEXT = 1536
DEFAULT_MAX_NEW_TOKENS = 96


@dataclass
class Call:
    """The tool call of a first turn: what the model asked for, and whether it ran."""

    name: str | None  # None when the call could not be parsed
    arguments: dict[str, Any] | None
    executed: bool
    refused_reason: str | None = None


@dataclass
class Exchange:
    """One user message through the loop; `to_dict` is the `--json` output of `fteforge chat --once`."""

    user: str
    first_turn: str  # the model's raw first turn, call markup included
    call: Call | None
    tool_result: dict[str, Any] | None
    reply: str
    db: str

    @property
    def refused(self) -> bool:
        return self.call is not None and not self.call.executed

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _refusal(tool: str | None, code: str, message: str) -> dict[str, Any]:
    # the shape of TaskAPI's error results, so the model reads refusals the way it learned errors
    return {"ok": False, "tool": tool, "error": {"code": code, "message": message}}


class ChatSession:
    """A conversation with the agent over one Task API database file.

    `generate(prompt) -> completion` produces one assistant turn; by default it is greedy decoding of
    `model`, its tool calls schema-constrained unless `constrain_tool_calls` is False
    (fteforge.toolgrammar): the stream decoder where the model is Llama-shaped on CPU (it keeps the
    conversation's KV cache between turns, so a turn feeds only its new messages), else `generate_one`.
    With `draft` (an evaluation.draft.NgramDraft) the stream decoder checks `draft_tokens` guessed
    tokens per step: fewer forward passes, the same text. Tests pass a scripted function to exercise
    the tool path.
    """

    stream: Any = None  # the StreamDecoder when it decodes this session's model

    def __init__(self, tokenizer: Any, specs: SpecSet, db_path: str | Path, *, today: dt.date | str,
                 model: Any = None, generate: Callable[[str], str] | None = None,
                 max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, max_context: int = DEFAULT_MAX_CONTEXT,
                 constrain_tool_calls: bool = True, draft: Any = None, draft_tokens: int = 0):
        if generate is None:
            if model is None:
                raise ValueError("ChatSession needs a model or a generate function")
            from fteforge.evaluation.generation import generate_one, tool_call_constraint
            from fteforge.evaluation.stream import stream_decoder

            constraint = tool_call_constraint(model, tokenizer, specs.tools) if constrain_tool_calls else None
            stream = stream_decoder(model, tokenizer, constraint, draft, draft_tokens)
            self.stream = stream  # None where the model needs generate; its cache keeps the conversation

            def generate(prompt: str) -> str:
                if stream is not None:
                    return stream([prompt], max_new_tokens)[0]
                return generate_one(model, tokenizer, prompt, max_new_tokens, constraint=constraint)

        self.tokenizer, self.specs, self.generate = tokenizer, specs, generate
        self.today = dt.date.fromisoformat(today) if isinstance(today, str) else today
        self.max_context = max_context
        self.db_path = Path(db_path)
        self._history: list[list[Message]] = []  # one message list per past exchange
        self.dropped = 0  # exchanges dropped to fit max_context, for the caller to mention
        try:
            self.api = TaskAPI(self.db_path, tools=specs.tools, today=self.today)
        except ValueError as err:  # a spec tool the Task API has no implementation for
            raise FteforgeError(f"{specs.files.get('ToolsSpec', specs.root)}: {err}") from None
        except (sqlite3.Error, OSError) as err:  # a folder, a file that is not SQLite, no permission
            raise FteforgeError(f"{self.db_path}: cannot open it as the Task API database ({err}) - "
                                "pass --db with a new file name or an existing fteforge chat database") from None

    # -- the loop ----------------------------------------------------------------------------------

    def send(self, message: str) -> Exchange:
        """One user message through the loop; the exchange joins the history."""
        current: list[Message] = [{"role": "user", "content": message}]
        first = self.generate(self._prompt(current))
        parsed = parse_reply(first)
        call: Call | None = None
        result: dict[str, Any] | None = None
        if not parsed.has_call:
            reply = parsed.text
        else:
            call, result, fed = self._handle_call(parsed, first)
            current += [fed, tool_result_message(dump_result(result))]
            reply = parse_reply(self.generate(self._prompt(current))).text
        current.append({"role": "assistant", "content": reply})
        self._history.append(current)
        return Exchange(user=message, first_turn=first, call=call, tool_result=result, reply=reply,
                        db=str(self.db_path.resolve()))

    def _handle_call(self, parsed: ParsedReply, first: str) -> tuple[Call, dict[str, Any], Message]:
        """Check the call, run it if it passes; the call record, the result and the assistant message."""
        # A call the parser could not read, or several calls, cannot be replayed as one `tool_calls`
        # entry: the history keeps the model's own text so the next prompt shows what it really wrote.
        as_written: Message = {"role": "assistant", "content": first.split(END_OF_TURN)[0]}
        if parsed.error is not None:
            return (Call(None, None, executed=False, refused_reason=parsed.error),
                    _refusal(None, "unparseable_call", parsed.error), as_written)
        name, args = parsed.name, parsed.arguments
        if parsed.n_calls > 1:
            reason = f"{parsed.n_calls} tool calls in one turn; at most one is allowed, so none was run"
            return (Call(name, args, executed=False, refused_reason=reason),
                    _refusal(name, "too_many_calls", reason), as_written)
        error = self.api.validate_call(name, args)
        if error is not None:
            return (Call(name, args, executed=False, refused_reason=error["error"]["message"]), error,
                    tool_call_message(name, args))
        return Call(name, args, executed=True), self.api.execute(name, args), tool_call_message(name, args)

    def _prompt(self, current: list[Message]) -> str:
        """The rendered prompt, after dropping the oldest exchanges until it fits `max_context`."""
        while True:
            msgs = [system_message(self.specs.agentic), *(m for ex in self._history for m in ex), *current]
            prompt = render(self.tokenizer, msgs, self.specs.tools, self.today, add_generation_prompt=True)
            # The current exchange cannot be dropped: an over-long message is sent as it is.
            if not self._history or self.n_tokens(prompt) <= self.max_context:
                return prompt
            self._history.pop(0)
            self.dropped += 1

    def n_tokens(self, prompt: str) -> int:
        # counted as generation encodes it: the template already wrote the special tokens
        return len(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])

    # -- commands ----------------------------------------------------------------------------------

    @property
    def history(self) -> list[Message]:
        """The messages replayed before the next user message (system prompt not included)."""
        return [m for ex in self._history for m in ex]

    def reset(self) -> None:
        """Forget the conversation; the tasks stay in the database."""
        self._history.clear()

    def tasks(self) -> list[dict[str, Any]]:
        """Every task in the database, pending and completed, through the Task API like a model's call."""
        result = self.api.execute("list_tasks", {"status": "all"})
        if not result["ok"]:  # only if the spec's list_tasks lost its `status: all`
            raise FteforgeError(f"list_tasks: {result['error']['message']}")
        return result["tasks"]

    def close(self) -> None:
        self.api.close()

    def __enter__(self) -> ChatSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- text for people ----------------------------------------------------------------------------------

def format_call(name: str | None, arguments: dict[str, Any] | None) -> str:
    """`create_task({"title": "Call mom"})`, the way the call is shown to a user."""
    return f"{name}({json.dumps(arguments or {}, ensure_ascii=False)})"


def task_line(task: dict[str, Any]) -> str:
    """One task in a line: `#3 [pending] Call mom (high, due 2026-11-27, overdue)`."""
    extra = [task.get("priority") or "medium"]
    if task.get("due_date"):
        extra.append(f"due {task['due_date']}")
    if task.get("overdue"):
        extra.append("overdue")
    if task.get("tags"):
        extra.append("tags " + ", ".join(task["tags"]))
    return f"#{task['id']} [{task['status']}] {task['title']} ({', '.join(extra)})"


def summarize_result(result: dict[str, Any]) -> str:
    """A tool result in one line: what happened to which task, or the error."""
    if not result.get("ok"):
        err = result.get("error", {})
        return f"{err.get('code', 'error')}: {err.get('message', '')}"
    tool = result.get("tool")
    if "tasks" in result:
        return f"{result['count']} task(s)"
    task = result.get("task")
    if task is None:
        return "ok"
    verb = {"create_task": "created", "complete_task": "completed", "update_task": "updated",
            "delete_task": "deleted"}.get(str(tool), "ok")
    if result.get("already_completed"):
        verb = "already completed"
    line = f"{verb} {task_line(task)}"
    if tool == "update_task":
        line += f"; changed: {', '.join(result.get('changed') or []) or 'nothing'}"
    return line


def _as_evaluated(model_dir: Path | str, read: Callable[[dict], Any], default: Any, flag: str) -> Any:
    """`read` applied to the folder's own EVALUATION_RESULTS.json, `default` when it has none; `flag` is
    the option that overrides a file that cannot be read."""
    results = Path(model_dir) / "EVALUATION_RESULTS.json"
    if not results.is_file():
        return default
    try:
        return read(json.loads(results.read_text()))
    except (json.JSONDecodeError, AttributeError) as err:
        raise FteforgeError(f"{results}: not a readable EVALUATION_RESULTS.json ({err}) - pass {flag}") from None


def resolve_tool_calls(model_dir: Path | str, choice: str) -> bool:
    """--tool-calls: `auto` decodes as the release's own EVALUATION_RESULTS.json says it was measured
    (constrained when the folder has none); `constrained` and `free` force it."""
    if choice != "auto":
        return choice == "constrained"
    from fteforge.toolgrammar import constrained_in

    return _as_evaluated(model_dir, constrained_in, True, "--tool-calls constrained or free")


def resolve_serving(model_dir: Path | str, choice: str) -> str:
    """--serving: `auto` serves as the release's own EVALUATION_RESULTS.json was measured (fp32 when the
    folder has none); a precision forces it (fteforge.evaluation.serving)."""
    if choice != "auto":
        return choice
    from fteforge.evaluation.serving import DEFAULT_SERVING, serving_in

    return _as_evaluated(model_dir, serving_in, DEFAULT_SERVING, "--serving fp32, bf16 or int8_weights")


def resolve_draft(model_dir: Path | str, choice: str | None, tokenizer: Any) -> Any:
    """The draft table a chat guesses tokens from: --draft FILE, else the release's own, else none.

    `--draft none` turns guessing off. A table built for another tokenizer is an error, not silence.
    """
    from fteforge.evaluation.draft import RELEASE_FILE, NgramDraft

    if choice == "none":
        return None
    if choice is None:
        bundled = Path(model_dir) / RELEASE_FILE
        return NgramDraft.load(bundled, tokenizer) if bundled.is_file() else None
    if not Path(choice).is_file():
        raise FteforgeError(f"--draft {choice}: no such file - give a draft table (data/draft/ngrams.json, "
                            f"a release's {RELEASE_FILE}) or none")
    return NgramDraft.load(choice, tokenizer)


def resolve_specs_dir(model_dir: Path | str, specs: Path | str | None) -> Path:
    """The spec folder a chat uses: --specs when given, else the release's own copy, else ./specs.

    A release folder carries the specs it was built from (MODEL_DIR/specs/), and those are the tools and
    system prompt the model was trained on, so they win over whatever ./specs holds today.
    """
    if specs is not None:
        return Path(specs)
    bundled = Path(model_dir) / "specs"
    if bundled.is_dir() and any(bundled.glob("*.yaml")):
        return bundled
    if Path("specs").is_dir():
        return Path("specs")
    raise FteforgeError(f"no specs to chat with: {model_dir} has no specs/ folder of spec YAML files and there is "
                        "no ./specs - run from the project root or pass --specs DIR")
