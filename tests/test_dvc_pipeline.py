"""The DVC pipeline: dvc.yaml agrees with fteforge.paths, and `dvc repro` runs end to end in a clone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from fteforge import paths
from fteforge.release.package import verify
from tests.conftest import git_env, run_dvc

REPO = Path(__file__).resolve().parents[1]


def _stages() -> dict:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def _declared(kind: str) -> set[str]:
    out = set()
    for s in _stages().values():
        s = s.get("do", s)
        out |= {o if isinstance(o, str) else next(iter(o)) for o in s.get(kind, [])}
    return out


def test_dvc_outs_match_paths_module() -> None:
    outs, metrics = _declared("outs"), _declared("metrics")
    assert {str(paths.BASE_DIR), str(paths.PERSONA_DATA_DIR), str(paths.AGENTIC_DATA_DIR), str(paths.EVAL_DIR)} <= outs
    assert "data/adapters/${key}" in outs and str(paths.adapter_dir("${key}")) == "data/adapters/${key}"
    assert {str(paths.PERSONA_STATS), str(paths.AGENTIC_STATS), str(paths.EVAL_SUITE_STATS)} <= metrics
    assert str(paths.train_metrics("${key}")) in metrics
    assert str(paths.DRAFT_TABLE) in outs and str(paths.DRAFT_STATS) in metrics
    assert {str(paths.ANALYSIS_DIR), str(paths.merge_dir("${key}"))} <= outs
    assert {str(paths.ANALYSIS_METRICS), str(paths.merge_metrics("${key}")), str(paths.merge_run_stats("${key}"))} <= metrics
    assert str(paths.STRATEGY_DECISION).startswith(str(paths.ANALYSIS_DIR))
    assert all(str(p).startswith(str(paths.EVAL_DIR)) for p in paths.EVAL_SUITES.values())
    assert paths.PERSONA_TRAIN.parent == paths.PERSONA_DATA_DIR and paths.AGENTIC_TRAIN.parent == paths.AGENTIC_DATA_DIR


def test_each_stage_script_is_a_dep_of_its_own_stage() -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for name, stage in _stages().items():
        stage = stage.get("do", stage)
        script = f"stages/{name}.py"
        assert (REPO / script).is_file(), f"stage {name} has no script {script}"
        assert stage["cmd"].startswith(f"python {script}")
        assert script in stage["deps"], f"{script} must be a dep of stage {name}"
        for key in stage.get("params", []):
            key = key if isinstance(key, str) else next(iter(key))
            assert key.split(".")[0] in params, f"stage {name} names missing params key {key}"


# Library modules that decide nothing about a stage's outputs: logging, errors, where files go, the
# registries and the pydantic models whose values all come from params.yaml and specs/ (both deps), and
# the CLI, of which stages use only `run_stage` (the error wrapper; its commands import lazily).
NOT_OUTPUT_DEPS = ("console", "errors", "paths", "registry", "params", "specs", "gates", "cli", "__init__")  # top level


def _fteforge_imports(path: Path) -> set[str]:
    """fteforge modules a file imports anywhere in it (lazy imports inside functions included)."""
    import ast

    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fteforge"):
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("fteforge")}
    return out


def _module_file(module: str) -> Path | None:
    base = REPO / "src" / Path(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def test_each_stage_depends_on_the_library_code_it_runs() -> None:
    """Editing a module a stage imports, directly or through other modules, must rerun that stage."""
    problems = []
    for name, stage in _stages().items():
        deps = stage.get("do", stage)["deps"]
        seen: set[Path] = set()
        todo = [REPO / f"stages/{name}.py"]
        while todo:
            for module in _fteforge_imports(todo.pop()):
                f = _module_file(module)
                if f is None or f in seen:
                    continue
                rel = f.relative_to(REPO / "src" / "fteforge")
                if rel.parts[0].removesuffix(".py") in NOT_OUTPUT_DEPS:
                    continue  # and not followed: what they import only validates or reports
                seen.add(f)
                todo.append(f)
        missing = {str(f.relative_to(REPO)) for f in seen}
        missing = {p for p in missing if not any(p == d or p.startswith(d.rstrip("/") + "/") for d in deps)}
        if missing:
            problems.append(f"dvc.yaml stage {name} runs {sorted(missing)} but does not list them as deps")
    assert not problems, "\n".join(problems)


def test_train_entries_match_the_specs() -> None:
    from fteforge.params import TrainParams, load_params
    from fteforge.specs import load_spec_set

    specs = load_spec_set(REPO / "specs")
    train = load_params("train", TrainParams, REPO / "params.yaml")
    assert sorted(train.adapters) == sorted(specs.adapters)
    for name, entry in train.adapters.items():
        assert specs.files[specs.adapter_spec(name).kind].name == Path(entry.spec).name


def test_merge_candidates_name_built_adapters() -> None:
    from fteforge.params import MergeParams, load_params
    from fteforge.specs import load_spec_set

    specs = load_spec_set(REPO / "specs")
    merge = load_params("merge", MergeParams, REPO / "params.yaml")
    assert {"v1_ties", "v3_dare_ties"} <= set(merge.candidates)  # TIES first, DARE-TIES backup
    for name, c in merge.candidates.items():
        assert set(c.weights) <= set(specs.unified.source_adapters), name


def test_dvc_analytics_off_in_repo_config() -> None:
    assert "analytics = false" in (REPO / ".dvc" / "config").read_text()


def _tiny_overrides(repo: Path) -> None:
    """Keep the real SmolLM2 base but train for two steps, with training gates a 2-step run can meet."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train"]["defaults"].update(max_steps=2, batch_size=2, save_steps=1)
    # one full-weight merge through mergekit (linear: its fastest method) and one LoRA-space merge: both
    # engines on the real model, not the whole grid (tests/test_merging.py covers the methods)
    weights = {"task_api_persona": 0.6, "task_api_agentic": 0.4}
    params["merge"]["candidates"] = {
        "mk_linear": {"method": "linear", "weights": dict(weights)},  # own dicts: a shared one becomes a YAML
        "lora_cat": {"engine": "peft", "method": "cat", "weights": dict(weights)},  # alias that -S edits twice
    }
    # evaluation: a few cases per suite and two-token latency runs prove the wiring, not the quality
    params["evaluate"]["max_cases"] = 2
    params["evaluate"]["max_new_tokens"] = {"persona": 8, "agentic": 8, "combined": 8}
    params["evaluate"]["latency"]["max_new_tokens"] = 2
    # release: two short sample interactions show the packaging, not the model
    params["release"]["sample_max_new_tokens"] = 8
    params["release"]["version"] = "1.0.0"
    params["release"]["sample_prompts"] = params["release"]["sample_prompts"][:2]
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for spec in ("taskmaster_persona.yaml", "task_api_agentic.yaml"):
        path = repo / "specs" / spec
        data = yaml.safe_load(path.read_text())
        for gate in data["success_criteria"]:
            if gate["metric"] == "train.final_loss":
                gate["bound"] = 100.0
        path.write_text(yaml.safe_dump(data, sort_keys=False))


def _ran(out: str) -> set[str]:
    return {line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage '")}


def _would_run(repo: Path) -> set[str]:
    return _ran(run_dvc(repo, "repro", "--dry").stdout)


def test_dvc_repro_end_to_end(scratch_repo: Path, smollm2_base: Path, tmp_path: Path) -> None:
    """A clone runs the whole pipeline with the real SmolLM2 GGUF, then a no-op, then targeted reruns."""
    _tiny_overrides(scratch_repo)
    first = run_dvc(scratch_repo, "repro")
    adapters, candidates = ("task_api_persona", "task_api_agentic"), ("mk_linear", "lora_cat")
    stages = set(_stages()) - {"train_adapter", "merge", "evaluate_adapter", "evaluate_merge"}
    stages |= {f"{s}@{a}" for s in ("train_adapter", "evaluate_adapter") for a in adapters}
    stages |= {f"{s}@{c}" for s in ("merge", "evaluate_merge") for c in candidates}
    assert _ran(first.stdout) == stages
    built = json.loads((scratch_repo / paths.BASE_FINGERPRINT).read_text())
    # the same source built twice gives identical weights: later stages key on this hash
    assert built == json.loads((smollm2_base / "fingerprint.json").read_text())
    for adapter in ("task_api_persona", "task_api_agentic"):
        assert (scratch_repo / paths.adapter_dir(adapter) / "adapter_model.safetensors").is_file()
        metrics = json.loads((scratch_repo / paths.train_metrics(adapter)).read_text())
        assert metrics["train.steps"] == 2 and all(g["passed"] for g in metrics["gates"])

    again = run_dvc(scratch_repo, "repro")
    assert _ran(again.stdout) == set()
    assert "up to date" in run_dvc(scratch_repo, "status").stdout.lower()

    # a merge rebuilt with the same bytes (as after a change to the merge code) stops there: its wall time
    # goes to a file nothing depends on, so its evaluation and the release do not rerun
    assert _ran(run_dvc(scratch_repo, "repro", "-f", "-s", "merge@mk_linear").stdout) == {"merge@mk_linear"}
    assert json.loads((scratch_repo / paths.merge_run_stats("mk_linear")).read_text())["merge.wall_s"] > 0
    assert "merge.wall_s" not in json.loads((scratch_repo / paths.merge_metrics("mk_linear")).read_text())
    assert _would_run(scratch_repo) == set()

    # one scenario's target: the persona data and what depends on it, never the agentic side (the persona
    # spec also defines the scorer and gates every evaluation uses, so those rerun)
    spec = scratch_repo / "specs" / "taskmaster_persona.yaml"
    spec.write_text(spec.read_text().replace("target_count: 25", "target_count: 26", 1))
    evaluations = {s for s in stages if s.startswith("evaluate_")}
    assert _would_run(scratch_repo) == {"build_persona_dataset", "build_eval_suites", "train_adapter@task_api_persona",
                                        "build_draft", *evaluations, "package_release"}
    spec.write_text(spec.read_text().replace("target_count: 26", "target_count: 25", 1))

    # one adapter's training knob: that adapter only (and the comparison table, which lists the params)
    params = scratch_repo / "params.yaml"
    text = params.read_text()
    data = yaml.safe_load(text)
    data["train"]["adapters"]["task_api_agentic"]["overrides"]["epochs"] = 2
    params.write_text(yaml.safe_dump(data, sort_keys=False))
    assert _would_run(scratch_repo) == {"train_adapter@task_api_agentic", "compare_candidates"}
    params.write_text(text)

    # a base parameter: prepare_base. `--dry` cannot list the training stages yet: they depend on the
    # content of data/base, which DVC compares only once prepare_base has rebuilt it.
    params.write_text(text.replace("dtype: float32", "dtype: bfloat16"))
    assert _would_run(scratch_repo) == {"prepare_base"}
    params.write_text(text)

    analysis = json.loads((scratch_repo / paths.ANALYSIS_JSON).read_text())
    assert analysis["decision"]["method"] in ("ties", "dare_ties") and analysis["decision"]["reasons"]
    assert (scratch_repo / paths.heatmap("sign_conflict_rate")).read_bytes()[:4] == b"\x89PNG"
    merged = scratch_repo / paths.merge_dir("mk_linear")
    assert (merged / "model.safetensors").is_file() and (merged / "mergekit_config.yml").is_file()
    assert (scratch_repo / paths.merge_dir("lora_cat") / "adapter_model.safetensors").is_file()

    results = json.loads((scratch_repo / "data/evaluation/merges/mk_linear/EVALUATION_RESULTS.json").read_text())
    assert results["gates"] and all(g["status"] in ("PASS", "FAIL", "not applicable") for g in results["gates"])
    assert "mk_linear" in (scratch_repo / "data/evaluation/COMPARISON.md").read_text()

    selection = json.loads((scratch_repo / paths.SELECTION_JSON).read_text())
    release = scratch_repo / "releases" / "task-api-unified-v1.0.0"
    assert selection["selected"] in candidates and verify(release) == []
    meta = json.loads((release / "merge_metadata.json").read_text())
    assert meta["merge"]["candidate"] == selection["selected"] and meta["status"] == selection["status"]
    readme = (release / "README.md").read_text()
    assert f"| Boundary violations | {meta['boundary_violations']} |" in readme and selection["status"] in readme
    assert verify(scratch_repo / "releases" / "taskmaster-persona-adapter-v1.0.0") == []

    # a merge experiment: that candidate alone reruns, with selection and release (under a new version:
    # the selected candidate may be the one that changed, and a release folder is never overwritten)
    exp = run_dvc(scratch_repo, "exp", "run", "-S", "merge.candidates.lora_cat.weights.task_api_persona=0.7",
                  "-S", "release.version=1.0.1")
    assert _ran(exp.stdout) == {"merge@lora_cat", "evaluate_merge@lora_cat", "compare_candidates", "select_release",
                                "package_release"}
    shown = json.loads(run_dvc(scratch_repo, "exp", "show", "--json").stdout)
    assert "0.7" in json.dumps(shown)
    assert verify(scratch_repo / "releases" / "task-api-unified-v1.0.1") == [] and verify(release) == []

    # the merge search: one variant is one experiment of its merge and evaluation, ranked beside the
    # candidates of params.yaml, and the workspace is left as it was
    env = git_env()
    subprocess.run(["git", "add", "-A"], cwd=scratch_repo, check=True, env=env)
    subprocess.run(["git", "commit", "-qm", "after the experiment"], cwd=scratch_repo, check=True, env=env)
    grid, report_file = tmp_path / "grid.yaml", tmp_path / "search.json"
    grid.write_text("variants:\n  mk_linear_b: {method: linear, weights: {task_api_persona: 0.5, task_api_agentic: 0.5}}\n")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["DVC_SITE_CACHE_DIR"] = str(scratch_repo / ".dvc" / "site-cache")
    proc = subprocess.run([sys.executable, "-m", "fteforge.cli", "merge-search", str(grid), "--out", str(report_file)],
                          cwd=scratch_repo, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(report_file.read_text())
    assert {r["candidate"] for r in report["ranking"]} == {"mk_linear_b", *candidates}
    assert report["runs"][0]["headline"]["persona"] is not None and "mk_linear_b" in proc.stdout
    assert report["runs"][0]["candidate"]["weights"] == {"task_api_persona": 0.5, "task_api_agentic": 0.5}
    assert "search-mk_linear_b" in run_dvc(scratch_repo, "exp", "list").stdout
    assert not (scratch_repo / paths.merge_dir("mk_linear_b")).exists()
    status = subprocess.run(["git", "status", "--porcelain"], cwd=scratch_repo, capture_output=True, text=True).stdout
    assert status == "" and _would_run(scratch_repo) == set()
    # run again (an interrupted search resumed): the variant's experiment is read back, not rerun
    again = subprocess.run([sys.executable, "-m", "fteforge.cli", "merge-search", str(grid), "--out", str(report_file)],
                           cwd=scratch_repo, env=env, capture_output=True, text=True)
    assert again.returncode == 0 and "exists on HEAD, read" in again.stdout + again.stderr, again.stdout + again.stderr
    assert json.loads(report_file.read_text())["ranking"] == report["ranking"]


def test_bad_params_fail_the_stage_without_output(scratch_repo: Path) -> None:
    params = scratch_repo / "params.yaml"
    params.write_text(params.read_text().replace("source: gguf_package", "source: local"))
    proc = run_dvc(scratch_repo, "repro", check=False)
    assert proc.returncode != 0
    assert "source: local needs local_path" in proc.stdout + proc.stderr
    assert not (scratch_repo / paths.BASE_DIR).exists()
