#!/usr/bin/env bash
# Quality at equal training time, and time to 1000 faces at equal quality, animegen vs denoising-diffusion-pytorch:
#   1. both train the homework's simple config for MINUTES of wall time on DATA (one after the other, alone);
#   2. each samples with its default sampler (animegen: DDIM 25; the peer: ancestral DDPM over all T = 100 steps),
#      animegen 1000 faces, the peer PEER_NUM (its sampler runs ~2 h for 1000 on 2 cores), peak RSS recorded;
#   3. `animegen evaluate` scores both folders (AFD, SWD vs faces-1k) on the same first PEER_NUM images;
#   4. `animegen compare` finds animegen's fewest sampling steps within 10% of its own DDPM-100.
# Each step is skipped when its output exists, so an interrupted run continues where it stopped.
#   benchmarks/peer/equal_time.sh [DATA=/data48/faces] [MINUTES=30] [PEER_NUM=256] [RUNS=runs/equal-time]
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${1:-/data48/faces} MINUTES=${2:-30} PEER_NUM=${3:-256} R=${4:-runs/equal-time}
REAL=../shared/data/faces-1k
benchmarks/peer/make_venv.sh >/dev/null
PY=${PEER_VENV:-.peer-venv}/bin/python
RSS="$PY benchmarks/peer/peak_rss.py --json"
mkdir -p "$R"

[ -f "$R/animegen/latest" ] || $RSS "$R/rss-animegen-train.json" -- "$PY" -m animegen train --preset simple \
    --data "$DATA" --out "$R/animegen" --max-minutes "$MINUTES" --sample-every 0 --eval-every 0 --seed 0
[ -f "$R/peer/train.json" ] || $RSS "$R/rss-peer-train.json" -- "$PY" benchmarks/peer/peer_train.py train \
    --data "$DATA" --out "$R/peer" --minutes "$MINUTES"

[ -f "$R/animegen-images/1000.jpg" ] || $RSS "$R/rss-animegen-sample.json" -- "$PY" -m animegen generate \
    --checkpoint "$R/animegen" --num 1000 --out "$R/animegen-images"
[ -f "$R/peer/sample.json" ] || $RSS "$R/rss-peer-sample.json" -- "$PY" benchmarks/peer/peer_train.py sample \
    --data "$DATA" --out "$R/peer" --num "$PEER_NUM" --batch 64 --images "$R/peer-images"

# the same N for both: animegen's first PEER_NUM faces (seeds 0..N-1) beside the peer's N
mkdir -p "$R/animegen-first"
for i in $(seq 1 "$PEER_NUM"); do cp -n "$R/animegen-images/$i.jpg" "$R/animegen-first/"; done
for side in animegen-first peer-images animegen-images; do
    [ -f "$R/scores-$side.json" ] || "$PY" -m animegen evaluate --images "$R/$side" --real "$REAL" \
        --json "$R/scores-$side.json"
done
[ -f "$R/compare/report.json" ] || "$PY" -m animegen compare --checkpoint "$R/animegen" --real "$REAL" \
    --samplers ddpm:100,ddim:25,ddim:10,dpmpp:10,dpmpp:5 --num "$PEER_NUM" --out "$R/compare"
"$PY" benchmarks/peer/equal_time_report.py "$R" docs/equal-time.jpg docs/equal-time-loss.png
