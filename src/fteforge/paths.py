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
