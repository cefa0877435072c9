"""One model of the pipeline served several ways on CPU, each through the whole held-out evaluation.

    .venv/bin/python bench/serving_precision.py [--candidate v2_ties | --adapter task_api_persona]
        [--variants fp32 bf16_fp32_attention int8_weights] [--out bench/results/serving_precision.json]

Needs the pipeline's outputs (`dvc repro evaluate_merge@<candidate>`). Each variant runs the whole
held-out evaluation (the same cases, constrained tool calls and scorers as evaluate_merge) and the
30-run latency measurement, then the unified spec's gates are checked on it. The question is whether
the latency gate (p95 < 500 ms at batch 1) can be met on this 2-core CPU by fewer weight bytes per
token, and what that costs in the scores. Variants:

* fp32, bf16: the model as loaded, or cast to bf16 (attention in bf16 too);
* int8, int8_body: torch's dynamic quantization of every Linear layer (weights per output channel,
  activations per token at run time); int8_body leaves the vocabulary projection in fp32;
* bf16_fp32_attention, int8_weights: what `evaluate.serving: bf16 / int8_weights` serve
  (src/fteforge/evaluation/serving.py: int8 weights with bf16 activations, attention in fp32);
* int8_weights_with_head: int8_weights with the vocabulary projection in int8 as well.

Results of variants measured before stay in the --out file; a variant measured again replaces its entry.
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

VARIANTS = ("fp32", "bf16", "int8", "int8_body", "bf16_fp32_attention", "int8_weights", "int8_weights_with_head")
HEADLINE = ("persona.overall_score", "agentic.score", "agentic.no_call_accuracy", "combined.score",
            "latency.p50_ms", "latency.p95_ms", "latency.ms_per_token")


def serve_as(model, variant: str):
    from fteforge.evaluation import serving

    if variant in ("bf16_fp32_attention", "int8_weights"):  # what evaluate.serving bf16 / int8_weights serve
        return serving.serve_as(model, "bf16" if variant == "bf16_fp32_attention" else variant)
    if variant == "int8_weights_with_head":  # the vocabulary projection in int8 too
        serving.serve_as(model, "bf16")
        serving.quantize_linears(model)
        return model
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
    ap.add_argument("--adapter", default=None, help="evaluate this adapter (merged into the base) instead of a candidate")
    ap.add_argument("--variants", nargs="+", default=["fp32", "bf16", "int8"], choices=VARIANTS)
    ap.add_argument("--out", default="bench/results/serving_precision.json")
    args = ap.parse_args()
    # every variant starts from the fp32 model; serve_as below converts it
    params = load_params("evaluate", EvaluateParams).model_copy(update={"serving": "fp32"})
    torch.set_num_threads(params.threads or torch.get_num_threads())
    specs = load_spec_set(paths.SPECS)
    cases, suites = load_suites(paths.EVAL_SUITES, params.max_cases)
    base_results = read_results(paths.EVAL_BASE, "the A/B comparison")
    adapter_results = {a: read_results(paths.adapter_model_id(a), "preservation") for a in specs.adapters}
    report = {"benchmark": "serving_precision", "command": "python bench/serving_precision.py " + " ".join(sys.argv[1:]),
              "candidate": args.candidate, "threads": torch.get_num_threads(),
              "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
              "variants": {}}
    if Path(args.out).is_file():  # variants measured before stay, a rerun of one replaces it
        report["variants"] = json.loads(Path(args.out).read_text()).get("variants", {})
    if args.adapter:
        model_dir, model_id, role = paths.adapter_dir(args.adapter), paths.adapter_model_id(args.adapter), "adapter"
        report["candidate"] = model_id
    else:
        model_dir, model_id, role = paths.merge_dir(args.candidate), paths.merge_model_id(args.candidate), "merge"
    for variant in args.variants:
        ev = evaluate_model(model_dir, cases, specs, params, base_dir=paths.BASE_DIR,
                            prepare=lambda model, v=variant: serve_as(model, v))
        ev.system["serving"] = variant
        records, metrics, suites_s = ev.records, ev.metrics, ev.timings["suites_s"]
        ab = win_rate(persona_case_scores(records), case_scores(base_results), params.bootstrap_samples, params.seed)
        results = build_results(model_id, role, ev, specs, suites=suites, ab=ab, base_results=base_results,
                                adapter_results=adapter_results if role == "merge" else None)
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
