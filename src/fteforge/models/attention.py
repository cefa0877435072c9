"""Grouped-query attention without copying the key/value cache, for batched generation on CPU.

transformers' `sdpa` path repeats each key/value head for its query heads (`repeat_kv`, a full copy of
the cache per layer per step) whenever an attention mask is passed, and a left-padded batch always
passes one. torch's CPU kernel takes the mask and the grouped heads together (`enable_gqa`), so the
copy is pure waste there: measured on SmolLM2-135M (9 query / 3 key-value heads), batch 16 with padding
and 340 cached tokens, one decode step took 0.62 s with the copy and 0.19 s without, logits identical.
On CUDA, torch would drop to its math kernel for that combination, so GPUs keep the stock path.
"""

from __future__ import annotations

from typing import Any

NAME = "fteforge_gqa_sdpa"


def _gqa_sdpa(module: Any, query: Any, key: Any, value: Any, attention_mask: Any, dropout: float = 0.0,
              scaling: float | None = None, is_causal: bool | None = None, **kwargs: Any) -> tuple[Any, None]:
    import torch

    causal = query.shape[2] > 1 and attention_mask is None and (True if is_causal is None else is_causal)
    out = torch.nn.functional.scaled_dot_product_attention(
        query, key, value, attn_mask=attention_mask, dropout_p=0.0, scale=scaling, is_causal=causal,
        enable_gqa=key.shape[1] != query.shape[1])
    return out.transpose(1, 2).contiguous(), None


def use_gqa_sdpa(model: Any) -> bool:
    """Switch an inference model on CPU to the copy-free attention; True if it was switched."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    cfg = model.config
    grouped = getattr(cfg, "num_key_value_heads", None) not in (None, getattr(cfg, "num_attention_heads", None))
    if model.device.type != "cpu" or getattr(cfg, "_attn_implementation", None) != "sdpa" or not grouped:
        return False
    AttentionInterface.register(NAME, _gqa_sdpa)
    AttentionMaskInterface.register(NAME, sdpa_mask)
    model.set_attn_implementation(NAME)
    return True
