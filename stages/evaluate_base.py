"""Stage evaluate_base: the base model on the held-out suites, the reference every other model is compared with.

Inputs:  data/base, data/eval/{persona,agentic,combined}.jsonl, specs/ (gates, tools), params.yaml `evaluate:`
Outputs: data/evaluation/base/EVALUATION_RESULTS.json, data/evaluation/base/cases.jsonl,
         data/metrics/eval_base.json
Run:     dvc repro evaluate_base
"""

from __future__ import annotations

import sys

from fteforge import paths
from fteforge.cli import run_stage
from fteforge.console import console, quiet_libraries, stage
from fteforge.params import EvaluateParams, load_params
from fteforge.specs import load_spec_set


def main() -> None:
    quiet_libraries()
    from fteforge.evaluation.pipeline import evaluate_stage
    from fteforge.evaluation.report import summary_lines

    params = load_params("evaluate", EvaluateParams)
    specs = load_spec_set(paths.SPECS)
    with stage("evaluate base") as step:
        results = evaluate_stage(paths.EVAL_BASE, "base", paths.BASE_DIR, specs, params, progress=step)
    console.print("\n".join(summary_lines(results)), markup=False)


if __name__ == "__main__":
    sys.exit(run_stage(main))
