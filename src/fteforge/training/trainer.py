"""train_adapter: one LoRA adapter from one dataset, resumable, gated, published atomically."""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fteforge.data.records import Example
from fteforge.gates import GateFailure, check_gates
from fteforge.models.adapter_io import canonicalize_adapter_config
from fteforge.params import TrainKnobs
from fteforge.precision import resolve_precision
from fteforge.specs import Gate, ToolsSpec
from fteforge.training.backends import BACKENDS, resolve_backend
from fteforge.training.data import tokenize_examples

ADAPTER_WEIGHTS = "adapter_model.safetensors"


def run_key(rows: list[dict[str, Any]], knobs: TrainKnobs, seed: int, backend: str, base_dir: Path,
            precision: str = "fp32") -> str:
    """Identifies a training run: checkpoints are only resumed by a run with the same inputs."""
    h = hashlib.sha256()
    h.update(json.dumps([r["input_ids"] for r in rows]).encode())
    h.update(json.dumps([r["labels"] for r in rows]).encode())
    h.update(json.dumps([r.get("group") for r in rows]).encode())  # the batches, with group_by_prefix
    h.update(knobs.model_dump_json().encode())
    h.update(f"{seed}:{backend}".encode())
    if precision != "fp32":  # fp32 keys stay as they were, so older checkpoints still resume
        h.update(f":{precision}".encode())
    fp = Path(base_dir) / "fingerprint.json"
    h.update(fp.read_bytes() if fp.is_file() else str(base_dir).encode())
    return h.hexdigest()[:16]


def last_complete_checkpoint(ckpt_dir: Path) -> Path | None:
    """Newest checkpoint whose files were all written (a kill during a save leaves one half-written)."""
    if not ckpt_dir.is_dir():
        return None
    done = []
    for d in ckpt_dir.glob("checkpoint-*"):
        needed = ["trainer_state.json", ADAPTER_WEIGHTS, "optimizer.pt", "scheduler.pt"]
        if all((d / f).is_file() and (d / f).stat().st_size > 0 for f in needed):
            try:
                json.loads((d / "trainer_state.json").read_text())
            except json.JSONDecodeError:
                continue
            done.append((int(d.name.split("-")[1]), d))
    return max(done)[1] if done else None


def _progress_callback(report: Callable[[str], None]):
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                report(f"step {state.global_step}/{state.max_steps} loss {logs['loss']:.4f}")

    return Progress()


def final_loss(log_history: list[dict], window: float) -> float:
    losses = [e["loss"] for e in log_history if "loss" in e]
    n = max(1, round(len(losses) * window))
    return float(sum(losses[-n:]) / n)


def write_loss_curve(log_history: list[dict], live_dir: Path) -> None:
    """Log the per-step loss through DVCLive so `dvc plots show` draws the curve."""
    from dvclive import Live

    if live_dir.exists():
        shutil.rmtree(live_dir)
    with Live(dir=str(live_dir), save_dvc_exp=False, dvcyaml=None, report=None, monitor_system=False) as live:
        for e in log_history:
            if "loss" in e:
                live.step = int(e["step"])
                live.log_metric("train/loss", float(e["loss"]))
                if "learning_rate" in e:
                    live.log_metric("train/learning_rate", float(e["learning_rate"]))


def train_adapter(
    adapter: str,
    base_dir: Path,
    examples: list[Example],
    tools: ToolsSpec,
    knobs: TrainKnobs,
    *,
    backend: str,
    seed: int,
    threads: int,
    out_dir: Path,
    work_dir: Path,
    gates: list[Gate],
    live_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train, check the training gates, then publish `out_dir` in one rename; return the metrics.

    Checkpoints live in `work_dir`, keyed by the run's inputs, so a rerun after a crash resumes where
    the last complete checkpoint left off. A failed gate raises GateFailure and publishes nothing.
    """
    import torch
    from transformers import AutoTokenizer

    report = progress or (lambda msg: None)
    if threads:
        torch.set_num_threads(threads)
    backend = resolve_backend(backend)
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    rows = tokenize_examples(examples, tokenizer, tools, knobs.max_length, knobs.learn_turns)
    precision = resolve_precision(knobs.precision, "cuda" if torch.cuda.is_available() else "cpu")
    key = run_key(rows, knobs, seed, backend, base_dir, precision)
    ckpt_dir = Path(work_dir) / f"{adapter}-{key}"
    resume = last_complete_checkpoint(ckpt_dir)
    resumed_from = int(resume.name.split("-")[1]) if resume else 0
    report(f"{len(rows)} examples, backend {backend}, {precision}" + (f", resuming from step {resumed_from}" if resume else ""))

    start = time.perf_counter()
    model, log_history = BACKENDS.get(backend)(
        Path(base_dir), tokenizer, rows, knobs, seed, ckpt_dir, resume, [_progress_callback(report)]
    )
    wall = time.perf_counter() - start

    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        canonicalize_adapter_config(tmp)
        tokenizer.save_pretrained(tmp)
        size_mb = (tmp / ADAPTER_WEIGHTS).stat().st_size / 1e6
        steps_run = sum(1 for e in log_history if "loss" in e and e["step"] > resumed_from)
        trained_tokens = sum(r["length"] for r in rows) * knobs.epochs * (steps_run / max(1, _total_steps(log_history)))
        metrics = {
            "train.final_loss": round(final_loss(log_history, knobs.final_loss_window), 6),
            "train.first_loss": round(next(e["loss"] for e in log_history if "loss" in e), 6),
            "train.steps": _total_steps(log_history),
            "train.examples": len(rows),
            "train.tokens_per_s": round(trained_tokens / wall, 2) if wall > 0 else None,
            "train.wall_s": round(wall, 2),
            "train.peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "train.resumed_from_step": resumed_from,
            "train.backend": backend,
            "train.precision": precision,
            "adapter.size_mb": round(size_mb, 3),
            "adapter.trainable_params": sum(p.numel() for n, p in model.named_parameters() if "lora_" in n),
        }
        results = check_gates(gates, metrics, only_prefixes=("train.", "adapter."))
        metrics["gates"] = [r.to_dict() for r in results]
        failed = [r for r in results if not r.passed]
        if failed:
            raise GateFailure(f"adapter {adapter}", failed)
        # Only deterministic facts go inside the adapter folder, so retraining the same inputs
        # reproduces it byte for byte; timings live in the metrics file.
        (tmp / "training_config.json").write_text(json.dumps(
            {"adapter": adapter, "backend": backend, "precision": precision, "seed": seed, "run_key": key,
             "knobs": knobs.model_dump()},
            indent=2, sort_keys=True) + "\n")
        tmp.chmod(0o755)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if live_dir is not None:
        write_loss_curve(log_history, Path(live_dir))
    shutil.rmtree(ckpt_dir, ignore_errors=True)  # finished: checkpoints are only for resuming
    return metrics


def _total_steps(log_history: list[dict]) -> int:
    return max((int(e["step"]) for e in log_history if "step" in e), default=0)
