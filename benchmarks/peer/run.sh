#!/usr/bin/env bash
# animegen against its peers (denoising-diffusion-pytorch, pytorch-fid) in one run, in one venv (about 25 minutes
# on 2 cores; run it on an otherwise idle machine): training img/s, params and FLOPs at the simple and strong
# configs, denoiser evaluations/s at sampling batch 16/64/256, FID feature speed and agreement. The equal-time
# quality runs (an hour and more) are the separate benchmarks/peer/equal_time.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
benchmarks/peer/make_venv.sh
PY=${PEER_VENV:-.peer-venv}/bin/python
OUT=benchmarks/results/peer
"$PY" benchmarks/peer/train_speed.py --reps "${REPS:-3}" --json "$OUT/train_speed.json"
"$PY" benchmarks/peer/fid_speed.py --images 200 --reps 3 --json "$OUT/fid_speed.json"
