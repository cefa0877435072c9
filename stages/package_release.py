"""Stage package_release: the selected candidate and the persona adapter become immutable release folders.

Inputs:  data/release/selection.json, data/merges/<selected>, data/base, data/adapters/*, the evaluation
         results, specs/, params.yaml `release:`
Outputs: releases/<release.name>-v<release.version>/ (merged model, README model card, merge_metadata.json,
         PERSONA_SPEC.md, EVALUATION_RESULTS.json, examples/, SHA256SUMS) and
         releases/<release.persona_name>-v<release.version>/ (the persona adapter alone)
Run:     dvc repro package_release
A version folder is never overwritten: the same inputs leave it as it is, different content stops the
stage and asks for a new release.version.
"""

from __future__ import annotations

import json
import sys

from fteforge import paths
from fteforge.cli import run_stage
from fteforge.console import console, quiet_libraries, stage
from fteforge.errors import FteforgeError
from fteforge.params import ReleaseParams, load_params
from fteforge.specs import load_spec_set


def main() -> None:
    quiet_libraries()
    from fteforge.evaluation.pipeline import read_results
    from fteforge.release.package import build_release, fill_persona_release, fill_unified_release

    params = load_params("release", ReleaseParams)
    specs = load_spec_set(paths.SPECS)
    if not paths.SELECTION_JSON.is_file():
        raise FteforgeError(f"{paths.SELECTION_JSON}: not found - run `dvc repro select_release` first")
    selection = json.loads(paths.SELECTION_JSON.read_text())
    candidate = selection["selected"]
    read_results(paths.merge_model_id(candidate), "package_release")  # a clear error when it is missing
    fingerprint = json.loads(paths.BASE_FINGERPRINT.read_text())
    unified = paths.release_dir(params.folder_name())
    persona = paths.release_dir(params.folder_name(params.persona_name))
    persona_adapter = specs.persona.adapter
    with stage(f"package release {unified.name}") as step:
        outcome = build_release(unified, lambda work: fill_unified_release(
            work, specs=specs, params=params, selection=selection, candidate_dir=paths.merge_dir(candidate),
            merge_info=json.loads(paths.merge_metrics(candidate).read_text()),
            results_file=paths.evaluation_results(paths.merge_model_id(candidate)), base_dir=paths.BASE_DIR,
            base_fingerprint=fingerprint, adapters_root=paths.ADAPTERS_DIR, release_path=unified.as_posix(),
            draft_table=paths.DRAFT_TABLE if paths.DRAFT_TABLE.is_file() else None, progress=step))
        step(f"{unified}: {outcome}")
        persona_outcome = build_release(persona, lambda work: fill_persona_release(
            work, specs=specs, params=params, adapter_dir=paths.adapter_dir(persona_adapter),
            results_file=paths.evaluation_results(paths.adapter_model_id(persona_adapter)),
            train_metrics=json.loads(paths.train_metrics(persona_adapter).read_text()), base_dir=paths.BASE_DIR,
            base_fingerprint=fingerprint, release_path=persona.as_posix(), progress=step))
        step(f"{persona}: {persona_outcome}")
    size = sum(p.stat().st_size for p in unified.rglob("*") if p.is_file()) / 1e6
    console.print(f"{unified} ({outcome}, {size:.0f} MB, {selection['status']}: {candidate}); "
                  f"{persona} ({persona_outcome})", markup=False)


if __name__ == "__main__":
    sys.exit(run_stage(main))
