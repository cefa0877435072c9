"""Training cost of date-grouped batches (group_by_prefix) against length-grouped ones, real data.

    .venv/bin/python bench/prefix_grouping.py [--steps 12] [--adapters task_api_agentic task_api_persona]
        [--out bench/results/prefix_grouping.json]

Needs `dvc repro build_agentic_dataset build_persona_dataset prepare_base` first. Two measures:
`epoch_tokens` counts the token positions one epoch runs through the model under each batch order
(each batch's shared prefix once, then every row's padded suffix), exact and noise-free; `s_per_step`
times the first `--steps` optimizer steps of the pipeline's own trainer with the adapter's knobs.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from fteforge.console import quiet_libraries  # noqa: E402

quiet_libraries()

import torch  # noqa: E402
from _train_setup import adapter_rows, setup  # noqa: E402
from transformers import AutoModelForCausalLM, set_seed  # noqa: E402
from transformers.trainer_pt_utils import get_length_grouped_indices  # noqa: E402

from fteforge import paths  # noqa: E402
from fteforge.precision import resolve_precision  # noqa: E402
from fteforge.training.backends import _lora_config, _run_trainer  # noqa: E402
from fteforge.training.data import IGNORE  # noqa: E402
from fteforge.training.prefix import MIN_PREFIX, PrefixGroupedSampler, batch_prefix_length  # noqa: E402


def batch_tokens(rows: list[dict], batch: list[int]) -> int:
    """Positions the shared-prefix loss runs for one batch: the common prefix once, padded suffixes."""
    width = max(rows[i]["length"] for i in batch)

    def padded(key: str, fill: int) -> torch.Tensor:
        return torch.tensor([rows[i][key] + [fill] * (width - rows[i]["length"]) for i in batch])

    mask = torch.tensor([[1] * rows[i]["length"] + [0] * (width - rows[i]["length"]) for i in batch])
    k = batch_prefix_length(padded("input_ids", 0), padded("labels", IGNORE), mask)
    k = k if k >= MIN_PREFIX else 0
    return k + len(batch) * (width - k)


def epoch_tokens(rows: list[dict], order: list[int], bs: int) -> int:
    return sum(batch_tokens(rows, order[j:j + bs]) for j in range(0, len(order), bs))


def timed_steps(rows, tok, knobs, steps: int, bf16: bool) -> float:
    model = AutoModelForCausalLM.from_pretrained(paths.BASE_DIR, dtype=torch.float32, attn_implementation="sdpa")
    set_seed(0)
    from peft import get_peft_model

    model = get_peft_model(model, _lora_config(knobs))
    with tempfile.TemporaryDirectory() as work:
        start = time.perf_counter()
        _run_trainer(model, tok, rows, knobs.model_copy(update={"max_steps": steps, "save_steps": 10_000}), 0,
                     Path(work), None, [], use_cpu=True, bf16=bf16)
        return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--adapters", nargs="+", default=["task_api_agentic", "task_api_persona"])
    ap.add_argument("--out", default="bench/results/prefix_grouping.json")
    args = ap.parse_args()
    params, specs, tok, report = setup("prefix_grouping")
    report |= {"steps_timed": args.steps, "adapters": {}}
    for adapter in args.adapters:
        knobs, rows = adapter_rows(params, specs, tok, adapter)
        bs = knobs.batch_size
        torch.manual_seed(0)
        by_length = get_length_grouped_indices([r["length"] for r in rows], bs)
        torch.manual_seed(0)
        by_date = list(PrefixGroupedSampler([r["group"] for r in rows], [r["length"] for r in rows], bs))
        entry = {"examples": len(rows), "batch_size": bs, "dates": len({r["group"] for r in rows}),
                 "epoch_tokens": {"length_grouped": epoch_tokens(rows, by_length, bs),
                                  "date_grouped": epoch_tokens(rows, by_date, bs)}}
        entry["epoch_tokens"]["ratio"] = round(entry["epoch_tokens"]["date_grouped"]
                                               / entry["epoch_tokens"]["length_grouped"], 3)
        bf16 = resolve_precision(knobs.precision, "cpu") == "bf16"
        entry["precision"] = "bf16" if bf16 else "fp32"
        timing = {}
        for name, grouped in (("length_grouped", False), ("date_grouped", True)):
            wall = timed_steps(rows, tok, knobs.model_copy(update={"group_by_prefix": grouped}), args.steps, bf16)
            timing[name] = round(wall / args.steps, 3)
            print(adapter, name, timing[name], "s/step", flush=True)
        timing["ratio"] = round(timing["date_grouped"] / timing["length_grouped"], 3)
        entry["s_per_step"] = timing
        report["adapters"][adapter] = entry
        print(adapter, json.dumps(entry), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
