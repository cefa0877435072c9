"""Held-out results of a merge search's experiments, read back from the experiment refs.

For a search killed before it wrote its report. Usage:
    python scripts/search_report_from_experiments.py GRID BASELINE_SHA OUT
"""
import json
import sys
from pathlib import Path

import yaml

from fteforge.merging.search import EXP_PREFIX, existing_results

grid, sha, out = sys.argv[1], sys.argv[2], sys.argv[3]
runs = []
for name, candidate in yaml.safe_load(open(grid))["variants"].items():
    results = existing_results(Path("."), name, sha)
    if results is None:
        sys.exit(f"{grid}: variant {name} has no experiment {EXP_PREFIX}{name} on {sha}")
    runs.append({"name": name, "experiment": f"{EXP_PREFIX}{name}", "candidate": candidate,
                 "held_out_headline": results["headline"], "failed_gates": results["gates_summary"]["failed_metrics"],
                 "preservation": results.get("preservation")})
json.dump({"grid": grid, "baseline": sha[:7], "ranked_on": None,
           "note": "search killed (timeout) while validating the workspace candidates; variants read from their experiments, held-out suites only",
           "command": f"python {sys.argv[0]} {grid} {sha} {out}", "runs": runs}, open(out, "w"), indent=2)
