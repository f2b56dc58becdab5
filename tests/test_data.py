"""The loader: odd image modes, broken files, archives, the decoded cache, and batch augmentations."""

import logging
import os
import shutil
import tarfile
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from animegen.core.errors import UserError
from animegen.core.imagefiles import list_images
from animegen.data.augment import AugmentConfig, augment
from animegen.data.dataset import BatchSampler, load_images
from animegen.data.sources import open_source


def make_zoo(folder, faces_dir):
    """A folder of 9 decodable images in odd formats and sizes, 4 files that are not images, and links that
    lead nowhere or in circles (returns the counts of good and bad image files)."""
    folder.mkdir()
    face = Image.open(sorted(faces_dir.iterdir())[0]).convert("RGB")
    face.convert("L").save(folder / "grey.png")
    rgba = face.convert("RGBA")
    rgba.putalpha(128)
    rgba.save(folder / "rgba.png")
    face.convert("P", palette=Image.Palette.ADAPTIVE).save(folder / "palette.png")
    face.convert("CMYK").save(folder / "cmyk.jpg")
    deep = Image.fromarray(np.asarray(face.convert("L"), dtype=np.uint16) * 257)
    assert deep.mode.startswith("I;16")
    deep.save(folder / "deep.png")
    sub = folder / "nested"
    sub.mkdir()
    face.save(sub / "plain.jpg")
    Image.new("RGB", (1, 1), (200, 30, 30)).save(folder / "one.png")
    Image.new("RGB", (8000, 8000), (30, 200, 30)).save(folder / "huge.jpg", quality=50)
    frames = [face, face.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    frames[0].save(folder / "anim.webp", save_all=True, append_images=frames[1:], duration=100, loop=0)
    (sub / "loop").symlink_to(folder, target_is_directory=True)  # a walk that followed it would never end
    (folder / "gone.jpg").symlink_to(folder / "does-not-exist.jpg")
    raw = (faces_dir / sorted(os.listdir(faces_dir))[1]).read_bytes()
    (folder / "truncated.jpg").write_bytes(raw[: len(raw) // 3])
    (folder / "notes.jpg").write_text("this is not an image")
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "readme.txt").write_text("ignored: not an image suffix")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    return 9, 4


def test_modes_and_broken_files(tmp_path, faces_dir, caplog):
    good, bad = make_zoo(tmp_path / "zoo", faces_dir)
    with caplog.at_level(logging.WARNING):
        images = load_images(tmp_path / "zoo", 32, progress=False)
    assert images.shape == (good, 3, 32, 32) and images.dtype == torch.uint8
    warnings = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(warnings) == 1 and f"skipped {bad} of {good + bad}" in warnings[0]
    # grey-derived images stay grey after conversion to RGB; the 16-bit one is not clipped to white
    good_names = {"anim.webp", "cmyk.jpg", "deep.png", "grey.png", "huge.jpg", "nested/plain.jpg", "one.png",
                  "palette.png", "rgba.png"}
    by_name = [n for n in open_source(tmp_path / "zoo").names if n in good_names]  # the loader's order
    assert len(by_name) == good
    deep = images[by_name.index("deep.png")].float()
    assert (deep[0] - deep[1]).abs().max() <= 1 and 40 < deep.mean() < 220
    # the 1x1 and 8000x8000 images become flat squares of their colour; an animation gives its first frame
    assert images[by_name.index("one.png")].float().mean(dim=(1, 2)).round().tolist() == [200, 30, 30]
    huge = images[by_name.index("huge.jpg")].float().mean(dim=(1, 2))
    assert (huge - torch.tensor([30.0, 200.0, 30.0])).abs().max() < 4
    face = images[by_name.index("nested/plain.jpg")].float()
    assert (images[by_name.index("anim.webp")].float() - face).abs().mean() < 8


def test_centre_crop_and_resize(tmp_path):
    folder = tmp_path / "wide"
    folder.mkdir()
    array = np.zeros((10, 30, 3), np.uint8)
    array[:, :10] = (255, 0, 0)
    array[:, 10:20] = (0, 255, 0)
    array[:, 20:] = (0, 0, 255)
    Image.fromarray(array).save(folder / "a.png")
    out = load_images(folder, 8, progress=False)[0].float()
    assert out[1].mean() > 250 and out[0].mean() < 5 and out[2].mean() < 5  # only the green middle survives


def test_archives_match_the_folder_and_cache_is_reused(tmp_path, faces_dir):
    src = tmp_path / "faces"
    src.mkdir()
    for name in sorted(os.listdir(faces_dir))[:20]:
        shutil.copy(faces_dir / name, src / name)
    folder = load_images(src, 32, progress=False)
    with zipfile.ZipFile(tmp_path / "faces.zip", "w") as z:
        for f in sorted(src.iterdir()):
            z.write(f, f"faces/{f.name}")
    with tarfile.open(tmp_path / "faces.tar.gz", "w:gz") as t:
        t.add(src, arcname="faces")
    assert torch.equal(load_images(tmp_path / "faces.zip", 32, progress=False), folder)
    assert torch.equal(load_images(tmp_path / "faces.tar.gz", 32, progress=False), folder)
    cache = list((tmp_path.parent / "cache").rglob("*.npy")) or list(
        (__import__("animegen.core.paths", fromlist=["x"]).user_cache_dir() / "datasets").glob("*.npy"))
    assert len([c for c in cache if "32px" in c.name]) >= 3
    # a second load reads the cache: deleting the source files must not matter...
    stamp = {c: c.stat().st_mtime_ns for c in cache}
    assert torch.equal(load_images(src, 32, progress=False), folder)
    assert all(c.stat().st_mtime_ns == stamp[c] for c in cache)
    # ...and changing a file changes the key, so the change is seen
    (src / sorted(os.listdir(src))[0]).unlink()
    assert load_images(src, 32, progress=False).shape[0] == 19


def test_nothing_usable_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="no such folder"):
        load_images(tmp_path / "missing", 32, progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no images found"):
        load_images(tmp_path / "empty", 32, progress=False)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.jpg").write_text("nope")
    with pytest.raises(UserError, match="could be decoded"):
        load_images(tmp_path / "junk", 32, progress=False)


def test_augmentations_are_batched_seeded_and_bounded():
    x = torch.rand(64, 3, 16, 16)
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    assert torch.equal(augment(x, AugmentConfig(), g()), x)
    flipped = augment(x, AugmentConfig(hflip=True), g())
    same = (flipped == x).flatten(1).all(1)
    mirrored = (flipped == x.flip(-1)).flatten(1).all(1)
    assert (same | mirrored).all() and 10 < mirrored.sum() < 54
    full = AugmentConfig(hflip=True, rotate_deg=10, brightness=0.25, contrast=0.25)
    a, b = augment(x, full, g()), augment(x, full, g())
    assert torch.equal(a, b) and a.min() >= 0 and a.max() <= 1 and not torch.equal(a, x)
    # a 10 degree rotation moves pixels only a little: the image stays close to the original
    rotated = augment(x, AugmentConfig(rotate_deg=10), g())
    assert (rotated - x).abs().mean() < (x - x[torch.randperm(64)]).abs().mean()


def test_batch_sampler_covers_each_epoch_and_resumes():
    s = BatchSampler(10, 4, seed=1)
    first = torch.cat([s.next(), s.next()])
    assert len(set(first.tolist())) == 8
    state = s.state_dict()
    nxt = [s.next().tolist() for _ in range(3)]
    t = BatchSampler(10, 4, seed=99)
    t.load_state_dict(state)
    assert [t.next().tolist() for _ in range(3)] == nxt
    shards = [BatchSampler(10, 2, seed=1, rank=r, world_size=2).next() for r in range(2)]
    assert not set(shards[0].tolist()) & set(shards[1].tolist())


def make_folder_with_animegen_outputs(root, faces_dir) -> tuple[set[str], int]:
    """The user's faces beside every kind of folder animegen writes: (the user's image names, the number of image
    files inside animegen's folders)."""
    faces = sorted(faces_dir.glob("*.jpg"))[:8]

    def put(src, dst):
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, dst)

    mine = {"1.jpg", "2.jpg", "nested/3.jpg", "meta/4.jpg"}
    for k, name in enumerate(sorted(mine)):
        put(faces[k], root / name)
    (root / "meta" / "config.json").write_text("{}")  # a data set's own config.json: not a run without a run's files
    ours = {
        "gen/1.jpg": 4, "gen/2.jpg": 5, "gen/.animegen-generate.json": None,              # a generation folder
        "run/config.json": None, "run/log.jsonl": None, "run/loss.png": 5,                 # a run directory
        "run/samples/step-0000002.png": 6, "run/eval/real/1.jpg": 7, "run/checkpoints/step-0000002/config.json": None,
        ".gen.tmp-4242/1.jpg": 4, ".gen.old-4243/1.jpg": 5,                                # two staging folders
        "report/report.json": None, "report/report.md": None, "report/samplers.png": 6,   # a compare report
        "report/samples/ddim-2/1.jpg": 7, "report/samples/ddim-2/.animegen-generate.json": None,
    }
    for name, face in ours.items():
        if face is None:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text("{}")
        else:
            put(faces[face], root / name)
    return mine, sum(face is not None for face in ours.values())


def test_data_discovery_leaves_out_what_animegen_wrote(tmp_path, faces_dir, caplog):
    root = tmp_path / "faces"
    mine, ours = make_folder_with_animegen_outputs(root, faces_dir)
    with caplog.at_level(logging.WARNING):
        source = open_source(root)
    assert set(source.names) == mine
    notes = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
    assert len(notes) == 1 and f"left out {ours} image files that animegen wrote" in notes[0], notes
    for words in ("a generation folder (gen)", "a run directory (run)", "2 staging folders (.gen.old-4243, "
                  ".gen.tmp-4242)", "a comparison report (report)"):
        assert words in notes[0], notes[0]
    assert len(load_images(root, 16, progress=False)) == len(mine)
    # the folder given is always read, even one animegen wrote: `evaluate --images submission`
    assert [p.name for p in list_images(root / "gen")] == ["1.jpg", "2.jpg"]


@pytest.mark.parametrize("kind", ["zip", "gztar"])
def test_archives_leave_out_what_animegen_wrote(tmp_path, faces_dir, caplog, kind):
    root = tmp_path / "faces"
    mine, ours = make_folder_with_animegen_outputs(root, faces_dir)
    # zip: one top folder "faces/" (the archive's root); tar: members at the root ("./1.jpg")
    archive = shutil.make_archive(str(tmp_path / "faces"), kind, *((tmp_path, "faces") if kind == "zip" else (root,)))
    with caplog.at_level(logging.WARNING):
        names = open_source(archive).names
    assert {n.split("/", 1)[1] if kind == "zip" else n.removeprefix("./") for n in names} == mine
    notes = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
    assert len(notes) == 1 and f"left out {ours} image files" in notes[0] and "a run directory (" in notes[0]
    # a zipped generation folder alone is read whole, as the folder would be
    gen_zip = shutil.make_archive(str(tmp_path / "gen"), "zip", root, "gen")
    assert sorted(open_source(gen_zip).names) == ["gen/1.jpg", "gen/2.jpg"]
