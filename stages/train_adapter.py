"""Stage train_adapter@<adapter>: LoRA on the base model with the adapter's dataset (TRL+PEFT or unsloth).

Inputs:  data/base, data/<dataset>/train.jsonl, params.yaml `train:` (defaults + train.adapters.<adapter>)
Outputs: data/adapters/<adapter>/ (adapter_model.safetensors, adapter_config.json, tokenizer, chat template),
         data/metrics/train_<adapter>.json, data/train_logs/<adapter>/ (DVCLive loss curve)
Run:     dvc repro train_adapter@task_api_persona   (or: python stages/train_adapter.py task_api_persona)
"""

from __future__ import annotations

import json
import sys

from fteforge import paths
from fteforge.cli import run_stage
from fteforge.console import console, quiet_libraries, stage
from fteforge.data.records import load_examples, write_text
from fteforge.params import TrainParams, load_params
from fteforge.specs import load_spec_set


def main(adapter: str) -> None:
    quiet_libraries()
    from fteforge.training.trainer import train_adapter

    params = load_params("train", TrainParams)
    specs = load_spec_set(paths.SPECS)
    spec = specs.adapter_spec(adapter)
    entry = params.adapters[adapter]
    examples = load_examples(paths.DATASET_FILES[entry.dataset])
    with stage(f"train_adapter {adapter}") as step:
        metrics = train_adapter(
            adapter, paths.BASE_DIR, examples, specs.tools, params.knobs_for(adapter), backend=params.backend,
            seed=params.seed, threads=params.threads, out_dir=paths.adapter_dir(adapter), work_dir=paths.CHECKPOINTS,
            gates=spec.success_criteria, live_dir=paths.train_logs(adapter), progress=step,
        )
        write_text(paths.train_metrics(adapter), json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    console.print(
        f"{adapter}: final loss {metrics['train.final_loss']:.4f}, {metrics['adapter.size_mb']:.1f} MB, "
        f"{metrics['train.tokens_per_s']:.0f} tok/s, {metrics['train.wall_s']:.0f} s"
    )


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python stages/train_adapter.py ADAPTER")
    sys.exit(run_stage(lambda: main(sys.argv[1])))
