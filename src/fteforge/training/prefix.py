"""Shared-prefix training: compute what a batch's rows have in common once per batch, not once per row.

Every conversation starts with the same system turn (persona head + tool signatures, then the date
lines last for exactly this reason), which is most of the tokens of a short tool-call example. Each
batch's longest common prefix runs through the model once with gradients, its key/value cache is
broadcast over the batch, and the per-row suffixes attend to it. The loss and gradients are those of
running every full sequence (`tests/test_training.py` checks it); only the repeated prefix work goes.

The prefix is found per batch, so a batch whose rows share their whole system turn (the same date)
shares the date lines too. `PrefixGroupedSampler` builds such batches: the date lines are ~45 of an
agentic example's ~120 tokens after the fixed system prompt.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence

import torch
from torch.utils.data import Sampler
from trl import SFTTrainer

from fteforge.training.data import IGNORE

MIN_PREFIX = 2  # below this there is nothing to share


def batch_prefix_length(input_ids: torch.Tensor, labels: torch.Tensor, attention_mask: torch.Tensor) -> int:
    """Leading columns every row of a right-padded batch shares, ending one token before any learned one.

    The prediction of a row's first learned token comes from the token before it, so that token has to
    be in the suffix, where logits are computed.
    """
    same = ((input_ids == input_ids[:1]).all(0) & attention_mask.bool().all(0)).long()
    shared = int(same.cumprod(0).sum())
    learned = labels != IGNORE
    if not bool(learned.any(1).all()):
        return 0  # a row with nothing to learn: no safe bound, run full rows
    first = int(learned.long().argmax(1).min())
    return max(0, min(shared, first - 1))


def supports_shared_prefix(model) -> bool:
    """Only where logits are a plain projection of the decoder's output (no soft-capping or scaling)."""
    cfg = model.config
    return getattr(cfg, "final_logit_softcapping", None) is None and getattr(cfg, "logit_scale", None) is None


class PrefixGroupedSampler(Sampler[int]):
    """Row order whose consecutive `batch_size` chunks come from one group, longest rows together.

    Rows of a group share their system turn. Each epoch: a random permutation, split by group; a group's
    full batches are cut from its rows sorted by length; the rows left over from all groups make mixed
    batches (they still share the fixed system prompt); batch order is shuffled, the one short batch
    last. The torch global RNG drives it, as it drives transformers' LengthGroupedSampler, so `set_seed`
    fixes the order and resuming treats both alike.
    """

    def __init__(self, groups: Sequence[Hashable], lengths: Sequence[int], batch_size: int):
        if len(groups) != len(lengths):
            raise ValueError(f"{len(groups)} group keys for {len(lengths)} rows")
        self.groups, self.lengths, self.batch_size = list(groups), list(lengths), batch_size

    def __len__(self) -> int:
        return len(self.lengths)

    def batches(self) -> list[list[int]]:
        bs = self.batch_size
        members: dict[Hashable, list[int]] = {}
        for i in torch.randperm(len(self.lengths)).tolist():
            members.setdefault(self.groups[i], []).append(i)
        full: list[list[int]] = []
        rest: list[int] = []
        for rows in members.values():  # insertion order follows the permutation
            cut = len(rows) // bs * bs
            kept = sorted(rows[:cut], key=lambda i: -self.lengths[i])
            full += [kept[j:j + bs] for j in range(0, cut, bs)]
            rest += rows[cut:]
        rest.sort(key=lambda i: -self.lengths[i])
        mixed = [rest[j:j + bs] for j in range(0, len(rest), bs)]
        short = [b for b in mixed if len(b) < bs]
        pool = full + [b for b in mixed if len(b) == bs]
        return [pool[j] for j in torch.randperm(len(pool)).tolist()] + short

    def __iter__(self) -> Iterator[int]:
        return iter([i for batch in self.batches() for i in batch])


class SharedPrefixSFTTrainer(SFTTrainer):
    """SFTTrainer whose loss runs each batch's common prefix once; `groups` batches rows sharing one."""

    def __init__(self, *args, groups: Sequence[Hashable] | None = None, lengths: Sequence[int] | None = None,
                 **kwargs):
        super().__init__(*args, **kwargs)
        # kept here: the trainer drops dataset columns the model does not take before it asks for a sampler
        self.groups, self.lengths = groups, lengths

    def _get_train_sampler(self, train_dataset=None):
        if self.groups is None or self.args.train_sampling_strategy != "group_by_length":
            return super()._get_train_sampler(train_dataset)
        return PrefixGroupedSampler(self.groups, self.lengths, self.args.train_batch_size)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        # accelerate applies mixed precision by wrapping model.forward; the decoder and head are called
        # directly here, so the autocast context has to be entered by hand (a no-op in fp32)
        with self.accelerator.autocast():
            loss, logits = shared_prefix_loss(model, inputs, num_items_in_batch)
        return (loss, logits) if return_outputs else loss


def shared_prefix_loss(model, inputs: dict[str, torch.Tensor], num_items_in_batch=None,
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean loss over the learned tokens of a right-padded batch, its common prefix run once; (loss, logits)."""
    input_ids, labels, mask = inputs["input_ids"], inputs["labels"], inputs["attention_mask"]
    batch = input_ids.shape[0]
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    body, head = inner.get_decoder(), inner.get_output_embeddings()
    k = batch_prefix_length(input_ids, labels, mask)
    if k >= MIN_PREFIX:
        # The decoder alone: the prefix needs no logits, it only feeds keys and values forward.
        cache = body(input_ids=input_ids[:1, :k], use_cache=True).past_key_values
        for layer in cache.layers:
            layer.keys = layer.keys.expand(batch, -1, -1, -1)
            layer.values = layer.values.expand(batch, -1, -1, -1)
        hidden = body(input_ids=input_ids[:, k:], attention_mask=mask, past_key_values=cache,
                      use_cache=True).last_hidden_state
        labels = labels[:, k:]
    else:
        hidden = body(input_ids=input_ids, attention_mask=mask).last_hidden_state
    target = labels[:, 1:]
    learned = target != IGNORE
    # The vocabulary projection is a fifth of a small model's compute: run it on learned positions only.
    logits = head(hidden[:, :-1][learned]).float()
    loss = torch.nn.functional.cross_entropy(logits, target[learned], reduction="sum")
    count = num_items_in_batch if num_items_in_batch is not None else learned.sum()
    return loss / count, logits
