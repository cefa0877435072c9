"""Where batch-1 decode time goes on CPU: the latency gate (p95 < 500 ms for 24 new tokens) against
what one token costs through `generate`, through a bare KV-cache loop, and through the model's
weight-bound parts alone (every layer's MLP and the LM head, run on one hidden state).

If the bare loop sits far above the weight-bound parts, the time is per-module framework overhead,
and smaller or quantized weights will not meet the gate; a leaner decode path would.

    .venv/bin/python bench/decode_overhead.py [--model data/base] [--threads 2] [--out bench/results/decode_overhead.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

NEW_TOKENS = 24  # evaluate.latency.max_new_tokens
PROMPT_TOKENS = 340  # about the system prompt plus one user turn


def _best_ms(fn, reps: int) -> float:
    fn()
    return min(_timed(fn) for _ in range(reps))


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1000


def measure(model, reps: int) -> dict[str, float]:
    ids = torch.randint(100, 1000, (1, PROMPT_TOKENS))

    def generate():
        model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=NEW_TOKENS,
                       min_new_tokens=NEW_TOKENS, do_sample=False)

    with torch.inference_mode():
        prefill = model(ids, use_cache=True)

        def prefill_only():
            model(ids, use_cache=True)

        def loop():
            # the cache grows in place, so every repetition starts from a fresh prefill's copy
            pkv = model(ids, use_cache=True).past_key_values
            nxt = prefill.logits[:, -1:].argmax(-1)
            for _ in range(NEW_TOKENS):
                out = model(nxt, past_key_values=pkv, use_cache=True)
                pkv, nxt = out.past_key_values, out.logits[:, -1:].argmax(-1)

        h = torch.randn(1, 1, model.config.hidden_size, dtype=model.dtype)

        def weights_only():
            for _ in range(NEW_TOKENS):
                for layer in model.model.layers:
                    layer.mlp(h)
                model.lm_head(h)

        prefill_ms = _best_ms(prefill_only, reps)
        loop_ms = _best_ms(loop, reps) - prefill_ms
        weights_ms = _best_ms(weights_only, reps)
    generate_ms = _best_ms(generate, reps)
    return {
        "generate_ms": round(generate_ms, 1),
        "prefill_ms": round(prefill_ms, 1),
        "decode_loop_ms": round(loop_ms, 1),
        "decode_loop_ms_per_token": round(loop_ms / NEW_TOKENS, 2),
        "mlp_and_head_ms_per_token": round(weights_ms / NEW_TOKENS, 2),
        "overhead_share_of_loop": round(1 - weights_ms / loop_ms, 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="data/base")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", default="bench/results/decode_overhead.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).eval()
    results = {dtype: measure(model.to(getattr(torch, dtype)), args.reps) for dtype in ("float32", "bfloat16")}
    report = {
        "command": "python bench/decode_overhead.py",
        "model": args.model, "threads": args.threads, "prompt_tokens": PROMPT_TOKENS, "new_tokens": NEW_TOKENS,
        "machine": platform.machine(), "processor": platform.processor(), "torch": torch.__version__,
        "latency_gate_ms": 500, "results": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
