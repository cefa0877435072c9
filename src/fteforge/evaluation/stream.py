"""Greedy decoding of one conversation at a time (batch 1) for Llama-shaped models: chat and the latency gate.

Why a second decode path: at batch 1 on a 2-core CPU a decode step of SmolLM2-135M served as int8
weights spends ~9 ms in the int8 matmuls, ~3.5 ms in the vocabulary projection and ~2 ms in attention,
yet took ~26 ms through transformers' modules: the rest is some ninety small ops per layer wrapped in
module calls, cache objects and mask building. Called directly, with q/k/v and gate/up each one int8
call, the latency gate's turn (24 new tokens after the user turn's prefill) went from p95 661 to 547 ms
on v6_ties, and a chat turn from 1.8-3.1 s to 1.0-1.8 s (`python bench/stream_decoding.py`). The
batched suites keep `generate` (shared_prefix.py): with 32 rows per step that overhead is spread thin.

It is transformers' forward, not an approximation of it: the same modules' weights through the same
kernels in the same dtypes (RMSNorm in fp32, RoPE tables from the model's own rotary module, the
attention through torch's SDPA with the grouped heads, in fp32 where `serving` runs it in fp32, each
Int8WeightLinear's own forward). Greedy tokens equal `generate` given the same split between cached and
fed tokens (tests/test_stream.py checks them against `generate_one`, free and constrained, fp32 and
int8); every evaluation records the share of latency prompts decoded to the text a fresh batched
generator writes (`latency.same_text`).

The cache holds the last conversation (prompt and generated tokens). A new prompt reuses its longest
common token prefix with it, so a chat's next turn only feeds the new messages; `prefix_from` caps the
reuse at the prefix a set of prompts shares, as the latency gate times each user turn's own prefill.
Reuse changes the split: the cache holds a turn's generated tokens as they were decoded (one row each,
the int8 kernel), where `generate_one` prefills the same text again (many rows, the dequantized bf16
matmul). Same weights, different rounding, so a later turn may break a near-tie the other way (the
bench's four-turn chat first differed in the reply after the first tool result).

Speculative steps (`draft`, `draft_tokens`): a step feeds the last token and up to `draft_tokens`
guessed ones (evaluation/draft.py) in one pass and keeps each guess the model's own greedy choice (after
the tool-call constraint) agrees with, plus the model's token after the last one kept. On the int8 path
every row is computed as a one-token step computes it (`_step_int8`), so the text is the same bytes
with or without guesses; a step of four rows costs little more than one because the weights are read
once. Elsewhere (fp32, bf16 weights) a many-row matmul rounds differently, so those decode one token a step.

Other architectures (biases, other norms or activations, sliding windows, unmerged PEFT layers) get
None from `stream_decoder` and the callers keep `generate`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from fteforge.evaluation.draft import NgramDraft
from fteforge.evaluation.generation import Constraint, _decode, _encode, processors, stop_token_ids
from fteforge.evaluation.serving import _ATTENTION, _int8_linear_class, attention_dtype
from fteforge.evaluation.shared_prefix import _lcp, common_prefix_len
from fteforge.models.attention import NAME as GQA_SDPA

# attention implementations whose math is SDPA over the grouped heads, the kernel this module calls
_SDPA_ATTENTION = ("sdpa", GQA_SDPA, _ATTENTION)
_STATIC_ROPE = ("default", "linear", "llama3")
_PROJECTIONS = {"self_attn": ("q_proj", "k_proj", "v_proj", "o_proj"), "mlp": ("gate_proj", "up_proj", "down_proj")}
MIN_CAPACITY = 512


def unsupported_reason(model: Any) -> str | None:
    """Why `model` cannot be decoded here, or None when it can."""
    from transformers.models.llama.modeling_llama import LlamaRMSNorm

    cfg = model.config
    if getattr(cfg, "model_type", None) != "llama":
        return f"model_type {getattr(cfg, 'model_type', None)!r} is not llama"
    if getattr(cfg, "attention_bias", False) or getattr(cfg, "mlp_bias", False):
        return "biased projections"
    if getattr(cfg, "hidden_act", None) != "silu":
        return f"hidden_act {cfg.hidden_act!r}"
    rope = (getattr(cfg, "rope_parameters", None) or {}).get("rope_type", "default")
    if rope not in _STATIC_ROPE:
        return f"rope_type {rope!r} (its tables depend on the sequence length)"
    if getattr(cfg, "_attn_implementation", None) not in _SDPA_ATTENTION:
        return f"attention implementation {getattr(cfg, '_attn_implementation', None)!r}"
    if model.device.type != "cpu":
        return "not on the CPU (a GPU decodes with generate)"
    linear_types = (torch.nn.Linear, _int8_linear_class())
    decoder = model.get_decoder()
    for layer in decoder.layers:
        if not isinstance(layer.input_layernorm, LlamaRMSNorm) or not isinstance(layer.post_attention_layernorm,
                                                                                 LlamaRMSNorm):
            return "a norm other than LlamaRMSNorm"
        for owner, names in _PROJECTIONS.items():
            for name in names:
                kind = type(getattr(getattr(layer, owner), name))
                if kind not in linear_types:
                    return f"{name} is a {kind.__name__} (merge adapters before decoding)"
    return None


def stream_decoder(model: Any, tokenizer: Any, constraint: Constraint = None, draft: NgramDraft | None = None,
                   draft_tokens: int = 0) -> StreamDecoder | None:
    """A StreamDecoder for `model`, or None where its architecture is not supported."""
    if unsupported_reason(model):
        return None
    return StreamDecoder(model, tokenizer, constraint, draft=draft, draft_tokens=draft_tokens)


class StreamDecoder:
    """`dec(prompts, max_new_tokens, prefix_from=None) -> completions`, one prompt after another.

    The interface of `PrefixCachedGenerator` (and `last_new_tokens`), so the latency measurement and
    chat take either.
    """

    name = "stream"  # recorded as `latency.decoder`

    def __init__(self, model: Any, tokenizer: Any, constraint: Constraint = None, capacity: int = MIN_CAPACITY,
                 draft: NgramDraft | None = None, draft_tokens: int = 0):
        reason = unsupported_reason(model)
        if reason is not None:
            raise ValueError(f"StreamDecoder does not support this model: {reason}")
        cfg = model.config
        self.model, self.tokenizer, self.constraint = model, tokenizer, constraint
        self.stops = stop_token_ids(model, tokenizer)
        self.decoder = model.get_decoder()
        self.heads, self.kv_heads = cfg.num_attention_heads, cfg.num_key_value_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.dtype = self.decoder.embed_tokens.weight.dtype
        self.attn_dtype = attention_dtype(model) or self.dtype
        attn = self.decoder.layers[0].self_attn
        self.scaling = attn.scaling
        self._norms = [(layer.input_layernorm, layer.post_attention_layernorm) for layer in self.decoder.layers]
        self._projections = [tuple(getattr(getattr(layer, owner), name).forward
                                   for owner, names in _PROJECTIONS.items() for name in names)
                             for layer in self.decoder.layers]
        self._int8_rows = self._fused_int8()
        self.draft, self.draft_tokens = draft, draft_tokens
        # guesses are checked only where a row computes as it would alone: the fused int8 path
        self.speculative = draft is not None and draft_tokens > 0 and self._int8_rows is not None
        self._tokens: list[int] = []  # what the cache holds, position by position
        self._alloc(capacity)
        self.last_new_tokens: list[int] = []
        self.last_forwards: list[int] = []  # model calls per prompt that produced its new tokens (prefill included)

    def _fused_int8(self) -> list[tuple[torch.Tensor, ...]] | None:
        """Per layer (qkv, qkv scales, o, o scales, gate+up, gate+up scales, down, down scales) as int8, or None.

        One row through torch's int8 kernel: q, k and v stacked along the output channels are one call
        instead of three (gate and up likewise), and each output channel is computed exactly as alone
        (tests/test_stream.py checks the bytes). Seven kernel calls per layer become four.
        """
        int8 = _int8_linear_class()
        out = []
        for layer in self.decoder.layers:
            a, m = layer.self_attn, layer.mlp
            mods = (a.q_proj, a.k_proj, a.v_proj, a.o_proj, m.gate_proj, m.up_proj, m.down_proj)
            if not all(type(mod) is int8 and mod.bias is None for mod in mods):
                return None
            out.append((torch.cat([a.q_proj.weight_int8, a.k_proj.weight_int8, a.v_proj.weight_int8]),
                        torch.cat([a.q_proj.scale, a.k_proj.scale, a.v_proj.scale]),
                        a.o_proj.weight_int8, a.o_proj.scale,
                        torch.cat([m.gate_proj.weight_int8, m.up_proj.weight_int8]),
                        torch.cat([m.gate_proj.scale, m.up_proj.scale]),
                        m.down_proj.weight_int8, m.down_proj.scale))
        return out

    # -- the cache --------------------------------------------------------------------------------------

    def _alloc(self, capacity: int) -> None:
        shape = (len(self._norms), self.kv_heads, capacity, self.head_dim)
        keys, values = torch.zeros(shape, dtype=self.attn_dtype), torch.zeros(shape, dtype=self.attn_dtype)
        if getattr(self, "keys", None) is not None and self._tokens:
            n = len(self._tokens)
            keys[:, :, :n], values[:, :, :n] = self.keys[:, :, :n], self.values[:, :, :n]
        self.keys, self.values, self.capacity = keys, values, capacity
        with torch.inference_mode():
            # the model's own rotary module, once for every position: the tables it computes per step
            probe = torch.zeros(1, 1, self.head_dim, dtype=self.dtype)
            cos, sin = self.decoder.rotary_emb(probe, torch.arange(capacity)[None])
        self.cos, self.sin = cos[0], sin[0]

    def _reserve(self, length: int) -> None:
        if length > self.capacity:
            self._alloc(max(length, 2 * self.capacity))

    # -- one forward ----------------------------------------------------------------------------------

    @staticmethod
    def _norm(norm: Any, x: torch.Tensor) -> torch.Tensor:
        # LlamaRMSNorm.forward, inline: its module call costs as much as its math at one row
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + norm.variance_epsilon)
        return norm.weight * h.to(x.dtype)

    def _rotate(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        half = self.head_dim // 2
        return x * cos + torch.cat((-x[..., half:], x[..., :half]), -1) * sin

    def _forward(self, ids: list[int]) -> torch.Tensor:
        """Feed `ids` after the cached tokens; the fp32 logits of the last one."""
        start, count = len(self._tokens), len(ids)
        end = start + count
        self._reserve(end)
        h, kvh, d = self.heads, self.kv_heads, self.head_dim
        x = self.decoder.embed_tokens(torch.tensor(ids))
        cos, sin = self.cos[start:end][None], self.sin[start:end][None]
        # one row needs no mask; a first prefill is plain causal; rows after a cache see it and their past
        mask, causal = None, False
        if count > 1 and start == 0:
            causal = True
        elif count > 1:
            mask = torch.ones(count, end, dtype=torch.bool).tril(start)[None, None]
        if count == 1 and self._int8_rows is not None:
            logits = self._step_int8(x, cos, sin, start)
            self._tokens += ids
            return logits
        for i, ((norm1, norm2), (q_proj, k_proj, v_proj, o_proj, gate, up, down)) in enumerate(
                zip(self._norms, self._projections, strict=True)):
            hidden = self._norm(norm1, x)
            q = self._rotate(q_proj(hidden).view(count, h, d).transpose(0, 1), cos, sin)
            k = self._rotate(k_proj(hidden).view(count, kvh, d).transpose(0, 1), cos, sin)
            self.keys[i, :, start:end] = k
            self.values[i, :, start:end] = v_proj(hidden).view(count, kvh, d).transpose(0, 1)
            attn = torch.nn.functional.scaled_dot_product_attention(
                q.to(self.attn_dtype)[None], self.keys[i, :, :end][None], self.values[i, :, :end][None],
                attn_mask=mask, is_causal=causal, scale=self.scaling, enable_gqa=kvh != h)
            x = x + o_proj(attn[0].to(x.dtype).transpose(0, 1).reshape(count, h * d))
            hidden = self._norm(norm2, x)
            x = x + down(torch.nn.functional.silu(gate(hidden)) * up(hidden))
        self._tokens += ids
        return self._logits(x[-1:])

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.lm_head(self._norm(self.decoder.norm, x)).float()

    def _step_int8(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, start: int) -> torch.Tensor:
        """`_forward` of `len(x)` tokens when every projection is int8: fused calls, no module in between;
        the logits of every row.

        Each row is computed exactly as if it were fed alone: the int8 kernel and the vocabulary head
        compute a row the same whatever rows come with it (tests/test_stream.py checks the bytes), and
        each row attends in its own SDPA call over the cache up to itself, the call a one-token step
        makes (one masked call for all rows rounds differently, ~3e-7). That is what lets a speculative
        step check guessed tokens without changing the text.
        """
        mm = torch.ops.aten._weight_int8pack_mm
        sdpa = torch.nn.functional.scaled_dot_product_attention
        count = x.shape[0]
        h, kvh, d = self.heads, self.kv_heads, self.head_dim
        q_end, k_end = h * d, (h + kvh) * d
        end = start + count
        for i, ((norm1, norm2), (qkv, qkv_s, o, o_s, gate_up, gate_up_s, down, down_s)) in enumerate(
                zip(self._norms, self._int8_rows, strict=True)):
            states = mm(self._norm(norm1, x), qkv, qkv_s)
            q = self._rotate(states[:, :q_end].view(count, h, d).transpose(0, 1), cos, sin).to(self.attn_dtype)
            self.keys[i, :, start:end] = self._rotate(states[:, q_end:k_end].view(count, kvh, d).transpose(0, 1),
                                                      cos, sin)
            self.values[i, :, start:end] = states[:, k_end:].view(count, kvh, d).transpose(0, 1)
            keys, values = self.keys[i][None], self.values[i][None]
            attn = torch.cat([sdpa(q[None, :, j:j + 1], keys[:, :, :start + j + 1], values[:, :, :start + j + 1],
                                   scale=self.scaling, enable_gqa=kvh != h) for j in range(count)], 2)
            x = x + mm(attn[0].to(x.dtype).transpose(0, 1).reshape(count, h * d), o, o_s)
            gu = mm(self._norm(norm2, x), gate_up, gate_up_s)
            half = gu.shape[1] // 2
            x = x + mm(torch.nn.functional.silu(gu[:, :half]) * gu[:, half:], down, down_s)
        return self._logits(x)

    def _check(self, ids: list[int]) -> torch.Tensor:
        """Feed `ids` after the cached tokens, one row each as a step would: the fp32 logits of every one."""
        start, end = len(self._tokens), len(self._tokens) + len(ids)
        self._reserve(end)
        x = self.decoder.embed_tokens(torch.tensor(ids))
        logits = self._step_int8(x, self.cos[start:end][None], self.sin[start:end][None], start)
        self._tokens += ids
        return logits

    # -- decoding -------------------------------------------------------------------------------------

    def _reuse(self, prompt: list[int], cap: int) -> int:
        """Cached tokens kept for `prompt`: its common prefix with the cache, at most `cap`."""
        return _lcp(self._tokens, prompt[:cap])

    def decode(self, prompt: list[int], max_new_tokens: int, reuse_cap: int | None = None) -> list[int]:
        """Greedy new tokens after `prompt` (the stop token included, as `generate` returns it)."""
        if not prompt:
            raise ValueError("an empty prompt has no token to continue from")
        cap = min(len(prompt) - 1, len(prompt) if reuse_cap is None else reuse_cap)
        keep = self._reuse(prompt, cap)
        del self._tokens[keep:]
        limit = processors(self.constraint) if self.constraint is not None else None

        def choose(logits: torch.Tensor, context: list[int]) -> int:
            if limit is not None:
                logits = limit(torch.tensor([context]), logits)
            return int(logits.argmax(-1))

        with torch.inference_mode():
            if reuse_cap is not None and keep < cap:
                # the shared prefix on its own first, as PrefixCachedGenerator caches it: the same split
                self._forward(prompt[keep:cap])
                keep = cap
            new = [choose(self._forward(prompt[keep:]), prompt)]
            forwards = 1
            while new[-1] not in self.stops and len(new) < max_new_tokens:
                # no guess past the cap: the step's own token already fills the last place
                guess = self.draft.propose(prompt + new, min(self.draft_tokens, max_new_tokens - len(new) - 1)) \
                    if self.speculative else []
                forwards += 1
                if not guess:
                    new.append(choose(self._forward([new[-1]]), prompt + new))
                    continue
                rows = self._check([new[-1], *guess])
                for j in range(len(guess) + 1):
                    token = choose(rows[j:j + 1], prompt + new)
                    new.append(token)
                    if token in self.stops or len(new) == max_new_tokens or j == len(guess) or token != guess[j]:
                        break
                # the cache keeps the tokens the model agreed with; the last new one is fed next step
                del self._tokens[len(prompt) + len(new) - 1:]
        self.last_forwards.append(forwards)
        return new

    def __call__(self, prompts: Sequence[str], max_new_tokens: int,
                 prefix_from: Sequence[str] | None = None) -> list[str]:
        out, counts = [], []
        cap = None
        if prefix_from is not None:
            cap = common_prefix_len([_encode(self.tokenizer, p) for p in [*prefix_from, *prompts]])
        self.last_forwards = []
        for prompt in prompts:
            new = self.decode(_encode(self.tokenizer, prompt), max_new_tokens, cap)
            out.append(_decode(self.tokenizer, new, self.stops))
            counts.append(next((i + 1 for i, t in enumerate(new) if t in self.stops), len(new)))
        self.last_new_tokens = counts
        return out
