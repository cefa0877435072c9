"""Greedy generation for evaluation: batched (left padding) and single stream, with the same output.

Prompts are already rendered by `fteforge.agent.render` (chat template applied), so they are tokenised
without adding special tokens. Each completion is cut at the first end-of-turn token (`<|im_end|>` or
another of the model's stop tokens) and decoded without control tokens; the tool-call markers are kept
even if a tokenizer marks them special, since the scorers parse them.

Batching sorts prompts by token length so each batch pads little, then restores the input order.
Left padding plus an attention mask keeps the batched greedy result equal to the single-stream one:
`generate` derives position ids from the mask (a left-padded prompt still starts at position 0) and
masks the pads out of attention, so only float rounding in the padded matmuls can differ. Measured on
the tiny random Llama in fp32 (transformers 5): a plain left-padded forward WITHOUT position ids differs
from the unpadded one by ~7e-5 in the logits (RoPE is relative, so the shift only shows as rounding),
with mask-derived position ids by ~5e-6; greedy tokens were identical for sdpa and eager attention (8
prompts x 48 tokens), and dropping the attention mask breaks the equality. A near-tie in a real model
(bf16, GPU kernels) could still flip a token, so the equality is a property of fp32 here, not a promise.
tests/test_eval_scorers.py checks it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from fteforge.toolformat import CALL_CLOSE, CALL_OPEN, END_OF_TURN


def stop_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """Token ids that end an assistant turn: `<|im_end|>`, the tokenizer's eos and the model's eos."""
    ids: list[int] = []
    im_end = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    if isinstance(im_end, int) and im_end != tokenizer.unk_token_id:
        ids.append(im_end)
    cfg_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for eid in [tokenizer.eos_token_id, *(cfg_eos if isinstance(cfg_eos, list) else [cfg_eos])]:
        if isinstance(eid, int) and eid not in ids:
            ids.append(eid)
    if not ids:
        raise ValueError("the tokenizer has no <|im_end|> or eos token to stop generation on")
    return ids


def tool_call_constraint(model: Any, tokenizer: Any, tools: Any):
    """toolgrammar.constraint_factory for this model: a call closes where the model's turn may end."""
    from fteforge.toolgrammar import constraint_factory

    return constraint_factory(tokenizer, tools, stop_token_ids(model, tokenizer))


def _pad_id(tokenizer: Any, stops: list[int]) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0]


def _decode(tokenizer: Any, ids: list[int], stops: list[int]) -> str:
    """Text up to the first stop token, control tokens dropped, tool-call markers kept."""
    for i, t in enumerate(ids):
        if t in stops:
            ids = ids[:i]
            break
    keep = {i for i in map(tokenizer.convert_tokens_to_ids, (CALL_OPEN, CALL_CLOSE))
            if isinstance(i, int) and tokenizer.convert_ids_to_tokens(i) in (CALL_OPEN, CALL_CLOSE)}
    special = set(tokenizer.all_special_ids) - keep
    return tokenizer.decode([t for t in ids if t not in special], skip_special_tokens=False)


def _encode(tokenizer: Any, prompt: str) -> list[int]:
    return tokenizer(prompt, add_special_tokens=False)["input_ids"]


# A factory of logits processors, called once per generate call (a processor may keep per-call state,
# e.g. toolgrammar.ToolCallConstraint); None decodes freely.
Constraint = Callable[[], Any] | None


def processors(constraint: Constraint) -> Any:
    from transformers import LogitsProcessorList

    return LogitsProcessorList([constraint()] if constraint is not None else [])


def _generate(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, max_new_tokens: int,
              stops: list[int], pad_id: int, constraint: Constraint = None) -> torch.Tensor:
    from transformers import GenerationConfig

    config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, num_beams=1, eos_token_id=stops,
                              pad_token_id=pad_id)
    with torch.inference_mode():
        out = model.generate(input_ids=input_ids, attention_mask=attention_mask, generation_config=config,
                             logits_processor=processors(constraint))
    return out[:, input_ids.shape[1]:]


def generate_one(model: Any, tokenizer: Any, prompt: str, max_new_tokens: int, constraint: Constraint = None) -> str:
    """Greedy completion of one prompt, no padding: the reference the batched path must equal."""
    stops = stop_token_ids(model, tokenizer)
    ids = torch.tensor([_encode(tokenizer, prompt)], device=model.device)
    new = _generate(model, ids, torch.ones_like(ids), max_new_tokens, stops, _pad_id(tokenizer, stops), constraint)
    return _decode(tokenizer, new[0].tolist(), stops)


def generate_batch(model: Any, tokenizer: Any, prompts: Sequence[str], max_new_tokens: int,
                   batch_size: int = 8, constraint: Constraint = None) -> list[str]:
    """Greedy completions of `prompts`, in input order; batches of similar length, left-padded."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    stops = stop_token_ids(model, tokenizer)
    pad_id = _pad_id(tokenizer, stops)
    encoded = [_encode(tokenizer, p) for p in prompts]
    order = sorted(range(len(encoded)), key=lambda i: (-len(encoded[i]), i))
    out: list[str | None] = [None] * len(encoded)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        width = max(len(encoded[i]) for i in idx)
        rows = [[pad_id] * (width - len(encoded[i])) + encoded[i] for i in idx]
        mask = [[0] * (width - len(encoded[i])) + [1] * len(encoded[i]) for i in idx]
        new = _generate(model, torch.tensor(rows, device=model.device), torch.tensor(mask, device=model.device),
                        max_new_tokens, stops, pad_id, constraint)
        for row, i in zip(new.tolist(), idx, strict=True):
            out[i] = _decode(tokenizer, row, stops)
    return [o if o is not None else "" for o in out]
