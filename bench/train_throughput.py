"""Training throughput: a plain TRL + PEFT setup vs fteforge's on the same examples and steps.

    .venv/bin/python bench/train_throughput.py [--examples 64] [--steps 8] [--precision fp32 bf16]
        [--out bench/results/train_throughput.json]

Needs `dvc repro build_eval_suites prepare_base` first (the real base and datasets). "Plain" is what
TRL's documentation leads to: a prompt/completion dataset, SFTConfig defaults on CPU (gradient
checkpointing on, random batches). "fteforge" is the `trl` backend as the pipeline runs it:
pre-tokenized, length-grouped batches, no checkpointing, and the shared system-prompt prefix computed
once per batch. Each runs at every precision asked for (bf16 = autocast, as `bf16=True` gives a TRL
user), so the ratio compares like with like, and `bf16_over_fp32` shows what the CPU's bf16 units add.
tokens/s counts every token of every example processed (prompt + completion), so both sides are
measured on the same work. Default precisions: fp32, plus bf16 where the CPU has it natively.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from fteforge.console import quiet_libraries  # noqa: E402

quiet_libraries()

import torch  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

from fteforge import paths  # noqa: E402
from fteforge.data.records import load_examples  # noqa: E402
from fteforge.params import TrainParams, load_params  # noqa: E402
from fteforge.precision import cpu_has_native_bf16  # noqa: E402
from fteforge.specs import load_spec_set  # noqa: E402
from fteforge.training.backends import _lora_config, _run_trainer  # noqa: E402
from fteforge.training.data import prompt_and_completion, tokenize_examples  # noqa: E402


def pick(n: int):
    persona = load_examples(paths.PERSONA_TRAIN)
    agentic = load_examples(paths.AGENTIC_TRAIN)
    return persona[: n // 2] + agentic[: n - n // 2]


def plain_trl(examples, tok, tools, knobs, steps, work, bf16):
    from datasets import Dataset
    from peft import get_peft_model
    from transformers import set_seed
    from trl import SFTConfig, SFTTrainer

    data = Dataset.from_list([dict(zip(("prompt", "completion"), prompt_and_completion(e, tok, tools), strict=True))
                              for e in examples])
    model = AutoModelForCausalLM.from_pretrained(paths.BASE_DIR, dtype=torch.float32)
    set_seed(0)
    model = get_peft_model(model, _lora_config(knobs))
    args = SFTConfig(output_dir=str(work), max_steps=steps, per_device_train_batch_size=knobs.batch_size,
                     learning_rate=knobs.learning_rate, bf16=bf16, use_cpu=True, report_to="none",
                     disable_tqdm=True, save_strategy="no", logging_steps=1, max_length=knobs.max_length)
    trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tok)
    start = time.perf_counter()
    trainer.train()
    return time.perf_counter() - start


def ours(examples, tok, tools, knobs, steps, work, bf16):
    from peft import get_peft_model
    from transformers import set_seed

    rows = tokenize_examples(examples, tok, tools, knobs.max_length)
    model = AutoModelForCausalLM.from_pretrained(paths.BASE_DIR, dtype=torch.float32, attn_implementation="sdpa")
    set_seed(0)
    model = get_peft_model(model, _lora_config(knobs))
    start = time.perf_counter()
    _run_trainer(model, tok, rows, knobs.model_copy(update={"max_steps": steps, "save_steps": 10_000}), 0, work,
                 None, [], use_cpu=True, bf16=bf16)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", type=int, default=64)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--precision", nargs="+", choices=("fp32", "bf16"),
                    default=["fp32", "bf16"] if cpu_has_native_bf16() else ["fp32"])
    ap.add_argument("--out", default="bench/results/train_throughput.json")
    args = ap.parse_args()
    params = load_params("train", TrainParams)
    torch.set_num_threads(params.threads or torch.get_num_threads())
    knobs = params.knobs_for("task_api_agentic")
    specs = load_spec_set(paths.SPECS)
    tok = AutoTokenizer.from_pretrained(paths.BASE_DIR)
    examples = pick(args.examples)
    steps = min(args.steps, len(examples) // knobs.batch_size)
    tokens = sum(r["length"] for r in tokenize_examples(examples, tok, specs.tools, knobs.max_length))
    processed = tokens * steps * knobs.batch_size / len(examples)
    results, speedup = {}, {}
    for precision in args.precision:
        for name, fn in (("plain_trl", plain_trl), ("fteforge", ours)):
            with tempfile.TemporaryDirectory() as work:
                wall = fn(examples, tok, specs.tools, knobs, steps, Path(work), precision == "bf16")
            key = f"{name}_{precision}"
            results[key] = {"wall_s": round(wall, 2), "tokens_per_s": round(processed / wall, 1)}
            print(key, results[key], flush=True)
        speedup[precision] = round(results[f"fteforge_{precision}"]["tokens_per_s"]
                                   / results[f"plain_trl_{precision}"]["tokens_per_s"], 2)
    report = {
        "benchmark": "train_throughput",
        "command": "python bench/train_throughput.py " + " ".join(sys.argv[1:]),
        "examples": len(examples), "steps": steps, "batch_size": knobs.batch_size,
        "tokens_processed": round(processed), "threads": torch.get_num_threads(),
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "native_bf16": cpu_has_native_bf16()},
        "results": results,
        # fteforge over plain TRL at the same precision
        "speedup": speedup,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    if "fp32" in speedup and "bf16" in speedup:
        report["bf16_over_fp32"] = round(results["fteforge_bf16"]["tokens_per_s"]
                                         / results["fteforge_fp32"]["tokens_per_s"], 2)
        report["fteforge_bf16_over_plain_fp32"] = round(results["fteforge_bf16"]["tokens_per_s"]
                                                        / results["plain_trl_fp32"]["tokens_per_s"], 2)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"speedup {report['speedup']} -> {args.out}")


if __name__ == "__main__":
    main()
