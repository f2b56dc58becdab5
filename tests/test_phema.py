"""Post-hoc EMA: the profile algebra, the snapshots a run stores (cadence, resume), and `animegen ema`."""

import json

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from scipy.integrate import quad

from animegen.cli import main
from animegen.data.dataset import load_images
from animegen.runs.config import EMAConfig
from animegen.runs.phema import list_snapshots, power_exponent, profile_inner, relative_std, solve
from animegen.runs.presets import preset_config
from animegen.training.diffusion_trainer import DiffusionTrainer
from animegen.training.ema import make_ema
from conftest import TINY


@pytest.fixture(scope="module")
def faces16(faces_dir):
    return load_images(faces_dir, 16, progress=False)


def tiny_cfg(**extra):
    # eager everywhere: `--compile auto` would compile these 10_000-step configs on a CPU with native bf16
    return preset_config("simple", {**TINY, "sample.every": 0, "save_every": 1000, "ema.kind": "power",
                                    "ema.every": 1, "compile": "off", **extra})


def profile(t: float, gamma: float):
    return lambda tau: (gamma + 1) * tau ** gamma / t ** (gamma + 1) if 0 < tau <= t else 0.0


@pytest.mark.parametrize("t_a,std_a,t_b,std_b", [(100, 0.05, 100, 0.10), (40, 0.10, 100, 0.05),
                                                  (100, 0.05, 37, 0.15), (5000, 0.03, 4750, 0.20)])
def test_profile_inner_product_equals_numeric_integration(t_a, std_a, t_b, std_b):
    g_a, g_b = power_exponent(std_a), power_exponent(std_b)
    assert relative_std(g_a) == pytest.approx(std_a, rel=1e-12)
    numeric, _ = quad(lambda tau: profile(t_a, g_a)(tau) * profile(t_b, g_b)(tau), 0, min(t_a, t_b),
                      epsabs=0, epsrel=1e-12, limit=200)
    assert float(profile_inner(t_a, g_a, t_b, g_b)) == pytest.approx(numeric, rel=1e-9)
    assert float(profile_inner(t_b, g_b, t_a, g_a)) == pytest.approx(numeric, rel=1e-9)  # symmetric


def test_the_tracked_ema_weighs_each_update_by_its_profile_mass():
    # the time axis of the solve: after t updates, update k's weight is the profile's mass over (k - 1, k]
    t, gamma = 60, power_exponent(0.10)
    net = torch.nn.Linear(t, 1, bias=False).double()
    ema = make_ema(net, EMAConfig(kind="power", std=0.10, every=1))
    for k in range(t):
        net.weight.data.zero_()
        net.weight.data[0, k] = 1.0  # update k + 1 holds the k-th unit vector
        ema.update_parameters(net)
    k = np.arange(1, t + 1)
    mass = (k ** (gamma + 1) - (k - 1) ** (gamma + 1)) / t ** (gamma + 1)
    np.testing.assert_allclose(ema.module.weight.detach().numpy()[0], mass, rtol=1e-10, atol=1e-15)


def test_reconstruction_of_widths_never_tracked_on_a_random_walk():
    # SGD-like weights (a random walk over 2000 updates); snapshots of 0.05 and 0.10 every 100 updates rebuild the
    # EMA of 0.075 and 0.15 within 1% of how far averaging moves the weights (measured: 0.02-0.04%), far closer
    # than the nearest stored width is
    torch.manual_seed(0)
    total, every, dim = 2000, 100, 64
    walk = torch.randn(total, dim, dtype=torch.float64).cumsum(0)
    stds = (0.05, 0.10, 0.075, 0.15)
    net = torch.nn.Linear(dim, 1, bias=False).double()
    emas = {s: make_ema(net, EMAConfig(kind="power", std=s, every=1)) for s in stds}
    times, gammas, stored = [], [], []
    for k in range(1, total + 1):
        net.weight.data[0] = walk[k - 1]
        for std, ema in emas.items():
            ema.update_parameters(net)
            if k % every == 0 and std in (0.05, 0.10):
                times.append(k)
                gammas.append(power_exponent(std))
                stored.append(ema.module.weight[0].detach().clone())
    stored = torch.stack(stored).numpy()
    last = {s: ema.module.weight[0].detach().numpy() for s, ema in emas.items()}
    for std, nearest in ((0.075, 0.10), (0.15, 0.10)):
        x, fit_error = solve(np.array(times), np.array(gammas), total, power_exponent(std))
        moved = np.linalg.norm(last[std] - walk[-1].numpy())
        error = np.linalg.norm(x @ stored - last[std]) / moved
        assert fit_error < 0.01 and error < 0.01, (std, fit_error, error)
        assert error < 0.05 * np.linalg.norm(last[nearest] - last[std]) / moved
    # a stored profile is its own reconstruction
    x, fit_error = solve(np.array(times), np.array(gammas), total, power_exponent(0.10))
    assert fit_error < 1e-6 and x[-1] == pytest.approx(1.0, abs=1e-9)


def snapshot_steps(run_dir) -> list[tuple[int, int, float]]:
    return [(s.step, s.updates, s.std) for s in list_snapshots(run_dir)]


def test_snapshots_follow_their_cadence_and_the_run_s_end(tmp_path, faces16):
    cfg = tiny_cfg(**{"steps": 7, "ema.every": 2, "ema.snapshot_every": 3, "ema.snapshot_stds": [0.05, 0.15]})
    DiffusionTrainer(cfg, tmp_path, faces16[:32]).run()
    # updates: the initial copy, then one every 2 steps; step 7 is the run's end
    assert snapshot_steps(tmp_path) == [(3, 2, 0.05), (3, 2, 0.15), (6, 4, 0.05), (6, 4, 0.15), (7, 4, 0.05),
                                        (7, 4, 0.15)]
    with safe_open(str(tmp_path / "phema" / "step-0000006-std-0.150.safetensors"), "pt") as handle:
        assert float(handle.metadata()["gamma"]) == pytest.approx(power_exponent(0.15))
        assert all(handle.get_tensor(k).dtype == torch.float16 for k in handle.keys())
    off = tmp_path / "off"
    off.mkdir()
    DiffusionTrainer(tiny_cfg(steps=2), off, faces16[:32]).run()
    assert not (off / "phema").exists()  # off unless asked for (the homework presets)


def test_resume_with_snapshots_is_bit_exact(tmp_path, faces16):
    cfg = tiny_cfg(**{"ema.snapshot_every": 2, "augment.hflip": True})
    straight = DiffusionTrainer(cfg, tmp_path / "a", faces16[:64])
    [straight.train_step() for _ in range(4)]

    first = DiffusionTrainer(cfg, tmp_path / "b", faces16[:64])
    [first.train_step() for _ in range(2)]
    ckpt = first.save()
    [first.train_step() for _ in range(2)]  # then killed: its snapshot of step 4 is past the checkpoint
    resumed = DiffusionTrainer(cfg, tmp_path / "b", faces16[:64])
    resumed.resume(ckpt)
    resumed.train_step()
    assert [s for s, _, _ in snapshot_steps(tmp_path / "b")] == [2, 2]  # step 4 waits to be made again
    resumed.train_step()
    names = sorted(p.name for p in (tmp_path / "a" / "phema").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "b" / "phema").iterdir()) and len(names) == 4
    for name in names:  # the tensors and metadata (safetensors orders its metadata keys at random: not the bytes)
        with safe_open(str(tmp_path / "a" / "phema" / name), "pt") as a, \
                safe_open(str(tmp_path / "b" / "phema" / name), "pt") as b:
            assert a.metadata() == b.metadata() and list(a.keys()) == list(b.keys())
            assert all(torch.equal(a.get_tensor(k), b.get_tensor(k)) for k in a.keys())
    for mine, theirs in zip(resumed.phema.trackers.values(), straight.phema.trackers.values()):
        assert all(torch.equal(p, q) for p, q in zip(mine.module.parameters(), theirs.module.parameters()))


@pytest.fixture(scope="module")
def snapshot_run(tmp_path_factory, faces16):
    """A run of 10 steps with the power EMA of width 0.10, snapshots of 0.05 and 0.10 every 4 steps and at 10."""
    run = tmp_path_factory.mktemp("run")
    DiffusionTrainer(tiny_cfg(**{"steps": 10, "ema.snapshot_every": 4}), run, faces16[:32]).run()
    return run


def test_the_run_s_own_width_rebuilt_equals_its_ema(snapshot_run, tmp_path, capsys):
    assert main(["ema", "--checkpoint", str(snapshot_run), "--std", "0.10,0.05,0.2", "--out", str(tmp_path)]) == 0
    assert "| 0.100 | 0.00% | 1.0 |" in capsys.readouterr().out
    own = load_file(snapshot_run / "checkpoints" / "step-0000010" / "ema.safetensors")
    rebuilt = load_file(tmp_path / "std-0.100" / "ema.safetensors")
    # the stored 0.10 profile is the target itself: coefficient 1 (others ~1e-16), so the only difference is the
    # snapshot's fp16 rounding, half an ulp: 2^-11 relative (2^-25 absolute below fp16's normal range)
    for name, value in own.items():
        assert rebuilt[name].dtype == torch.float16
        torch.testing.assert_close(rebuilt[name].float(), value, rtol=2.0 ** -11, atol=2.0 ** -25)
    card = json.loads((tmp_path / "std-0.200" / "phema.json").read_text())
    assert card["step"] == 10 and len(card["snapshots"]) == 6 and sum(s["coefficient"] for s in card["snapshots"]) \
        == pytest.approx(1.0)
    assert card["std"] == 0.2 and (tmp_path / "std-0.200" / "model.json").is_file()
    # a rebuilt width is a model folder like export's: generate takes it
    assert main(["generate", "--checkpoint", str(tmp_path / "std-0.200"), "--num", "2", "--out",
                 str(tmp_path / "faces")]) == 0
    assert sorted(p.name for p in (tmp_path / "faces").glob("*.jpg")) == ["1.jpg", "2.jpg"]


def test_ema_mistakes_get_one_line(snapshot_run, tmp_path, faces16, capsys):
    plain = tmp_path / "plain"
    plain.mkdir()
    DiffusionTrainer(tiny_cfg(steps=1), plain, faces16[:32]).run()
    capsys.readouterr()  # the progress bar
    (tmp_path / "full" / "std-0.100").mkdir(parents=True)
    (tmp_path / "full" / "std-0.100" / "x.txt").write_text("mine")
    for args, words in [((plain, "0.1", tmp_path / "o1"), "no post-hoc EMA snapshots"),
                        ((snapshot_run, "0.3", tmp_path / "o2"), "between 0 and 0.28"),
                        ((snapshot_run, "0,0.1", tmp_path / "o3"), "between 0 and 0.28"),
                        ((snapshot_run, "0.1", tmp_path / "full"), "not empty"),
                        ((tmp_path / "nowhere", "0.1", tmp_path / "o4"), "no checkpoint here")]:
        code = main(["ema", "--checkpoint", str(args[0]), "--std", args[1], "--out", str(args[2])])
        err = capsys.readouterr().err
        assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err
    assert (tmp_path / "full" / "std-0.100" / "x.txt").read_text() == "mine"
    with pytest.raises(SystemExit) as stop:  # argparse's own one line
        main(["ema", "--checkpoint", str(snapshot_run), "--std", "x", "--out", str(tmp_path / "o5")])
    assert stop.value.code == 2 and "comma-separated numbers" in capsys.readouterr().err


@pytest.mark.slow  # two models through two samplers, each scored against the 1000 real faces
def test_compare_scores_the_rebuilt_widths_side_by_side(snapshot_run, tmp_path, faces_dir, capsys):
    assert main(["ema", "--checkpoint", str(snapshot_run), "--std", "0.05,0.15", "--out", str(tmp_path)]) == 0
    folders = ",".join(str(tmp_path / f"std-{s}") for s in ("0.050", "0.150"))
    out = tmp_path / "report"
    assert main(["compare", "--checkpoint", folders, "--real", str(faces_dir), "--samplers", "ddim:2,dpmpp:2",
                 "--num", "3", "--metrics", "swd", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert [(r["model"], r["name"]) for r in report["rows"]] == [
        ("std-0.050", "ddim-2"), ("std-0.050", "dpmpp-2"), ("std-0.150", "ddim-2"), ("std-0.150", "dpmpp-2")]
    assert all(r["swd"] > 0 for r in report["rows"])
    assert (out / "report.md").read_text() in capsys.readouterr().out
    for name in ("std-0.050", "std-0.150"):  # each model's own report, as a single compare writes it
        assert len(list((out / name / "samples" / "ddim-2").glob("*.jpg"))) == 3
    assert (out / "models.png").stat().st_size > 0
    # the widths differ, so their faces do: the rows are of two models, not one model twice
    assert (out / "std-0.050" / "samples" / "ddim-2" / "1.jpg").read_bytes() != \
        (out / "std-0.150" / "samples" / "ddim-2" / "1.jpg").read_bytes()


def test_snapshot_settings_are_checked_where_they_are_parsed(capsys):
    for setting, words in [("ema.snapshot_every=-1", "ema.snapshot_every=-1: must be a whole number at least 0"),
                           ("ema.snapshot_stds=[0.05,0.3]", "ema.snapshot_stds"),
                           ("ema.snapshot_stds=[]", "ema.snapshot_stds"),
                           ("ema.snapshot_stds=[0.1,0.1]", "different widths")]:
        assert main(["train", "--set", setting, "--dry-run"]) == 2
        err = capsys.readouterr().err
        assert words in err and len(err.strip().splitlines()) == 1, err
    assert main(["train", "--preset", "cpu", "--dry-run"]) == 0
    ema = json.loads(capsys.readouterr().out)["ema"]
    assert (ema["snapshot_every"], ema["snapshot_stds"]) == (250, [0.05, 0.1])
