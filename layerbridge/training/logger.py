"""Run logs: one JSON object per line (``log.jsonl``), optionally mirrored to TensorBoard."""

from __future__ import annotations

import json
import time
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
