"""A search over merge parameters that ranks by the gates: `fteforge merge-search GRID.yaml`.

Each variant of the grid is one `dvc exp run` that adds the variant as a merge candidate and builds
only its merge and evaluation (`evaluate_merge@<variant>`, about 5 minutes for SmolLM2 on 2 cores),
so every try is kept in `dvc exp show` with its params and metrics. Variants are ranked by the
unified spec's own selection rule (passing first, then fewer failed gates, then the rank metric),
the rule `select_release` applies, so the search favours what the release step would pick.

Why experiments and not the alternatives:
- a search stage inside dvc.yaml would make every `dvc repro` pay for every variant;
- `dvc exp run --queue` runs each experiment in a fresh copy of the repository that must first
  materialise the base model and both adapters (about 1 GB on SmolLM2) - for no gain on a 2-core
  machine, where experiments run one at a time anyway.

The workspace is used in place, so the search refuses to start when params.yaml or dvc.lock has
uncommitted edits; after each variant it restores every file the experiment changed (params.yaml,
dvc.lock, DVC's .gitignore entries) and removes the variant's outputs: the experiment commit and the
DVC cache keep them.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from fteforge import paths
from fteforge.errors import FteforgeError

EXP_PREFIX = "search-"
_BARE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


def override_value(value: Any) -> str:
    """`value` in the override grammar of `dvc exp run -S key=value` (Hydra's): flow style, bare keys."""
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {override_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(override_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value)
    if _BARE.fullmatch(text) and text.lower() not in ("true", "false", "null"):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def load_grid(path: Path, existing: Mapping[str, Any]) -> dict[str, Any]:
    """The grid's variants (name -> validated MergeCandidate); names must be new candidate names."""
    from pydantic import ValidationError

    from fteforge.params import MergeCandidate, MergeParams

    path = Path(path)
    if not path.is_file():
        raise FteforgeError(f"{path}: no such grid file (a YAML mapping `variants: {{name: candidate}}`)")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict) or set(data) != {"variants"} or not isinstance(data["variants"], dict) \
            or not data["variants"]:
        raise FteforgeError(f"{path}: expected one top-level key `variants:` mapping names to merge candidates, "
                            f"each written like an entry of params.yaml merge.candidates")
    variants = {}
    for name, body in data["variants"].items():
        if name in existing:
            raise FteforgeError(f"{path}: variants.{name}: params.yaml already has a merge candidate {name!r}; "
                                f"give the variant a new name (the search adds it beside the others)")
        try:
            MergeParams.model_validate({"seed": 0, "threads": 1, "candidates": {name: body}})
            variants[name] = MergeCandidate.model_validate(body)
        except ValidationError as err:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
            raise FteforgeError(f"{path}: variants.{name}: {problems}") from None
    return variants


def experiment_command(name: str, candidate: Any, dvc: str = "dvc") -> list[str]:
    """The `dvc exp run` that merges and evaluates one variant, and nothing after its evaluation."""
    return [dvc, "exp", "run", "-n", f"{EXP_PREFIX}{name}", *candidate_overrides(name, candidate),
            f"evaluate_merge@{name}"]


def candidate_overrides(name: str, candidate: Any) -> list[str]:
    """The `-S` arguments that add `candidate` as merge.candidates.<name>."""
    body = candidate.model_dump(by_alias=True, exclude_none=True, exclude_defaults=False)
    return ["-S", f"++merge.candidates.{name}={override_value(body)}"]


def variant_outputs(name: str) -> list[Path]:
    """What one variant's merge and evaluation leave in the workspace."""
    return [paths.merge_dir(name), paths.merge_metrics(name), paths.merge_run_stats(name),
            paths.evaluation_results(paths.merge_model_id(name)).parent, paths.eval_metrics(paths.merge_model_id(name))]


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout


def changed_files(repo: Path) -> set[str]:
    """Paths git sees as modified, added or untracked (ignored outputs are not listed)."""
    return {line[3:].strip('"') for line in _git(repo, "status", "--porcelain", "-uall").splitlines()}


def restore(repo: Path, before: set[str]) -> None:
    """Undo what an experiment left in the working tree: params.yaml, dvc.lock, DVC's .gitignore entries,
    new metrics files. Paths that were already changed before the search are left alone."""
    for rel in sorted(changed_files(repo) - before):
        if _git(repo, "ls-tree", "--name-only", "HEAD", "--", rel).strip():
            _git(repo, "checkout", "-q", "HEAD", "--", rel)
        else:
            _git(repo, "rm", "-q", "--cached", "--ignore-unmatch", "--", rel)
            (repo / rel).unlink(missing_ok=True)


def reset_workspace(repo: Path, before: set[str], name: str) -> None:
    """Undo an experiment's edits (`restore`) and remove variant `name`'s outputs from the workspace."""
    restore(repo, before)
    for p in variant_outputs(name):
        target = repo / p
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()


def existing_results(repo: Path, name: str, baseline: str) -> dict[str, Any] | None:
    """The results of experiment search-<name> on `baseline`, when it already ran (a resumed search)."""
    sha = _git(repo, "rev-parse", "--verify", f"{baseline}^{{commit}}").strip()
    ref = f"refs/exps/{sha[:2]}/{sha[2:]}/{EXP_PREFIX}{name}"
    if not _git(repo, "for-each-ref", ref).strip():
        return None
    rel = paths.evaluation_results(paths.merge_model_id(name)).as_posix()
    proc = subprocess.run(["git", "show", f"{ref}:{rel}"], cwd=repo, capture_output=True, text=True)
    return json.loads(proc.stdout) if proc.returncode == 0 else None


def run_variant(repo: Path, name: str, candidate: Any, dvc: str = "dvc",
                validate: Callable[[str], dict[str, Any]] | None = None) -> dict[str, Any]:
    """One experiment: merge + evaluate the variant, read its results, reset the workspace.

    `validate(name)` runs while the variant's merge is still in the workspace (the validation draw)."""
    start = time.perf_counter()
    before = changed_files(repo)
    cmd = experiment_command(name, candidate, dvc)
    cmd.insert(3, "-q")  # after `dvc exp run`: the report keeps the output, the terminal does not need it
    validation = None
    try:
        proc = subprocess.run(cmd, cwd=repo, capture_output=True, text=True)
        results_file = repo / paths.evaluation_results(paths.merge_model_id(name))
        results = json.loads(results_file.read_text()) if proc.returncode == 0 and results_file.is_file() else None
        if results is not None and validate is not None:
            validation = validate(name)
    finally:
        reset_workspace(repo, before, name)
    return {"name": name, "experiment": f"{EXP_PREFIX}{name}", "returncode": proc.returncode,
            "wall_s": round(time.perf_counter() - start, 1), "results": results, "validation": validation,
            "error": None if results is not None else (proc.stderr or proc.stdout)[-2000:]}


def validate_experiment(repo: Path, name: str, validate: Callable[[str], dict[str, Any]],
                        dvc: str = "dvc") -> dict[str, Any] | None:
    """`validate(name)` on the merge of an existing experiment search-<name> (a resumed search).

    The experiment's outputs come back into the workspace with `dvc exp apply` (from the DVC cache, no
    rerun); afterwards `reset_workspace` puts the workspace back, as after `run_variant`. None when the apply fails (the
    experiment's outputs are no longer in the cache, say): the variant is then listed, not ranked.
    """
    before = changed_files(repo)
    try:
        proc = subprocess.run([dvc, "exp", "apply", "-q", f"{EXP_PREFIX}{name}"], cwd=repo, capture_output=True,
                              text=True)
        if proc.returncode != 0 or not (repo / paths.merge_dir(name)).exists():
            return None
        return validate(name)
    finally:
        reset_workspace(repo, before, name)


def rank_variants(runs: list[dict[str, Any]], rule: Any,
                  reference: Mapping[str, Mapping[str, Any]] | None = None, *,
                  on: str = "results") -> list[dict[str, Any]]:
    """Rows of every variant that evaluated, plus the reference candidates, best first by the selection rule.

    `on` names the results each run is ranked by: "results" (the held-out suites) or "validation" (the
    validation draw, when the search had one; `reference` then holds the references' validation results).
    A row ranked on validation keeps the held-out headline beside it, for the report only."""
    from fteforge.release.selection import candidate_row, rank

    rows = []
    for r in runs:
        if r.get(on):
            row = {**candidate_row(r["name"], r[on], rule), "source": "search"}
            if on != "results":
                row["held_out_headline"] = dict(r["results"]["headline"])
            rows.append(row)
    for n, res in (reference or {}).items():
        row = {**candidate_row(n, res[on] if on != "results" else res, rule), "source": "workspace"}
        if on != "results":
            row["held_out_headline"] = dict(res["results"]["headline"])
        rows.append(row)
    return rank(rows, rule)


def search(repo: Path, grid: Path, *, dvc: str = "dvc", dry_run: bool = False, baseline: str = "HEAD",
           validation_seed: int | None = None, validation_cache: bool = True,
           progress: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Run every variant of `grid`; return the report (ranked rows, per-variant runs, the commands).

    A variant whose experiment already exists on `baseline` (an interrupted search, run again) is read
    from that experiment instead of rerun; DVC would refuse the duplicate name anyway. With
    `validation_seed`, every variant and every workspace candidate is also evaluated on that draw of the
    suites (fteforge.merging.validation) and ranked by it; a reused experiment's merge is brought back
    from the DVC cache for that (`validate_experiment`) when `baseline` is the checked-out commit, and is
    listed without a rank otherwise.
    """
    from fteforge.params import MergeParams, load_params
    from fteforge.specs import load_spec_set

    repo = Path(repo)
    merge = load_params("merge", MergeParams, repo / "params.yaml")
    variants = load_grid(grid, merge.candidates)
    commands = {n: shlex.join(experiment_command(n, c, dvc)) for n, c in variants.items()}
    if dry_run:
        return {"grid": str(grid), "commands": commands, "runs": [], "ranking": []}
    done = {n: existing_results(repo, n, baseline) for n in variants}
    # a reused experiment is validated by applying it to the workspace, which only matches HEAD's outputs
    reapply = validation_seed is not None and any(done.values()) and \
        _git(repo, "rev-parse", f"{baseline}^{{commit}}") == _git(repo, "rev-parse", "HEAD^{commit}")
    dirty = {"params.yaml", "dvc.lock"} & changed_files(repo)
    if dirty and (not all(done.values()) or reapply):
        raise FteforgeError(f"{', '.join(sorted(dirty))} in {repo} has uncommitted edits; the search resets both after "
                            f"each variant. Commit them (or `git stash`) first")
    specs = load_spec_set(repo / paths.SPECS)
    rule = specs.unified.selection
    draw = None
    if validation_seed is not None:
        from fteforge.merging.validation import ValidationDraw

        progress(f"validation draw (eval seed {validation_seed}): the base and the adapters")
        draw = ValidationDraw(validation_seed, specs, root=repo, cache=validation_cache, progress=progress)
    runs = []
    for i, (name, candidate) in enumerate(variants.items(), 1):
        if done[name] is not None:
            progress(f"[{i}/{len(variants)}] {name}: experiment {EXP_PREFIX}{name} exists on {baseline}, read")
            validation = None
            if draw is not None and reapply:
                progress(f"[{i}/{len(variants)}] {name}: its merge on the validation draw")
                validation = validate_experiment(repo, name, draw.evaluate_merge, dvc)
            runs.append({"name": name, "experiment": f"{EXP_PREFIX}{name}", "returncode": 0, "wall_s": None,
                         "results": done[name], "validation": validation, "error": None, "reused": True})
            continue
        progress(f"[{i}/{len(variants)}] {name}: merge + evaluation")
        runs.append(run_variant(repo, name, candidate, dvc=dvc, validate=draw.evaluate_merge if draw else None))
    for run in runs:  # what each variant was, beside what it scored
        run["candidate"] = variants[run["name"]].model_dump(by_alias=True, exclude_none=True)
    reference: dict[str, Any] = {}
    for name in merge.candidates:
        f = repo / paths.evaluation_results(paths.merge_model_id(name))
        if f.is_file():
            held_out = json.loads(f.read_text())
            if draw is None:
                reference[name] = held_out
            elif (repo / paths.merge_dir(name)).exists():
                progress(f"{name}: the workspace candidate on the validation draw")
                reference[name] = {"results": held_out, "validation": draw.evaluate_merge(name)}
    ranking = rank_variants(runs, rule, reference, on="validation" if draw else "results")
    for r in runs:  # the report keeps the headlines, not the whole results files (those live in the experiment)
        r["headline"] = r["results"]["headline"] if r["results"] else None
        r.pop("results")
        if draw is not None:
            v = r.pop("validation", None)
            r["validation_headline"] = v["headline"] if v else None
            r["validation_failed_gates"] = v["gates_summary"]["failed_metrics"] if v else None
        else:
            r.pop("validation", None)
    if draw is not None:
        draw.report["read_from_cache"] = list(draw.cache_hits)
    baseline_sha = _git(repo, "rev-parse", "--short", baseline).strip()
    return {"grid": str(grid), "baseline": baseline_sha, "rule": rule.model_dump(), "commands": commands,
            "ranked_on": f"validation draw (eval seed {validation_seed})" if draw else "held-out suites",
            "validation": draw.report if draw else None, "runs": runs, "ranking": ranking}


def render_table(report: Mapping[str, Any]) -> str:
    validated = report.get("validation") is not None
    lines = [f"Ranked on the {report.get('ranked_on', 'held-out suites')}."
             + (" Held-out scores are for the report only." if validated else ""), "",
             "| rank | candidate | source | persona | agentic | combined | gates failed | failed |"
             + (" held-out persona / agentic / combined |" if validated else ""),
             "|---:|---|---|---:|---:|---:|---:|---|" + ("---:|" if validated else "")]
    fmt = lambda v, d: "-" if v is None else f"{v:.{d}f}"  # noqa: E731
    for i, r in enumerate(report["ranking"], 1):
        h = r["headline"]
        line = (f"| {i} | {r['candidate']} | {r['source']} | {fmt(h.get('persona'), 2)} | "
                f"{fmt(h.get('agentic'), 3)} | {fmt(h.get('combined'), 3)} | {r['gates_failed']} | "
                f"{', '.join(g['metric'] for g in r['failed_gates'])} |")
        if validated:
            t = r.get("held_out_headline") or {}
            line += f" {fmt(t.get('persona'), 2)} / {fmt(t.get('agentic'), 3)} / {fmt(t.get('combined'), 3)} |"
        lines.append(line)
    failed = [r for r in report["runs"] if r["headline"] is None]
    for r in failed:
        lines.append(f"\n{r['name']}: the experiment failed (exit {r['returncode']}):\n{r['error']}")
    return "\n".join(lines) + "\n"
