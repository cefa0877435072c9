"""CPU training step time by attention kernel and by how the frozen weights are stored, real data.

    .venv/bin/python bench/train_attention.py [--steps 10] [--adapters task_api_agentic task_api_persona]
        [--out bench/results/train_attention.json]

Needs `dvc repro build_agentic_dataset build_persona_dataset prepare_base` first. Each variant runs the
pipeline's own trainer (shared prefix, date-grouped batches, the adapter's knobs, seed 0, so every
variant sees the same batches) for `--steps` optimizer steps; the first step is left out of the mean
(allocator and kernel warm-up). Variants:

* `gqa_sdpa`: torch SDPA with enable_gqa, the trl backend's CPU attention up to release 1.10.0;
* `grouped_matmul`: models/attention.py's two-matmul attention;
* `grouped_matmul+bf16_weights`: the same with the frozen Linear weights stored as bf16 (what the trl
  backend does now when precision resolves to bf16; bitwise the same gradients).

The losses of the timed steps are recorded too: the attention kernels differ only in float rounding.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from fteforge.console import quiet_libraries  # noqa: E402

quiet_libraries()

import torch  # noqa: E402
from _train_setup import adapter_rows, setup  # noqa: E402
from transformers import AutoModelForCausalLM, TrainerCallback, set_seed  # noqa: E402

from fteforge import paths  # noqa: E402
from fteforge.models.attention import use_gqa_sdpa, use_grouped_matmul  # noqa: E402
from fteforge.precision import resolve_precision, store_frozen_linears_in_bf16  # noqa: E402
from fteforge.training.backends import _lora_config, _run_trainer  # noqa: E402

VARIANTS = {
    "gqa_sdpa": (use_gqa_sdpa, False),
    "grouped_matmul": (use_grouped_matmul, False),
    "grouped_matmul+bf16_weights": (use_grouped_matmul, True),
}


class StepClock(TrainerCallback):
    def __init__(self):
        self.ends: list[float] = []

    def on_step_end(self, args, state, control, **kw):
        self.ends.append(time.perf_counter())


def timed_steps(rows, tok, knobs, steps: int, bf16: bool, variant: str) -> dict:
    switch, bf16_weights = VARIANTS[variant]
    model = AutoModelForCausalLM.from_pretrained(paths.BASE_DIR, dtype=torch.float32, attn_implementation="sdpa")
    assert switch(model), f"{variant} does not apply to this model"
    set_seed(0)
    from peft import get_peft_model

    model = get_peft_model(model, _lora_config(knobs))
    if bf16_weights:
        if not bf16:
            return {"skipped": "precision resolves to fp32 on this CPU"}
        store_frozen_linears_in_bf16(model)
    clock = StepClock()
    with tempfile.TemporaryDirectory() as work:
        _, history = _run_trainer(model, tok, rows, knobs.model_copy(update={"max_steps": steps, "save_steps": 10_000}),
                                  0, Path(work), None, [clock], use_cpu=True, bf16=bf16)
    gaps = [b - a for a, b in zip(clock.ends, clock.ends[1:], strict=False)]
    return {"s_per_step": round(statistics.fmean(gaps), 3), "s_per_step_min": round(min(gaps), 3),
            "losses": [round(e["loss"], 4) for e in history if "loss" in e]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--adapters", nargs="+", default=["task_api_agentic", "task_api_persona"])
    ap.add_argument("--out", default="bench/results/train_attention.json")
    args = ap.parse_args()
    params, specs, tok, report = setup("train_attention")
    report |= {"steps": args.steps, "torch": torch.__version__, "adapters": {}}
    for adapter in args.adapters:
        knobs, rows = adapter_rows(params, specs, tok, adapter)
        bf16 = resolve_precision(knobs.precision, "cpu") == "bf16"
        entry: dict = {"examples": len(rows), "batch_size": knobs.batch_size, "precision": "bf16" if bf16 else "fp32",
                       "variants": {}}
        for variant in VARIANTS:
            entry["variants"][variant] = timed_steps(rows, tok, knobs, args.steps, bf16, variant)
            print(adapter, variant, json.dumps(entry["variants"][variant]), flush=True)
        base = entry["variants"]["gqa_sdpa"]["s_per_step"]
        entry["speedup_over_gqa_sdpa"] = {v: round(base / r["s_per_step"], 3)
                                          for v, r in entry["variants"].items() if "s_per_step" in r}
        report["adapters"][adapter] = entry
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
