"""Comparisons and the study export, on tiny models and the synthetic marker task."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from layerbridge.config import EvalConfig
from layerbridge.errors import ConfigError
from layerbridge.experiments.compare import run_comparison, summarize
from layerbridge.experiments.config import ExperimentConfig, recipe_path
from layerbridge.experiments.finished import restore_runs
from layerbridge.experiments.study import BUDGETS, export, study_recipe
from layerbridge.report.comparison import restart_lines, verdict
from tests.conftest import tiny_run_config


@pytest.fixture(scope="module")
def comparison(tiny_dir, marker_task, tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    config = tiny_run_config(
        tiny_dir, marker_task, out / "unused", max_steps=30, eval_every=15, save_every=15
    )
    summary = run_comparison(
        config,
        ["last", "global-softmax"],
        [1, 2],
        out,
        EvalConfig(limit=30, mode="both"),
        progress=False,
        log=lambda _: None,
    )
    return out, summary


def test_comparison_tables_and_paired_tests(comparison):
    out, summary = comparison
    assert summary["fusions"] == ["last", "global-softmax"] and summary["baseline"] == "last"
    stats = summary["table"]["global-softmax"]["languages"]["en"]
    assert len(stats["accuracy_per_seed"]) == 2
    assert stats["accuracy_mean"] == pytest.approx(np.mean(stats["accuracy_per_seed"]))
    sig = summary["significance"]["global-softmax"]["en"]
    assert sig["n"] == 30 and 0 <= sig["bootstrap"]["p_value"] <= 1 and 0 <= sig["mcnemar"]["p_value"] <= 1
    # the table agrees with the per-run JSON it was built from
    run = json.loads((out / "global-softmax" / "seed-2" / "eval" / "results.json").read_text())
    assert stats["accuracy_per_seed"][1] == run["languages"]["en"]["accuracy"]
    assert "| en | " in (out / "comparison.md").read_text()
    # where the runs trained is recorded and printed (one machine, one precision here)
    machine = summary["budget"]["last"]["machine"][0]
    assert machine["torch"] == torch.__version__ and "cpu_flags" in machine
    assert "- Machine (4 runs): " in (out / "comparison.md").read_text()
    # precision in the project's words (accelerate records fp32 as "no")
    assert summary["budget"]["last"]["precision"][0] == "no"
    assert "; precision fp32" in (out / "comparison.md").read_text()

    # each seed's own accuracy is printed, not only the mean ± std
    def cell(stats):
        seeds = " / ".join(f"{100 * a:.1f}" for a in stats["accuracy_per_seed"])
        test = stats["seed_range"]  # with the seeds' range and whether it exceeds item noise
        assert test["range"] == pytest.approx(abs(np.subtract(*stats["accuracy_per_seed"])))
        return f"{seeds} (range {100 * test['range']:.1f}, p={test['p_value']:.2f})"

    en = [summary["table"][f]["languages"]["en"] for f in ("last", "global-softmax")]
    row = "| en | " + " | ".join(cell(stats) for stats in en)
    assert row in (out / "comparison.md").read_text().split("Per seed (1 / 2)")[1]
    # the generation metric (mode "both") beside label scoring, from the same runs
    generation = summary["table"]["global-softmax"]["languages"]["en"]["generation"]
    assert generation["accuracy_per_seed"][1] == run["languages"]["en"]["generation"]["accuracy"]
    assert "Greedy generation, exact match" in (out / "comparison.md").read_text()
    # a second call reuses finished runs instead of retraining
    assert rerun(out, out)["table"] == summary["table"]


def rerun(out, folder):
    """The fixture's comparison again, into ``folder``: finished runs there are reused."""
    return run_comparison(
        json_config(out),
        ["last", "global-softmax"],
        [1, 2],
        folder,
        EvalConfig(limit=30, mode="both"),
        progress=False,
        log=lambda _: None,
    )


def json_config(out):
    from layerbridge.config import RunConfig

    return RunConfig.from_dict(json.loads((out / "comparison.json").read_text())["config"])


def test_study_export_writes_tables_plots_and_no_weights(comparison, tmp_path):
    out, summary = comparison
    record = {
        "budget": "test",
        "seeds": [1, 2],
        "fusions": ["last", "global-softmax"],
        "command": "pytest",
        "configs": {
            "marker": {"run": json_config(out).to_dict(), "eval": EvalConfig(limit=30).to_dict(), "steps": 30}
        },
        "hardware": {"cpu": "test", "cpu_cores": 2, "gpu": None, "torch": "x", "transformers": "y"},
        "train_seconds": {"marker": 1.0},
    }
    task_root = tmp_path / "runs"
    task_root.mkdir()
    (task_root / "marker").symlink_to(out, target_is_directory=True)
    export(task_root, tmp_path / "results", {"marker": summary}, record)
    results = tmp_path / "results"
    for name in (
        "README.md",
        "study.json",
        "marker/comparison.json",
        "marker/layer_weights.png",
        "marker/accuracy.png",
        "marker/runs/global-softmax/seed-1/predictions.json",
        "marker/runs/last/seed-2/results.csv",
    ):
        assert (results / name).is_file(), name
    assert not list(results.rglob("*.safetensors"))
    readme = (results / "README.md").read_text()
    assert "`global-softmax` vs `last`" in readme and "p = " in readme


def test_a_finished_run_is_reused_only_with_the_config_it_recorded(comparison):
    out, _ = comparison
    config = json_config(out)
    changed = config.replace(train=config.train.replace(lr=config.train.lr * 2))
    with pytest.raises(ConfigError, match=r"different config \(train\.lr: "):
        run_comparison(changed, ["last"], [1], out, EvalConfig(limit=30, mode="both"), progress=False)
    with pytest.raises(ConfigError, match=r"eval\.limit: 30 -> 20"):
        run_comparison(config, ["last"], [1], out, EvalConfig(limit=20, mode="both"), progress=False)


def test_a_comparison_is_not_continued_at_another_precision(comparison, tmp_path, monkeypatch):
    """Runs finished in bf16 (a native-bf16 machine) are not joined by a seed computed in fp32
    here: the comparison stops before training, naming both precisions and the way to match."""
    out, _ = comparison
    moved = tmp_path / "moved"
    shutil.copytree(out, moved, ignore=shutil.ignore_patterns("checkpoints", "best", "final"))
    for path in moved.rglob("summary.json"):
        path.write_text(json.dumps(json.loads(path.read_text()) | {"precision": "bf16"}))

    def no_training(*args, **kwargs):
        raise AssertionError("trained at another precision")

    monkeypatch.setattr("layerbridge.experiments.compare.train_and_test", no_training)
    config, eval_config = json_config(out), EvalConfig(limit=30, mode="both")
    with pytest.raises(ConfigError, match=r"in bf16, but this machine would compute the rest in fp32 "):
        run_comparison(config, ["last"], [1, 2, 3], moved, eval_config, progress=False, log=lambda _: None)
    # nothing left to compute: the finished runs are summarised wherever they ran
    assert run_comparison(config, ["last"], [1, 2], moved, eval_config, progress=False, log=lambda _: None)


def test_a_fresh_checkout_continues_from_the_committed_export(comparison, tmp_path, monkeypatch):
    """restore_runs puts the exported runs (no weights) back into a run folder; the comparison
    then reuses every one of them and trains nothing."""
    out, summary = comparison
    task_root = tmp_path / "runs"
    task_root.mkdir()
    (task_root / "marker").symlink_to(out, target_is_directory=True)
    record = {"budget": "test", "seeds": [1, 2], "fusions": ["last", "global-softmax"], "command": "pytest"}
    record |= {"configs": {}, "hardware": {}, "train_seconds": {}}
    monkeypatch.setattr("layerbridge.experiments.study.study_readme", lambda *a: "")
    export(task_root, tmp_path / "results", {"marker": summary}, record)
    fresh = tmp_path / "fresh" / "marker"
    assert restore_runs(tmp_path / "results" / "marker", fresh) == 4
    assert restore_runs(tmp_path / "results" / "marker", fresh) == 0  # never over a run that is there
    assert not list(fresh.rglob("*.safetensors"))

    def no_training(*args, **kwargs):
        raise AssertionError("a restored run was retrained")

    monkeypatch.setattr("layerbridge.experiments.compare.train_and_test", no_training)
    assert rerun(out, fresh)["table"] == summary["table"]


def test_a_task_counts_as_finished_only_with_every_grid_and_seed_run(tmp_path):
    """``study --tasks x`` keeps the other tasks in the export only when nothing is left to train."""
    from layerbridge.experiments.study import _finished

    recipe = ExperimentConfig(fusions=["last", "global-softmax"], seeds=[1, 2], run={}, lr_grid=[1e-3, 2e-3])
    needed = [
        tmp_path / "lr-grid" / f / f"lr-{lr:g}" / "summary.json"
        for f in recipe.fusions
        for lr in (1e-3, 2e-3)
    ]
    needed += [tmp_path / f / f"seed-{s}" / "eval" / "results.json" for f in recipe.fusions for s in (1, 2)]
    for path in needed:
        assert not _finished(tmp_path, recipe)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}")
    assert _finished(tmp_path, recipe)


def test_verdict_reads_the_paired_test():
    summary = {
        "baseline": "last",
        "significance": {
            "x": {
                "avg:all": {"bootstrap": {"delta": 0.042, "ci_low": 0.01, "ci_high": 0.07, "p_value": 0.01}}
            }
        },
    }
    assert "significantly better than `last`" in verdict(summary, "x")
    summary["significance"]["x"]["avg:all"]["bootstrap"].update(delta=-0.01, ci_low=-0.03, p_value=0.4)
    assert "no significant difference" in verdict(summary, "x")


def test_summarize_rejects_unpaired_runs():
    def run(uids):
        return {
            "results": {
                "languages": {"en": {"accuracy": 0.5, "macro_f1": 0.5, "accuracy_ci": [0, 1], "n": 2}}
            },
            "predictions": {"en": {"uid": uids, "gold": [0, 1], "pred": [0, 0]}},
            "train": {"best_dev_accuracy": 0.5},
        }

    with pytest.raises(ValueError, match="different en examples"):
        summarize({"last": {1: run(["a", "b"])}, "other": {1: run(["a", "c"])}}, [], "last")


def test_study_budgets_are_valid_configs():
    for budget in BUDGETS:
        recipe = study_recipe(budget)
        assert len(recipe.seeds) >= 2
        for task in recipe.task_names():
            config = recipe.run_config(task)
            assert config.task.name == task and config.bridge.encoder == "e5-small"
            assert config.train.max_steps and config.train.max_steps % config.train.eval_every == 0
            assert config.bridge.projector_norm == "rms"
            assert config.bridge.fusion_options == {"head_init": "zeros"}  # read by transformer-softmax
            assert recipe.eval_config(task).limit and recipe.eval_config(task).mode == "both"
        assert len(recipe.lr_grid) >= 2  # every fusion gets its own learning rate
    cpu = study_recipe("cpu")
    assert len(cpu.seeds) >= 3 and set(cpu.task_names()) == {"sib200", "xnli", "marc", "sinhala-news"}
    assert cpu.run_config("marc").bridge.max_length == 96 and cpu.run_config("xnli").bridge.max_length == 128
    assert cpu.eval_config("sib200").languages is None  # every SIB-200 language folder


def test_experiment_recipes_are_yaml_and_round_trip(tmp_path):
    """The quickstart recipe reads its run config from configs/quickstart.yaml; a recipe round-trips."""
    from layerbridge.config import RunConfig

    quick = ExperimentConfig.load(recipe_path("quickstart"))
    assert quick.fusions == ["last", "transformer-softmax"] and quick.task_names() == ["sinhala-news"]
    run = quick.run_config("sinhala-news")
    assert run.to_dict() == RunConfig.load(recipe_path("quickstart").parents[1] / "quickstart.yaml").to_dict()
    assert quick.eval_config("sinhala-news").languages == ["en", "si"]
    again = ExperimentConfig.from_json(study_recipe("cpu").to_json())
    assert again.run_config("marc") == study_recipe("cpu").run_config("marc")
    with pytest.raises(ConfigError, match="unknown section"):
        ExperimentConfig(fusions=["last"], seeds=[1], run={}, tasks={"xnli": {"optim": {}}})


def test_the_study_exports_each_run_as_it_finishes(comparison, tmp_path):
    """A task cut short keeps its finished runs in the export, in the layout restore_runs reads."""
    import shutil

    from layerbridge.experiments.study import exporter

    out, _ = comparison
    task_dir = tmp_path / "task"
    shutil.copytree(out / "last" / "seed-1", task_dir / "last" / "seed-1")
    shutil.copytree(out / "last" / "seed-1", task_dir / "lr-grid" / "last" / "lr-0.001")
    export_one = exporter(task_dir, tmp_path / "export")
    export_one(task_dir / "last" / "seed-1")
    export_one(task_dir / "lr-grid" / "last" / "lr-0.001")
    assert (tmp_path / "export" / "runs" / "last" / "seed-1" / "results.json").is_file()
    grid = tmp_path / "export" / "lr-grid" / "last" / "lr-0.001"
    assert sorted(p.name for p in grid.iterdir()) == ["config.yaml", "log.jsonl", "summary.json"]
    assert restore_runs(tmp_path / "export", tmp_path / "fresh") == 2


def test_study_training_time_counts_every_trained_run_once(tmp_path):
    """With a grid, the first seed's run is a copy of the grid's chosen run: counted once. A first
    seed that trained afresh (its grid run restored without weights) is counted too."""
    from layerbridge.experiments.study import _train_seconds

    def write(folder: str, summary: dict) -> None:
        (tmp_path / "t" / folder).mkdir(parents=True, exist_ok=True)
        (tmp_path / "t" / folder / "summary.json").write_text(json.dumps(summary))

    recipe = ExperimentConfig(fusions=["last"], seeds=[1, 2], run={}, lr_grid=[1e-3, 2e-3])
    write("lr-grid/last/lr-0.001", {"train_seconds": 10, "lr": 1e-3})
    write("lr-grid/last/lr-0.002", {"train_seconds": 20, "lr": 2e-3})
    write("last/seed-1", {"train_seconds": 20, "lr": 2e-3})  # the copied grid run
    write("last/seed-2", {"train_seconds": 5, "lr": 2e-3})
    assert _train_seconds(tmp_path, ["t"], recipe) == {"t": 35.0}
    no_grid = recipe.replace(lr_grid=[])
    assert _train_seconds(tmp_path, ["t"], no_grid) == {"t": 25.0}
    write("last/seed-1", {"train_seconds": 21, "lr": 2e-3})  # retrained: its own summary
    assert _train_seconds(tmp_path, ["t"], recipe) == {"t": 56.0}


def test_restarted_attempts_are_printed_with_their_extra_steps():
    stall = {"seed": 2, "step": 75, "dev_accuracy": 0.28, "constant_label_accuracy": 0.2, "p_value": 0.034}
    later = {**stall, "seed": 1002, "dev_accuracy": 0.24, "p_value": 0.19}
    [line] = restart_lines({"restarts": [[], [stall, later]]})
    assert "seed 2 at step 75 (English dev 28%, p = 0.03)" in line and "seed 1002" in line
    assert line.endswith("150 more steps trained")
    assert restart_lines({"restarts": [[], []]}) == [] and restart_lines({}) == []
