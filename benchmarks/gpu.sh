#!/usr/bin/env bash
# Issue 15's GPU goals in one call of about 10 minutes: 32 seeds of a mog cell stacked against 1 seed, single
# quick mog runs of vanilla and gradreg, the whole quick mog sweep (every method x 10 seeds), each with the
# device named and today's eager single run measured again as the baseline. Numbers go to $OUT (default
# results/benchmarks) as gpu_timings.jsonl and gpu_timings.md, written as they are measured.
#
#   bash benchmarks/gpu.sh             # on a GPU machine
#   bash benchmarks/gpu.sh --dry-run   # tiny step counts on any device: checks that everything runs
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-results/benchmarks}"
mkdir -p "$OUT"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # this checkout, whatever is installed
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | tee "$OUT/device.txt" || true
# SIGINT first, so the sweep's workers record their cells as interrupted; what was measured is already written.
timeout --signal=INT --kill-after=20 "${LIMIT_SECONDS:-560}" python benchmarks/gpu_timings.py --out "$OUT" "$@" \
  || echo "gpu.sh: stopped (exit $?); partial results in $OUT"
cat "$OUT/gpu_timings.md"
