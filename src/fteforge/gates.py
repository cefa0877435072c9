"""Checking measured metrics against the specs' gates, with messages that name value and bound."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from fteforge.errors import FteforgeError
from fteforge.specs import Gate


@dataclass(frozen=True)
class GateResult:
    metric: str
    op: str
    bound: float
    value: float | None
    passed: bool
    measured_by: str

    def line(self) -> str:
        shown = "not measured" if self.value is None else f"{self.value:.4g}"
        return f"{'PASS' if self.passed else 'FAIL'}  {self.metric} = {shown} (needs {self.op} {self.bound:g})"

    def to_dict(self) -> dict:
        return asdict(self)


class GateFailure(FteforgeError):
    def __init__(self, what: str, failed: list[GateResult]):
        self.failed = failed
        super().__init__(f"{what} failed {len(failed)} gate(s):\n  " + "\n  ".join(r.line() for r in failed))


def check_gates(gates: list[Gate], metrics: dict[str, float], only_prefixes: tuple[str, ...] = ()) -> list[GateResult]:
    """Results for the gates whose metric starts with one of `only_prefixes` (all gates when empty)."""
    out = []
    for g in gates:
        if only_prefixes and not g.metric.startswith(only_prefixes):
            continue
        value = metrics.get(g.metric)
        out.append(GateResult(g.metric, g.op, g.bound, value, value is not None and g.check(value), g.measured_by))
    return out
