"""AgenticSpec: the tool-calling adapter - which tools, the pinned call format, coverage and gates."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from fteforge.specs.base import SpecModel
from fteforge.specs.common import Gate, ScenarioCategory, unique_gates

TOOL_CALL_FORMAT = "fteforge-chatml-tools-v1"


class AgenticCategory(ScenarioCategory):
    tools: list[str] = Field(default_factory=list, description="tools the category exercises; empty = no call")


class AgenticMatrix(SpecModel):
    categories: dict[str, AgenticCategory] = Field(min_length=1)
    min_no_call_fraction: float = Field(
        ge=0, le=1, description="share of examples whose right answer is no tool call"
    )

    @property
    def total_target(self) -> int:
        return sum(c.target_count for c in self.categories.values())


class AgenticSpec(SpecModel):
    """Tool calling against a tools file, in ONE pinned format shared by data, evaluation and serving."""

    kind: Literal["AgenticSpec"]
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    adapter: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="name of the adapter this spec trains")
    base_model: str
    tools_file: str = Field(description="path of the ToolsSpec file, relative to this spec's folder")
    tool_call_format: Literal["fteforge-chatml-tools-v1"] = Field(
        description="the pinned format; see docs/tool_call_format.md"
    )
    system_prompt: str = Field(
        description="system prompt head; the chat template appends the tools' schemas and today's date"
    )
    scenario_matrix: AgenticMatrix
    success_criteria: list[Gate] = Field(min_length=1)

    _unique_gates = field_validator("success_criteria")(unique_gates)
