#!/usr/bin/env bash
# Post-hoc EMA sweep (docs/post-hoc-ema.md): one `cpu`-preset run with its snapshots, then its EMA rebuilt at
# several widths, 1000 faces per width (the same seeds for each) scored AFD/SWD against faces-1k, as a table and a
# plot of score against width.
#   1. train the cpu preset on DATA for MINUTES (its snapshots are on: ema.snapshot_every=250);
#   2. `animegen ema` rebuilds the widths STDS at the run's last snapshot;
#   3. `animegen compare` generates NUM faces per width (DPM-Solver++ 20, the preset's own sampler) for each seed
#      offset in SEEDS (default "1000 0": held-out seeds 1000-1999 first, to choose on; then 0-999, to report) and
#      scores them;
#   4. benchmarks/phema_table.py writes $OUT/table.md and $OUT/phema.png from the reports.
# Usage: DATA=/data48/faces REAL=../shared/data/faces-1k benchmarks/phema_sweep.sh   (2 cores: 60 min training,
#        ~40 min generating and scoring 7 widths x 2 seed sets; SEEDS=0 halves that)
#        benchmarks/phema_sweep.sh --dry    (tiny sizes on faces-1k, a minute or two: checks the commands)
# After an interruption rerun the same command: finished steps are kept (train and compare resume); delete $OUT to
# start over.
set -euo pipefail
cd "$(dirname "$0")/.."
REAL=${REAL:-../shared/data/faces-1k}
DATA=${DATA:-/data48/faces}
MINUTES=${MINUTES:-60}
STDS=${STDS:-0.03,0.05,0.075,0.10,0.125,0.15,0.20}
NUM=${NUM:-1000}
SEEDS=${SEEDS:-1000 0}
SAMPLER=${SAMPLER:-dpmpp:20}
OUT=${OUT:-runs/phema-sweep}
TRAIN=(--preset cpu --max-minutes "$MINUTES")
if [ "${1:-}" = "--dry" ]; then  # a tiny model on faces-1k: every command runs, none takes long
    DATA=$REAL NUM=${DRY_NUM:-4} SEEDS="1000 0" SAMPLER=dpmpp:3 OUT=${OUT%/}-dry
    TRAIN=(--preset cpu --steps 12 --compile off --set model.dim=8 --set "model.attn_resolutions=[]"
           --set ema.snapshot_every=4 --set sample.every=0 --set log_every=4 --batch-size 8)
fi
export PYTHONPATH=src:${PYTHONPATH:-} PYTHONUNBUFFERED=1
mkdir -p "$OUT"
exec > >(tee -a "$OUT/sweep.log") 2>&1
lscpu | grep 'Model name' || true
echo "## 1. train (${TRAIN[*]}) on $DATA"
# --resume starts a new run, continues a killed one and leaves a finished one as it is
python3 -m animegen train --data "$DATA" --out "$OUT/run" "${TRAIN[@]}" --resume
echo "## 2. rebuild the EMA at widths $STDS"
[ -d "$OUT/ema" ] || python3 -m animegen ema --checkpoint "$OUT/run" --std "$STDS" --out "$OUT/ema"
folders=$(python3 -c "print(','.join('$OUT/ema/std-%.3f' % float(s) for s in '$STDS'.split(',')))")
for seed in $SEEDS; do
    echo "## 3. $NUM faces per width from seed $seed ($SAMPLER), scored against $REAL"
    python3 -m animegen compare --checkpoint "$folders" --samplers "$SAMPLER" --num "$NUM" --seed "$seed" \
        --real "$REAL" --metrics afd,swd --out "$OUT/seed-$seed" --resume
done
echo "## 4. table and plot"
python3 benchmarks/phema_table.py "$OUT" $SEEDS
