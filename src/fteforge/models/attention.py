"""Grouped-query attention without copying keys and values per query head, for CPU inference and training.

SmolLM2 has 9 query heads over 3 key/value heads. transformers' stock paths repeat each key/value head
for its query heads (`repeat_kv`, a full copy per layer per call) whenever an attention mask is passed,
and padded batches always pass one. Two replacements, one per job:

* `use_gqa_sdpa` (generation): torch's CPU SDPA kernel takes the mask and the grouped heads together
  (`enable_gqa`). Measured on SmolLM2-135M, batch 16 with padding and 340 cached tokens, one decode step
  took 0.62 s with the copy and 0.19 s without, logits identical.
* `use_grouped_matmul` (training): the same attention written as two matmuls over `[batch, kv_head,
  group * query, key]` views, so no head is copied either. On CPU, SDPA's flash kernel is the slow part
  of a training step: its backward took 0.92 s and its forward 0.40 s of a 3.5 s agentic step (batch 16,
  ~95 suffix tokens over a ~345-token shared prefix, bf16 autocast), while the two matmuls, softmax and
  their backward take ~0.35 s (`bench/train_attention.py`).

On CUDA, torch would drop to its math kernel for mask + enable_gqa and the fused kernels win there, so
GPUs keep the stock path.
"""

from __future__ import annotations

from typing import Any

NAME = "fteforge_gqa_sdpa"
GROUPED_MATMUL = "fteforge_grouped_matmul"


def _gqa_sdpa(module: Any, query: Any, key: Any, value: Any, attention_mask: Any, dropout: float = 0.0,
              scaling: float | None = None, is_causal: bool | None = None, **kwargs: Any) -> tuple[Any, None]:
    import torch

    causal = query.shape[2] > 1 and attention_mask is None and (True if is_causal is None else is_causal)
    out = torch.nn.functional.scaled_dot_product_attention(
        query, key, value, attn_mask=attention_mask, dropout_p=0.0, scale=scaling, is_causal=causal,
        enable_gqa=key.shape[1] != query.shape[1])
    return out.transpose(1, 2).contiguous(), None


def _grouped_matmul(module: Any, query: Any, key: Any, value: Any, attention_mask: Any, dropout: float = 0.0,
                    scaling: float | None = None, **kwargs: Any) -> tuple[Any, None]:
    """Eager attention with the query heads of one key/value head stacked along the query axis.

    `attention_mask` is the additive float mask of `eager_mask` (0 or the dtype's minimum). Under bf16
    autocast the scores, the masked scores and the probabilities all stay bf16 (torch's CPU softmax
    accumulates in fp32 either way, and the next matmul rounds its input to bf16 anyway). Promoting them
    to fp32, as transformers' eager path does, made a [batch, head, query, key] tensor twice as large:
    past glibc's 32 MB mmap threshold for long batches (16 rows x 185 suffix tokens over 487 keys: 52 MB
    per layer), so every such tensor was mapped fresh and page-faulted in on every step. On a real
    agentic batch of that size (a one-off probe, repeated runs): forward 2.8-3.8 s -> 1.85 s, backward
    3.2-3.7 s -> 2.2 s, ~450k page faults -> 0. Whole steps: bench/train_attention.py (agentic 3.02 ->
    2.65 s over 20 steps). The scale goes on the query, the smallest operand.
    """
    import torch

    b, h, q, d = query.shape
    kv_heads, k = key.shape[1], key.shape[2]
    group = h // kv_heads
    scale = scaling if scaling is not None else d ** -0.5
    scores = torch.matmul(query.reshape(b, kv_heads, group * q, d) * scale, key.transpose(-1, -2))
    scores = scores.view(b, h, q, k)
    if attention_mask is not None:
        mask = attention_mask[..., :k]
        if mask.dtype != scores.dtype:  # fp32's minimum would round to -inf in bf16
            mask = mask.clamp_min(torch.finfo(scores.dtype).min).to(scores.dtype)
        scores = scores + mask
    probs = torch.softmax(scores, dim=-1)
    if dropout and module.training:
        probs = torch.nn.functional.dropout(probs, p=dropout)
    out = torch.matmul(probs.view(b, kv_heads, group * q, k), value).view(b, h, q, d)
    return out.transpose(1, 2).contiguous(), None


def _grouped(model: Any) -> bool:
    cfg = model.config
    heads = getattr(cfg, "num_attention_heads", None)
    kv_heads = getattr(cfg, "num_key_value_heads", None)
    return kv_heads not in (None, heads) and heads % kv_heads == 0


def use_gqa_sdpa(model: Any) -> bool:
    """Switch an inference model on CPU to the copy-free SDPA attention; True if it was switched."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    if model.device.type != "cpu" or getattr(model.config, "_attn_implementation", None) != "sdpa" \
            or not _grouped(model):
        return False
    AttentionInterface.register(NAME, _gqa_sdpa)
    AttentionMaskInterface.register(NAME, sdpa_mask)
    model.set_attn_implementation(NAME)
    return True


def use_grouped_matmul(model: Any) -> bool:
    """Switch a model to be trained on CPU to the grouped-matmul attention; True if it was switched."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    if model.device.type != "cpu" or getattr(model.config, "_attn_implementation", None) not in ("sdpa", "eager"):
        return False
    AttentionInterface.register(GROUPED_MATMUL, _grouped_matmul)
    AttentionMaskInterface.register(GROUPED_MATMUL, eager_mask)
    model.set_attn_implementation(GROUPED_MATMUL)
    return True
