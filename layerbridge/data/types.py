"""Plain data containers shared by tasks, training and evaluation."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

logger = logging.getLogger("layerbridge.data")


@dataclass(frozen=True)
class Example:
    """One labelled example: the task's text fields and a class index."""

    fields: dict[str, str]
    label: int
    uid: str  # e.g. "xnli/test/sw/17": stable across runs, used for paired statistics

    @property
    def item_id(self) -> str:
        """The last part of ``uid``: the same for translations of one item in parallel data."""
        return self.uid.rsplit("/", 1)[-1]

    def text_key(self) -> str:
        """Normalised text used to detect duplicates between splits."""
        return " ".join(" ".join(v.split()).lower() for v in self.fields.values())


@dataclass
class DataReport:
    """What validation found while reading a split (counted, not silently ignored)."""

    rows_read: int = 0
    kept: int = 0
    skipped_empty: int = 0
    dropped_overlap: int = 0
    notes: list[str] = field(default_factory=list)

    def warn(self, message: str) -> None:
        self.notes.append(message)
        logger.warning(message)

    def to_dict(self) -> dict:
        return {
            "rows_read": self.rows_read,
            "kept": self.kept,
            "skipped_empty": self.skipped_empty,
            "dropped_overlap": self.dropped_overlap,
            "notes": list(self.notes),
        }


@dataclass
class TaskData:
    """The examples of one (task, split, language), with where they came from."""

    task: str
    split: str
    language: str
    examples: list[Example]
    source: str  # file path(s) or "hub:<dataset id>"
    report: DataReport = field(default_factory=DataReport)

    def __len__(self) -> int:
        return len(self.examples)

    @property
    def labels(self) -> list[int]:
        return [ex.label for ex in self.examples]
