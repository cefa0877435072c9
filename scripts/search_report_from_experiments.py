"""Held-out results of a merge search's experiments, read back from the experiment refs.

For a search killed before it wrote its report. Usage:
    python scripts/search_report_from_experiments.py GRID BASELINE_SHA OUT
"""
import json
import subprocess
import sys

import yaml

grid, sha, out = sys.argv[1], sys.argv[2], sys.argv[3]
variants = yaml.safe_load(open(grid))["variants"]
runs = []
for n, cand in variants.items():
    ref = f"refs/exps/{sha[:2]}/{sha[2:]}/search-{n}"
    d = json.loads(subprocess.run(["git", "show", f"{ref}:data/evaluation/merges/{n}/EVALUATION_RESULTS.json"],
                                  capture_output=True, text=True, check=True).stdout)
    runs.append({"name": n, "experiment": f"search-{n}", "candidate": cand, "held_out_headline": d["headline"],
                 "failed_gates": d["gates_summary"]["failed_metrics"], "preservation": d.get("preservation")})
json.dump({"grid": grid, "baseline": sha[:7], "ranked_on": None,
           "note": "search killed (timeout) while validating the workspace candidates; variants read from their experiments, held-out suites only",
           "command": f"python {sys.argv[0]} {grid} {sha} {out}", "runs": runs}, open(out, "w"), indent=2)
