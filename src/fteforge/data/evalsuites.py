"""build_eval_suites: the three held-out suites, and the proof that none of their inputs leaked.

Each builder draws from the eval entity pools and its own phrasing templates (held out by
construction); the leakage check then compares every eval input with every training input, so a
template or pool edit that breaks the separation fails the stage instead of inflating scores.
"""

from __future__ import annotations

from typing import Any

from fteforge.data.agentic import build_agentic_eval_cases
from fteforge.data.leakage import find_leaks
from fteforge.data.persona import build_combined_eval_cases, build_persona_eval_cases
from fteforge.data.records import EvalCase, Example
from fteforge.errors import FteforgeError
from fteforge.params import EvalSuiteParams
from fteforge.specs import SpecSet


def build_eval_suites(
    specs: SpecSet, params: EvalSuiteParams, train: list[Example]
) -> tuple[dict[str, list[EvalCase]], dict[str, Any]]:
    suites = {
        "persona": build_persona_eval_cases(specs.persona, seed=params.seed + 1, n=params.persona_cases),
        "agentic": build_agentic_eval_cases(specs.agentic, specs.tools, seed=params.seed + 2, n=params.agentic_cases),
        "combined": build_combined_eval_cases(specs.persona, specs.agentic, specs.tools, seed=params.seed + 3,
                                              n=params.combined_cases),
    }
    # the persona data carries lent copies of agentic examples (data/mixing.py): compare each input once
    train = list({(e.id, e.user): e for e in train}.values())
    check_leakage(suites, train, params.near_duplicate_threshold)
    agentic = suites["agentic"]
    report = {
        "cases": {k: len(v) for k, v in suites.items()},
        "agentic_no_call_fraction": round(sum(c.expected_tool is None for c in agentic) / len(agentic), 4),
        "agentic_tools": sorted({c.expected_tool for c in agentic if c.expected_tool}),
        "training_inputs_compared": len(train),
        "near_duplicate_threshold": params.near_duplicate_threshold,
        "leaks": 0,
    }
    return suites, report


def check_leakage(suites: dict[str, list[EvalCase]], train: list[Example], threshold: float) -> None:
    """Raise FteforgeError listing every eval input that equals or nearly equals a training input."""
    eval_texts = [(c.id, c.user_text) for cases in suites.values() for c in cases]
    train_texts = [(e.id, e.user) for e in train]
    leaks = find_leaks(eval_texts, train_texts, threshold)
    if leaks:
        shown = "\n  ".join(
            f"{lk.eval_id} ~ {lk.train_id} ({lk.kind}, {lk.similarity:.2f}): {lk.eval_text!r} vs {lk.train_text!r}"
            for lk in leaks[:20]
        )
        raise FteforgeError(
            f"{len(leaks)} evaluation input(s) leak from the training data (threshold {threshold}):\n  {shown}\n"
            "Regenerate the suites with another eval_suites.seed, or change the held-out templates/pools."
        )
