"""Run logs: one JSON object per line (``log.jsonl``), optionally mirrored to TensorBoard."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from layerbridge.errors import ConfigError


class RunLogger:
    def __init__(self, path: Path, tensorboard: bool = False) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = open(path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())
        self.start = time.time()
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise ConfigError("train.tensorboard needs `pip install tensorboard`") from None
            self.writer = SummaryWriter(str(path.parent / "tensorboard"))

    def log(self, **record: Any) -> None:
        record = {"time": round(time.time() - self.start, 2), **record}
        self.handle.write(json.dumps(record, default=str) + "\n")
        self.handle.flush()
        if self.writer is not None and "step" in record:
            for key, value in record.items():
                if isinstance(value, int | float) and key not in ("step", "time"):
                    self.writer.add_scalar(f"{record.get('event', 'train')}/{key}", value, record["step"])

    def close(self) -> None:
        self.handle.close()
        if self.writer is not None:
            self.writer.close()


def read_log(path: Path) -> list[dict[str, Any]]:
    """The records of a ``log.jsonl`` (a line cut short by a kill is skipped)."""
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


class Throughput:
    """Loss, gradient norm and throughput over the optimizer steps since the last log line.

    Time spent inside :meth:`paused` (dev evaluation, checkpoints) is not training time;
    ``train_seconds`` sums the training time of every flushed window.
    """

    def __init__(self) -> None:
        self.train_seconds = 0.0
        self._reset()

    def _reset(self) -> None:
        self.loss, self.steps, self.examples, self.tokens = 0.0, 0, 0, 0
        self.grad_norms: list[float] = []
        self.seconds, self.started = 0.0, time.perf_counter()

    def add(self, loss: float, examples: int, tokens: int, grad_norm: float | None = None) -> None:
        """One optimizer step: its loss, batch size, LLM positions, and gradient norm before clipping."""
        self.loss += loss
        if grad_norm is not None:
            self.grad_norms.append(grad_norm)
        self.steps += 1
        self.examples += examples
        self.tokens += tokens

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        self.seconds += time.perf_counter() - self.started
        try:
            yield
        finally:
            self.started = time.perf_counter()

    def flush(self) -> dict[str, float]:
        """{loss (mean per step), examples_per_s, tokens_per_s} of this window, and the mean and
        max gradient norm (before clipping) when steps recorded one; starts the next window."""
        elapsed = max(self.seconds + time.perf_counter() - self.started, 1e-9)
        self.train_seconds += elapsed
        record = {
            "loss": self.loss / max(self.steps, 1),
            "examples_per_s": self.examples / elapsed,
            "tokens_per_s": self.tokens / elapsed,
        }
        if self.grad_norms:
            record["grad_norm"] = sum(self.grad_norms) / len(self.grad_norms)
            record["grad_norm_max"] = max(self.grad_norms)
        self._reset()
        return record
