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
DRAFT_TABLE = DATA / "draft" / "ngrams.json"
DRAFT_STATS = DATA / "metrics" / "draft.json"
ADAPTERS_DIR = DATA / "adapters"
CHECKPOINTS = Path(".cache") / "checkpoints"


def adapter_dir(adapter: str) -> Path:
    return ADAPTERS_DIR / adapter


def train_metrics(adapter: str) -> Path:
    return DATA / "metrics" / f"train_{adapter}.json"


def train_logs(adapter: str) -> Path:
    return DATA / "train_logs" / adapter


ANALYSIS_DIR = DATA / "analysis"
ANALYSIS_JSON = ANALYSIS_DIR / "analysis.json"
ANALYSIS_MD = ANALYSIS_DIR / "ANALYSIS.md"
STRATEGY_DECISION = ANALYSIS_DIR / "strategy.json"
ANALYSIS_METRICS = DATA / "metrics" / "analysis.json"
MERGES_DIR = DATA / "merges"
# mergekit's base+adapter merges, keyed by content (see merging/engines/mergekit_engine.py)
LORA_MERGE_CACHE = Path(".cache") / "mergekit-lora"
# merge-search's validation-draw results, keyed by what they were computed from (merging/validation.py)
VALIDATION_CACHE = Path(".cache") / "validation"


def heatmap(metric: str) -> Path:
    return ANALYSIS_DIR / f"heatmap_{metric}.png"


def merge_dir(candidate: str) -> Path:
    return MERGES_DIR / candidate


def merge_metrics(candidate: str) -> Path:
    """What the merge made (method, weights, size, update density): a dep of the candidate's evaluation."""
    return DATA / "metrics" / f"merge_{candidate}.json"


def merge_run_stats(candidate: str) -> Path:
    """How the run went (wall time, peak RSS): kept apart so a byte-identical rebuild reruns nothing after it."""
    return DATA / "run_stats" / f"merge_{candidate}.json"

EVALUATION_DIR = DATA / "evaluation"
EVAL_BASE = "base"  # model ids: "base", "adapters/<adapter>", "merges/<candidate>"
COMPARISON_MD = EVALUATION_DIR / "COMPARISON.md"
COMPARISON_JSON = EVALUATION_DIR / "COMPARISON.json"


def adapter_model_id(adapter: str) -> str:
    return f"adapters/{adapter}"


def merge_model_id(candidate: str) -> str:
    return f"merges/{candidate}"


def evaluation_results(model_id: str) -> Path:
    """data/evaluation/<model id>/EVALUATION_RESULTS.json: scores, gates, latency, failed cases."""
    return EVALUATION_DIR / model_id / "EVALUATION_RESULTS.json"


def evaluation_cases(model_id: str) -> Path:
    """Every case with every turn the model generated, the executed call and its result."""
    return EVALUATION_DIR / model_id / "cases.jsonl"


def eval_metrics(model_id: str) -> Path:
    """data/metrics/eval_<base|adapter_X|merge_X>.json: the flat headline numbers (`dvc exp show` columns)."""
    kind, _, name = model_id.partition("/")
    stem = f"{kind.removesuffix('s')}_{name}" if name else kind
    return DATA / "metrics" / f"eval_{stem}.json"


SELECTION_DIR = DATA / "release"
SELECTION_JSON = SELECTION_DIR / "selection.json"
SELECTION_MD = SELECTION_DIR / "SELECTION.md"
RELEASES_DIR = Path("releases")


def release_dir(folder_name: str) -> Path:
    """releases/<name>-v<version>: immutable once written (see release/package.py)."""
    return RELEASES_DIR / folder_name
