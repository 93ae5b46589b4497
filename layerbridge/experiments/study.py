"""The paper-reproduction study: last vs global-softmax vs transformer-softmax on three tasks.

``layerbridge study`` trains every (task, fusion, seed) with English data only, selects each
run's checkpoint on English dev, evaluates it once on the test split of every language, and
writes

* ``<out>/<task>/…``            every run (checkpoints included; not for the repository);
* ``<export>/``                 what is committed: per-run results JSON/CSV/predictions,
  per-task comparison tables with paired significance tests, layer-weight heatmaps,
  accuracy charts, ``study.json`` (configs, commands, hardware, wall time) and README.md.

The budget is set for the machine at hand: ``--quick`` runs the whole pipeline in minutes
on a laptop CPU (numbers meaningless); the default CPU budget takes a few hours on two
cores; the paper's own budget (100k examples x 3 epochs, full test sets) needs a GPU.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from layerbridge.errors import ConfigError
from layerbridge.experiments.compare import run_comparison, run_dir
from layerbridge.experiments.config import ExperimentConfig, recipe_path
from layerbridge.io import atomic_file, write_json
from layerbridge.report.comparison import (
    comparison_markdown,
    plot_accuracy_by_fusion,
    plot_layer_weights_by_fusion,
    study_readme,
)
from layerbridge.runtime import environment

#: study budgets -> their recipes in configs/experiments/
BUDGETS = {"cpu": "study", "quick": "study-quick"}


def study_recipe(budget: str) -> ExperimentConfig:
    if budget not in BUDGETS:
        raise ConfigError(f"unknown study budget {budget!r}; choose one of: {', '.join(BUDGETS)}")
    return ExperimentConfig.load(recipe_path(BUDGETS[budget]))


def run_study(
    out_dir: str | Path = "runs/study",
    export_dir: str | Path | None = "results",
    budget: str = "cpu",
    data_dir: str | None = None,
    tasks: list[str] | None = None,
    log: Callable[[str], None] = print,
    command: str | None = None,
) -> dict[str, Any]:
    """Run (or continue) the study and export the committed artefacts."""
    recipe = study_recipe(budget)
    known = recipe.task_names()
    unknown = sorted(set(tasks or ()) - set(known))
    if unknown or (tasks is not None and not tasks):
        raise ConfigError(
            f"unknown study task(s) {', '.join(unknown) or '(none)'}; choose from: {', '.join(known)}"
        )
    out_dir = Path(out_dir)
    chosen = [t for t in known if tasks is None or t in tasks]
    started = time.time()
    summaries, configs = {}, {}
    for task in chosen:
        config, eval_config = recipe.run_config(task, data_dir), recipe.eval_config(task)
        steps = config.train.max_steps
        configs[task] = {"run": config.to_dict(), "eval": eval_config.to_dict(), "steps": steps}
        log(f"== {task}: {len(recipe.fusions)} fusions x seeds {recipe.seeds}, {steps} steps")
        summaries[task] = run_comparison(
            config,
            recipe.fusions,
            recipe.seeds,
            out_dir / task,
            eval_config,
            lr_grid=recipe.lr_grid,
            reuse=True,
            progress=False,
            log=log,
        )
    record = {
        "budget": budget,
        "recipe": recipe.to_dict(),
        "seeds": list(recipe.seeds),
        "fusions": list(recipe.fusions),
        "command": command or " ".join(["layerbridge", *sys.argv[1:]]),
        "configs": configs,
        "hardware": environment(),
        "wall_seconds_this_invocation": round(time.time() - started, 1),
        "train_seconds": _train_seconds(out_dir, chosen, recipe),
    }
    if export_dir is not None:
        export(out_dir, Path(export_dir), summaries, record)
    return {"summaries": summaries, "record": record}


def _train_seconds(out_dir: Path, tasks: list[str], recipe: ExperimentConfig) -> dict[str, float]:
    total = {}
    for task in tasks:
        seconds = 0.0
        for fusion in recipe.fusions:
            for seed in recipe.seeds:
                path = run_dir(out_dir / task, fusion, seed) / "summary.json"
                if path.is_file():
                    seconds += json.loads(path.read_text())["train_seconds"]
        total[task] = round(seconds, 1)
    return total


# ------------------------------------------------------------------------------------ export
def export(out_dir: Path, export_dir: Path, summaries: dict[str, dict], record: dict[str, Any]) -> None:
    """Copy results (no weights) and write tables, plots and README into ``export_dir``."""
    export_dir.mkdir(parents=True, exist_ok=True)
    for task, summary in summaries.items():
        target = export_dir / task
        for fusion in summary["fusions"]:
            for seed in summary["table"][fusion]["seeds"]:
                _copy_run(run_dir(out_dir / task, fusion, seed), target / "runs" / fusion / f"seed-{seed}")
        write_json(target / "comparison.json", summary)
        with atomic_file(target / "comparison.md", "w", encoding="utf-8") as handle:
            handle.write(comparison_markdown(summary))
        plot_layer_weights_by_fusion(summary, target / "layer_weights.png", task)
        plot_accuracy_by_fusion(summary, target / "accuracy.png", task)
    write_json(export_dir / "study.json", record)
    with atomic_file(export_dir / "README.md", "w", encoding="utf-8") as handle:
        handle.write(study_readme(summaries, record))


def _copy_run(source: Path, dest: Path) -> None:
    """A run's results and logs (never its weights)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("results.json", "results.csv", "predictions.json", "results.md"):
        shutil.copy2(source / "eval" / name, dest / name)
    for name in ("summary.json", "config.yaml", "log.jsonl"):
        shutil.copy2(source / name, dest / name)
