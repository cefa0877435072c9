"""Speculative greedy decoding: the n-gram draft table (fteforge.evaluation.draft) and the stream decoder
checking its guesses. Whatever the guesses, the text must be the model's own greedy text; only the
number of forward passes may move. The tiny random Llama's greedy text is noise, which any difference
in the arithmetic would change.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from fteforge.agent import conversation, render
from fteforge.data.draft_corpus import training_rows
from fteforge.data.records import Example
from fteforge.errors import FteforgeError
from fteforge.evaluation.draft import NgramDraft, vocab_digest
from fteforge.evaluation.generation import generate_one, tool_call_constraint
from fteforge.evaluation.runner import LATENCY_PROMPTS, load_model, measure_latency
from fteforge.evaluation.serving import serve_as
from fteforge.evaluation.shared_prefix import PrefixCachedGenerator
from fteforge.evaluation.stream import StreamDecoder
from fteforge.specs import load_spec_set

REPO = Path(__file__).resolve().parents[1]
SPECS = load_spec_set(REPO / "specs")
NEW = 16


def _prompts(tok, users=LATENCY_PROMPTS):
    return [render(tok, conversation(SPECS.agentic, u), SPECS.tools, "2026-11-23", add_generation_prompt=True)
            for u in users]


@pytest.fixture(scope="module")
def int8_model(tiny_llama_dir):
    loaded = load_model(tiny_llama_dir)
    return serve_as(loaded.model, "int8_weights"), loaded.tokenizer


def _oracle(dec: StreamDecoder, tok, prompts: list[str], new: int) -> NgramDraft:
    """A table of the model's own greedy continuations: guesses that are mostly right."""
    rows = []
    for p in prompts:
        ids = tok(p, add_special_tokens=False)["input_ids"]
        rows.append(ids[-4:] + dec.decode(ids, new))
    return NgramDraft.build(rows, 4, vocab_digest(tok))


def test_table_guesses_from_the_longest_known_context():
    draft = NgramDraft.build([[1, 2, 3, 4], [9, 2, 3, 5], [7, 3, 5]], max_order=3, vocab="v")
    # after (2, 3) both 4 and 5 were seen once: the first seen wins; (1, 2, 3) knows only 4
    assert draft.propose([2, 3], 1) == [4]
    assert draft.propose([9, 2, 3], 1) == [5]
    # a chain: each guess becomes context for the next
    assert draft.propose([1, 2], 2) == [3, 4]
    assert draft.propose([1, 2], 0) == []
    # no table entry: what followed the last three tokens earlier in the conversation
    assert draft.propose([40, 41, 42, 43, 40, 41, 42], 2) == [43, 40]
    assert draft.propose([40, 41], 2) == []
    # min_order: no guess from a shorter known context
    strict = NgramDraft.build([[1, 2, 3, 4], [9, 2, 3, 5], [7, 3, 5]], max_order=3, vocab="v", min_order=2)
    assert strict.propose([1, 2], 2) == [3, 4] and strict.propose([8, 3], 2) == [] and strict.propose([3], 1) == []


def test_draft_params_refuse_a_min_order_above_the_max(tmp_path):
    from fteforge.errors import ParamsError
    from fteforge.params import DraftParams, load_params

    (tmp_path / "params.yaml").write_text("draft:\n  max_order: 2\n  min_order: 3\n")
    with pytest.raises(ParamsError, match="min_order 3 is above max_order 2"):
        load_params("draft", DraftParams, tmp_path / "params.yaml")


def test_table_round_trips_and_refuses_bad_files(tmp_path, int8_model):
    _, tok = int8_model
    draft = NgramDraft.build([[1, 2, 3], [2, 3, 4]], 2, vocab_digest(tok))
    draft.save(tmp_path / "t.json")
    back = NgramDraft.load(tmp_path / "t.json", tok)
    assert back.next == draft.next and back.max_order == 2 and back.corpus_tokens == 6 and back.min_order == 1
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(FteforgeError, match=r"bad\.json: not a draft table.*dvc repro build_draft"):
        NgramDraft.load(tmp_path / "bad.json")
    other = json.loads((tmp_path / "t.json").read_text()) | {"vocab_sha256": "0" * 64}
    (tmp_path / "other.json").write_text(json.dumps(other))
    with pytest.raises(FteforgeError, match=r"other\.json: the draft table was built for another tokenizer"):
        NgramDraft.load(tmp_path / "other.json", tok)


def test_training_rows_hold_the_learned_turns_after_the_assistant_header(int8_model):
    _, tok = int8_model
    msgs = conversation(SPECS.agentic, "Add errand 1", call=("create_task", {"title": "errand 1"}),
                        result={"ok": True, "task": {"id": 1, "title": "errand 1"}}, reply="Done! What's next?")
    ex = Example(id="p0", adapter="tiny", category="create", scenario="s", today="2026-11-23", messages=msgs,
                 train_turn=4)
    rows = list(training_rows([ex], tok, SPECS.tools, context=3))
    assert [tok.decode(r[3:]) for r in rows] == [
        '<tool_call>{"name": "create_task", "arguments": {"title": "errand 1"}}</tool_call><|im_end|>',
        "Done! What's next?<|im_end|>"]
    assert all(tok.decode(r[:3]).endswith("assistant\n") for r in rows)


@pytest.mark.parametrize("guesses", ["oracle", "random"])
def test_speculative_steps_decode_the_greedy_text(int8_model, guesses):
    model, tok = int8_model
    prompts = _prompts(tok)
    plain = StreamDecoder(model, tok)
    expected = [plain([p], NEW, prefix_from=prompts)[0] for p in prompts]
    assert plain.last_forwards == [plain.last_new_tokens[0]]  # one token per model call
    if guesses == "oracle":
        draft = _oracle(StreamDecoder(model, tok), tok, prompts, NEW)
    else:
        rng = random.Random(0)
        draft = NgramDraft({(t,): rng.randrange(len(tok)) for t in range(len(tok))}, 1, vocab_digest(tok))
    dec = StreamDecoder(model, tok, draft=draft, draft_tokens=4)
    assert dec.speculative
    forwards = []
    for p, want in zip(prompts, expected, strict=True):
        assert dec([p], NEW, prefix_from=prompts)[0] == want
        forwards += dec.last_forwards
        # the cache holds exactly the prompt and the tokens fed: no rejected guess stays in it
        ids = tok(p, add_special_tokens=False)["input_ids"]
        assert dec._tokens[:len(ids)] == ids and len(dec._tokens) == len(ids) + dec.last_new_tokens[0] - 1
    if guesses == "oracle":
        assert sum(forwards) < 0.6 * NEW * len(prompts)
    else:
        assert sum(forwards) >= 0.9 * NEW * len(prompts)  # a wrong guess costs its step nothing in tokens


def test_speculative_steps_follow_the_tool_call_constraint(int8_model):
    model, tok = int8_model
    constraint = tool_call_constraint(model, tok, SPECS.tools)
    prompts = [p + "<tool_call>" for p in _prompts(tok)[:3]]
    draft = _oracle(StreamDecoder(model, tok, constraint), tok, prompts, 24)
    dec = StreamDecoder(model, tok, constraint, draft=draft, draft_tokens=3)
    got = [dec([p], 24)[0] for p in prompts]
    assert got == [generate_one(model, tok, p, 24, constraint=constraint) for p in prompts]
    assert sum(dec.last_forwards) < 24


def test_only_the_int8_path_guesses(tiny_llama_dir):
    loaded = load_model(tiny_llama_dir)
    model, tok = serve_as(loaded.model, "fp32"), loaded.tokenizer
    draft = NgramDraft.build([[1, 2, 3]], 2, vocab_digest(tok))
    dec = StreamDecoder(model, tok, draft=draft, draft_tokens=3)
    assert not dec.speculative  # fp32 rows round differently in a many-row matmul: no guesses
    p = _prompts(tok)[0]
    assert dec([p], 8)[0] == generate_one(model, tok, p, 8)
    assert StreamDecoder(*_int8(tiny_llama_dir), draft=draft, draft_tokens=0).speculative is False


def _int8(tiny_llama_dir):
    loaded = load_model(tiny_llama_dir)
    return serve_as(loaded.model, "int8_weights"), loaded.tokenizer


def test_latency_records_the_guesses(int8_model):
    model, tok = int8_model
    draft = _oracle(StreamDecoder(model, tok), tok, _prompts(tok), 4)
    out = measure_latency(StreamDecoder(model, tok, draft=draft, draft_tokens=3), tok, SPECS, runs=6, warmup=1,
                          max_new_tokens=4, reference=PrefixCachedGenerator(model, tok, batch_size=4))
    assert out["latency.same_text"] == 1.0
    assert out["latency.draft_tokens"] == 3 and out["latency.tokens_per_forward"] > 1.0
    plain = measure_latency(StreamDecoder(model, tok), tok, SPECS, runs=6, warmup=1, max_new_tokens=4)
    assert plain["latency.draft_tokens"] == 0 and plain["latency.tokens_per_forward"] == 1.0


def test_a_cache_that_grows_inside_a_checked_step_keeps_the_text(int8_model):
    model, tok = int8_model
    prompts = _prompts(tok)[:2]
    draft = _oracle(StreamDecoder(model, tok), tok, prompts, NEW)
    # capacity 16: the prompt's prefill and then checked steps of several rows cross it again and again
    small = StreamDecoder(model, tok, capacity=16, draft=draft, draft_tokens=4)
    got = [small([p], NEW)[0] for p in prompts]
    assert got == [StreamDecoder(model, tok)([p], NEW)[0] for p in prompts]
    assert small.capacity >= len(small._tokens) > 16
