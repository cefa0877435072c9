#!/usr/bin/env bash
# The 1.17.0 date-phrase probe (results: bench/results/gpu/date_phrase_probe_h200.json). Run on a lent
# GPU machine from the repository root, after staging (here, on the build machine):
#   .gpu/old/        git archive 6a3cde4 src scripts specs params.yaml | tar -x -C .gpu/old   (the old contract)
#   .gpu/agentic_train_{old,new}.jsonl   data/agentic/train.jsonl of each commit (from the DVC cache)
#   .gpu/agentic_s{1000,2000,3000}.jsonl agentic suite draws (build_agentic_eval_cases, seed 1000/2000/3000)
#   .whl/            wheels missing there: trl datasets dill multiprocess pydantic pydantic_core annotated-types
#                    typing-inspection jsonschema jsonschema-specifications referencing rpds-py gguf peft vaderSentiment
# The SmolLM2 GGUF (98 MB) is over the device tool's 64 MiB per-call carry, so it travels in two calls
# made back to back (the machine stays warm 30 s): `split -b 50000000` it into .gg/part_aa/ab; call 1
# carries .gg/part_aa and copies it to /tmp/g/a; call 2 carries .gg/part_ab, .whl and .gpu and runs
#   cat /tmp/g/a .gg/part_ab > /tmp/base.gguf && sha256sum -c ... && pip install --target /tmp/site .whl/*.whl
#   && bash experiments/gpu_date_phrase_probe/run.sh
# Six processes (2 contracts x seeds 0-2) share the GPU: about 270 s on an H200.
set -uo pipefail
R=$PWD
mkdir -p /tmp/logs
echo '[]' > /tmp/none.json
for s in 0 1 2; do
  for c in new old; do
    echo "[{\"name\": \"${c}_s$s\", \"adapter\": \"task_api_agentic\", \"data\": \"$R/.gpu/agentic_train_$c.jsonl\", \"seed\": $s}]" > /tmp/v_${c}_s$s.json
  done
done
SUITES="$R/.gpu/agentic_s1000.jsonl $R/.gpu/agentic_s2000.jsonl $R/.gpu/agentic_s3000.jsonl"
PYTHONPATH=/tmp/site:src python3 scripts/gpu_recipe_probe.py --variants /tmp/none.json --gguf /tmp/base.gguf --base /tmp/base_new --out $OUT/base_new.json > /tmp/logs/base_new.log 2>&1 &
(cd .gpu/old && PYTHONPATH=/tmp/site:src python3 scripts/gpu_recipe_probe.py --variants /tmp/none.json --gguf /tmp/base.gguf --base /tmp/base_old --out /tmp/base_old.json > /tmp/logs/base_old.log 2>&1) &
wait
tail -n 3 /tmp/logs/base_*.log
ls /tmp/base_new /tmp/base_old || exit 3
pids=()
for s in 0 1 2; do
  # shellcheck disable=SC2086
  PYTHONPATH=/tmp/site:src python3 scripts/gpu_recipe_probe.py --variants /tmp/v_new_s$s.json --suite $SUITES \
    --base /tmp/base_new --work /tmp/work_new_s$s --budget-s 400 --out $OUT/new_s$s.json > /tmp/logs/new_s$s.log 2>&1 &
  pids+=($!)
  # shellcheck disable=SC2086
  (cd .gpu/old && PYTHONPATH=/tmp/site:src python3 scripts/gpu_recipe_probe.py --variants /tmp/v_old_s$s.json --suite $SUITES \
    --base /tmp/base_old --work /tmp/work_old_s$s --budget-s 400 --out $OUT/old_s$s.json > /tmp/logs/old_s$s.log 2>&1) &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
python3 - <<'PY'
import json, glob, os
out = {}
for f in sorted(glob.glob(os.environ["OUT"] + "/*_s?.json")):
    d = json.load(open(f))
    out[os.path.basename(f)[:-5]] = d
for name, d in out.items():
    for v, r in d.get("variants", {}).items():
        s = {k: r.get("suites", {}).get(k, {}).get("metrics", {}).get("agentic.score") for k in sorted(r.get("suites", {}))}
        print(name, r.get("status"), r.get("train.final_loss"), r.get("train.wall_s"), s, r.get("error", "")[:300])
PY
for f in /tmp/logs/*_s*.log; do grep -q "^== " "$f" || { echo "--- $f"; tail -n 15 "$f"; }; done
