"""Stage build_persona_dataset: TaskMaster conversations from the persona spec's scenario matrix.

Inputs:  specs/taskmaster_persona.yaml, specs/task_api_agentic.yaml (system prompt), specs/task_api_tools.yaml,
         params.yaml `persona_data:`, data/agentic/train.jsonl (the call examples lent by agentic_call_share)
Outputs: data/persona/{train.jsonl, rejected.jsonl, DATASET_CARD.md, review_sample.md},
         data/metrics/persona_data.json
Run:     dvc repro build_persona_dataset
"""

from __future__ import annotations

import json
import sys

from fteforge import paths
from fteforge.cli import run_stage
from fteforge.console import console, quiet_libraries, stage
from fteforge.data.agentic import PERSONA_PHRASED_SOURCE
from fteforge.data.mixing import lend_call_examples, lent_card_section
from fteforge.data.persona import build_persona_dataset, render_card, render_review_sample
from fteforge.data.records import Example, load_examples, write_jsonl, write_text
from fteforge.errors import FteforgeError
from fteforge.params import PersonaDataParams, load_params
from fteforge.specs import load_spec_set


def load_lendable(share: float) -> list[Example]:
    if not share:
        return []
    if not paths.AGENTIC_TRAIN.is_file():
        raise FteforgeError(f"params.yaml persona_data.agentic_call_share = {share:g} lends examples from "
                            f"{paths.AGENTIC_TRAIN}, which does not exist. Fix: dvc repro build_agentic_dataset first "
                            f"(`dvc repro` orders the two), or set agentic_call_share: 0")
    # the agentic examples phrased like persona requests came from this builder's own scenes
    return [e for e in load_examples(paths.AGENTIC_TRAIN) if e.meta.get("source") != PERSONA_PHRASED_SOURCE]


def main() -> None:
    quiet_libraries()
    params = load_params("persona_data", PersonaDataParams)
    specs = load_spec_set(paths.SPECS)
    with stage("build_persona_dataset") as step:
        step(f"generating with {params.generator}")
        examples, rejected, card = build_persona_dataset(
            specs.persona, specs.agentic, specs.tools, generator=params.generator,
            generator_params=params.generator_params, seed=params.seed, oversample=params.oversample,
            min_total=params.min_total,
        )
        lent = lend_call_examples(load_lendable(params.agentic_call_share), params.agentic_call_share,
                                  specs.persona.adapter)
        write_jsonl(paths.PERSONA_REJECTED, rejected)
        write_text(paths.PERSONA_CARD, render_card(card)
                   + lent_card_section(lent, params.agentic_call_share, str(paths.AGENTIC_TRAIN)))
        write_text(paths.PERSONA_REVIEW, render_review_sample(examples, k=params.review_sample, seed=params.seed))
        summary = {k: card[k] for k in ("total", "target_total", "kept", "rejected", "filter_pass_rate",
                                         "mean_score", "diversity", "unique_replies", "unique_users")}
        if lent:
            summary["lent_call_examples"] = len(lent)
        write_text(paths.PERSONA_STATS, json.dumps(summary, indent=2, sort_keys=True) + "\n")
        # the training file goes last: its presence means the whole dataset was written
        write_jsonl(paths.PERSONA_TRAIN, [e.model_dump() for e in [*examples, *lent]])
    console.print(f"persona: {len(examples)} examples kept, {len(rejected)} rejected"
                  + (f", {len(lent)} agentic call examples lent" if lent else "") + f" -> {paths.PERSONA_TRAIN}")


if __name__ == "__main__":
    sys.exit(run_stage(main))
