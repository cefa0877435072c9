"""What the batch-1 decoding benchmarks share: a model served and constrained as the evaluation does it.

Imported by bench/stream_decoding.py and bench/draft_acceptance.py after they put src/ on sys.path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from fteforge.evaluation.generation import tool_call_constraint
from fteforge.evaluation.runner import load_model
from fteforge.evaluation.serving import resolve_serving, serve_as
from fteforge.params import EvaluateParams, load_params
from fteforge.specs import SpecSet, load_spec_set


@dataclass
class Served:
    params: EvaluateParams
    specs: SpecSet
    model: Any
    tokenizer: Any
    serving: str
    constraint: Any


def serve(root: Path, model_dir: str) -> Served:
    """`evaluate:` params (threads set), the specs, and the model at `model_dir` served in `evaluate.serving`
    on the CPU with the tool-call constraint."""
    params = load_params("evaluate", EvaluateParams, root / "params.yaml")
    torch.set_num_threads(params.threads)
    specs = load_spec_set(root / "specs")
    loaded = load_model(root / model_dir)
    serving = resolve_serving(params.serving, "cpu")
    model, tok = serve_as(loaded.model, serving), loaded.tokenizer
    return Served(params, specs, model, tok, serving, tool_call_constraint(model, tok, specs.tools))
