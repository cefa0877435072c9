"""Stage select_release: pick the production model from the evaluated merge candidates.

Inputs:  data/evaluation/merges/<candidate>/EVALUATION_RESULTS.json for every candidate in params.yaml,
         the unified spec's `selection:` rule, params.yaml `release.candidate`, `release.allow_failing`
Outputs: data/release/selection.json (the decision, its reasons, every candidate ranked),
         data/release/SELECTION.md
Run:     dvc repro select_release
Fails when no candidate passes every gate (naming the closest and its failed gates), unless
release.allow_failing is true; the release is then marked REQUIRES ITERATION.
"""

from __future__ import annotations

import json
import sys

from fteforge import paths
from fteforge.cli import run_stage
from fteforge.console import console
from fteforge.data.records import write_text
from fteforge.evaluation.pipeline import read_results
from fteforge.params import MergeParams, ReleaseParams, load_params
from fteforge.release.selection import select_release, selection_markdown
from fteforge.specs import load_spec_set


def main() -> None:
    params = load_params("release", ReleaseParams)
    candidates = load_params("merge", MergeParams).candidates
    specs = load_spec_set(paths.SPECS)
    results = {c: read_results(paths.merge_model_id(c), "select_release") for c in candidates}
    decision = select_release(results, specs.unified.selection, forced=params.candidate,
                              allow_failing=params.allow_failing, spec_file=str(specs.files["UnifiedModelSpec"]))
    write_text(paths.SELECTION_JSON, json.dumps(decision, indent=2, sort_keys=True) + "\n")
    write_text(paths.SELECTION_MD, selection_markdown(decision))
    console.print(f"selected {decision['selected']} ({decision['status']})", markup=False)
    for reason in decision["reasons"]:
        console.print(f"  - {reason}", markup=False)


if __name__ == "__main__":
    sys.exit(run_stage(main))
