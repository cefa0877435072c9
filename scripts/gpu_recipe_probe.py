"""Fast recipe probes on a lent GPU: train adapter variants with the TRL backend, score each on a suite.

TRL + PEFT in fp32 on CUDA reproduces the CPU run's losses (agentic final loss 0.2827 on both, see
bench/results/gpu/), so a GPU minute answers a question that costs ten CPU minutes: does this data or
knob change move the held-out score? Winners then go through `dvc exp run` on CPU like any experiment.

    PYTHONPATH=/tmp/site:src python3 scripts/gpu_recipe_probe.py --variants .gpu3/variants.json \
        --suite .gpu3/agentic_eval.jsonl --gguf /tmp/base.gguf --budget-s 420

variants.json: [{"name": ..., "adapter": "task_api_agentic", "data": "path.jsonl", "seed": 0,
                 "overrides": {"epochs": 2, "lora": {"layers": [15, ..., 29]}}, "eval": true}, ...]
A merge variant combines adapters trained by earlier variants in LoRA space (PEFT `cat` is the exact
sum of the two updates, i.e. mergekit task_arithmetic at weights 1.0/1.0) and is scored like one:
                {"name": ..., "merge": {"task_api_persona": "<variant>", "task_api_agentic": "<variant>"},
                 "method": "cat", "weights": {"task_api_persona": 1.0, "task_api_agentic": 1.0}}
--suite takes one or more suite files; each is scored on its own (`suites`), the first also at the top level.
scripts/gpu_probe_parallel.sh runs several variants files at once, one process each.
Results go to $OUT/recipe_probe.json, rewritten after every variant.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def score(model_dir: Path, base: Path, suites: list[Path]) -> dict:
    from fteforge import paths
    from fteforge.data.records import load_suite
    from fteforge.evaluation.runner import evaluate_model
    from fteforge.params import EvaluateParams, load_params
    from fteforge.specs import load_spec_set

    specs = load_spec_set(paths.SPECS)
    ev_params = load_params("evaluate", EvaluateParams)
    out: dict = {"eval_s": 0.0, "suites": {}}
    for i, f in enumerate(suites):
        t = time.perf_counter()
        ev = evaluate_model(model_dir, load_suite(f), specs, ev_params, base_dir=base, latency=False)
        res = {"metrics": {k: val for k, val in ev.metrics.items()
                           if k.split(".")[0] in ("agentic", "persona", "combined") and not isinstance(val, dict)},
               "failed": [{"id": r.id, "reason": r.reason[:200]} for r in ev.records if not r.passed]}
        out["eval_s"] += round(time.perf_counter() - t, 1)
        out["eval_device"] = ev.system.get("device_name")
        out["suites"][f.name] = res
        if i == 0:  # the first suite's numbers stay at the top level, as before
            out.update(res)
    return out


def run_merge(v: dict, base: Path, suites: list[Path], work: Path) -> dict:
    from fteforge.merging.engines.peft_engine import merge_lora

    out_dir = work / "adapters" / v["name"]
    adapters = {name: work / "adapters" / variant for name, variant in v["merge"].items()}
    t = time.perf_counter()
    merge_lora(base, adapters, out_dir, combination_type=v.get("method", "cat"),
               weights=v.get("weights", dict.fromkeys(adapters, 1.0)), density=v.get("density"))
    res = {"merge_s": round(time.perf_counter() - t, 1), "parts": v["merge"]}
    if suites:
        res.update(score(out_dir, base, suites))
    return res


def run_variant(v: dict, base: Path, suites: list[Path], work: Path) -> dict:
    import torch

    from fteforge import paths
    from fteforge.data.records import load_examples
    from fteforge.params import TrainKnobs, TrainParams, _deep_merge, load_params
    from fteforge.specs import load_spec_set
    from fteforge.training.trainer import train_adapter

    specs = load_spec_set(paths.SPECS)
    params = load_params("train", TrainParams)
    knobs = TrainKnobs.model_validate(_deep_merge(params.knobs_for(v["adapter"]).model_dump(), v.get("overrides", {})))
    examples = load_examples(Path(v["data"]))
    out_dir = work / "adapters" / v["name"]
    t = time.perf_counter()
    metrics = train_adapter(v["adapter"], base, examples, specs.tools, knobs, backend="trl", seed=v.get("seed", params.seed),
                            threads=params.threads, out_dir=out_dir, work_dir=work / "ckpt", gates=[],
                            live_dir=None, progress=None)
    res = {"knobs": knobs.model_dump(), "seed": v.get("seed", params.seed), "examples": len(examples),
           "precision": metrics.get("train.precision"), "train_process_s": round(time.perf_counter() - t, 1),
           **{k: metrics[k] for k in ("train.final_loss", "train.first_loss", "train.steps", "train.wall_s",
                                       "train.tokens_per_s", "adapter.size_mb")}}
    if v.get("eval", True) and suites:
        res.update(score(out_dir, base, suites))
    torch.cuda.empty_cache()
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", required=True)
    ap.add_argument("--suite", nargs="*", default=[])
    ap.add_argument("--gguf", default="/tmp/base.gguf")
    ap.add_argument("--base", default="/tmp/base")
    ap.add_argument("--work", default="/tmp/probe")
    ap.add_argument("--budget-s", type=float, default=420)
    ap.add_argument("--out")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    os.chdir(ROOT)
    deadline = time.monotonic() + args.budget_s
    out = Path(args.out or Path(os.environ.get("OUT", "/tmp")) / "recipe_probe.json")
    data: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%S"), "variants": {}, "argv": sys.argv[1:]}

    def save() -> None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")

    base = Path(args.base)
    if not (base / "model.safetensors").is_file():
        from fteforge.models.base import materialize_base
        from fteforge.params import BaseParams, load_params

        t = time.perf_counter()
        bp = load_params("base", BaseParams).model_copy(update={"source": "local", "local_path": args.gguf})
        data["base_fingerprint"] = materialize_base(bp, base, progress=lambda m: None)
        data["base_s"] = round(time.perf_counter() - t, 1)
        save()
    import torch

    data["device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    for v in json.loads(Path(args.variants).read_text()):
        need = v.get("need_s", 60)
        if deadline - time.monotonic() < need:
            data["variants"][v["name"]] = {"status": "skipped", "why": f"under {need}s left"}
            save()
            continue
        t = time.perf_counter()
        try:
            run = run_merge if "merge" in v else run_variant
            res = {"status": "ok", **run(v, base, [Path(f) for f in args.suite], Path(args.work))}
        except Exception as exc:  # noqa: BLE001 - recorded, the next variant still runs
            res = {"status": "error", "error": f"{type(exc).__name__}: {exc}"[:2000],
                   "traceback": traceback.format_exc()[-3000:]}
        res["process_s"] = round(time.perf_counter() - t, 1)
        m = res.get("metrics", {})
        print(f"== {v['name']}: {res['status']} loss {res.get('train.final_loss')} "
              f"persona {m.get('persona.overall_score')} agentic {m.get('agentic.score')} "
              f"combined {m.get('combined.score')} ({res['process_s']}s)", flush=True)
        data["variants"][v["name"]] = res
        save()
    data["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    save()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
