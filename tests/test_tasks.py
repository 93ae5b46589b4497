"""Tasks on the real shared data and on fixtures: counts, splits, labels, validation, hub format."""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path

import pytest

from layerbridge.config import TaskConfig
from layerbridge.data import hub
from layerbridge.data.prompts import encode_prompt
from layerbridge.errors import ConfigError, DataError
from layerbridge.tasks import get_task

#: The shared data (never copied into the repo): $LAYERBRIDGE_DATA, else ../shared/data.
DATA = Path(os.environ.get("LAYERBRIDGE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def needs_data(test):
    """Tests on the real data fail loudly (not skip) when it is missing."""

    def check(*args, **kwargs):
        assert DATA.is_dir(), f"data directory {DATA} not found; set LAYERBRIDGE_DATA"
        return test(*args, **kwargs)

    import functools

    return functools.wraps(test)(check)


def provenance(folder: str) -> str:
    return (DATA / folder / "PROVENANCE.md").read_text(encoding="utf-8")


def _task(name: str, **kwargs):
    return get_task(TaskConfig(name=name, data_dir=str(DATA), **kwargs))


@needs_data
def test_xnli_row_counts_match_provenance_and_labels_come_from_test_labels():
    text = provenance("xnli")
    dev_rows = int(re.search(r"`xtreme/dev-\{lang\}\.tsv` \(15 files\) \| (\d+) each", text).group(1))
    test_rows = int(re.search(r"`xtreme/test-\{lang\}\.tsv` \(15 files\) \| (\d+) each", text).group(1))
    train_rows = int(
        re.search(r"`mnli_en_train/multinli\.train\.en\.tsv` \| (\d+) \(\+1 header", text).group(1)
    )
    task = _task("xnli")
    assert task.source == "local" and len(task.languages) == 15
    assert len(task.load("train")) == train_rows
    gold = (DATA / "xnli" / "test-labels.txt").read_text().split()
    index = {"entailment": 0, "neutral": 1, "contradiction": 2}
    for lang in task.languages:
        assert len(task.load("dev", lang)) == dev_rows
        test = task.load("test", lang)
        assert len(test) == test_rows
        assert test.labels == [index[g] for g in gold], lang  # bg/el/ru/th have no other source
    # cross-check with an original labelled copy (HKUNLP jsonl) for one language
    with open(DATA / "xnli" / "hkunlp_labeled_test" / "sw" / "test.jsonl", encoding="utf-8") as handle:
        original = [json.loads(line) for line in handle]
    sw = task.load("test", "sw")
    assert [r["label"] for r in original] == sw.labels
    assert original[7]["premise"].strip() == sw.examples[7].fields["premise"]


@needs_data
def test_news_splits_are_deterministic_stratified_and_complete():
    bbc_total = int(re.search(r"Rows \(documents\): (\d+)", provenance("bbc_news")).group(1))
    si_total = int(re.search(r"(\d+) rows, no embedded newlines", provenance("sinhala_news")).group(1))
    task = _task("sinhala-news")
    en = {split: task.load(split, "en") for split in ("train", "dev", "test")}
    si = {split: task.load(split, "si") for split in ("dev", "test")}
    assert sum(len(d) for d in en.values()) == bbc_total == 2225
    assert sum(len(d) for d in si.values()) == si_total == 3327
    business = sum(Counter(d.labels)[0] for d in en.values())
    assert business == 510  # BBC business folder
    keys = {split: {ex.text_key() for ex in d.examples} for split, d in en.items()}
    assert not keys["train"] & keys["test"] and not keys["train"] & keys["dev"]
    assert not {ex.text_key() for ex in si["dev"].examples} & {ex.text_key() for ex in si["test"].examples}
    total = Counter(ex.label for d in en.values() for ex in d.examples)
    for cls, count in Counter(en["test"].labels).items():
        assert abs(count / len(en["test"]) - total[cls] / bbc_total) < 0.02  # stratified
    again = task.load("test", "en")
    assert [ex.uid for ex in again.examples] == [ex.uid for ex in en["test"].examples]
    assert task.render(en["train"].examples[0]).startswith("News Sentence: ")
    assert task.render(en["train"].examples[0]).endswith(" Category: ")


@needs_data
def test_marc_counts_match_provenance_and_dev_is_held_out():
    text = provenance("marc")
    test_rows = int(re.search(r"`test/\{lang\}\.csv` \(de en es fr ja zh\) \| (\d+) each", text).group(1))
    union = int(re.search(r"\| `en_train_union\.csv` \| (\d+) \|", text).group(1))
    task = _task("marc")
    for lang in task.languages:
        assert len(task.load("test", lang)) == test_rows
    train, dev = task.load("train"), task.load("dev")
    assert len(train) + len(dev) == union
    assert abs(len(dev) - union * 0.1) < 10
    assert not {e.text_key() for e in train.examples} & {e.text_key() for e in dev.examples}
    assert sorted(Counter(dev.labels)) == [0, 1, 2, 3, 4]


@needs_data
def test_limit_is_balanced_deterministic_and_row_parallel():
    task = _task("xnli")
    a = task.load("test", "sw", limit=30)
    b = task.load("test", "ur", limit=30)
    assert len(a) == 30 and Counter(a.labels) == Counter({0: 10, 1: 10, 2: 10})
    assert [e.uid.split("/")[-1] for e in a.examples] == [e.uid.split("/")[-1] for e in b.examples]
    assert [e.uid for e in task.load("test", "sw", limit=30).examples] == [e.uid for e in a.examples]


@needs_data
def test_unknown_language_split_and_bad_overrides_are_named():
    task = _task("xnli")
    with pytest.raises(DataError, match="unknown language 'si'.*xnli"):
        task.load("test", "si")
    with pytest.raises(DataError, match="unknown split 'validation'"):
        task.load("validation", "en")
    with pytest.raises(ConfigError, match="unknown field"):
        _task("xnli", template="Text: {text} Label: ")
    with pytest.raises(ConfigError, match="needs 3 distinct label strings"):
        _task("xnli", labels=["yes", "no"])
    with pytest.raises(ConfigError, match="unknown task 'mnli'"):
        get_task("mnli")
    relabelled = _task("xnli", labels=["yes", "maybe", "no"], languages=["sw"])
    assert relabelled.label_strings == ("yes", "maybe", "no") and relabelled.eval_languages == ("sw",)


def test_missing_data_files_are_named(tmp_path):
    (tmp_path / "xnli").mkdir()
    task = get_task(TaskConfig(name="xnli", data_dir=str(tmp_path)))
    with pytest.raises(DataError, match=r"XNLI test file not found: .*test-sw\.tsv"):
        task.load("test", "sw")


def _custom(tmp_path: Path, rows_by_file: dict[str, str], spec: dict) -> TaskConfig:
    for name, content in rows_by_file.items():
        (tmp_path / name).write_text(content, encoding="utf-8")
    path = tmp_path / "task.yaml"
    path.write_text(json.dumps(spec), encoding="utf-8")
    return TaskConfig(name="custom", spec=str(path))


SPEC = {
    "name": "mood",
    "template": "Text: {text} Mood: ",
    "label_column": "label",
    "labels": {"neg": "Sad", "pos": "Happy"},
    "low_resource": ["si"],
    "train": {"path": "train.csv", "language": "en"},
    "dev": {"path": "dev.tsv", "language": "en"},
    "test": [{"path": "test-si.jsonl", "language": "si"}, {"path": "test-en.json", "language": "en"}],
}


def test_custom_task_reads_csv_tsv_jsonl_json_and_counts_empty_texts(tmp_path):
    files = {
        "train.csv": 'text,label\n"good, very good",pos\nbad,neg\n   ,pos\n',
        "dev.tsv": "text\tlabel\nnice\tpos\n",
        "test-si.jsonl": '{"text": "හොඳයි", "label": "pos"}\n{"text": "නරකයි", "label": "neg"}\n',
        "test-en.json": json.dumps({"test": [{"text": "fine", "label": "POS"}]}),
    }
    task = get_task(_custom(tmp_path, files, SPEC))
    assert task.name == "mood" and task.languages == ("si", "en") and task.low_resource == ("si",)
    train = task.load("train")
    assert [e.fields["text"] for e in train.examples] == ["good, very good", "bad"]
    assert train.labels == [1, 0] and train.report.skipped_empty == 1
    assert task.load("test", "si").labels == [1, 0]
    assert task.load("test", "en").labels == [1]  # labels match case-insensitively
    assert task.render(train.examples[0]) == "Text: good, very good Mood: "
    assert task.label_strings == ("Sad", "Happy")


def test_custom_task_unknown_label_and_missing_column_fail_with_names(tmp_path):
    files = {
        "train.csv": "text,label\nok,pos\nhmm,meh\n",
        "dev.tsv": "sentence\tlabel\nnice\tpos\n",
        "test-si.jsonl": '{"text": "x", "label": "pos"}\n',
        "test-en.json": "[]",
    }
    task = get_task(_custom(tmp_path, files, SPEC))
    with pytest.raises(DataError, match=r"train\.csv, row 3: label 'meh' is not in the label set"):
        task.load("train")
    with pytest.raises(DataError, match=r"dev\.tsv: missing column\(s\) text"):
        task.load("dev")
    with pytest.raises(DataError, match="no usable examples"):
        task.load("test", "en")
    with pytest.raises(ConfigError, match="missing 'labels'"):
        get_task(_custom(tmp_path, {}, {k: v for k, v in SPEC.items() if k != "labels"}))


def test_hub_records_convert_like_local_files(monkeypatch, tmp_path):
    records = {
        ("facebook/xnli", "sw", "test"): [
            {"premise": "Naye akasema.", "hypothesis": "Hakusema.", "label": 2},
            {"premise": "Ndiyo.", "hypothesis": "Ndiyo kweli.", "label": 0},
        ],
        ("facebook/xnli", "en", "train"): [{"premise": "A man.", "hypothesis": "A person.", "label": 0}],
        ("Divyanshu/indicxnli", "ta", "test"): [{"premise": "ஒரு.", "hypothesis": "இரண்டு.", "label": 1}],
        ("mteb/amazon_reviews_multi", "ja", "test"): [
            {"id": "x", "text": "良い", "label": 4, "label_text": "4"}
        ],
        ("NLPC-UOM/Sinhala-News-Category-classification", None, "train"): [
            {"comments": f"වාක්‍යය {i}", "labels": i % 5} for i in range(20)
        ],
    }
    calls = []

    def fake_fetch(dataset, config, split):
        calls.append((dataset, config, split))
        return records[(dataset, config, split)]

    monkeypatch.setattr(hub, "fetch_records", fake_fetch)
    xnli = get_task(TaskConfig(name="xnli", source="hub"))
    sw = xnli.load("test", "sw")
    assert sw.labels == [2, 0] and sw.source == "hub:facebook/xnli/sw/test"
    assert xnli.load("train").labels == [0]
    indic = get_task(TaskConfig(name="indicxnli", source="hub"))
    assert indic.load("test", "ta").labels == [1]
    marc = get_task(TaskConfig(name="marc", source="hub"))
    assert marc.load("test", "ja").labels == [4]  # hub label 4 = 5 stars
    news = get_task(TaskConfig(name="sinhala-news", source="hub"))
    si = news.load("test", "si")
    assert len(si) == 15 and set(Counter(si.labels).values()) == {3}  # round(0.8 * 4) per class
    assert ("facebook/xnli", "sw", "test") in calls
    monkeypatch.setattr(hub, "fetch_records", lambda *a: [{"premise": "p", "label": 0}])
    with pytest.raises(DataError, match=r"missing column\(s\) hypothesis"):
        xnli.load("test", "sw")


def test_hub_without_datasets_package_explains(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_datasets(name, *args, **kwargs):
        if name == "datasets":
            raise ImportError("no datasets")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_datasets)
    with pytest.raises(DataError, match="needs the `datasets` package"):
        hub.fetch_records("facebook/xnli", "en", "test")


def test_indicxnli_reads_its_release_format(tmp_path):
    folder = tmp_path / "indicxnli" / "forward" / "test"
    folder.mkdir(parents=True)
    rows = [
        {"premise": "அவர் வீட்டில் இருக்கிறார்.", "hypothesis": "அவர் வெளியே இருக்கிறார்.", "label": 2},
        {"premise": "மழை பெய்கிறது.", "hypothesis": "வானிலை ஈரமாக உள்ளது.", "label": 0},
        {"premise": "அவள் படிக்கிறாள்.", "hypothesis": "அவள் ஒரு மாணவி.", "label": 1},
    ]
    (folder / "xnli_ta.json").write_text(json.dumps({"test": rows}, ensure_ascii=False), encoding="utf-8")
    task = get_task(TaskConfig(name="indicxnli", data_dir=str(tmp_path)))
    assert task.source == "local" and len(task.languages) == 11
    data = task.load("test", "ta")
    assert data.labels == [2, 0, 1] and data.examples[1].fields["premise"] == "மழை பெய்கிறது."
    with pytest.raises(DataError, match=r"IndicXNLI file not found: .*xnli_bn\.json"):
        task.load("test", "bn")


def test_long_prompts_are_shortened_but_keep_the_template(tiny_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_dir / "bert")
    long_text = " ".join(["w1"] * 300)
    ids = encode_prompt("text : {text} label :", {"text": long_text}, tokenizer, max_length=32)
    assert len(ids) <= 32
    decoded = tokenizer.decode(ids, skip_special_tokens=True)
    assert decoded.startswith("text :") and decoded.endswith("label :")
    short = encode_prompt("text : {text} label :", {"text": "w1 w2"}, tokenizer, max_length=32)
    assert short == tokenizer("text : w1 w2 label :")["input_ids"]
