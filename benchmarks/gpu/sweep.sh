#!/usr/bin/env bash
# The `gpu` preset's candidates at equal GPU-minutes on the lent GPU, with the check of whether sharing the GPU
# ranks them as running alone would (benchmarks/gpu/sweep.py has the plan; about 10 minutes on an H100).
#   bash benchmarks/gpu/sweep.sh [ARGS]          start it; returns after ~9.5 minutes, with results if it is done
#   bash benchmarks/gpu/sweep.sh --collect       at once after: waits for the rest, results in $OUT
#   bash benchmarks/gpu/sweep.sh --dry [ARGS]    tiny sizes on a CPU, in the foreground (a test)
# Needs .gpu-data/ (benchmarks/gpu/prepare.sh; carry it). Writes $RESULTS/summary.json and details.json
# (default benchmarks/results/gpu/DATE); $OUT gets them, session.log and results.tgz.
set -uo pipefail
cd "$(dirname "$0")/../.."
WORK=${WORK:-/tmp/animegen-gpu/sweep}
RESULTS=${RESULTS:-benchmarks/results/gpu/$(date +%F)}
source benchmarks/gpu/lib.sh
run_plan benchmarks/gpu/sweep.py "$@"
