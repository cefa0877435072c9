"""Which float format a run computes in: `auto` takes bf16 only where the hardware does it natively.

Why not always fp32: on a CPU with AVX512-BF16 or AMX (AMD Zen 4, Intel Sapphire Rapids and later) a
bf16 matmul runs several times faster than an fp32 one (4.8x to 7x on a 2-core EPYC, 877 against 184
GFLOP/s in `bench/results/cpu_bf16.json`), and a LoRA step of SmolLM2 is almost all matmuls. Where the
CPU lacks those instructions bf16 is emulated and slower than fp32, so `auto` keeps fp32 there.
Master weights, LoRA parameters and optimizer state stay fp32 either way (autocast), so only the
matmuls round to bf16.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal

Precision = Literal["auto", "fp32", "bf16"]
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.cache
def cpu_has_native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """True when the CPU lists a bf16 instruction set (Linux); False where that cannot be read."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            return any(f in flags for f in NATIVE_BF16_FLAGS)
    return False


def resolve_precision(precision: Precision, device: str = "cpu") -> Literal["fp32", "bf16"]:
    """`auto` -> bf16 on a CUDA device that supports it or a CPU with native bf16, else fp32."""
    if precision != "auto":
        return precision
    if device.startswith("cuda"):
        import torch

        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_has_native_bf16() else "fp32"


def store_frozen_linears_in_bf16(model) -> int:
    """Keep the frozen Linear weights as bf16 for a bf16-autocast run; returns how many were converted.

    Autocast casts a frozen weight to bf16 on every call (it caches casts of trainable leaves only): the
    prefix pass and the suffix pass of each step each read 540 MB of fp32 SmolLM2 weights to write them
    again as bf16. Rounding once up front feeds the matmuls the very same bf16 values, so losses and
    gradients stay bitwise equal (tests/test_training.py), at half the weight memory. LoRA parameters and
    anything shared with the embedding (a tied output head) stay fp32.
    """
    import torch

    embedding = model.get_input_embeddings().weight
    converted = 0
    for module in model.modules():
        w = getattr(module, "weight", None)
        if type(module) is torch.nn.Linear and w is not None and not w.requires_grad and w is not embedding \
                and w.dtype == torch.float32:
            module.weight.data = w.data.to(torch.bfloat16)
            converted += 1
    return converted
