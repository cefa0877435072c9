"""Do the stream decoder's guesses hold beyond the six latency prompts? First turns of the held-out suites.

The draft table comes from the training data and the latency gate times six fixed prompts, so a fair
question is whether the gain is particular to those. This decodes the first assistant turn of every
held-out case (persona, agentic, combined; `evaluate.max_new_tokens` per kind, tool calls constrained,
served as the evaluation serves) at batch 1, once one token a step and once with guesses, and reports
per suite: new tokens per forward pass, wall time, and whether every completion is the same text.

    .venv/bin/python bench/draft_acceptance.py [--model data/merges/v6_ties] [--out bench/results/draft_acceptance.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def main() -> None:
    from _serve_setup import serve

    from fteforge import paths
    from fteforge.evaluation.draft import NgramDraft
    from fteforge.evaluation.pipeline import load_suites
    from fteforge.evaluation.runner import _messages, _prompt
    from fteforge.evaluation.stream import StreamDecoder

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="data/merges/v6_ties")
    ap.add_argument("--out", default="bench/results/draft_acceptance.json")
    args = ap.parse_args()
    served = serve(ROOT, args.model)
    params, specs, model, tok = served.params, served.specs, served.model, served.tokenizer
    serving, constraint = served.serving, served.constraint
    draft = NgramDraft.load(ROOT / paths.DRAFT_TABLE, tok)
    cases, _ = load_suites({k: ROOT / p for k, p in paths.EVAL_SUITES.items()})
    caps = params.max_new_tokens.model_dump()
    decoders = {"one_token": StreamDecoder(model, tok, constraint),
                "guesses": StreamDecoder(model, tok, constraint, draft=draft, draft_tokens=params.latency.draft_tokens)}
    suites: dict[str, dict] = {}
    for case in cases:
        prompt = _prompt(tok, _messages(case, specs), case, specs)
        row = suites.setdefault(case.kind, {"cases": 0, "same_text": 0, "new_tokens": 0,
                                            **{f"{n}_forwards": 0 for n in decoders}, **{f"{n}_s": 0.0 for n in decoders}})
        texts = {}
        for name, dec in decoders.items():
            start = time.perf_counter()
            texts[name] = dec([prompt], caps[case.kind])[0]
            row[f"{name}_s"] += time.perf_counter() - start
            row[f"{name}_forwards"] += dec.last_forwards[0]
        row["cases"] += 1
        row["new_tokens"] += decoders["guesses"].last_new_tokens[0]
        row["same_text"] += texts["one_token"] == texts["guesses"]
    for row in suites.values():
        row["tokens_per_forward"] = round(row["new_tokens"] / row["guesses_forwards"], 3)
        row["speedup"] = round(row["one_token_s"] / row["guesses_s"], 3)
        row["one_token_s"], row["guesses_s"] = round(row["one_token_s"], 1), round(row["guesses_s"], 1)
    report = {"command": "python bench/draft_acceptance.py" + (f" --model {args.model}" if args.model !=
                                                                 "data/merges/v6_ties" else ""),
              "model": args.model, "serving": serving, "threads": params.threads,
              "draft_tokens": params.latency.draft_tokens, "draft_min_order": draft.min_order,
              "processor": platform.processor() or platform.machine(), "torch": torch.__version__,
              "note": "first assistant turn of each held-out case; each decoder keeps the cache of the case before "
                      "(the shared system turn), the same split for both",
              "suites": suites}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
