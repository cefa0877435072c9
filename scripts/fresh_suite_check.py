"""Score models on a fresh draw of the held-out suites, to check a choice made on the default ones.

    python scripts/fresh_suite_check.py --seed 2000 --model v4_ties=data/merges/v4_ties \
        --model v2_ties=data/merges/v2_ties --out bench/results/fresh_suites_seed2000.json

A merge search picks the best of several variants on the default suites (eval_suites.seed), so the
winner's score there is biased upward by the pick itself. The same builders with another seed draw new
cases from the same held-out pools and templates, checked for leakage against the training data like
the pipeline's own; the report also counts how many inputs repeat a default-suite input.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from fteforge import paths  # noqa: E402
from fteforge.cli import run_stage  # noqa: E402
from fteforge.console import console, quiet_libraries  # noqa: E402

KEYS = ("persona.overall_score", "persona.min_trait_score", "persona.boundary_violations", "agentic.score",
        "agentic.schema_validity", "agentic.no_call_accuracy", "agentic.tool_selection", "combined.score")


def main(args: argparse.Namespace) -> None:
    quiet_libraries()
    from fteforge.data.evalsuites import build_eval_suites
    from fteforge.data.records import load_examples, load_suite
    from fteforge.evaluation.runner import evaluate_model
    from fteforge.params import EvalSuiteParams, EvaluateParams, load_params
    from fteforge.specs import load_spec_set

    specs = load_spec_set(paths.SPECS)
    suite_params = load_params("eval_suites", EvalSuiteParams).model_copy(update={"seed": args.seed})
    train = load_examples(paths.PERSONA_TRAIN) + load_examples(paths.AGENTIC_TRAIN)
    suites, report = build_eval_suites(specs, suite_params, train)  # raises on any leak
    default_inputs = {c.user_text for p in paths.EVAL_SUITES.values() for c in load_suite(p)}
    cases = [c for kind in ("persona", "agentic", "combined") for c in suites[kind]]
    repeats = sum(c.user_text in default_inputs for c in cases)
    console.print(f"seed {args.seed}: {len(cases)} cases, {repeats} repeat a default-suite input, leaks 0")

    # the pipeline's own decoding and serving (params.yaml `evaluate`), so the two draws compare
    params = load_params("evaluate", EvaluateParams).model_copy(update={"threads": args.threads})
    out = {"seed": args.seed, "cases": report["cases"], "repeats_default_suite_input": repeats,
           "leakage": {"training_inputs_compared": report["training_inputs_compared"], "leaks": 0},
           "command": " ".join(sys.argv), "models": {}}
    for spec in args.model:
        name, _, folder = spec.partition("=")
        start = time.perf_counter()
        ev = evaluate_model(Path(folder), cases, specs, params, base_dir=paths.BASE_DIR, latency=False,
                            progress=lambda m, n=name: console.print(f"{n}: {m}", markup=False))
        metrics = {k: ev.metrics.get(k) for k in KEYS}
        out["models"][name] = {"folder": folder, "metrics": metrics, "wall_s": round(time.perf_counter() - start, 1)}
        console.print(f"{name}: " + ", ".join(f"{k} {v:.3f}" for k, v in metrics.items() if v is not None),
                      markup=False)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2, sort_keys=True) + "\n")
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, required=True, help="eval_suites seed of the fresh draw")
    parser.add_argument("--model", action="append", required=True, metavar="NAME=FOLDER")
    parser.add_argument("--out", required=True)
    parser.add_argument("--threads", type=int, default=2)
    a = parser.parse_args()
    sys.exit(run_stage(lambda: main(a)))
