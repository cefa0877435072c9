"""Stage evaluate_adapter@<adapter>: one LoRA adapter (merged into the base) on the held-out suites.

Inputs:  data/adapters/<adapter>, data/base, data/eval/*.jsonl, specs/, params.yaml `evaluate:`,
         data/evaluation/base/EVALUATION_RESULTS.json (the A/B reference)
Outputs: data/evaluation/adapters/<adapter>/EVALUATION_RESULTS.json, .../cases.jsonl,
         data/metrics/eval_adapter_<adapter>.json
Run:     dvc repro evaluate_adapter@task_api_persona   (or: python stages/evaluate_adapter.py task_api_persona)
"""

from __future__ import annotations

import sys

from fteforge import paths
from fteforge.cli import run_stage
from fteforge.console import console, quiet_libraries, stage
from fteforge.errors import FteforgeError
from fteforge.params import EvaluateParams, load_params
from fteforge.specs import load_spec_set


def main(adapter: str) -> None:
    quiet_libraries()
    from fteforge.evaluation.pipeline import evaluate_stage
    from fteforge.evaluation.report import summary_lines

    params = load_params("evaluate", EvaluateParams)
    specs = load_spec_set(paths.SPECS)
    if adapter not in specs.adapters:
        raise FteforgeError(f"adapter {adapter!r} is not named by the specs; known: {specs.adapters}")
    with stage(f"evaluate adapter {adapter}") as step:
        results = evaluate_stage(paths.adapter_model_id(adapter), "adapter", paths.adapter_dir(adapter), specs,
                                 params, progress=step)
    console.print("\n".join(summary_lines(results)), markup=False)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python stages/evaluate_adapter.py ADAPTER")
    sys.exit(run_stage(lambda: main(sys.argv[1])))
