"""Does this CPU do bf16 fast? Matmul rate in fp32 and bf16 at SmolLM2's MLP shape, and one Linear
forward + backward with and without bf16 autocast - the numbers behind `precision: auto`
(src/fteforge/precision.py).

    .venv/bin/python bench/cpu_bf16.py [--threads 2] [--out bench/results/cpu_bf16.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import torch  # noqa: E402

from fteforge.precision import cpu_has_native_bf16, resolve_precision  # noqa: E402

# a batch of 16 sequences of 400 tokens through SmolLM2-135M's up-projection (576 -> 1536)
M, K, N = 16 * 400, 576, 1536


def matmul_gflops(dtype: torch.dtype, reps: int) -> float:
    a, b = torch.randn(M, K, dtype=dtype), torch.randn(K, N, dtype=dtype)
    for _ in range(2):
        a @ b
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * M * K * N * reps / (time.perf_counter() - start) / 1e9


def linear_step_ms(autocast: bool, reps: int) -> float:
    torch.manual_seed(0)
    layer, x = torch.nn.Linear(K, N), torch.randn(M, K, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        for _ in range(2):
            layer(x).sum().backward()
        start = time.perf_counter()
        for _ in range(reps):
            layer(x).sum().backward()
    return (time.perf_counter() - start) / reps * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--out", default="bench/results/cpu_bf16.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    report = {
        "benchmark": "cpu_bf16",
        "command": "python bench/cpu_bf16.py " + " ".join(sys.argv[1:]),
        "machine": {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                    "native_bf16": cpu_has_native_bf16(), "torch": torch.__version__},
        "shape": [M, K, N],
        "matmul_gflops": {"fp32": round(matmul_gflops(torch.float32, args.reps), 1),
                          "bf16": round(matmul_gflops(torch.bfloat16, args.reps), 1)},
        "linear_fwd_bwd_ms": {"fp32": round(linear_step_ms(False, args.reps), 1),
                              "bf16_autocast": round(linear_step_ms(True, args.reps), 1)},
        "auto_resolves_to": resolve_precision("auto", "cpu"),
    }
    report["matmul_bf16_over_fp32"] = round(report["matmul_gflops"]["bf16"] / report["matmul_gflops"]["fp32"], 2)
    report["linear_autocast_speedup"] = round(
        report["linear_fwd_bwd_ms"]["fp32"] / report["linear_fwd_bwd_ms"]["bf16_autocast"], 2)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
