"""Batched vs single-stream greedy generation on the real base: tokens/s and their ratio (target >= 5x).

Run:  .venv/bin/python bench/generation_throughput.py [--prompts 32] [--batch-size 32] [--single 6] [--max-new-tokens 32]
Writes bench/results/generation_throughput.json.

Prompts are the first agentic evaluation cases rendered through the agent loop (~340 tokens each, ~300
of them the shared system prompt), as the evaluate stages see them. Four ways to produce the same
greedy tokens:

* single_stream: `generation.generate_one`, one prompt at a time, the whole prompt prefilled each time
  (what a naive evaluation loop does; the reference for the ratio);
* single_stream_cached_prefix: one at a time, the system prompt's KV cache computed once;
* batched: `generation.generate_batch`, left-padded batches, every prompt prefilled in full;
* batched_cached_prefix: `shared_prefix.PrefixCachedGenerator`, what the evaluate stages use.

tokens/s counts generated tokens up to and including each end of turn (the base model rarely stops, so
most completions run to --max-new-tokens). Single-stream runs use fewer prompts (--single) to save time;
rates are per token, so the ratio is unaffected.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", default=str(ROOT / "data" / "base"))
    ap.add_argument("--suite", default=str(ROOT / "data" / "eval" / "agentic.jsonl"))
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--single", type=int, default=6, help="prompts for the single-stream runs")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "generation_throughput.json"))
    args = ap.parse_args()

    from fteforge.console import quiet_libraries

    quiet_libraries()
    import torch

    from fteforge.agent import conversation, render
    from fteforge.data.records import load_suite
    from fteforge.evaluation.generation import _encode, generate_batch, generate_one
    from fteforge.evaluation.runner import load_model
    from fteforge.evaluation.shared_prefix import PrefixCachedGenerator
    from fteforge.specs import load_spec_set

    torch.set_num_threads(args.threads)
    specs = load_spec_set(ROOT / "specs")
    loaded = load_model(args.base)  # the evaluate stages' loader (safetensors, copy-free GQA attention on CPU)
    model, tok = loaded.model, loaded.tokenizer
    cases = load_suite(Path(args.suite))[: args.prompts]
    prompts = [render(tok, conversation(specs.agentic, c.user_text), specs.tools, c.today or "2026-11-23",
                      add_generation_prompt=True) for c in cases]
    cap = args.max_new_tokens
    generate_one(model, tok, prompts[0], 4)  # warm up allocator and kernels

    def n_tokens(text: str) -> int:
        # decoded text re-encoded: close to the generated count (stop token excluded, +1 for it when short)
        n = len(_encode(tok, text))
        return min(cap, n + 1) if n < cap else cap

    runs: dict[str, dict] = {}

    def timed(name: str, fn, used: list[str]) -> list[str]:
        start = time.perf_counter()
        outs = fn()
        wall = time.perf_counter() - start
        toks = sum(n_tokens(o) for o in outs)
        runs[name] = {"prompts": len(used), "new_tokens": toks, "wall_s": round(wall, 3),
                      "tokens_per_s": round(toks / wall, 2)}
        print(f"{name:30s} {len(used):3d} prompts {toks:5d} tokens {wall:7.1f} s {toks / wall:7.1f} tok/s", flush=True)
        return outs

    few = prompts[: args.single]
    single = timed("single_stream", lambda: [generate_one(model, tok, p, cap) for p in few], few)
    one = PrefixCachedGenerator(model, tok, batch_size=1)
    one([few[0]], 2, prefix_from=prompts)  # the system prompt's cache, built outside the timing
    timed("single_stream_cached_prefix", lambda: [one([p], cap, prefix_from=prompts)[0] for p in few], few)
    batched = timed("batched", lambda: generate_batch(model, tok, prompts, cap, args.batch_size), prompts)
    gen = PrefixCachedGenerator(model, tok, batch_size=args.batch_size)
    gen(prompts[:1], 2)
    cached = timed("batched_cached_prefix", lambda: gen(prompts, cap), prompts)

    ref = runs["single_stream"]["tokens_per_s"]
    result = {
        "model": args.base, "prompt_tokens": [len(_encode(tok, p)) for p in prompts],
        "max_new_tokens": cap, "batch_size": args.batch_size, "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
        "load_average_1m": os.getloadavg()[0], "runs": runs,
        "ratio_batched_vs_single": round(runs["batched"]["tokens_per_s"] / ref, 2),
        "ratio_batched_cached_prefix_vs_single": round(runs["batched_cached_prefix"]["tokens_per_s"] / ref, 2),
        "target_ratio": 5.0,
        # the single-stream runs take the first prompts of the batched ones: greedy must give the same text
        "outputs_equal": single == batched[: len(single)] == cached[: len(single)],
    }
    result["meets_target"] = result["ratio_batched_cached_prefix_vs_single"] >= result["target_ratio"]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"ratio batched (cached prefix) / single stream: {result['ratio_batched_cached_prefix_vs_single']}x "
          f"(plain batched {result['ratio_batched_vs_single']}x); outputs equal: {result['outputs_equal']}; wrote {out}")


if __name__ == "__main__":
    main()
