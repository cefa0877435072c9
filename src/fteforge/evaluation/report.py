"""EVALUATION_RESULTS.json, the flat metrics for `dvc exp show`, and the candidates' comparison.

Gates: every `success_criteria` entry of the persona, agentic and unified specs is listed for every
model with its value, bound and PASS / FAIL / not applicable. "Not applicable" is reserved for what
cannot exist for that kind of model (a base has no A/B against itself, only a merge has preservation
ratios, a suite file without persona cases has no persona score); a value the run should have produced
but could not (no tool call emitted, so no JSON-validity share) is a FAIL with the reason, never a pass.
Gates on training loss and adapter size belong to train_adapter and are left out here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from fteforge.evaluation.runner import ModelEvaluation
from fteforge.specs import Gate, SpecSet

TRAINING_GATE_PREFIXES = ("train.", "adapter.")
ROLES = ("base", "adapter", "merge", "model")  # model: any folder given to `fteforge evaluate`
HEADLINE = {"persona": "persona.overall_score", "agentic": "agentic.score", "combined": "combined.score"}


# -- merges against their sources ---------------------------------------------------------------------

def preservation(merged: float | None, adapter: float | None, base: float | None) -> dict[str, float | None]:
    """`ratio` = merged / adapter (the spec's preservation); `gain_retained` = (merged - base) / (adapter - base),
    the share of what fine-tuning added that survived the merge. None where a denominator is zero or missing."""
    ratio = merged / adapter if merged is not None and adapter else None
    gain = None
    if merged is not None and adapter is not None and base is not None and adapter != base:
        gain = (merged - base) / (adapter - base)
    return {"merged": merged, "adapter": adapter, "base": base, "ratio": ratio, "gain_retained": gain}


def unified_metrics(merged: Mapping[str, Any], base: Mapping[str, Any], adapters: Mapping[str, Mapping[str, Any]],
                    persona_adapter: str, agentic_adapter: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the unified.* gate metrics, the preservation detail) of a merge, from the metrics of it, the base and
    each source adapter (`adapters[name]` = that adapter's metrics)."""
    detail = {
        "persona": preservation(merged.get(HEADLINE["persona"]), adapters.get(persona_adapter, {}).get(HEADLINE["persona"]),
                                base.get(HEADLINE["persona"])) | {"adapter_name": persona_adapter},
        "agentic": preservation(merged.get(HEADLINE["agentic"]), adapters.get(agentic_adapter, {}).get(HEADLINE["agentic"]),
                                base.get(HEADLINE["agentic"])) | {"adapter_name": agentic_adapter},
    }
    singles = [m.get(HEADLINE["combined"]) for m in adapters.values()]
    singles = [s for s in singles if s is not None]
    best = max(singles) if singles else None
    combined = merged.get(HEADLINE["combined"])
    regression = None
    if combined is not None and best is not None:
        # Means of the same case scores summed in another order differ in the last bits: 1.17.0's first
        # v6_ties build tied the persona adapter at 0.8217 and failed ">= 0" by -1.1e-16.
        regression = 0.0 if math.isclose(combined, best, rel_tol=0.0, abs_tol=1e-9) else combined - best
    detail["combined"] = {"merged": combined, "best_single_adapter": best, "regression": regression}
    metrics = {
        "unified.persona_preservation": detail["persona"]["ratio"],
        "unified.agentic_preservation": detail["agentic"]["ratio"],
        "unified.persona_gain_retained": detail["persona"]["gain_retained"],
        "unified.agentic_gain_retained": detail["agentic"]["gain_retained"],
        "unified.combined_regression": detail["combined"]["regression"],
    }
    return metrics, detail


# -- gates --------------------------------------------------------------------------------------------

def _not_applicable(metric: str, role: str, metrics: Mapping[str, Any]) -> str | None:
    if metric.startswith("unified.") and role != "merge":
        return "preservation and regression compare a merge with its source adapters"
    if metric == "persona.ab_win_rate" and role == "base":
        return "the base is the A/B reference"
    if metric == "persona.ab_win_rate" and metric not in metrics:
        return "no base model to compare with (pass --base DIR)"
    if metric.startswith("latency.") and "latency.runs" not in metrics:
        return "latency was not measured in this run (--no-latency)"
    if metric == "agentic.no_call_accuracy" and metrics.get("agentic.no_call_cases") == 0:
        return "the agentic cases hold no no-call case"
    kind = metric.split(".")[0]
    if kind in HEADLINE and f"{kind}.cases" not in metrics and metric != "persona.boundary_violations":
        return f"the suites hold no {kind} cases"
    if metric == "persona.boundary_violations" and metric not in metrics:
        return "the suites hold no persona or combined cases"
    return None


def gate_rows(specs: SpecSet, metrics: Mapping[str, Any], role: str) -> list[dict[str, Any]]:
    """One row per spec gate (training gates left out): value, bound, PASS / FAIL / not applicable."""
    sources: list[tuple[str, list[Gate]]] = [
        (str(specs.files.get("PersonaSpec", "persona spec")), specs.persona.success_criteria),
        (str(specs.files.get("AgenticSpec", "agentic spec")), specs.agentic.success_criteria),
        (str(specs.files.get("UnifiedModelSpec", "unified spec")), specs.unified.success_criteria),
    ]
    rows = []
    for spec_file, gates in sources:
        for g in gates:
            if g.metric.startswith(TRAINING_GATE_PREFIXES):
                continue
            row = {"spec": spec_file, "metric": g.metric, "op": g.op, "bound": g.bound, "unit": g.unit,
                   "measured_by": g.measured_by, "value": metrics.get(g.metric)}
            why = _not_applicable(g.metric, role, metrics)
            if why is not None:
                row.update(status="not applicable", note=why)
            elif row["value"] is None:
                row.update(status="FAIL", note=_why_missing(g.metric, metrics))
            else:
                row.update(status="PASS" if g.check(row["value"]) else "FAIL", note="")
            rows.append(row)
    return rows


def _why_missing(metric: str, metrics: Mapping[str, Any]) -> str:
    if metric in ("agentic.json_validity", "agentic.schema_validity") and metrics.get("agentic.calls_emitted") == 0:
        return "not measurable: the model emitted no tool call on the agentic suite"
    if metric.startswith("unified."):
        return "not measurable: a source adapter scores 0 (or its results are missing)"
    return "not measured"


def gate_summary(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    count = {s: sum(r["status"] == s for r in rows) for s in ("PASS", "FAIL", "not applicable")}
    return {"passed": count["PASS"], "failed": count["FAIL"], "not_applicable": count["not applicable"],
            "all_passed": count["FAIL"] == 0 and count["PASS"] > 0,
            "failed_metrics": [r["metric"] for r in rows if r["status"] == "FAIL"]}


# -- EVALUATION_RESULTS.json --------------------------------------------------------------------------

def _section(metrics: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    return {k.removeprefix(prefix): v for k, v in metrics.items() if k.startswith(prefix)}


def build_results(name: str, role: str, ev: ModelEvaluation, specs: SpecSet, *, suites: Mapping[str, Any],
                  ab: Mapping[str, Any] | None = None, base_results: Mapping[str, Any] | None = None,
                  adapter_results: Mapping[str, Mapping[str, Any]] | None = None,
                  merge_info: Mapping[str, Any] | None = None,
                  scorer_validation: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The EVALUATION_RESULTS.json of one model. `base_results` / `adapter_results` are earlier results
    (for a merge's preservation ratios); `ab` is runner.win_rate's output against the base."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    from fteforge.evaluation.runner import persona_case_scores

    metrics = dict(ev.metrics)
    if ab is not None and ab.get("win_rate") is not None:
        metrics["persona.ab_win_rate"] = ab["win_rate"]
    preserved = None
    if role == "merge" and base_results is not None and adapter_results is not None:
        unified, preserved = unified_metrics(
            metrics, base_results["metrics"],
            {a: r["metrics"] for a, r in adapter_results.items()}, specs.persona.adapter, specs.agentic.adapter)
        metrics.update(unified)
    rows = gate_rows(specs, metrics, role)
    failed = [{"id": r.id, "kind": r.kind, "reason": r.reason or "failed"} for r in ev.records if not r.passed]
    return {
        "model": {"name": name, "role": role, "path": ev.path, "format": ev.kind, "base": ev.base_path,
                  **({"merge": dict(merge_info)} if merge_info else {})},
        "suites": dict(suites),
        "scores": {k: _section(metrics, f"{k}.") for k in HEADLINE if f"{k}.cases" in metrics},
        "headline": {k: metrics.get(v) for k, v in HEADLINE.items()},
        "preservation": preserved,
        "ab_vs_base": dict(ab) if ab is not None else None,
        "boundary_violations": metrics.get("persona.boundary_violations"),
        "latency": _section(metrics, "latency.") or None,
        "memory": {"peak_rss_gb": metrics.get("memory.peak_rss_gb")},
        "system": ev.system,
        "timings_s": {k: round(v, 2) for k, v in ev.timings.items()},
        "metrics": metrics,
        "gates": rows,
        "gates_summary": gate_summary(rows),
        "failed_cases": failed,
        # a list, not an id -> score map: DVC reads this file as metrics and would make every case a column
        "persona_case_scores": [{"id": k, "score": v} for k, v in persona_case_scores(ev.records).items()],
        "scorer_validation": dict(scorer_validation) if scorer_validation else None,
    }


def case_scores(results: Mapping[str, Any]) -> dict[str, float]:
    """Persona score per case id of an EVALUATION_RESULTS.json (the A/B reference of later models)."""
    return {row["id"]: row["score"] for row in results["persona_case_scores"]}


def flat_metrics(results: Mapping[str, Any]) -> dict[str, Any]:
    """The few numbers `dvc exp show` should show per model (one metrics file each)."""
    m, s = results["metrics"], results["gates_summary"]
    out = {
        "eval.persona": m.get("persona.overall_score"),
        "eval.agentic": m.get("agentic.score"),
        "eval.combined": m.get("combined.score"),
        "eval.ab_win_rate": m.get("persona.ab_win_rate"),
        "eval.boundary_violations": m.get("persona.boundary_violations"),
        "eval.latency_p95_ms": m.get("latency.p95_ms"),
        "eval.peak_rss_gb": m.get("memory.peak_rss_gb"),
        "eval.gates_passed": s["passed"],
        "eval.gates_failed": s["failed"],
    }
    # every gate's outcome as its own `dvc exp show` column
    out |= {f"gate.{g['metric']}": g["status"] for g in results["gates"]}
    if results["model"]["role"] == "merge":
        out |= {"eval.persona_preservation": m.get("unified.persona_preservation"),
                "eval.agentic_preservation": m.get("unified.agentic_preservation"),
                "eval.combined_regression": m.get("unified.combined_regression")}
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in out.items()}


def summary_lines(results: Mapping[str, Any]) -> list[str]:
    """A short plain-text report: headline scores, A/B, latency, each gate."""
    m = results["metrics"]
    lines = [f"{results['model']['name']} ({results['model']['role']}, {results['model']['path']})"]
    for kind, key in HEADLINE.items():
        if f"{kind}.cases" in m:
            lines.append(f"  {kind:9s} {_fmt(m.get(key))}  ({m[f'{kind}.cases']} cases)")
    ab = results.get("ab_vs_base")
    if ab and ab.get("win_rate") is not None:
        lines.append(f"  A/B vs base: win rate {ab['win_rate']:.3f} (95% CI {ab['ci_low']:.3f}-{ab['ci_high']:.3f}, "
                     f"n={ab['n']})")
    if results.get("latency"):
        lat = results["latency"]
        lines.append(f"  latency p50 {lat['p50_ms']:.0f} ms, p95 {lat['p95_ms']:.0f} ms "
                     f"({lat['runs']} runs, <= {lat['max_new_tokens']} new tokens)")
    lines.append(f"  peak RSS {m['memory.peak_rss_gb']:.2f} GB, {results['system']['device']}, "
                 f"{results['system']['threads']} threads")
    for g in results["gates"]:
        shown = g["status"] if g["status"] != "not applicable" else "n/a "
        lines.append(f"  {shown:4s}  {g['metric']} = {_fmt(g['value'])} (needs {g['op']} {g['bound']:g}{g['unit']})"
                     + (f" - {g['note']}" if g["note"] else ""))
    s = results["gates_summary"]
    lines.append(f"  gates: {s['passed']} passed, {s['failed']} failed, {s['not_applicable']} not applicable; "
                 f"{len(results['failed_cases'])} failed case(s)")
    return lines


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


# -- the comparison -----------------------------------------------------------------------------------

def _status(results: Mapping[str, Any]) -> str:
    if results["model"]["role"] != "merge":
        return "reference"
    s = results["gates_summary"]
    return "PASS" if s["all_passed"] else f"FAIL ({s['failed']}: {', '.join(s['failed_metrics'])})"


def _pareto(points: dict[str, tuple[float | None, float | None]]) -> dict[str, bool]:
    """Not dominated on (quality higher, size smaller); a point missing either number is not ranked."""
    out = {}
    for name, (q, size) in points.items():
        if q is None or size is None:
            out[name] = False
            continue
        out[name] = not any(
            oq is not None and osz is not None and oq >= q and osz <= size and (oq > q or osz < size)
            for other, (oq, osz) in points.items() if other != name
        )
    return out


def build_comparison(results: Mapping[str, Mapping[str, Any]]) -> tuple[dict[str, Any], str]:
    """(COMPARISON.json, COMPARISON.md) from every model's results, keyed by model id
    ("base", "adapters/<name>", "merges/<name>")."""
    versions = []
    for model_id, r in results.items():
        h = r["headline"]
        versions.append({"model": model_id, "role": r["model"]["role"], "persona": h["persona"],
                         "agentic": h["agentic"], "combined": h["combined"],
                         "ab_win_rate": r["metrics"].get("persona.ab_win_rate"), "status": _status(r),
                         "gates_passed": r["gates_summary"]["passed"], "gates_failed": r["gates_summary"]["failed"]})
    merges = {mid: r for mid, r in results.items() if r["model"]["role"] == "merge"}
    points = {mid: (r["headline"]["combined"], (r["model"].get("merge") or {}).get("merge.size_mb"))
              for mid, r in merges.items()}
    front = _pareto(points)
    matrix = []
    for mid, r in merges.items():
        info = r["model"].get("merge") or {}
        m = r["metrics"]
        matrix.append({"candidate": mid.removeprefix("merges/"), "engine": info.get("merge.engine"),
                       "method": info.get("merge.method"), "combined": r["headline"]["combined"],
                       "persona_preservation": m.get("unified.persona_preservation"),
                       "agentic_preservation": m.get("unified.agentic_preservation"),
                       "size_mb": info.get("merge.size_mb"), "update_density": info.get("merge.update_density"),
                       "all_gates_pass": r["gates_summary"]["all_passed"], "pareto": front[mid]})
    data = {"versions": versions, "decision_matrix": matrix,
            "notes": ["persona = mean persona total /10 on the persona suite; agentic = share of agentic cases passed; "
                      "combined = mean of tool 0.6 + persona 0.4 over the agent-loop cases",
                      "pareto: no other candidate has a higher-or-equal combined score at a smaller-or-equal size"]}
    return data, _markdown(data)


def _markdown(data: Mapping[str, Any]) -> str:
    out = ["# Evaluation: versions and candidates", "", "## Versions", "",
           "| model | persona (/10) | agentic | combined | A/B vs base | status |", "|---|---|---|---|---|---|"]
    for v in data["versions"]:
        out.append(f"| {v['model']} | {_fmt(v['persona'], 2)} | {_fmt(v['agentic'])} | {_fmt(v['combined'])} | "
                   f"{_fmt(v['ab_win_rate'])} | {v['status']} |")
    out += ["", "## Decision matrix: quality vs compression", "",
            "| candidate | engine / method | combined | persona pres. | agentic pres. | size MB | update density "
            "| all gates | Pareto |", "|---|---|---|---|---|---|---|---|---|"]
    for d in data["decision_matrix"]:
        out.append(f"| {d['candidate']} | {d['engine']} / {d['method']} | {_fmt(d['combined'])} | "
                   f"{_fmt(d['persona_preservation'])} | {_fmt(d['agentic_preservation'])} | {_fmt(d['size_mb'], 1)} | "
                   f"{_fmt(d['update_density'])} | {'yes' if d['all_gates_pass'] else 'no'} | "
                   f"{'yes' if d['pareto'] else ''} |")
    out += [""] + [f"- {n}" for n in data["notes"]] + [""]
    return "\n".join(out)
