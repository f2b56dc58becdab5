#!/usr/bin/env bash
# The peer's venv: torch 2.14.1 + torchvision 0.29.1 (a CUDA build, installed from this machine's disk, run on
# the CPU), lucidrains' denoising-diffusion-pytorch and pytorch-fid from the registry, and animegen itself
# (editable, --no-deps, so that both tools run on the same torch in the same process or venv).
# Idempotent: a second call only checks. PEER_VENV picks the folder (default .peer-venv, git-ignored).
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=${PEER_VENV:-.peer-venv}
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q torch==2.14.1 torchvision==0.29.1 denoising-diffusion-pytorch==2.3.4 pytorch-fid==0.3.0 \
    numpy pillow tqdm safetensors scipy matplotlib
# animeface (the offline AFD detector) has wheels for a few platforms only; AFD says how to get it elsewhere
"$VENV/bin/pip" install -q animeface==2.0.3 || echo "make_venv: no animeface wheel here; AFD will be skipped" >&2
"$VENV/bin/pip" install -q --no-deps -e .
"$VENV/bin/python" -c "import animegen, denoising_diffusion_pytorch, pytorch_fid, torch; print('peer venv:', torch.__version__)"
