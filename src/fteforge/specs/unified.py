"""UnifiedModelSpec: the merged model - intent, sources, merge strategy, gates, non-goals."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from fteforge.specs.base import SpecModel
from fteforge.specs.common import Gate, unique_gates


class ConflictThresholds(SpecModel):
    """When the measured interference counts as 'conflicts detected' (measured in dW = (alpha/r) B A)."""

    sign_conflict_rate: float = Field(
        ge=0, le=1, description="share of jointly-significant entries whose signs disagree"
    )
    min_cosine: float = Field(ge=-1, le=1, description="mean cosine of the two dW below this = conflict")


class MergeStrategy(SpecModel):
    primary: Literal["ties", "dare_ties", "linear", "task_arithmetic"]
    backup: Literal["ties", "dare_ties", "linear", "task_arithmetic"]
    use_backup_when: ConflictThresholds


class SelectionRule(SpecModel):
    require_all_gates: bool = Field(description="a candidate must pass every gate to be selected")
    rank_by: str = Field(description="metric that ranks passing candidates (higher is better)")
    tie_break: Literal["smaller", "sparser"] = Field(description="what wins a tie")


class UnifiedModelSpec(SpecModel):
    kind: Literal["UnifiedModelSpec"]
    name: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    display_name: str
    intent: str
    base_model: str
    source_adapters: list[str] = Field(min_length=2, description="adapter names defined by persona/agentic specs")
    merge_strategy: MergeStrategy
    success_criteria: list[Gate] = Field(min_length=1)
    selection: SelectionRule
    non_goals: list[str] = Field(default_factory=list)

    _unique_gates = field_validator("success_criteria")(unique_gates)
