"""Stage build_agentic_dataset: tool-call examples, every call executed against the real Task API.

Inputs:  specs/task_api_agentic.yaml, specs/task_api_tools.yaml, params.yaml `agentic_data:`
Outputs: data/agentic/{train.jsonl, DATASET_CARD.md}, data/metrics/agentic_data.json
Run:     dvc repro build_agentic_dataset
"""

from __future__ import annotations

import json
import sys

from fteforge import paths
from fteforge.cli import run_stage
from fteforge.console import console, quiet_libraries, stage
from fteforge.data.agentic import build_agentic_dataset
from fteforge.data.cards import render_stats_card
from fteforge.data.persona import no_call_reply
from fteforge.data.records import write_jsonl, write_text
from fteforge.params import AgenticDataParams, load_params
from fteforge.specs import load_spec_set


def main() -> None:
    quiet_libraries()
    params = load_params("agentic_data", AgenticDataParams)
    specs = load_spec_set(paths.SPECS)
    with stage("build_agentic_dataset"):
        # No-call replies come from the persona builder so both adapters learn the same words there.
        examples, stats = build_agentic_dataset(specs.agentic, specs.tools, seed=params.seed, scale=params.scale,
                                                no_call_replies=no_call_reply, framing=params.framing,
                                                persona_phrasings=params.persona_phrasings)
        write_text(paths.AGENTIC_CARD, render_stats_card("Agentic dataset", stats))
        write_text(paths.AGENTIC_STATS, json.dumps(stats, indent=2, sort_keys=True) + "\n")
        write_jsonl(paths.AGENTIC_TRAIN, [e.model_dump() for e in examples])
    console.print(f"agentic: {len(examples)} examples, no-call {stats['no_call_fraction']:.0%} -> {paths.AGENTIC_TRAIN}")


if __name__ == "__main__":
    sys.exit(run_stage(main))
