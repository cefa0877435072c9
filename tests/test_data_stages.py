"""The data stages as DVC runs them: outputs written, held-out suites valid, leaks caught, bad input refused."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from fteforge import paths
from fteforge.data.agentic import PERSONA_PHRASED_SOURCE
from fteforge.data.evalsuites import build_eval_suites
from fteforge.data.records import Example, load_examples, load_suite
from fteforge.errors import FteforgeError
from fteforge.params import EvalSuiteParams, PersonaDataParams, load_params
from fteforge.specs import load_spec_set

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def in_scratch(scratch_repo: Path):
    old = Path.cwd()
    os.chdir(scratch_repo)
    yield scratch_repo
    os.chdir(old)


def _run(stage: str) -> None:
    import runpy

    runpy.run_path(str(Path("stages") / f"{stage}.py"), run_name="not_main")["main"]()


def test_data_stages_write_their_declared_outputs(in_scratch: Path) -> None:
    share = load_params("persona_data", PersonaDataParams).agentic_call_share
    with pytest.raises(FteforgeError, match="build_agentic_dataset first"):
        _run("build_persona_dataset")  # it lends agentic examples: refused, not built without them
    assert not paths.PERSONA_TRAIN.exists()
    for stage in ("build_agentic_dataset", "build_persona_dataset", "build_eval_suites"):  # dvc.yaml's order
        _run(stage)
    persona = load_examples(paths.PERSONA_TRAIN)
    agentic = load_examples(paths.AGENTIC_TRAIN)
    lent = [e for e in persona if e.id.startswith("agentic-")]
    # the persona-phrased agentic examples came from the persona builder: never lent back
    lendable = [e for e in agentic if e.meta.get("source") != PERSONA_PHRASED_SOURCE]
    assert len(lendable) < len(agentic)
    assert len(lent) == round(share * len(lendable)) > 0 and {e.adapter for e in lent} == {"task_api_persona"}
    assert {e.id for e in lent} <= {e.id for e in lendable}
    assert {e.id for e in lent} <= {e.id for e in agentic}
    assert len(persona) - len(lent) >= 200 and len(agentic) >= 285
    for p in (paths.PERSONA_CARD, paths.PERSONA_REVIEW, paths.PERSONA_REJECTED, paths.AGENTIC_CARD):
        assert p.is_file()
    assert paths.PERSONA_REVIEW.read_text().count("\n## ") == 10
    suites = {k: load_suite(p) for k, p in paths.EVAL_SUITES.items()}
    assert len(suites["persona"]) >= 50 and len(suites["agentic"]) >= 60 and len(suites["combined"]) >= 20
    no_call = sum(c.expected_tool is None for c in suites["agentic"]) / len(suites["agentic"])
    assert no_call >= 0.2
    report = json.loads(paths.EVAL_SUITE_STATS.read_text())
    assert report["leaks"] == 0 and report["training_inputs_compared"] == len(persona) + len(agentic) - len(lent)
    stats = json.loads(paths.PERSONA_STATS.read_text())
    assert stats["total"] + stats["lent_call_examples"] == len(persona) and 0 < stats["diversity"]["replies"]["distinct_2"] <= 1


def test_leakage_check_catches_a_planted_leak() -> None:
    specs = load_spec_set(REPO / "specs")
    params = load_params("eval_suites", EvalSuiteParams, REPO / "params.yaml")
    clean, _ = build_eval_suites(specs, params, [])
    victim = clean["agentic"][5]
    planted = Example(id="planted-1", adapter="x", category="c", scenario="s", today="2026-01-01",
                      messages=[{"role": "user", "content": victim.user_text.upper() + " "},
                                {"role": "assistant", "content": "ok"}], train_turn=1)
    with pytest.raises(FteforgeError) as exc:
        build_eval_suites(specs, params, [planted])
    assert f"{victim.id} ~ planted-1 (exact" in str(exc.value)
    near = planted.model_copy(update={"messages": [{"role": "user", "content": victim.user_text + " please"},
                                                   {"role": "assistant", "content": "ok"}]})
    with pytest.raises(FteforgeError, match="near"):
        build_eval_suites(specs, params, [near])


def test_bad_scenario_matrix_fails_without_partial_output(in_scratch: Path) -> None:
    spec = Path("specs/taskmaster_persona.yaml")
    data = yaml.safe_load(spec.read_text())
    data["scenario_matrix"]["categories"]["gardening"] = {"priority": "low", "target_count": 5,
                                                         "scenarios": ["Water the roses"]}
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(FteforgeError, match="gardening"):
        _run("build_persona_dataset")
    assert not paths.PERSONA_TRAIN.exists()


def test_user_suite_format_errors_name_case_and_field(tmp_path: Path) -> None:
    suite = tmp_path / "mine.jsonl"
    suite.write_text(
        json.dumps({"id": "a", "kind": "agentic", "input": "hi", "expected_tool": None}) + "\n"
        + json.dumps({"id": "b", "kind": "agentc", "input": "hi"}) + "\n"
        + json.dumps({"id": "c", "kind": "agentic", "input": "x", "expected_tool": "list_tasks",
                      "expected_args": {"status": "("}}) + "\n"
    )
    with pytest.raises(FteforgeError) as exc:
        load_suite(suite)
    text = str(exc.value)
    assert "case 2 (b): kind" in text and "case 3 (c): expected_args" in text and "invalid regex" in text
