"""Restarting a run that is still at chance: ``train.stall_check`` (docs/recipe.md).

Some seeds of a short run sit on a plateau where the LLM gives one label whatever the soft
prompt says (training loss ~2-6 nats, English dev at the share of one class), and which seeds
do changes with the learning rate, the precision, even float rounding. At step
``train.stall_check`` the recipe asks whether English dev accuracy is above what a constant
prediction scores. With n dev items, c of them right, and m the share of the most frequent
gold label, the one-sided binomial test

    p = P(X >= c),  X ~ Binomial(n, m)

says how likely that accuracy is from a bridge no better than always answering the majority
label. p >= ``STALL_ALPHA`` means "not shown above chance": the run starts again, in the same
folder, from seed ``s + RESTART_SEED_STRIDE * k`` for its k-th restart (initialisation and
data order both follow the seed, so a restart is exactly the run ``train.seed = s + 1000 k``
would be), at most ``train.max_restarts`` times. The folder's ``config.yaml`` keeps the run as
asked (seed s); ``summary.json`` states the seed trained (``seed``) and every restart
(``restarts``: seed, step, dev accuracy, p), so the compute a run used is stated in full; the
new ``log.jsonl`` lists them in its start record, which is where ``--resume`` reads them
from, and each stalled attempt's log is kept as ``log.stalled-seed-<seed>.jsonl``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from layerbridge.evaluation import metrics
from layerbridge.training.logger import read_log

#: a run whose dev accuracy is not above the constant-label share at this level restarts
STALL_ALPHA = 0.01
#: restart k of the run with seed s uses seed s + RESTART_SEED_STRIDE * k
RESTART_SEED_STRIDE = 1000


class StalledRun(Exception):
    """Raised by the recipe at ``train.stall_check`` when the run is at chance and may restart."""

    def __init__(self, record: dict[str, Any]) -> None:
        super().__init__(
            f"seed {record['seed']} is at chance on English dev at step {record['step']} "
            f"(accuracy {record['dev_accuracy']:.3f}, one label scores "
            f"{record['constant_label_accuracy']:.3f}, p = {record['p_value']:.2f})"
        )
        self.record = record


def stall_record(dev_accuracy: float, labels: Sequence[int], seed: int, step: int) -> dict[str, Any]:
    """The check's numbers: dev accuracy against the majority-label share, the binomial p-value,
    and whether the run counts as stalled (p >= STALL_ALPHA)."""
    labels = np.asarray(labels)
    n = len(labels)
    majority = float(np.bincount(labels).max() / n) if n else 1.0
    p_value = metrics.binomial_sf(round(dev_accuracy * n), n, majority)
    return {
        "seed": seed,
        "step": step,
        "dev_accuracy": dev_accuracy,
        "constant_label_accuracy": majority,
        "p_value": p_value,
        "stalled": p_value >= STALL_ALPHA,
    }


def restart_seed(first_seed: int, restarts: int) -> int:
    """The seed of the run's ``restarts``-th restart (0 = the run as configured)."""
    return first_seed + RESTART_SEED_STRIDE * restarts


def recorded_restarts(log_path: Path) -> list[dict[str, Any]]:
    """The restarts a run folder's attempt began after (its log's start record; none if absent)."""
    records = read_log(log_path) if log_path.is_file() else []
    start = next((r for r in records if r.get("event") == "start"), {})
    return list(start.get("restarts", []))
