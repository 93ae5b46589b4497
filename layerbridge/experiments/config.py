"""Experiment recipes: which fusions and seeds, trained with which run config, tested how.

An experiment file (``configs/experiments/*.yaml``) is the single source of truth for what
``layerbridge quickstart`` and ``layerbridge study`` run::

    fusions: [last, transformer-softmax]
    seeds: [1, 2, 3]
    run: ../quickstart.yaml          # a run config file (relative to this file) or a mapping
    eval: {limit: 150}               # EvalConfig fields shared by every task
    tasks:                           # optional; default: the run config's own task
      xnli: {train: {max_steps: 200}, eval: {limit: 40}}   # per-task overrides (deep-merged)
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from layerbridge.config import ConfigMixin, EvalConfig, RunConfig
from layerbridge.errors import ConfigError

#: the recipes shipped with layerbridge (``configs/`` in the repository is this folder)
CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


def recipe_path(name: str) -> Path:
    """A shipped experiment recipe by name (``quickstart``, ``study``, ``study-quick``)."""
    path = CONFIG_DIR / "experiments" / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"no experiment recipe {name!r} in {path.parent}")
    return path


def deep_merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` applied recursively (a new dict; inputs unchanged)."""
    merged = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


@dataclass
class ExperimentConfig(ConfigMixin):
    fusions: list[str]
    seeds: list[int]
    #: the run config shared by every task: a mapping, or a file path relative to the recipe
    run: dict[str, Any] | str
    eval: dict[str, Any] = field(default_factory=dict)
    #: task name -> overrides of the run config's sections and of ``eval``
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: learning rates to choose from per fusion on English dev (empty: every fusion uses run's lr)
    lr_grid: list[float] = field(default_factory=list)
    #: where the recipe was read from (resolves a relative ``run`` path)
    source: str | None = None

    def __post_init__(self) -> None:
        if not self.fusions or not self.seeds:
            raise ConfigError("an experiment needs at least one fusion and one seed")
        if len(set(self.fusions)) != len(self.fusions) or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError("an experiment's fusions and seeds must not repeat a value")
        for name, changes in self.tasks.items():
            unknown = sorted(set(changes) - {"bridge", "task", "train", "eval"})
            if unknown:
                raise ConfigError(f"experiment task {name}: unknown section(s) {', '.join(unknown)}")

    @classmethod
    def load(cls, path: str | Path) -> ExperimentConfig:
        config = cls.from_file(path)
        config.source = str(Path(path).resolve())
        return config

    def base_run(self) -> dict[str, Any]:
        """The shared run config as a mapping (read from its file if ``run`` is a path)."""
        if isinstance(self.run, dict):
            return copy.deepcopy(self.run)
        root = Path(self.source).parent if self.source else Path.cwd()
        return RunConfig.from_file(root / self.run).to_dict()

    def task_names(self) -> list[str]:
        return list(self.tasks) or [RunConfig.from_dict(self.base_run()).task.name]

    def run_config(self, task: str, data_dir: str | None = None) -> RunConfig:
        """The RunConfig of ``task`` (fusion, seed and output folder are set per run)."""
        changes = {k: v for k, v in self.tasks.get(task, {}).items() if k != "eval"}
        merged = deep_merge(self.base_run(), changes | {"task": {"name": task}})
        if data_dir is not None:
            merged["task"]["data_dir"] = data_dir
        return RunConfig.from_dict(merged)

    def eval_config(self, task: str) -> EvalConfig:
        return EvalConfig.from_dict(deep_merge(self.eval, self.tasks.get(task, {}).get("eval", {})))
