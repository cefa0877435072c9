"""Schema-constrained tool calls: the grammar against the shipped tools spec, the processor in real generate."""

from __future__ import annotations

import json

import jsonschema
import pytest

from fteforge import paths
from fteforge.specs import ToolsSpec, load_spec_set
from fteforge.toolformat import CALL_CLOSE, CALL_OPEN, format_tool_call, parse_reply
from fteforge.toolgrammar import CallGrammar, constraint_factory, open_call

SPECS = load_spec_set(paths.SPECS)
GRAMMAR = CallGrammar(SPECS.tools)

VALID_CALLS = [
    ("create_task", {"title": "Call mom", "priority": "high", "due_date": "2026-11-30", "tags": ["family", "phone"]}),
    ("create_task", {"title": 'Read "Deep Work" \\ notes\nnow', "recurrence": "weekly", "category": "reading"}),
    ("list_tasks", {}),
    ("list_tasks", {"status": "all", "due_after": "2026-02-28", "due_before": "2026-03-01", "query": "report"}),
    ("complete_task", {"task_id": "3", "notes": "Shared the deck with Ana"}),
    ("update_task", {"task_id": "Review the budget", "tags": []}),
    ("delete_task", {"task_id": "12"}),
]


def _body(name, args):
    return format_tool_call(name, args)[len(CALL_OPEN):]


@pytest.mark.parametrize(("name", "args"), VALID_CALLS)
def test_every_prefix_of_a_valid_call_is_viable(name, args):
    body = _body(name, args)
    jsonschema.validate(args, SPECS.tools.get(name).parameters)
    assert all(GRAMMAR.viable(body[:n]) for n in range(len(body) + 1))


@pytest.mark.parametrize(("text", "why"), [
    ('{"name": "create_task", "arguments": {"title": "a", "bucket', "a key the tool does not have"),
    ('{"name": "list_tasks", "arguments": {"tags', "create_task's key on list_tasks"),
    ('{"name": "create_task", "arguments": {"title": "a", "title', "a key twice"),
    ('{"name": "update_task", "arguments": {"task_id": "2"}', "update_task needs a field to change"),
    ('{"name": "create_task", "arguments": {"priority": "high"}', "required title missing"),
    ('{"name": "create_task", "arguments": {"title": ""', "minLength 1"),
    ('{"name": "create_task", "arguments": {"title": "a", "priority": "hx', "not an enum value"),
    ('{"name": "create_task", "arguments": {"title": "a", "priority": "hig"', "an enum value cut short"),
    ('{"name": "list_tasks", "arguments": {"due_before": "2026-13', "month 13"),
    ('{"name": "list_tasks", "arguments": {"due_before": "2026-02-30"', "no such day"),
    ('{"name": "list_tasks", "arguments": {"due_before": "next month"', "not a date phrase"),
    ('{"name": "list_tasks", "arguments": {"due_before": "next friday!', "not a date phrase"),
    ('{"name": "list_tasks", "arguments": {"due_before": "inactive', "no phrase starts with this word"),
    ('{"name": "list_tasks", "arguments": {"status": "\\u0061ll"', "an escape in an enum value"),
    ('{"name": "create_task", "arguments": {"title": "a", "tags": ["x", ""', "an empty tag"),
    ('{"name": "create_task", "arguments": {"title": "a"}}</tools', "not the closing tag"),
    ('{"name": "create_task", "arguments": {"title": "a"}} ', "text between the call and its closing tag"),
    ('{"name":"create_task"', "separators other than the trained format's"),
    ('{"arguments": {}', "arguments before the name"),
])
def test_invalid_texts_are_not_viable(text, why):
    assert not GRAMMAR.viable(text), why


def test_an_unknown_tool_is_left_as_written():
    """A misread request must stay a refused call, never become a real one (e.g. delete_task)."""
    assert GRAMMAR.viable('{"name": "divide", "arguments": {"number": "250"}}')
    assert parse_reply(CALL_OPEN + '{"name": "divide", "arguments": {}}' + CALL_CLOSE).name == "divide"


def test_open_call_finds_the_unclosed_call_only():
    assert open_call("Sure! " + CALL_OPEN + '{"na') == '{"na'
    assert open_call(CALL_OPEN + "{}" + CALL_CLOSE + " done") is None
    assert open_call("no call here") is None


def test_a_schema_the_grammar_cannot_follow_names_the_tool_and_field():
    tools = ToolsSpec.model_validate({"kind": "ToolsSpec", "name": "t", "tools": [
        {"name": "nested", "description": "d", "parameters": {"type": "object", "properties": {
            "filter": {"type": "object"}}}}]})
    with pytest.raises(ValueError, match=r"nested\.filter.*'object'.*constrain_tool_calls: false"):
        CallGrammar(tools)


# -- the logits processor in real generation (tiny random Llama, SmolLM2 tokenizer) ----------------------

@pytest.fixture(scope="module")
def tiny_model(tiny_llama_dir):
    from fteforge.evaluation.runner import load_model

    return load_model(tiny_llama_dir)


def _prompts(tok, users, open_tag):
    from fteforge.agent import conversation, render

    return [render(tok, conversation(SPECS.agentic, u), SPECS.tools, "2026-11-23", add_generation_prompt=True)
            + (CALL_OPEN if open_tag else "") for u in users]


USERS = ["Add a task to call mom tomorrow", "What's due this week?", "Mark the report as done",
         "Move the dentist appointment to Friday and make it urgent"]


def test_generation_inside_an_open_call_stays_viable(tiny_model):
    """A random model writes garbage after <tool_call>; constrained, every row stays a valid call prefix."""
    from fteforge.evaluation.generation import generate_one, stop_token_ids
    from fteforge.evaluation.shared_prefix import PrefixCachedGenerator

    tok = tiny_model.tokenizer
    prompts = _prompts(tok, USERS, open_tag=True)
    made = []
    factory = constraint_factory(tok, SPECS.tools, stop_token_ids(tiny_model.model, tok))

    def constraint():
        made.append(factory())
        return made[-1]

    free = [generate_one(tiny_model.model, tok, p, 40) for p in prompts]
    assert not all(GRAMMAR.viable(f) for f in free)  # the test means something: unconstrained goes wrong
    one = [generate_one(tiny_model.model, tok, p, 40, constraint=constraint) for p in prompts]
    assert all(GRAMMAR.viable(o) for o in one), one
    assert all(o.startswith('{"name": "') for o in one)
    assert sum(c.steps for c in made) >= 40 * len(prompts) - len(prompts) and all(c.abandoned == 0 for c in made)
    batched = PrefixCachedGenerator(tiny_model.model, tok, batch_size=3, constraint=factory)(prompts, 40)
    assert batched == one


def test_a_finished_call_parses_and_passes_its_schema(tiny_model):
    """Given enough tokens, a constrained call closes into one the Task API would accept."""
    from fteforge.evaluation.generation import generate_one, stop_token_ids

    tok = tiny_model.tokenizer
    factory = constraint_factory(tok, SPECS.tools, stop_token_ids(tiny_model.model, tok))
    # the random model's own choices are long strings; start it on a short call that only needs closing
    prompt = _prompts(tok, ["Delete task 4"], open_tag=True)[0] + '{"name": "delete_task", "arguments": {"task_id": "4'
    out = generate_one(tiny_model.model, tok, prompt, 60, constraint=factory)
    body = '{"name": "delete_task", "arguments": {"task_id": "4' + out
    assert GRAMMAR.viable(body)
    if CALL_CLOSE in body:  # closed: it must be a schema-valid call
        parsed = parse_reply(CALL_OPEN + body)
        jsonschema.validate(parsed.arguments, SPECS.tools.get("delete_task").parameters)


def test_text_outside_a_call_is_not_constrained(tiny_model):
    from fteforge.evaluation.generation import generate_one, stop_token_ids

    tok = tiny_model.tokenizer
    factory = constraint_factory(tok, SPECS.tools, stop_token_ids(tiny_model.model, tok))
    for p in _prompts(tok, USERS[:2], open_tag=False):
        free = generate_one(tiny_model.model, tok, p, 24)
        assert CALL_OPEN not in free
        assert generate_one(tiny_model.model, tok, p, 24, constraint=factory) == free


def test_constrained_decoding_is_an_evaluate_param():
    from fteforge.params import EvaluateParams, load_params

    assert load_params("evaluate", EvaluateParams).constrain_tool_calls is True
    assert json.loads(EvaluateParams(constrain_tool_calls=False).model_dump_json())["constrain_tool_calls"] is False


def test_chat_decodes_tool_calls_as_the_release_was_evaluated(tmp_path):
    from fteforge.chat import resolve_tool_calls
    from fteforge.errors import FteforgeError

    assert resolve_tool_calls(tmp_path, "auto") is True  # no results: constrained
    (tmp_path / "EVALUATION_RESULTS.json").write_text(json.dumps({"system": {"tool_calls": "free"}}))
    assert resolve_tool_calls(tmp_path, "auto") is False
    (tmp_path / "EVALUATION_RESULTS.json").write_text(json.dumps({"system": {"tool_calls": "schema-constrained"}}))
    assert resolve_tool_calls(tmp_path, "auto") is True
    assert resolve_tool_calls(tmp_path, "free") is False
    (tmp_path / "EVALUATION_RESULTS.json").write_text(json.dumps({"system": {}}))  # before constraints existed
    assert resolve_tool_calls(tmp_path, "auto") is False
    (tmp_path / "EVALUATION_RESULTS.json").write_text("{not json")
    with pytest.raises(FteforgeError, match=r"EVALUATION_RESULTS.json.*--tool-calls constrained or free"):
        resolve_tool_calls(tmp_path, "auto")


def test_the_ranked_search_picks_what_a_scan_of_the_whole_vocabulary_picks(smollm2_tokenizer_dir):
    """The first-character shortcut must not change the choice: same token as the brute-force scan."""
    import torch
    from transformers import AutoTokenizer

    from fteforge.toolgrammar import ToolCallConstraint, Vocabulary

    tok = AutoTokenizer.from_pretrained(smollm2_tokenizer_dir)
    vocab = Vocabulary(tok)
    processor = ToolCallConstraint(tok, GRAMMAR, vocab, stops=[tok.eos_token_id], top_k=4)
    bodies = ['{"name": "create_task", "arguments": {"title": "a", "', '{"name": "list_tasks", "arguments": {"due_before": "2026-1',
              '{"name": "update_task", "arguments": {"task_id": "2"', '{"name": "list_tasks", "arguments": {"status": "',
              '{"name": "create_task", "arguments": {"title": "Call mom"}', '{"name": "delete_task", "arguments": {"task_id": "4"}}']
    gen = torch.Generator().manual_seed(0)
    for body in bodies:
        scores = torch.randn(len(tok), generator=gen)
        expected = next(t for t in torch.argsort(scores, descending=True).tolist()
                        if GRAMMAR.viable(body + vocab.pieces[t]))
        assert processor._best(body, scores) == expected, body
    assert processor.deep > 0  # top 4 of random scores rarely fit: the ranked search did the work


def test_an_assistant_turn_never_starts_a_tool_response(smollm2_tokenizer_dir):
    """Outside a call, the token that would write `<tool_r` (a made-up tool result) gives way to the next best."""
    import torch
    from transformers import AutoTokenizer

    from fteforge.toolgrammar import TOOL_RESPONSE_OPEN, ToolCallConstraint, Vocabulary

    tok = AutoTokenizer.from_pretrained(smollm2_tokenizer_dir)
    processor = ToolCallConstraint(tok, GRAMMAR, Vocabulary(tok), stops=[tok.eos_token_id])
    prompt = tok("<|im_start|>assistant\n", add_special_tokens=False)["input_ids"]
    opened = tok("<tool_", add_special_tokens=False)["input_ids"]
    response, call = (tok(w, add_special_tokens=False)["input_ids"][0] for w in ("response", "call"))
    assert tok.decode(opened + [response]) == TOOL_RESPONSE_OPEN[:-1]  # the SmolLM2 pieces this test assumes

    def step(generated, ranking):
        processor.start = None  # a fresh generate call: prompt width first
        processor(torch.tensor([prompt]), torch.zeros(1, len(tok)))
        scores = torch.zeros(1, len(tok))
        for rank, t in enumerate(ranking):
            scores[0, t] = 10.0 - rank
        out = processor(torch.tensor([prompt + generated]), scores)
        return int(out[0].argmax())

    assert step(opened, [response, call]) == call and processor.refused == 1
    assert step(opened, [call, response]) == call and processor.refused == 1  # a real call is left alone
    lt = tok("<", add_special_tokens=False)["input_ids"][0]
    great = tok("Great!", add_special_tokens=False)["input_ids"]
    assert step(great, [lt, call]) == lt  # a bare "<" is no tool result yet


def test_a_reply_to_a_tool_result_writes_no_tool_markup(smollm2_tokenizer_dir):
    """After a tool result the turn is the reply: even a leading `<` gives way, so no second call starts."""
    import torch
    from transformers import AutoTokenizer

    from fteforge.toolgrammar import ToolCallConstraint, Vocabulary

    tok = AutoTokenizer.from_pretrained(smollm2_tokenizer_dir)
    processor = ToolCallConstraint(tok, GRAMMAR, Vocabulary(tok), stops=[tok.eos_token_id])
    prompt = tok('<|im_start|>tool\n<tool_response>{"ok": true}</tool_response><|im_end|>\n<|im_start|>assistant\n',
                 add_special_tokens=False)["input_ids"]
    lt, great = (tok(w, add_special_tokens=False)["input_ids"][0] for w in ("<", "Great"))
    processor(torch.tensor([prompt]), torch.zeros(1, len(tok)))
    scores = torch.zeros(1, len(tok))
    scores[0, lt], scores[0, great] = 10.0, 9.0
    assert int(processor(torch.tensor([prompt]), scores)[0].argmax()) == great and processor.refused == 1
    # a first turn (the prompt ends with the user's message) may open a call with the same "<"
    first = ToolCallConstraint(tok, GRAMMAR, Vocabulary(tok), stops=[tok.eos_token_id])
    user = tok("<|im_start|>user\nadd milk<|im_end|>\n<|im_start|>assistant\n", add_special_tokens=False)["input_ids"]
    first(torch.tensor([user]), torch.zeros(1, len(tok)))
    scores = torch.zeros(1, len(tok))
    scores[0, lt], scores[0, great] = 10.0, 9.0
    assert int(first(torch.tensor([user]), scores)[0].argmax()) == lt and first.refused == 0
