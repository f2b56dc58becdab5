#!/usr/bin/env bash
# animegen on one GPU in about 8 minutes, everything in one run (BENCHMARKS.md "GPU" has the figures):
#   1. 1000 faces from the shipped model: the whole command and the sampling alone, fp32 against bf16 (the
#      archives come back for `animegen evaluate` on a CPU);
#   2. training img/s of simple and strong at batch 16 and 128: --compile off / auto against lucidrains'
#      denoising-diffusion-pytorch (benchmarks/gpu/speed.py);
#   3. the gpu preset for GPU_MINUTES (default 3) on the carried faces, then 1000 faces from it;
#   4. --compile on (inductor + CUDA graph) for two configurations (compiling takes about a minute each).
# It needs its own data (.gpu-data/faces.zip: benchmarks/gpu/make_data.py, <= 40 MB, faces-1k held out) and,
# where the GPU machine has no package registry, the peer's wheels in .whl/ (benchmarks/gpu/README.md).
# Results go to $OUT (default benchmarks/results/gpu).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-benchmarks/results/gpu}
MINUTES=${GPU_MINUTES:-3}
DATA=.gpu-data/faces.zip
mkdir -p "$OUT"
exec > >(tee "$OUT/run.log") 2>&1
[ -f "$DATA" ] || python3 benchmarks/gpu/make_data.py "${DATA48:?set DATA48=the unpacked 48k faces folder}" "$DATA"
if ! python3 -c "import denoising_diffusion_pytorch" 2>/dev/null; then
    python3 -m pip install -q --no-index --no-deps --target /tmp/peer-site .whl/*.whl && export PYTHONPATH=/tmp/peer-site
fi
export PYTHONPATH=src:benchmarks/peer:${PYTHONPATH:-} PYTHONUNBUFFERED=1 ANIMEGEN_CACHE=${ANIMEGEN_CACHE:-/tmp/animegen-cache}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__)"
now() { date +%s.%N; }

echo "## 1. sampling: shipped model, 1000 faces"
for bf16 in off on; do
    t0=$(now)
    python3 -m animegen generate --num 1000 --out /tmp/shipped-$bf16 --force --bf16 $bf16 --jpeg-quality 90 \
        --tgz "$OUT/shipped-bf16-$bf16.tgz"
    echo "whole command, --bf16 $bf16: $(python3 -c "print(round($(now) - $t0, 2))") s"
done
python3 benchmarks/gpu/sample_speed.py

echo "## 2. training img/s"
timeout 300 python3 benchmarks/gpu/speed.py --data "$DATA" --json "$OUT/speed.json"

echo "## 3. the gpu preset, $MINUTES minutes"
timeout $((MINUTES * 60 + 120)) python3 -m animegen train --data "$DATA" --preset gpu --max-minutes "$MINUTES" \
    --out /tmp/gpu-run
python3 -m animegen generate --checkpoint /tmp/gpu-run --num 1000 --out /tmp/gpu-faces --force --jpeg-quality 90 \
    --tgz "$OUT/gpu-preset.tgz"
cp /tmp/gpu-run/log.jsonl "$OUT/gpu-preset-log.jsonl"
cp "$(ls /tmp/gpu-run/samples/*.png | tail -1)" "$OUT/gpu-preset-grid.png"

echo "## 4. --compile on (inductor + graph)"
timeout 240 python3 benchmarks/gpu/speed.py --data "$DATA" --json "$OUT/speed-inductor.json" --sides on \
    --configs simple:16,strong:128
