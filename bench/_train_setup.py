"""What the training benchmarks share: train params, threads, tokenizer, each adapter's rows, the report head.

Imported by bench/prefix_grouping.py and bench/train_attention.py after they put src/ on sys.path.
"""

from __future__ import annotations

import os
import platform
import sys
from typing import Any

import torch
from transformers import AutoTokenizer

from fteforge import paths
from fteforge.data.records import load_examples
from fteforge.params import TrainKnobs, TrainParams, load_params
from fteforge.specs import SpecSet, load_spec_set
from fteforge.training.data import tokenize_examples

DATASETS = {"agentic": paths.AGENTIC_TRAIN, "persona": paths.PERSONA_TRAIN}


def setup(benchmark: str) -> tuple[TrainParams, SpecSet, Any, dict[str, Any]]:
    """The pipeline's train params (threads fixed from them), specs, base tokenizer and a report head."""
    params = load_params("train", TrainParams)
    torch.set_num_threads(params.threads or torch.get_num_threads())
    report = {"benchmark": benchmark, "command": f"python bench/{benchmark}.py " + " ".join(sys.argv[1:]),
              "threads": torch.get_num_threads(),
              "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()}}
    return params, load_spec_set(paths.SPECS), AutoTokenizer.from_pretrained(paths.BASE_DIR), report


def adapter_rows(params: TrainParams, specs: SpecSet, tok: Any, adapter: str) -> tuple[TrainKnobs, list[dict]]:
    """The adapter's knobs and its training rows, tokenized as train_adapter does."""
    knobs = params.knobs_for(adapter)
    rows = tokenize_examples(load_examples(DATASETS[params.adapters[adapter].dataset]), tok, specs.tools,
                             knobs.max_length, knobs.learn_turns)
    return knobs, rows
