"""Batched greedy generation that runs shared prefixes once and pads nothing: the evaluation's fast path.

Every evaluation prompt starts with the same ~300-token system prompt (persona head, tool signatures),
then ~60 tokens of date lines that one date's prompts share, then the user turn and, after a call,
the tool result. On CPU prefill is most of the cost (measured on SmolLM2-135M, 2 cores: 16 prompts x
330 tokens prefill 24 s, then 20 decode steps 3.7 s), so:

* the prefix all prompts share is computed once per model, a prefix shared by a group of prompts (one
  date) once per group, each extending the longest cached prefix of it;
* each row's own tokens are prefilled one row at a time, so no pad is ever computed. Padded batches
  of the 150 held-out cases ran 35,111 prefill positions per model, 9,181 of them pads next to long
  tool results; now ~13,000, all 150 transcripts identical. The wall-time gain on this noisy 2-core
  machine measured 0-20% per model back to back (decode is the larger part of what is left).

Each batch's cache is preallocated for prefix + prompt + new tokens and written in place. The stock
DynamicCache concatenates every layer's keys and values on every step, a full copy of a cache that is
mostly the long prefix: measured on SmolLM2-135M, batch 16, 340 cached tokens, one decode step took
0.39 s with `torch.cat` at 40% of it, 0.16 s written in place (bench/generation_throughput.py).

Why the result is the single-stream result: each row's cache is ``prefix + pads + own tokens`` with an
attention mask that hides the pads, and `generate` derives position ids from the mask, so every token
sits at the position it has in an unpadded prompt, and each cached key/value is the one a causal
forward over that row's whole prompt computes. As for `generation.generate_batch`, only fp32 rounding
of differently shaped matmuls can differ; tests/test_evaluate.py checks the tokens against
`generation.generate_one`.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

import torch

from fteforge.evaluation.generation import (
    Constraint,
    _decode,
    _encode,
    _pad_id,
    generate_batch,
    processors,
    stop_token_ids,
)
from fteforge.evaluation.serving import attention_dtype

MIN_PREFIX = 16  # below this the copy costs more than the prefill it saves


@cache  # transformers is imported lazily, so the class is built on first use
def _buffered_layer_class():
    from transformers.cache_utils import DynamicLayer

    class BufferedLayer(DynamicLayer):
        """A DynamicLayer over preallocated storage: `keys`/`values` are views that grow in place."""

        def __init__(self, keys: torch.Tensor, values: torch.Tensor, capacity: int, dtype: torch.dtype | None = None):
            super().__init__()
            b, h, n, d = keys.shape
            dtype = dtype or keys.dtype
            self._k, self._v = keys.new_empty(b, h, capacity, d, dtype=dtype), values.new_empty(b, h, capacity, d, dtype=dtype)
            self._k[:, :, :n], self._v[:, :, :n] = keys, values
            self._n = n
            self.dtype, self.device, self.is_initialized = dtype, keys.device, True
            self.keys, self.values = self._k[:, :, :n], self._v[:, :, :n]

        @classmethod
        def empty(cls, batch: int, like: torch.Tensor, capacity: int, dtype: torch.dtype | None = None) -> BufferedLayer:
            """Zeroed storage for `batch` rows shaped like `like`'s heads, holding no tokens yet."""
            layer = cls(like[:1, :, :0].expand(batch, -1, -1, -1), like[:1, :, :0].expand(batch, -1, -1, -1), capacity,
                        dtype)
            layer._k.zero_()
            layer._v.zero_()
            return layer

        def write(self, row: int, at: int, keys: torch.Tensor, values: torch.Tensor) -> None:
            self._k[row, :, at:at + keys.shape[-2]] = keys
            self._v[row, :, at:at + values.shape[-2]] = values

        def advance(self, n: int) -> None:
            """Count the first `n` slots as filled (rows written with `write`; unwritten slots stay masked)."""
            self._n = n
            self.keys, self.values = self._k[:, :, :n], self._v[:, :, :n]

        def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any):
            m = key_states.shape[-2]
            if self._n + m > self._k.shape[-2]:
                raise RuntimeError(f"KV buffer of {self._k.shape[-2]} tokens is full (needs {self._n + m})")
            self._k[:, :, self._n:self._n + m] = key_states
            self._v[:, :, self._n:self._n + m] = value_states
            self._n += m
            self.keys, self.values = self._k[:, :, :self._n], self._v[:, :, :self._n]
            return self.keys, self.values

    return BufferedLayer


def batch_cache(prefix_cache: Any, batch: int, capacity: int, dtype: torch.dtype | None = None) -> Any:
    """A DynamicCache holding `prefix_cache` for `batch` rows, with room for `capacity` tokens in all.

    `dtype` stores the keys and values in another precision than the model computes them in.
    """
    from transformers.cache_utils import DynamicCache

    layer = _buffered_layer_class()
    out = DynamicCache()
    out.layers = [layer(lc.keys.expand(batch, -1, -1, -1), lc.values.expand(batch, -1, -1, -1), capacity, dtype)
                  for lc in prefix_cache.layers]
    return out


def _lcp(a: Sequence[int], b: Sequence[int]) -> int:
    n, limit = 0, min(len(a), len(b))
    while n < limit and a[n] == b[n]:
        n += 1
    return n


def common_prefix_len(encoded: Sequence[Sequence[int]]) -> int:
    """Tokens shared by every prompt, leaving each at least one token of its own to feed."""
    if not encoded:
        return 0
    first = encoded[0]
    return max(0, min(min(_lcp(first, e) for e in encoded), min(len(e) for e in encoded) - 1))


def group_prefix_lens(encoded: Sequence[Sequence[int]], floor: int, min_group: int) -> list[int]:
    """Per prompt, the longest prefix it shares with at least `min_group - 1` other prompts (>= `floor`).

    In sorted order, prompts sharing a prefix are neighbours, so each window of `min_group` neighbours
    shares the smallest of its adjacent common prefixes; a prompt takes the best window it sits in.
    Each prompt keeps at least one token of its own.
    """
    order = sorted(range(len(encoded)), key=lambda i: list(encoded[i]))
    adjacent = [_lcp(encoded[a], encoded[b]) for a, b in zip(order, order[1:], strict=False)]
    best = [floor] * len(encoded)
    for start in range(len(order) - min_group + 1):
        shared = min(adjacent[start:start + min_group - 1])
        for i in order[start:start + min_group]:
            best[i] = max(best[i], shared)
    return [max(floor, min(b, len(e) - 1)) for b, e in zip(best, encoded, strict=True)]


class PrefixCachedGenerator:
    """`gen(prompts, max_new_tokens) -> completions`: greedy, batched, shared prefixes computed once.

    Two levels of sharing. The prefix every prompt of a call has in common (the system prompt up to
    the date) is cached per model. Within a call, prompts that share a longer prefix with at least
    `min_group - 1` others (the same date, so the date lines too) get that prefix cached once as well;
    caches are kept between calls (first turns and the turns after a tool result share them).

    Each row's own tokens are then prefilled one row at a time, never padded: in a batch sorted by
    length, the long tool results of follow-up turns made 41% of the padded prefill positions pads
    (measured on the 150 held-out cases). The rows' caches are laid out as ``prefix, pads, own tokens``
    in one batch cache whose pads the attention mask hides, and `generate` feeds each row's last token
    and decodes the batch. Positions come from the mask, so every token sits where it would in an
    unpadded prompt. A single prompt (latency at batch 1) goes through `generate` as it is.

    `prefix_from` computes the common prefix over other prompts and turns off the grouping, so a
    single prompt (latency at batch 1) caches only the system turn, never its own user turn.
    `last_new_tokens` holds the tokens each completion of the last call used. `constraint` makes a
    logits processor per generate call (toolgrammar.constraint_factory).
    """

    name = "generate"  # recorded as `latency.decoder`

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 16, constraint: Constraint = None,
                 min_group: int = 4, max_cached: int = 32):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if min_group < 2:
            raise ValueError(f"min_group must be >= 2, got {min_group}")
        self.model, self.tokenizer, self.batch_size, self.constraint = model, tokenizer, batch_size, constraint
        self.min_group, self.max_cached = min_group, max_cached
        self.stops = stop_token_ids(model, tokenizer)
        self.cache_dtype = attention_dtype(model)
        self.pad_id = _pad_id(tokenizer, self.stops)
        self._caches: dict[tuple[int, ...], Any] = {}
        self.last_new_tokens: list[int] = []

    def _forward(self, ids: list[int], parent: Any, capacity: int) -> Any:
        """A batch-1 cache of `parent` extended by `ids`, in a buffer of `capacity` tokens."""
        with torch.inference_mode():
            if parent is None:
                return self.model(input_ids=torch.tensor([ids], device=self.model.device), use_cache=True).past_key_values
            kv = batch_cache(parent, 1, capacity, self.cache_dtype)
            if ids:
                self.model(input_ids=torch.tensor([ids], device=self.model.device), past_key_values=kv, use_cache=True)
            return kv

    def _prefix_cache(self, prefix: tuple[int, ...]) -> Any:
        """The cache of `prefix`, extended from the longest cached prefix of it."""
        if prefix in self._caches:
            self._caches[prefix] = self._caches.pop(prefix)  # most recently used last
            return self._caches[prefix]
        parent = max((p for p in self._caches if len(p) < len(prefix) and prefix[:len(p)] == p), key=len, default=None)
        cache = self._forward(list(prefix[len(parent):]) if parent else list(prefix),
                              self._caches[parent] if parent else None, len(prefix))
        if len(self._caches) >= self.max_cached:
            self._caches.pop(next(iter(self._caches)))  # the least recently used
        self._caches[prefix] = cache
        return cache

    def _count(self, row: list[int]) -> int:
        for i, t in enumerate(row):
            if t in self.stops:
                return i + 1
        return len(row)

    def __call__(self, prompts: Sequence[str], max_new_tokens: int,
                 prefix_from: Sequence[str] | None = None) -> list[str]:
        if not prompts:
            self.last_new_tokens = []
            return []
        encoded = [_encode(self.tokenizer, p) for p in prompts]
        reference = encoded if prefix_from is None else [_encode(self.tokenizer, p) for p in prefix_from] + encoded
        n = common_prefix_len(reference)
        if n < MIN_PREFIX:
            out = generate_batch(self.model, self.tokenizer, prompts, max_new_tokens, self.batch_size,
                                 self.constraint)
            self.last_new_tokens = [len(_encode(self.tokenizer, o)) for o in out]
            return out
        self._prefix_cache(tuple(encoded[0][:n]))  # first, so every longer prefix extends it
        lens = [n] * len(encoded) if prefix_from is not None else group_prefix_lens(encoded, n, self.min_group)
        order = sorted(range(len(encoded)), key=lambda i: (-len(encoded[i]), i))
        out: list[str] = [""] * len(encoded)
        counts = [0] * len(encoded)
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            for row, i in zip(self._generate([encoded[i] for i in idx], [lens[i] for i in idx], max_new_tokens),
                              idx, strict=True):
                out[i] = _decode(self.tokenizer, row, self.stops)
                counts[i] = self._count(row)
        self.last_new_tokens = counts
        return out

    def _generate(self, rows: list[list[int]], prefix_lens: list[int], max_new_tokens: int) -> list[list[int]]:
        from transformers import GenerationConfig

        config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                                  eos_token_id=self.stops, pad_token_id=self.pad_id)
        device = self.model.device
        caches = [self._prefix_cache(tuple(r[:m])) for r, m in zip(rows, prefix_lens, strict=True)]
        if len(rows) == 1:
            kv = batch_cache(caches[0], 1, len(rows[0]) + max_new_tokens, self.cache_dtype)
            mask = [[1] * len(rows[0])]
        else:
            top = max(prefix_lens)
            width = max(len(r) - m for r, m in zip(rows, prefix_lens, strict=True))
            total = top + width
            kv = self._batch_of_rows(rows, prefix_lens, caches, top, width, total - 1 + max_new_tokens)
            mask = [[1] * m + [0] * (total - len(r)) + [1] * (len(r) - m)
                    for r, m in zip(rows, prefix_lens, strict=True)]
        ids = [[*r[:m], *[self.pad_id] * (len(mk) - len(r)), *r[m:]]
               for r, m, mk in zip(rows, prefix_lens, mask, strict=True)]
        input_ids = torch.tensor(ids, device=device)
        with torch.inference_mode():
            gen = self.model.generate(input_ids=input_ids, attention_mask=torch.tensor(mask, device=device),
                                      past_key_values=kv, generation_config=config,
                                      logits_processor=processors(self.constraint))
        return gen[:, input_ids.shape[1]:].tolist()

    def _batch_of_rows(self, rows, prefix_lens, caches, top: int, width: int, capacity: int) -> Any:
        """One cache for the batch: each row's prefix at the start, its own tokens but the last at the end."""
        from transformers.cache_utils import DynamicCache

        layer_class = _buffered_layer_class()
        first = caches[0].layers
        batch = DynamicCache()
        batch.layers = [layer_class.empty(len(rows), lc.keys, capacity, self.cache_dtype) for lc in first]
        end = top + width - 1  # the last column is fed by generate
        for b, (row, m, prefix) in enumerate(zip(rows, prefix_lens, caches, strict=True)):
            own = row[m:-1]
            kv = self._forward(own, prefix, m + len(own)) if own else prefix
            for layer, lc in zip(batch.layers, kv.layers, strict=True):
                layer.write(b, 0, lc.keys[0, :, :m], lc.values[0, :, :m])
                if own:
                    layer.write(b, end - len(own), lc.keys[0, :, m:], lc.values[0, :, m:])
        for layer in batch.layers:
            layer.advance(end)
        return batch
