"""The paper-reproduction study: last vs global-softmax vs transformer-softmax on three tasks.

``layerbridge study`` trains every (task, fusion, seed) with English data only, selects each
run's checkpoint on English dev, evaluates it once on the test split of every language, and
writes

* ``<out>/<task>/…``            every run (checkpoints included; not for the repository);
* ``<export>/``                 what is committed: per-run results JSON/CSV/predictions,
  configs, logs and summaries (and the learning-rate grid's dev runs), per-task comparison
  tables with paired significance tests, layer-weight heatmaps, accuracy charts,
  ``study.json`` (configs, commands, hardware, wall time) and README.md.

The study outlives one sitting: run it again and it continues — from ``<out>`` on the same
machine, and from the committed ``<export>`` on a fresh checkout (finished runs are restored
from it and reused when their configs match the recipe's). Each run is exported as soon as it
finishes, so a sitting that ends mid-task loses at most the run in progress.

The budget is set for the machine at hand: ``--quick`` runs the whole pipeline in minutes
on a laptop CPU (numbers meaningless); the default CPU budget is estimated at ~9 hours on two
cores (one task per sitting: ``tasks``); the paper's own budget (100k examples x 3 epochs,
full test sets) needs a GPU.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from layerbridge.config import EvalConfig, RunConfig
from layerbridge.errors import ConfigError
from layerbridge.experiments.compare import all_finished, grid_dir, run_comparison, run_dir
from layerbridge.experiments.config import ExperimentConfig, recipe_path
from layerbridge.experiments.finished import export_run, restore_runs
from layerbridge.io import atomic_file, write_json
from layerbridge.report.comparison import (
    plot_accuracy_by_fusion,
    plot_layer_weights_by_fusion,
    study_readme,
    write_comparison,
)
from layerbridge.runtime import environment
from layerbridge.tasks import get_task

#: study budgets -> their recipes in configs/experiments/
BUDGETS = {"cpu": "study", "quick": "study-quick"}


def study_recipe(budget: str) -> ExperimentConfig:
    if budget not in BUDGETS:
        raise ConfigError(f"unknown study budget {budget!r}; choose one of: {', '.join(BUDGETS)}")
    return ExperimentConfig.load(recipe_path(BUDGETS[budget]))


def run_study(
    out_dir: str | Path = "runs/study",
    export_dir: str | Path | None = "results/study",
    budget: str = "cpu",
    data_dir: str | None = None,
    tasks: list[str] | None = None,
    log: Callable[[str], None] = print,
    command: str | None = None,
) -> dict[str, Any]:
    """Run (or continue) the study and export the committed artefacts.

    ``tasks`` runs only those; the export still holds every task whose runs are all finished
    (here or in the committed export), so the study can be run one task per sitting.
    """
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
    for task in known:
        if export_dir is not None:  # a fresh checkout continues from the committed runs
            restored = restore_runs(Path(export_dir) / task, out_dir / task)
            if restored:
                log(f"== {task}: restored {restored} finished runs from {Path(export_dir) / task}")
        if task not in chosen and not _finished(out_dir / task, recipe):
            continue  # not asked for and not done: left out of this export
        config, eval_config = recipe.run_config(task, data_dir), recipe.eval_config(task)
        configs[task] = {
            "run": config.to_dict(),
            "eval": eval_config.to_dict(),
            "steps": config.train.max_steps,
        }
        summaries[task] = _study_task(task, config, eval_config, recipe, out_dir, export_dir, log)
    record = {
        "budget": budget,
        "recipe": recipe.to_dict(),
        "seeds": list(recipe.seeds),
        "fusions": list(recipe.fusions),
        "command": command or " ".join(["layerbridge", *sys.argv[1:]]),
        "configs": configs,
        "hardware": environment(),
        "wall_seconds_this_invocation": round(time.time() - started, 1),
        "train_seconds": _train_seconds(out_dir, list(summaries), recipe),
    }
    if export_dir is not None:
        export(out_dir, Path(export_dir), summaries, record)
    return {"summaries": summaries, "record": record}


def _study_task(
    task: str,
    config: RunConfig,
    eval_config: EvalConfig,
    recipe: ExperimentConfig,
    out_dir: Path,
    export_dir: str | Path | None,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """One task of the study: every fusion x seed (at its grid-chosen rate), then the alignment
    probe of the trained bridges when the task has parallel test sets."""
    log(f"== {task}: {len(recipe.fusions)} fusions x seeds {recipe.seeds}, {config.train.max_steps} steps")
    summary = run_comparison(
        config,
        recipe.fusions,
        recipe.seeds,
        out_dir / task,
        eval_config,
        lr_grid=recipe.lr_grid,
        reuse=True,
        progress=False,
        log=log,
        on_finished=None if export_dir is None else exporter(out_dir / task, Path(export_dir) / task),
    )
    if export_dir is not None:
        probe_alignment(out_dir / task, Path(export_dir) / task, config, eval_config, recipe, log)
    return summary


#: English sentences (and their translations) per language in the study's alignment probe: with
#: 181 languages, 9,050 sentences per bridge (~4 min on 2 CPU cores; all 204 would take ~16)
PROBE_SENTENCES = 50


def probe_alignment(
    task_dir: Path,
    target: Path,
    config: RunConfig,
    eval_config: EvalConfig,
    recipe: ExperimentConfig,
    log: Callable[[str], None],
) -> None:
    """For a task with parallel test sets (SIB-200): how language-agnostic each fusion's trained
    bridge is — translation retrieval per encoder layer and for its fused and projected
    representations (:mod:`layerbridge.evaluation.alignment`), among :data:`PROBE_SENTENCES`
    English test sentences and their translations — for the first seed's selected bridge, into
    ``<target>/alignment/<fusion>/``. Done once; runs restored without weights keep
    the committed report."""
    from layerbridge.checkpoint import load_bridge
    from layerbridge.evaluation.alignment import ProbeModel, alignment_probe
    from layerbridge.languages import coverage_for
    from layerbridge.report.alignment import write_alignment_report

    task = get_task(config.task)
    if not task.parallel:
        return
    for fusion in recipe.fusions:
        best = run_dir(task_dir, fusion, recipe.seeds[0]) / "best"
        out = target / "alignment" / fusion
        if not (best / "bridge.safetensors").is_file() or (out / "alignment.json").is_file():
            continue
        log(f"{fusion} seed {recipe.seeds[0]}: alignment probe -> {out}")
        bridge = load_bridge(best)
        languages = eval_config.languages or list(task.eval_languages)
        coverage = coverage_for(bridge.config.encoder, eval_config.covered_languages)
        probe = alignment_probe(
            ProbeModel.of_bridge(bridge),
            task,
            languages,
            limit=PROBE_SENTENCES,
            coverage=coverage,
            progress=False,
        )
        probe |= {"encoder": bridge.config.encoder, "bridge": f"{fusion} seed {recipe.seeds[0]} ({best})"}
        write_alignment_report(probe, out)


def _finished(task_dir: Path, recipe: ExperimentConfig) -> bool:
    """Every run of one task is finished (so summarising it trains nothing)."""
    return all_finished(task_dir, recipe.fusions, recipe.seeds, recipe.lr_grid)


def _train_seconds(out_dir: Path, tasks: list[str], recipe: ExperimentConfig) -> dict[str, float]:
    """Training seconds per task over every run trained: the learning-rate grid and every seed's
    run, except a first seed's run that is a copy of its grid run (same summary) — counted once."""
    total = {}
    for task in tasks:
        grid = [grid_dir(out_dir / task, f, lr) for f in recipe.fusions for lr in recipe.lr_grid]
        runs = [run_dir(out_dir / task, f, s) for f in recipe.fusions for s in recipe.seeds]
        summaries = [_summary(folder) for folder in grid + runs]
        grid_texts = set(summaries[: len(grid)])
        trained = summaries[: len(grid)] + [text for text in summaries[len(grid) :] if text not in grid_texts]
        total[task] = round(sum(json.loads(text)["train_seconds"] for text in trained if text), 1)
    return total


def _summary(folder: Path) -> str:
    """The text of a run's summary.json ("" when it has not finished)."""
    path = folder / "summary.json"
    return path.read_text() if path.is_file() else ""


# ------------------------------------------------------------------------------------ export
def exporter(task_dir: Path, target: Path) -> Callable[[Path], None]:
    """Export one finished run of ``task_dir`` into ``target``'s layout (``runs/<fusion>/seed-<s>``,
    ``lr-grid/<fusion>/lr-<v>``) — called as each run finishes, so a task cut short keeps its
    finished runs in the export, and the next sitting restores them."""

    def export_one(folder: Path) -> None:
        relative = folder.relative_to(task_dir)
        grid = relative.parts[0] == "lr-grid"
        export_run(folder, target / (relative if grid else Path("runs") / relative), grid=grid)

    return export_one


def export(out_dir: Path, export_dir: Path, summaries: dict[str, dict], record: dict[str, Any]) -> None:
    """Copy results (no weights) and write tables, plots and README into ``export_dir``."""
    export_dir.mkdir(parents=True, exist_ok=True)
    for task, summary in summaries.items():
        target, export_one = export_dir / task, exporter(out_dir / task, export_dir / task)
        for fusion in summary["fusions"]:
            for seed in summary["table"][fusion]["seeds"]:
                export_one(run_dir(out_dir / task, fusion, seed))
        for grid_run in sorted((out_dir / task).glob("lr-grid/*/lr-*")):
            if (grid_run / "summary.json").is_file():
                export_one(grid_run)
        write_comparison(summary, target)  # + accuracy_sorted.png, gain_vs_baseline.png
        plot_layer_weights_by_fusion(summary, target / "layer_weights.png", task)
        plot_accuracy_by_fusion(summary, target / "accuracy.png", task)
    record["alignment"] = {
        task: [
            f for f in summary["fusions"] if (export_dir / task / "alignment" / f / "alignment.png").is_file()
        ]
        for task, summary in summaries.items()
    }
    write_json(export_dir / "study.json", record)
    with atomic_file(export_dir / "README.md", "w", encoding="utf-8") as handle:
        handle.write(study_readme(summaries, record))
