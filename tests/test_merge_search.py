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
    out = subprocess.run([sys.executable, "-m", "fteforge.cli", "merge-search", str(grid), "--dry-run",
                          "--no-validation-cache"], cwd=repo,
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


# -- the validation draw: rank on new cases, report on the held-out ones --------------------------------

def _held_out_and_specs():
    from fteforge.data.evalsuites import build_eval_suites
    from fteforge.params import EvalSuiteParams
    from fteforge.specs import load_spec_set

    specs = load_spec_set(REPO / "specs")
    suite_params = load_params("eval_suites", EvalSuiteParams, REPO / "params.yaml")
    return specs, suite_params, build_eval_suites(specs, suite_params, [])[0]


def test_validation_suites_share_no_input_with_the_held_out_ones():
    from types import SimpleNamespace

    from fteforge.merging.validation import validation_suites

    specs, suite_params, held_out = _held_out_and_specs()
    suites, report = validation_suites(specs, suite_params, 2000, [], held_out)
    seen = {c.user_text for cases in held_out.values() for c in cases}
    assert all(c.user_text not in seen for cases in suites.values() for c in cases)
    assert report["dropped_as_held_out_repeats"]["persona"] > 0  # the no-call phrasings have nothing to vary
    assert all(report["cases"][k] + report["dropped_as_held_out_repeats"][k] == len(held_out[k]) for k in held_out)
    assert {c.expected_tool for c in suites["agentic"]} >= {None, "create_task", "update_task"}
    with pytest.raises(FteforgeError, match="eval_suites.seed, the held-out suites themselves"):
        validation_suites(specs, suite_params, suite_params.seed, [], held_out)
    leaked = SimpleNamespace(id="train-1", user=suites["agentic"][0].user_text)  # a training input equal to a case
    with pytest.raises(FteforgeError, match="leak from the training data"):
        validation_suites(specs, suite_params, 2000, [leaked], held_out)


def test_validation_draw_evaluates_a_merge_and_the_search_ranks_on_it(tmp_path, tiny_llama_dir):
    """A scratch project (tiny random Llama, a LoRA as the 'merge'): the draw evaluates base, adapters and the
    merge on its own cases; the ranking rows come from those results and keep the held-out headline beside."""
    import json

    from fteforge import paths
    from fteforge.data.records import write_jsonl
    from fteforge.merging.search import rank_variants, render_table
    from fteforge.merging.validation import ValidationDraw
    from tests.test_evaluate import TINY, _make_adapter

    specs, _, held_out = _held_out_and_specs()
    shutil.copytree(REPO / "specs", tmp_path / "specs")
    shutil.copytree(tiny_llama_dir, tmp_path / paths.BASE_DIR)
    adapter = _make_adapter(tiny_llama_dir, tmp_path / "adapter", 1)
    for a in specs.adapters:
        shutil.copytree(adapter, tmp_path / paths.adapter_dir(a))
    shutil.copytree(adapter, tmp_path / paths.merge_dir("m1"))
    for f in paths.DATASET_FILES.values():
        write_jsonl(tmp_path / f, [])
    for kind, path in paths.EVAL_SUITES.items():
        write_jsonl(tmp_path / path, [c.model_dump(exclude_none=True) for c in held_out[kind]])
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["evaluate"] = json.loads(TINY.model_dump_json())
    params["eval_suites"].update(persona_cases=50, agentic_cases=60, combined_cases=20)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    draw = ValidationDraw(2000, specs, root=tmp_path)
    results = draw.evaluate_merge("m1")
    assert results["model"]["role"] == "merge" and results["preservation"] is not None
    assert {s["validation_seed"] for s in results["suites"].values()} == {2000}
    assert sum(s["cases"] for s in results["suites"].values()) == len(draw.cases) < 130
    host = [g for g in results["gates"] if g["metric"].startswith(("latency.", "memory."))]
    assert host and all(g["status"] == "not applicable" for g in host)
    assert not any(m.startswith("latency.") for m in results["gates_summary"]["failed_metrics"])

    held_out_headline = {"persona": 1.0, "agentic": 0.5, "combined": 0.25}
    runs = [{"name": "m1", "results": {**results, "headline": held_out_headline}, "validation": results}]
    rule = specs.unified.selection
    (row,) = rank_variants(runs, rule, on="validation")
    assert row["headline"] == results["headline"] and row["held_out_headline"] == held_out_headline
    table = render_table({"ranking": [row], "runs": [], "validation": draw.report,
                          "ranked_on": "validation draw (eval seed 2000)"})
    assert table.startswith("Ranked on the validation draw (eval seed 2000).")
    with pytest.raises(FteforgeError, match=r"data/merges/m2: not found .*`dvc repro merge@m2`"):
        draw.evaluate_merge("m2")
    assert draw.cache_hits == []

    # a search run again: what was evaluated is read back; a merge whose weights changed is evaluated anew
    again = ValidationDraw(2000, specs, root=tmp_path)
    assert again.cache_hits == ["base", *(f"adapters/{a}" for a in specs.adapters)]
    assert again.base == draw.base and again.evaluate_merge("m1") == results
    assert again.cache_hits[-1] == "merges/m1"
    shutil.rmtree(tmp_path / paths.merge_dir("m1"))
    shutil.copytree(_make_adapter(tiny_llama_dir, tmp_path / "adapter2", 2), tmp_path / paths.merge_dir("m1"))
    changed = again.evaluate_merge("m1")
    assert again.cache_hits[-1] == "merges/m1" and len(again.cache_hits) == 4  # no hit this time
    assert changed["model"]["role"] == "merge"
    assert ValidationDraw(2000, specs, root=tmp_path, cache=False).cache_hits == []


def test_a_reused_experiment_is_validated_from_the_cache_and_the_workspace_reset(tmp_path, monkeypatch):
    """A resumed search with a validation draw: the merge of an experiment that already ran comes back with
    `dvc exp apply`, the validation sees it, and afterwards the workspace is the commit's again.

    A scratch DVC project shaped like the real one (one merge stage per entry of `candidates`), where the
    'merge' writes its weight to a file, so what the validation saw says which experiment was applied."""
    from fteforge.merging.search import EXP_PREFIX, restore, validate_experiment
    from tests.conftest import run_dvc

    repo = tmp_path / "repo"
    repo.mkdir()
    env = git_env()
    monkeypatch.setenv("DVC_SITE_CACHE_DIR", str(repo / ".dvc" / "site-cache"))
    for k in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"):
        monkeypatch.setenv(k, env[k])
    (repo / "params.yaml").write_text("candidates:\n  kept: 1\n")
    (repo / "dvc.yaml").write_text(
        "stages:\n  merge:\n    foreach: ${candidates}\n    do:\n"
        "      cmd: mkdir -p data/merges/${key} && echo ${item} > data/merges/${key}/weight.txt\n"
        "      outs:\n        - data/merges/${key}\n")
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True, env=env)
    run_dvc(repo, "init", "-q")
    run_dvc(repo, "repro", "-q")
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True, env=env)
    subprocess.run(["git", "commit", "-qm", "baseline"], cwd=repo, check=True, env=env)

    # the interrupted search: its experiment ran, then the workspace was reset as run_variant does
    before = set()
    run_dvc(repo, "exp", "run", "-q", "-n", f"{EXP_PREFIX}probe", "-S", "++candidates.probe=2")
    restore(repo, before)
    shutil.rmtree(repo / "data" / "merges" / "probe")

    dvc = str(Path(sys.executable).parent / "dvc")
    seen = validate_experiment(repo, "probe", lambda name: {"weight": (repo / f"data/merges/{name}/weight.txt").read_text()},
                               dvc=dvc)
    assert seen == {"weight": "2\n"}
    assert not (repo / "data" / "merges" / "probe").exists()
    assert (repo / "data" / "merges" / "kept" / "weight.txt").read_text() == "1\n"
    assert subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True).stdout == ""
    assert "probe" not in (repo / "params.yaml").read_text()
    # an experiment that does not exist: nothing to validate, nothing changed
    assert validate_experiment(repo, "missing", lambda name: {"weight": "?"}, dvc=dvc) is None
    assert subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True).stdout == ""
