"""ToolsSpec: the tools an agent may call, each with a JSON Schema for its arguments."""

from __future__ import annotations

from typing import Any, Literal

import jsonschema
from pydantic import Field, field_validator

from fteforge.specs.base import SpecModel


class ToolSpec(SpecModel):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str = Field(min_length=1)
    parameters: dict[str, Any] = Field(description="JSON Schema (draft 2020-12) of the arguments object")

    @field_validator("parameters")
    @classmethod
    def _valid_schema(cls, v: dict[str, Any]) -> dict[str, Any]:
        try:
            jsonschema.Draft202012Validator.check_schema(v)
        except jsonschema.SchemaError as exc:
            where = "/".join(str(p) for p in exc.path) or "<root>"
            raise ValueError(f"not a valid JSON Schema at {where}: {exc.message}") from None
        if v.get("type") != "object":
            raise ValueError("the arguments schema must have type: object")
        props = v.get("properties", {})
        missing = [r for r in v.get("required", []) if r not in props]
        if missing:
            raise ValueError(f"required arguments {missing} are not declared in properties")
        return v

    @property
    def argument_names(self) -> list[str]:
        return list(self.parameters.get("properties", {}))

    @property
    def required(self) -> list[str]:
        return list(self.parameters.get("required", []))


class ToolsSpec(SpecModel):
    """A set of tools; the agentic spec refers to it by file name."""

    kind: Literal["ToolsSpec"]
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str = ""
    tools: list[ToolSpec] = Field(min_length=1)

    @field_validator("tools")
    @classmethod
    def _unique(cls, v: list[ToolSpec]) -> list[ToolSpec]:
        names = [t.name for t in v]
        if len(set(names)) != len(names):
            raise ValueError(f"tool names must be unique: {names}")
        return v

    def get(self, name: str) -> ToolSpec:
        for t in self.tools:
            if t.name == name:
                return t
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.tools]

    def as_json_schemas(self) -> list[dict[str, Any]]:
        """The tools in the OpenAI-style function layout the chat template renders."""
        return [
            {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
            for t in self.tools
        ]
