"""StyleGAN2 building blocks: shapes, demodulation, R1, style mixing, truncation, DiffAugment."""

import pytest
import torch

from animegen.data.diffaugment import diff_augment
from animegen.models.stylegan2 import Discriminator, Generator, ModulatedConv2d, StyleGANConfig
from animegen.training.gan_loss import StyleGAN2Loss, path_lengths, r1_penalty

SMALL = StyleGANConfig(z_dim=32, w_dim=32, channels=32, max_channels=32)


def test_generator_and_discriminator_shapes_at_64px():
    G, D = Generator(SMALL), Discriminator(SMALL)
    images = G(torch.randn(5, 32))
    assert images.shape == (5, 3, 64, 64) and torch.isfinite(images).all()
    assert D(images).shape == (5,)
    assert SMALL.num_ws == 10  # 9 convs and 5 RGB layers read 10 distinct w slots at 64 px


def test_demodulation_keeps_unit_variance_for_unit_input():
    torch.manual_seed(0)
    conv = ModulatedConv2d(64, 64, 3, w_dim=32)
    x = torch.randn(8, 64, 16, 16)
    out = conv(x, torch.randn(8, 32) * 3)  # strong, different styles per sample
    assert 0.85 < out[..., 1:-1, 1:-1].var().item() < 1.15  # inside the zero-padded border
    plain = ModulatedConv2d(64, 64, 3, w_dim=32, demodulate=False)
    assert plain(x, torch.randn(8, 32) * 3).var().item() > 2  # without it, the styles' scale leaks through


def test_r1_is_the_squared_input_gradient_norm_by_hand():
    a = torch.randn(1, 3, 4, 4)

    def D(x):  # dD/dx = a + 2x, by hand
        return (a * x).sum(dim=(1, 2, 3)) + x.pow(2).sum(dim=(1, 2, 3))

    x = torch.randn(6, 3, 4, 4)
    expected = (a + 2 * x).pow(2).sum(dim=(1, 2, 3))
    torch.testing.assert_close(r1_penalty(D, x), expected)
    loss = StyleGAN2Loss(None, D, r1_gamma=0.5, r1_every=16, augment="")
    torch.testing.assert_close(loss.phase("R1", x, None), expected.mean() * 0.25 * 16)


def test_path_length_is_the_norm_of_the_jacobian_transpose_times_y_by_hand():
    cfg = StyleGANConfig(image_size=8, z_dim=8, w_dim=8, channels=32, max_channels=32)
    G = Generator(cfg)
    ws = torch.randn(2, cfg.num_ws, cfg.w_dim, requires_grad=True)
    image = G.synthesis(ws, noise="const")
    lengths = path_lengths(image, ws, torch.Generator().manual_seed(3))

    # the full Jacobian d image / d ws, then J^T y per sample with the same y
    y = torch.randn(image.shape, generator=torch.Generator().manual_seed(3)) / 8  # sqrt(8 * 8 pixels)
    J = torch.autograd.functional.jacobian(lambda w: G.synthesis(w, noise="const"), ws.detach())
    for b in range(2):
        jty = torch.einsum("chw,chwlk->lk", y[b], J[b, :, :, :, b])  # (num_ws, w_dim)
        expected = jty.pow(2).sum(dim=1).mean().sqrt()
        torch.testing.assert_close(lengths[b], expected, rtol=1e-4, atol=1e-6)
    assert lengths.requires_grad  # create_graph: the penalty can be minimised through it


def test_style_mixing_uses_two_latents_from_the_cutoff():
    G = Generator(SMALL)
    z1, z2 = torch.randn(3, 32), torch.randn(3, 32)
    ws = G.styles(z1, mix_z=z2, cutoff=4)
    w1, w2 = G.mapping(z1), G.mapping(z2)
    torch.testing.assert_close(ws[:, :4], w1[:, None].expand(-1, 4, -1))
    torch.testing.assert_close(ws[:, 4:], w2[:, None].expand(-1, SMALL.num_ws - 4, -1))
    assert not torch.allclose(G.synthesis(ws, "const"), G.synthesis(G.styles(z1), "const"))


def test_truncation_psi_zero_gives_the_mean_w_image_for_every_z():
    G = Generator(SMALL)
    for _ in range(3):
        G.styles(torch.randn(16, 32), track=True)  # the running mean of w moves away from zero
    assert G.mapping.w_avg.abs().sum() > 0
    images = G(torch.randn(4, 32), psi=0.0, noise="const")
    for k in range(1, 4):
        torch.testing.assert_close(images[k], images[0])
    assert not torch.allclose(*G(torch.randn(2, 32), psi=1.0, noise="const"))


def test_diff_augment_is_seeded_and_does_what_each_policy_says():
    x = torch.rand(8, 3, 16, 16) * 2 - 1
    same = [diff_augment(x, generator=torch.Generator().manual_seed(3)) for _ in range(2)]
    torch.testing.assert_close(same[0], same[1])
    cut = diff_augment(torch.ones(64, 3, 16, 16), "cutout", torch.Generator().manual_seed(0))
    zero_share = (cut[:, 0] == 0).float().mean(dim=(1, 2))
    assert zero_share.max() <= 0.25 + 1e-6 and zero_share.min() > 0  # one 8x8 square, clipped at the border
    moved = diff_augment(x, "translation", torch.Generator().manual_seed(1))
    for b in range(8):  # each image is an integer shift of itself, zero-filled
        found = any(torch.equal(moved[b, :, 2:-2, 2:-2], torch.roll(x[b], (dy, dx), (1, 2))[:, 2:-2, 2:-2])
                    for dy in range(-2, 3) for dx in range(-2, 3))
        assert found
    with pytest.raises(ValueError, match="unknown DiffAugment policy"):
        diff_augment(x, "blur")
