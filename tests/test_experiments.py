"""Comparisons and the study export, on tiny models and the synthetic marker task."""

from __future__ import annotations

import json

import numpy as np
import pytest

from layerbridge.config import EvalConfig
from layerbridge.experiments.compare import run_comparison, summarize
from layerbridge.experiments.study import BUDGETS, export, task_config, verdict
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
        EvalConfig(limit=30),
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
    # a second call reuses finished runs instead of retraining
    again = run_comparison(
        json_config(out),
        ["last", "global-softmax"],
        [1, 2],
        out,
        EvalConfig(limit=30),
        progress=False,
        log=lambda _: None,
    )
    assert again["table"] == summary["table"]


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
    for budget in BUDGETS.values():
        assert len(budget["seeds"]) >= 2
        for task in budget["tasks"]:
            config = task_config(task, None, eval_every=max(task.steps // 2, 1))
            assert config.train.max_steps == task.steps and config.bridge.encoder == "e5-small"
    assert len(BUDGETS["cpu"]["seeds"]) >= 3
    assert {t.name for t in BUDGETS["cpu"]["tasks"]} == {"xnli", "marc", "sinhala-news"}


def test_quickstart_yaml_is_the_quickstart_recipe():
    """configs/quickstart.yaml documents what `layerbridge quickstart` trains: they must not drift."""
    from pathlib import Path

    from layerbridge.config import RunConfig
    from layerbridge.experiments.quickstart import quickstart_config

    path = Path(__file__).resolve().parents[1] / "configs" / "quickstart.yaml"
    assert RunConfig.load(path).to_dict() == quickstart_config().to_dict()
