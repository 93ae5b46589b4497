"""What a task is: text fields, a prompt template, classes with label strings, and splits.

Every task has an English ``train`` split, an English ``dev`` split for model selection, and
a ``test`` split per language. A task reads either a local data directory (the layout of
``../shared/data``, described in the README) or the Hugging Face hub; both paths go through
the same validation:

* a missing file or column, an unknown language or a label outside the label set is an
  error that names it;
* an example with an empty text field is skipped and counted (``TaskData.report``).
"""

from __future__ import annotations

import os
import string
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from layerbridge.config import TaskConfig
from layerbridge.data.splits import stratified_sample
from layerbridge.data.types import DataReport, Example, TaskData
from layerbridge.errors import ConfigError, DataError
from layerbridge.registry import Registry

SPLITS = ("train", "dev", "test")
TASKS: Registry[type[Task]] = Registry("task")


@dataclass(frozen=True)
class RawRow:
    """A row as read from a file or the hub, before validation."""

    fields: dict[str, str]
    label: str
    where: str  # "path, row 12" — for error messages
    item_id: str | None = None  # id shared by translations of the same item (parallel data)


def template_fields(template: str) -> list[str]:
    """Placeholder names in a ``str.format`` template, in order."""
    return [name for _, name, _, _ in string.Formatter().parse(template) if name]


def default_data_dir() -> Path | None:
    env = os.environ.get("LAYERBRIDGE_DATA")
    return Path(env).expanduser() if env else None


class Task:
    """Base class of all tasks; subclasses fill in the class attributes and ``_examples``."""

    name: ClassVar[str]
    description: ClassVar[str]
    fields: ClassVar[tuple[str, ...]]
    default_template: ClassVar[str]
    label_names: ClassVar[tuple[str, ...]]  # canonical class names, in class order
    default_label_strings: ClassVar[tuple[str, ...]]  # what the LLM produces per class
    raw_labels: ClassVar[dict[str, int]]  # label value in the data (lower-cased) -> class
    languages: ClassVar[tuple[str, ...]]  # test languages
    low_resource: ClassVar[tuple[str, ...]] = ()
    train_language: ClassVar[str] = "en"
    #: test sets are translations of the same items (ids shared across languages)
    parallel: ClassVar[bool] = False
    local_folder: ClassVar[str]  # sub-folder of the data dir that signals a local copy
    hub_datasets: ClassVar[tuple[str, ...]] = ()  # for documentation and `layerbridge tasks`

    def __init__(self, config: TaskConfig | None = None) -> None:
        config = config or TaskConfig(name=self.name)
        self.config = config
        self.data_dir = Path(config.data_dir).expanduser() if config.data_dir else default_data_dir()
        self.template = config.template or self.default_template
        placeholders = template_fields(self.template)
        unknown = sorted(set(placeholders) - set(self.fields))
        if unknown or not placeholders:
            raise ConfigError(
                f"template {self.template!r} for task {self.name} uses unknown field(s) "
                f"{', '.join(unknown) or '(none)'}; the task's fields are: {', '.join(self.fields)}"
            )
        strings = config.labels or list(self.default_label_strings)
        if len(strings) != len(self.label_names) or len(set(strings)) != len(strings):
            raise ConfigError(
                f"task {self.name} needs {len(self.label_names)} distinct label strings "
                f"(for {', '.join(self.label_names)}), got {strings}"
            )
        self.label_strings: tuple[str, ...] = tuple(strings)
        self.source = self._resolve_source(config.source)
        self.eval_languages: tuple[str, ...] = tuple(
            self.canonical_language(lang) for lang in (config.languages or self.languages)
        )
        for lang in self.eval_languages:
            self.check_language("test", lang)

    # ------------------------------------------------------------------ public API
    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    def split_languages(self, split: str) -> tuple[str, ...]:
        """Languages in which ``split`` exists."""
        return (self.train_language,) if split in ("train", "dev") else self.languages

    def canonical_language(self, language: str) -> str:
        """The task's own code for ``language`` (tasks with aliases override this)."""
        return language

    def check_language(self, split: str, language: str) -> None:
        language = self.canonical_language(language)
        if split not in SPLITS:
            raise DataError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
        choices = self.split_languages(split)
        if language not in choices:
            listed = (
                ", ".join(choices)
                if len(choices) <= 20
                else (f"{len(choices)} languages, {choices[0]} … {choices[-1]} (see `layerbridge tasks`)")
            )
            raise DataError(
                f"unknown language {language!r} for the {split} split of task {self.name}; "
                f"choose one of: {listed}"
            )

    def load(
        self, split: str, language: str | None = None, limit: int | None = None, seed: int = 0
    ) -> TaskData:
        """Read, validate and (optionally) sub-sample one split in one language."""
        language = self.canonical_language(language or self.train_language)
        self.check_language(split, language)
        report = DataReport()
        examples, source = self._examples(split, language, report)
        if not examples:
            raise DataError(f"{source}: no usable examples for {self.name}/{split}/{language}")
        examples = stratified_sample(examples, limit, seed)
        report.kept = len(examples)
        return TaskData(self.name, split, language, examples, source, report)

    def render(self, example: Example) -> str:
        """The encoder prompt for an example (the template with its fields filled in)."""
        return self.template.format_map(example.fields)

    def describe(self) -> dict:
        return {
            "name": self.name,
            "kind": self.config.name,  # the registry name ("custom" for spec-defined tasks)
            "spec": str(Path(self.config.spec).resolve()) if self.config.spec else None,
            "description": self.description,
            "template": self.template,
            "labels": dict(zip(self.label_names, self.label_strings, strict=True)),
            "languages": list(self.languages),
            "low_resource": list(self.low_resource),
            "source": self.source,
            "data_dir": str(self.data_dir) if self.data_dir else None,
        }

    @staticmethod
    def config_from_description(saved: dict[str, Any], **fields: Any) -> TaskConfig:
        """The inverse of :meth:`describe` (as saved with a trained bridge): a TaskConfig that
        rebuilds the task with the prompt template and label strings the bridge was trained
        with; ``fields`` (e.g. ``data_dir``, ``source``) are passed on."""
        return TaskConfig(
            name=saved.get("kind", saved["name"]),
            spec=saved.get("spec"),
            template=saved["template"],
            labels=list(saved["labels"].values()),
            **fields,
        )

    # ------------------------------------------------------------------ for subclasses
    def _examples(self, split: str, language: str, report: DataReport) -> tuple[list[Example], str]:
        """All examples of a split (before ``limit``), and a description of the source."""
        raise NotImplementedError

    def local_path(self, *parts: str) -> Path:
        if self.data_dir is None:
            raise DataError(f"task {self.name}: no data directory; set LAYERBRIDGE_DATA or --data-dir")
        return self.data_dir.joinpath(*parts)

    def convert(
        self, rows: Iterable[RawRow], split: str, language: str, source: str, report: DataReport
    ) -> list[Example]:
        """Validate raw rows: map labels (error on unknown ones), skip and count empty texts."""
        examples = []
        for index, row in enumerate(rows):
            report.rows_read += 1
            key = row.label.strip().lower()
            if key not in self.raw_labels:
                known = sorted({k for k in self.raw_labels})
                raise DataError(
                    f"{row.where}: label {row.label!r} is not in the label set of task "
                    f"{self.name} ({', '.join(known)})"
                )
            fields = {name: row.fields.get(name, "").replace("\ufeff", "").strip() for name in self.fields}
            if any(not value for value in fields.values()):
                report.skipped_empty += 1
                continue
            item = row.item_id if row.item_id is not None else str(index)
            examples.append(Example(fields, self.raw_labels[key], f"{self.name}/{split}/{language}/{item}"))
        if report.skipped_empty:
            report.warn(f"{source}: skipped {report.skipped_empty} example(s) with an empty text field")
        return examples

    def check_rows(self, got: int, expected: int | None, source: str, report: DataReport) -> None:
        """Warn when a local file does not hold the row count its provenance states."""
        if expected is not None and got != expected:
            report.warn(f"{source}: {got} rows, expected {expected}; the copy may be modified or partial")

    def _resolve_source(self, source: str) -> str:
        if source == "auto":
            local = self.data_dir is not None and (self.data_dir / self.local_folder).exists()
            return "local" if local else "hub"
        if source == "local":
            self.local_path(self.local_folder)  # raises without a data dir
        return source


def get_task(config: TaskConfig | str) -> Task:
    """Instantiate a registered task from its config (or just its name)."""
    if isinstance(config, str):
        config = TaskConfig(name=config)
    import layerbridge.tasks  # noqa: F401  (registers the built-in tasks)

    return TASKS.get(config.name)(config)
