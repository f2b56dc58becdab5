#!/usr/bin/env bash
# Build .gpu-data/ here (on a machine that reaches PyPI), before a GPU is at hand; benchmarks/gpu/sweep.sh and
# homework.sh carry it to the lent machine (`carry: [".gpu-data"]`):
#   .gpu-data/faces.zip   as much of the 48k set at 64 px (WebP q90) as the 64 MiB transfer leaves room for beside
#                         the checkout; faces-1k held out (benchmarks/gpu/make_data.py)
#   .gpu-data/faces-1k/   the yardstick, copied for scoring only: no script trains on it
#   .gpu-data/wheels/     animegen's dependencies the GPU machine lacks (animeface, for its Python 3.12)
# usage: benchmarks/gpu/prepare.sh [UNPACKED_48K_FACES_DIR]
#        (default: ../shared/data/anime-faces-48k.tar.gz unpacked to /tmp/data48)
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=.gpu-data
LIMIT=$((64 * 1024 * 1024))   # what the device tool carries: the checkout and the carried folders together
MARGIN=$((2 * 1024 * 1024))   # files that appear between now and the launch, and the tool's own counting
SHARED=../shared/data
FACES48=${1:-}
if [ -z "$FACES48" ]; then
    FACES48=/tmp/data48/faces
    [ -d "$FACES48" ] || { mkdir -p /tmp/data48 && tar -xzf "$SHARED/anime-faces-48k.tar.gz" -C /tmp/data48; }
fi
git check-ignore -q "$DATA/faces.zip" || { echo "prepare.sh: $DATA is not ignored by git (.gitignore)" >&2; exit 2; }
rm -rf "$DATA" && mkdir -p "$DATA/wheels"
cp -r "$SHARED/faces-1k" "$DATA/faces-1k"
animeface=$(grep -o 'animeface==[0-9.]*' pyproject.toml)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$DATA/wheels" "$animeface"
size_of() { du -sb "$1" | cut -f1; }
# what travels besides: tracked files and the untracked ones git does not ignore
tree=$(git ls-files -co --exclude-standard -z | xargs -0 -r stat -c %s 2>/dev/null | awk '{s += $1} END {print s + 0}')
budget=$((LIMIT - tree - $(size_of "$DATA") - MARGIN))
python3 benchmarks/gpu/make_data.py "$FACES48" "$DATA/faces.zip" --max-bytes "$budget" --held-out "$DATA/faces-1k"
echo "travels: $((tree + $(size_of "$DATA"))) of $LIMIT bytes (the checkout $tree, $DATA $(size_of "$DATA"))"
