"""Release folders: built in a temporary sibling, checksummed, then renamed into place - never overwritten.

`releases/<name>-v<version>/` is immutable. A rebuild from the same inputs produces the same bytes
and leaves the existing folder alone; a rebuild whose content differs stops with the list of changed
files and asks for a new version. A failure half-way leaves only the temporary folder, which is
removed, so a folder under `releases/` is always complete (its SHA256SUMS is written last).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from fteforge.agent import today_label
from fteforge.data.records import write_jsonl, write_text
from fteforge.errors import FteforgeError
from fteforge.evaluation.serving import serving_in
from fteforge.models.base import library_versions, sha256_file
from fteforge.release import cards
from fteforge.release.selection import PASS, REQUIRES_ITERATION
from fteforge.specs import SpecSet
from fteforge.toolformat import FORMAT_NAME, chat_template
from fteforge.toolgrammar import TOOL_CALLS_FREE, constrained_in

SUMS = "SHA256SUMS"
# Only figures that depend on the merged bytes: wall time and RSS of the merge run would make two
# builds of the same model differ.
MERGE_FIELDS = ("engine", "method", "weights", "density", "normalize", "rescale", "lambda", "svd_rank",
                "update_density", "size_mb")


class ReleaseConflict(FteforgeError):
    """The version folder exists with different content."""


# -- checksums and publishing -------------------------------------------------------------------------

def release_files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.name != SUMS)


def sha256sums(folder: Path) -> str:
    """`sha256sum -c` format, sorted by path."""
    return "".join(f"{sha256_file(folder / rel)}  {rel}\n" for rel in release_files(folder))


def verify(folder: Path) -> list[str]:
    """Files whose bytes no longer match SHA256SUMS (or that it does not list): empty when intact."""
    sums = folder / SUMS
    if not sums.is_file():
        return [SUMS]
    listed = dict(reversed(line.split("  ", 1)) for line in sums.read_text().splitlines() if line)
    actual = release_files(folder)
    bad = sorted(set(actual) ^ set(listed))
    bad += [rel for rel in actual if rel in listed and sha256_file(folder / rel) != listed[rel]]
    return sorted(set(bad))


def _differences(old: Path, new: Path) -> list[str]:
    def table(folder: Path) -> dict[str, str]:
        return dict(reversed(line.split("  ", 1)) for line in (folder / SUMS).read_text().splitlines() if line)

    a, b = table(old), table(new)
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def _readable(folder: Path) -> None:
    # mkdtemp and atomic writers create owner-only modes; a published release is read by anyone
    folder.chmod(0o755)
    for p in folder.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)


def build_release(target: Path, fill: Callable[[Path], None]) -> str:
    """Build `target` with `fill(tmp)`; returns "created" or "unchanged". Raises ReleaseConflict.

    The temporary folder sits next to the target, so the final rename stays on one filesystem and is
    atomic.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() and verify(target):
        raise ReleaseConflict(f"{target}: files do not match its SHA256SUMS ({', '.join(verify(target)[:5])}) - "
                              "a release folder was edited by hand; restore it or remove it, then rebuild")
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        fill(work)
        (work / SUMS).write_text(sha256sums(work))
        _readable(work)
        if target.exists():
            changed = _differences(target, work)
            if changed:
                raise ReleaseConflict(
                    f"{target} already exists with different content ({len(changed)} file(s) differ: "
                    f"{', '.join(changed[:8])}). Releases are immutable: bump params.yaml release.version "
                    f"(e.g. `dvc exp run -S release.version=NEW`) to publish the changed build")
            return "unchanged"
        os.rename(work, target)
        return "created"
    finally:
        if work.exists():
            shutil.rmtree(work)


# -- the pieces of a release --------------------------------------------------------------------------

def release_chat_template(system_prompt: str) -> str:
    """The project's template with the agent's system prompt as its default.

    The user can then call `apply_chat_template(messages, tools=...)` without a system turn and get
    exactly the prompt the model was trained and evaluated with.
    """
    default = json.dumps(system_prompt)
    return ("{%- if default_system_prompt is not defined -%}{%- set default_system_prompt = " + default +
            " -%}{%- endif -%}\n" + chat_template())


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def write_tools(out: Path, specs: SpecSet) -> None:
    """tools.json for `apply_chat_template(tools=...)`; key order kept, as the template renders it."""
    write_text(out / "tools.json", json.dumps(specs.tools.as_json_schemas(), indent=2, ensure_ascii=False) + "\n")


def copy_specs(specs: SpecSet, out: Path) -> dict[str, str]:
    """The spec files the model was built from, so `fteforge chat` and readers need nothing else."""
    (out / "specs").mkdir(exist_ok=True)
    copied = {}
    for kind, path in sorted(specs.files.items()):
        shutil.copyfile(path, out / "specs" / path.name)
        copied[kind] = f"specs/{path.name}"
    return copied


def save_full_model(model_dir: Path, out: Path, *, base_dir: Path, system_prompt: str, max_shard_size: str) -> None:
    """A full model folder (an adapter is merged into its base first), safetensors only."""
    from fteforge.evaluation.runner import load_model

    loaded = load_model(model_dir, base_dir, "cpu")  # refuses pickles and remote code
    loaded.model.save_pretrained(out, max_shard_size=max_shard_size, safe_serialization=True)
    loaded.tokenizer.chat_template = release_chat_template(system_prompt)
    loaded.tokenizer.save_pretrained(out)


def _ab(results: Mapping[str, Any]) -> dict[str, Any]:
    ab = results.get("ab_vs_base") or {}
    return {"win_rate": ab.get("win_rate"), "ci_low": ab.get("ci_low"), "ci_high": ab.get("ci_high")}


def _latency(results: Mapping[str, Any]) -> dict[str, Any]:
    lat = results.get("latency") or {}
    return {"p50_ms": lat.get("p50_ms"), "p95_ms": lat.get("p95_ms"), "decoder": lat.get("decoder"),
            "draft_tokens": lat.get("draft_tokens"), "tokens_per_forward": lat.get("tokens_per_forward")}


def _model_index(results: Mapping[str, Any], kinds: tuple[str, ...]) -> list[dict[str, Any]]:
    suites, h, m = results["suites"], results["headline"], results["metrics"]
    rows = {
        "persona": ("TaskMaster persona", "persona_score", "Persona score (/10)", h.get("persona")),
        "agentic": ("Task API tool calling", "accuracy", "Agentic cases passed", h.get("agentic")),
        "combined": ("Agent loop: call, result, reply", "combined_score", "Combined score", h.get("combined")),
        "ab": ("TaskMaster persona", "win_rate", "A/B win rate vs base", m.get("persona.ab_win_rate")),
    }
    out = []
    for key in kinds:
        task, metric, name, value = rows[key]
        suite = "persona" if key == "ab" else key
        if value is None or suite not in suites:
            continue
        out.append({"task": task, "dataset_type": "fteforge-heldout",
                    "dataset": f"{suite} held-out suite ({suites[suite]['cases']} cases)", "metric": metric,
                    "metric_name": name, "value": round(float(value), 4)})
    return out


def _limitations(results: Mapping[str, Any], base_fingerprint: Mapping[str, Any], extra: list[str]) -> list[str]:
    out = [f"Fails {g['metric']}: measured {cards._num(g['value'])}, needs {g['op']} {g['bound']:g}{g.get('unit', '')}."
           for g in results["gates"] if g["status"] == "FAIL"]
    n = base_fingerprint.get("num_parameters")
    if n:
        out.append(f"A {n / 1e6:.0f}M-parameter base model: expect slips on unusual phrasings, long requests and "
                   "multi-step plans; calls are only safe because each is validated against its schema first.")
    sv = results.get("scorer_validation") or {}
    if sv.get("persona_scorer_accuracy") is not None:
        out.append("Persona scores come from the project's rule-based scorer and style probe, not from human "
                   f"ratings; the scorer agrees with {sv['persona_scorer_accuracy']:.0%} of a hand-labelled set.")
    out.append("One tool call per turn; English only; the Task API's five tools only.")
    return out + extra


def _status(results: Mapping[str, Any]) -> str:
    return PASS if results["gates_summary"]["all_passed"] else REQUIRES_ITERATION


def _adapter_source(adapter: str, adapters_root: Path, specs: SpecSet) -> dict[str, Any]:
    folder = adapters_root / adapter
    weights = folder / "adapter_model.safetensors"
    if not weights.is_file():
        raise FteforgeError(f"{weights}: not found - the release records its source adapters; run "
                            f"`dvc repro train_adapter@{adapter}`")
    return {"name": adapter, "spec": specs.files["PersonaSpec" if adapter == specs.persona.adapter else "AgenticSpec"].name,
            "sha256": sha256_file(weights), "adapter_config_sha256": sha256_file(folder / "adapter_config.json")}


def base_label(base_fingerprint: Mapping[str, Any]) -> dict[str, str]:
    """The base model's name for a model card, and where it came from (prepare_base's `source`)."""
    source = base_fingerprint.get("source") or {}
    if source.get("kind") == "gguf":  # SmolLM2-135M-Instruct.Q4_1.gguf -> SmolLM2-135M-Instruct
        return {"label": source["file"].split(".")[0], "source": source.get("package") or source["file"]}
    ref = str(source.get("ref") or "base model")
    return {"label": Path(ref).name if source.get("kind") == "local" else ref, "source": ref}


def _common(results: Mapping[str, Any], base_fingerprint: Mapping[str, Any], release_path: str, license_: str,
            today: str) -> dict[str, Any]:
    return {
        "base": {**base_label(base_fingerprint),
                 "fingerprint": base_fingerprint["fingerprint"],
                 "num_parameters": base_fingerprint.get("num_parameters")},
        "license": license_,
        "path": release_path,
        "today_label": today_label(today),
        "suites": results["suites"],
        "system": {"device": results["system"].get("device"), "threads": results["system"].get("threads")},
        "headline": results["headline"],
        "ab": _ab(results),
        "boundary_violations": results.get("boundary_violations"),
        "latency": _latency(results),
        "memory": results.get("memory") or {},
        "gates": [{k: g[k] for k in ("spec", "metric", "op", "bound", "unit", "value", "status")} for g in results["gates"]],
        "gates_summary": results["gates_summary"],
        "failed_cases": len(results.get("failed_cases") or []),
        "libraries": library_versions(),
        "tool_call_format": FORMAT_NAME,
        "tool_calls": (results.get("system") or {}).get("tool_calls", TOOL_CALLS_FREE),
        "serving": serving_in(dict(results)),
    }


def unified_metadata(*, specs: SpecSet, name: str, version: str, release_path: str, selection: Mapping[str, Any],
                     merge_info: Mapping[str, Any], results: Mapping[str, Any], base_fingerprint: Mapping[str, Any],
                     sources: Mapping[str, Mapping[str, Any]], config_file: str | None, license_: str,
                     today: str) -> dict[str, Any]:
    """merge_metadata.json: everything the README shows, and what a deployer audits."""
    u = specs.unified
    merge = {k: merge_info.get(f"merge.{k}") for k in MERGE_FIELDS}
    merge |= {"candidate": selection["selected"], "config_file": config_file}
    pres = results.get("preservation") or {}
    meta = _common(results, base_fingerprint, release_path, license_, today) | {
        "name": name,
        "version": version,
        "display_name": u.display_name,
        "intent": u.intent,
        "status": selection["status"],
        "persona_display_name": specs.persona.display_name,
        "persona_traits": [t.summary[0].lower() + t.summary[1:] for t in specs.persona.traits],
        "tools": specs.tools.names,
        "sources": {"persona": sources[specs.persona.adapter], "agentic": sources[specs.agentic.adapter]},
        "merge": merge,
        "selection": {k: selection[k] for k in ("status", "forced", "reasons")} | {"rule": selection["rule"]},
        "preservation": {"persona": (pres.get("persona") or {}).get("ratio"),
                         "agentic": (pres.get("agentic") or {}).get("ratio"),
                         "combined_regression": (pres.get("combined") or {}).get("regression")},
        "tags": ["fteforge", "merge", f"{merge['engine']}", f"{merge['method']}", "lora", "tool-calling",
                 "task-api", "persona"],
        "model_index": _model_index(results, ("persona", "agentic", "combined", "ab")),
        "limitations": _limitations(results, base_fingerprint, [f"Not for: {g[0].lower() + g[1:]}." for g in u.non_goals]),
    }
    return meta


def persona_metadata(*, specs: SpecSet, name: str, version: str, release_path: str, results: Mapping[str, Any],
                     base_fingerprint: Mapping[str, Any], adapter_dir: Path, train_metrics: Mapping[str, Any],
                     license_: str, today: str) -> dict[str, Any]:
    lora = json.loads((adapter_dir / "adapter_config.json").read_text())
    weights = adapter_dir / "adapter_model.safetensors"
    return _common(results, base_fingerprint, release_path, license_, today) | {
        "name": name,
        "version": version,
        "display_name": specs.persona.display_name,
        "status": _status(results),
        "persona_traits": [t.summary[0].lower() + t.summary[1:] for t in specs.persona.traits],
        "adapter": specs.persona.adapter,
        "adapter_sha256": sha256_file(weights),
        "adapter_size_mb": round(weights.stat().st_size / 1e6, 2),
        "lora": {"r": lora.get("r"), "lora_alpha": lora.get("lora_alpha"),
                 "target_modules": sorted(lora.get("target_modules") or [])},
        "training": {"examples": train_metrics.get("train.examples"), "final_loss": train_metrics.get("train.final_loss")},
        "tags": ["fteforge", "lora", "peft", "persona", "task-api"],
        "model_index": _model_index(results, ("persona", "ab")),
        "limitations": _limitations(results, base_fingerprint, [
            "An adapter: it needs the exact base model it was trained on (fingerprint above).",
            "Voice only: tool calls come from the agentic adapter or the merged release."]),
    }


# -- whole releases -----------------------------------------------------------------------------------

def fill_unified_release(work: Path, *, specs: SpecSet, params: Any, selection: Mapping[str, Any],
                         candidate_dir: Path, merge_info: Mapping[str, Any], results_file: Path, base_dir: Path,
                         base_fingerprint: Mapping[str, Any], adapters_root: Path, release_path: str,
                         draft_table: Path | None = None,
                         progress: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Write the merged-model release into `work`; returns its merge_metadata.

    `draft_table` (the build_draft stage's n-gram table) ships as draft_ngrams.json: `fteforge chat`
    guesses tokens from it, as the evaluation's latency turn did.
    """
    from fteforge.evaluation.draft import RELEASE_FILE
    from fteforge.release.samples import sample_interactions

    progress(f"model from {candidate_dir}")
    save_full_model(candidate_dir, work, base_dir=base_dir, system_prompt=specs.agentic.system_prompt,
                    max_shard_size=params.max_shard_size)
    config_file = None
    if (candidate_dir / "mergekit_config.yml").is_file():
        config_file = "mergekit_config.yml"
        shutil.copyfile(candidate_dir / "mergekit_config.yml", work / config_file)
    elif (candidate_dir / "merge_sources.json").is_file():  # the LoRA-space (peft) engine's record
        config_file = "peft_merge_config.json"
        shutil.copyfile(candidate_dir / "merge_sources.json", work / config_file)
    shutil.copyfile(results_file, work / "EVALUATION_RESULTS.json")
    if draft_table is not None:
        shutil.copyfile(draft_table, work / RELEASE_FILE)
    results = json.loads(results_file.read_text())
    write_tools(work, specs)
    copy_specs(specs, work)
    sources = {a: _adapter_source(a, adapters_root, specs) for a in specs.adapters}
    meta = unified_metadata(specs=specs, name=params.name, version=params.version, release_path=release_path,
                            selection=selection, merge_info=merge_info, results=results,
                            base_fingerprint=base_fingerprint, sources=sources, config_file=config_file,
                            license_=params.license, today=params.today)
    write_json(work / "merge_metadata.json", meta)
    (work / "README.md").write_text(cards.unified_readme(meta))
    (work / "PERSONA_SPEC.md").write_text(cards.persona_spec_md(specs.persona, f"specs/{specs.files['PersonaSpec'].name}"))
    progress(f"sample interactions ({len(params.sample_prompts)} prompts)")
    write_jsonl(work / "examples" / "sample_interactions.jsonl",
                sample_interactions(work, specs, params.sample_prompts, today=params.today,
                                    max_new_tokens=params.sample_max_new_tokens, threads=params.threads,
                                    constrain_tool_calls=constrained_in(results), serving=serving_in(results)))
    return meta


def fill_persona_release(work: Path, *, specs: SpecSet, params: Any, adapter_dir: Path, results_file: Path,
                         train_metrics: Mapping[str, Any], base_dir: Path, base_fingerprint: Mapping[str, Any],
                         release_path: str, progress: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Write the persona-adapter release (seed 001's layout) into `work`; returns its metadata."""
    from transformers import AutoTokenizer

    from fteforge.release.samples import sample_interactions

    # generated first: loading the adapter is also the check that it is safetensors and fits its base
    progress(f"sample interactions ({len(params.sample_prompts)} prompts)")
    results = json.loads(results_file.read_text())
    samples = sample_interactions(adapter_dir, specs, params.sample_prompts, today=params.today,
                                  max_new_tokens=params.sample_max_new_tokens, threads=params.threads,
                                  base_dir=base_dir, constrain_tool_calls=constrained_in(results),
                                  serving=serving_in(results))
    write_jsonl(work / "examples" / "sample_interactions.jsonl", samples)
    for f in ("adapter_model.safetensors", "adapter_config.json"):
        shutil.copyfile(adapter_dir / f, work / f)
    tokenizer = AutoTokenizer.from_pretrained(adapter_dir if (adapter_dir / "tokenizer_config.json").is_file()
                                              else base_dir, trust_remote_code=False)
    tokenizer.chat_template = release_chat_template(specs.agentic.system_prompt)
    tokenizer.save_pretrained(work)
    shutil.copyfile(results_file, work / "EVALUATION_RESULTS.json")
    results = json.loads(results_file.read_text())
    write_tools(work, specs)
    copy_specs(specs, work)
    meta = persona_metadata(specs=specs, name=params.persona_name, version=params.version, release_path=release_path,
                            results=results, base_fingerprint=base_fingerprint, adapter_dir=adapter_dir,
                            train_metrics=train_metrics, license_=params.license, today=params.today)
    write_json(work / "release_metadata.json", meta)
    (work / "README.md").write_text(cards.persona_readme(meta))
    (work / "PERSONA_SPEC.md").write_text(cards.persona_spec_md(specs.persona, f"specs/{specs.files['PersonaSpec'].name}"))
    return meta
