"""The UNet: shapes, and space-to-depth running the network at a lower resolution."""

import pytest
import torch

from animegen.models.unet import UNet, UNetConfig
from animegen.runs.presets import preset_config


@pytest.mark.parametrize("patch_size", [1, 2, 4])
def test_unet_maps_images_to_images_at_internal_resolution_size_over_patch(patch_size):
    cfg = UNetConfig(image_size=32, dim=8, dim_mults=(1, 2), attn_resolutions=(32 // patch_size // 2,),
                     patch_size=patch_size)
    net = UNet(cfg)
    seen = []
    net.stem.register_forward_hook(lambda _m, _i, out: seen.append(out.shape))
    x = torch.randn(2, 3, 32, 32)
    out = net(x, torch.tensor([10.0, 500.0]))
    assert out.shape == x.shape
    assert seen == [torch.Size([2, 8, 32 // patch_size, 32 // patch_size])]


def test_patch_size_must_divide_the_image():
    with pytest.raises(ValueError, match="multiple of patch_size"):
        UNet(UNetConfig(image_size=30, patch_size=4))


def test_cpu_preset_is_the_swept_winner():
    cfg = preset_config("cpu")
    assert (cfg.model.patch_size, cfg.model.dim, cfg.model.num_res_blocks) == (2, 32, 1)
    assert (cfg.diffusion.objective, cfg.diffusion.schedule, cfg.diffusion.timesteps) == ("pred_v", "cosine", 1000)
    assert cfg.sample.sampler == "dpmpp"
