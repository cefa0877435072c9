"""How a model is served for evaluation, release samples and `fteforge chat`: its inference precision.

Why it matters on CPU: decoding one token at batch 1 reads every weight once, so a 2-core CPU is bound
by memory bandwidth. Measured on SmolLM2-135M (2 threads): 88% of a 37 ms fp32 decode step is
`aten::mm` at ~16 GB/s; the same 60 Linear shapes take 13.3 ms in fp32, 6.3 ms in bf16 and 1.8 ms as
int8 weights with bf16 activations (`aten::_weight_int8pack_mm`). The precisions:

* ``fp32``: the weights as trained and merged.
* ``bf16``: weights and activations in bf16.
* ``int8_weights``: bf16, and every Linear of the decoder layers holds its weight as int8 per output
  channel (absmax / 127) with a bf16 scale. torch's int8 kernel reads a weight once per input row, so
  it only pays at a row or a few: decode at batch 1. For more rows (a prefill, a batched decode step)
  the same quantized weights, dequantized once to bf16, go through the bf16 matmul instead. Measured
  over SmolLM2-135M's 210 decoder Linear shapes, 2 threads: 1 row 8.5 ms int8 / 18.2 ms bf16, 6 rows
  18.2 / 18.2, 32 rows 50.6 / 20.4 (bench/int8_kernel_rows.py). Activations are never rounded to int8: torch's dynamic
  quantization does that per token, and on 135M it lost most of both skills (persona 8.86 -> 5.25,
  bench/results/serving_precision.json). The vocabulary projection (tied to the embedding) stays bf16:
  quantized too, it cost the persona suite its min-trait gate on 1.11.0's v2_ties
  (bench/results/serving_precision_v2_ties.json, variant int8_weights_with_head).

In bf16 and int8_weights the attention itself runs in fp32: torch's CPU flash kernel is ~4x slower in
bf16 for a single query row (193 vs 53 us per layer call), and upcasting q/k/v loses nothing.
The conversion is deterministic, so a release's weights stay as merged and anyone can serve them the
way their evaluation did (EVALUATION_RESULTS.json `system.serving`).
"""

from __future__ import annotations

from functools import cache
from typing import Any

SERVING_PRECISIONS = ("fp32", "bf16", "int8_weights")
# Older results files carry no `system.serving`: they were measured in fp32.
DEFAULT_SERVING = "fp32"
_ATTENTION = "fteforge_gqa_sdpa_fp32"
# Rows up to which the int8 kernel beats the bf16 matmul on the dequantized weights (crossover ~6).
INT8_KERNEL_MAX_ROWS = 4


def resolve_serving(choice: str, device: str) -> str:
    """`auto`: int8_weights on a CPU (the latency gate's hardware), bf16 on a GPU (int8 untested there)."""
    if choice == "auto":
        return "int8_weights" if device == "cpu" else "bf16"
    if choice not in SERVING_PRECISIONS:
        raise ValueError(f"serving precision {choice!r} is not one of auto, {', '.join(SERVING_PRECISIONS)}")
    return choice


def serving_in(results: dict[str, Any]) -> str:
    """The precision an EVALUATION_RESULTS.json was measured in (fp32 for files from before it was recorded)."""
    serving = (results.get("system") or {}).get("serving", DEFAULT_SERVING)
    return serving if serving in SERVING_PRECISIONS else DEFAULT_SERVING


@cache  # one class per process: isinstance checks hold across models
def _int8_linear_class():
    import torch

    class Int8WeightLinear(torch.nn.Module):
        """A frozen Linear for inference: y = (x @ W8^T) * scale + bias, W8 int8 per output channel."""

        def __init__(self, linear: torch.nn.Linear, dtype: torch.dtype):
            super().__init__()
            w = linear.weight.detach().float()
            scale = w.abs().amax(dim=1).clamp(min=1e-12) / 127.0
            self.register_buffer("weight_int8", torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8))
            self.register_buffer("scale", scale.to(dtype))
            # the int8 weights times the scale the kernel uses: the same model, for the many-row path
            self.register_buffer("weight_dequantized", (self.weight_int8.float() * self.scale.float()[:, None]).to(dtype))
            self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().to(dtype))
            self.in_features, self.out_features, self.dtype = linear.in_features, linear.out_features, dtype

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            flat = x.reshape(-1, self.in_features).to(self.dtype)
            if flat.shape[0] > INT8_KERNEL_MAX_ROWS:
                y = torch.nn.functional.linear(flat, self.weight_dequantized, self.bias)
                return y.view(*x.shape[:-1], self.out_features)
            y = torch.ops.aten._weight_int8pack_mm(flat, self.weight_int8, self.scale)
            if self.bias is not None:
                y = y + self.bias
            return y.view(*x.shape[:-1], self.out_features)

        def extra_repr(self) -> str:
            return f"in_features={self.in_features}, out_features={self.out_features}, int8 weights"

    return Int8WeightLinear


def int8_linear(linear: Any, dtype: Any = None) -> Any:
    """`linear` as an Int8WeightLinear (bf16 scales and activations unless `dtype` says otherwise)."""
    import torch

    return _int8_linear_class()(linear, dtype or torch.bfloat16)


def quantize_linears(root: Any) -> int:
    """Replace every torch Linear under `root` by an Int8WeightLinear; returns how many were replaced."""
    import torch

    found = [(name, mod) for name, mod in root.named_modules() if isinstance(mod, torch.nn.Linear)]
    for name, mod in found:
        parent, _, attr = name.rpartition(".")
        setattr(root.get_submodule(parent) if parent else root, attr, int8_linear(mod))
    return len(found)


def _fp32_attention(module: Any, query: Any, key: Any, value: Any, attention_mask: Any, **kwargs: Any):
    from fteforge.models.attention import _gqa_sdpa

    out, _ = _gqa_sdpa(module, query.float(), key.float(), value.float(), attention_mask, **kwargs)
    return out.to(query.dtype), None


def attention_dtype(model: Any) -> Any:
    """fp32 where the model's attention runs in fp32 over bf16 weights, else None (the model's own dtype).

    A KV cache stored in this dtype holds exactly what the attention reads, so the cached keys and
    values are not upcast again at every layer of every step (that was ~8% of a batch-1 decode step).
    """
    import torch

    return torch.float32 if getattr(model.config, "_attn_implementation", None) == _ATTENTION else None


def _attention_in_fp32(model: Any) -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    from fteforge.models.attention import NAME

    if model.device.type != "cpu" or getattr(model.config, "_attn_implementation", None) not in ("sdpa", NAME):
        return
    AttentionInterface.register(_ATTENTION, _fp32_attention)
    AttentionMaskInterface.register(_ATTENTION, sdpa_mask)
    model.set_attn_implementation(_ATTENTION)


def serve_as(model: Any, precision: str) -> Any:
    """`model` (loaded in fp32 for inference) converted in place to be served in `precision`."""
    import torch

    if precision not in SERVING_PRECISIONS:
        raise ValueError(f"serving precision {precision!r} is not one of {', '.join(SERVING_PRECISIONS)}")
    if precision == "fp32":
        return model
    model.to(torch.bfloat16)
    _attention_in_fp32(model)
    if precision == "int8_weights":
        if model.device.type != "cpu":
            raise ValueError("int8_weights serving is measured on CPU only - serve fp32 or bf16 on a GPU")
        quantize_linears(model.get_decoder())
    return model
