"""What the three evaluate stages share: read the suites and earlier results, evaluate, write the outputs.

The stages differ only in which folder they evaluate and what they compare it with: the base is the
A/B reference, an adapter is compared with the base, a merge with the base and its source adapters.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from fteforge import paths
from fteforge.data.records import EvalCase, load_suite, write_jsonl, write_text
from fteforge.errors import FteforgeError
from fteforge.specs import SpecSet


def load_suites(suite_files: Mapping[str, Path], max_cases: int | None = None) -> tuple[list[EvalCase], dict[str, Any]]:
    """Cases of every suite (the first `max_cases` of each when set) and where they came from."""
    cases: list[EvalCase] = []
    info: dict[str, Any] = {}
    for kind, path in suite_files.items():
        suite = load_suite(path)
        wrong = [c.id for c in suite if c.kind != kind]
        if wrong:
            raise FteforgeError(f"{path}: cases {wrong[:5]} have a kind other than {kind!r}; the {kind} suite holds "
                                f"{kind} cases only (docs/eval_suite_format.md)")
        kept = suite[:max_cases] if max_cases else suite
        cases += kept
        info[kind] = {"file": str(path), "cases": len(kept), "of": len(suite)}
    return cases, info


def read_results(model_id: str, needed_by: str) -> dict[str, Any]:
    path = paths.evaluation_results(model_id)
    if not path.is_file():
        kind, _, name = model_id.partition("/")
        stage = f"evaluate_{kind.removesuffix('s')}" + (f"@{name}" if name else "")
        raise FteforgeError(f"{path}: not found - {needed_by} compares with it; run `dvc repro {stage}` first")
    return json.loads(path.read_text())


def scorer_validation(specs: SpecSet) -> dict[str, Any]:
    from fteforge.evaluation.scorers.validation import validate_persona_scorer

    v = validate_persona_scorer(specs.persona)
    return {"persona_scorer_accuracy": v["accuracy"], "labelled_replies": v["n"], "per_label": v["per_label"]}


def write_outputs(model_id: str, results: Mapping[str, Any], records: list[Any]) -> None:
    from fteforge.evaluation.report import flat_metrics

    write_jsonl(paths.evaluation_cases(model_id), [r.to_dict() for r in records])
    write_text(paths.evaluation_results(model_id), json.dumps(results, indent=2, sort_keys=True) + "\n")
    write_text(paths.eval_metrics(model_id), json.dumps(flat_metrics(results), indent=2, sort_keys=True) + "\n")


def evaluate_stage(model_id: str, role: str, model_dir: Path, specs: SpecSet, params: Any, *,
                   merge_metrics: Path | None = None,
                   progress: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Evaluate one model of the pipeline on the held-out suites and write its three outputs."""
    from fteforge.evaluation.report import build_results, case_scores
    from fteforge.evaluation.runner import evaluate_model, persona_case_scores, win_rate

    needed_by = f"evaluating {model_id}"
    base_results = read_results(paths.EVAL_BASE, needed_by) if role != "base" else None
    adapter_results = None
    if role == "merge":
        adapter_results = {a: read_results(paths.adapter_model_id(a), needed_by) for a in specs.adapters}
    merge_info = None
    if merge_metrics is not None:
        if not merge_metrics.is_file():
            raise FteforgeError(f"{merge_metrics}: not found - run `dvc repro merge@{model_id.split('/', 1)[1]}` first")
        merge_info = json.loads(merge_metrics.read_text())

    cases, suites = load_suites(paths.EVAL_SUITES, params.max_cases)
    draft = None
    if params.latency.draft_tokens and params.latency.decoder == "auto":
        from fteforge.evaluation.draft import NgramDraft

        if not paths.DRAFT_TABLE.is_file():
            raise FteforgeError(f"{paths.DRAFT_TABLE}: not found - run `dvc repro build_draft` first, or set "
                                "evaluate.latency.draft_tokens: 0 in params.yaml")
        draft = NgramDraft.load(paths.DRAFT_TABLE)
    ev = evaluate_model(model_dir, cases, specs, params, base_dir=None if role == "base" else paths.BASE_DIR,
                        draft=draft, progress=progress)
    ab = None
    if base_results is not None:
        ab = win_rate(persona_case_scores(ev.records), case_scores(base_results),
                      params.bootstrap_samples, params.seed)
    results = build_results(model_id, role, ev, specs, suites=suites, ab=ab, base_results=base_results,
                            adapter_results=adapter_results, merge_info=merge_info,
                            scorer_validation=scorer_validation(specs))
    write_outputs(model_id, results, ev.records)
    return results
