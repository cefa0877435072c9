"""Stage build_eval_suites: held-out persona, agentic and combined cases, checked for leakage.

Inputs:  the four specs, params.yaml `eval_suites:`, data/persona/train.jsonl and data/agentic/train.jsonl
         (only to prove no eval input leaked from them)
Outputs: data/eval/{persona,agentic,combined}.jsonl, data/metrics/eval_suites.json
Run:     dvc repro build_eval_suites
"""

from __future__ import annotations

import json
import sys

from fteforge import paths
from fteforge.cli import run_stage
from fteforge.console import console, quiet_libraries, stage
from fteforge.data.evalsuites import build_eval_suites
from fteforge.data.records import load_examples, write_jsonl, write_text
from fteforge.params import EvalSuiteParams, load_params
from fteforge.specs import load_spec_set


def main() -> None:
    quiet_libraries()
    params = load_params("eval_suites", EvalSuiteParams)
    specs = load_spec_set(paths.SPECS)
    with stage("build_eval_suites"):
        train = load_examples(paths.PERSONA_TRAIN) + load_examples(paths.AGENTIC_TRAIN)
        suites, report = build_eval_suites(specs, params, train)
        write_text(paths.EVAL_SUITE_STATS, json.dumps(report, indent=2, sort_keys=True) + "\n")
        for kind, cases in suites.items():
            write_jsonl(paths.EVAL_SUITES[kind], [c.model_dump(exclude_none=True) for c in cases])
    console.print(", ".join(f"{k}: {len(v)} cases" for k, v in suites.items()) + f"; leaks: {report['leaks']}")


if __name__ == "__main__":
    sys.exit(run_stage(main))
