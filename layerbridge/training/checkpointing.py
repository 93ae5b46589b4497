"""Saving and restoring a training run's complete state (see :mod:`layerbridge.training.state`).

``save_checkpoint`` writes into ``checkpoints/.step-NNNNNN`` and renames it into place, so a
kill at any moment leaves the previous checkpoint or the new one, never half of one.
``resume_latest`` restores the newest intact checkpoint, falling back to older ones.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path
from typing import Any

from layerbridge.checkpoint import load_bridge_weights, read_bridge_tensors, write_bridge_files
from layerbridge.config import RunConfig
from layerbridge.errors import CheckpointError, ConfigError
from layerbridge.training import state as ckpt

#: TrainConfig fields that may change when a run is resumed (they do not affect the result).
RESUMABLE_CHANGES = {
    "output_dir",  # the run may be moved, or its path spelled differently
    "save_every",
    "keep_checkpoints",
    "log_every",
    "num_workers",
    "tensorboard",
    "eval_batch_size",
}


def check_resume_config(saved: dict[str, Any], config: RunConfig) -> None:
    """Refuse to resume a run whose saved config differs in anything that affects the result."""
    now = config.to_dict()
    with contextlib.suppress(ConfigError):  # the saved config in today's spelling (precision aliases)
        saved = RunConfig.from_dict(saved).to_dict() if saved else {}
    for section in ("bridge", "task", "train"):
        for key, value in saved.get(section, {}).items():
            if section == "train" and key in RESUMABLE_CHANGES:
                continue
            current = now[section].get(key)
            if key in ("spec", "data_dir") and current and value:
                current, value = str(Path(current).resolve()), str(Path(value).resolve())
            if json.dumps(current, sort_keys=True) != json.dumps(value, sort_keys=True):
                raise ConfigError(
                    f"cannot resume: {section}.{key} is {current!r} now but {value!r} in the saved run; "
                    "use the same config (or start a new output_dir)"
                )


def save_checkpoint(recipe, extra: dict[str, Any]) -> None:
    """Write ``recipe``'s bridge, optimizer, scheduler, RNG and loop state as one checkpoint."""
    acc, loop = recipe.accelerator, recipe.loop
    root = recipe.out / "checkpoints"
    staging = root / f".step-{loop.step:06d}"
    if acc.is_main_process:
        staging.mkdir(parents=True, exist_ok=True)
    acc.wait_for_everyone()
    try:
        ckpt.save_state_files(staging, f"rng-rank{acc.process_index}", ckpt.rng_state())
        acc.wait_for_everyone()
        if acc.is_main_process:
            write_bridge_files(recipe.bridge, staging, extra=extra | {"step": loop.step})
            ckpt.save_state_files(staging, "optimizer", recipe.optimizer.state_dict())
            ckpt.save_state_files(staging, "scheduler", recipe.scheduler.state_dict())
            ckpt.write_loop_state(staging, loop, {"config": recipe.config.to_dict()})
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # a failed save leaves nothing half-written
        raise
    if acc.is_main_process:
        final = root / f"step-{loop.step:06d}"
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)  # atomic: the checkpoint appears complete or not at all
        ckpt.prune_checkpoints(recipe.out, recipe.config.train.keep_checkpoints)
    acc.wait_for_everyone()


def restore(folder: Path, bridge, optimizer, scheduler, config: RunConfig, rank: int) -> ckpt.LoopState:
    """Load a training checkpoint into bridge / optimizer / scheduler / RNG; returns the loop state.

    Every file is read and verified before anything is applied, so a corrupt checkpoint
    changes nothing.
    """
    loop, extra = ckpt.read_loop_state(folder)
    check_resume_config(extra.get("config", {}), config)
    tensors = read_bridge_tensors(folder)
    optimizer_state = ckpt.load_state_files(folder, "optimizer")
    scheduler_state = ckpt.load_state_files(folder, "scheduler")
    rng = ckpt.load_state_files(folder, f"rng-rank{rank}")
    load_bridge_weights(bridge, tensors, str(folder))
    optimizer.load_state_dict(optimizer_state)
    scheduler.load_state_dict(scheduler_state)
    ckpt.set_rng_state(rng)
    return loop


def resume_latest(
    out: Path, bridge, optimizer, scheduler, config: RunConfig, rank: int, log
) -> ckpt.LoopState:
    """Resume from the newest intact checkpoint, falling back to older ones if it is corrupt."""
    folders = ckpt.checkpoint_dirs(out)
    problems = []
    for folder in reversed(folders):
        try:
            return restore(folder, bridge, optimizer, scheduler, config, rank)
        except CheckpointError as err:
            problems.append(str(err))
            log(f"skipping checkpoint {folder.name}: {err}")
    if folders:
        raise CheckpointError(f"cannot resume {out}: no intact checkpoint ({problems[0]})")
    return ckpt.LoopState()
