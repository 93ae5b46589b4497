"""The quickstart: a real, small experiment that runs on a laptop CPU in about ten minutes.

With the built-in models (e5-small encoder, SmolLM2-135M LLM) it trains two bridges on
English BBC news — Transformer Softmax (all 12 encoder layers, token-wise weights) and the
LangBridge last-layer baseline — and tests both on English and, zero-shot, on Sinhala news.
The recipe is ``configs/experiments/quickstart.yaml`` (its run config: ``configs/quickstart.yaml``).

The budget is deliberately small, so the numbers are noisy; ``layerbridge study`` runs the
full comparison.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from layerbridge.experiments.compare import run_comparison
from layerbridge.experiments.config import ExperimentConfig, recipe_path


def quickstart_recipe() -> ExperimentConfig:
    return ExperimentConfig.load(recipe_path("quickstart"))


def run_quickstart(
    out_dir: str | Path = "runs/quickstart",
    steps: int | None = None,
    limit: int | None = None,
    data_dir: str | None = None,
    progress: bool = True,
    log=print,
    seeds: list[int] | None = None,
) -> dict[str, Any]:
    """Train both bridges, evaluate them, and return the comparison summary.

    ``steps`` / ``limit`` / ``seeds`` override the recipe's optimizer steps, test examples per
    language and seeds.
    """
    recipe = quickstart_recipe()
    if seeds:
        recipe = recipe.replace(seeds=list(seeds))
    (task,) = recipe.task_names()
    config = recipe.run_config(task, data_dir)
    if steps is not None:
        config = config.replace(train=config.train.replace(max_steps=steps))
    eval_config = recipe.eval_config(task)
    if limit is not None:
        eval_config = eval_config.replace(limit=limit)
    return run_comparison(
        config,
        recipe.fusions,
        recipe.seeds,
        out_dir,
        eval_config,
        lr_grid=recipe.lr_grid,
        reuse=False,
        progress=progress,
        log=log,
    )
