"""Resumable training checkpoints without pickle.

A checkpoint ``checkpoints/step-000120/`` holds

* the bridge (``bridge.safetensors`` + ``bridge_config.json``, loadable on its own);
* ``optimizer.safetensors`` + ``optimizer.json`` (and the same for ``scheduler``): the
  tensors in safetensors, the nested structure around them and the tensors' SHA-256 in the
  JSON (see :func:`flatten`);
* ``rng-rank{r}.safetensors`` + ``.json``: every process's torch / CUDA / Python / NumPy RNG;
* ``trainer_state.json``: the loop position (step, epoch, batch within the epoch), the best
  dev score so far and the run's config.

It is written into a temporary folder and renamed into place, so a run killed at any
moment leaves either the previous checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

from layerbridge.checkpoint import read_tensors
from layerbridge.errors import CheckpointError
from layerbridge.io import sha256_file, umask, write_json

STEP_DIR = re.compile(r"^step-(\d+)$")
STATE_NAME = "trainer_state.json"


@dataclass
class LoopState:
    """Where the training loop is."""

    step: int = 0  # optimizer steps done
    epoch: int = 0
    batch_in_epoch: int = 0  # micro-batches of this rank consumed in the current epoch
    examples_seen: int = 0
    best_metric: float | None = None
    best_step: int | None = None
    skipped_steps: int = 0  # optimizer steps whose gradient was not finite (no update applied)


# ---------------------------------------------------------------- nested state <-> safetensors
def flatten(obj: Any, tensors: dict[str, torch.Tensor], prefix: str = "t") -> Any:
    """Replace every tensor in a nested structure by a reference, collecting the tensors.

    Dicts become ``{"__dict__": [[key, value], ...]}`` so that non-string keys (the
    optimizer's parameter indices) survive JSON.
    """
    if isinstance(obj, torch.Tensor):
        key = f"{prefix}.{len(tensors)}"
        tensors[key] = obj.detach().to("cpu").contiguous()
        return {"__tensor__": key}
    if isinstance(obj, dict):
        return {"__dict__": [[k, flatten(v, tensors, prefix)] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [flatten(v, tensors, prefix) for v in obj]}
    if isinstance(obj, list):
        return [flatten(v, tensors, prefix) for v in obj]
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": obj.tolist(), "dtype": str(obj.dtype)}
    if isinstance(obj, np.integer | np.floating):
        return obj.item()
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} in a training checkpoint")


def unflatten(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`flatten`."""
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__dict__" in obj:
            return {k: unflatten(v, tensors) for k, v in obj["__dict__"]}
        if "__tuple__" in obj:
            return tuple(unflatten(v, tensors) for v in obj["__tuple__"])
        if "__ndarray__" in obj:
            return np.asarray(obj["__ndarray__"], dtype=obj["dtype"])
        return {k: unflatten(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [unflatten(v, tensors) for v in obj]
    return obj


# ---------------------------------------------------------------- RNG
def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": np.random.get_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np.random.set_state(tuple(state["numpy"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ---------------------------------------------------------------- save / load
def save_state_files(folder: Path, name: str, state: Any) -> None:
    """``name.safetensors`` (tensors) + ``name.json`` (structure)."""
    tensors: dict[str, torch.Tensor] = {}
    skeleton = flatten(state, tensors)
    weights = folder / f"{name}.safetensors"
    save_file(tensors, weights)
    os.chmod(weights, 0o666 & ~umask())
    write_json(folder / f"{name}.json", {"sha256": sha256_file(weights), "state": skeleton})


def load_state_files(folder: Path, name: str) -> Any:
    """Inverse of :func:`save_state_files`; the tensors are checked against the recorded SHA-256."""
    path = folder / f"{name}.json"
    if not path.is_file():
        raise CheckpointError(f"training checkpoint {folder} is incomplete: {path.name} is missing")
    data = _read_json(path)
    weights = folder / f"{name}.safetensors"
    if not (isinstance(data, dict) and set(data) == {"sha256", "state"}):
        raise CheckpointError(f"{path} is not a layerbridge state file")
    if not weights.is_file() or sha256_file(weights) != data["sha256"]:
        raise CheckpointError(f"{weights} is missing or does not match its recorded SHA-256 (corrupt)")
    try:
        return unflatten(data["state"], read_tensors(weights))
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{path} is corrupt: {err}") from None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path} is truncated or corrupt: {err}") from None


def write_loop_state(folder: Path, loop: LoopState, extra: dict[str, Any]) -> None:
    write_json(folder / STATE_NAME, {"loop": asdict(loop), **extra})


def read_loop_state(folder: Path) -> tuple[LoopState, dict[str, Any]]:
    path = folder / STATE_NAME
    if not path.is_file():
        raise CheckpointError(f"{folder} is not a training checkpoint (no {STATE_NAME})")
    data = _read_json(path)
    try:
        return LoopState(**data.pop("loop")), data
    except (AttributeError, KeyError, TypeError) as err:
        raise CheckpointError(f"{path} is corrupt: {err}") from None


def checkpoint_dirs(output_dir: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    root = output_dir / "checkpoints"
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := STEP_DIR.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found) if (p / STATE_NAME).is_file()]


def prune_checkpoints(output_dir: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints (``keep <= 0`` keeps all)."""
    for old in checkpoint_dirs(output_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
