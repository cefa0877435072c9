"""Merges in LoRA space with PEFT's add_weighted_adapter: the result is ONE small adapter, not a full model.

The small release option. Know what each combination computes (peft 0.21 tuners/lora/model.py):
`cat` stacks the weighted A's and B's (rank = sum of ranks) and equals a full-weight linear merge
exactly; `svd`, `ties_svd`, `dare_ties_svd` merge the full dW's and factor the result back to rank
`svd_rank` (lossy, slow: ~20 s on the 135M model); `linear`, `ties`, `dare_ties` act on A and B
separately, which is NOT the same as merging dW = B A (and differs from mergekit's ties/dare_ties).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from fteforge.errors import FteforgeError
from fteforge.merging.engines import MERGE_ENGINES
from fteforge.models.adapter_io import canonicalize_adapter_config

COMBINATIONS = ("ties_svd", "dare_ties_svd", "cat", "linear", "ties", "dare_ties", "svd")
_NEED_DENSITY = {"ties_svd", "dare_ties_svd", "ties", "dare_ties"}
_NEED_EQUAL_RANK = {"linear", "ties", "dare_ties"}
MERGED = "merged"


@MERGE_ENGINES.register("peft")
def merge_lora(base_dir: Path | str, adapters: dict[str, Path | str], out_dir: Path | str, *,
               combination_type: str, weights: dict[str, float], density: float | None = None,
               majority_sign_method: str = "total", svd_rank: int | None = None, seed: int = 0,
               threads: int = 0) -> dict[str, Any]:
    """LoRA-space merge with PEFT add_weighted_adapter (ties_svd, dare_ties_svd, cat, linear, ties, dare_ties, svd); writes one adapter."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from fteforge.merging.analysis import ADAPTER_WEIGHTS, check_compatible

    if combination_type not in COMBINATIONS:
        raise FteforgeError(f"PEFT combination {combination_type!r} not supported; choose one of {list(COMBINATIONS)}")
    if set(weights) != set(adapters):
        raise FteforgeError(f"merge weights name {sorted(weights)} but the adapters are {sorted(adapters)}")
    if combination_type in _NEED_DENSITY and density is None:
        raise FteforgeError(f"PEFT {combination_type} needs a density (share of entries kept, 0-1)")
    names = list(adapters)
    dirs = [Path(adapters[n]) for n in names]
    for other in dirs[1:]:
        check_compatible(dirs[0], other)  # raises on DoRA/rsLoRA/patterns/different bases
    ranks = {n: json.loads((Path(adapters[n]) / "adapter_config.json").read_text())["r"] for n in names}
    if combination_type in _NEED_EQUAL_RANK and len(set(ranks.values())) > 1:
        raise FteforgeError(f"PEFT {combination_type} needs equal ranks, got {ranks}; use cat or a *_svd combination")

    if threads:
        torch.set_num_threads(threads)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    model = PeftModel.from_pretrained(model, dirs[0], adapter_name=names[0])
    for name, d in zip(names[1:], dirs[1:], strict=True):
        model.load_adapter(d, adapter_name=name)
    torch.manual_seed(seed)  # dare_* draw their masks from torch's global RNG
    model.add_weighted_adapter(
        names, [float(weights[n]) for n in names], MERGED, combination_type=combination_type, density=density,
        majority_sign_method=majority_sign_method, svd_rank=svd_rank,
    )

    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        model.save_pretrained(tmp, selected_adapters=[MERGED], safe_serialization=True)
        # PEFT writes a non-"default" adapter into a subfolder named after it: lift it to the top
        for f in (tmp / MERGED).iterdir():
            os.replace(f, tmp / f.name)
        (tmp / MERGED).rmdir()
        canonicalize_adapter_config(tmp)
        if not (tmp / ADAPTER_WEIGHTS).is_file():
            raise FteforgeError(f"PEFT wrote no {ADAPTER_WEIGHTS}; nothing to publish")
        AutoTokenizer.from_pretrained(base_dir).save_pretrained(tmp)
        provenance = {
            "engine": "peft", "combination_type": combination_type, "weights": weights, "density": density,
            "majority_sign_method": majority_sign_method, "svd_rank": svd_rank, "seed": seed,
            "adapters": {n: str(d) for n, d in zip(names, dirs, strict=True)}, "ranks": ranks,
        }
        (tmp / "merge_sources.json").write_text(json.dumps(provenance, indent=2, sort_keys=True) + "\n")
        tmp.chmod(0o755)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return provenance
