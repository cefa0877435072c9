"""Shared-prefix training: compute the common system prompt once per batch, not once per example.

Every conversation starts with the same system turn (persona head + tool signatures; the date comes
last for exactly this reason), which is most of the tokens of a short tool-call example. The prefix
runs through the model once with gradients, its key/value cache is broadcast over the batch, and the
per-example suffixes attend to it. The loss and gradients are those of running every full sequence
(`tests/test_training.py` checks it); only the repeated prefix work disappears.
"""

from __future__ import annotations

from typing import Any

import torch
from trl import SFTTrainer

from fteforge.training.data import IGNORE


def common_prefix_length(rows: list[dict[str, Any]]) -> int:
    """Longest shared token prefix that ends before every example's first learned token."""
    first = rows[0]["input_ids"]
    n = min(len(r["input_ids"]) for r in rows)
    # stop one token short of the first learned token: its prediction comes from the token before it
    n = min([n] + [next(i for i, lab in enumerate(r["labels"]) if lab != IGNORE) - 1 for r in rows])
    k = 0
    while k < n and all(r["input_ids"][k] == first[k] for r in rows):
        k += 1
    return k


def supports_shared_prefix(model) -> bool:
    """Only where logits are a plain projection of the decoder's output (no soft-capping or scaling)."""
    cfg = model.config
    return getattr(cfg, "final_logit_softcapping", None) is None and getattr(cfg, "logit_scale", None) is None


def split_prefix(rows: list[dict[str, Any]], k: int) -> list[dict[str, Any]]:
    return [{"input_ids": r["input_ids"][k:], "labels": r["labels"][k:], "length": r["length"] - k} for r in rows]


class SharedPrefixSFTTrainer(SFTTrainer):
    """SFTTrainer whose batches hold only suffixes; the shared prefix is prepended inside the model call."""

    def __init__(self, *args, prefix_ids: list[int], **kwargs):
        super().__init__(*args, **kwargs)
        self.prefix_ids = torch.tensor([prefix_ids], dtype=torch.long)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        # accelerate applies mixed precision by wrapping model.forward; the decoder and head are called
        # directly here, so the autocast context has to be entered by hand (a no-op in fp32)
        with self.accelerator.autocast():
            loss, logits = shared_prefix_loss(model, self.prefix_ids, inputs, num_items_in_batch)
        return (loss, logits) if return_outputs else loss


def shared_prefix_loss(model, prefix_ids: torch.Tensor, inputs: dict[str, torch.Tensor],
                       num_items_in_batch=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean loss over learned tokens of `prefix + suffix` sequences, the prefix run once; (loss, logits)."""
    input_ids, labels = inputs["input_ids"], inputs["labels"]
    batch = input_ids.shape[0]
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    body, head = inner.get_decoder(), inner.get_output_embeddings()
    prefix = prefix_ids.to(input_ids.device)
    # The decoder alone: the prefix needs no logits, it only feeds keys and values forward.
    cache = body(input_ids=prefix, use_cache=True).past_key_values
    for layer in cache.layers:
        layer.keys = layer.keys.expand(batch, -1, -1, -1)
        layer.values = layer.values.expand(batch, -1, -1, -1)
    mask = torch.cat(
        [torch.ones(batch, prefix.shape[1], dtype=inputs["attention_mask"].dtype, device=input_ids.device),
         inputs["attention_mask"]], dim=1)
    hidden = body(input_ids=input_ids, attention_mask=mask, past_key_values=cache, use_cache=True).last_hidden_state
    target = labels[:, 1:]
    learned = target != IGNORE
    # The vocabulary projection is a fifth of a small model's compute: run it on learned positions only.
    logits = head(hidden[:, :-1][learned]).float()
    loss = torch.nn.functional.cross_entropy(logits, target[learned], reduction="sum")
    count = num_items_in_batch if num_items_in_batch is not None else learned.sum()
    return loss / count, logits
