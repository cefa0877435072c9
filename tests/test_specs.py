"""Every shipped spec validates; broken specs fail with messages that name file, line, field and fix."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fteforge.cli import main as cli_main
from fteforge.cli import spec_json_schema
from fteforge.errors import SpecError
from fteforge.specs import SPEC_KINDS, load_spec, load_spec_set

REPO = Path(__file__).resolve().parents[1]
SHIPPED = sorted((REPO / "specs").glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_spec_validates(path: Path) -> None:
    spec = load_spec(path)
    assert spec.kind in SPEC_KINDS
    # torchtune's rule: each config opens with a comment saying what uses it
    assert path.read_text().startswith("#"), f"{path.name} should open with a comment naming its command"


def test_spec_set_facts_from_the_seeds() -> None:
    s = load_spec_set(REPO / "specs")
    m = s.persona.scenario_matrix
    assert len(m.categories) == 7 and m.n_scenarios == 37 and m.total_target == 170
    assert [t.name for t in s.persona.traits] == [
        "encouraging", "productivity_focused", "professional_friendly", "action_oriented", "optimistic"]
    gates = {g.metric: g for g in s.persona.success_criteria}
    assert gates["persona.overall_score"].bound == 7.5 and gates["train.final_loss"].bound == 0.4
    assert s.tools.names == ["create_task", "list_tasks", "complete_task", "update_task", "delete_task"]
    assert s.tools.get("create_task").required == ["title"]
    assert s.unified.merge_strategy.primary == "ties" and s.unified.merge_strategy.backup == "dare_ties"
    assert s.adapters == ["task_api_persona", "task_api_agentic"]


def _broken_copy(tmp_path: Path, file: str, edit) -> Path:
    dst = tmp_path / "specs"
    shutil.copytree(REPO / "specs", dst)
    path = dst / file
    data = yaml.safe_load(path.read_text())
    edit(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return dst


def _set(path: list, value):
    def edit(data):
        node = data
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = value
    return edit


def _rename(old: str, new: str):
    def edit(data):
        data[new] = data.pop(old)
    return edit


def _drop(key: str):
    def edit(data):
        del data[key]
    return edit


BROKEN = {
    "typo_key": ("taskmaster_persona.yaml", _rename("purpose", "purpse"),
                 ["taskmaster_persona.yaml:", "purpse: unknown key - did you mean 'purpose'?"]),
    "wrong_type": ("taskmaster_persona.yaml",
                   _set(["scenario_matrix", "categories", "task_creation", "target_count"], "thirty"),
                   ["scenario_matrix.categories.task_creation.target_count", "valid integer", "'thirty'"]),
    "zero_target": ("taskmaster_persona.yaml",
                    _set(["scenario_matrix", "categories", "edge_cases", "target_count"], 0),
                    ["scenario_matrix.categories.edge_cases.target_count", "greater than 0"]),
    "missing_required": ("task_api_unified.yaml", _drop("intent"), ["task_api_unified.yaml", "intent: required field is missing"]),
    "bad_adapter_ref": ("task_api_unified.yaml", _set(["source_adapters"], ["task_api_persona", "task_api_agentc"]),
                        ["source_adapters.1: adapter 'task_api_agentc' is not defined"]),
    "bad_tool_ref": ("task_api_agentic.yaml", _set(["scenario_matrix", "categories", "create", "tools"], ["make_task"]),
                     ["scenario_matrix.categories.create.tools: unknown tool 'make_task'"]),
    "bad_base_ref": ("task_api_agentic.yaml", _set(["base_model"], "Llama-9B"),
                     ["base_model: 'Llama-9B' differs from task_api_unified.yaml"]),
    "missing_tools_file": ("task_api_agentic.yaml", _set(["tools_file"], "nope.yaml"),
                           ["tools_file: 'nope.yaml' does not exist"]),
    "invalid_json_schema": ("task_api_tools.yaml", _set(["tools", 1, "parameters", "properties", "status", "enum"], "pending"),
                            ["task_api_tools.yaml:", "tools.1.parameters: not a valid JSON Schema at properties/status/enum"]),
    "schema_not_object": ("task_api_tools.yaml", _set(["tools", 0, "parameters", "type"], "array"),
                          ["tools.0.parameters: the arguments schema must have type: object"]),
    "required_not_declared": ("task_api_tools.yaml", _set(["tools", 0, "parameters", "required"], ["titel"]),
                              ["required arguments ['titel'] are not declared"]),
    "pattern_order": ("taskmaster_persona.yaml",
                      lambda d: d["response_pattern"].reverse(), ["response_pattern: steps must be ACKNOWLEDGE, DELIVER, PROPEL"]),
    "unknown_example_category": ("taskmaster_persona.yaml", _set(["examples", 0, "category"], "smalltalk"),
                                 ["examples: category ['smalltalk'] is not in scenario_matrix.categories"]),
    "unknown_kind": ("task_api_tools.yaml", _set(["kind"], "ToolSpec"), ["kind: expected one of"]),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_spec_gives_precise_message(tmp_path: Path, case: str) -> None:
    file, edit, expected = BROKEN[case]
    root = _broken_copy(tmp_path, file, edit)
    with pytest.raises(SpecError) as exc:
        load_spec_set(root)
    text = str(exc.value)
    for fragment in expected:
        assert fragment in text, f"{fragment!r} not in:\n{text}"


def test_line_numbers_point_at_the_key(tmp_path: Path) -> None:
    root = tmp_path / "specs"
    shutil.copytree(REPO / "specs", root)
    path = root / "taskmaster_persona.yaml"
    lines = path.read_text().splitlines()
    idx = next(i for i, line in enumerate(lines) if line.startswith("purpose:"))
    lines[idx] = lines[idx].replace("purpose:", "purpse:")
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(SpecError) as exc:
        load_spec_set(root)
    assert f"taskmaster_persona.yaml:{idx + 1}: purpse" in str(exc.value)


def test_all_problems_reported_at_once(tmp_path: Path) -> None:
    root = _broken_copy(tmp_path, "task_api_tools.yaml", _set(["tools", 0, "parameters", "type"], "array"))
    p = root / "taskmaster_persona.yaml"
    p.write_text(p.read_text().replace("\npurpose:", "\npurpse:"))
    with pytest.raises(SpecError) as exc:
        load_spec_set(root)
    assert len(exc.value.problems) >= 2


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    root = tmp_path / "specs"
    shutil.copytree(REPO / "specs", root)
    (root / "task_api_unified.yaml").write_text("kind: UnifiedModelSpec\nname: [unclosed\n")
    with pytest.raises(SpecError, match=r"task_api_unified.yaml:\d+: invalid YAML"):
        load_spec_set(root)


def test_cli_validate_exit_codes(tmp_path: Path, capsys) -> None:
    assert cli_main(["validate", "--specs", str(REPO / "specs")]) == 0
    root = _broken_copy(tmp_path, "taskmaster_persona.yaml", _rename("purpose", "purpse"))
    assert cli_main(["validate", "--specs", str(root)]) == 2
    err = capsys.readouterr().err
    assert "purpse: unknown key" in err


def test_cli_validate_as_a_process(tmp_path: Path) -> None:
    root = _broken_copy(tmp_path, "task_api_unified.yaml", _drop("intent"))
    proc = subprocess.run([sys.executable, "-m", "fteforge.cli", "validate", "--specs", str(root)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "intent: required field is missing" in proc.stderr


def test_committed_json_schemas_are_current(tmp_path: Path) -> None:
    """schemas/ feeds editors (yaml-language-server); regenerate with `fteforge schema` after model changes."""
    assert cli_main(["schema", "--out", str(tmp_path)]) == 0
    for kind, model in SPEC_KINDS.items():
        committed = json.loads((REPO / "schemas" / f"{kind}.schema.json").read_text())
        assert committed == spec_json_schema(model), f"schemas/{kind}.schema.json is stale: run `make schemas`"
        assert committed == json.loads((tmp_path / f"{kind}.schema.json").read_text())
