"""fteforge merge-search: grids, the -S overrides DVC parses back, and the guard on params.yaml."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fteforge.errors import FteforgeError
from fteforge.merging.search import candidate_overrides, load_grid, override_value, search
from fteforge.params import MergeCandidate, MergeParams, load_params
from tests.conftest import git_env

REPO = Path(__file__).resolve().parents[1]
GRIDS = sorted((REPO / "experiments").glob("merge_*.yaml"))


@pytest.mark.parametrize("grid", GRIDS, ids=lambda p: p.name)
def test_every_shipped_grid_validates_and_names_its_command(grid):
    existing = load_params("merge", MergeParams, REPO / "params.yaml").candidates
    assert load_grid(grid, existing)
    assert grid.read_text().startswith(f"# fteforge merge-search experiments/{grid.name}")


def test_overrides_parse_back_through_dvc_into_the_same_candidate(tmp_path):
    from dvc.utils.hydra import apply_overrides

    body = {"method": "ties", "density": 0.5, "normalize": True,
            "weights": {"task_api_persona": [0.6, 0.2], "task_api_agentic": [0.4, 0.8]},
            "module_weights": {"self_attn": {"task_api_persona": 0.25, "task_api_agentic": 1}}}
    candidate = MergeCandidate.model_validate(body)
    params = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", params)
    apply_overrides(params, [candidate_overrides("new_one", candidate)[1]])
    written = yaml.safe_load(params.read_text())["merge"]["candidates"]["new_one"]
    assert MergeCandidate.model_validate(written) == candidate
    assert override_value("it's a b") == "'it\\'s a b'" and override_value("true") == "'true'"
    assert override_value([1, 2.5, None, False]) == "[1, 2.5, null, false]"


def test_grid_errors_name_the_file_the_variant_and_the_field(tmp_path):
    grid = tmp_path / "grid.yaml"
    existing = {"v1_ties": object()}
    grid.write_text("variants:\n  v1_ties: {method: ties, weights: {a: 0.5, b: 0.5}}\n")
    with pytest.raises(FteforgeError, match=r"grid.yaml: variants.v1_ties: params.yaml already has"):
        load_grid(grid, existing)
    grid.write_text("variants:\n  x: {method: ties, wieghts: {a: 0.5, b: 0.5}}\n")
    with pytest.raises(FteforgeError, match=r"grid.yaml: variants.x: .*wieghts"):
        load_grid(grid, existing)
    grid.write_text("x: 1\n")
    with pytest.raises(FteforgeError, match="one top-level key `variants:`"):
        load_grid(grid, existing)
    with pytest.raises(FteforgeError, match="no such grid file"):
        load_grid(tmp_path / "missing.yaml", existing)


def test_search_refuses_uncommitted_params_and_dry_run_lists_commands(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy(REPO / "params.yaml", repo / "params.yaml")
    shutil.copytree(REPO / "specs", repo / "specs")
    env = git_env()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True, env=env)
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True, env=env)
    subprocess.run(["git", "commit", "-qm", "x"], cwd=repo, check=True, env=env)
    grid = tmp_path / "grid.yaml"
    grid.write_text("variants:\n  t1: {method: ties, density: 0.5, weights: {task_api_persona: 0.3, task_api_agentic: 0.7}}\n")

    report = search(repo, grid, dry_run=True)
    assert report["commands"]["t1"].startswith("dvc exp run -n search-t1 -S '++merge.candidates.t1={")
    assert report["commands"]["t1"].endswith(" evaluate_merge@t1")
    out = subprocess.run([sys.executable, "-m", "fteforge.cli", "merge-search", str(grid), "--dry-run"], cwd=repo,
                         capture_output=True, text=True, check=True).stdout
    assert "evaluate_merge@t1" in out

    edited = (repo / "params.yaml").read_text() + "\n# my edit\n"
    (repo / "params.yaml").write_text(edited)
    with pytest.raises(FteforgeError, match="params.yaml in .* uncommitted edits"):
        search(repo, grid)
    assert (repo / "params.yaml").read_text() == edited  # untouched


def test_variant_outputs_cover_what_dvc_yaml_declares_for_a_candidate():
    """A search removes a variant's outputs by the list in search.py; dvc.yaml is where they are declared,
    so a new output added there must be cleaned up too."""
    from fteforge.merging.search import variant_outputs

    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    declared = []
    for stage in ("merge", "evaluate_merge"):
        body = stages[stage]["do"]
        for section in ("outs", "metrics", "plots"):
            for entry in body.get(section, []):
                path = next(iter(entry)) if isinstance(entry, dict) else entry
                declared.append(Path(path.replace("${key}", "probe_x")))
    cleaned = variant_outputs("probe_x")
    assert declared
    for path in declared:
        assert any(path == c or c in path.parents for c in cleaned), f"{path} is not removed by variant_outputs"
