#!/usr/bin/env bash
# The homework on the lent GPU: the `gpu` preset's 10-minute run, the boss at GPU width for the same minutes beside
# it, and the checks of #28 items 1-3 (benchmarks/gpu/homework.py has the plan; about 11 minutes on an H100).
#   bash benchmarks/gpu/homework.sh [ARGS]        start it; returns after ~9.5 minutes
#   bash benchmarks/gpu/homework.sh --collect     at once after: waits for the rest, results in $OUT
#   bash benchmarks/gpu/homework.sh --dry [ARGS]  tiny sizes on a CPU, in the foreground (a test)
# ARGS go to homework.py, e.g. --gpu-set model.dim=96 (the sweep's winner, until runs/presets.py holds it).
# Needs .gpu-data/ (benchmarks/gpu/prepare.sh; carry it). Writes $RESULTS/summary.json and details.json
# (default benchmarks/results/gpu/DATE); $OUT gets them, session.log, results.tgz and the two hand-ins
# (gpu.tgz, boss.tgz: 1000 faces each, for FID elsewhere).
set -uo pipefail
cd "$(dirname "$0")/../.."
WORK=${WORK:-/tmp/animegen-gpu/homework}
RESULTS=${RESULTS:-benchmarks/results/gpu/$(date +%F)}
HANDINS="gpu boss"
source benchmarks/gpu/lib.sh
run_plan benchmarks/gpu/homework.py "$@"
