"""The training recipe trains each fusion as designed: parametrisations, inits, options, diagnostics."""

from __future__ import annotations

import json
import math
import shutil
from unittest.mock import ANY

import pytest
import torch

from layerbridge.checkpoint import read_tensors, save_bridge
from layerbridge.config import EvalConfig, RunConfig, TrainConfig
from layerbridge.data.encoded import Collator, EncodedExamples
from layerbridge.data.types import Example
from layerbridge.errors import ConfigError
from layerbridge.evaluation.metrics import binomial_sf
from layerbridge.experiments.compare import run_comparison
from layerbridge.experiments.config import recipe_path
from layerbridge.modeling.fusion import TransformerSoftmaxFusion
from layerbridge.report.comparison import budget_lines
from layerbridge.training import TrainRecipe, train
from layerbridge.training.stall import stall_record
from tests.conftest import tiny_run_config
from tests.test_bridge import PROMPTS

#: the learning rate the quickstart recipe trains at (configs/quickstart.yaml)
QUICKSTART_LR = RunConfig.load(recipe_path("quickstart").parents[1] / "quickstart.yaml").train.lr


def _one_step_temperature_change(bridge) -> float:
    """Relative change of tau in one optimizer step (the third: the first moves only w, since
    softmax(tau * w) does not depend on tau while w = 0)."""
    train = TrainConfig(lr=QUICKSTART_LR, warmup_ratio=0.0)
    recipe = TrainRecipe(RunConfig(bridge=bridge.config, train=train))
    recipe.attach(bridge, total_steps=100)
    examples = [Example({"text": p}, i % 2, f"x/{i}") for i, p in enumerate(PROMPTS)]
    batch = Collator(EncodedExamples.build("{text}", examples, ["yes", "no"], bridge))(range(3))
    bridge.train()
    for _ in range(2):
        recipe.train_step([batch])
    before = float(bridge.fusion.temperature.detach())
    recipe.train_step([batch])
    return abs(float(bridge.fusion.temperature.detach()) - before) / before


def test_one_step_moves_the_global_softmax_temperature_by_less_than_5_percent(make_bridge):
    assert _one_step_temperature_change(make_bridge("bert", "global-softmax")) < 0.05
    # the reference parametrisation tau = 100 + 1e5 t moves by up to ~1e5 * lr per step (100-200 here)
    reference = make_bridge("bert", "global-softmax", fusion_options={"parametrisation": "reference"})
    assert _one_step_temperature_change(reference) > 0.2


def test_transformer_softmax_layer_positions_have_the_reference_scale():
    fusion = TransformerSoftmaxFusion(12, 384)  # e5-small's shape
    assert 0.95 < float(fusion.layer_position.detach().std()) < 1.05  # the reference's torch.randn(L, D)
    old = TransformerSoftmaxFusion(12, 384, position_std=0.02)
    assert 0.018 < float(old.layer_position.detach().std()) < 0.022


@pytest.mark.parametrize("schedule, last_lr", [("cosine", 0.0), ("linear", 0.0), ("constant", 1e-3)])
def test_learning_rate_schedule_after_the_warm_up(make_bridge, schedule, last_lr):
    bridge = make_bridge("bert", "last")
    train = TrainConfig(lr=1e-3, warmup_ratio=0.2, schedule=schedule)
    recipe = TrainRecipe(RunConfig(bridge=bridge.config, train=train))
    recipe.attach(bridge, total_steps=10)
    lrs = []
    for _ in range(10):
        recipe.optimizer.step()
        recipe.scheduler.step()
        lrs.append(recipe.scheduler.get_last_lr()[0])
    assert lrs[0] == pytest.approx(5e-4) and lrs[1] == pytest.approx(1e-3)  # 2 warm-up steps
    assert lrs[-1] == pytest.approx(last_lr, abs=1e-12)
    assert (schedule == "constant") == all(lr == pytest.approx(1e-3) for lr in lrs[1:])
    with pytest.raises(ConfigError, match="unknown train.schedule"):
        TrainConfig(schedule="step")


def test_fusion_and_boundary_learning_rates_are_their_own_parameter_groups(make_bridge):
    bridge = make_bridge("bert", "global-softmax")
    train = TrainConfig(lr=1e-3, fusion_lr=1e-2, boundary_lr=2e-2)
    recipe = TrainRecipe(RunConfig(bridge=bridge.config, train=train))
    recipe.attach(bridge, total_steps=10)
    groups = {g["name"]: g for g in recipe.optimizer.param_groups}
    assert {id(p) for p in groups["fusion"]["params"]} == {id(p) for p in bridge.fusion.parameters()}
    assert groups["boundary"]["params"] == [bridge.boundary] and groups["boundary"]["initial_lr"] == 2e-2
    assert groups["fusion"]["initial_lr"] == 1e-2 and groups["bridge"]["initial_lr"] == 1e-3
    assert {id(p) for p in groups["bridge"]["params"]} == {id(p) for p in bridge.projector.parameters()}
    with pytest.raises(ConfigError, match="boundary_lr must be positive"):
        TrainConfig(boundary_lr=0.0)


def test_encoder_dropout_option_keeps_the_frozen_encoder_in_train_mode(make_bridge):
    assert not make_bridge("bert", "last").train().encoder.training
    reference = make_bridge("bert", "last", encoder_dropout=True).train()
    assert reference.encoder.training and not reference.llm.training
    assert not any(p.requires_grad for p in reference.encoder.parameters())


def test_two_identical_cpu_runs_give_bitwise_identical_bridges(tiny_dir, marker_task, tmp_path):
    for name in ("a", "b"):
        config = tiny_run_config(
            tiny_dir, marker_task, tmp_path / name, max_steps=12, eval_every=6, save_every=0
        )
        train(
            config.replace(bridge=config.bridge.replace(fusion="global-softmax", fusion_options={})),
            progress=False,
        )
    for folder in ("best", "final"):
        a, b = (read_tensors(tmp_path / n / folder / "bridge.safetensors") for n in ("a", "b"))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), folder
        files = [(tmp_path / n / folder / "bridge.safetensors").read_bytes() for n in ("a", "b")]
        assert files[0] == files[1]


def test_log_window_soft_prompt_rms_is_that_of_the_real_tokens(make_bridge):
    """The logged prompt_rms is sqrt(mean over real tokens of mean_d s_id^2) of what the LLM read."""
    options = {"ffn_dim": 64, "dropout": 0.0}
    bridge = make_bridge("bert", "transformer-softmax", projector_norm="rms", fusion_options=options)
    recipe = TrainRecipe(RunConfig(bridge=bridge.config, train=TrainConfig(lr=1e-3)))
    recipe.attach(bridge, total_steps=10)
    examples = [Example({"text": p}, i % 2, f"x/{i}") for i, p in enumerate(PROMPTS)]
    batch = Collator(EncodedExamples.build("{text}", examples, ["yes", "no"], bridge))(range(3))
    bridge.train()
    with torch.no_grad():
        prompt, _ = bridge.soft_prompt(batch["input_ids"], batch["attention_mask"])  # [B, T, D]
    real = batch["attention_mask"].bool()
    expected = prompt.pow(2).mean(-1)[real].mean().sqrt()
    recipe.train_step([batch])
    *_, tokens, _, square = recipe.fusion_sums.tolist()
    assert tokens == real.sum()
    assert (square / tokens) ** 0.5 == pytest.approx(float(expected), rel=1e-5)
    # the RMS norm holds each vector at the LLM's embedding scale (the gain starts there)
    assert float(expected) == pytest.approx(recipe.embedding_rms, rel=1e-3)


def test_diagnostics_in_the_log_plots_and_last_epoch_selection(tiny_dir, marker_task, tmp_path):
    config = tiny_run_config(
        tiny_dir, marker_task, tmp_path / "run", max_steps=10, eval_every=5, save_every=0
    )
    config = config.replace(
        bridge=config.bridge.replace(fusion="global-softmax", fusion_options={}),
        train=config.train.replace(selection="last"),
    )
    result = train(config, progress=False)
    records = [json.loads(line) for line in (result.output_dir / "log.jsonl").read_text().splitlines()]
    dev = [r for r in records if r["event"] == "dev"]
    assert [r["step"] for r in dev] == [5, 10]
    for r in dev:
        assert len(r["layer_weights"]) == 3 and sum(r["layer_weights"]) == pytest.approx(1, abs=1e-5)
        assert 0 <= r["layer_entropy"] <= 1 and r["temperature"] > 0
    train_records = [r for r in records if r["event"] == "train"]
    assert train_records and all("temperature" in r for r in train_records)
    for r in train_records:  # the fusion's weights over each log window's training tokens
        assert len(r["layer_weights"]) == 3 and sum(r["layer_weights"]) == pytest.approx(1, abs=1e-5)
        assert 0 <= r["layer_entropy"] <= 1 and 0 <= r["token_entropy"] <= r["layer_entropy"] + 1e-6
        assert r["prompt_rms"] > 0 and r["embedding_rms"] > 0
        assert 0 < r["grad_norm"] <= r["grad_norm_max"]  # before clipping
    assert (result.output_dir / "training.png").stat().st_size > 10_000
    # selection "last": best/ is the final weights, whatever dev said
    best, final = (read_tensors(result.output_dir / f / "bridge.safetensors") for f in ("best", "final"))
    assert all(torch.equal(best[k], final[k]) for k in final)
    assert result.summary["best_step"] == 10


def test_learning_rate_grid_chooses_per_fusion_on_english_dev(tiny_dir, marker_task, tmp_path):
    config = tiny_run_config(
        tiny_dir, marker_task, tmp_path / "unused", max_steps=20, eval_every=10, save_every=0
    )
    finished, messages = [], []
    cmp = tmp_path / "cmp"
    summary = run_comparison(
        config, ["last"], [1, 2], cmp, EvalConfig(limit=20), lr_grid=[1e-5, 3e-3], progress=False,
        log=messages.append, on_finished=finished.append,
    )  # fmt: skip
    chosen = summary["lr_selection"]["last"]
    assert set(chosen["grid"]) == {"1e-05", "0.003"} and chosen["lr"] in (1e-5, 3e-3)
    assert chosen["grid"][f"{chosen['lr']:g}"] == max(chosen["grid"].values())
    seed_1, grid_run = cmp / "last" / "seed-1", cmp / "lr-grid" / "last" / f"lr-{chosen['lr']:g}"
    run = RunConfig.from_file(seed_1 / "config.yaml")
    assert run.train.lr == chosen["lr"] and run.train.output_dir == str(seed_1)  # tested at the chosen rate
    assert summary["budget"]["last"]["steps"] == [20, 20]
    assert summary["budget"]["last"]["examples_seen"] == [160, 160]
    minutes = sum(summary["budget"]["last"]["train_seconds"]) / 60  # the tested seeds', not the grid's
    assert f"{minutes:.1f} min training for its 2 seeds" in budget_lines(summary)[0]
    # the first seed's run is the grid run at the chosen rate, tested, not trained again
    assert sum("training ->" in m for m in messages) == 1  # seed 2 only
    best = [read_tensors(folder / "best" / "bridge.safetensors") for folder in (seed_1, grid_run)]
    assert best[0].keys() == best[1].keys() and all(torch.equal(best[0][k], best[1][k]) for k in best[0])
    assert not (cmp / "last" / "seed-1.partial").exists()
    # every run is reported as it finishes (the study exports it there and then)
    grid = [cmp / "lr-grid" / "last" / v for v in ("lr-1e-05", "lr-0.003")]
    assert finished == [*grid, seed_1, cmp / "last" / "seed-2"]


def test_global_softmax_bridges_saved_with_the_reference_parametrisation_still_load(make_bridge, tmp_path):
    from layerbridge.checkpoint import load_bridge

    old = make_bridge("bert", "global-softmax", fusion_options={"parametrisation": "reference"})
    with torch.no_grad():
        old.fusion.t.fill_(2e-5)
    folder = save_bridge(old, tmp_path / "old")
    meta = json.loads((folder / "bridge_config.json").read_text())
    meta["bridge"]["fusion_options"] = {}  # as written before the option existed
    (folder / "bridge_config.json").write_text(json.dumps(meta))
    loaded = load_bridge(folder, device="cpu")
    assert loaded.fusion.parametrisation == "reference" and float(
        loaded.fusion.temperature.detach()
    ) == pytest.approx(102)


def test_a_grid_run_without_weights_is_not_adopted(tiny_dir, marker_task, tmp_path):
    """A grid run restored from an export (logs, no weights) cannot be tested: the seed trains."""
    from layerbridge.experiments.compare import adopt_grid_run

    source = tmp_path / "lr-grid" / "last" / "lr-0.001"
    source.mkdir(parents=True)
    (source / "summary.json").write_text("{}")
    config = tiny_run_config(tiny_dir, marker_task, tmp_path / "last" / "seed-1", max_steps=5)
    adopt_grid_run(source, config, log=lambda _: None)
    assert not (tmp_path / "last" / "seed-1").exists()


def test_binomial_tail_matches_the_exact_sum():
    exact = sum(math.comb(100, i) * 0.2**i * 0.8 ** (100 - i) for i in range(30, 101))
    assert binomial_sf(30, 100, 0.2) == pytest.approx(exact, rel=1e-9)
    assert binomial_sf(10, 10, 0.5) == pytest.approx(0.5**10)
    assert binomial_sf(0, 10, 0.5) == 1.0 and binomial_sf(11, 10, 0.5) == 0.0
    assert 0 < binomial_sf(600, 2000, 0.25) < 1e-6  # no overflow at large n


def test_stall_record_flags_a_run_no_better_than_one_label():
    labels = [0] * 25 + [1] * 25 + [2] * 50  # one label alone scores 0.5
    assert stall_record(0.52, labels, seed=3, step=50)["stalled"]
    healthy = stall_record(0.70, labels, seed=3, step=50)
    assert not healthy["stalled"] and healthy["constant_label_accuracy"] == 0.5
    assert healthy["p_value"] < 1e-4


def test_a_stalled_run_restarts_as_the_run_with_the_next_restart_seed(tiny_dir, marker_task, tmp_path):
    """At lr 1e-9 nothing is learnt, so every stall check fails: the run restarts once (max_restarts
    1) from seed 7 + 1000, trains on, and ends bitwise where a fresh run with seed 1007 ends."""
    runs = {}
    for name, seed, restarts in (("restarted", 7, 1), ("fresh", 1007, 0)):
        config = tiny_run_config(
            tiny_dir, marker_task, tmp_path / name, max_steps=6, eval_every=0, seed=seed,
            lr=1e-9, stall_check=2, max_restarts=restarts, save_every=4,
        )  # fmt: skip
        runs[name] = train(config, progress=False)
    summary = runs["restarted"].summary
    assert summary["seed"] == 1007 and runs["fresh"].summary["restarts"] == []
    [restart] = summary["restarts"]
    assert restart["seed"] == 7 and restart["step"] == 2 and restart["stalled"]
    assert restart["dev_accuracy"] <= restart["constant_label_accuracy"] + 0.15
    records = [json.loads(line) for line in (tmp_path / "restarted" / "log.jsonl").read_text().splitlines()]
    assert records[0]["event"] == "start" and records[0]["restarts"] == [restart]
    assert [r["seed"] for r in records if r["event"] == "stall_check"] == [1007]  # this attempt's check
    stalled_log = (tmp_path / "restarted" / "log.stalled-seed-7.jsonl").read_text().splitlines()
    assert json.loads(stalled_log[-1]) == {"event": "stall_check", **restart, "time": ANY}
    recorded = RunConfig.load(tmp_path / "restarted" / "config.yaml")
    assert recorded.train.seed == 7  # the run as asked; summary.json says what it trained from
    a, b = (read_tensors(tmp_path / n / "final" / "bridge.safetensors") for n in ("restarted", "fresh"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # --resume from the step-4 checkpoint continues as seed 1007 (data order too), not seed 7
    shutil.copytree(tmp_path / "restarted", tmp_path / "resumed")
    for name in ("final", "best", "summary.json"):
        path = tmp_path / "resumed" / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    folder = tmp_path / "resumed"
    config = RunConfig.load(folder / "config.yaml", [f"train.output_dir={folder}"])
    resumed = train(config, resume=True, progress=False)
    assert resumed.summary["seed"] == 1007 and resumed.summary["restarts"] == [restart]
    c = read_tensors(tmp_path / "resumed" / "final" / "bridge.safetensors")
    assert all(torch.equal(a[k], c[k]) for k in a)
    with pytest.raises(ConfigError, match="stall_check"):
        TrainConfig(max_steps=50, stall_check=50)


def test_a_stall_check_past_the_last_epoch_step_is_refused_before_anything_is_written(
    tiny_dir, marker_task, tmp_path
):
    """With ``epochs`` the number of steps is known only once the data are encoded; a stall check
    at or after the last step would silently never run, so it is an error — raised before the
    run folder is created."""
    out = tmp_path / "run"
    config = tiny_run_config(
        tiny_dir, marker_task, out, max_steps=None, epochs=1, eval_every=0, stall_check=10_000, max_restarts=1
    )
    with pytest.raises(ConfigError, match=r"stall_check \(10000\) must come before the last step"):
        train(config, progress=False)
    assert not out.exists()
