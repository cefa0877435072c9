"""Training backends behind one interface: TRL + PEFT (CPU and GPU) and unsloth (CUDA only).

Both return a PEFT model holding the trained adapter and the trainer's log history; the caller saves
the adapter, so the files on disk look the same whichever backend trained them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fteforge.errors import FteforgeError
from fteforge.models.attention import use_grouped_matmul
from fteforge.params import TrainKnobs
from fteforge.precision import resolve_precision, store_frozen_linears_in_bf16
from fteforge.registry import Registry

BACKENDS = Registry("training backend")


def resolve_backend(name: str) -> str:
    """`auto` picks unsloth only when CUDA is present and unsloth imports; TRL otherwise."""
    if name != "auto":
        return name
    import torch

    if not torch.cuda.is_available():
        return "trl"
    try:
        import unsloth  # noqa: F401
    except Exception:  # noqa: BLE001 - any import failure means: not usable here
        return "trl"
    return "unsloth"


def _sft_config(knobs: TrainKnobs, seed: int, ckpt_dir: Path, use_cpu: bool, bf16: bool):
    from trl import SFTConfig

    return SFTConfig(
        output_dir=str(ckpt_dir),
        num_train_epochs=knobs.epochs,
        max_steps=knobs.max_steps or -1,
        per_device_train_batch_size=knobs.batch_size,
        gradient_accumulation_steps=knobs.grad_accum,
        learning_rate=knobs.learning_rate,
        lr_scheduler_type=knobs.scheduler,
        warmup_steps=knobs.warmup_ratio,
        weight_decay=knobs.weight_decay,
        logging_steps=1,
        save_strategy="steps",
        save_steps=knobs.save_steps,
        save_total_limit=2,
        seed=seed,
        data_seed=seed,
        # bf16 autocast only where the hardware has it (fteforge.precision); gradient checkpointing
        # trades compute for memory a 135M model does not need.
        bf16=bf16,
        fp16=False,
        gradient_checkpointing=False,
        max_length=knobs.max_length,
        report_to="none",
        disable_tqdm=True,
        train_sampling_strategy="group_by_length" if knobs.group_by_length else "random",
        dataloader_num_workers=0,
        use_cpu=use_cpu,
        optim="adamw_torch",
        dataset_kwargs={"skip_prepare_dataset": True},
        save_only_model=False,
    )


def _run_trainer(model, tokenizer, rows, knobs, seed, ckpt_dir, resume_from, callbacks, use_cpu, bf16=False,
                 share_prefix=None):
    from datasets import Dataset
    from trl import SFTTrainer

    from fteforge.training.prefix import SharedPrefixSFTTrainer, supports_shared_prefix

    share = (knobs.share_prefix if share_prefix is None else share_prefix) and supports_shared_prefix(model)
    kwargs = dict(
        model=model,
        args=_sft_config(knobs, seed, ckpt_dir, use_cpu, bf16),
        processing_class=tokenizer,
        callbacks=callbacks,
    )
    dataset = Dataset.from_list([{k: r[k] for k in ("input_ids", "labels", "length")} for r in rows])
    if share:
        groups = [r.get("group") for r in rows]
        if not knobs.group_by_prefix or not knobs.group_by_length or None in groups:
            groups = None  # transformers' length grouping
        trainer = SharedPrefixSFTTrainer(train_dataset=dataset, groups=groups, lengths=[r["length"] for r in rows],
                                         **kwargs)
    else:
        trainer = SFTTrainer(train_dataset=dataset, **kwargs)
    from transformers import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # our progress callback reports instead of raw dicts
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    return trainer.model, trainer.state.log_history


def _lora_config(knobs: TrainKnobs):
    from peft import LoraConfig

    return LoraConfig(
        r=knobs.lora.r,
        lora_alpha=knobs.lora.alpha,
        lora_dropout=knobs.lora.dropout,
        target_modules=list(knobs.lora.target_modules),
        layers_to_transform=knobs.lora.layers,
        bias="none",
        task_type="CAUSAL_LM",
    )


@BACKENDS.register("trl")
def train_trl(base_dir: Path, tokenizer, rows: list[dict[str, Any]], knobs: TrainKnobs, seed: int, ckpt_dir: Path,
              resume_from: Path | None, callbacks: list[Callable]) -> tuple[Any, list[dict]]:
    """TRL SFTTrainer + PEFT LoRA, fp32 weights, bf16 autocast where `knobs.precision` resolves to it
    (the CPU path; also runs on CUDA)."""
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM, set_seed

    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32, attn_implementation="sdpa",
                                                 use_safetensors=True)
    cuda = torch.cuda.is_available()
    if not cuda:
        use_grouped_matmul(model)  # SDPA's CPU backward is a third of a step (models/attention.py)
    set_seed(seed)  # LoRA A is initialised randomly: seed it, or two runs of one config differ
    model = get_peft_model(model, _lora_config(knobs))
    bf16 = resolve_precision(knobs.precision, "cuda" if cuda else "cpu") == "bf16"
    if bf16 and not cuda:
        store_frozen_linears_in_bf16(model)
    return _run_trainer(model, tokenizer, rows, knobs, seed, ckpt_dir, resume_from, callbacks, use_cpu=not cuda,
                        bf16=bf16)


@BACKENDS.register("unsloth")
def train_unsloth(base_dir: Path, tokenizer, rows: list[dict[str, Any]], knobs: TrainKnobs, seed: int,
                  ckpt_dir: Path, resume_from: Path | None, callbacks: list[Callable]) -> tuple[Any, list[dict]]:
    """unsloth's fused kernels on a CUDA GPU (install the `[gpu]` extra); same LoRA, same trainer loop."""
    import torch

    if not torch.cuda.is_available():
        raise FteforgeError("params.yaml: train.backend: unsloth needs a CUDA GPU - use `trl` or `auto` on CPU")
    try:
        from unsloth import FastLanguageModel
    except Exception as exc:  # noqa: BLE001
        raise FteforgeError(f"unsloth is not usable here ({exc}); `pip install -e .[gpu]` or use backend: trl") from exc

    model, _ = FastLanguageModel.from_pretrained(str(base_dir), max_seq_length=knobs.max_length, dtype=None,
                                                 load_in_4bit=False)
    cfg = _lora_config(knobs)
    model = FastLanguageModel.get_peft_model(
        model, r=cfg.r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
        target_modules=list(cfg.target_modules), layers_to_transform=cfg.layers_to_transform, bias="none",
        use_gradient_checkpointing=False, random_state=seed,
    )
    bf16 = resolve_precision(knobs.precision, "cuda") == "bf16"
    # unsloth's patched attention is not checked with a broadcast prefix cache: keep full sequences there
    return _run_trainer(model, tokenizer, rows, knobs, seed, ckpt_dir, resume_from, callbacks, use_cpu=False,
                        bf16=bf16, share_prefix=False)
