"""Look at two LoRA adapters before merging them: shapes, compatibility, interference, method choice.

Everything is measured on the weight update each adapter makes, dW = (alpha/r) * B @ A, one matrix
per adapted module (`model.layers.3.self_attn.q_proj`). Weights are read with safetensors only:
no pickle, no PEFT model, so the analysis is cheap and safe to run on anything.

Interference (see `interference`): per module, among the entries that BOTH adapters change
meaningfully, the share whose signs disagree (that is what TIES's sign election throws away), the
cosine of the two flattened dWs, and the ratio of their norms (which adapter dominates a plain sum).
For two unrelated random updates the sign-conflict rate is about 0.5 and the cosine about 0; related
updates score lower and higher.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fteforge.errors import FteforgeError

if TYPE_CHECKING:
    import torch

    from fteforge.specs.unified import MergeStrategy

ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
_LAYER = re.compile(r"\.layers\.(\d+)\.")
_LORA_KEY = re.compile(r"^(?:base_model\.model\.)?(?P<module>.+)\.lora_(?P<emb>embedding_)?(?P<ab>[AB])(?:\.weight)?$")

# adapter_config fields under which dW is NOT (alpha/r) B A, or the merge engines mishandle it:
# refused, because a merge would run and quietly compute something else.
_REFUSED_FLAGS = {
    "use_dora": "DoRA rescales each column by a learned magnitude vector, so dW != (alpha/r) B A and "
                "PEFT's add_weighted_adapter cannot combine it",
    "use_rslora": "rsLoRA scales by alpha/sqrt(r), not alpha/r",
    "lora_bias": "the LoRA B bias term is not part of dW = (alpha/r) B A",
    "use_qalora": "QA-LoRA pools the input before A",
    "use_bdlora": "block-diagonal LoRA is not a plain B A product",
    "layer_replication": "replicated layers share weights across layer indices",
    "target_parameters": "LoRA on raw parameters (not modules) is not merged by these engines",
    "alora_invocation_tokens": "activated LoRA only applies after an invocation sequence",
}
_REFUSED_PATTERNS = {
    "rank_pattern": "per-module ranks",
    "alpha_pattern": "per-module alphas",
}
_FIX = "retrain it as plain LoRA (in the adapter's knobs: use_dora/use_rslora/lora_bias false, no rank/alpha patterns)"


def _read_config(adapter_dir: Path) -> dict[str, Any]:
    path = Path(adapter_dir) / ADAPTER_CONFIG
    if not path.is_file():
        raise FteforgeError(f"{adapter_dir}: no {ADAPTER_CONFIG}; point at a PEFT adapter folder (save_pretrained output)")
    return json.loads(path.read_text())


def _weights_path(adapter_dir: Path) -> Path:
    adapter_dir = Path(adapter_dir)
    path = adapter_dir / ADAPTER_WEIGHTS
    if path.is_file():
        return path
    if (adapter_dir / "adapter_model.bin").is_file():
        raise FteforgeError(
            f"{adapter_dir}: only adapter_model.bin (pickle, can run code when loaded); fteforge reads safetensors "
            f"only. Fix: re-save the adapter with save_pretrained(..., safe_serialization=True)"
        )
    raise FteforgeError(f"{adapter_dir}: no {ADAPTER_WEIGHTS}; the adapter was not saved completely, retrain it")


def _load_lora(adapter_dir: Path) -> tuple[dict[str, Any], dict[str, dict[str, torch.Tensor]]]:
    """Config plus {module_key: {"A": tensor, "B": tensor, "embedding": bool}}."""
    from safetensors.torch import load_file

    cfg = _read_config(adapter_dir)
    pairs: dict[str, dict[str, Any]] = {}
    for key, tensor in load_file(_weights_path(adapter_dir)).items():
        m = _LORA_KEY.match(key)
        if not m:
            continue  # modules_to_save copies, trainable tokens: not low-rank updates
        entry = pairs.setdefault(m["module"], {"embedding": bool(m["emb"])})
        entry[m["ab"]] = tensor
    return cfg, pairs


def analyze_adapter(path: Path | str) -> dict[str, Any]:
    """Shape facts and per-tensor statistics of one adapter folder."""
    from safetensors import safe_open

    path = Path(path)
    cfg = _read_config(path)
    weights = _weights_path(path)
    tensors, total, layers = [], 0, set()
    with safe_open(weights, framework="pt") as f:
        for key in sorted(f.keys()):
            t = f.get_tensor(key).float()
            total += t.numel()
            if m := _LAYER.search(key):
                layers.add(int(m.group(1)))
            tensors.append({
                "key": key, "shape": list(t.shape), "mean": float(t.mean()),
                "std": float(t.std()) if t.numel() > 1 else 0.0, "min": float(t.min()), "max": float(t.max()),
            })
    targets = cfg.get("target_modules")
    return {
        "path": str(path),
        "peft_type": cfg.get("peft_type"),
        "base_model_name_or_path": cfg.get("base_model_name_or_path"),
        "r": cfg.get("r"),
        "lora_alpha": cfg.get("lora_alpha"),
        "scaling": (cfg["lora_alpha"] / cfg["r"]) if cfg.get("r") else None,
        "target_modules": sorted(targets) if isinstance(targets, list) else targets,
        "total_params": total,
        "layers": len(layers),
        "size_bytes": weights.stat().st_size,
        "tensors": tensors,
    }


def _refuse_unsafe(adapter_dir: Path, cfg: dict[str, Any]) -> None:
    where = f"{adapter_dir}/{ADAPTER_CONFIG}"
    if cfg.get("peft_type") != "LORA":
        raise FteforgeError(f"{where}: peft_type is {cfg.get('peft_type')!r}; only LORA adapters can be merged. "
                            f"Fix: {_FIX}")
    for field, why in _REFUSED_FLAGS.items():
        if cfg.get(field):
            raise FteforgeError(f"{where}: {field} is {cfg[field]!r} - {why}, so the merge would silently compute the "
                                f"wrong thing. Fix: {_FIX}")
    for field, what in _REFUSED_PATTERNS.items():
        if cfg.get(field):
            raise FteforgeError(f"{where}: {field} is non-empty ({what}: {sorted(cfg[field])[:3]}...) - the "
                                f"analysis and PEFT engine assume one r and alpha. Fix: {_FIX}")
    _weights_path(adapter_dir)


def adapter_base_fingerprint(adapter_dir: Path) -> tuple[str, str]:
    """(kind, value) naming the base an adapter was trained on: a recorded fingerprint when there is one.

    Order: `base_fingerprint` in adapter_config.json or training_config.json (written at training time,
    so it cannot go stale); else the fingerprint.json now at the config's base path (stale if that base
    was rebuilt since); else the base path string itself.
    """
    adapter_dir = Path(adapter_dir)
    for name in (ADAPTER_CONFIG, "training_config.json"):
        f = adapter_dir / name
        if f.is_file() and (fp := json.loads(f.read_text()).get("base_fingerprint")):
            return "recorded fingerprint", fp["fingerprint"] if isinstance(fp, dict) else str(fp)
    base = _read_config(adapter_dir).get("base_model_name_or_path") or ""
    fp_file = Path(base) / "fingerprint.json"
    if base and fp_file.is_file():
        return "fingerprint.json at base path", json.loads(fp_file.read_text())["fingerprint"]
    return "base path", str(Path(base).resolve()) if base and Path(base).exists() else base


def check_compatible(a_dir: Path | str, b_dir: Path | str, base_fingerprint: dict | None = None) -> list[str]:
    """Raise FteforgeError where a merge would be silently wrong; return notes on what is merely unusual.

    Raised: a non-LoRA or non-plain-LoRA adapter (DoRA, rsLoRA, LoRA bias, rank/alpha patterns...),
    missing or pickle-only weights, adapters trained on different bases, or on a base other than
    `base_fingerprint` (the dict in the base folder's fingerprint.json). Returned notes: different ranks
    or alphas (fine for full-weight merges; PEFT's linear/ties need equal ranks), different target
    modules, extra trained modules, a base that could only be compared by path.
    """
    a_dir, b_dir = Path(a_dir), Path(b_dir)
    cfgs = {}
    for d in (a_dir, b_dir):
        cfgs[d] = _read_config(d)
        _refuse_unsafe(d, cfgs[d])
    ca, cb = cfgs[a_dir], cfgs[b_dir]
    notes: list[str] = []

    (kind_a, fp_a), (kind_b, fp_b) = adapter_base_fingerprint(a_dir), adapter_base_fingerprint(b_dir)
    if fp_a != fp_b:
        raise FteforgeError(
            f"{a_dir} and {b_dir} were trained on different bases ({kind_a} {fp_a!r} vs {kind_b} {fp_b!r}); "
            f"their updates are relative to different weights and cannot be merged. Fix: retrain both on the "
            f"current base (dvc repro the train stages)"
        )
    if base_fingerprint is not None:
        want = base_fingerprint.get("fingerprint")
        for d, kind, fp in ((a_dir, kind_a, fp_a), (b_dir, kind_b, fp_b)):
            if kind == "base path":
                notes.append(f"{d}: no base fingerprint recorded; compared by base path only")
            elif fp != want:
                raise FteforgeError(f"{d}: trained on base {fp!r} ({kind}) but the base is now {want!r}. "
                                    f"Fix: retrain the adapter on the current base")
    elif kind_a == "base path":
        notes.append("no base fingerprint recorded in the adapters; compared by base path only")

    for field in ("task_type", "fan_in_fan_out"):
        if ca.get(field) != cb.get(field):
            notes.append(f"{field} differs: {ca.get(field)!r} vs {cb.get(field)!r}")
    if ca.get("r") != cb.get("r"):
        notes.append(f"note: ranks differ (r={ca.get('r')} vs r={cb.get('r')}): fine for full-weight merges "
                     f"(mergekit); PEFT linear/ties/dare_ties need equal ranks (use cat or *_svd)")
    if ca.get("lora_alpha") != cb.get("lora_alpha"):
        notes.append(f"note: lora_alpha differs ({ca.get('lora_alpha')} vs {cb.get('lora_alpha')}); dW uses each "
                     f"adapter's own alpha/r, so this is fine")
    ta, tb = ca.get("target_modules"), cb.get("target_modules")
    if sorted(ta or []) != sorted(tb or []):
        notes.append(f"target modules differ: {ta} vs {tb}; modules only one adapter touches keep that adapter's "
                     f"update (weighted) in a full-weight merge")
    for d, c in ((a_dir, ca), (b_dir, cb)):
        if c.get("modules_to_save") or c.get("trainable_token_indices"):
            notes.append(f"{d}: also trains whole modules ({c.get('modules_to_save') or 'token rows'}); mergekit "
                         f"merges them, but the interference figures only cover LoRA modules")
    return notes


class _Updates:
    """One adapter's dW, computed per module on demand: a 135M model's full set is ~0.4 GB."""

    def __init__(self, adapter_dir: Path):
        self.dir = Path(adapter_dir)
        self.cfg, self._pairs = _load_lora(self.dir)
        _refuse_unsafe(self.dir, self.cfg)
        self.scaling = self.cfg["lora_alpha"] / self.cfg["r"]
        self.keys = sorted(self._pairs)

    def delta(self, key: str) -> torch.Tensor:
        p = self._pairs[key]
        if "A" not in p or "B" not in p:
            raise FteforgeError(f"{self.dir}: {key} has lora_A or lora_B missing; the adapter file is incomplete")
        a, b = p["A"].float(), p["B"].float()
        if p["embedding"]:
            # PEFT stores embedding LoRA as A (r, vocab) and B (dim, r): the update to the (vocab, dim) table
            return self.scaling * (b @ a).T
        dw = self.scaling * (b @ a)
        return dw.T if self.cfg.get("fan_in_fan_out") else dw


def delta_w(a_dir: Path | str) -> dict[str, torch.Tensor]:
    """{module_key: dW} with dW = (alpha/r) * B @ A, shaped like the base weight it is added to."""
    updates = _Updates(Path(a_dir))
    return {key: updates.delta(key) for key in updates.keys}


def _significant(dw: torch.Tensor, significance: float) -> torch.Tensor:
    """Mask of the top `significance` share of |dW| (ties at the cut-off included)."""
    import torch

    flat = dw.abs().flatten()
    k = max(1, int(round((1 - significance) * flat.numel())))
    cut = torch.kthvalue(flat, k).values if k < flat.numel() else flat.max()
    return (dw.abs() >= cut) & (dw != 0)


def interference(a_dir: Path | str, b_dir: Path | str, significance: float = 0.1) -> dict[str, Any]:
    """How much the two adapters' updates fight, per (layer, module) and overall.

    Meaningful change: an entry is significant for an adapter when its |dW| is in that adapter's top
    `significance` share within the module (0.1 = above the module's 90th percentile of |dW|). A per-
    module percentile, not a global one, so modules with small updates still count.

    Per module: sign_conflict_rate = share of entries significant for BOTH whose signs differ (None when
    none overlap); cosine of the flattened dWs; norm_ratio = ||dW_a|| / ||dW_b||.
    Overall: sign_conflict_rate = total conflicts / total jointly-significant entries (weighted by
    overlap counts); mean_cosine = entry-count-weighted mean of the module cosines; norm_ratio = ratio of
    the global norms over all shared modules.
    """
    import torch

    if not 0 < significance <= 1:
        raise ValueError("significance must be in (0, 1]")
    ua, ub = _Updates(Path(a_dir)), _Updates(Path(b_dir))
    rows = []
    conflicts = joint_total = 0
    cos_sum = n_sum = sq_a = sq_b = 0.0
    for key in sorted(set(ua.keys) & set(ub.keys)):
        da, db = ua.delta(key), ub.delta(key)
        if da.shape != db.shape:
            raise FteforgeError(f"{key}: dW shapes differ ({tuple(da.shape)} vs {tuple(db.shape)}); not the same base")
        joint = _significant(da, significance) & _significant(db, significance)
        n_joint = int(joint.sum())
        n_conf = int((torch.sign(da[joint]) != torch.sign(db[joint])).sum())
        na, nb = float(da.norm()), float(db.norm())
        cos = float((da.flatten() @ db.flatten()) / (na * nb)) if na > 0 and nb > 0 else 0.0
        layer = _LAYER.search(f".{key}.")
        rows.append({
            "key": key, "layer": int(layer.group(1)) if layer else None, "module": key.rsplit(".", 1)[-1],
            "entries": da.numel(), "joint_entries": n_joint,
            "sign_conflict_rate": n_conf / n_joint if n_joint else None,
            "cosine": cos, "norm_ratio": na / nb if nb > 0 else float("inf"),
        })
        conflicts += n_conf
        joint_total += n_joint
        cos_sum += cos * da.numel()
        n_sum += da.numel()
        sq_a += na * na
        sq_b += nb * nb
    if not rows:
        raise FteforgeError(f"{a_dir} and {b_dir} adapt no module in common; nothing to compare")
    return {
        "significance": significance,
        "modules": rows,
        "only_in_a": sorted(set(ua.keys) - set(ub.keys)),
        "only_in_b": sorted(set(ub.keys) - set(ua.keys)),
        "overall": {
            "sign_conflict_rate": conflicts / joint_total if joint_total else 0.0,
            "mean_cosine": cos_sum / n_sum,
            "norm_ratio": (sq_a ** 0.5) / (sq_b ** 0.5) if sq_b > 0 else float("inf"),
            "modules": len(rows),
            "joint_entries": joint_total,
        },
    }


def decide_strategy(figures: dict[str, Any], strategy: MergeStrategy) -> dict[str, Any]:
    """Backup method when either threshold is crossed, else primary; the reasons quote figure and bound."""
    overall = figures.get("overall", figures)
    limits = strategy.use_backup_when
    rate, cos = overall["sign_conflict_rate"], overall["mean_cosine"]
    reasons = []
    if rate > limits.sign_conflict_rate:
        reasons.append(f"sign_conflict_rate {rate:.3f} > {limits.sign_conflict_rate} (use_backup_when)")
    if cos < limits.min_cosine:
        reasons.append(f"mean_cosine {cos:.3f} < {limits.min_cosine} (use_backup_when.min_cosine)")
    conflicts = bool(reasons)
    if not conflicts:
        reasons.append(f"sign_conflict_rate {rate:.3f} <= {limits.sign_conflict_rate} and mean_cosine {cos:.3f} "
                       f">= {limits.min_cosine}: no conflicts, primary method")
    return {"method": strategy.backup if conflicts else strategy.primary, "conflicts_detected": conflicts,
            "reasons": reasons}


_MODULE_ORDER = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
_METRIC_STYLE = {  # colour map and fixed range, so heat maps from different runs compare by eye
    "sign_conflict_rate": ("magma_r", 0.0, 1.0),
    "cosine": ("RdBu", -1.0, 1.0),
    "norm_ratio": ("viridis", None, None),
}


def heatmap_png(figures: dict[str, Any], path: Path | str, metric: str = "sign_conflict_rate") -> Path:
    """A layer x module heat map of one per-module metric, written as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    if metric not in _METRIC_STYLE:
        raise ValueError(f"metric must be one of {sorted(_METRIC_STYLE)}")
    rows = [r for r in figures["modules"] if r["layer"] is not None]
    layers = sorted({r["layer"] for r in rows})
    seen = {r["module"] for r in rows}  # the order modules run in a Llama block, then anything else
    modules = [m for m in _MODULE_ORDER if m in seen] + sorted(seen - set(_MODULE_ORDER))
    grid = np.full((len(layers), len(modules)), np.nan)
    for r in rows:
        if r[metric] is not None:
            grid[layers.index(r["layer"]), modules.index(r["module"])] = r[metric]
    cmap, vmin, vmax = _METRIC_STYLE[metric]
    fig, ax = plt.subplots(figsize=(1.1 * len(modules) + 2.5, 0.32 * len(layers) + 1.8))
    im = ax.imshow(grid, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    ax.set_xticks(range(len(modules)), modules, rotation=30, ha="right")
    ax.set_yticks(range(len(layers)), [str(x) for x in layers])
    ax.set_xlabel("module")
    ax.set_ylabel("decoder layer")
    overall = figures["overall"]
    summary = {"sign_conflict_rate": overall["sign_conflict_rate"], "cosine": overall["mean_cosine"],
               "norm_ratio": overall["norm_ratio"]}[metric]
    ax.set_title(f"{metric} per layer x module (overall {summary:.3f}; top {figures['significance']:.0%} |dW|)",
                 fontsize=9)
    finite = grid[np.isfinite(grid)]
    mid = float(np.mean([vmin, vmax])) if vmin is not None else (float(finite.mean()) if finite.size else 0.0)
    for (i, j), v in np.ndenumerate(grid):
        if np.isfinite(v):  # white text on the dark end of the map, black on the light end
            dark = v > mid if cmap == "magma_r" else (abs(v) > 0.6 if cmap == "RdBu" else v < mid)
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6, color="white" if dark else "black")
    fig.colorbar(im, ax=ax, label=metric, fraction=0.05)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def render_analysis_md(adapters: dict[str, dict[str, Any]], notes: list[str], figures: dict[str, Any],
                       decision: dict[str, Any], heatmaps: dict[str, str] | None = None) -> str:
    """A readable report: the adapters (analyze_adapter output by name), notes, interference, decision."""
    o = figures["overall"]
    lines = ["# Adapter analysis", "", "| adapter | r | alpha | targets | layers | params | size |",
             "|---|---|---|---|---|---|---|"]
    for name, a in adapters.items():
        targets = ", ".join(a["target_modules"]) if isinstance(a["target_modules"], list) else a["target_modules"]
        lines.append(f"| {name} | {a['r']} | {a['lora_alpha']} | {targets} | {a['layers']} | "
                     f"{a['total_params']:,} | {a['size_bytes'] / 1e6:.2f} MB |")
    lines += ["", "## Compatibility", ""] + ([f"- {n}" for n in notes] or ["- no problems found"])
    lines += ["", "## Interference (dW = (alpha/r) B A)", "",
              f"Significant entry = top {figures['significance']:.0%} of |dW| within a module, for each adapter.", "",
              "| figure | value |", "|---|---|",
              f"| sign conflict rate (jointly significant entries) | {o['sign_conflict_rate']:.3f} |",
              f"| mean cosine (entry-weighted) | {o['mean_cosine']:.3f} |",
              f"| norm ratio a/b | {o['norm_ratio']:.3f} |",
              f"| modules compared | {o['modules']} |", ""]
    worst = sorted((r for r in figures["modules"] if r["sign_conflict_rate"] is not None),
                   key=lambda r: -r["sign_conflict_rate"])[:5]
    if worst:
        lines += ["Most conflicting modules:", ""] + [
            f"- `{r['key']}`: conflict {r['sign_conflict_rate']:.3f}, cosine {r['cosine']:.3f}" for r in worst] + [""]
    lines += ["## Decision", "", f"**{decision['method']}** (conflicts detected: {decision['conflicts_detected']})", ""]
    lines += [f"- {r}" for r in decision["reasons"]]
    for metric, rel in (heatmaps or {}).items():
        lines += ["", f"![{metric}]({rel})"]
    return "\n".join(lines) + "\n"


def analyze_sources(adapters: dict[str, Path | str], base_fingerprint: dict | None, strategy: MergeStrategy,
                    significance: float = 0.1) -> dict[str, Any]:
    """Everything analyze_adapters reports: per-adapter facts, compatibility notes, interference of each
    pair, and the spec's strategy decision (taken on the most conflicting pair)."""
    from itertools import combinations

    names = list(adapters)
    if len(names) < 2:
        raise FteforgeError(f"a merge needs at least two source adapters, got {names}")
    facts = {n: analyze_adapter(adapters[n]) for n in names}
    notes: list[str] = []
    pairs = {}
    for a, b in combinations(names, 2):
        notes += check_compatible(adapters[a], adapters[b], base_fingerprint)
        pairs[f"{a}|{b}"] = interference(adapters[a], adapters[b], significance)
    worst = max(pairs, key=lambda k: pairs[k]["overall"]["sign_conflict_rate"])
    decision = decide_strategy(pairs[worst], strategy)
    decision["pair"] = worst
    decision["figures"] = pairs[worst]["overall"]
    decision["thresholds"] = strategy.use_backup_when.model_dump()
    return {"adapters": facts, "notes": sorted(set(notes)), "pairs": pairs, "decision": decision}
