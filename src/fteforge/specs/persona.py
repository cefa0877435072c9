"""PersonaSpec: who the persona is, how it speaks, and the gates its adapter must pass."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from fteforge.specs.base import SpecModel
from fteforge.specs.common import Gate, Name, ScenarioMatrix, unique_gates


class Trait(SpecModel):
    """A trait the persona shows in every reply, scored 0-2 by the persona scorer."""

    name: str = Name
    summary: str = Field(description="one line, e.g. 'Encouraging without being patronizing'")
    looks_like: list[str] = Field(min_length=1, description="what the trait looks like in a reply")
    violated_by: list[str] = Field(min_length=1, description="what breaks the trait")
    signals: list[str] = Field(min_length=1, description="regexes (case-insensitive) that show the trait")
    violation_signals: list[str] = Field(default_factory=list, description="regexes that show a violation")


class Vocabulary(SpecModel):
    preferred: list[str] = Field(min_length=1, description="phrases the persona reaches for")
    avoided: list[str] = Field(min_length=1, description="phrases the persona never uses (matched case-insensitively)")
    avoided_patterns: list[str] = Field(
        default_factory=list, description="regexes for avoided forms, e.g. generic AI phrases, '!!'"
    )


class PatternStep(SpecModel):
    name: Literal["ACKNOWLEDGE", "DELIVER", "PROPEL"]
    description: str
    signals: list[str] = Field(default_factory=list, description="regexes that mark the step in a reply")


class Boundary(SpecModel):
    """Something the persona never does; any match is a boundary violation."""

    name: str = Name
    description: str
    signals: list[str] = Field(min_length=1, description="regexes (case-insensitive) that reveal a violation")


class ExampleExchange(SpecModel):
    category: str
    user: str
    assistant: str


class DeploymentTarget(SpecModel):
    base_model: str = Field(description="base model label the adapter is built for")
    adapter_max_mb: float = Field(gt=0, description="largest acceptable adapter_model.safetensors")
    latency_max_s: float = Field(gt=0, description="upper bound for a typical reply")


class PersonaSpec(SpecModel):
    """The persona: purpose, the five components, the scenario matrix and the quality gates."""

    kind: Literal["PersonaSpec"]
    name: str = Name
    adapter: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="name of the adapter this spec trains")
    display_name: str
    purpose: str
    target_users: list[str] = Field(min_length=1)
    identity: str = Field(description="the personality profile in a few sentences")
    traits: list[Trait] = Field(min_length=1)
    vocabulary: Vocabulary
    response_pattern: list[PatternStep] = Field(min_length=3, max_length=3)
    boundaries: list[Boundary] = Field(min_length=1)
    scenario_matrix: ScenarioMatrix
    examples: list[ExampleExchange] = Field(min_length=1)
    quality_filter_min: float = Field(ge=0, le=10, description="examples scoring below this /10 are dropped")
    success_criteria: list[Gate] = Field(min_length=1)
    deployment_target: DeploymentTarget

    _unique_gates = field_validator("success_criteria")(unique_gates)

    @field_validator("response_pattern")
    @classmethod
    def _order(cls, v: list[PatternStep]) -> list[PatternStep]:
        order = [s.name for s in v]
        if order != ["ACKNOWLEDGE", "DELIVER", "PROPEL"]:
            raise ValueError(f"steps must be ACKNOWLEDGE, DELIVER, PROPEL in that order, got {order}")
        return v

    @field_validator("traits")
    @classmethod
    def _unique_traits(cls, v: list[Trait]) -> list[Trait]:
        names = [t.name for t in v]
        if len(set(names)) != len(names):
            raise ValueError(f"trait names must be unique: {names}")
        return v

    @field_validator("examples")
    @classmethod
    def _known_categories(cls, v: list[ExampleExchange], info: ValidationInfo) -> list[ExampleExchange]:
        matrix = info.data.get("scenario_matrix")
        if matrix is not None:
            unknown = sorted({e.category for e in v} - set(matrix.categories))
            if unknown:
                raise ValueError(f"category {unknown} is not in scenario_matrix.categories {sorted(matrix.categories)}")
        return v
