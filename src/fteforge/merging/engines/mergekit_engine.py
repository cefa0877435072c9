"""Full-weight merges with mergekit 0.1.5: each adapter enters as `BASE+ADAPTER` (merged into the base first).

Facts checked in mergekit's source (merge_methods/registry.py, generalized_task_arithmetic.py, linear.py):

- `normalize` defaults differ by method: ties True, dare_ties False, task_arithmetic False, linear True.
  The rendered config always states it, so the artifact says what ran.
- task_arithmetic / linear with normalize: the weighted sum is divided by the sum of the weights, so
  each task vector enters at w/sum(w): 0.6/0.4 (sum 1) is unchanged - the weights themselves do the
  diluting - and 1.0/1.0 halves both.
- ties / dare_ties with normalize: the divisor is the sum of the weights of the adapters whose sign
  AGREES with the elected sign at that entry (a disjoint weighted mean), so an entry only one adapter
  changes keeps that adapter's full update whatever its weight; weights matter where both agree.
- dare_ties `rescale` (default true) rescales the kept entries to the L1 norm of the whole task
  vector (before/after), not by the paper's 1/density; the two agree in expectation only.
- linear averages whole models, so it takes no base_model; without normalize the base itself would be
  scaled by sum(weights), which `render_mergekit_config` refuses.

Determinism: DARE draws its masks from torch's global RNG, which run_merge seeds (`random_seed`)
before it warms its loaders. On a cold LoRA cache that warm-up merges each `base+adapter` through a
PeftModel, whose lora_A init draws from the same RNG, so a cold run and a warm run of the same seed
gave different masks (seen here with PYTHONHASHSEED=0 fixed: the cause of the "differs run to run" in
the stack notes). Fix: the child fills the LoRA cache first, then calls run_merge, which seeds. With
that, cold and warm runs are byte-identical, and PYTHONHASHSEED=1 vs 2 gave identical bytes too; the
subprocess still sets PYTHONHASHSEED=0 as cheap insurance. The subprocess also gets a fresh
`LoaderCache`, whose loader table is a class attribute that would otherwise keep serving a stale model
inside a long-lived process, and returns its ~2-3 GB peak memory when it exits.

Model card: mergekit lists the merged models by iterating a set of ModelReference, whose hash includes
hash(None) - an address on Python 3.11 - so the list order changed from process to process (seen in
CI: same weights, different README bytes). We write the card ourselves, models sorted.

LoRA merge cache: mergekit names a cached `base+adapter` model by path (basename + CRC32 of the path
string) and never checks content, so an adapter retrained in place would reuse a stale merge. The
cache dir handed to mergekit is therefore `cache_dir/<sha256 of the base weights, each adapter's
weights and config>`: new content, new folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path
from typing import Any

from fteforge.errors import FteforgeError
from fteforge.merging.engines import MERGE_ENGINES

METHODS = ("ties", "dare_ties", "linear", "task_arithmetic")
DEFAULT_NORMALIZE = {"ties": True, "dare_ties": False, "linear": True, "task_arithmetic": False}
CONFIG_NAME = "mergekit_config.yml"
SOURCES_NAME = "merge_sources.json"


def _ref(path: Path | str) -> str:
    s = str(path)
    if "+" in s or "@" in s:  # mergekit splits model strings on '+' (LoRA) and '@' (revision)
        raise FteforgeError(f"{s}: mergekit cannot address a path containing '+' or '@'; move or rename it")
    return s


def render_mergekit_config(
    base_dir: Path | str,
    adapters: dict[str, Path | str],
    method: str,
    weights: dict[str, float],
    *,
    density: float | dict[str, float] | None = None,
    normalize: bool | None = None,
    rescale: bool | None = None,
    lambda_: float | None = None,
    module_weights: dict[str, dict[str, float | list[float]]] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A mergekit config dict (validated by MergeConfiguration) merging `adapters` (name -> dir) onto the base.

    density (ties/dare_ties only) is one value or one per adapter; normalize defaults to mergekit's
    default for the method, written out explicitly; rescale is dare_ties only; extra adds top-level
    keys (out_dtype, chat_template...). A weight may be a list, which mergekit interpolates over the
    layers; module_weights (tensor-name substring -> adapter -> weight) becomes mergekit's filtered
    weights, first match first, with `weights` as the catch-all entry so no tensor goes unweighted.
    """
    from mergekit.config import MergeConfiguration

    if method not in METHODS:
        raise FteforgeError(f"merge method {method!r} is not supported; choose one of {list(METHODS)}")
    if set(weights) != set(adapters):
        raise FteforgeError(f"merge weights name {sorted(weights)} but the adapters are {sorted(adapters)}")
    sparse = method in ("ties", "dare_ties")
    if density is not None and not sparse:
        raise FteforgeError(f"density applies to ties/dare_ties only, not {method}")
    if rescale is not None and method != "dare_ties":
        raise FteforgeError("rescale applies to dare_ties only")
    module_weights = module_weights or {}
    for key, per_adapter in module_weights.items():
        if set(per_adapter) != set(adapters):
            raise FteforgeError(f"module_weights.{key} names {sorted(per_adapter)} but the adapters are {sorted(adapters)}")
    normalize = DEFAULT_NORMALIZE[method] if normalize is None else normalize
    scalar = not module_weights and not any(isinstance(w, list) for w in weights.values())
    if method == "linear" and not normalize and not scalar:
        raise FteforgeError("linear without normalize needs one weight per adapter summing to 1; set normalize: true "
                            "to use per-layer or per-module weights")
    if method == "linear" and not normalize and abs(sum(weights.values()) - 1) > 1e-6:
        raise FteforgeError(f"linear without normalize scales the base weights by sum(weights)={sum(weights.values())}; "
                            f"set normalize: true or weights that sum to 1")

    base = _ref(base_dir)
    models = []
    for name in adapters:  # the caller's order, kept so the config reads as written
        params: dict[str, Any] = {"weight": _weight(weights[name])}
        if module_weights:
            params["weight"] = ([{"filter": key, "value": _weight(per_adapter[name])}
                                 for key, per_adapter in module_weights.items()]
                                + [{"value": params["weight"]}])
        if sparse:
            d = density.get(name, 1.0) if isinstance(density, dict) else density
            params["density"] = 1.0 if d is None else float(d)
        models.append({"model": f"{base}+{_ref(adapters[name])}", "parameters": params})

    shared: dict[str, Any] = {"normalize": normalize}
    if method == "dare_ties":
        shared["rescale"] = True if rescale is None else rescale
    if lambda_ is not None:
        if method == "linear":
            raise FteforgeError("lambda applies to task-vector methods, not linear")
        shared["lambda"] = float(lambda_)

    config: dict[str, Any] = {"merge_method": method}
    if method != "linear":  # linear averages whole models; a base_model would join the average unweighted
        config["base_model"] = base
    config.update({
        "models": models,
        "parameters": shared,
        "dtype": "float32",
        # "base" means the base_model; linear has none, so name the base folder itself
        "tokenizer_source": "base" if method != "linear" else base,
    })
    config.update(extra or {})
    MergeConfiguration.model_validate(config)
    return config


def _weight(w: float | list[float]) -> float | list[float]:
    return [float(x) for x in w] if isinstance(w, list) else float(w)


def config_yaml(config: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(config, sort_keys=False)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            h.update(block)
    return h.hexdigest()


def _sources(config: dict[str, Any]) -> dict[str, Any]:
    """Content hashes of every model the config references: the base's weights, each adapter's files."""
    from mergekit.config import MergeConfiguration

    refs = MergeConfiguration.model_validate(config).referenced_models()
    bases, adapters = {}, {}
    for ref in sorted(refs, key=str):
        base = Path(ref.model.path)
        if not base.is_dir():
            raise FteforgeError(f"{base}: no such model folder (mergekit would try the Hugging Face hub)")
        if str(base) not in bases:
            files = sorted(base.glob("*.safetensors"))
            if not files:
                raise FteforgeError(f"{base}: no *.safetensors weights")
            bases[str(base)] = {f.name: _sha256(f) for f in files}
        if ref.lora is not None:
            d = Path(ref.lora.path)
            w = d / "adapter_model.safetensors"
            if not w.is_file():
                raise FteforgeError(f"{d}: no adapter_model.safetensors (pickle-only or missing adapter)")
            adapters[str(d)] = {"adapter_model_sha256": _sha256(w), "adapter_config_sha256": _sha256(d / "adapter_config.json")}
    key = hashlib.sha256(json.dumps({"bases": bases, "adapters": adapters}, sort_keys=True).encode()).hexdigest()
    return {"bases": bases, "adapters": adapters, "lora_cache_key": key[:16]}


def _child_main(config_path: str, out_path: str, lora_cache: str, seed: str, threads: str) -> None:
    """Runs in the subprocess (PYTHONHASHSEED=0): one mergekit merge on CPU."""
    import yaml
    from mergekit.config import MergeConfiguration
    from mergekit.merge import run_merge
    from mergekit.options import MergeOptions

    text = Path(config_path).read_text()
    config = MergeConfiguration.model_validate(yaml.safe_load(text))
    options = MergeOptions(
        lora_merge_cache=lora_cache, lora_merge_dtype="float32", random_seed=int(seed), lazy_unpickle=False,
        copy_tokenizer=True, device="cpu", quiet=True, num_threads=int(threads) or None,
        safe_serialization=True, write_model_card=False, trust_remote_code=False,
    )
    # Fill the LoRA cache BEFORE run_merge seeds the RNG: a cold-cache LoRA merge builds a PeftModel,
    # whose lora_A init draws from torch's global RNG after the seed, so DARE's masks would differ
    # between a cold and a warm cache.
    for ref in sorted(config.referenced_models(), key=str):
        ref.merged(cache_dir=lora_cache, lora_merge_dtype="float32")
    run_merge(config, out_path, options=options, config_source=text)
    (Path(out_path) / "README.md").write_text(_model_card(config, text, Path(out_path).name))


def _model_card(config: Any, config_text: str, name: str) -> str:
    def ref(m: Any) -> str:
        return m.model.path + (f" + {m.lora.path}" if m.lora else "")

    base = config.base_model
    models = sorted(ref(m) for m in config.referenced_models() if m != base)
    lines = [f"# {name}", "", f"Merged with mergekit {version('mergekit')} by fteforge, method `{config.merge_method}`"
             + (f", base `{ref(base)}`." if base else "."), "", "## Models merged", ""]
    lines += [f"* {m}" for m in models]
    lines += ["", "## Configuration", "", "```yaml", config_text.rstrip("\n"), "```", ""]
    return "\n".join(lines)


def run(config: dict[str, Any], out_dir: Path | str, cache_dir: Path | str, seed: int = 0,
        threads: int = 0) -> dict[str, Any]:
    """Merge per `config` into `out_dir` (replaced atomically); return the provenance written beside it.

    `out_dir` gets the merged safetensors model, tokenizer, generation config, a model card (README.md), the
    exact config text as mergekit_config.yml, and merge_sources.json (content hashes, seed, cache key).
    """
    out_dir, cache_dir = Path(out_dir), Path(cache_dir)
    text = config_yaml(config)
    sources = _sources(config)
    lora_cache = cache_dir / sources["lora_cache_key"]
    if lora_cache.exists() and not (lora_cache / ".complete").exists():
        shutil.rmtree(lora_cache)  # a run died mid-way: mergekit would trust a half-written entry
    lora_cache.mkdir(parents=True, exist_ok=True)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    # the model card is titled after the output folder: give it the final name
    tmp = scratch / out_dir.name
    tmp.mkdir()
    try:
        (tmp / CONFIG_NAME).write_text(text)
        env = {**os.environ, "PYTHONHASHSEED": "0", "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1", "CUDA_VISIBLE_DEVICES": ""}
        code = "import sys; from fteforge.merging.engines.mergekit_engine import _child_main; _child_main(*sys.argv[1:])"
        proc = subprocess.run(
            [sys.executable, "-c", code, str(tmp / CONFIG_NAME), str(tmp), str(lora_cache), str(seed), str(threads)],
            env=env, capture_output=True, text=True,
        )
        if proc.returncode != 0:
            raise FteforgeError(f"mergekit {config['merge_method']} merge failed (exit {proc.returncode}):\n"
                                f"{proc.stderr[-3000:]}")
        (lora_cache / ".complete").touch()
        if (tmp / CONFIG_NAME).read_text() != text:
            raise FteforgeError(f"mergekit rewrote {CONFIG_NAME}; the output would not record what ran")
        base_dirs = list(sources["bases"])
        for name in ("generation_config.json", "chat_template.jinja"):  # mergekit copies neither
            if not (tmp / name).exists() and (Path(base_dirs[0]) / name).is_file():
                shutil.copy2(Path(base_dirs[0]) / name, tmp / name)
        provenance = {"engine": "mergekit", "mergekit_version": version("mergekit"),
                      "method": config["merge_method"], "seed": seed, "pythonhashseed": "0", **sources}
        (tmp / SOURCES_NAME).write_text(json.dumps(provenance, indent=2, sort_keys=True) + "\n")
        tmp.chmod(0o755)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return provenance


@MERGE_ENGINES.register("mergekit")
def merge_full(base_dir: Path | str, adapters: dict[str, Path | str], out_dir: Path | str, *, method: str,
               weights: dict[str, float], cache_dir: Path | str, seed: int = 0, threads: int = 0,
               **knobs: Any) -> dict[str, Any]:
    """Full-weight merge with mergekit (ties, dare_ties, linear, task_arithmetic); writes a full model."""
    config = render_mergekit_config(base_dir, adapters, method, weights, **knobs)
    return run(config, out_dir, cache_dir, seed=seed, threads=threads)
