"""Serving precisions (fteforge.evaluation.serving): int8 weights, bf16, and where the choice is recorded.

The tiny random Llama's words are noise, so these tests check the conversion's numbers against the fp32
model and that evaluation, release samples and chat agree on the precision, not any score.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fteforge.chat import resolve_serving
from fteforge.evaluation.serving import (
    DEFAULT_SERVING,
    int8_linear,
    serve_as,
    serving_in,
)
from fteforge.evaluation.serving import (
    resolve_serving as resolve_param,
)
from fteforge.params import EvaluateParams

REPO = Path(__file__).resolve().parents[1]


def _load(tiny_llama_dir):
    from fteforge.evaluation.runner import load_model

    return load_model(tiny_llama_dir)


def test_int8_linear_is_the_dequantized_matmul():
    torch.manual_seed(0)
    linear = torch.nn.Linear(96, 40, bias=True)
    q = int8_linear(linear)
    assert q.weight_int8.dtype == torch.int8 and q.weight_int8.abs().max() == 127  # absmax per row hits 127
    w = q.weight_int8.float() * q.scale.float()[:, None]  # what the int8 weight stands for
    # a decode row goes through the int8 kernel, a prefill's rows through the dequantized bf16 weights
    for shape in ((1, 1, 96), (3, 1, 96), (3, 5, 96)):
        x = torch.randn(*shape)
        ref = x.bfloat16().float() @ w.T + q.bias.float()
        got = q(x)
        assert got.shape == (*shape[:-1], 40) and got.dtype == torch.bfloat16
        assert torch.allclose(got.float(), ref, rtol=2e-2, atol=2e-2)
        # and close to the fp32 layer it replaces: per-row int8 costs ~1% here
        full = linear(x)
        assert ((got.float() - full).norm() / full.norm()) < 0.03


def test_int8_kernel_and_dequantized_path_agree_row_by_row():
    """The same rows through both paths: one model whatever the batch, up to bf16 rounding."""
    from fteforge.evaluation.serving import INT8_KERNEL_MAX_ROWS

    torch.manual_seed(1)
    q = int8_linear(torch.nn.Linear(64, 48, bias=False))
    x = torch.randn(INT8_KERNEL_MAX_ROWS + 3, 64)
    many = q(x).float()  # one call past the threshold: the bf16 matmul
    one_by_one = torch.cat([q(row[None]) for row in x]).float()  # the int8 kernel
    assert torch.allclose(many, one_by_one, rtol=1e-2, atol=1e-2), (many - one_by_one).abs().max()


def test_int8_weights_quantizes_the_decoder_and_keeps_the_head(tiny_llama_dir):
    fp32 = _load(tiny_llama_dir)
    served = serve_as(_load(tiny_llama_dir).model, "int8_weights")
    decoder_linears = [m for m in served.get_decoder().modules() if isinstance(m, torch.nn.Linear)]
    assert decoder_linears == []  # q/k/v/o and the MLP of every layer
    assert sum(1 for m in served.modules() if type(m).__name__ == "Int8WeightLinear") == 2 * 7
    assert isinstance(served.lm_head, torch.nn.Linear) and served.lm_head.weight.dtype == torch.bfloat16
    assert served.config._attn_implementation == "fteforge_gqa_sdpa_fp32"
    ids = fp32.tokenizer("Add a task to call the dentist tomorrow.", return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        ref = fp32.model(input_ids=ids).logits[0].float()
        got = served(input_ids=ids).logits[0].float()
    cos = torch.nn.functional.cosine_similarity(ref, got, dim=-1)
    assert cos.min() > 0.99, cos


def test_served_int8_batches_equal_single_stream(tiny_llama_dir):
    """The evaluation's batched generator and chat's single stream decode the same tokens in int8 too."""
    from fteforge.agent import conversation, render
    from fteforge.evaluation.generation import generate_one
    from fteforge.evaluation.runner import LATENCY_PROMPTS
    from fteforge.evaluation.shared_prefix import PrefixCachedGenerator
    from fteforge.specs import load_spec_set

    specs = load_spec_set(REPO / "specs")
    loaded = _load(tiny_llama_dir)
    model = serve_as(loaded.model, "int8_weights")
    tok = loaded.tokenizer
    prompts = [render(tok, conversation(specs.agentic, u), specs.tools, "2026-11-23", add_generation_prompt=True)
               for u in LATENCY_PROMPTS[:4]]
    gen = PrefixCachedGenerator(model, tok, batch_size=4)
    assert gen.cache_dtype == torch.float32  # what the fp32 attention reads, so never upcast again
    batched = gen(prompts, 8)
    assert batched == [generate_one(model, tok, p, 8) for p in prompts]
    assert all(layer.keys.dtype == torch.float32 for c in gen._caches.values() for layer in c.layers[:1]
               if type(layer).__name__ == "BufferedLayer")


def test_bf16_attention_in_fp32_is_no_worse_than_stock_bf16(tiny_llama_dir):
    """Upcasting q/k/v loses nothing: the served bf16 model is at least as close to fp32 as a plain cast."""
    fp32 = _load(tiny_llama_dir).model
    stock = _load(tiny_llama_dir).model.to(torch.bfloat16)
    served = serve_as(_load(tiny_llama_dir).model, "bf16")
    assert next(served.parameters()).dtype == torch.bfloat16
    ids = torch.tensor([list(range(200, 260))])
    with torch.inference_mode():
        ref = fp32(input_ids=ids).logits
        err = {name: float((m(input_ids=ids).logits.float() - ref).norm() / ref.norm())
               for name, m in (("stock", stock), ("served", served))}
    assert err["served"] < 0.05 and err["served"] <= err["stock"] * 1.05, err


def test_fp32_serving_leaves_the_model_alone(tiny_llama_dir):
    model = _load(tiny_llama_dir).model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert serve_as(model, "fp32") is model
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_serving_choices_resolve_and_bad_ones_fail(tmp_path):
    assert resolve_param("auto", "cpu") == "int8_weights" and resolve_param("auto", "cuda") == "bf16"
    assert resolve_param("bf16", "cpu") == "bf16"
    with pytest.raises(ValueError, match="int4.*fp32, bf16, int8_weights"):
        resolve_param("int4", "cpu")
    with pytest.raises(ValueError, match="int4"):
        serve_as(torch.nn.Linear(2, 2), "int4")
    with pytest.raises(Exception, match="serving"):
        EvaluateParams(serving="int4")
    assert EvaluateParams().serving == "auto"
    # results files from before the field existed were measured in fp32
    assert serving_in({"system": {"device": "cpu"}}) == DEFAULT_SERVING == "fp32"
    assert serving_in({"system": {"serving": "int8_weights"}}) == "int8_weights"


def test_chat_serves_as_the_release_was_evaluated(tmp_path):
    assert resolve_serving(tmp_path, "auto") == "fp32"  # no EVALUATION_RESULTS.json
    (tmp_path / "EVALUATION_RESULTS.json").write_text(json.dumps({"system": {"serving": "int8_weights"}}))
    assert resolve_serving(tmp_path, "auto") == "int8_weights"
    assert resolve_serving(tmp_path, "bf16") == "bf16"
    (tmp_path / "EVALUATION_RESULTS.json").write_text("{not json")
    with pytest.raises(Exception, match="EVALUATION_RESULTS.json.*--serving"):
        resolve_serving(tmp_path, "auto")
