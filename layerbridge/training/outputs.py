"""The run folder: what may be written or replaced, checked before anything is touched.

A run folder holds ``config.yaml``, ``log.jsonl``, ``summary.json``, ``best/``, ``final/``
and ``checkpoints/step-NNNNNN/``. ``--overwrite`` removes a folder only if it is
recognisably a run, and only after every input of the new run was validated.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from layerbridge.errors import ConfigError
from layerbridge.io import recover_atomic_leftovers
from layerbridge.training import state as ckpt

#: what a run folder holds; --overwrite removes a folder only if it is recognisably a run
RUN_MARKERS = ("config.yaml", "log.jsonl")


def is_run_dir(out: Path) -> bool:
    """Whether ``out`` is a layerbridge training run (config + log, or a training checkpoint)."""
    return all((out / name).is_file() for name in RUN_MARKERS) or bool(ckpt.checkpoint_dirs(out))


def check_output_dir(out: Path, resume: bool, overwrite: bool) -> None:
    """Validate the output folder against --resume / --overwrite; changes nothing."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output folder {out} is a file")
    has_run = out.is_dir() and is_run_dir(out)
    if out.is_dir() and any(out.iterdir()) and not has_run:
        raise ConfigError(
            f"{out} is not empty and is not a layerbridge run; refusing to "
            + ("delete" if overwrite else "write into")
            + " it (choose another --output-dir)"
        )
    if has_run and not resume and not overwrite:
        raise ConfigError(
            f"{out} already holds a run; pass --resume to continue it or --overwrite to replace it"
        )
    parent = next((p for p in (out, *out.parents) if p.exists()), Path("."))
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write to {parent} (permission denied)")


def prepare_output_dir(out: Path, resume: bool, overwrite: bool) -> None:
    """After every input was validated: replace an old run (--overwrite), clear killed-run leftovers."""
    if overwrite and not resume and out.is_dir() and is_run_dir(out):
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    recover_atomic_leftovers(out)  # a kill while `best/` or `final/` was being replaced
    if (out / "checkpoints").is_dir():
        for stale in (out / "checkpoints").glob(".step-*"):  # a kill while checkpointing
            shutil.rmtree(stale, ignore_errors=True)
