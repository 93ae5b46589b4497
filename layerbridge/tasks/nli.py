"""Natural language inference: XNLI (15 languages) and IndicXNLI (11 Indic languages).

Both train on the same English NLI data and select on the English XNLI dev split.

Local layout (``$LAYERBRIDGE_DATA``)::

    xnli/mnli_en_train/multinli.train.en.tsv   header premise, hypo, label (English train)
    xnli/xtreme/dev-{lang}.tsv                 premise, hypothesis, label (no header)
    xnli/xtreme/test-{lang}.tsv                premise, hypothesis (no header, no labels)
    xnli/test-labels.txt                       gold label of line i of every test-{lang}.tsv
    indicxnli/forward/{dev,test}/xnli_{lang}.json   IndicXNLI release format:
                                               {"<split>": [{"premise", "hypothesis", "label"}]}

Hub: ``facebook/xnli`` (config = language) and ``Divyanshu/indicxnli`` (config = language),
labels 0 = entailment, 1 = neutral, 2 = contradiction.
"""

from __future__ import annotations

import csv
from pathlib import Path

from layerbridge.data import hub
from layerbridge.data.readers import check_columns, read_rows, require_file
from layerbridge.data.types import DataReport, Example
from layerbridge.errors import DataError
from layerbridge.tasks.base import TASKS, RawRow, Task

NLI_LABELS = {
    "entailment": 0,
    "neutral": 1,
    "contradiction": 2,
    "contradictory": 2,  # spelling of the XNLI-MT / MultiNLI train release
    "0": 0,
    "1": 1,
    "2": 2,
}
HUB_SPLITS = {"train": "train", "dev": "validation", "test": "test"}


class _NLITask(Task):
    fields = ("premise", "hypothesis")
    default_template = "Premise: {premise} Hypothesis: {hypothesis} Label: "
    label_names = ("entailment", "neutral", "contradiction")
    default_label_strings = ("Entailment", "Neutral", "Contradiction")
    raw_labels = NLI_LABELS
    #: rows per file in the local layout (XNLI PROVENANCE.md)
    expected_rows = {"train": 15001, "dev": 2490, "test": 5010}

    def _english_source(self) -> str:
        """English train/dev (shared by both NLI tasks) come from the local xnli/ folder when present."""
        if self.config.source == "hub":
            return "hub"
        local = self.data_dir is not None and (self.data_dir / "xnli").exists()
        if not local and self.config.source == "local":
            raise DataError(f"no xnli/ folder in {self.data_dir}: English NLI data is missing")
        return "local" if local else "hub"

    def _english(self, split: str, report: DataReport) -> tuple[list[Example], str]:
        if self._english_source() == "hub":
            return self._hub_rows("facebook/xnli", split, "en", report)
        if split == "train":
            path = require_file(
                self.local_path("xnli", "mnli_en_train", "multinli.train.en.tsv"), "XNLI train file"
            )
            rows = self._table(path, header=True, premise="premise", hypothesis="hypo")
        else:
            return self._xtreme_dev("en", report)
        self.check_rows(len(rows), self.expected_rows["train"], str(path), report)
        return self.convert(rows, split, "en", str(path), report), str(path)

    def _xtreme_dev(self, language: str, report: DataReport) -> tuple[list[Example], str]:
        path = require_file(self.local_path("xnli", "xtreme", f"dev-{language}.tsv"), "XNLI dev file")
        rows = self._table(path, header=False, columns=("premise", "hypothesis", "label"))
        self.check_rows(len(rows), self.expected_rows["dev"], str(path), report)
        return self.convert(rows, "dev", language, str(path), report), str(path)

    def _table(
        self,
        path: Path,
        header: bool,
        columns: tuple[str, ...] = (),
        premise: str = "premise",
        hypothesis: str = "hypothesis",
        labels: list[str] | None = None,
    ) -> list[RawRow]:
        out = []
        for index, row in enumerate(read_rows(path, "tsv", columns or None, header, quoting=csv.QUOTE_NONE)):
            needed = [premise, hypothesis] + ([] if labels is not None else ["label"])
            check_columns(row, needed, str(path))
            label = labels[index] if labels is not None and index < len(labels) else row.get("label", "")
            out.append(
                RawRow(
                    {"premise": row[premise], "hypothesis": row[hypothesis]},
                    label,
                    f"{path}, row {row['__row__']}",
                )
            )
        return out

    def _hub_rows(
        self, dataset: str, split: str, language: str, report: DataReport
    ) -> tuple[list[Example], str]:
        records = hub.fetch_records(dataset, language, HUB_SPLITS[split])
        source = f"hub:{dataset}/{language}/{HUB_SPLITS[split]}"
        rows = []
        for index, record in enumerate(records):
            check_columns(record, ["premise", "hypothesis", "label"], source)
            rows.append(
                RawRow(
                    {"premise": str(record["premise"]), "hypothesis": str(record["hypothesis"])},
                    str(record["label"]),
                    f"{source}, row {index}",
                )
            )
        return self.convert(rows, split, language, source, report), source


@TASKS.register("xnli")
class XNLI(_NLITask):
    name = "xnli"
    description = "XNLI: 3-way NLI, English MultiNLI training, 15 test languages"
    languages = ("ar", "bg", "de", "el", "en", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh")
    low_resource = ("sw", "ur", "hi", "th")
    local_folder = "xnli"
    hub_datasets = ("facebook/xnli",)

    def split_languages(self, split: str) -> tuple[str, ...]:
        return ("en",) if split == "train" else self.languages  # XNLI has dev in every language

    def _examples(self, split: str, language: str, report: DataReport) -> tuple[list[Example], str]:
        if split == "train" or (split == "dev" and language == "en"):
            return self._english(split, report)
        if self.source == "hub":
            return self._hub_rows("facebook/xnli", split, language, report)
        if split == "dev":
            return self._xtreme_dev(language, report)
        path = require_file(self.local_path("xnli", "xtreme", f"test-{language}.tsv"), "XNLI test file")
        label_path = require_file(self.local_path("xnli", "test-labels.txt"), "XNLI test labels")
        labels = label_path.read_text(encoding="utf-8").split()
        rows = self._table(path, header=False, columns=("premise", "hypothesis"), labels=labels)
        if len(rows) != len(labels):
            raise DataError(f"{path} has {len(rows)} rows but {label_path} has {len(labels)} labels")
        self.check_rows(len(rows), self.expected_rows["test"], str(path), report)
        return self.convert(rows, split, language, str(path), report), f"{path} + {label_path.name}"


@TASKS.register("indicxnli")
class IndicXNLI(_NLITask):
    name = "indicxnli"
    description = "IndicXNLI: XNLI machine-translated into 11 Indic languages; English NLI training"
    languages = ("as", "bn", "gu", "hi", "kn", "ml", "mr", "or", "pa", "ta", "te")
    low_resource = ("as", "or", "pa", "kn", "ml", "ta", "te", "mr", "gu", "bn")
    local_folder = "indicxnli"
    hub_datasets = ("Divyanshu/indicxnli", "facebook/xnli")

    def split_languages(self, split: str) -> tuple[str, ...]:
        return ("en",) if split == "train" else ("en", *self.languages) if split == "dev" else self.languages

    def _examples(self, split: str, language: str, report: DataReport) -> tuple[list[Example], str]:
        if language == "en":
            return self._english(split, report)
        if self.source == "hub":
            return self._hub_rows("Divyanshu/indicxnli", split, language, report)
        folder = {"dev": "dev", "test": "test"}[split]
        path = require_file(
            self.local_path("indicxnli", "forward", folder, f"xnli_{language}.json"), "IndicXNLI file"
        )
        rows = []
        for row in read_rows(path, "json"):
            check_columns(row, ["premise", "hypothesis", "label"], str(path))
            rows.append(
                RawRow(
                    {"premise": row["premise"], "hypothesis": row["hypothesis"]},
                    row["label"],
                    f"{path}, record {row['__row__']}",
                )
            )
        return self.convert(rows, split, language, str(path), report), str(path)
