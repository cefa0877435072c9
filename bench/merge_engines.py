"""Merge engines on the default adapters: wall time and peak memory of each method, cold and warm.

    .venv/bin/python bench/merge_engines.py [--out bench/results/merge_engines.json]

Needs the trained adapters (`dvc repro train_adapter`). Every merge runs in its own process, so the
peak RSS is that merge's alone (the mergekit engine adds its own child; both are counted). "cold"
starts from an empty mergekit LoRA cache (each base+adapter merged first), "warm" reuses it, which
is what a second candidate in the same `dvc repro` sees.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

RUNS = [  # (engine, method, knobs): the default candidates' methods, and PEFT's LoRA-space options
    ("mergekit", "ties", {"density": 0.5, "normalize": True}),
    ("mergekit", "dare_ties", {"density": 0.4, "normalize": True, "rescale": True}),
    ("mergekit", "linear", {}),
    ("mergekit", "task_arithmetic", {}),
    ("peft", "cat", {}),
    ("peft", "ties_svd", {"density": 0.5, "svd_rank": 32}),
    ("peft", "dare_ties_svd", {"density": 0.4, "svd_rank": 32}),
]

CHILD = """
import json, resource, sys, time
from pathlib import Path
from fteforge.console import quiet_libraries
quiet_libraries()
from fteforge.merging.engines import MERGE_ENGINES
engine, method, knobs, base, adapters, out, cache = json.loads(sys.argv[1])
start = time.perf_counter()
weights = {name: 0.5 for name in adapters}
if engine == "mergekit":
    MERGE_ENGINES.get("mergekit")(base, adapters, out, method=method, weights=weights, cache_dir=cache, seed=0,
                                  threads=2, **knobs)
else:
    MERGE_ENGINES.get("peft")(base, adapters, out, combination_type=method, weights=weights, seed=0, threads=2,
                              **knobs)
wall = time.perf_counter() - start
rss = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
size = sum(f.stat().st_size for f in Path(out).glob("*.safetensors"))
print(json.dumps({"wall_s": round(wall, 2), "peak_rss_mb": round(rss / 1024, 1), "output_mb": round(size / 1e6, 2)}))
"""


def run_one(engine: str, method: str, knobs: dict, adapters: dict[str, str], work: Path, cache: Path) -> dict:
    out = work / f"{engine}-{method}"
    arg = json.dumps([engine, method, knobs, str(ROOT / "data" / "base"), adapters, str(out), str(cache)])
    proc = subprocess.run([sys.executable, "-c", CHILD, arg], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    if proc.returncode != 0:
        raise SystemExit(f"{engine} {method} failed:\n{proc.stderr[-2000:]}")
    shutil.rmtree(out, ignore_errors=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="bench/results/merge_engines.json")
    ap.add_argument("--engines", default="mergekit,peft", help="comma-separated subset to run")
    args = ap.parse_args()
    engines = set(args.engines.split(","))
    from fteforge.specs import load_spec_set

    names = load_spec_set(ROOT / "specs").unified.source_adapters
    adapters = {n: str(ROOT / "data" / "adapters" / n) for n in names}
    missing = [p for p in adapters.values() if not Path(p, "adapter_model.safetensors").is_file()]
    if missing:
        raise SystemExit(f"adapters not built: {missing}; run `dvc repro train_adapter` first")
    results: list[dict] = []
    report = {
        "benchmark": "merge_engines",
        "command": f"python bench/merge_engines.py --engines {args.engines}",
        "adapters": names,
        "threads": 2,
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "results": results,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="merge-bench-") as tmp:
        work = Path(tmp)
        for engine, method, knobs in (r for r in RUNS if r[0] in engines):
            cache = work / "lora-cache"
            modes = ("cold", "warm") if engine == "mergekit" else ("run",)
            if engine == "mergekit":
                shutil.rmtree(cache, ignore_errors=True)
            for mode in modes:
                r = run_one(engine, method, knobs, adapters, work, cache)
                results.append({"engine": engine, "method": method, "mode": mode, **knobs, **r})
                print(f"{engine:9s} {method:16s} {mode:5s} {r['wall_s']:7.1f} s  peak {r['peak_rss_mb']:7.0f} MB  "
                      f"out {r['output_mb']:7.1f} MB", flush=True)
                # after every run: a long bench cut short still leaves what it measured
                out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
