"""Free vs schema-constrained tool calls: what the constraint buys on the agentic suite, and what it costs.

Run:  .venv/bin/python bench/constrained_decoding.py [--model NAME=DIR ...] [--threads 2]
Writes bench/results/constrained_decoding.json.

For each model, both modes run the held-out agentic suite (data/eval/agentic.jsonl) through the
evaluation's agent loop and generator, then the latency measurement the evaluate stages use (batch 1,
30 timed runs). Reported per mode: agentic score, schema validity, tool selection, no-call accuracy,
suite wall time, latency p50/p95, and for the constrained mode how many decode steps were inside a
call, how many needed the ranked search beyond the top 64, and how many calls were already invalid
when they opened (left alone).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

DEFAULT_MODELS = ["agentic_adapter=data/adapters/task_api_agentic", "v4_ties=data/merges/v4_ties"]
KEYS = ("agentic.score", "agentic.schema_validity", "agentic.tool_selection", "agentic.no_call_accuracy",
        "agentic.hallucinated_tools")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", action="append", help="NAME=DIR (repeatable); default: the agentic adapter and v4_ties")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "constrained_decoding.json"))
    args = ap.parse_args()

    from fteforge.console import quiet_libraries

    quiet_libraries()
    import torch

    from fteforge import paths
    from fteforge.data.records import load_suite
    from fteforge.evaluation.generation import tool_call_constraint
    from fteforge.evaluation.runner import load_model, measure_latency, run_suites, suite_metrics
    from fteforge.evaluation.shared_prefix import PrefixCachedGenerator
    from fteforge.params import EvaluateParams, load_params
    from fteforge.specs import load_spec_set

    torch.set_num_threads(args.threads)
    specs = load_spec_set(ROOT / "specs")
    params = load_params("evaluate", EvaluateParams)
    cases = load_suite(paths.EVAL_SUITES["agentic"])
    traits = [t.name for t in specs.persona.traits]
    report: dict = {"command": " ".join(["bench/constrained_decoding.py", *sys.argv[1:]]), "cases": len(cases),
                    "threads": args.threads, "machine": platform.processor() or platform.machine(), "models": {}}
    for spec in args.model or DEFAULT_MODELS:
        name, folder = spec.split("=", 1)
        loaded = load_model(ROOT / folder, paths.BASE_DIR, "cpu")
        rows = {}
        for mode in ("free", "constrained"):
            made: list = []
            constraint = None
            if mode == "constrained":
                factory = tool_call_constraint(loaded.model, loaded.tokenizer, specs.tools)

                def constraint(factory=factory, made=made):
                    made.append(factory())
                    return made[-1]
            generator = PrefixCachedGenerator(loaded.model, loaded.tokenizer, params.batch_size, constraint)
            start = time.perf_counter()
            records = run_suites(cases, generator, loaded.tokenizer, specs, params.max_new_tokens.model_dump())
            suite_s = time.perf_counter() - start
            metrics = suite_metrics(records, traits)
            latency = measure_latency(generator, loaded.tokenizer, specs, params.latency.runs, params.latency.warmup,
                                      params.latency.max_new_tokens)
            rows[mode] = {k: metrics.get(k) for k in KEYS} | {
                "suite_s": round(suite_s, 1), "latency_p50_ms": round(latency["latency.p50_ms"], 1),
                "latency_p95_ms": round(latency["latency.p95_ms"], 1)}
            if made:
                rows[mode]["constraint"] = {k: sum(getattr(c, k) for c in made) for k in ("steps", "deep", "abandoned")}
            print(f"{name:16} {mode:11} agentic {rows[mode]['agentic.score']:.3f} schema "
                  f"{rows[mode]['agentic.schema_validity']:.3f} suite {suite_s:.0f}s "
                  f"p50/p95 {rows[mode]['latency_p50_ms']:.0f}/{rows[mode]['latency_p95_ms']:.0f} ms", flush=True)
        report["models"][name] = {"folder": folder, **rows}
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
