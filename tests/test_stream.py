"""The batch-1 stream decoder (fteforge.evaluation.stream): the same tokens as transformers' generate.

The tiny random Llama's words are noise, which suits this: greedy noise is sensitive to any difference
in the arithmetic, so equal completions mean the decoder computes what the model computes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fteforge.agent import conversation, render
from fteforge.evaluation.generation import generate_one, tool_call_constraint
from fteforge.evaluation.runner import LATENCY_PROMPTS, load_model, measure_latency
from fteforge.evaluation.serving import serve_as
from fteforge.evaluation.shared_prefix import PrefixCachedGenerator
from fteforge.evaluation.stream import StreamDecoder, stream_decoder, unsupported_reason
from fteforge.specs import load_spec_set

REPO = Path(__file__).resolve().parents[1]
NEW = 12


@pytest.fixture(scope="module")
def specs():
    return load_spec_set(REPO / "specs")


def _prompts(tok, specs, users=LATENCY_PROMPTS):
    return [render(tok, conversation(specs.agentic, u), specs.tools, "2026-11-23", add_generation_prompt=True)
            for u in users]


@pytest.mark.parametrize("serving", ["fp32", "int8_weights", "bf16"])
def test_stream_decodes_what_generate_decodes(tiny_llama_dir, specs, serving):
    loaded = load_model(tiny_llama_dir)
    model, tok = serve_as(loaded.model, serving), loaded.tokenizer
    prompts = _prompts(tok, specs)
    fresh = [StreamDecoder(model, tok)([p], NEW)[0] for p in prompts]
    assert fresh == [generate_one(model, tok, p, NEW) for p in prompts]
    # one decoder for all: each prompt reuses the previous one's system turn, the split the suites'
    # generator makes too (system prompt cached, the user turn fed)
    dec, gen = StreamDecoder(model, tok), PrefixCachedGenerator(model, tok, batch_size=4)
    assert [dec([p], NEW, prefix_from=prompts)[0] for p in prompts] == [gen([p], NEW, prefix_from=prompts)[0]
                                                                          for p in prompts]
    assert (dec._int8_rows is not None) == (serving == "int8_weights")
    assert dec.keys.dtype == (torch.float32 if serving != "fp32" else model.dtype)


def test_stream_follows_the_tool_call_constraint(tiny_llama_dir, specs):
    loaded = load_model(tiny_llama_dir)
    model, tok = serve_as(loaded.model, "int8_weights"), loaded.tokenizer
    constraint = tool_call_constraint(model, tok, specs.tools)
    # prompts ending in an open call: the constraint shapes every token the noise model writes
    prompts = [p + "<tool_call>" for p in _prompts(tok, specs)[:3]]
    dec = stream_decoder(model, tok, constraint)
    got = [dec([p], 24)[0] for p in prompts]
    assert got == [generate_one(model, tok, p, 24, constraint=constraint) for p in prompts]
    assert got != [generate_one(model, tok, p, 24) for p in prompts]  # the constraint did change something


def test_fused_int8_projections_are_the_separate_ones_bitwise():
    from fteforge.evaluation.serving import int8_linear

    torch.manual_seed(0)
    linears = [torch.nn.Linear(96, n, bias=False) for n in (96, 32, 32)]
    q8 = [int8_linear(lin) for lin in linears]
    x = torch.randn(1, 96).to(torch.bfloat16)
    separate = torch.cat([m(x) for m in q8], -1)
    fused = torch.ops.aten._weight_int8pack_mm(x, torch.cat([m.weight_int8 for m in q8]),
                                               torch.cat([m.scale for m in q8]))
    assert torch.equal(separate, fused)


def test_cache_reuse_and_growth_leave_the_tokens_alone(tiny_llama_dir, specs):
    loaded = load_model(tiny_llama_dir)
    model, tok = serve_as(loaded.model, "int8_weights"), loaded.tokenizer
    first, second = _prompts(tok, specs, LATENCY_PROMPTS[:2])
    dec = StreamDecoder(model, tok, capacity=16)  # grows several times on the first prompt
    a = dec([first], NEW)[0]
    assert dec.capacity >= len(dec._tokens) > 16
    # a follow-up turn: the first exchange, then more; the whole earlier conversation is reused
    follow = first + a + "<|im_end|>\n<|im_start|>user\nAnd then?<|im_end|>\n<|im_start|>assistant\n"
    n_before = len(dec._tokens)
    b = dec([follow], NEW)[0]
    assert dec._reuse(tok(follow, add_special_tokens=False)["input_ids"], 10**6) > n_before // 2
    assert b == StreamDecoder(model, tok)([follow], NEW)[0]
    # prefix_from caps the reuse at what the prompts share: the second prompt's user turn is fed anew
    dec([second], NEW)
    c = dec([second], NEW, prefix_from=[first, second])[0]
    assert c == StreamDecoder(model, tok)([second], NEW, prefix_from=[first, second])[0]
    assert dec.last_new_tokens and dec.last_new_tokens[0] <= NEW


def test_latency_measured_with_the_stream_decoder_records_it(tiny_llama_dir, specs):
    loaded = load_model(tiny_llama_dir)
    model, tok = serve_as(loaded.model, "int8_weights"), loaded.tokenizer
    reference = PrefixCachedGenerator(model, tok, batch_size=4)
    out = measure_latency(StreamDecoder(model, tok), tok, specs, runs=6, warmup=1, max_new_tokens=4,
                          reference=reference)
    assert out["latency.decoder"] == "stream"
    assert out["latency.same_text"] == 1.0
    assert out["latency.p95_ms"] > 0 and out["latency.mean_new_tokens"] <= 4


def test_unsupported_models_fall_back_to_generate(tiny_llama_dir, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    cfg = json.loads((tiny_llama_dir / "config.json").read_text())
    biased = AutoModelForCausalLM.from_config(type(load_model(tiny_llama_dir).model.config)(
        **{**cfg, "attention_bias": True}))
    assert "bias" in unsupported_reason(biased)
    assert stream_decoder(biased, None) is None
    loaded = load_model(tiny_llama_dir)
    lora = get_peft_model(loaded.model, LoraConfig(r=2, target_modules=["q_proj"])).get_base_model()
    assert "merge adapters" in unsupported_reason(lora)
    with pytest.raises(ValueError, match="does not support"):
        StreamDecoder(lora, loaded.tokenizer)


def test_chat_feeds_only_the_new_messages(tiny_llama_dir, specs, tmp_path):
    from fteforge.chat import ChatSession

    loaded = load_model(tiny_llama_dir)
    model, tok = serve_as(loaded.model, "int8_weights"), loaded.tokenizer
    session = ChatSession(tok, specs, tmp_path / "tasks.db", today="2026-11-23", model=model, max_new_tokens=8)
    assert isinstance(session.stream, StreamDecoder)
    session.send("Hi there!")
    earlier = len(session.stream._tokens)
    fed: list[int] = []
    forward = session.stream._forward
    session.stream._forward = lambda ids: (fed.append(len(ids)), forward(ids))[1]
    session.send("What can you do?")
    # the second turn's prompt holds the whole first exchange; only the messages after it are fed
    assert earlier > 100 and 0 < fed[0] < earlier // 2


def test_int8_kernel_and_vocabulary_head_compute_a_row_the_same_in_any_company():
    """What speculative steps rest on (StreamDecoder._step_int8): a row's bytes do not depend on the rows
    fed with it, for torch's int8 kernel and for a bf16 vocabulary head of the real model's shape."""
    from fteforge.evaluation.serving import int8_linear

    torch.manual_seed(0)
    q8 = int8_linear(torch.nn.Linear(576, 960, bias=False))
    head = torch.nn.Linear(576, 49152, bias=False).to(torch.bfloat16)
    x = torch.randn(5, 576).to(torch.bfloat16)
    mm = torch.ops.aten._weight_int8pack_mm
    with torch.inference_mode():
        alone = torch.cat([mm(x[i:i + 1], q8.weight_int8, q8.scale) for i in range(5)])
        heads = torch.cat([head(x[i:i + 1]) for i in range(5)])
        for rows in range(2, 6):
            assert torch.equal(mm(x[:rows], q8.weight_int8, q8.scale), alone[:rows])
            assert torch.equal(head(x[:rows]), heads[:rows])
