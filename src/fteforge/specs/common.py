"""Pieces shared by several spec kinds: quality gates and scenario matrices."""

from __future__ import annotations

import operator
from typing import Literal

from pydantic import Field, field_validator, model_validator

from fteforge.specs.base import SpecModel

Name = Field(pattern=r"^[a-z][a-z0-9_]*$", description="snake_case identifier")

_OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "==": operator.eq}


class Gate(SpecModel):
    """A quality gate: the measured `metric` must satisfy `op bound`."""

    metric: str = Field(pattern=r"^[a-z][a-z0-9_.]*$", description="name of the measured metric")
    op: Literal[">", ">=", "<", "<=", "=="] = Field(description="comparison the value must satisfy")
    bound: float = Field(description="threshold the value is compared with")
    unit: str = Field(default="", description="unit shown in reports, e.g. '/10', 'MB', 'ms'")
    measured_by: str = Field(min_length=1, description="how the value is measured (shown in reports)")

    def check(self, value: float) -> bool:
        return bool(_OPS[self.op](value, self.bound))

    def describe(self) -> str:
        return f"{self.metric} {self.op} {self.bound:g}{self.unit}"


def unique_gates(gates: list[Gate]) -> list[Gate]:
    names = [g.metric for g in gates]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"gate metrics must be unique, repeated: {dupes}")
    return gates


class ScenarioCategory(SpecModel):
    """One row of a scenario matrix: a category of situations the data must cover."""

    priority: Literal["high", "medium", "low"] = Field(description="how much the category matters")
    target_count: int = Field(gt=0, description="minimum number of training examples for the category")
    scenarios: list[str] = Field(min_length=1, description="the situations, each covered by the data")

    @field_validator("scenarios")
    @classmethod
    def _distinct(cls, v: list[str]) -> list[str]:
        seen = set()
        for s in v:
            if s.lower() in seen:
                raise ValueError(f"scenario listed twice: {s!r}")
            seen.add(s.lower())
        return v


class ScenarioMatrix(SpecModel):
    """Categories of situations, with per-category priority and target counts."""

    categories: dict[str, ScenarioCategory] = Field(min_length=1)

    @model_validator(mode="after")
    def _names(self) -> ScenarioMatrix:
        bad = [c for c in self.categories if not c.replace("_", "").isalnum() or not c.islower()]
        if bad:
            raise ValueError(f"category names must be snake_case: {bad}")
        return self

    @property
    def total_target(self) -> int:
        return sum(c.target_count for c in self.categories.values())

    @property
    def n_scenarios(self) -> int:
        return sum(len(c.scenarios) for c in self.categories.values())
