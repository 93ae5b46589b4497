"""Finished runs: reuse one only when it is the run asked for; restore them from an export.

A comparison (or the study) is continued by running it again: a finished (fusion, seed) is
reused instead of retrained. It is reused only when its recorded run config equals the one the
comparison would train now, and its evaluation config the one it would test with — fields that
say where or how fast a run went, not what it computed, are left out of the comparison
(:data:`IGNORED`). A run that differs is an error naming the first differences, never silently
mixed into a table.

The committed export of a study (``results/``, no weights) holds every finished run's config,
log, summary, results and predictions, and the learning-rate grid's dev runs. A fresh
checkout continues the study from there: :func:`restore_runs` copies them back into the run
folder, where the same check then decides whether they are reused.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from layerbridge.config import EvalConfig, RunConfig
from layerbridge.errors import ConfigError
from layerbridge.io import load_yaml
from layerbridge.runtime import accelerate_mixed_precision, precision_label
from layerbridge.training.state import checkpoint_dirs

#: run-config fields that change where or how fast a run went, not what it computed
IGNORED = frozenset(
    {
        "train.output_dir",
        "task.data_dir",
        "train.num_workers",
        "train.tensorboard",
        "train.encoder_cache",
        "train.encoder_cache_dir",
        "train.keep_checkpoints",
        "train.save_every",
        "train.compile",
    }
)
EVAL_IGNORED = frozenset({"encoder_cache", "encoder_cache_dir"})

#: what a run folder holds besides its weights, and where: (name in the export, path in the run)
#: (the last of each is the file that marks a run finished: summary.json, eval/results.json)
RUN_FILES = (
    ("config.yaml", "config.yaml"),
    ("log.jsonl", "log.jsonl"),
    ("summary.json", "summary.json"),
    ("results.csv", "eval/results.csv"),
    ("results.md", "eval/results.md"),
    ("predictions.json", "eval/predictions.json"),
    ("results.json", "eval/results.json"),
)
GRID_FILES = RUN_FILES[:3]  # a learning-rate grid run is trained and selected on dev, never tested


def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in data.items():
        if isinstance(value, dict) and key not in ("fusion_options", "projector_options", "labels", "spec"):
            out |= _flat(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def differences(recorded: dict[str, Any], intended: dict[str, Any], ignored: frozenset[str]) -> list[str]:
    """``"field: recorded -> intended"`` for every field whose values differ (lists compare as
    lists, so a YAML list and a JSON tuple of the same values are equal)."""
    a, b = _flat(recorded), _flat(intended)
    norm = lambda v: list(v) if isinstance(v, tuple) else v  # noqa: E731
    return [
        f"{key}: {a.get(key)!r} -> {b.get(key)!r}"
        for key in sorted(set(a) | set(b))
        if key not in ignored and norm(a.get(key)) != norm(b.get(key))
    ]


def recorded_config(folder: Path) -> dict[str, Any]:
    """The run config a run folder recorded, with the defaults of fields added since filled in."""
    path = folder / "config.yaml"
    try:
        return RunConfig.from_dict(load_yaml(path.read_text(encoding="utf-8"))).to_dict()
    except (OSError, ConfigError) as err:
        raise ConfigError(f"{folder} holds a run whose config cannot be read ({err})") from None


def check_reusable(folder: Path, config: RunConfig, eval_config: EvalConfig | None = None) -> None:
    """Raise unless the finished run in ``folder`` is the one ``config`` (and ``eval_config``,
    for a tested run) would produce now."""
    diffs = differences(recorded_config(folder), config.to_dict(), IGNORED)
    if eval_config is not None:
        results = json.loads((folder / "eval" / "results.json").read_text(encoding="utf-8"))
        intended = eval_config.to_dict()
        tested = {k: results.get("config", {}).get(k) for k in intended}
        diffs += [f"eval.{d}" for d in differences(tested, intended, EVAL_IGNORED)]
    if diffs:
        shown = "; ".join(diffs[:3]) + (f"; and {len(diffs) - 3} more" if len(diffs) > 3 else "")
        raise ConfigError(
            f"{folder} holds a finished run with a different config ({shown}); "
            "retrain it with --overwrite, or choose another output folder"
        )


def check_precision(out_dir: Path, finished: list[Path], config: RunConfig) -> None:
    """Raise when the finished runs among ``finished`` (folders of ``out_dir``) were computed at
    another precision than this machine would compute the runs still to do.

    ``precision: auto`` resolves by machine (bf16 autocast on a native-bf16 CPU or a GPU, fp32
    elsewhere; :mod:`layerbridge.runtime`), so a comparison continued on another machine could
    mix precisions across its seeds; it stops instead and says how to match them.
    """
    now = accelerate_mixed_precision(config.train.precision)  # "no" (fp32) | "bf16" | "fp16"
    recorded = {
        json.loads((folder / "summary.json").read_text(encoding="utf-8")).get("precision")
        for folder in finished
        if (folder / "summary.json").is_file()
    }
    other = sorted(p for p in recorded - {now, None})
    if other:
        raise ConfigError(
            f"{out_dir} holds finished runs computed in "
            f"{', '.join(precision_label(p) for p in other)}, but this machine would compute the rest in "
            f"{precision_label(now)} (precision {config.train.precision!r}); continue where they ran, or "
            "match them: LAYERBRIDGE_CPU_BF16=1 (bf16 on a CPU without native bf16; ~60x slower) or =0 (fp32)"
        )


def _restore(source: Path, dest: Path, files: tuple[tuple[str, str], ...]) -> bool:
    """Copy one exported run back into ``dest`` when the export is complete and ``dest`` holds
    no run of its own (the file that marks it finished is written last)."""
    if not all((source / name).is_file() for name, _ in files):
        return False
    if any((dest / rel).exists() for _, rel in files) or checkpoint_dirs(dest):
        return False
    for name, rel in files:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / name, dest / rel)
    return True


def restore_runs(export_dir: Path, out_dir: Path) -> int:
    """Copy the finished runs of one comparison's export (``<export>/runs/<fusion>/seed-<s>/``,
    ``<export>/lr-grid/<fusion>/lr-<v>/``) into ``out_dir``'s layout where ``out_dir`` has no
    run of its own; returns how many were restored."""
    restored = 0
    for source in sorted(export_dir.glob("runs/*/seed-*")):
        restored += _restore(source, out_dir / source.relative_to(export_dir / "runs"), RUN_FILES)
    for source in sorted(export_dir.glob("lr-grid/*/lr-*")):
        restored += _restore(source, out_dir / source.relative_to(export_dir), GRID_FILES)
    return restored


def export_run(folder: Path, dest: Path, grid: bool = False) -> None:
    """A run's results and logs (never its weights), in the export's flat layout."""
    dest.mkdir(parents=True, exist_ok=True)
    for name, rel in GRID_FILES if grid else RUN_FILES:
        shutil.copy2(folder / rel, dest / name)
