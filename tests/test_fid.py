"""FID against pytorch-fid itself: tests/fixtures/fid/ was written by scripts/make_fid_fixture.py
running pytorch-fid 0.3.0 with seeded random weights (the real 92 MB weights are not shipped)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from animegen.core.errors import UserError
from animegen.metrics import fid as fidmod
from animegen.metrics.inception import InceptionV3, random_state_dict
from animegen.metrics.registry import METRICS, EvalContext

FIXTURE = Path(__file__).parent / "fixtures" / "fid"


@pytest.fixture(scope="module")
def fixture_images(tmp_path_factory) -> Path:
    """The four seeded 64x48 images scripts/make_fid_fixture.py fed pytorch-fid, regenerated here (same seed,
    same arithmetic, lossless PNG) so no image files are committed; the feature test fails if they drift."""
    folder = tmp_path_factory.mktemp("fid-images")
    rng = np.random.default_rng(1234)
    for i in range(4):
        pixels = rng.integers(0, 256, size=(48, 64, 3), dtype=np.uint8)
        pixels = ((pixels.astype(np.uint16) + np.roll(pixels, 1, axis=1)) // 2).astype(np.uint8)
        Image.fromarray(pixels, "RGB").save(folder / f"{i}.png")
    return folder


@pytest.fixture(scope="module")
def layout() -> dict[str, list[int]]:
    return json.loads((FIXTURE / "layout.json").read_text())


@pytest.fixture(scope="module")
def expected():
    with np.load(FIXTURE / "expected.npz") as f:
        return dict(f)


@pytest.fixture(scope="module")
def weights(tmp_path_factory, layout, expected) -> Path:
    """The fixture's random weights as a .pth file, so the real loader (torch.load) is exercised."""
    path = tmp_path_factory.mktemp("weights") / "random-inception.pth"
    torch.save(random_state_dict(layout, int(expected["seed"])), path)
    return path


@pytest.fixture(scope="module")
def faces_levels(tmp_path_factory, faces_dir) -> list[Path]:
    """24 faces, then the same faces blurred and noised at 3 increasing strengths."""
    sources = sorted(faces_dir.glob("*.jpg"))[:24]
    rng = np.random.default_rng(0)
    folders = []
    for level, (radius, noise) in enumerate([(0, 0), (1, 6), (2, 16), (3.5, 40)]):
        folder = tmp_path_factory.mktemp(f"level{level}")
        for src in sources:
            image = Image.open(src).convert("RGB")
            if radius:
                image = image.filter(ImageFilter.GaussianBlur(radius))
            pixels = np.asarray(image, dtype=np.float64) + rng.normal(0, noise, (*image.size[::-1], 3))
            Image.fromarray(np.clip(pixels, 0, 255).round().astype(np.uint8)).save(folder / f"{src.stem}.png")
        folders.append(folder)
    return folders


def test_official_layout_loads_strictly(layout):
    zeros = {k: torch.zeros(shape, dtype=torch.long if k.endswith("num_batches_tracked") else torch.float32)
             for k, shape in layout.items()}
    net = InceptionV3()
    net.load_state_dict(zeros, strict=True)
    assert set(net.state_dict()) == set(layout)
    assert "fc.weight" in layout and layout["fc.weight"] == [1008, 2048]


@pytest.mark.parametrize("dims", [64, 192, 768, 2048])
def test_features_match_pytorch_fid(weights, expected, dims, fixture_images):
    net, _ = fidmod.load_inception(weights)
    ours = fidmod.folder_features(fixture_images, net, dims=dims)
    theirs = expected[f"features_{dims}"]
    assert ours.shape == theirs.shape == (4, dims)
    assert np.abs(ours - theirs).max() <= 1e-4


@pytest.mark.parametrize("pair", ["ab", "cd", "ef"])   # regular, rank-deficient, dead feature columns
def test_frechet_distance_matches_pytorch_fid(expected, pair):
    stats = [fidmod.feature_statistics(expected[f"feats_{name}"]) for name in pair]
    ours = fidmod.calculate_frechet_distance(*stats[0], *stats[1])
    theirs = float(expected[f"fid_{pair}"])
    assert abs(ours - theirs) <= 1e-6 * abs(theirs)


@pytest.mark.slow
def test_fid_is_zero_on_itself_and_grows_with_degradation(weights, faces_levels, tmp_path):
    # dims=64 (pytorch-fid's --dims 64) keeps this fast: pool3 would need a 2048x2048 sqrtm per level.
    real = faces_levels[0]
    values = [fidmod.compute_fid(folder, real, weights, dims=64, cache_dir=tmp_path)
              for folder in faces_levels]
    assert abs(values[0]) < 1e-3 * values[1]
    assert values[0] < values[1] < values[2] < values[3]


def test_reference_stats_are_cached(weights, monkeypatch, tmp_path, fixture_images):
    reads = []
    real_read = fidmod.read_rgb
    monkeypatch.setattr(fidmod, "read_rgb", lambda path: reads.append(path) or real_read(path))
    folder = tmp_path / "real"
    folder.mkdir()
    for path in fixture_images.glob("*.png"):
        (folder / path.name).write_bytes(path.read_bytes())

    first = fidmod.compute_reference_stats(folder, weights, dims=64, cache_dir=tmp_path / "cache")
    assert first.path.is_file() and first.path.parent == tmp_path / "cache" / "fid-stats"
    assert first.num_images == 4 and len(reads) >= 4
    reads.clear()
    second = fidmod.compute_reference_stats(folder, weights, dims=64, cache_dir=tmp_path / "cache")
    assert reads == [] and second.path == first.path
    np.testing.assert_array_equal(second.sigma, first.sigma)

    # Changing the folder's images changes the key: stale statistics are never reused.
    Image.new("RGB", (64, 48), "white").save(folder / "4.png")
    third = fidmod.compute_reference_stats(folder, weights, dims=64, cache_dir=tmp_path / "cache")
    assert third.path != first.path and third.num_images == 5 and len(reads) >= 5


def _closed_port_url() -> str:
    with socket.socket() as s:        # bind, read the port, close: nothing listens there now
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/{fidmod.WEIGHTS_FILE}"


def test_missing_weights_offline_is_one_clear_line(monkeypatch, tmp_path):
    url = _closed_port_url()
    monkeypatch.setattr(fidmod, "WEIGHTS_URL", url)
    monkeypatch.delenv(fidmod.WEIGHTS_ENV, raising=False)
    monkeypatch.setenv("ANIMEGEN_CACHE", str(tmp_path))
    with pytest.raises(UserError) as err:
        fidmod.resolve_weights(None)
    message = str(err.value)
    assert "\n" not in message
    assert fidmod.WEIGHTS_FILE in message and url in message and "--inception-weights" in message
    assert not any(tmp_path.iterdir())             # no partial download left behind


def test_weights_resolution_order(monkeypatch, tmp_path, weights):
    monkeypatch.setenv("ANIMEGEN_CACHE", str(tmp_path))
    monkeypatch.setenv(fidmod.WEIGHTS_ENV, str(weights))
    assert fidmod.resolve_weights(None) == weights
    with pytest.raises(UserError, match="--inception-weights"):
        fidmod.resolve_weights(tmp_path / "nowhere.pth")
    monkeypatch.delenv(fidmod.WEIGHTS_ENV)
    cached = tmp_path / fidmod.WEIGHTS_FILE
    cached.write_bytes(b"")
    assert fidmod.resolve_weights(None) == cached


def test_wrong_weights_file_is_a_user_error(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="not the FID Inception weights"):
        fidmod.load_inception(junk)
    torch.save({"conv.weight": torch.zeros(1)}, junk)
    with pytest.raises(UserError, match="not the FID Inception weights"):
        fidmod.load_inception(junk)


def test_mixed_image_sizes_are_a_user_error(weights, tmp_path):
    Image.new("RGB", (32, 32)).save(tmp_path / "0.png")
    Image.new("RGB", (40, 32)).save(tmp_path / "1.png")
    net, _ = fidmod.load_inception(weights)
    with pytest.raises(UserError, match="one size"):
        fidmod.folder_features(tmp_path, net, dims=64)


def test_fid_is_registered_and_needs_real_images(tmp_path):
    assert METRICS["fid"] is fidmod.fid
    with pytest.raises(UserError, match="real"):
        fidmod.fid(EvalContext(images=tmp_path))


@pytest.mark.slow
def test_registered_metric_end_to_end(weights, tmp_path, fixture_images):
    """The pool3 FID through the registry; slow: sqrtm of a 2048x2048 product takes ~30 s here."""
    ctx = EvalContext(images=fixture_images, real=fixture_images,
                      inception_weights=str(weights), cache_dir=tmp_path)
    value = METRICS["fid"](ctx)["fid"]
    assert abs(value) < 1e-2, value
    assert len(list((tmp_path / "fid-stats").glob("*.npz"))) == 1
