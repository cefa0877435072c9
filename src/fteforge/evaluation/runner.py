"""The evaluation runner: load a model folder, run the suites through the agent loop, measure it.

Every case is played the way `fteforge.agent` defines the loop (system prompt with the tools, user,
the model's turn, and when that turn calls a tool: the call executed against a fresh, really seeded
`TaskAPI`, its result fed back, and the model's final reply):

* ``agentic`` cases are scored on the first turn only (tool_call scorer): the call is what they test.
* ``persona`` cases are scored on the final reply (persona scorer). Task-category persona cases need a
  tool, so the reply a user sees comes after whatever call the model made, with the real result.
* ``combined`` cases are scored on both (combined scorer: tool 0.6, persona 0.4).

A first turn with no parseable call ends the loop (its prose is the final reply). The runner takes a
`generate(prompts, max_new_tokens) -> completions` callable, so the loop is the same for a model,
a batched generator or a scripted stand-in in tests.
"""

from __future__ import annotations

import math
import platform
import resource
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fteforge.agent import conversation, render, system_message
from fteforge.data.records import EvalCase
from fteforge.errors import FteforgeError, UnsafeWeightsError
from fteforge.evaluation.scorers.combined import CombinedScorer
from fteforge.evaluation.scorers.persona import PersonaCaseScorer
from fteforge.evaluation.scorers.tool_call import ToolCallScorer
from fteforge.models.attention import use_gqa_sdpa
from fteforge.specs import SpecSet
from fteforge.taskapi import TaskAPI, dump_result, seed_tasks
from fteforge.toolformat import chat_template, parse_reply, tool_call_message, tool_result_message
from fteforge.toolgrammar import TOOL_CALLS_CONSTRAINED, TOOL_CALLS_FREE

Generate = Callable[[Sequence[str], int], list[str]]
KINDS = ("persona", "agentic", "combined")
# A case without `today` still needs one in the system prompt; fixed so a rerun renders the same prompt.
DEFAULT_TODAY = "2026-11-23"
# The latency prompts: short, fixed, one per kind of turn (a call, a lookup, a no-call reply).
LATENCY_PROMPTS = (
    "Add a task to call the dentist tomorrow.",
    "What's due this week?",
    "Mark the budget review as done.",
    "I'm feeling swamped today.",
    "Make the report urgent.",
    "Hi there!",
)


# -- loading ------------------------------------------------------------------------------------------

@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    kind: str  # "model" (a full model folder) or "adapter" (LoRA folder, merged into its base)
    path: Path
    base_path: Path | None
    device: str
    load_s: float


def model_kind(model_dir: Path) -> str:
    """'adapter' for a PEFT LoRA folder, 'model' for a full model folder; anything else is an error."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise FteforgeError(f"{model_dir}: model folder not found - pass a model or adapter folder "
                            "(e.g. data/base, data/adapters/<name>, data/merges/<candidate>)")
    if (model_dir / "adapter_config.json").is_file():
        return "adapter"
    if (model_dir / "config.json").is_file():
        return "model"
    raise FteforgeError(f"{model_dir}: neither config.json (a full model) nor adapter_config.json (a LoRA "
                        "adapter) - point --model at a Hugging Face model folder or a PEFT adapter folder")


def _require_safetensors(folder: Path, pattern: str) -> None:
    if not list(folder.glob(pattern)):
        pickles = [p.name for p in folder.iterdir() if p.suffix in (".bin", ".pt", ".pth")]
        if pickles:
            raise UnsafeWeightsError(f"{folder}: weights only as {pickles} (pickle, can run code when loaded); "
                                     "evaluation loads safetensors only - convert them with save_pretrained("
                                     "safe_serialization=True)")
        raise FteforgeError(f"{folder}: no {pattern} weights found")


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise FteforgeError("params.yaml evaluate.device: cuda, but torch sees no CUDA device - use auto or cpu")
    return device


def load_model(model_dir: Path | str, base_dir: Path | str | None = None, device: str = "cpu") -> LoadedModel:
    """A full model folder, or a LoRA adapter merged into its base (merge_and_unload: plain-model speed).

    Safetensors only, never remote code. The tokenizer comes from the model folder (the base's for an
    adapter without one); a folder without a chat template gets the project's, which defines the pinned
    tool-call format the scorers parse.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    start = time.perf_counter()
    model_dir = Path(model_dir)
    kind = model_kind(model_dir)
    base: Path | None = None
    if kind == "adapter":
        import json

        from peft import PeftModel

        _require_safetensors(model_dir, "adapter_model.safetensors")
        if base_dir is None:
            named = json.loads((model_dir / "adapter_config.json").read_text()).get("base_model_name_or_path")
            if not named or not (Path(named) / "config.json").is_file():
                raise FteforgeError(f"{model_dir}: a LoRA adapter needs its base model - pass --base DIR "
                                    f"(adapter_config.json names {named!r}, which is not a local model folder)")
            base_dir = named
        base = Path(base_dir)
        if model_kind(base) != "model":
            raise FteforgeError(f"{base}: the base of an adapter must be a full model folder")
        _require_safetensors(base, "*.safetensors")
        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32, use_safetensors=True,
                                                     trust_remote_code=False)
        model = PeftModel.from_pretrained(model, model_dir).merge_and_unload()
        tok_dir = model_dir if (model_dir / "tokenizer_config.json").is_file() else base
    else:
        _require_safetensors(model_dir, "*.safetensors")
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, use_safetensors=True,
                                                     trust_remote_code=False)
        tok_dir = model_dir
    tokenizer = AutoTokenizer.from_pretrained(tok_dir, trust_remote_code=False)
    if not tokenizer.chat_template:
        tokenizer.chat_template = chat_template()
    model.to(device).eval()
    use_gqa_sdpa(model)
    return LoadedModel(model, tokenizer, kind, model_dir, base, device, time.perf_counter() - start)


# -- the agent loop -----------------------------------------------------------------------------------

@dataclass
class Turn:
    """One case played through the loop: what the model said, what ran, what came back."""

    case: EvalCase
    first_turn: str
    call: dict[str, Any] | None = None  # {"name", "arguments"} as executed
    tool_result: dict[str, Any] | None = None
    final_reply: str | None = None  # None: the loop ended at the first turn


def _messages(case: EvalCase, specs: SpecSet) -> list[dict[str, Any]]:
    if case.input is not None:
        return conversation(specs.agentic, case.input)
    msgs = list(case.messages or [])
    return msgs if msgs and msgs[0].get("role") == "system" else [system_message(specs.agentic), *msgs]


def _prompt(tokenizer: Any, msgs: list[dict[str, Any]], case: EvalCase, specs: SpecSet) -> str:
    return render(tokenizer, msgs, specs.tools, case.today or DEFAULT_TODAY, add_generation_prompt=True)


def execute_call(case: EvalCase, specs: SpecSet, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """Run one call against a fresh Task API holding the case's setup tasks (validated before it runs)."""
    with TaskAPI(":memory:", tools=specs.tools, today=case.today or DEFAULT_TODAY) as api:
        try:
            seed_tasks(api, case.setup_tasks)
        except ValueError as err:
            raise FteforgeError(f"case {case.id}: setup_tasks: {err} - fix the task in the suite file "
                                "(fields as create_task takes them, see docs/eval_suite_format.md)") from None
        return api.execute(name, arguments)


def run_agent_loop(cases: Sequence[EvalCase], generate: Generate, tokenizer: Any, specs: SpecSet,
                   max_new_tokens: int, follow_calls: bool = True) -> list[Turn]:
    """Play `cases` through the loop, batched: all first turns, then all turns after a tool result.

    `follow_calls=False` stops after the first turn (agentic cases are scored on the call alone).
    """
    firsts = generate([_prompt(tokenizer, _messages(c, specs), c, specs) for c in cases], max_new_tokens)
    turns = [Turn(c, f) for c, f in zip(cases, firsts, strict=True)]
    if not follow_calls:
        return turns
    pending: list[tuple[Turn, str]] = []
    for t in turns:
        parsed = parse_reply(t.first_turn)
        if parsed.name is None or parsed.arguments is None:
            continue
        t.call = {"name": parsed.name, "arguments": parsed.arguments}
        t.tool_result = execute_call(t.case, specs, parsed.name, parsed.arguments)
        msgs = [*_messages(t.case, specs), tool_call_message(parsed.name, parsed.arguments),
                tool_result_message(dump_result(t.tool_result))]
        pending.append((t, _prompt(tokenizer, msgs, t.case, specs)))
    replies = generate([p for _, p in pending], max_new_tokens)
    for (t, _), reply in zip(pending, replies, strict=True):
        t.final_reply = parse_reply(reply).text
    return turns


# -- scoring ------------------------------------------------------------------------------------------

@dataclass
class CaseRecord:
    """One scored case, as written to cases.jsonl."""

    id: str
    kind: str
    category: str | None
    user: str
    first_turn: str
    call: dict[str, Any] | None
    tool_result: dict[str, Any] | None
    final_reply: str | None
    score: float
    passed: bool
    reason: str
    persona_total: float | None = None
    violations: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Scorers:
    def __init__(self, specs: SpecSet):
        self.persona = PersonaCaseScorer(specs.persona)
        self.tool = ToolCallScorer(specs.tools)
        self.combined = CombinedScorer(specs.tools, specs.persona)


def score_turn(turn: Turn, scorers: Scorers) -> CaseRecord:
    c = turn.case
    common = {"id": c.id, "kind": c.kind, "category": c.category, "user": c.user_text, "first_turn": turn.first_turn,
              "call": turn.call, "tool_result": turn.tool_result, "final_reply": turn.final_reply}
    if c.kind == "agentic":
        s = scorers.tool.score(c, turn.first_turn)
        return CaseRecord(**common, score=s.score, passed=s.passed, reason=s.reason, details=s.to_dict())
    if c.kind == "persona":
        reply = turn.final_reply if turn.final_reply is not None else parse_reply(turn.first_turn).text
        s = scorers.persona.score(c, reply)
        return CaseRecord(**common, score=s.score, passed=s.passed, reason=s.reason, persona_total=s.total,
                          violations=s.violations, details=s.to_dict())
    s = scorers.combined.score(c, turn.first_turn, turn.final_reply)
    return CaseRecord(**common, score=s.score, passed=s.passed, reason=s.reason, persona_total=s.persona.total,
                      violations=s.persona.violations, details=s.to_dict())


def _mean(xs: Sequence[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def _share(flags: Sequence[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None


def suite_metrics(records: Sequence[CaseRecord], trait_names: Sequence[str]) -> dict[str, Any]:
    """The per-kind numbers the gates name (persona.*, agentic.*, combined.*); absent kinds are absent."""
    by = {k: [r for r in records if r.kind == k] for k in KINDS}
    m: dict[str, Any] = {}
    if by["persona"]:
        rs = by["persona"]
        m["persona.cases"] = len(rs)
        m["persona.overall_score"] = _mean([r.persona_total for r in rs])
        trait_means = {t: _mean([r.details["traits"].get(t, 0.0) for r in rs]) for t in trait_names}
        m["persona.trait_means"] = trait_means
        m["persona.min_trait_score"] = min(trait_means.values()) if trait_means else None
        m["persona.pass_rate"] = _share([r.passed for r in rs])
        m["persona.expected_traits_shown"] = _mean([r.details["expected_traits_shown"] for r in rs
                                                    if r.details.get("expected_traits_shown") is not None])
    if by["agentic"]:
        rs = by["agentic"]
        d = [r.details for r in rs]
        emitted = [x for x in d if x["n_calls"] > 0]
        no_call = [x for x in d if x["expected_tool"] is None]
        m["agentic.cases"] = len(rs)
        m["agentic.score"] = _share([r.passed for r in rs])
        m["agentic.tool_selection"] = _share([x["tool_correct"] for x in d])
        # shares of EMITTED calls: undefined (None) when the model made none, never a free pass
        m["agentic.calls_emitted"] = len(emitted)
        m["agentic.json_validity"] = _share([bool(x["json_valid"]) for x in emitted])
        m["agentic.schema_validity"] = _share([bool(x["schema_valid"]) for x in emitted])
        m["agentic.no_call_cases"] = len(no_call)
        m["agentic.no_call_accuracy"] = _share([x["n_calls"] == 0 for x in no_call])
        m["agentic.hallucinated_tools"] = sum(bool(x["hallucinated"]) for x in d)
    if by["combined"]:
        rs = by["combined"]
        m["combined.cases"] = len(rs)
        m["combined.score"] = _mean([r.score for r in rs])
        m["combined.pass_rate"] = _share([r.passed for r in rs])
        m["combined.tool_score"] = _mean([r.details["tool"]["score"] for r in rs])
        m["combined.persona_score"] = _mean([r.details["persona"]["score"] for r in rs])
        m["combined.calls_executed"] = sum(r.call is not None for r in rs)
    prose = [r for r in records if r.kind in ("persona", "combined")]
    if prose:
        # every reply a user reads, persona and combined alike: a violation anywhere is one
        m["persona.boundary_violations"] = sum(bool(r.violations) for r in prose)
    return m


def run_suites(cases: Sequence[EvalCase], generate: Generate, tokenizer: Any, specs: SpecSet,
               max_new_tokens: dict[str, int], progress: Callable[[str], None] = lambda _: None) -> list[CaseRecord]:
    """Every case of every kind through the loop and its scorer; records in the input order."""
    scorers = Scorers(specs)
    records: dict[str, CaseRecord] = {}
    # kinds that play the loop the same way with the same cap share batches (fewer half-empty ones)
    groups: dict[tuple[bool, int], list[str]] = {}
    for kind in KINDS:
        if any(c.kind == kind for c in cases):
            groups.setdefault((kind != "agentic", max_new_tokens[kind]), []).append(kind)
    for (follow, cap), kinds in groups.items():
        group = [c for c in cases if c.kind in kinds]
        progress(f"{' + '.join(kinds)}: {len(group)} cases")
        for t in run_agent_loop(group, generate, tokenizer, specs, cap, follow_calls=follow):
            records[t.case.id] = score_turn(t, scorers)
    return [records[c.id] for c in cases]


# -- A/B against the base -----------------------------------------------------------------------------

def win_rate(model: dict[str, float], base: dict[str, float], samples: int = 1000, seed: int = 0,
             level: float = 0.95) -> dict[str, Any]:
    """Share of shared cases where the model's score beats the base's (ties count half), with a seeded
    percentile bootstrap interval over cases."""
    import numpy as np

    ids = sorted(set(model) & set(base))
    if not ids:
        return {"win_rate": None, "ci_low": None, "ci_high": None, "n": 0, "wins": 0, "ties": 0, "losses": 0,
                "samples": samples, "seed": seed, "level": level}
    outcome = np.array([1.0 if model[i] > base[i] else 0.5 if model[i] == base[i] else 0.0 for i in ids])
    rng = np.random.default_rng(seed)
    boots = outcome[rng.integers(0, len(ids), size=(samples, len(ids)))].mean(axis=1)
    alpha = (1 - level) / 2
    return {
        "win_rate": float(outcome.mean()), "ci_low": float(np.quantile(boots, alpha)),
        "ci_high": float(np.quantile(boots, 1 - alpha)), "n": len(ids), "wins": int((outcome == 1).sum()),
        "ties": int((outcome == 0.5).sum()), "losses": int((outcome == 0).sum()), "samples": samples, "seed": seed,
        "level": level,
    }


def persona_case_scores(records: Sequence[CaseRecord]) -> dict[str, float]:
    """Persona total (/10) per persona-suite case: what the A/B comparison pairs up."""
    return {r.id: float(r.persona_total) for r in records if r.kind == "persona" and r.persona_total is not None}


# -- latency and memory -------------------------------------------------------------------------------

def _percentile(xs: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default), without numpy for a 30-number list."""
    s = sorted(xs)
    pos = (len(s) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def measure_latency(generator: Any, tokenizer: Any, specs: SpecSet, runs: int, warmup: int,
                    max_new_tokens: int, reference: Any = None) -> dict[str, Any]:
    """Wall time of one assistant turn at batch 1, `runs` timed runs after `warmup` untimed ones.

    `generator` is a StreamDecoder or a PrefixCachedGenerator; either keeps the system prompt's KV
    cache (as a chat server does), so each run times the user turn's prefill, the decode and the decode
    to text. `reference` (a PrefixCachedGenerator of the same model with a cache of its own), when given,
    decodes each latency prompt once more after the timing: `latency.same_text` is the share of prompts
    whose timed completion it matches. A stream decoder that guesses tokens (`draft_tokens`) records how
    many new tokens each model call produced (`latency.tokens_per_forward`, 1.0 without guesses).
    """
    msgs = [conversation(specs.agentic, u) for u in LATENCY_PROMPTS]
    prompts = [render(tokenizer, m, specs.tools, DEFAULT_TODAY, add_generation_prompt=True) for m in msgs]
    times, tokens, forwards = [], [], []
    texts: dict[int, str] = {}
    for i in range(warmup + runs):
        p = i % len(prompts)
        start = time.perf_counter()
        out = generator([prompts[p]], max_new_tokens, prefix_from=prompts)
        elapsed = time.perf_counter() - start
        if i >= warmup:
            times.append(elapsed * 1000)
            tokens.append(generator.last_new_tokens[0])
            forwards += getattr(generator, "last_forwards", [])
            texts.setdefault(p, out[0])
    total_tokens = sum(tokens)
    metrics = {
        "latency.p50_ms": _percentile(times, 0.5), "latency.p95_ms": _percentile(times, 0.95),
        "latency.mean_ms": statistics.fmean(times), "latency.runs": runs, "latency.warmup": warmup,
        "latency.max_new_tokens": max_new_tokens, "latency.mean_new_tokens": total_tokens / len(tokens),
        "latency.ms_per_token": sum(times) / total_tokens if total_tokens else None,
        "latency.system_prompt_cached": True,
        "latency.decoder": generator.name,
        "latency.draft_tokens": generator.draft_tokens if getattr(generator, "speculative", False) else 0,
    }
    if forwards:
        metrics["latency.tokens_per_forward"] = total_tokens / sum(forwards)
    if reference is not None:
        same = [reference([prompts[p]], max_new_tokens, prefix_from=prompts)[0] == text for p, text in texts.items()]
        metrics["latency.same_text"] = sum(same) / len(same)
    return metrics


def _fresh(generator: Any) -> Any:
    """A PrefixCachedGenerator like `generator` with no cache yet: the suites' caches were built in other
    pieces (a prefix extended from a shorter one), which rounds differently from one prefill."""
    return type(generator)(generator.model, generator.tokenizer, generator.batch_size, generator.constraint)


def peak_rss_gb() -> float:
    # ru_maxrss is KiB on Linux, bytes on macOS
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 ** 3 if platform.system() == "Darwin" else 1024 ** 2)


def device_info(device: str) -> dict[str, Any]:
    import torch

    name = torch.cuda.get_device_name(0) if device == "cuda" else (platform.processor() or platform.machine())
    return {"device": device, "device_name": name, "threads": torch.get_num_threads(),
            "torch": torch.__version__}


# -- one model, end to end ----------------------------------------------------------------------------

@dataclass
class ModelEvaluation:
    """Everything measured for one model; `report.build_results` turns it into EVALUATION_RESULTS.json."""

    path: str
    kind: str  # "model" or "adapter"
    base_path: str | None
    metrics: dict[str, Any]
    records: list[CaseRecord]
    system: dict[str, Any]
    timings: dict[str, float]


def evaluate_model(model_dir: Path | str, cases: Sequence[EvalCase], specs: SpecSet, params: Any, *,
                   base_dir: Path | str | None = None, latency: bool = True,
                   prepare: Callable[[Any], Any] | None = None, draft: Any = None,
                   progress: Callable[[str], None] = lambda _: None) -> ModelEvaluation:
    """Load `model_dir`, run `cases` through the loop and the scorers, time a turn, read peak memory.

    `params` is a params.EvaluateParams. Torch threads are fixed first, so runs are comparable. The
    model is served in `params.serving` (fteforge.evaluation.serving), recorded in `system.serving`;
    `prepare` then turns it into the one to evaluate (bench/serving_precision.py compares precisions
    that way, from fp32). `draft` (an evaluation.draft.NgramDraft) lets the latency turn's stream
    decoder check `params.latency.draft_tokens` guessed tokens per step.
    """
    import torch

    from fteforge.evaluation.serving import resolve_serving, serve_as
    from fteforge.evaluation.shared_prefix import PrefixCachedGenerator

    if params.threads:
        torch.set_num_threads(params.threads)
    device = resolve_device(params.device)
    progress(f"loading {model_dir}")
    loaded = load_model(model_dir, base_dir, device)
    serving = resolve_serving(params.serving, device)
    loaded.model = serve_as(loaded.model, serving)
    if prepare is not None:
        loaded.model = prepare(loaded.model)
    constraint = None
    if params.constrain_tool_calls:
        from fteforge.evaluation.generation import tool_call_constraint

        constraint = tool_call_constraint(loaded.model, loaded.tokenizer, specs.tools)
    generator = PrefixCachedGenerator(loaded.model, loaded.tokenizer, params.batch_size, constraint)
    start = time.perf_counter()
    records = run_suites(cases, generator, loaded.tokenizer, specs, params.max_new_tokens.model_dump(), progress)
    timings = {"load_s": loaded.load_s, "suites_s": time.perf_counter() - start}
    metrics = suite_metrics(records, [t.name for t in specs.persona.traits])
    if latency:
        from fteforge.evaluation.stream import stream_decoder

        progress(f"latency: {params.latency.runs} runs at batch 1")
        start = time.perf_counter()
        if draft is not None:
            draft.require_vocab(loaded.tokenizer)
        single = stream_decoder(loaded.model, loaded.tokenizer, constraint, draft, params.latency.draft_tokens) \
            if params.latency.decoder == "auto" else None
        metrics.update(measure_latency(single or generator, loaded.tokenizer, specs, params.latency.runs,
                                       params.latency.warmup, params.latency.max_new_tokens,
                                       reference=_fresh(generator) if single else None))
        timings["latency_s"] = time.perf_counter() - start
    metrics["memory.peak_rss_gb"] = peak_rss_gb()
    system = device_info(device) | {"tool_calls": TOOL_CALLS_CONSTRAINED if constraint else TOOL_CALLS_FREE,
                                    "serving": serving}
    return ModelEvaluation(path=str(model_dir), kind=loaded.kind,
                           base_path=str(loaded.base_path) if loaded.base_path else None, metrics=metrics,
                           records=records, system=system, timings=timings)
