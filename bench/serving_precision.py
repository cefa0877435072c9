"""One released model served three ways on CPU: fp32, bf16 weights, int8 dynamic quantization.

    .venv/bin/python bench/serving_precision.py [--candidate v2_ties] [--variants fp32 bf16 int8]
        [--out bench/results/serving_precision.json]

Needs the pipeline's outputs (`dvc repro evaluate_merge@<candidate>`). Each variant runs the whole
held-out evaluation (the same cases, constrained tool calls and scorers as evaluate_merge) and the
30-run latency measurement, then the unified spec's gates are checked on it. The question is whether
the latency gate (p95 < 500 ms at batch 1) can be met on this 2-core CPU by fewer weight bytes per
token, and what that costs in the scores. int8 is torch's dynamic quantization of every Linear layer
(weights per output channel, activations per token at run time); the embedding stays fp32;
int8_body leaves the vocabulary projection in fp32 too.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from fteforge.console import quiet_libraries  # noqa: E402

quiet_libraries()

import torch  # noqa: E402

from fteforge import paths  # noqa: E402
from fteforge.evaluation.pipeline import load_suites, read_results  # noqa: E402
from fteforge.evaluation.report import build_results, case_scores  # noqa: E402
from fteforge.evaluation.runner import evaluate_model, persona_case_scores, win_rate  # noqa: E402
from fteforge.params import EvaluateParams, load_params  # noqa: E402
from fteforge.specs import load_spec_set  # noqa: E402

HEADLINE = ("persona.overall_score", "agentic.score", "agentic.no_call_accuracy", "combined.score",
            "latency.p50_ms", "latency.p95_ms", "latency.ms_per_token")


def serve_as(model, variant: str):
    if variant == "bf16":
        return model.to(torch.bfloat16)
    if variant in ("int8", "int8_body"):
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        if variant == "int8":
            return quantize_dynamic(model, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8)
        # the decoder's layers only: the vocabulary projection (tied to the embedding) stays fp32
        body = model.get_decoder()
        quantize_dynamic(body, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8, inplace=True)
    return model


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--candidate", default="v2_ties")
    ap.add_argument("--variants", nargs="+", default=["fp32", "bf16", "int8"], choices=("fp32", "bf16", "int8", "int8_body"))
    ap.add_argument("--out", default="bench/results/serving_precision.json")
    args = ap.parse_args()
    params = load_params("evaluate", EvaluateParams)
    torch.set_num_threads(params.threads or torch.get_num_threads())
    specs = load_spec_set(paths.SPECS)
    cases, suites = load_suites(paths.EVAL_SUITES, params.max_cases)
    base_results = read_results(paths.EVAL_BASE, "the A/B comparison")
    adapter_results = {a: read_results(paths.adapter_model_id(a), "preservation") for a in specs.adapters}
    report = {"benchmark": "serving_precision", "command": "python bench/serving_precision.py " + " ".join(sys.argv[1:]),
              "candidate": args.candidate, "threads": torch.get_num_threads(),
              "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
              "variants": {}}
    for variant in args.variants:
        ev = evaluate_model(paths.merge_dir(args.candidate), cases, specs, params, base_dir=paths.BASE_DIR,
                            prepare=lambda model, v=variant: serve_as(model, v))
        ev.system["serving"] = variant
        records, metrics, suites_s = ev.records, ev.metrics, ev.timings["suites_s"]
        ab = win_rate(persona_case_scores(records), case_scores(base_results), params.bootstrap_samples, params.seed)
        results = build_results(f"merges/{args.candidate}", "merge", ev, specs, suites=suites, ab=ab,
                                base_results=base_results, adapter_results=adapter_results)
        entry = {k: round(metrics[k], 4) for k in HEADLINE if metrics.get(k) is not None}
        entry["suites_s"] = round(suites_s, 1)
        # peak RSS is the process's: later variants inherit the earlier ones' peak, so that gate is left out
        entry["gates_failed"] = [g["metric"] for g in results["gates"]
                                 if g["status"] == "FAIL" and g["metric"] != "memory.peak_rss_gb"]
        entry["failed_agentic_cases"] = sorted(r.id for r in records if r.kind == "agentic" and not r.passed)
        report["variants"][variant] = entry
        print(variant, json.dumps({k: v for k, v in entry.items() if k != "failed_agentic_cases"}), flush=True)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
