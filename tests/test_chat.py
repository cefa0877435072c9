"""`fteforge chat`: the ChatSession loop over a real SQLite Task API, and the command end to end.

A tiny random Llama never writes a tool call, so the tool path is driven by a scripted `generate`
(our own stand-in for the model's turns, built with the pinned format); the tokenizer, the chat
template, the Task API and its SQLite file are all real. The CLI tests run the real tiny model.
"""

from __future__ import annotations

import io
import json
import shutil
import sqlite3
import sys
from pathlib import Path

import pytest
from rich.console import Console

from fteforge.agent import render, system_message
from fteforge.chat import Call, ChatSession, Exchange, format_call, resolve_specs_dir, summarize_result
from fteforge.cli import main as cli_main
from fteforge.cli import print_exchange
from fteforge.errors import FteforgeError
from fteforge.specs import load_spec_set
from fteforge.taskapi import TaskAPI
from fteforge.toolformat import format_tool_call

REPO = Path(__file__).resolve().parents[1]
SPECS = load_spec_set(REPO / "specs")
TODAY = "2026-11-23"
FAST = ["--today", TODAY, "--threads", "1", "--device", "cpu", "--specs", str(REPO / "specs")]


class Scripted:
    """The model's turns in order; records each prompt it was given."""

    def __init__(self, *turns: str):
        self.turns, self.prompts = list(turns), []

    def __call__(self, prompt: str) -> str:
        self.prompts.append(prompt)
        return self.turns.pop(0)


@pytest.fixture(scope="module")
def tokenizer(smollm2_tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm2_tokenizer_dir)


@pytest.fixture
def db(tmp_path) -> Path:
    """A Task API file already holding one task, so 'unchanged' means something."""
    path = tmp_path / "tasks.db"
    with TaskAPI(path, tools=SPECS.tools, today=TODAY) as api:
        assert api.execute("create_task", {"title": "Pay the water bill", "due_date": "2026-11-30"})["ok"]
    return path


def rows(path: Path) -> list[tuple]:
    with sqlite3.connect(path) as con:
        return con.execute("SELECT * FROM tasks ORDER BY id").fetchall()


def session(tokenizer, db: Path, gen: Scripted, **kw) -> ChatSession:
    s = ChatSession(tokenizer, SPECS, db, today=TODAY, generate=gen, **kw)
    executed: list[str] = []
    real = s.api.execute

    def spy(name, arguments):
        executed.append(name)
        return real(name, arguments)

    # record what reaches execute: a refused call must never get there
    s.api.execute = spy
    s.executed = executed
    return s


# -- the loop ------------------------------------------------------------------------------------------

def test_valid_call_is_executed_and_reply_returned(tokenizer, db):
    args = {"title": "Call the dentist", "due_date": "2026-11-24", "priority": "high"}
    gen = Scripted(format_tool_call("create_task", args), "Done - the dentist call is on your list for tomorrow!")
    with session(tokenizer, db, gen) as s:
        ex = s.send("Add a task to call the dentist tomorrow, it's important")
    assert ex.call == Call("create_task", args, executed=True, refused_reason=None)
    assert ex.tool_result["ok"] and ex.tool_result["task"]["title"] == "Call the dentist"
    assert ex.reply == "Done - the dentist call is on your list for tomorrow!"
    assert ex.db == str(db.resolve()) and not ex.refused
    assert s.executed == ["create_task"]
    titles = [(r[1], r[3], r[4]) for r in rows(db)]
    assert titles == [("Pay the water bill", "medium", "2026-11-30"), ("Call the dentist", "high", "2026-11-24")]
    # the first prompt is the agent loop's: system prompt, tools, the date, the user turn
    first, second = gen.prompts
    assert SPECS.agentic.system_prompt in first and "create_task(title*: string" in first
    assert "Today is 2026-11-23 (Monday)." in first and first.endswith("<|im_start|>assistant\n")
    # the final turn sees the call and the real result (the new task's id from the database)
    assert second.startswith(first) and '<tool_call>{"name": "create_task"' in second
    assert '<tool_response>{"ok": true' in second and '"id": 2' in second


def test_hallucinated_tool_is_refused_not_executed(tokenizer, db):
    before = rows(db)
    gen = Scripted(format_tool_call("delete_everything", {"confirm": True}), "Sorry, I can't do that.")
    with session(tokenizer, db, gen) as s:
        ex = s.send("Wipe my whole list")
    assert ex.refused and ex.call.name == "delete_everything" and ex.call.executed is False
    assert ex.call.refused_reason.startswith("unknown tool 'delete_everything'; available tools: create_task")
    assert ex.tool_result["ok"] is False and ex.tool_result["error"]["code"] == "unknown_tool"
    assert s.executed == [] and rows(db) == before
    # the refusal is fed back so the model answers it; the reply is shown
    assert '<tool_response>{"error": {"code": "unknown_tool"' in gen.prompts[1]
    assert ex.reply == "Sorry, I can't do that."


@pytest.mark.parametrize(("args", "reason"), [
    ({"priority": "high"}, "missing required argument(s) 'title'"),
    ({"title": 42}, "argument 'title': 42 is not of type 'string'"),
    ({"title": "Dentist", "due_date": "2026-02-30"}, "argument 'due_date': '2026-02-30' is not a real date"),
    ({"title": "Dentist", "owner": "me"}, "unknown argument(s) 'owner'"),
    ({"title": "Dentist", "priority": "asap"}, "argument 'priority': 'asap' is not one of low, medium"),
])
def test_schema_invalid_call_is_refused(tokenizer, db, args, reason):
    before = rows(db)
    gen = Scripted(format_tool_call("create_task", args), "Could you tell me a bit more?")
    with session(tokenizer, db, gen) as s:
        ex = s.send("Add the dentist thing")
    assert ex.call == Call("create_task", args, executed=False, refused_reason=ex.call.refused_reason)
    assert reason in ex.call.refused_reason
    assert ex.tool_result["error"]["code"] == "invalid_arguments"
    assert s.executed == [] and rows(db) == before
    assert ex.reply == "Could you tell me a bit more?"


@pytest.mark.parametrize(("first", "name", "reason"), [
    ('<tool_call>{"name": "create_task", "arguments": {"title": </tool_call>', None, "tool call is not valid JSON"),
    ('<tool_call>["create_task"]</tool_call>', None, 'tool call must be an object with a string "name"'),
    (format_tool_call("create_task", {"title": "A"}) + format_tool_call("create_task", {"title": "B"}),
     "create_task", "2 tool calls in one turn; at most one is allowed, so none was run"),
])
def test_unparseable_or_several_calls_are_refused(tokenizer, db, first, name, reason):
    before = rows(db)
    gen = Scripted(first, "Let me try that again.")
    with session(tokenizer, db, gen) as s:
        ex = s.send("Add A and B")
    assert ex.call.executed is False and ex.call.name == name and ex.call.refused_reason.startswith(reason)
    assert ex.tool_result["ok"] is False and s.executed == [] and rows(db) == before
    # what the model really wrote stays in the prompt, followed by the refusal
    assert first in gen.prompts[1] and "<tool_response>" in gen.prompts[1]
    assert ex.reply == "Let me try that again."


def test_reply_without_call_changes_nothing(tokenizer, db):
    before = rows(db)
    gen = Scripted("Hi! Ready to plan your day?")
    with session(tokenizer, db, gen) as s:
        ex = s.send("Hello")
    assert (ex.call, ex.tool_result, ex.reply) == (None, None, "Hi! Ready to plan your day?")
    assert len(gen.prompts) == 1 and s.executed == [] and rows(db) == before


def test_a_call_that_runs_and_fails_is_executed_not_refused(tokenizer, db):
    gen = Scripted(format_tool_call("complete_task", {"task_id": "99"}), "I couldn't find that one.")
    with session(tokenizer, db, gen) as s:
        ex = s.send("Tick off task 99")
    assert ex.call.executed is True and ex.call.refused_reason is None and not ex.refused
    assert ex.tool_result["error"]["code"] == "not_found" and s.executed == ["complete_task"]


def test_history_is_kept_trimmed_oldest_first_and_reset(tokenizer, db):
    gen = Scripted(
        "Hello Sam!",
        format_tool_call("create_task", {"title": "Buy milk"}), "Added!",
        "Sure.", "Sure again.", "Fresh start.",
    )
    with session(tokenizer, db, gen) as s:
        s.send("Hi, I'm Sam")
        s.send("Add buy milk")
        assert [m["role"] for m in s.history] == ["user", "assistant", "user", "assistant", "tool", "assistant"]
        # the next prompt fits exactly with the second exchange but not with the first too
        nxt = {"role": "user", "content": "Thanks"}
        fits = render(tokenizer, [system_message(SPECS.agentic), *s.history[2:], nxt], SPECS.tools, TODAY,
                      add_generation_prompt=True)
        s.max_context = s.n_tokens(fits)
        s.send("Thanks")
        assert gen.prompts[-1] == fits and s.dropped == 1
        assert "I'm Sam" not in fits and "Buy milk" in fits and SPECS.agentic.system_prompt in fits
        # a budget no history fits in: everything old goes, the current message is still sent
        s.max_context = 1
        s.send("And now?")
        assert s.dropped == 3 and "Thanks" not in gen.prompts[-1] and "And now?" in gen.prompts[-1]
        s.max_context = 10_000
        s.reset()
        s.send("Start over")
        assert s.history[0]["content"] == "Start over" and "And now?" not in gen.prompts[-1]
        assert [t["title"] for t in s.tasks()] == ["Pay the water bill", "Buy milk"]  # the tasks stay


def test_session_opens_a_new_db_and_rejects_a_folder(tokenizer, tmp_path):
    with ChatSession(tokenizer, SPECS, tmp_path / "new" / "chat.db", today=TODAY, generate=Scripted()) as s:
        assert s.tasks() == []
    assert (tmp_path / "new" / "chat.db").is_file()
    with pytest.raises(FteforgeError, match="cannot open it as the Task API database"):
        ChatSession(tokenizer, SPECS, tmp_path, today=TODAY, generate=Scripted())
    with pytest.raises(ValueError, match="needs a model or a generate function"):
        ChatSession(tokenizer, SPECS, tmp_path / "x.db", today=TODAY)


def test_exchange_display():
    out = Console(file=io.StringIO(), width=200, highlight=False, soft_wrap=True)
    task = {"id": 3, "title": "Call [mom]", "status": "pending", "priority": "high", "due_date": "2026-11-20",
            "tags": ["family"], "overdue": True}
    print_exchange(out, Exchange("add", "...", Call("create_task", {"title": "Call [mom]"}, executed=True),
                                 {"ok": True, "tool": "create_task", "task": task}, "Added!", "x.db"))
    print_exchange(out, Exchange("wipe", "...", Call("drop", {}, executed=False, refused_reason="unknown tool 'drop'"),
                                 {"ok": False}, "", "x.db"))
    text = out.file.getvalue()
    assert '→ create_task({"title": "Call [mom]"})' in text
    assert "✓ created #3 [pending] Call [mom] (high, due 2026-11-20, overdue, tags family)" in text
    assert "✗ refused drop({}): unknown tool 'drop'" in text and "taskmaster> (no reply)" in text
    assert format_call("list_tasks", None) == "list_tasks({})"
    assert summarize_result({"ok": True, "tool": "list_tasks", "count": 0, "tasks": []}) == "0 task(s)"
    assert summarize_result({"ok": False, "error": {"code": "not_found", "message": "no task 9"}}) == \
        "not_found: no task 9"


def test_specs_come_from_the_release_folder_first(tmp_path, monkeypatch):
    release = tmp_path / "release"
    (release / "specs").mkdir(parents=True)
    assert resolve_specs_dir(release, "mine") == Path("mine")
    monkeypatch.chdir(REPO)
    assert resolve_specs_dir(release, None) == Path("specs")  # an empty specs/ is not a spec copy
    shutil.copy(REPO / "specs" / "task_api_tools.yaml", release / "specs")
    assert resolve_specs_dir(release, None) == release / "specs"
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FteforgeError, match="no specs to chat with"):
        resolve_specs_dir(tmp_path / "elsewhere", None)


# -- the command ---------------------------------------------------------------------------------------

def test_cli_once_json(tiny_llama_dir, tmp_path, capsys):
    db = tmp_path / "tmp.db"
    code = cli_main(["chat", str(tiny_llama_dir), "--once", "hello", "--json", "--db", str(db),
                     "--max-new-tokens", "4", *FAST])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    out = json.loads(captured.out)
    assert set(out) == {"user", "first_turn", "call", "tool_result", "reply", "db"}
    assert out["user"] == "hello" and out["db"] == str(db.resolve()) and isinstance(out["reply"], str)
    assert db.is_file() and rows(db) == []


def test_cli_serves_the_precision_asked_for(tiny_llama_dir, tmp_path, capsys):
    """--serving int8_weights runs the same loop on the int8-weight model (fteforge.evaluation.serving)."""
    code = cli_main(["chat", str(tiny_llama_dir), "--once", "hello", "--json", "--db", str(tmp_path / "q.db"),
                     "--max-new-tokens", "4", "--serving", "int8_weights", *FAST])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert json.loads(captured.out)["user"] == "hello"


def test_cli_once_text_with_an_adapter(tiny_llama_dir, tmp_path, capsys):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32),
                           LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"]))
    model.save_pretrained(tmp_path / "adapter", safe_serialization=True)
    code = cli_main(["chat", str(tmp_path / "adapter"), "--base", str(tiny_llama_dir), "--once", "hi",
                     "--db", str(tmp_path / "a.db"), "--max-new-tokens", "3", *FAST])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.out.startswith("you> hi\n") and "taskmaster> " in captured.out


def test_cli_interactive(tiny_llama_dir, tmp_path, capsys, monkeypatch):
    db = tmp_path / "chat.db"
    monkeypatch.setattr(sys, "stdin", io.StringIO("/tasks\nhello\n/reset\n/bogus\n/quit\nnever read\n"))
    code = cli_main(["chat", str(tiny_llama_dir), "--db", str(db), "--max-new-tokens", "2", *FAST])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    out = captured.out
    assert f"db {db}" in out and "today 2026-11-23" in out
    assert f"0 task(s) in {db}" in out and "taskmaster> " in out and "conversation cleared" in out
    assert "unknown command /bogus" in out
    # end of input without /quit ends the session too
    monkeypatch.setattr(sys, "stdin", io.StringIO("/tasks\n"))
    assert cli_main(["chat", str(tiny_llama_dir), "--db", str(db), *FAST]) == 0


def test_cli_errors(tiny_llama_dir, tmp_path, capsys):
    missing = tmp_path / "no_such_model"
    assert cli_main(["chat", str(missing), "--once", "hi"]) == 2
    assert f"{missing}: model folder not found" in capsys.readouterr().err
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    shutil.copy(tiny_llama_dir / "config.json", pickled)
    (pickled / "pytorch_model.bin").write_bytes(b"not really")
    assert cli_main(["chat", str(pickled), "--once", "hi", "--db", str(tmp_path / "x.db"), *FAST]) == 2
    assert "pickle" in capsys.readouterr().err
    assert cli_main(["chat", str(tiny_llama_dir), "--specs", str(tmp_path / "nope"), "--once", "hi"]) == 2
    assert "spec folder not found" in capsys.readouterr().err
    assert cli_main(["chat", str(tiny_llama_dir), "--json"]) == 2
    assert "--json goes with --once" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli_main(["chat", str(tiny_llama_dir), "--today", "23/11/2026"])
    assert exc.value.code == 2 and "is not a date as YYYY-MM-DD" in capsys.readouterr().err


def test_cli_guesses_from_the_release_table_and_refuses_a_foreign_one(tiny_llama_dir, tmp_path, capsys):
    from transformers import AutoTokenizer

    from fteforge.chat import resolve_draft
    from fteforge.evaluation.draft import RELEASE_FILE, NgramDraft, vocab_digest

    release = tmp_path / "release"
    shutil.copytree(tiny_llama_dir, release)
    tok = AutoTokenizer.from_pretrained(release)
    NgramDraft.build([[1, 2, 3, 4]], 2, vocab_digest(tok)).save(release / RELEASE_FILE)
    assert resolve_draft(release, None, tok).next == {(1,): 2, (2,): 3, (1, 2): 3, (3,): 4, (2, 3): 4}
    assert resolve_draft(release, "none", tok) is None and resolve_draft(tiny_llama_dir, None, tok) is None
    args = ["--once", "hello", "--json", "--max-new-tokens", "4", "--serving", "int8_weights", *FAST]
    assert cli_main(["chat", str(release), "--db", str(tmp_path / "a.db"), *args]) == 0, capsys.readouterr().err
    guessed = json.loads(capsys.readouterr().out)
    assert cli_main(["chat", str(release), "--db", str(tmp_path / "b.db"), "--draft", "none", *args]) == 0
    assert json.loads(capsys.readouterr().out) | {"db": None} == guessed | {"db": None}  # same text either way

    foreign = tmp_path / "foreign.json"
    NgramDraft.build([[1, 2]], 2, "another vocabulary").save(foreign)
    assert cli_main(["chat", str(release), "--draft", str(foreign), "--db", str(tmp_path / "c.db"), *args]) == 2
    assert "foreign.json: the draft table was built for another tokenizer" in capsys.readouterr().err
    assert cli_main(["chat", str(release), "--draft", str(tmp_path / "nope.json"), *args]) == 2
    assert "--draft" in capsys.readouterr().err
