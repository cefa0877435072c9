"""GPU check of the training backends: build the base from the GGUF, train adapters with unsloth and TRL.

Runs on a CUDA machine from the project root, with the project on PYTHONPATH (src/ layout), e.g.

    PYTHONPATH=/tmp/site:src python3 scripts/gpu_unsloth_check.py all --gguf /tmp/base.gguf

Modes (each step of `all`/`probe` runs in its own process, so unsloth's global patches of TRL and
transformers never leak into the TRL run, and a crash in one step does not lose the others):
  all    base from the GGUF, then unsloth agentic, trl agentic, unsloth persona (as time allows)
  probe  versions, GPU, `import unsloth`, and a few unsloth steps on a random-weight base of the same shape
  base   one step: materialise the base folder with fteforge.models.base.materialize_base
  train  one step: train_adapter(...) for one adapter and backend, with the spec's gates
Results go to $OUT/gpu_unsloth.json (or --out), rewritten after every step; failures are recorded
with their error text and the run goes on.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIBS = ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "unsloth", "unsloth_zoo", "triton",
        "torchao", "bitsandbytes", "xformers", "gguf", "pydantic", "safetensors", "huggingface_hub")
ADAPTER_DATA = {"task_api_agentic": "agentic", "task_api_persona": "persona"}


def versions() -> dict[str, str]:
    out = {}
    for name in LIBS:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = "not installed"
    return out


def gpu_info() -> dict:
    import torch

    info = {"cuda_available": torch.cuda.is_available(), "torch_cuda": torch.version.cuda}
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info.update(name=p.name, capability=list(torch.cuda.get_device_capability(0)),
                    memory_gib=round(p.total_memory / 2**30, 1), bf16=torch.cuda.is_bf16_supported())
    return info


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)


# ---------------------------------------------------------------- one step, in its own process

def step_base(args) -> dict:
    from fteforge.console import quiet_libraries

    quiet_libraries()
    from fteforge.models.base import materialize_base
    from fteforge.params import BaseParams, load_params

    params = load_params("base", BaseParams).model_copy(update={"source": "local", "local_path": str(args.gguf)})
    t = time.perf_counter()
    fp = materialize_base(params, Path(args.base), progress=lambda m: print(f"[base] {m}", flush=True))
    return {"wall_s": round(time.perf_counter() - t, 2), "architecture": fp["architecture"],
            "num_parameters": fp["num_parameters"], "dtype": fp["dtype"], "fingerprint": fp["fingerprint"],
            "files": sorted(p.name for p in Path(args.base).iterdir())}


def step_random_base(args) -> dict:
    """A base folder of the real shape with random weights (config + tokenizer carried, no GGUF needed)."""
    import shutil

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    src, dst = Path(args.config_dir), Path(args.base)
    dst.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(src), dtype=torch.float32)
    model.save_pretrained(dst, safe_serialization=True)
    for f in src.iterdir():
        if f.name != "config.json":
            shutil.copy(f, dst / f.name)
    return {"files": sorted(p.name for p in dst.iterdir())}


def step_import_unsloth(args) -> dict:
    t = time.perf_counter()
    import unsloth  # noqa: F401
    from unsloth import FastLanguageModel  # noqa: F401

    return {"import_s": round(time.perf_counter() - t, 2), "unsloth": md.version("unsloth")}


def step_train(args) -> dict:
    if args.preimport_unsloth:
        import unsloth  # noqa: F401  - the order unsloth's docs ask for; only used as a fallback
    from fteforge.console import quiet_libraries

    quiet_libraries()
    import torch

    import fteforge.training.trainer as trainer_mod
    from fteforge.data.records import load_examples
    from fteforge.gates import GateFailure
    from fteforge.params import TrainParams, load_params
    from fteforge.specs import load_spec_set

    params = load_params("train", TrainParams)
    specs = load_spec_set(ROOT / "specs")
    spec = specs.adapter_spec(args.adapter)
    knobs = params.knobs_for(args.adapter)
    if args.max_steps:
        knobs = knobs.model_copy(update={"max_steps": args.max_steps})
    examples = load_examples(Path(args.data))

    # Observe (not change) what train_adapter computes: the metrics dict it checks gates against,
    # so the numbers survive a failed gate, and the per-step losses from its progress callback.
    captured: dict = {}
    orig_check = trainer_mod.check_gates

    def spy_check(gates, metrics, **kw):
        captured.update(metrics)
        return orig_check(gates, metrics, **kw)

    trainer_mod.check_gates = spy_check
    losses, t0, first_log = [], time.perf_counter(), [None]

    def progress(msg: str) -> None:
        print(f"[{args.backend}/{args.adapter}] {msg}", flush=True)
        if msg.startswith("step "):
            if first_log[0] is None:
                first_log[0] = time.perf_counter() - t0
            parts = msg.split()
            losses.append((int(parts[1].split("/")[0]), float(parts[3]), time.perf_counter() - t0))

    out_dir = Path(args.out_dir)
    result: dict = {"adapter": args.adapter, "backend_requested": args.backend, "seed": params.seed,
                    "knobs": {k: getattr(knobs, k) for k in ("learning_rate", "batch_size", "epochs", "max_steps",
                                                             "learn_turns", "max_length", "share_prefix")},
                    "preimport_unsloth": bool(args.preimport_unsloth), "examples": len(examples)}
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    try:
        metrics = trainer_mod.train_adapter(
            args.adapter, Path(args.base), examples, specs.tools, knobs, backend=args.backend, seed=params.seed,
            threads=params.threads, out_dir=out_dir, work_dir=Path(args.work_dir), gates=spec.success_criteria,
            live_dir=None, progress=progress,
        )
        result.update(status="ok", metrics=metrics)
    except GateFailure as exc:
        result.update(status="gate_failure", error=str(exc), metrics=captured,
                      failed_gates=[r.to_dict() for r in exc.failed])
    result["total_s"] = round(time.perf_counter() - t0, 2)
    result["s_to_first_logged_step"] = round(first_log[0], 2) if first_log[0] is not None else None
    if len(losses) >= 2:
        # optimizer steps after the first logged one, checkpoint saves included
        (s1, _, t1), (s2, _, t2) = losses[0], losses[-1]
        result["s_per_step_after_first"] = round((t2 - t1) / max(1, s2 - s1), 4)
    result["loss_at"] = {str(s): round(v, 4) for s, v, _ in losses if s in (1, 2, 5, 10, 25, 50, 100, 150, 200)
                         or s == (losses[-1][0] if losses else -1)}
    if torch.cuda.is_available():
        result["gpu_peak_mem_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
    if out_dir.is_dir():
        result["output_files"] = {p.name: p.stat().st_size for p in sorted(out_dir.iterdir())}
        cfg = out_dir / "adapter_config.json"
        if cfg.is_file():
            c = json.loads(cfg.read_text())
            result["adapter_config"] = {k: c.get(k) for k in ("r", "lora_alpha", "target_modules", "peft_type",
                                                              "task_type", "base_model_name_or_path")}
        tc = out_dir / "training_config.json"
        if tc.is_file():
            result["training_config_backend"] = json.loads(tc.read_text()).get("backend")
    result["versions"] = {k: v for k, v in versions().items() if k in ("torch", "transformers", "trl", "peft",
                                                                          "unsloth", "unsloth_zoo")}
    return result


STEPS = {"base": step_base, "random_base": step_random_base, "import_unsloth": step_import_unsloth,
         "train": step_train}


def run_step_inline(args) -> int:
    """Child process: run one step, write its JSON (result or error) to --result."""
    try:
        data = STEPS[args.mode](args)
        data.setdefault("status", "ok")
    except BaseException as exc:  # noqa: BLE001 - recorded, the driver goes on
        data = {"status": "error", "error": f"{type(exc).__name__}: {exc}"[:4000],
                "traceback": traceback.format_exc()[-6000:]}
    write_json(Path(args.result), data)
    return 0


# ---------------------------------------------------------------- driver

class Driver:
    def __init__(self, out: Path, budget_s: float):
        self.out, self.deadline = out, time.monotonic() + budget_s
        self.data: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%S"), "steps": {}}
        self.log = out.with_suffix(".log")
        self.log.parent.mkdir(parents=True, exist_ok=True)

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def save(self) -> None:
        write_json(self.out, self.data)

    def step(self, name: str, argv: list[str], need_s: float = 30) -> dict:
        if self.left() < need_s:
            res = {"status": "skipped", "error": f"only {self.left():.0f}s left, step wants {need_s:.0f}s"}
        else:
            result = Path("/tmp") / f"gpu_check_{name}.json"
            result.unlink(missing_ok=True)
            cmd = [sys.executable, str(Path(__file__).resolve()), *argv, "--result", str(result)]
            t = time.perf_counter()
            with open(self.log, "a") as log:
                log.write(f"\n===== {name}: {' '.join(argv)}\n")
                log.flush()
                try:
                    rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, timeout=max(10, self.left() - 15),
                                        cwd=ROOT).returncode
                except subprocess.TimeoutExpired:
                    rc = "timeout"
            res = json.loads(result.read_text()) if result.is_file() else {"status": "error"}
            res["process_s"], res["returncode"] = round(time.perf_counter() - t, 2), rc
            if res.get("status") == "error" and "error" not in res:
                res["error"] = f"child exited {rc} without a result; log tail: " + tail(self.log, 3000)
        print(f"== {name}: {res.get('status')} {res.get('error', '')[:300]}", flush=True)
        self.data["steps"][name] = res
        self.save()
        return res


def tail(path: Path, n: int) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


def common_env() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("UNSLOTH_DISABLE_STATISTICS", "1")
    os.environ.setdefault("UNSLOTH_SKIP_TORCHVISION_CHECK", "1")
    os.environ.setdefault("UNSLOTH_COMPILE_LOCATION", "/tmp/unsloth_compiled_cache")
    os.environ.setdefault("PYTHONUNBUFFERED", "1")


def driver(args) -> int:
    out = Path(args.out or (Path(os.environ.get("OUT", "/tmp")) / ("gpu_probe.json" if args.mode == "probe"
                                                                     else "gpu_unsloth.json")))
    d = Driver(out, args.budget_s)
    d.data["versions"] = versions()
    try:
        d.data["gpu"] = gpu_info()
    except Exception as exc:  # noqa: BLE001
        d.data["gpu"] = {"error": repr(exc)}
    d.save()
    data = Path(args.data_dir)
    if args.mode == "probe":
        base = "/tmp/randbase"
        d.step("random_base", ["random_base", "--config-dir", args.config_dir, "--base", base])
        d.step("import_unsloth", ["import_unsloth"])
        d.step("unsloth_agentic_3steps", ["train", "--adapter", "task_api_agentic", "--backend", "unsloth",
                                          "--base", base, "--data", str(data / "agentic_train.jsonl"),
                                          "--max-steps", "3", "--out-dir", "/tmp/probe_out/agentic_unsloth",
                                          "--work-dir", "/tmp/probe_work"])
        return 0

    base = args.base
    if not (Path(base) / "model.safetensors").is_file():
        d.step("base", ["base", "--gguf", args.gguf, "--base", base])
    else:
        d.data["steps"]["base"] = {"status": "reused", "files": sorted(p.name for p in Path(base).iterdir())}
    runs = [(r.split(":")[0], r.split(":")[1], float(r.split(":")[2])) for r in args.runs.split(",")]
    for backend, adapter, need in runs:
        name = f"{backend}_{adapter}"
        argv = ["train", "--adapter", adapter, "--backend", backend, "--base", base,
                "--data", str(data / f"{ADAPTER_DATA[adapter]}_train.jsonl"),
                "--out-dir", f"/tmp/adapters/{name}", "--work-dir", "/tmp/ckpt"]
        res = d.step(name, argv, need_s=need)
        if backend == "unsloth" and res.get("status") == "error" and adapter == "task_api_agentic":
            # The project imports transformers before unsloth; retry once in the order unsloth asks for.
            d.step(name + "_preimport", argv + ["--preimport-unsloth"], need_s=need)
    d.data["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    d.save()
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["all", "probe", *STEPS])
    ap.add_argument("--gguf", default="/tmp/base.gguf")
    ap.add_argument("--base", default="/tmp/base")
    ap.add_argument("--config-dir", default=".gpu/basecfg")
    ap.add_argument("--data-dir", default=".gpu")
    ap.add_argument("--data")
    ap.add_argument("--adapter")
    ap.add_argument("--backend")
    ap.add_argument("--max-steps", type=int, default=None)
    ap.add_argument("--out-dir")
    ap.add_argument("--work-dir", default="/tmp/ckpt")
    ap.add_argument("--preimport-unsloth", action="store_true")
    ap.add_argument("--result")
    ap.add_argument("--out")
    ap.add_argument("--budget-s", type=float, default=420)
    ap.add_argument("--runs", default="unsloth:task_api_agentic:60,trl:task_api_agentic:40,unsloth:task_api_persona:90",
                    help="all: BACKEND:ADAPTER:SECONDS_NEEDED,... in order (a run is skipped when less time is left)")
    args = ap.parse_args()
    common_env()
    os.chdir(ROOT)  # params.yaml and specs/ are read relative to the project root
    if args.mode in ("all", "probe"):
        return driver(args)
    return run_step_inline(args)


if __name__ == "__main__":
    sys.exit(main())
