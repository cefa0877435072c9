"""Where torch's int8 weight kernel stops paying: one decode step's Linear work at 1 to 32 rows.

`_weight_int8pack_mm` reads an int8 weight once per input row, so its cost grows with the rows, while a
bf16 matmul reads its (twice as large) weight once for all of them. The weights rotate through all of
SmolLM2-135M's 210 decoder Linear shapes, so they stream from memory as in a real step rather than
sitting in cache. `serving.INT8_KERNEL_MAX_ROWS` comes from the crossover.

    .venv/bin/python bench/int8_kernel_rows.py [--threads 2] [--out bench/results/int8_kernel_rows.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

# q, k, v, o, gate, up, down of one SmolLM2-135M layer, 30 layers
SHAPES = [(576, 576), (192, 576), (192, 576), (576, 576), (1536, 576), (1536, 576), (576, 1536)] * 30
ROWS = (1, 2, 4, 6, 8, 16, 32)


def _best_ms(fn, reps: int = 7) -> float:
    fn()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best * 1000


def measure() -> dict[str, dict[str, float]]:
    gen = torch.Generator().manual_seed(0)
    int8 = [torch.randint(-127, 128, s, dtype=torch.int8, generator=gen) for s in SHAPES]
    scales = [torch.rand(s[0], generator=gen).to(torch.bfloat16) for s in SHAPES]
    bf16 = [(w.float() * sc.float()[:, None]).to(torch.bfloat16) for w, sc in zip(int8, scales, strict=True)]
    out = {}
    for rows in ROWS:
        xs = {k: torch.randn(rows, k, generator=gen).to(torch.bfloat16) for k in (576, 1536)}

        def kernel(xs=xs):
            for w, sc in zip(int8, scales, strict=True):
                torch.ops.aten._weight_int8pack_mm(xs[w.shape[1]], w, sc)

        def dequantized(xs=xs):
            for w in bf16:
                torch.nn.functional.linear(xs[w.shape[1]], w)

        with torch.inference_mode():
            out[str(rows)] = {"int8_kernel_ms": round(_best_ms(kernel), 2), "bf16_dequantized_ms": round(_best_ms(dequantized), 2)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="bench/results/int8_kernel_rows.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    results = measure()
    report = {"command": "python bench/int8_kernel_rows.py", "threads": args.threads, "machine": platform.machine(),
              "torch": torch.__version__, "linears_per_step": len(SHAPES), "rows": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    for rows, r in results.items():
        print(f"{rows:>3} rows: int8 kernel {r['int8_kernel_ms']:6.2f} ms, bf16 dequantized {r['bf16_dequantized_ms']:6.2f} ms")


if __name__ == "__main__":
    main()
