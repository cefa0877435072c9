"""Stage analyze_adapters: what each adapter changed, where the two fight, and which merge method the spec picks.

Inputs:  data/adapters/<source adapters of specs/task_api_unified.yaml>, data/base/fingerprint.json,
         params.yaml `analysis:`
Outputs: data/analysis/ (analysis.json, ANALYSIS.md, strategy.json, heatmap_<metric>.png),
         data/metrics/analysis.json
Run:     dvc repro analyze_adapters
"""

from __future__ import annotations

import json
import sys

from fteforge import paths
from fteforge.cli import run_stage
from fteforge.console import console, quiet_libraries, stage
from fteforge.data.records import write_text
from fteforge.errors import FteforgeError
from fteforge.params import AnalysisParams, load_params
from fteforge.specs import load_spec_set


def main() -> None:
    quiet_libraries()
    from fteforge.merging.analysis import analyze_sources, heatmap_png, render_analysis_md

    params = load_params("analysis", AnalysisParams)
    unified = load_spec_set(paths.SPECS).unified
    adapters = {name: paths.adapter_dir(name) for name in unified.source_adapters}
    for name, folder in adapters.items():
        if not folder.is_dir():
            raise FteforgeError(f"{folder}: adapter {name!r} (specs/task_api_unified.yaml source_adapters) is not built; "
                                f"run `dvc repro train_adapter@{name}`")
    if not paths.BASE_FINGERPRINT.is_file():
        raise FteforgeError(f"{paths.BASE_FINGERPRINT} is missing; run `dvc repro prepare_base`")
    base_fp = json.loads(paths.BASE_FINGERPRINT.read_text())

    with stage("analyze_adapters") as step:
        step("dW statistics and interference")
        report = analyze_sources(adapters, base_fp, unified.merge_strategy, params.significance)
        decision = report["decision"]
        figures = report["pairs"][decision["pair"]]
        heatmaps = {}
        for metric in params.heatmaps:
            step(f"heat map {metric}")
            heatmaps[metric] = heatmap_png(figures, paths.heatmap(metric), metric=metric).name
        write_text(paths.ANALYSIS_JSON, json.dumps(report, indent=2, sort_keys=True) + "\n")
        # only the outcome: merges depend on this file, and should rerun when the choice flips, not when a figure moves
        outcome = {"method": decision["method"], "conflicts_detected": decision["conflicts_detected"]}
        write_text(paths.STRATEGY_DECISION, json.dumps(outcome, indent=2, sort_keys=True) + "\n")
        write_text(paths.ANALYSIS_MD, render_analysis_md(report["adapters"], report["notes"], figures, decision, heatmaps))
        overall = decision["figures"]
        write_text(paths.ANALYSIS_METRICS, json.dumps({
            "analysis.sign_conflict_rate": round(overall["sign_conflict_rate"], 6),
            "analysis.mean_cosine": round(overall["mean_cosine"], 6),
            "analysis.norm_ratio": round(overall["norm_ratio"], 6),
            "analysis.conflicts_detected": decision["conflicts_detected"],
            "analysis.method": decision["method"],
        }, indent=2, sort_keys=True) + "\n")
    console.print(f"strategy: {decision['method']} - " + "; ".join(decision["reasons"]))


if __name__ == "__main__":
    sys.exit(run_stage(main))
