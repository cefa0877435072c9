"""The DVC pipeline: dvc.yaml agrees with fteforge.paths, and `dvc repro` runs end to end in a clone."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from fteforge import paths
from tests.conftest import run_dvc

REPO = Path(__file__).resolve().parents[1]


def _stages() -> dict:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def test_dvc_outs_match_paths_module() -> None:
    declared = {str(o) if isinstance(o, str) else next(iter(o)) for s in _stages().values() for o in s.get("outs", [])}
    assert str(paths.BASE_DIR) in declared


def test_each_stage_script_is_a_dep_of_its_own_stage() -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for name, stage in _stages().items():
        script = f"stages/{name}.py"
        assert (REPO / script).is_file(), f"stage {name} has no script {script}"
        assert stage["cmd"].startswith(f"python {script}")
        assert script in stage["deps"], f"{script} must be a dep of stage {name}"
        for key in stage.get("params", []):
            key = key if isinstance(key, str) else next(iter(key))
            assert key.split(".")[0] in params, f"stage {name} names missing params key {key}"


def test_dvc_analytics_off_in_repo_config() -> None:
    assert "analytics = false" in (REPO / ".dvc" / "config").read_text()


def test_dvc_repro_end_to_end(scratch_repo: Path, smollm2_base: Path) -> None:
    """A clone runs `dvc repro` with the real SmolLM2 GGUF, then a no-op, then a base-param change."""
    first = run_dvc(scratch_repo, "repro")
    assert "Running stage 'prepare_base'" in first.stdout
    built = json.loads((scratch_repo / paths.BASE_FINGERPRINT).read_text())
    # the same source built twice gives identical weights: later stages key on this hash
    assert built == json.loads((smollm2_base / "fingerprint.json").read_text())

    again = run_dvc(scratch_repo, "repro")
    assert "Running stage" not in again.stdout

    status = run_dvc(scratch_repo, "status")
    assert "up to date" in status.stdout.lower()

    params = scratch_repo / "params.yaml"
    params.write_text(params.read_text().replace("dtype: float32", "dtype: bfloat16"))
    changed = run_dvc(scratch_repo, "repro")
    assert "Running stage 'prepare_base'" in changed.stdout
    assert json.loads((scratch_repo / paths.BASE_FINGERPRINT).read_text())["dtype"] == "bfloat16"


def test_bad_params_fail_the_stage_without_output(scratch_repo: Path) -> None:
    params = scratch_repo / "params.yaml"
    params.write_text(params.read_text().replace("source: gguf_package", "source: local"))
    proc = run_dvc(scratch_repo, "repro", check=False)
    assert proc.returncode != 0
    assert "source: local needs local_path" in proc.stdout + proc.stderr
    assert not (scratch_repo / paths.BASE_DIR).exists()
