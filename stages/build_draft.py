"""Stage build_draft: the n-gram table the batch-1 stream decoder guesses tokens from (evaluation/draft.py).

Inputs:  data/persona/train.jsonl, data/agentic/train.jsonl (the assistant turns the adapters learn),
         data/base (its tokenizer and chat template), specs/ (the tools rendered into each prompt),
         params.yaml `draft:`
Outputs: data/draft/ngrams.json, data/metrics/draft.json
Run:     dvc repro build_draft
"""

from __future__ import annotations

import json
import sys

from fteforge import paths
from fteforge.cli import run_stage
from fteforge.console import console, quiet_libraries, stage
from fteforge.data.records import load_examples, write_text
from fteforge.errors import FteforgeError
from fteforge.params import DraftParams, load_params
from fteforge.specs import load_spec_set


def main() -> None:
    quiet_libraries()
    from transformers import AutoTokenizer

    from fteforge.data.draft_corpus import training_rows
    from fteforge.evaluation.draft import NgramDraft, vocab_digest

    params = load_params("draft", DraftParams)
    specs = load_spec_set(paths.SPECS)
    for name, path in paths.DATASET_FILES.items():
        if not path.is_file():
            raise FteforgeError(f"{path}: the {name} dataset is not built; run `dvc repro build_{name}_dataset`")
    if not (paths.BASE_DIR / "tokenizer_config.json").is_file():
        raise FteforgeError(f"{paths.BASE_DIR}: no tokenizer; run `dvc repro prepare_base`")
    with stage("build_draft") as step:
        tokenizer = AutoTokenizer.from_pretrained(paths.BASE_DIR)
        examples = [ex for path in paths.DATASET_FILES.values() for ex in load_examples(path)]
        step(f"n-grams up to {params.max_order} tokens over {len(examples)} examples")
        draft = NgramDraft.build(training_rows(examples, tokenizer, specs.tools, params.max_order),
                                 params.max_order, vocab_digest(tokenizer), params.min_order)
        draft.save(paths.DRAFT_TABLE)
        stats = {"draft.examples": len(examples), "draft.corpus_tokens": draft.corpus_tokens,
                 "draft.contexts": len(draft.next), "draft.max_order": params.max_order,
                 "draft.min_order": params.min_order}
        write_text(paths.DRAFT_STATS, json.dumps(stats, indent=2, sort_keys=True) + "\n")
    console.print(f"draft table: {len(draft.next)} contexts from {draft.corpus_tokens} tokens -> {paths.DRAFT_TABLE}")


if __name__ == "__main__":
    sys.exit(run_stage(main))
