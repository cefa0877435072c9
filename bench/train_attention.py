"""CPU training step time by attention kernel and by how the frozen weights are stored, real data.

    .venv/bin/python bench/train_attention.py [--steps 20] [--adapters task_api_agentic task_api_persona]
        [--variants ...] [--out bench/results/train_attention.json]

Needs `dvc repro build_agentic_dataset build_persona_dataset prepare_base` first. Each variant runs the
pipeline's own trainer (shared prefix, date-grouped batches, the adapter's knobs, seed 0, so every
variant sees the same batches) for `--steps` optimizer steps, each in a fresh process: the allocator's
state (how much heap a previous variant left mapped) would otherwise favour whichever runs later. The
first step is left out of the mean (kernel warm-up). Variants:

* `gqa_sdpa`: torch SDPA with enable_gqa, the trl backend's CPU attention up to release 1.10.0;
* `grouped_matmul_fp32_scores`: the two-matmul attention with fp32 masked scores and softmax, as
  transformers' eager path computes them (the trl backend's CPU attention in releases 1.11.0-1.14.0);
* `grouped_matmul_fp32_scores+bf16_weights`: the same with the frozen Linear weights stored as bf16;
* `grouped_matmul+bf16_weights`: models/attention.py's attention now, the scores kept in the autocast
  dtype (bf16), with bf16 frozen weights: what the trl backend runs when precision resolves to bf16.

Per variant: mean and minimum seconds per step, the minor page faults of the run (the fp32 scores of a
long batch cross glibc's mmap threshold and are faulted in afresh on every step), and the losses (the
kernels differ only in float rounding).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
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

FP32_SCORES = "bench_grouped_matmul_fp32_scores"


def _grouped_matmul_fp32_scores(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
    """The attention of releases 1.11.0-1.14.0: scores promoted to fp32 by the mask, fp32 softmax."""
    b, h, q, d = query.shape
    kv_heads, k = key.shape[1], key.shape[2]
    group = h // kv_heads
    scale = scaling if scaling is not None else d ** -0.5
    scores = torch.matmul(query.reshape(b, kv_heads, group * q, d), key.transpose(-1, -2)) * scale
    scores = scores.view(b, h, q, k)
    if attention_mask is not None:
        scores = scores + attention_mask[..., :k]
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(value.dtype)
    out = torch.matmul(probs.view(b, kv_heads, group * q, k), value).view(b, h, q, d)
    return out.transpose(1, 2).contiguous(), None


def use_grouped_matmul_fp32_scores(model) -> bool:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    AttentionInterface.register(FP32_SCORES, _grouped_matmul_fp32_scores)
    AttentionMaskInterface.register(FP32_SCORES, eager_mask)
    model.set_attn_implementation(FP32_SCORES)
    return True


VARIANTS = {
    "gqa_sdpa": (use_gqa_sdpa, False),
    "grouped_matmul_fp32_scores": (use_grouped_matmul_fp32_scores, False),
    "grouped_matmul_fp32_scores+bf16_weights": (use_grouped_matmul_fp32_scores, True),
    "grouped_matmul+bf16_weights": (use_grouped_matmul, True),
}


class StepClock(TrainerCallback):
    def __init__(self):
        self.ends: list[float] = []

    def on_step_end(self, args, state, control, **kw):
        self.ends.append(time.perf_counter())


def timed_steps(rows, tok, knobs, steps: int, bf16: bool, variant: str) -> dict:
    switch, bf16_weights = VARIANTS[variant]
    if bf16_weights and not bf16:
        return {"skipped": "precision resolves to fp32 on this CPU"}
    model = AutoModelForCausalLM.from_pretrained(paths.BASE_DIR, dtype=torch.float32, attn_implementation="sdpa")
    assert switch(model), f"{variant} does not apply to this model"
    set_seed(0)
    from peft import get_peft_model

    model = get_peft_model(model, _lora_config(knobs))
    if bf16_weights:
        store_frozen_linears_in_bf16(model)
    clock = StepClock()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    with tempfile.TemporaryDirectory() as work:
        _, history = _run_trainer(model, tok, rows, knobs.model_copy(update={"max_steps": steps, "save_steps": 10_000}),
                                  0, Path(work), None, [clock], use_cpu=True, bf16=bf16)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    gaps = [b - a for a, b in zip(clock.ends, clock.ends[1:], strict=False)]
    return {"s_per_step": round(statistics.fmean(gaps), 3), "s_per_step_min": round(min(gaps), 3),
            "minor_page_faults": faults, "losses": [round(e["loss"], 4) for e in history if "loss" in e]}


def run_one(adapter: str, variant: str, steps: int) -> None:
    params, specs, tok, _ = setup("train_attention")
    knobs, rows = adapter_rows(params, specs, tok, adapter)
    bf16 = resolve_precision(knobs.precision, "cpu") == "bf16"
    result = timed_steps(rows, tok, knobs, steps, bf16, variant)
    print(json.dumps({"examples": len(rows), "batch_size": knobs.batch_size, "precision": "bf16" if bf16 else "fp32",
                      "result": result}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--adapters", nargs="+", default=["task_api_agentic", "task_api_persona"])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--out", default="bench/results/train_attention.json")
    ap.add_argument("--one", nargs=2, metavar=("ADAPTER", "VARIANT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        run_one(*args.one, args.steps)
        return
    _, _, _, report = setup("train_attention")
    report |= {"steps": args.steps, "torch": torch.__version__, "adapters": {}}
    for adapter in args.adapters:
        entry: dict = {"variants": {}}
        for variant in args.variants:
            out = subprocess.run([sys.executable, __file__, "--steps", str(args.steps), "--one", adapter, variant],
                                 check=True, capture_output=True, text=True).stdout
            one = json.loads(out.strip().splitlines()[-1])
            entry |= {k: one[k] for k in ("examples", "batch_size", "precision")}
            entry["variants"][variant] = one["result"]
            print(adapter, variant, json.dumps(one["result"]), flush=True)
        timed = {v: r["s_per_step"] for v, r in entry["variants"].items() if "s_per_step" in r}
        if "gqa_sdpa" in timed:
            entry["speedup_over_gqa_sdpa"] = {v: round(timed["gqa_sdpa"] / t, 3) for v, t in timed.items()}
        report["adapters"][adapter] = entry
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
