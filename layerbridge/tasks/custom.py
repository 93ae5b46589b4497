"""A user's own classification task, declared in a small YAML or JSON file.

Example ``my-task.yaml`` (paths are relative to the spec file)::

    name: tweet-sentiment
    template: "Tweet: {text} Sentiment: "   # every {field} is a column of the files
    label_column: label
    labels:                                # label value in the files -> string the LLM produces
      neg: Negative
      pos: Positive
    low_resource: [si]
    train: {path: train.csv, language: en}
    dev:   {path: dev.csv, language: en}
    test:
      - {path: test-si.jsonl, language: si}
      - {path: test-en.tsv, language: en}

Files may be CSV or TSV with a header row, JSON lines, or a JSON list of records.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from layerbridge.config import TaskConfig
from layerbridge.data.readers import check_columns, read_rows
from layerbridge.data.types import DataReport, Example
from layerbridge.errors import ConfigError, DataError
from layerbridge.io import load_yaml
from layerbridge.tasks.base import TASKS, RawRow, Task, template_fields

SPEC_KEYS = {
    "name",
    "description",
    "template",
    "label_column",
    "labels",
    "low_resource",
    "train",
    "dev",
    "test",
}


def read_spec(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"custom task spec {path} does not exist")
    try:
        spec = load_yaml(path.read_text(encoding="utf-8"))  # YAML is a superset of JSON
    except yaml.YAMLError as err:
        raise ConfigError(f"custom task spec {path} is not valid YAML/JSON: {err}") from None
    if not isinstance(spec, dict):
        raise ConfigError(f"custom task spec {path} must be a mapping")
    unknown = sorted(set(spec) - SPEC_KEYS)
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(unknown)} in {path}; known: {', '.join(sorted(SPEC_KEYS))}"
        )
    for key in ("template", "labels", "train", "dev", "test"):
        if key not in spec:
            raise ConfigError(f"custom task spec {path} is missing {key!r}")
    if not isinstance(spec["labels"], dict) or len(spec["labels"]) < 2:
        raise ConfigError(f"{path}: 'labels' must map at least two label values to label strings")
    return spec


@TASKS.register("custom")
class CustomTask(Task):
    name = "custom"
    description = "a user-defined task from a YAML/JSON spec"
    local_folder = "."

    def __init__(self, config: TaskConfig | None = None) -> None:
        if config is None or not config.spec:
            raise ConfigError("task 'custom' needs a spec file (task.spec / --task-spec)")
        self.spec_path = Path(config.spec)
        spec = read_spec(self.spec_path)
        self.name = str(spec.get("name", "custom"))  # type: ignore[misc]
        self.description = str(spec.get("description", self.description))  # type: ignore[misc]
        self.default_template = str(spec["template"])  # type: ignore[misc]
        self.fields = tuple(dict.fromkeys(template_fields(self.default_template)))  # type: ignore[misc]
        self.label_column = str(spec.get("label_column", "label"))
        values = [str(v) for v in spec["labels"]]
        self.label_names = tuple(values)  # type: ignore[misc]
        self.default_label_strings = tuple(str(s) for s in spec["labels"].values())  # type: ignore[misc]
        self.raw_labels = {v.strip().lower(): i for i, v in enumerate(values)}  # type: ignore[misc]
        self.files = {
            "train": [self._file_entry(spec["train"], "train")],
            "dev": [self._file_entry(spec["dev"], "dev")],
            "test": [self._file_entry(item, "test") for item in _as_list(spec["test"])],
        }
        train_langs = {entry["language"] for entry in self.files["train"]}
        self.train_language = next(iter(train_langs))  # type: ignore[misc]
        self.languages = tuple(dict.fromkeys(e["language"] for e in self.files["test"]))  # type: ignore[misc]
        self.low_resource = tuple(spec.get("low_resource", ()))  # type: ignore[misc]
        super().__init__(config.replace(data_dir=str(self.spec_path.parent), source="local"))

    def _file_entry(self, item: object, split: str) -> dict:
        if isinstance(item, str):
            item = {"path": item}
        if not isinstance(item, dict) or "path" not in item:
            raise ConfigError(f"{self.spec_path}: each {split} entry needs a 'path'")
        path = Path(item["path"])
        if not path.is_absolute():
            path = self.spec_path.parent / path
        return {"path": path, "language": str(item.get("language", "en")), "format": item.get("format")}

    def split_languages(self, split: str) -> tuple[str, ...]:
        return tuple(dict.fromkeys(entry["language"] for entry in self.files[split]))

    def _examples(self, split: str, language: str, report: DataReport) -> tuple[list[Example], str]:
        entries = [e for e in self.files[split] if e["language"] == language]
        examples: list[Example] = []
        for entry in entries:
            path: Path = entry["path"]
            if not path.is_file():
                raise DataError(f"{split} file of task {self.name} not found: {path}")
            rows = []
            for row in read_rows(path, entry["format"]):
                check_columns(row, [*self.fields, self.label_column], str(path))
                rows.append(
                    RawRow(
                        {f: row[f] for f in self.fields},
                        row[self.label_column],
                        f"{path}, row {row['__row__']}",
                    )
                )
            examples += self.convert(rows, split, language, str(path), report)
        return examples, ", ".join(str(e["path"]) for e in entries)


def _as_list(value: object) -> list:
    return value if isinstance(value, list) else [value]
