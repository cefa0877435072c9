"""params.yaml: every shipped section validates, and the convenience forms parse as documented."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fteforge.errors import ParamsError
from fteforge.params import (
    AgenticDataParams,
    AnalysisParams,
    BaseParams,
    EvalSuiteParams,
    LoraParams,
    MergeParams,
    PersonaDataParams,
    TrainParams,
    load_params,
)

REPO = Path(__file__).resolve().parents[1]
SECTIONS = {"base": BaseParams, "persona_data": PersonaDataParams, "agentic_data": AgenticDataParams,
            "eval_suites": EvalSuiteParams, "train": TrainParams, "analysis": AnalysisParams, "merge": MergeParams}


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_shipped_params_validate(section: str) -> None:
    load_params(section, SECTIONS[section], REPO / "params.yaml")


def test_every_adapter_override_is_a_valid_knob() -> None:
    train = load_params("train", TrainParams, REPO / "params.yaml")
    for name in train.adapters:
        train.knobs_for(name)


def test_layer_range_and_its_error() -> None:
    base = {"r": 8, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj"]}
    assert LoraParams.model_validate({**base, "layers": "10-12"}).layers == [10, 11, 12]
    assert LoraParams.model_validate({**base, "layers": [3, 5]}).layers == [3, 5]
    with pytest.raises(ValueError, match="not a range like '10-29'"):
        LoraParams.model_validate({**base, "layers": "12-10"})


def test_bad_override_names_the_adapter_and_field(tmp_path: Path) -> None:
    data = yaml.safe_load((REPO / "params.yaml").read_text())
    data["train"]["adapters"]["task_api_persona"]["overrides"] = {"learning_rat": 1e-3}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    train = load_params("train", TrainParams, path)
    with pytest.raises(ParamsError, match=r"task_api_persona.*learning_rat.*learning_rate"):
        train.knobs_for("task_api_persona")
