"""Sinhala news categories, trained on English BBC news mapped onto the same five classes.

Classes (label string the LLM produces): business (Business), entertainment (Entertainment),
political (Political), sports (Sports), technology (Science).

Neither dataset has an official split, so both are split here, deterministically and
stratified by class (:func:`layerbridge.data.splits.stratified_split`, SHA-1 of the text):

* BBC (English, 2,225 articles): train 80% / dev 10% / test 10%. An article's text is its
  headline and lead paragraph (one or two sentences), close to the sentence-level Sinhala
  items; longer prompts are shortened to the encoder's ``max_length`` anyway.
* NLPC-UOM Sinhala news (3,327 sentences): dev 20% / test 80%. The Sinhala dev split is
  never used for model selection (that is English-only); it is there for analysis.

Local layout::

    bbc_news/bbc/{business,entertainment,politics,sport,tech}/NNN.txt   headline, blank line, body
    sinhala_news/nlpc_uom/sinhala-news-categories.csv                 header comments,labels

Hub: ``NLPC-UOM/Sinhala-News-Category-classification`` (comments, labels) and
``SetFit/bbc-news`` (text, label_text).
"""

from __future__ import annotations

from layerbridge.data import hub
from layerbridge.data.readers import check_columns, read_rows, require_file
from layerbridge.data.splits import stratified_split
from layerbridge.data.types import DataReport, Example
from layerbridge.errors import DataError
from layerbridge.tasks.base import TASKS, RawRow, Task

#: Sinhala file label ids (mapping inferred from content, see PROVENANCE.md) and BBC folder names.
SINHALA_IDS = {"0": "business", "1": "political", "2": "entertainment", "3": "sports", "4": "technology"}
BBC_FOLDERS = {
    "business": "business",
    "entertainment": "entertainment",
    "politics": "political",
    "sport": "sports",
    "tech": "technology",
}
BBC_SPLIT = {"train": 0.8, "dev": 0.1, "test": 0.1}
SINHALA_SPLIT = {"dev": 0.2, "test": 0.8}


def bbc_text(raw: str) -> str:
    """Headline + lead paragraph of a raw BBC article (headline, blank line, paragraphs)."""
    paragraphs = [p.strip() for p in raw.replace("\r\n", "\n").split("\n\n") if p.strip()]
    if not paragraphs:
        return ""
    headline = paragraphs[0].splitlines()[0].strip()
    lead = paragraphs[1] if len(paragraphs) > 1 else " ".join(paragraphs[0].splitlines()[1:])
    headline = headline if headline.endswith((".", "!", "?")) else headline + "."
    return f"{headline} {' '.join(lead.split())}".strip()


@TASKS.register("sinhala-news")
class SinhalaNews(Task):
    name = "sinhala-news"
    description = "Sinhala news categories (5 classes); English training on BBC news"
    fields = ("sentence",)
    default_template = "News Sentence: {sentence} Category: "
    label_names = ("business", "entertainment", "political", "sports", "technology")
    default_label_strings = ("Business", "Entertainment", "Political", "Sports", "Science")
    languages = ("si", "en")
    low_resource = ("si",)
    local_folder = "sinhala_news"
    hub_datasets = ("NLPC-UOM/Sinhala-News-Category-classification", "SetFit/bbc-news")
    expected_rows = {"bbc": 2225, "sinhala": 3327}

    @property
    def raw_labels(self) -> dict[str, int]:  # type: ignore[override]
        index = {name: i for i, name in enumerate(self.label_names)}
        table = {name: i for name, i in index.items()}
        table |= {folder: index[name] for folder, name in BBC_FOLDERS.items()}
        table |= {key: index[name] for key, name in SINHALA_IDS.items()}
        return table

    def split_languages(self, split: str) -> tuple[str, ...]:
        return ("en",) if split == "train" else ("en", "si")

    def _examples(self, split: str, language: str, report: DataReport) -> tuple[list[Example], str]:
        if language == "en":
            examples, source = self._bbc(report)
            return stratified_split(examples, BBC_SPLIT, salt="bbc")[split], source
        examples, source = self._sinhala(report)
        return stratified_split(examples, SINHALA_SPLIT, salt="sinhala-news")[split], source

    def _bbc(self, report: DataReport) -> tuple[list[Example], str]:
        english_local = (
            self.config.source != "hub"
            and self.data_dir is not None
            and (self.data_dir / "bbc_news").exists()
        )
        if not english_local:
            records = hub.fetch_records("SetFit/bbc-news", None, "train") + hub.fetch_records(
                "SetFit/bbc-news", None, "test"
            )
            source = "hub:SetFit/bbc-news"
            rows = []
            for index, record in enumerate(records):
                check_columns(record, ["text", "label_text"], source)
                text = " ".join(str(record["text"]).split()[:80])
                rows.append(RawRow({"sentence": text}, str(record["label_text"]), f"{source}, row {index}"))
            return self.convert(rows, "all", "en", source, report), source
        root = self.local_path("bbc_news", "bbc")
        if not root.is_dir():
            raise DataError(f"BBC news folder not found: {root}")
        rows = []
        for folder in sorted(BBC_FOLDERS):
            directory = root / folder
            if not directory.is_dir():
                raise DataError(f"BBC news class folder not found: {directory}")
            for path in sorted(directory.glob("*.txt")):
                raw = path.read_bytes()
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError:
                    text = raw.decode("latin-1")  # one file (sport/199.txt) has a raw 0xA3 '£'
                rows.append(RawRow({"sentence": bbc_text(text)}, folder, str(path)))
        self.check_rows(len(rows), self.expected_rows["bbc"], str(root), report)
        return self.convert(rows, "all", "en", str(root), report), str(root)

    def _sinhala(self, report: DataReport) -> tuple[list[Example], str]:
        if self.source == "hub":
            dataset = "NLPC-UOM/Sinhala-News-Category-classification"
            records = hub.fetch_records(dataset, None, "train")
            source = f"hub:{dataset}"
            iterator = (
                {k: str(v) for k, v in r.items()} | {"__row__": str(i)} for i, r in enumerate(records)
            )
        else:
            path = require_file(
                self.local_path("sinhala_news", "nlpc_uom", "sinhala-news-categories.csv"),
                "Sinhala news file",
            )
            source = str(path)
            iterator = read_rows(path, "csv")
        rows = []
        for row in iterator:
            check_columns(row, ["comments", "labels"], source)
            rows.append(
                RawRow({"sentence": row["comments"]}, row["labels"], f"{source}, row {row['__row__']}")
            )
        if self.source == "local":
            self.check_rows(len(rows), self.expected_rows["sinhala"], source, report)
        return self.convert(rows, "all", "si", source, report), source
