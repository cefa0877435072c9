"""One merge candidate from params to a published folder: resolve the method, check the sources, run the engine.

The stage script (stages/merge.py) only reads params and writes the metrics this returns.
"""

from __future__ import annotations

import json
import resource
import time
from pathlib import Path
from typing import Any

from fteforge.errors import FteforgeError
from fteforge.merging.engines import MERGE_ENGINES

# Keys of build_merge's metrics that describe the run, not the merged bytes (stages/merge.py writes them apart).
RUN_STATS = ("merge.wall_s", "merge.peak_rss_mb")


def resolve_method(method: str, decision_path: Path) -> tuple[str, list[str]]:
    """`strategy` means the unified spec's choice recorded by analyze_adapters; other names stand for themselves."""
    if method != "strategy":
        return method, []
    if not Path(decision_path).is_file():
        raise FteforgeError(f"{decision_path} is missing: method `strategy` takes the merge method analyze_adapters "
                            f"chose; run `dvc repro analyze_adapters` first")
    decision = json.loads(Path(decision_path).read_text())
    detected = "conflicts detected" if decision["conflicts_detected"] else "no conflicts"
    return decision["method"], [f"method {decision['method']} chosen by analyze_adapters ({detected}); "
                                f"figures in {Path(decision_path).parent / 'ANALYSIS.md'}"]


def _peak_rss_mb() -> float:
    # ru_maxrss is KiB on Linux; the mergekit engine works in a child process, so look at both
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def update_density(base_dir: Path, merged_dir: Path) -> float:
    """Share of entries the merge changed, within the tensors it touched at all: how sparse the merged
    update is (embeddings and norms the adapters never train would swamp a whole-model share)."""
    from contextlib import ExitStack

    from safetensors import safe_open

    changed = total = 0
    with ExitStack() as stack:
        # one handle per base file, opened once: the merged model has ~270 tensors to compare
        base = {}
        for f in sorted(Path(base_dir).glob("*.safetensors")):
            handle = stack.enter_context(safe_open(f, framework="pt"))
            base.update({k: handle for k in handle.keys()})
        for f in sorted(Path(merged_dir).glob("*.safetensors")):
            merged = stack.enter_context(safe_open(f, framework="pt"))
            for key in merged.keys():
                if key not in base:
                    continue
                ref = base[key].get_tensor(key)
                n = int((merged.get_tensor(key).to(ref.dtype) != ref).sum())
                if n:
                    changed += n
                    total += ref.numel()
    return changed / total if total else 0.0


def build_merge(name: str, candidate: Any, *, base_dir: Path, adapters_root: Path, decision_path: Path,
                out_dir: Path, cache_dir: Path, seed: int, threads: int) -> dict[str, Any]:
    """Build candidate `name` (a params.MergeCandidate) into `out_dir`; return its metrics."""
    from fteforge.merging.analysis import check_compatible

    method, reasons = resolve_method(candidate.method, decision_path)
    adapters = {a: Path(adapters_root) / a for a in candidate.weights}
    for a, folder in adapters.items():
        if not (folder / "adapter_config.json").is_file():
            raise FteforgeError(f"{folder}: no adapter_config.json - params.yaml merge.candidates.{name}.weights names "
                                f"adapter {a!r}, which is not built. Fix: `dvc repro train_adapter@{a}` or correct the name")
    fingerprint_file = Path(base_dir) / "fingerprint.json"
    base_fp = json.loads(fingerprint_file.read_text()) if fingerprint_file.is_file() else None
    names = list(adapters)
    notes: list[str] = []
    for other in names[1:]:
        notes += check_compatible(adapters[names[0]], adapters[other], base_fp)

    start = time.perf_counter()
    if candidate.engine == "mergekit":
        knobs: dict[str, Any] = {"normalize": candidate.normalize, "lambda_": candidate.lambda_,
                                 "module_weights": candidate.module_weights}
        if method in ("ties", "dare_ties"):
            knobs["density"] = candidate.density
        elif candidate.density is not None and candidate.method != "strategy":
            raise FteforgeError(f"params.yaml merge.candidates.{name}.density: {method} keeps every entry; "
                                f"remove density (dvc exp run -S '~merge.candidates.{name}.density') or use "
                                f"ties/dare_ties")
        if method == "dare_ties":
            knobs["rescale"] = candidate.rescale
        provenance = MERGE_ENGINES.get("mergekit")(
            base_dir, adapters, out_dir, method=method, weights=candidate.weights, cache_dir=cache_dir, seed=seed,
            threads=threads, **knobs,
        )
    else:
        provenance = MERGE_ENGINES.get("peft")(
            base_dir, adapters, out_dir, combination_type=method, weights=candidate.weights,
            density=candidate.density, svd_rank=candidate.svd_rank, seed=seed, threads=threads,
        )
    wall = time.perf_counter() - start  # run stats: see RUN_STATS
    size = sum(f.stat().st_size for f in Path(out_dir).glob("*.safetensors"))
    metrics = {
        "merge.engine": candidate.engine,
        "merge.method": method,
        "merge.weights": dict(candidate.weights),
        "merge.density": candidate.density,
        "merge.seed": seed,
        "merge.wall_s": round(wall, 2),
        "merge.peak_rss_mb": round(_peak_rss_mb(), 1),
        "merge.size_mb": round(size / 1e6, 3),
        "merge.output": "model" if candidate.engine == "mergekit" else "adapter",
        "merge.notes": sorted(set(notes)),
    }
    if candidate.module_weights:  # only when set: the metrics file of every other candidate stays byte-identical
        metrics["merge.module_weights"] = candidate.module_weights
    if reasons:
        metrics["merge.strategy_reasons"] = reasons
    if candidate.engine == "mergekit":
        metrics["merge.update_density"] = round(update_density(base_dir, out_dir), 6)
        metrics["merge.lora_cache_key"] = provenance.get("lora_cache_key")
    return metrics
