"""Pick the production model from the evaluated merge candidates by the unified spec's selection rule.

The rule (`selection:` in the unified spec) is: keep the candidates that pass every gate, rank them by
one metric, break ties by size or sparsity. When none passes, the closest candidate (fewest failed
gates, then the ranking) is named with each failed gate, so the report says what to fix; building it
anyway is an explicit params switch, and everything built from it says REQUIRES ITERATION.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fteforge.errors import FteforgeError
from fteforge.specs.unified import SelectionRule

PASS = "PASS"
REQUIRES_ITERATION = "REQUIRES ITERATION"


class NoPassingCandidate(FteforgeError):
    """No candidate passes every gate and the params do not allow a failing release."""


def _failed_gates(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"metric": g["metric"], "value": g["value"], "op": g["op"], "bound": g["bound"], "unit": g.get("unit", "")}
            for g in results["gates"] if g["status"] == "FAIL"]


def describe_gate(g: Mapping[str, Any]) -> str:
    value = "missing" if g["value"] is None else f"{g['value']:.4g}"
    return f"{g['metric']} = {value} (needs {g['op']} {g['bound']:g}{g.get('unit', '')})"


def candidate_row(name: str, results: Mapping[str, Any], rule: SelectionRule) -> dict[str, Any]:
    merge = results["model"].get("merge") or {}
    failed = _failed_gates(results)
    return {
        "candidate": name,
        "passes_all_gates": bool(results["gates_summary"]["all_passed"]),
        "gates_passed": results["gates_summary"]["passed"],
        "gates_failed": len(failed),
        "failed_gates": failed,
        "rank_value": results["metrics"].get(rule.rank_by),
        "headline": dict(results["headline"]),
        "size_mb": merge.get("merge.size_mb"),
        "update_density": merge.get("merge.update_density"),
        "engine": merge.get("merge.engine"),
        "method": merge.get("merge.method"),
    }


def _tie_key(row: Mapping[str, Any], tie_break: str) -> float:
    # smaller/sparser wins, so a missing figure sorts last
    value = row["size_mb"] if tie_break == "smaller" else row["update_density"]
    return float("inf") if value is None else float(value)


def rank(rows: list[dict[str, Any]], rule: SelectionRule) -> list[dict[str, Any]]:
    """Best first: passing before failing, fewer failed gates, higher rank metric, then the tie-break."""
    def key(r: Mapping[str, Any]) -> tuple:
        score = r["rank_value"] if r["rank_value"] is not None else float("-inf")
        gate_key = (not r["passes_all_gates"], r["gates_failed"]) if rule.require_all_gates else (0, 0)
        return (*gate_key, -score, _tie_key(r, rule.tie_break), r["candidate"])
    return sorted(rows, key=key)


def select_release(results: Mapping[str, Mapping[str, Any]], rule: SelectionRule, *, forced: str | None = None,
                   allow_failing: bool = False, spec_file: str = "the unified spec") -> dict[str, Any]:
    """The selection decision for `results` (candidate -> EVALUATION_RESULTS), with its reasons.

    Raises NoPassingCandidate when the rule requires passing gates, none passes and `allow_failing`
    is off; a `forced` candidate is taken as asked, and its gate outcome still sets the status.
    """
    if not results:
        raise FteforgeError("no evaluated merge candidate - params.yaml merge.candidates is empty or no "
                            "evaluate_merge stage has run; run `dvc repro` up to compare_candidates")
    rows = rank([candidate_row(n, r, rule) for n, r in results.items()], rule)
    passing = [r for r in rows if r["passes_all_gates"]]
    reasons: list[str] = []
    if forced is not None:
        if forced not in results:
            raise FteforgeError(f"params.yaml release.candidate: {forced!r} is not an evaluated merge candidate; "
                                f"choose one of {sorted(results)} or null to let the selection rule pick")
        chosen = next(r for r in rows if r["candidate"] == forced)
        reasons.append(f"forced by params.yaml release.candidate = {forced} (the rule would pick {rows[0]['candidate']})")
    else:
        chosen = rows[0]
        if rule.require_all_gates and not passing:
            closest = "; ".join(describe_gate(g) for g in chosen["failed_gates"])
            message = (f"no merge candidate passes every gate ({spec_file} selection.require_all_gates). Closest: "
                       f"{chosen['candidate']} with {chosen['gates_failed']} failed gate(s): {closest}.")
            if not allow_failing:
                raise NoPassingCandidate(
                    message + " Fix: improve the candidates (data, training, merge params), or set params.yaml "
                    "release.allow_failing: true to build a release marked REQUIRES ITERATION")
            reasons.append(message + " Built anyway: params.yaml release.allow_failing is true.")
        elif rule.require_all_gates:
            reasons.append(f"{len(passing)} of {len(rows)} candidates pass every gate")
        ranked = passing if passing else rows
        basis = (f"highest {rule.rank_by}" if passing or not rule.require_all_gates
                 else f"fewest failed gates, then highest {rule.rank_by}")
        reasons.append(f"{basis}: {chosen['candidate']} = {_fmt(chosen['rank_value'])}"
                       if len(ranked) > 1 else f"{chosen['candidate']} is the only candidate left")
        ties = [r for r in ranked if r is not chosen and r["rank_value"] == chosen["rank_value"]]
        if ties:
            reasons.append(f"tied with {', '.join(r['candidate'] for r in ties)} on {rule.rank_by}; "
                           f"tie_break {rule.tie_break} decided")
    status = PASS if chosen["passes_all_gates"] else REQUIRES_ITERATION
    return {"rule": rule.model_dump(), "selected": chosen["candidate"], "status": status,
            "forced": forced is not None, "reasons": reasons, "candidates": rows,
            "decision_matrix": decision_matrix(rows)}


def decision_matrix(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Best quality vs best efficiency, among passing candidates when any pass (seed 000's matrix)."""
    pool = [r for r in rows if r["passes_all_gates"]] or rows
    quality = max(pool, key=lambda r: (r["rank_value"] if r["rank_value"] is not None else float("-inf")))
    sized = [r for r in pool if r["size_mb"] is not None]
    efficiency = min(sized, key=lambda r: (r["size_mb"], _tie_key(r, "sparser"))) if sized else quality
    return {"best_quality": quality["candidate"], "best_efficiency": efficiency["candidate"],
            "among": "passing candidates" if any(r["passes_all_gates"] for r in rows) else "all candidates (none passes)"}


def _fmt(v: float | None) -> str:
    return "missing" if v is None else f"{v:.4g}"


def selection_markdown(decision: Mapping[str, Any]) -> str:
    lines = [f"# Release selection: {decision['selected']} ({decision['status']})", ""]
    lines += [f"- {r}" for r in decision["reasons"]]
    lines += ["", f"Rule: require_all_gates {decision['rule']['require_all_gates']}, rank by "
              f"{decision['rule']['rank_by']}, tie-break {decision['rule']['tie_break']}.", "",
              "| Rank | Candidate | Engine / method | Persona /10 | Agentic | Combined | Gates failed | Size MB | Update density |",
              "|---|---|---|---|---|---|---|---|---|"]
    for i, r in enumerate(decision["candidates"], 1):
        h = r["headline"]
        lines.append(f"| {i} | {r['candidate']} | {r['engine']} / {r['method']} | {_fmt(h.get('persona'))} | "
                     f"{_fmt(h.get('agentic'))} | {_fmt(h.get('combined'))} | {r['gates_failed']} | "
                     f"{_fmt(r['size_mb'])} | {_fmt(r['update_density'])} |")
    m = decision["decision_matrix"]
    lines += ["", f"Decision matrix ({m['among']}): best quality **{m['best_quality']}**, "
              f"best efficiency **{m['best_efficiency']}**.", ""]
    for r in decision["candidates"]:
        if r["failed_gates"]:
            lines.append(f"- {r['candidate']} fails: " + "; ".join(describe_gate(g) for g in r["failed_gates"]))
    return "\n".join(lines).rstrip() + "\n"
