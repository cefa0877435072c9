"""Stage compare_candidates: the versions table (base, adapters, every merge) and the decision matrix.

Inputs:  data/evaluation/{base,adapters/*,merges/*}/EVALUATION_RESULTS.json, params.yaml `train.adapters`
         and `merge.candidates` (which results to read)
Outputs: data/evaluation/COMPARISON.md, data/evaluation/COMPARISON.json
Run:     dvc repro compare_candidates
"""

from __future__ import annotations

import json
import sys

from fteforge import paths
from fteforge.cli import run_stage
from fteforge.console import console, stage
from fteforge.data.records import write_text
from fteforge.params import MergeParams, TrainParams, load_params


def main() -> None:
    from fteforge.evaluation.pipeline import read_results
    from fteforge.evaluation.report import build_comparison

    ids = [paths.EVAL_BASE, *map(paths.adapter_model_id, load_params("train", TrainParams).adapters),
           *map(paths.merge_model_id, load_params("merge", MergeParams).candidates)]
    with stage("compare candidates"):
        data, markdown = build_comparison({i: read_results(i, "compare_candidates") for i in ids})
        write_text(paths.COMPARISON_JSON, json.dumps(data, indent=2, sort_keys=True) + "\n")
        write_text(paths.COMPARISON_MD, markdown)
    console.print(markdown, markup=False)


if __name__ == "__main__":
    sys.exit(run_stage(main))
