"""The main job's wall clock: a full default `dvc repro` from a clean clone, a no-op, a one-candidate change.

    .venv/bin/python bench/main_job.py [--candidate v1_ties] [--out bench/results/main_job.json] [--export-to .]

Clones the current commit into a temporary folder (the environment is this checkout's .venv, so the
timing starts from "environment installed"), runs `dvc repro`, times every stage from the streamed
output, compares every output's md5 with the checkout's dvc.lock (what the rebuild reproduced bit for
bit), then a second `dvc repro` (the no-op), then changes one merge candidate's weight and lists what
`dvc repro --dry` would rerun and times the real rerun. Results go to JSON after every step.
`--export-to REPO` copies the full build (dvc.lock, data/, releases/, the DVC cache) into REPO right
after the full run, so the measured build is also the one that checkout commits.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
STAGE_RE = re.compile(r"^Running stage '([^']+)'")


def timed_repro(repo: Path, env: dict[str, str], *args: str) -> dict:
    """`dvc repro ARGS`, with the seconds each stage ran (from one 'Running stage' line to the next)."""
    start = time.perf_counter()
    proc = subprocess.Popen([str(REPO / ".venv" / "bin" / "dvc"), "repro", *args], cwd=repo, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    stages: dict[str, float] = {}
    current, began = None, start
    tail: list[str] = []
    for line in proc.stdout:
        tail = (tail + [line.rstrip()])[-40:]
        m = STAGE_RE.match(line)
        if m:
            now = time.perf_counter()
            if current:
                stages[current] = round(now - began, 1)
            current, began = m.group(1), now
            print(f"[{now - start:7.1f}s] {current}", flush=True)
    rc = proc.wait()
    end = time.perf_counter()
    if current:
        stages[current] = round(end - began, 1)
    if rc != 0:
        raise SystemExit(f"dvc repro {' '.join(args)} failed (exit {rc}):\n" + "\n".join(tail))
    return {"wall_s": round(end - start, 1), "stages_s": stages}


def export(clone: Path, target: Path) -> None:
    for rel in ("data", "releases", ".dvc/cache"):
        if (clone / rel).exists():
            shutil.copytree(clone / rel, target / rel, symlinks=True, dirs_exist_ok=True)
    shutil.copy2(clone / "dvc.lock", target / "dvc.lock")


def lock_outputs(lock: Path) -> dict[str, str]:
    """Every stage output recorded in a dvc.lock, path -> md5 (a folder's md5 covers its files)."""
    stages = yaml.safe_load(lock.read_text()).get("stages", {})
    return {o["path"]: o.get("md5", "") for st in stages.values() for o in st.get("outs", [])}


def compare_outputs(committed: Path, rebuilt: Path) -> dict:
    """Which outputs the clean rebuild reproduced bit for bit. Evaluation results hold measured
    latencies and memory, so they differ on every run; datasets, adapters and merges should not."""
    if not committed.exists():
        return {"skipped": f"{committed} missing"}
    a, b = lock_outputs(committed), lock_outputs(rebuilt)
    shared = sorted(set(a) & set(b))
    return {"identical": [p for p in shared if a[p] == b[p]], "different": [p for p in shared if a[p] != b[p]]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--candidate", default=None, help="merge candidate to change (default: the first in params)")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "main_job.json"))
    ap.add_argument("--export-to", default=None, help="checkout to receive the full build's outputs")
    args = ap.parse_args()
    out = Path(args.out)
    env = {**os.environ, "PATH": f"{REPO / '.venv' / 'bin'}:{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1",
           "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    result: dict = {"command": "python bench/main_job.py", "commit": commit, "cpus": os.cpu_count(),
                    "machine": platform.machine(), "python": platform.python_version()}

    def save() -> None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")

    with tempfile.TemporaryDirectory(prefix="fteforge-main-job-") as tmp:
        repo = Path(tmp) / "clone"
        subprocess.run(["git", "clone", "-q", str(REPO), str(repo)], check=True)
        env["DVC_SITE_CACHE_DIR"] = str(repo / ".dvc" / "site-cache")
        result["full_repro"] = timed_repro(repo, env)
        result["rebuilt_outputs_vs_checkout"] = compare_outputs(REPO / "dvc.lock", repo / "dvc.lock")
        save()
        if args.export_to:
            export(repo, Path(args.export_to))
        start = time.perf_counter()
        noop = timed_repro(repo, env)
        result["noop_repro"] = {"wall_s": round(time.perf_counter() - start, 2), "stages_run": sorted(noop["stages_s"])}
        save()

        params_file = repo / "params.yaml"
        params = yaml.safe_load(params_file.read_text())
        name = args.candidate or next(iter(params["merge"]["candidates"]))
        weights = params["merge"]["candidates"][name]["weights"]
        first = next(iter(weights))
        weights[first] = round(weights[first] + 0.05, 4)
        params["release"]["version"] = "0.0.1"  # a new release folder: the selected model may change
        params_file.write_text(yaml.safe_dump(params, sort_keys=False))
        dry = subprocess.run([str(REPO / ".venv" / "bin" / "dvc"), "repro", "--dry"], cwd=repo, env=env,
                             capture_output=True, text=True, check=True).stdout
        rerun = timed_repro(repo, env)
        result["one_candidate_change"] = {"changed": f"merge.candidates.{name}.weights.{first}",
                                          "dry_run_lists": sorted(m.group(1) for m in map(STAGE_RE.match, dry.splitlines()) if m),
                                          **rerun}
        save()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    sys.exit(main())
