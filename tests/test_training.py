"""Training: the recipe learns, resumes exactly after SIGKILL, runs under `accelerate launch`."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from layerbridge.checkpoint import read_tensors
from layerbridge.config import RunConfig
from layerbridge.errors import ConfigError, TrainingError
from layerbridge.training import train
from layerbridge.training.recipe import NONFINITE_LIMIT, TrainRecipe
from layerbridge.training.state import checkpoint_dirs, flatten, unflatten
from tests.conftest import tiny_run_config

ROOT = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    env.pop("LAYERBRIDGE_DEBUG", None)
    return env


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "layerbridge.cli.main", *args]


def test_recipe_trains_selects_best_and_writes_run_folder(tiny_dir, marker_task, tmp_path):
    config = tiny_run_config(
        tiny_dir, marker_task, tmp_path / "run", max_steps=150, grad_accum=2, eval_every=50, save_every=50
    )
    result = train(config, progress=False)
    out = result.output_dir
    for name in (
        "config.yaml",
        "log.jsonl",
        "summary.json",
        "best/bridge.safetensors",
        "final/bridge.safetensors",
    ):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 150 and summary["best_step"] in (50, 100, 150)
    assert summary["best_dev_accuracy"] >= 0.8, summary
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if r["event"] == "train"]
    assert losses[-1] < losses[0]
    dev = [r for r in records if r["event"] == "dev"]
    assert [r["step"] for r in dev] == [50, 100, 150]
    assert max(r["dev_accuracy"] for r in dev) == summary["best_dev_accuracy"]
    assert RunConfig.from_file(out / "config.yaml") == config  # the run's config round-trips
    assert [p.name for p in checkpoint_dirs(out)] == ["step-000050", "step-000100"]
    with pytest.raises(ConfigError, match="already holds a run"):
        train(config, progress=False)


def test_state_flattening_round_trips_optimizer_state():
    param = torch.nn.Parameter(torch.randn(3, 2))
    optimizer = torch.optim.AdamW([param], lr=1e-3, betas=(0.8, 0.999))
    param.grad = torch.randn(3, 2)
    optimizer.step()
    tensors: dict[str, torch.Tensor] = {}
    skeleton = json.loads(json.dumps(flatten(optimizer.state_dict(), tensors)))
    restored = unflatten(skeleton, tensors)
    assert restored["param_groups"][0]["betas"] == (0.8, 0.999)
    assert torch.equal(restored["state"][0]["exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"])
    fresh = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(3, 2))], lr=1.0)
    fresh.load_state_dict(restored)
    assert fresh.param_groups[0]["lr"] == 1e-3


@pytest.mark.slow
def test_sigkill_then_resume_equals_uninterrupted_run(tiny_dir, marker_task, tmp_path):
    """Kill a CPU run part-way; --resume must end with the same bridge weights (1e-6)."""
    steps = 300
    base = tiny_run_config(
        tiny_dir,
        marker_task,
        tmp_path / "x",
        max_steps=steps,
        save_every=25,
        eval_every=50,
        grad_accum=2,
        log_every=25,
    )
    configs = {}
    for name in ("straight", "killed"):
        configs[name] = tmp_path / f"{name}.yaml"
        run = base.replace(train=base.train.replace(output_dir=str(tmp_path / name)))
        configs[name].write_text(run.to_yaml())

    subprocess.run(_cli("train", "-c", str(configs["straight"])), env=_env(), check=True, capture_output=True)

    proc = subprocess.Popen(
        _cli("train", "-c", str(configs["killed"])),
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    killed_dir = tmp_path / "killed"
    deadline = time.time() + 120
    while time.time() < deadline:
        done = checkpoint_dirs(killed_dir)
        if done and int(done[-1].name.split("-")[1]) >= 75:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    reached = int(checkpoint_dirs(killed_dir)[-1].name.split("-")[1])
    assert 75 <= reached < steps, "the run must be killed part-way"
    assert not (killed_dir / "final").exists()

    resumed = subprocess.run(
        _cli("train", "-c", str(configs["killed"]), "--resume"), env=_env(), capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a = read_tensors(tmp_path / "straight" / "final" / "bridge.safetensors")
    b = read_tensors(killed_dir / "final" / "bridge.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6, rtol=0), key
    straight = json.loads((tmp_path / "straight" / "summary.json").read_text())
    again = json.loads((killed_dir / "summary.json").read_text())
    assert straight["best_dev_accuracy"] == again["best_dev_accuracy"]
    assert straight["best_step"] == again["best_step"]


@pytest.mark.slow
def test_two_process_cpu_run_through_accelerate_launch(tiny_dir, marker_task, tmp_path):
    config = tiny_run_config(tiny_dir, marker_task, tmp_path / "ddp", max_steps=6, save_every=3, eval_every=3)
    path = tmp_path / "ddp.yaml"
    path.write_text(config.to_yaml())
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",  # = torchrun; without CUDA the recipe selects multi-CPU (gloo)
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "-m",
        "layerbridge.cli.main",
        "train",
        "-c",
        str(path),
    ]
    done = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 6
    assert (tmp_path / "ddp" / "checkpoints" / "step-000003" / "rng-rank1.safetensors").is_file()
    assert (tmp_path / "ddp" / "best" / "bridge.safetensors").is_file()


def test_compiled_llm_trains_to_the_same_loss(tiny_dir, marker_task, tmp_path):
    """train.compile only changes how the decoder runs, not what it computes."""
    eager = train(
        tiny_run_config(
            tiny_dir, marker_task, tmp_path / "eager", max_steps=4, eval_every=0, save_every=0, log_every=1
        ),
        progress=False,
    )
    compiled = train(
        tiny_run_config(
            tiny_dir,
            marker_task,
            tmp_path / "compiled",
            max_steps=4,
            eval_every=0,
            save_every=0,
            log_every=1,
            compile=True,
        ),
        progress=False,
    )
    losses = [
        [
            json.loads(x)["loss"]
            for x in (r.output_dir / "log.jsonl").read_text().splitlines()
            if '"train"' in x
        ]
        for r in (eager, compiled)
    ]
    assert losses[0] == pytest.approx(losses[1], abs=1e-4)


def _poisoned_loss_steps(monkeypatch, bad: set[int]) -> None:
    """Make the optimizer steps numbered in ``bad`` (1-based) see a NaN loss."""
    original, calls = TrainRecipe.loss_step, {"n": 0}

    def loss_step(self, batch):
        out = original(self, batch)
        calls["n"] = self.loop.step + 1
        return dataclasses.replace(out, loss=out.loss * float("nan")) if calls["n"] in bad else out

    monkeypatch.setattr(TrainRecipe, "loss_step", loss_step)


def test_nonfinite_steps_are_skipped_and_counted(tiny_dir, marker_task, tmp_path, monkeypatch):
    _poisoned_loss_steps(monkeypatch, {3, 4})
    config = tiny_run_config(tiny_dir, marker_task, tmp_path / "r", max_steps=12, eval_every=0, save_every=0)
    result = train(config, progress=False)
    summary = json.loads((result.output_dir / "summary.json").read_text())
    assert summary["skipped_steps"] == 2 and summary["steps"] == 12
    # without the skip, one NaN update would have made every weight NaN
    assert all(torch.isfinite(t).all() for t in result.bridge.bridge_state_dict().values())
    logged = [json.loads(line) for line in (result.output_dir / "log.jsonl").read_text().splitlines()]
    assert [r["skipped_steps"] for r in logged if r["event"] == "train"][-1] == 2


def test_a_diverged_run_stops_with_an_error_and_no_result(tiny_dir, marker_task, tmp_path, monkeypatch):
    _poisoned_loss_steps(monkeypatch, set(range(5, 100)))
    config = tiny_run_config(tiny_dir, marker_task, tmp_path / "r", max_steps=40, eval_every=0, save_every=0)
    with pytest.raises(TrainingError, match=f"not finite for {NONFINITE_LIMIT} optimizer steps in a row"):
        train(config, progress=False)
    assert not (tmp_path / "r" / "summary.json").exists()
