"""Multilingual Amazon Reviews (MARC): 1-5 stars from the review body, 6 languages.

Local layout (``$LAYERBRIDGE_DATA``)::

    marc/en_train_union.csv    idx, review_body, stars (no header) — 12,465 English rows
    marc/test/{lang}.csv       idx, review_body, stars (no header) — 5,000 rows per language

The local copy has no dev split, so a stratified 10% of the English training rows is held
out as ``dev`` (deterministic, by SHA-1 of the text). Hub: ``mteb/amazon_reviews_multi``
(config = language; text, label 0-4) with its own ``validation`` split.
"""

from __future__ import annotations

from layerbridge.data import hub
from layerbridge.data.readers import check_columns, read_rows, require_file
from layerbridge.data.splits import stratified_split
from layerbridge.data.types import DataReport, Example
from layerbridge.tasks.base import TASKS, RawRow, Task

COLUMNS = ("idx", "review_body", "stars")
DEV_SPLIT = {"train": 0.9, "dev": 0.1}
HUB_SPLITS = {"train": "train", "dev": "validation", "test": "test"}


@TASKS.register("marc")
class MARC(Task):
    name = "marc"
    description = "Amazon reviews (MARC): 5-way star rating, English training, 6 test languages"
    fields = ("review",)
    default_template = "Review: {review} Label: "
    label_names = ("1 star", "2 stars", "3 stars", "4 stars", "5 stars")
    default_label_strings = ("Very Negative", "Negative", "Neutral", "Positive", "Very Positive")
    raw_labels = {"1": 0, "2": 1, "3": 2, "4": 3, "5": 4}
    languages = ("de", "en", "es", "fr", "ja", "zh")
    low_resource = ()  # all six are high-resource languages
    local_folder = "marc"
    hub_datasets = ("mteb/amazon_reviews_multi",)
    expected_rows = {"train": 12465, "test": 5000}

    def _examples(self, split: str, language: str, report: DataReport) -> tuple[list[Example], str]:
        if self.source == "hub":
            return self._hub(split, language, report)
        if split == "test":
            path = require_file(self.local_path("marc", "test", f"{language}.csv"), "MARC test file")
            rows = self._csv(path)
            self.check_rows(len(rows), self.expected_rows["test"], str(path), report)
            return self.convert(rows, split, language, str(path), report), str(path)
        path = require_file(self.local_path("marc", "en_train_union.csv"), "MARC English train file")
        rows = self._csv(path)
        self.check_rows(len(rows), self.expected_rows["train"], str(path), report)
        examples = self.convert(rows, "train", "en", str(path), report)
        return stratified_split(examples, DEV_SPLIT, salt="marc-dev")[split], str(path)

    def _csv(self, path) -> list[RawRow]:
        rows = []
        for row in read_rows(path, "csv", COLUMNS, header=False):
            check_columns(row, COLUMNS, str(path))
            rows.append(RawRow({"review": row["review_body"]}, row["stars"], f"{path}, row {row['__row__']}"))
        return rows

    def _hub(self, split: str, language: str, report: DataReport) -> tuple[list[Example], str]:
        dataset = "mteb/amazon_reviews_multi"
        records = hub.fetch_records(dataset, language, HUB_SPLITS[split])
        source = f"hub:{dataset}/{language}/{HUB_SPLITS[split]}"
        rows = []
        for index, record in enumerate(records):
            check_columns(record, ["text", "label"], source)
            stars = str(int(record["label"]) + 1) if str(record["label"]).isdigit() else str(record["label"])
            rows.append(RawRow({"review": str(record["text"])}, stars, f"{source}, row {index}"))
        return self.convert(rows, split, language, source, report), source
