"""Stage merge@<candidate>: one merge candidate from params.yaml `merge.candidates.<candidate>`.

Inputs:  data/base, data/adapters/<adapters named in the candidate's weights>, data/analysis/strategy.json
         (for method: strategy), params.yaml `merge.seed`, `merge.threads`, `merge.candidates.<candidate>`
Outputs: data/merges/<candidate>/ (mergekit: full model + mergekit_config.yml; peft: one merged adapter),
         data/metrics/merge_<candidate>.json (what was merged; the evaluation depends on it),
         data/run_stats/merge_<candidate>.json (wall time, peak RSS; nothing depends on it)
Run:     dvc repro merge@v2_ties
         dvc exp run -S merge.candidates.v2_ties.weights.task_api_persona=0.7   (reruns this candidate only)
"""

from __future__ import annotations

import json
import sys

from fteforge import paths
from fteforge.cli import run_stage
from fteforge.console import console, quiet_libraries, stage
from fteforge.data.records import write_text
from fteforge.params import MergeParams, load_params


def main(name: str) -> None:
    quiet_libraries()
    from fteforge.merging.build import RUN_STATS, build_merge

    params = load_params("merge", MergeParams)
    candidate = params.candidate(name)
    with stage(f"merge {name}") as step:
        step(f"{candidate.engine} {candidate.method}")
        metrics = build_merge(
            name, candidate, base_dir=paths.BASE_DIR, adapters_root=paths.ADAPTERS_DIR,
            decision_path=paths.STRATEGY_DECISION, out_dir=paths.merge_dir(name), cache_dir=paths.LORA_MERGE_CACHE,
            seed=params.seed, threads=params.threads,
        )
        facts = {k: v for k, v in metrics.items() if k not in RUN_STATS}
        run = {k: v for k, v in metrics.items() if k in RUN_STATS}
        write_text(paths.merge_metrics(name), json.dumps(facts, indent=2, sort_keys=True) + "\n")
        write_text(paths.merge_run_stats(name), json.dumps(run, indent=2, sort_keys=True) + "\n")
    console.print(f"{name}: {metrics['merge.engine']} {metrics['merge.method']}, {metrics['merge.size_mb']:.1f} MB, "
                  f"{metrics['merge.wall_s']:.0f} s, peak RSS {metrics['merge.peak_rss_mb']:.0f} MB")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python stages/merge.py CANDIDATE")
    sys.exit(run_stage(lambda: main(sys.argv[1])))
