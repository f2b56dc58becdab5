"""Record tests/fixtures/v1-model/expected.npz: the images a v1 checkpoint (config.json with the whole recipe, before
model.json existed) drew with the code of that time. Run it with that code on the path, e.g.

    git worktree add /tmp/v1 36d23ac && PYTHONPATH=/tmp/v1/src python scripts/make_v1_fixture.py

The weights are made here as tests/test_model_file.py makes them (seed 0, N(0, 0.05) everywhere), so none are
committed."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "v1-model"


def main() -> None:
    from animegen.models.unet import UNet, UNetConfig
    from animegen.runs.model import TrainedModel

    config = json.loads((FIXTURE / "config.json").read_text())
    torch.manual_seed(0)
    net = UNet(UNetConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in config["model"].items()}))
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.05)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "config.json").write_text(json.dumps(config))
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, Path(tmp) / "ema.safetensors")
        model = TrainedModel.load(tmp, "cpu", bf16="off")
        images = torch.cat(list(model.images([0, 1, 2, 3]))).numpy()
    np.savez_compressed(FIXTURE / "expected.npz", images=images)
    print(f"wrote {FIXTURE / 'expected.npz'} ({images.shape}, mean {images.mean():.2f})", file=sys.stderr)


if __name__ == "__main__":
    main()
