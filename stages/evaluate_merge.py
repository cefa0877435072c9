"""Stage evaluate_merge@<candidate>: one merge candidate on the held-out suites, against its sources.

Inputs:  data/merges/<candidate> (a full model, or a LoRA adapter for engine: peft), data/base,
         data/metrics/merge_<candidate>.json (size, update density), data/eval/*.jsonl, specs/,
         params.yaml `evaluate:`, data/evaluation/base/ and data/evaluation/adapters/*/ results
         (A/B reference and the preservation ratios' denominators)
Outputs: data/evaluation/merges/<candidate>/EVALUATION_RESULTS.json, .../cases.jsonl,
         data/metrics/eval_merge_<candidate>.json
Run:     dvc repro evaluate_merge@v2_ties   (or: python stages/evaluate_merge.py v2_ties)
"""

from __future__ import annotations

import sys

from fteforge import paths
from fteforge.cli import run_stage
from fteforge.console import console, quiet_libraries, stage
from fteforge.params import EvaluateParams, MergeParams, load_params
from fteforge.specs import load_spec_set


def main(candidate: str) -> None:
    quiet_libraries()
    from fteforge.evaluation.pipeline import evaluate_stage
    from fteforge.evaluation.report import summary_lines

    params = load_params("evaluate", EvaluateParams)
    load_params("merge", MergeParams).candidate(candidate)  # a clear error for an unknown name
    specs = load_spec_set(paths.SPECS)
    with stage(f"evaluate merge {candidate}") as step:
        results = evaluate_stage(paths.merge_model_id(candidate), "merge", paths.merge_dir(candidate), specs, params,
                                 merge_metrics=paths.merge_metrics(candidate), progress=step)
    console.print("\n".join(summary_lines(results)), markup=False)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python stages/evaluate_merge.py CANDIDATE")
    sys.exit(run_stage(lambda: main(sys.argv[1])))
