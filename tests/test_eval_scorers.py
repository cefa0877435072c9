"""Evaluation scorers (tool call, persona, combined, style probe), the persona-scorer validation and
batched greedy generation, which must equal single-stream generation token for token."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fteforge.data.records import EvalCase
from fteforge.errors import FteforgeError
from fteforge.evaluation.scorers import SCORERS
from fteforge.evaluation.scorers.combined import CombinedScorer
from fteforge.evaluation.scorers.persona import PersonaCaseScorer
from fteforge.evaluation.scorers.tool_call import ToolCallScorer
from fteforge.specs import load_spec_set
from fteforge.toolformat import format_tool_call

SPECS = load_spec_set(Path(__file__).resolve().parents[1] / "specs")

GOOD_REPLY = ("Nice work! I've added \"Water the garden\" to your list for Friday. "
              "Want me to set a reminder the day before?")


def case(**kw) -> EvalCase:
    base = {"id": "c1", "kind": "agentic", "input": "Create a task to review the budget by Friday"}
    return EvalCase.model_validate({**base, **kw})


CREATE = case(expected_tool="create_task",
              expected_args={"title": "(?i)review the budget", "due_date": "^2026-11-27$"})


@pytest.fixture(scope="module")
def tool_scorer() -> ToolCallScorer:
    return ToolCallScorer(SPECS.tools)


@pytest.fixture(scope="module")
def persona_scorer() -> PersonaCaseScorer:
    return PersonaCaseScorer(SPECS.persona)


def test_registry():
    assert {"tool_call", "persona", "combined", "style_probe"} <= set(SCORERS.names())
    assert SCORERS.get("tool_call") is ToolCallScorer


# -- tool_call -------------------------------------------------------------------------------------------

def test_right_call(tool_scorer):
    s = tool_scorer.score(CREATE, format_tool_call("create_task", {"title": "Review the budget",
                                                                    "due_date": "2026-11-27"}))
    assert s.passed and s.score == 1.0 and s.reason == ""
    assert (s.json_valid, s.schema_valid, s.hallucinated, s.tool_correct) == (True, True, False, True)
    assert s.arg_matches == {"title": True, "due_date": True}


def test_wrong_tool(tool_scorer):
    s = tool_scorer.score(CREATE, format_tool_call("list_tasks", {}))
    assert not s.passed and s.score == 0 and not s.tool_correct and not s.hallucinated
    assert s.schema_valid is True
    assert s.reason.startswith("expected create_task, got list_tasks")
    assert s.arg_matches == {"title": False, "due_date": False}


def test_no_call_when_expected(tool_scorer):
    s = tool_scorer.score(CREATE, "Sure, I'll remember that!")
    assert not s.passed and s.json_valid is None and s.schema_valid is None and s.n_calls == 0
    assert s.reason.startswith("expected create_task, got no call")


def test_no_call_case(tool_scorer):
    chat = case(input="How do I stay focused?")
    ok = tool_scorer.score(chat, "Try a 25-minute focus block. Want me to add one for tomorrow?<|im_end|>")
    assert ok.passed and ok.tool_correct and ok.json_valid is None and ok.schema_valid is None
    bad = tool_scorer.score(chat, format_tool_call("list_tasks", {}))
    assert not bad.passed and not bad.tool_correct
    assert bad.reason == "expected no call, got list_tasks"


def test_hallucinated_tool(tool_scorer):
    s = tool_scorer.score(CREATE, format_tool_call("add_todo", {"title": "Review the budget"}))
    assert s.hallucinated and not s.passed and s.json_valid is True and s.schema_valid is None
    assert "got add_todo (not a known tool)" in s.reason
    chat = case(input="hi")
    s2 = tool_scorer.score(chat, format_tool_call("send_email", {}))
    assert s2.hallucinated and not s2.passed and "send_email is not a known tool" in s2.reason


def test_invalid_json(tool_scorer):
    s = tool_scorer.score(CREATE, '<tool_call>{"name": "create_task", "arguments": {"title": "Review</tool_call>')
    assert s.json_valid is False and s.schema_valid is None and not s.passed
    assert "not valid JSON" in s.reason
    # valid JSON without a usable name: JSON is fine, the call is not
    s2 = tool_scorer.score(CREATE, '<tool_call>{"arguments": {}}</tool_call>')
    assert s2.json_valid is True and s2.schema_valid is False and not s2.passed


def test_schema_violation(tool_scorer):
    s = tool_scorer.score(CREATE, format_tool_call("create_task", {"title": "Review the budget",
                                                                    "due_date": "2026-11-27", "priority": "top"}))
    assert s.tool_correct and s.schema_valid is False and not s.passed
    assert all(s.arg_matches.values())
    assert "schema: priority: 'top' is not one of ['low', 'medium', 'high', 'urgent']" in s.reason
    s2 = tool_scorer.score(CREATE, format_tool_call("create_task", {"title": "Review the budget",
                                                                     "due_date": "2026-02-30"}))
    assert s2.schema_valid is False and "due_date" in s2.reason  # format: date is checked


def test_arg_mismatch(tool_scorer):
    s = tool_scorer.score(CREATE, format_tool_call("create_task", {"title": "Review the budget",
                                                                    "due_date": "2026-11-28"}))
    assert s.schema_valid and not s.passed and s.arg_matches == {"title": True, "due_date": False}
    assert s.reason == "arg due_date='2026-11-28' !~ ^2026-11-27$"
    missing = tool_scorer.score(CREATE, format_tool_call("create_task", {"title": "Review the budget"}))
    assert not missing.passed and missing.arg_matches["due_date"] is False
    assert "arg due_date missing" in missing.reason


def test_array_args_are_json_encoded(tool_scorer):
    # the suite's own regex for tags (data/eval/agentic.jsonl)
    tags = case(expected_tool="create_task",
                expected_args={"tags": '(?i)^\\[(?=.*"family")(?=.*"q4")"[^"]*"(\\s*,\\s*"[^"]*"){1}\\]$'})
    ok = tool_scorer.score(tags, format_tool_call("create_task", {"title": "x", "tags": ["q4", "family"]}))
    assert ok.passed, ok.reason
    bad = tool_scorer.score(tags, format_tool_call("create_task", {"title": "x", "tags": ["q4"]}))
    assert not bad.passed and "arg tags='[\"q4\"]' !~" in bad.reason


def test_two_calls_fail(tool_scorer):
    call = format_tool_call("create_task", {"title": "Review the budget", "due_date": "2026-11-27"})
    s = tool_scorer.score(CREATE, call + call)
    assert s.n_calls == 2 and not s.passed and "2 tool calls" in s.reason


def test_real_suite_no_call_cases(tool_scorer):
    """The built agentic suite's no-call cases load as EvalCases and pass with a plain reply."""
    from fteforge.data.records import load_suite

    suite = Path(__file__).resolve().parents[1] / "data" / "eval" / "agentic.jsonl"
    if not suite.is_file():
        pytest.skip("data/eval/agentic.jsonl not built")
    no_call = [c for c in load_suite(suite) if c.expected_tool is None]
    assert no_call and all(tool_scorer.score(c, "Happy to help! What's next?").passed for c in no_call)


# -- persona --------------------------------------------------------------------------------------------

def persona_case(**kw) -> EvalCase:
    base = {"id": "p1", "kind": "persona", "input": "Add watering the garden for Friday.",
            "expected_traits": ["encouraging", "action_oriented", "not_a_trait"],
            "not_expected": ["condescending", "passive_aggressive", "defensive", "matches_negativity",
                             "generic_ai_phrases"]}
    return EvalCase.model_validate({**base, **kw})


def test_persona_good(persona_scorer):
    s = persona_scorer.score(persona_case(), GOOD_REPLY)
    assert s.passed and s.total >= 6 and s.score == s.total / 10 and s.violations == [] and s.reason == ""
    assert s.expected_traits == ["encouraging", "action_oriented"]  # unknown names are ignored
    assert s.expected_traits_shown == 1.0


def test_persona_not_expected_mapping(persona_scorer):
    c = persona_case()
    s = persona_scorer.score(c, "Obviously you forgot again? " + GOOD_REPLY)
    assert set(s.not_expected_hits) >= {"condescending", "passive_aggressive"} and not s.passed
    generic = persona_scorer.score(c, GOOD_REPLY + " I hope this helps!")
    assert generic.violations == [] and generic.not_expected_hits == ["generic_ai_phrases"]
    assert not generic.passed and "generic AI phrases" in generic.reason
    # the same reply passes when the case does not forbid generic phrases and the total holds
    lenient = persona_scorer.score(persona_case(not_expected=[]), GOOD_REPLY + " I hope this helps!")
    assert lenient.passed == (lenient.total >= 6)
    neg = persona_scorer.score(persona_case(input="This is pointless, I hate my job."),
                               "Yeah, it's awful and everything is a mess. Nothing works.")
    assert "matches_negativity" in neg.not_expected_hits and not neg.passed
    defensive = persona_scorer.score(c, "That's not my fault, you gave me the wrong date.")
    assert "defensive" in defensive.not_expected_hits
    with pytest.raises(FteforgeError, match="unknown"):
        persona_scorer.score(persona_case(not_expected=["rude_words"]), GOOD_REPLY)


def test_persona_threshold_and_robotic(persona_scorer):
    s = persona_scorer.score(persona_case(), "Task created.")
    assert not s.passed and s.total < 6 and s.expected_traits_shown == 0.0 and "total" in s.reason
    strict = PersonaCaseScorer(SPECS.persona, min_total=10.5)
    assert not strict.score(persona_case(), GOOD_REPLY).passed


# -- combined -------------------------------------------------------------------------------------------

def test_combined_weighting():
    scorer = CombinedScorer(SPECS.tools, SPECS.persona)
    c = case(kind="combined", expected_tool="create_task", expected_args={"title": "(?i)water the garden"},
             input="Add watering the garden for Friday.", not_expected=["condescending"])
    call = format_tool_call("create_task", {"title": "Water the garden"})
    good = scorer.score(c, call, GOOD_REPLY)
    assert good.tool.passed and good.persona.passed and good.passed
    assert good.score == pytest.approx(0.6 * 1 + 0.4 * good.persona.total / 10)
    wrong = scorer.score(c, format_tool_call("list_tasks", {}), GOOD_REPLY)
    assert not wrong.passed and wrong.score == pytest.approx(0.4 * wrong.persona.total / 10)
    assert wrong.reason.startswith("tool: expected create_task")
    flat = scorer.score(c, call, "Task created.")
    assert not flat.passed and flat.score == pytest.approx(0.6 + 0.4 * flat.persona.total / 10)
    # no call made: the loop ends at the first turn, whose prose is the final reply
    nocall = scorer.score(c, GOOD_REPLY, None)
    assert nocall.persona.total == good.persona.total and nocall.tool.score == 0
    even = CombinedScorer(SPECS.tools, SPECS.persona, tool_weight=1, persona_weight=1).score(c, call, GOOD_REPLY)
    assert even.score == pytest.approx((1 + good.persona.total / 10) / 2)
    with pytest.raises(FteforgeError):
        CombinedScorer(SPECS.tools, SPECS.persona, tool_weight=0, persona_weight=0)


# -- persona-scorer validation ------------------------------------------------------------------------

def test_persona_scorer_validation():
    from fteforge.evaluation.scorers.validation import LABELLED, validate_persona_scorer

    assert len(LABELLED) >= 30
    report = validate_persona_scorer(SPECS.persona)
    # measured 27/35 = 0.771: the scorer is conservative (recall of "good" 0.5: natural in-persona
    # phrasing without listed signals scores < 6), never calls a neutral or violating reply good
    assert report["accuracy"] >= 0.75, json.dumps(report["confusion"])
    assert report["per_label"]["good"]["precision"] == 1.0
    assert report["per_label"]["violating"]["recall"] >= 0.9
    assert sum(sum(r.values()) for r in report["confusion"].values()) == report["n"] == len(LABELLED)


# -- style probe ------------------------------------------------------------------------------------------

def persona_examples(per_scenario: int = 3):
    import random

    from fteforge.agent import conversation
    from fteforge.data.generators.template import TemplateGenerator
    from fteforge.data.records import Example

    gen, out = TemplateGenerator(), []
    for cat, c in SPECS.persona.scenario_matrix.categories.items():
        for scen in c.scenarios:
            for i, cand in enumerate(gen.generate(SPECS.persona, SPECS.agentic, SPECS.tools, cat, scen, per_scenario,
                                                  random.Random(f"probe:{cat}:{scen}"))):
                msgs = conversation(SPECS.agentic, cand["user"], cand["call"], cand["result"], cand["reply"])
                out.append(Example(id=f"{cat}-{scen}-{i}", adapter="p", category=cat, scenario=scen,
                                   today=cand["today"], messages=msgs, train_turn=len(msgs) - 1))
    return out


def test_neutral_rewrites_keep_content():
    from fteforge.evaluation.scorers.style_probe import neutral_reply, paired_corpus

    result = {"ok": True, "task": {"id": 4, "title": "Call the bank", "priority": "medium"}}
    text = neutral_reply("add call the bank", ("create_task", {"title": "Call the bank"}), result, key="a")
    assert "Call the bank" in text or "4" in text
    listing = {"ok": True, "count": 3, "tasks": [{"title": "A"}, {"title": "B"}, {"title": "C"}]}
    assert "3" in neutral_reply("list", ("list_tasks", {}), listing, key="x") or "A, B, C" in neutral_reply(
        "list", ("list_tasks", {}), listing, key="x")
    assert neutral_reply("I'm overwhelmed", key="k") == neutral_reply("I'm overwhelmed", key="k")
    scorer = PersonaCaseScorer(SPECS.persona)
    _, neutral, _ = paired_corpus(persona_examples(1))
    for text in neutral:  # a neutral rewrite must not pass as persona
        assert scorer.scorer.score(text).total < 6, text


def test_style_probe_held_out_topics():
    from fteforge.evaluation.scorers.style_probe import paired_corpus, train_style_probe

    persona, neutral, groups = paired_corpus(persona_examples(3))
    probe, report = train_style_probe(persona, neutral, groups)
    print("style probe report:", json.dumps(report))
    assert report["n_groups"] == 7 and report["folds"] == 7 and report["n"] == len(persona) + len(neutral)
    assert report["accuracy"] > 0.8, report
    p_good, p_flat = probe.prob_persona([GOOD_REPLY, "Task 12 updated. Changed fields: due_date."])
    assert p_good > 0.5 > p_flat
    # independent check: the hand-written good vs neutral replies of the validation set (another author,
    # other phrasing); measured 21/25 = 0.84, where the rule-based scorer gets 18/25 on the same replies
    from fteforge.evaluation.scorers.validation import LABELLED

    items = [x for x in LABELLED if x.label != "violating"]
    probs = probe.prob_persona([x.reply for x in items])
    hand_acc = sum((p > 0.5) == (x.label == "good") for p, x in zip(probs, items, strict=True)) / len(items)
    print(f"style probe on hand-labelled good/neutral: {hand_acc:.3f} of {len(items)}")
    assert hand_acc >= 0.8
    with pytest.raises(FteforgeError):
        train_style_probe(persona, neutral, groups[:-1])


# -- batched generation -----------------------------------------------------------------------------------

def test_batched_equals_single_stream(tiny_llama_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from fteforge.agent import conversation, render
    from fteforge.evaluation.generation import generate_batch, generate_one

    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32).eval()
    users = ["hi", "Create a task to review the budget by Friday",
             "I have too many tasks and I don't know where to start, can you help me sort them out this week?",
             "List my tasks", "Mark task 3 done", "Delete the dentist task, and also move the slides to Monday please"]
    prompts = [render(tok, conversation(SPECS.agentic, u), SPECS.tools, "2026-11-23", add_generation_prompt=True)
               for u in users]
    assert len({len(tok(p)["input_ids"]) for p in prompts}) == len(prompts)  # all lengths differ
    single = [generate_one(model, tok, p, max_new_tokens=24) for p in prompts]
    batched = generate_batch(model, tok, prompts, max_new_tokens=24, batch_size=4)
    assert batched == single
    assert generate_batch(model, tok, prompts[:3], max_new_tokens=24, batch_size=1) == single[:3]
    assert all(isinstance(s, str) and "<|im_end|>" not in s for s in single)
