"""Every output path of the pipeline, built in one place.

Stage scripts and the library take paths from here; `tests/test_dvc_pipeline.py` checks that
`dvc.yaml` declares the same ones, so the two cannot drift apart.
"""

from __future__ import annotations

from pathlib import Path

SPECS = Path("specs")
PARAMS = Path("params.yaml")
DATA = Path("data")

BASE_DIR = DATA / "base"
BASE_FINGERPRINT = BASE_DIR / "fingerprint.json"

PERSONA_DATA_DIR = DATA / "persona"
PERSONA_TRAIN = PERSONA_DATA_DIR / "train.jsonl"
PERSONA_REJECTED = PERSONA_DATA_DIR / "rejected.jsonl"
PERSONA_CARD = PERSONA_DATA_DIR / "DATASET_CARD.md"
PERSONA_REVIEW = PERSONA_DATA_DIR / "review_sample.md"
PERSONA_STATS = DATA / "metrics" / "persona_data.json"

AGENTIC_DATA_DIR = DATA / "agentic"
AGENTIC_TRAIN = AGENTIC_DATA_DIR / "train.jsonl"
AGENTIC_CARD = AGENTIC_DATA_DIR / "DATASET_CARD.md"
AGENTIC_STATS = DATA / "metrics" / "agentic_data.json"

EVAL_DIR = DATA / "eval"
EVAL_SUITES = {kind: EVAL_DIR / f"{kind}.jsonl" for kind in ("persona", "agentic", "combined")}
EVAL_SUITE_STATS = DATA / "metrics" / "eval_suites.json"

DATASET_FILES = {"persona": PERSONA_TRAIN, "agentic": AGENTIC_TRAIN}
ADAPTERS_DIR = DATA / "adapters"
CHECKPOINTS = Path(".cache") / "checkpoints"


def adapter_dir(adapter: str) -> Path:
    return ADAPTERS_DIR / adapter


def train_metrics(adapter: str) -> Path:
    return DATA / "metrics" / f"train_{adapter}.json"


def train_logs(adapter: str) -> Path:
    return DATA / "train_logs" / adapter
