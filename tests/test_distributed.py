"""torch.distributed on this CPU (gloo): real torchrun processes, and DDP's first step against one process."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from conftest import SMALL_GAN, TINY
from animegen.data.dataset import BatchSampler, load_images
from animegen.training.distributed import DistEnv, env_from_launcher
from animegen.training.gan_trainer import GANTrainer
from animegen.training.diffusion_trainer import DiffusionTrainer
from animegen.runs.presets import preset_config

TINY_ARGS = [x for key, value in TINY.items() for x in ("--set", f"{key}={json.dumps(value)}")]
GAN_ARGS = [x for key, value in SMALL_GAN.items() for x in ("--set", f"{key}={json.dumps(value)}")]


def torchrun(*args: str, nproc: int = 2, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_port",
           str(free_port()), "-m", "animegen", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_torchrun_two_processes_train_save_once_and_resume(tmp_path, faces_dir):
    run = tmp_path / "R"
    common = ["train", "--data", str(faces_dir), "--out", str(run), *TINY_ARGS, "--set", "sample.every=0",
              "--set", "save_every=4"]
    first = torchrun(*common, "--steps", "4")
    assert first.stdout.count("run directory:") == 1  # rank 0 alone speaks
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]  # one log, written by rank 0 only
    assert all(0 < r["loss"] < 10 for r in rows)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-0000004"]
    state = torch.load(run / "checkpoints" / "step-0000004" / "state.pt", weights_only=True)
    assert len(state["ranks"]) == 2  # each rank's data order and RNG, for an exact resume

    torchrun(*common, "--resume", "--steps", "6")
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows][-2:] == [5, 6]
    assert (run / "latest").read_text().strip() == "checkpoints/step-0000006"


@pytest.mark.slow
def test_torchrun_two_processes_train_the_boss_preset_and_resume(tmp_path, faces_dir):
    run = tmp_path / "G"
    common = ["train", "--data", str(faces_dir), "--preset", "boss", "--out", str(run), *GAN_ARGS,
              "--set", "save_every=3"]
    torchrun(*common, "--steps", "3")
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3] and all(r["loss_D"] > 0 for r in rows)
    state = torch.load(run / "checkpoints" / "step-0000003" / "state.pt", weights_only=True)
    assert len(state["ranks"]) == 2
    torchrun(*common, "--resume", "--steps", "4")
    assert (run / "latest").read_text().strip() == "checkpoints/step-0000004"


def _join_gloo(rank: int, port: int) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)


def two_ranks(worker, tmp_path: Path, images: torch.Tensor) -> list[dict]:
    """Run worker(rank, port, out, images) in 2 gloo processes; what each saved to out/rank{r}.pt."""
    mp.spawn(worker, args=(free_port(), str(tmp_path), images), nprocs=2, join=True)
    return [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]


def _gan_worker(rank: int, port: int, out: str, images: torch.Tensor) -> None:
    """One rank of a 2-process StyleGAN2 run: 3 steps with R1 and path length, then its weights."""
    _join_gloo(rank, port)
    cfg = preset_config("boss", {**SMALL_GAN, "optim.pl_weight": 2.0, "optim.pl_every": 2})
    trainer = GANTrainer(cfg, Path(out) / f"rank{rank}", images, env=DistEnv(rank, 2, rank), device="cpu")
    for _ in range(3):
        trainer.train_step()
    torch.save({"G": trainer.G.state_dict(), "D": trainer.D.state_dict(), "pl_mean": trainer.loss.pl_mean},
               Path(out) / f"rank{rank}.pt")
    dist.destroy_process_group()


@pytest.mark.slow
def test_gan_ranks_stay_identical_replicas_with_r1_and_path_length(tmp_path, faces_dir):
    images = load_images(faces_dir, SMALL_GAN["model.image_size"], progress=False)[:64]
    ranks = two_ranks(_gan_worker, tmp_path, images)
    for net in ("G", "D"):  # gradients averaged after every phase: the weights agree bit for bit
        for key, value in ranks[0][net].items():
            if key == "mapping.w_avg":  # the truncation mean tracks each rank's own latents
                continue
            assert torch.equal(value, ranks[1][net][key]), f"{net}.{key} differs between ranks"
    assert ranks[0]["pl_mean"] == ranks[1]["pl_mean"] > 0  # the path-length target is averaged over ranks
    fresh = GANTrainer(preset_config("boss", SMALL_GAN), tmp_path / "fresh", images, device="cpu")
    assert not torch.equal(fresh.G.state_dict()["const"], ranks[0]["G"]["const"])  # and they did move


@pytest.mark.slow
def test_a_user_mistake_under_torchrun_stops_every_rank_with_one_message(tmp_path):
    proc = torchrun("train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "R"), *TINY_ARGS,
                    check=False)  # a rank left waiting in a collective would hang here until the timeout
    assert proc.returncode != 0
    assert proc.stderr.count("animegen: error:") == 1 and "no such folder" in proc.stderr
    assert not (tmp_path / "R" / "checkpoints").exists()


def wake_output_layer(trainer: DiffusionTrainer) -> None:
    """The UNet's output conv starts at zero, so a first step would move it alone; give it small seeded
    weights (the same on every rank) so that every layer gets a gradient in the step under test."""
    with torch.no_grad():
        trainer.denoiser.net.out.weight.copy_(torch.randn(trainer.denoiser.net.out.weight.shape,
                                                          generator=torch.Generator().manual_seed(5)) * 0.05)


# fp32: the test compares DDP's gradient reduction with one process to 1e-5, below bf16 autocast's rounding (on a
# CPU with AVX512-BF16, bf16 "auto" is on)
FIRST_STEP = {**TINY, "optim.batch_size": 8, "bf16": "off"}


def _first_step_worker(rank: int, port: int, out: str, images: torch.Tensor) -> None:
    """One DDP rank: record its batch indices and RNG, take one optimizer step, report the weights."""
    _join_gloo(rank, port)
    cfg = preset_config("simple", FIRST_STEP)
    trainer = DiffusionTrainer(cfg, Path(out) / f"rank{rank}", images, env=DistEnv(rank, 2, rank), device="cpu")
    wake_output_layer(trainer)
    sampler_state = trainer.sampler.state_dict()
    generator_state = trainer.generator.get_state()
    trainer.train_step()
    weights = {k: v.clone() for k, v in trainer.denoiser.net.state_dict().items()}
    grads = {k: p.grad.clone() for k, p in trainer.denoiser.net.named_parameters()}  # averaged over ranks, clipped
    torch.save({"sampler": sampler_state, "generator": generator_state, "weights": weights, "grads": grads},
               Path(out) / f"rank{rank}.pt")
    dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_first_step_equals_one_process_on_the_same_global_batch_and_noise(tmp_path, faces_dir):
    images = load_images(faces_dir, TINY["model.image_size"], progress=False)[:64]
    ranks = two_ranks(_first_step_worker, tmp_path, images)
    for key in ranks[0]["weights"]:  # DDP keeps the replicas identical
        torch.testing.assert_close(ranks[0]["weights"][key], ranks[1]["weights"][key], rtol=0, atol=0)

    # one process, global batch 8 = rank 0's 4 images then rank 1's 4, with the noise each rank drew
    cfg = preset_config("simple", FIRST_STEP)
    single = DiffusionTrainer(cfg, tmp_path / "single", images, device="cpu")
    wake_output_layer(single)
    x0, t, eps = [], [], []
    for rank, saved in enumerate(ranks):
        sampler = BatchSampler(len(images), 4, cfg.seed, rank, 2)
        sampler.load_state_dict(saved["sampler"])  # the shard and position rank `rank` drew its batch from
        x = (images[sampler.next()].float() / 255 * 2 - 1).contiguous(memory_format=torch.channels_last)
        generator = torch.Generator().set_state(saved["generator"])
        t_r, eps_r = single.loss_fn.draw(single.denoiser, x, generator)
        x0.append(x), t.append(t_r), eps.append(eps_r)
    single.optimizer.zero_grad()
    loss = single.loss_fn(single.denoiser, torch.cat(x0), t=torch.cat(t), eps=torch.cat(eps)).mean()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(single.denoiser.net.parameters(), cfg.optim.grad_clip)
    for group in single.optimizer.param_groups:
        group["lr"] = single.lr_at(0)
    single.optimizer.step()
    fresh = DiffusionTrainer(cfg, tmp_path / "fresh", images, device="cpu")
    wake_output_layer(fresh)
    before = fresh.denoiser.net.state_dict()
    for key, param in single.denoiser.net.named_parameters():  # the step's gradient, to 1e-5
        torch.testing.assert_close(ranks[0]["grads"][key], param.grad, rtol=0, atol=1e-5)
    grads = dict(single.denoiser.net.named_parameters())
    moved = 0
    for key, value in single.denoiser.net.state_dict().items():
        # Adam's first step is lr * g / (|g| + eps): where g is float noise (DDP sums in another order) that
        # ratio is noise too, so weights are compared where the gradient is clearly non-zero
        clear = grads[key].grad.abs() > 1e-4 if key in grads else torch.ones_like(value, dtype=torch.bool)
        torch.testing.assert_close(ranks[0]["weights"][key][clear], value[clear], rtol=0, atol=1e-5)
        moved += int(not torch.equal(value, before[key]))
    # the step moved many tensors, so the comparison is not trivial (zero-initialised residual branches keep
    # the layers before them still at step 1)
    assert moved > len(before) // 4


def _sync_worker(rank: int, port: int, out: str, images: torch.Tensor) -> None:
    """One rank: the same first step with DDP's hooks and with the all-reduce the CUDA graph holds (eager here)."""
    _join_gloo(rank, port)
    result = {}
    for sync in ("ddp", "allreduce"):
        cfg = preset_config("simple", {**FIRST_STEP, "dist_sync": sync})
        trainer = DiffusionTrainer(cfg, Path(out) / f"{sync}{rank}", images, env=DistEnv(rank, 2, rank),
                                   device="cpu")
        assert trainer.compile.grad_sync == sync
        wake_output_layer(trainer)
        trainer.train_step()
        result[sync] = {"grads": {k: p.grad.clone() for k, p in trainer.denoiser.net.named_parameters()},
                        "weights": {k: v.clone() for k, v in trainer.denoiser.net.state_dict().items()}}
    torch.save(result, Path(out) / f"rank{rank}.pt")
    dist.destroy_process_group()


@pytest.mark.slow
def test_gradients_all_reduced_inside_the_step_equal_ddps(tmp_path, faces_dir):
    images = load_images(faces_dir, TINY["model.image_size"], progress=False)[:64]
    ranks = two_ranks(_sync_worker, tmp_path, images)
    for key, grad in ranks[0]["ddp"]["grads"].items():
        # the same mean gradient over both ranks' batches (DDP divides before summing, the flat all-reduce after)
        torch.testing.assert_close(ranks[0]["allreduce"]["grads"][key], grad, rtol=0, atol=1e-6)
        assert torch.equal(ranks[0]["allreduce"]["grads"][key], ranks[1]["allreduce"]["grads"][key])
    for key, value in ranks[0]["allreduce"]["weights"].items():  # and the replicas stay identical
        assert torch.equal(value, ranks[1]["allreduce"]["weights"][key])
    moved = sum(int(not torch.equal(g, torch.zeros_like(g))) for g in ranks[0]["allreduce"]["grads"].values())
    assert moved > len(ranks[0]["allreduce"]["grads"]) // 4  # most tensors got a gradient: not a trivial match


def test_a_launcher_starts_the_distributed_path_even_for_one_process(monkeypatch):
    # torchrun --nproc_per_node 1 sets WORLD_SIZE=1 and a rendezvous: one GPU runs (and checks) the N-GPU path
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR"):
        monkeypatch.delenv(name, raising=False)
    assert not env_from_launcher().enabled  # a plain process
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert not env_from_launcher().enabled  # a stray WORLD_SIZE without a rendezvous is not a launch
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    env = env_from_launcher()
    assert env.enabled and env.world_size == 1 and env.is_main
