"""A validation draw for the merge search: `fteforge merge-search GRID.yaml --validation-seed 2000`.

Why: a search that ranks its variants on the held-out suites picks the variant that happens to fit
those 150 cases, and the score it then reports is inflated by the pick (measured: 1.18.1's v2_ties
scored 0.900 agentic on the suites it was picked on, 0.814 on a fresh draw). With a validation
seed the search ranks on a second draw of the same builders (new entities, dates and task lists),
and the held-out suites only report.

The draw shares the held-out templates and pools, so it is no stand-in for new phrasings; what it
must not share is a case. Every validation input that equals a held-out input is dropped (the
no-call requests have no entities to vary, so about a third repeat), and the training data is
checked for leaks as the pipeline's own suites are.

Every result on a draw is kept in `.cache/validation/`, keyed by the content of the model folder (and
of the base, the adapters and the references it is compared with), the draw's cases, the `evaluate`
params and the fteforge source. A search run again re-evaluated the base, both adapters and every
workspace candidate (~90 s each on 2 cores); now only what changed is evaluated.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from fteforge import paths
from fteforge.data.records import EvalCase
from fteforge.errors import FteforgeError
from fteforge.specs import SpecSet

# Gates on what the host measures, not the weights: every merge of one architecture serves alike, and
# the validation draw skips the timing runs.
HOST_GATE_PREFIXES = ("latency.", "memory.")


def validation_suites(specs: SpecSet, suite_params: Any, seed: int, train: list[Any],
                      held_out: Mapping[str, list[EvalCase]]) -> tuple[dict[str, list[EvalCase]], dict[str, Any]]:
    """The suites drawn with `seed`, less every case whose input is also a held-out input, and a report."""
    from fteforge.data.evalsuites import build_eval_suites

    if seed == suite_params.seed:
        raise FteforgeError(f"--validation-seed {seed} is params.yaml eval_suites.seed, the held-out suites themselves; "
                            "pick another seed (e.g. 2000)")
    drawn, report = build_eval_suites(specs, suite_params.model_copy(update={"seed": seed}), train)  # raises on leaks
    seen = {c.user_text for cases in held_out.values() for c in cases}
    suites = {kind: [c for c in cases if c.user_text not in seen] for kind, cases in drawn.items()}
    empty = [kind for kind, cases in suites.items() if not cases]
    if empty:
        raise FteforgeError(f"validation seed {seed}: every {', '.join(empty)} case repeats a held-out input; "
                            "raise eval_suites.*_cases or pick another seed")
    return suites, {
        "seed": seed, "cases": {k: len(v) for k, v in suites.items()},
        "dropped_as_held_out_repeats": {k: len(drawn[k]) - len(v) for k, v in suites.items()},
        "training_inputs_compared": report["training_inputs_compared"], "leaks": 0,
    }


def without_host_gates(results: dict[str, Any]) -> dict[str, Any]:
    """`results` with the latency and memory gates marked not applicable, and the summary recounted."""
    from fteforge.evaluation.report import gate_summary

    rows = [dict(r, status="not applicable", note="a host measurement, not taken on the validation draw")
            if r["metric"].startswith(HOST_GATE_PREFIXES) else r for r in results["gates"]]
    return {**results, "gates": rows, "gates_summary": gate_summary(rows)}


def _hash_files(h: Any, files: Iterable[Path], root: Path) -> None:
    from fteforge.models.base import sha256_file

    for f in sorted(files):
        h.update(f"{f.relative_to(root).as_posix()}\0{sha256_file(f)}\0".encode())


def folder_fingerprint(folder: Path) -> str:
    """sha256 over every file's relative path and content: two folders with equal bytes get one key."""
    h = hashlib.sha256()
    _hash_files(h, (f for f in Path(folder).rglob("*") if f.is_file()), Path(folder))
    return h.hexdigest()


def source_fingerprint() -> str:
    """The fteforge package's source: a change of scorer, decoding or report code is a new key."""
    package = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    _hash_files(h, (f for f in package.rglob("*") if f.is_file() and f.suffix in (".py", ".jinja")), package)
    return h.hexdigest()


class ResultsCache:
    """JSON results under `folder`, one file per key; written atomically, so a killed run leaves no half file."""

    def __init__(self, folder: Path, read: bool = True):
        self.folder, self.read = Path(folder), read

    def get(self, key: str) -> dict[str, Any] | None:
        if not self.read:
            return None
        f = self.folder / f"{key}.json"
        try:
            return json.loads(f.read_text())
        except (OSError, ValueError):
            return None

    def put(self, key: str, results: Mapping[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            json.dump(results, fh)
        os.replace(tmp, self.folder / f"{key}.json")


class ValidationDraw:
    """The base and the source adapters evaluated once on the validation suites; then any merge folder."""

    def __init__(self, seed: int, specs: SpecSet, *, root: Path = Path("."), cache: bool = True,
                 progress: Callable[[str], None] = lambda _: None):
        from fteforge.data.records import load_examples, load_suite
        from fteforge.params import EvalSuiteParams, EvaluateParams, load_params

        self.specs, self.root, self.progress = specs, Path(root), progress
        params_file = self.root / paths.PARAMS
        train = [e for kind, f in paths.DATASET_FILES.items()
                 for e in load_examples(self._need(f, f"build_{kind}_dataset"))]
        held_out = {k: load_suite(self._need(p, "build_eval_suites")) for k, p in paths.EVAL_SUITES.items()}
        suite_params = load_params("eval_suites", EvalSuiteParams, params_file)
        self.params = load_params("evaluate", EvaluateParams, params_file)
        suites, self.report = validation_suites(specs, suite_params, seed, train, held_out)
        # evaluate.max_cases trims the draw as it trims the held-out suites (a quick or test run)
        n = self.params.max_cases
        self.suites = {k: v[:n] if n else v for k, v in suites.items()}
        self.report["max_cases"] = n
        self.report["cases"] = {k: len(v) for k, v in self.suites.items()}
        self.cases = [c for cases in self.suites.values() for c in cases]
        # without the cache nothing is read, and what is measured replaces what was kept
        self.cache = ResultsCache(self.root / paths.VALIDATION_CACHE, read=cache)
        self.cache_hits: list[str] = []
        self._context = json.dumps({
            "cases": [c.model_dump(mode="json") for c in self.cases], "evaluate": self.params.model_dump(mode="json"),
            "specs": folder_fingerprint(self.root / paths.SPECS), "source": source_fingerprint()}, sort_keys=True)
        self._keys: dict[str, str] = {}
        self.base = self._evaluate(paths.EVAL_BASE, "base", self._need(paths.BASE_DIR, "prepare_base"))
        self.adapters = {a: self._evaluate(paths.adapter_model_id(a), "adapter",
                                           self._need(paths.adapter_dir(a), f"train_adapter@{a}"))
                         for a in specs.adapters}
        self.report["references"] = {"base": self.base["headline"],
                                     **{a: r["headline"] for a, r in self.adapters.items()}}

    def _need(self, rel: Path, stage: str) -> Path:
        path = self.root / rel
        if not path.exists():
            raise FteforgeError(f"{path}: not found - the validation draw needs it; run `dvc repro {stage}` first")
        return path

    def _evaluate(self, model_id: str, role: str, folder: Path,
                  merge_info: Mapping[str, Any] | None = None) -> dict[str, Any]:
        from fteforge.evaluation.report import build_results, case_scores
        from fteforge.evaluation.runner import evaluate_model, persona_case_scores, win_rate

        # what the results depend on: this folder, the draw, and the references it is compared with
        refs = [] if role == "base" else [self._keys[paths.EVAL_BASE]]
        if role == "merge":
            refs += [self._keys[paths.adapter_model_id(a)] for a in self.adapters]
        key = hashlib.sha256(json.dumps([self._context, role, model_id, folder_fingerprint(folder), refs,
                                         merge_info], sort_keys=True, default=str).encode()).hexdigest()[:32]
        self._keys[model_id] = key
        cached = self.cache.get(key)
        if cached is not None:
            self.cache_hits.append(model_id)
            self.progress(f"validation {model_id}: read from {paths.VALIDATION_CACHE}")
            return cached
        ev = evaluate_model(folder, self.cases, self.specs, self.params, latency=False,
                            base_dir=None if role == "base" else self.root / paths.BASE_DIR,
                            progress=lambda m: self.progress(f"validation {model_id}: {m}"))
        ab = None
        if role != "base":
            ab = win_rate(persona_case_scores(ev.records), case_scores(self.base),
                          self.params.bootstrap_samples, self.params.seed)
        suites = {k: {"validation_seed": self.report["seed"], "cases": len(v)} for k, v in self.suites.items()}
        results = build_results(model_id, role, ev, self.specs, suites=suites, ab=ab,
                                base_results=None if role == "base" else self.base,
                                adapter_results=self.adapters if role == "merge" else None, merge_info=merge_info)
        results = without_host_gates(results)
        self.cache.put(key, results)
        return results

    def evaluate_merge(self, candidate: str) -> dict[str, Any]:
        """EVALUATION_RESULTS of the candidate's merge folder in the workspace, on the validation draw."""
        folder = self._need(paths.merge_dir(candidate), f"merge@{candidate}")
        info_file = self.root / paths.merge_metrics(candidate)
        info = json.loads(info_file.read_text()) if info_file.is_file() else None
        return self._evaluate(paths.merge_model_id(candidate), "merge", folder, info)
