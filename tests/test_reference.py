"""Published reference answers (SIB-200's GPT-4): parsing, scoring on the bridges' items, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from layerbridge.cli.main import main
from layerbridge.evaluation.reference import compare_to_reference, parse_topic, reference_correctness

HEADER = "\tindex_id\tcategory\ttext\tgpt-4\n"


def test_parse_topic_takes_the_first_topic_named():
    assert parse_topic('This news article is related to "Science/Technology".') == "science/technology"
    assert parse_topic('This news article is related to ""sports"".') == "sports"
    assert parse_topic("It is about technology.") == "science/technology"
    assert parse_topic("Geographical facts, not politics.") == "geography"
    assert parse_topic("Travel first, then health.") == "travel"
    assert parse_topic("I'm sorry, but the text you provided doesn't seem to be a news article.") is None


def _answers(folder, lang: str, rows: list[tuple[str, str, str]]) -> None:
    """rows: (index_id, gold category, answer); answers quoted the way the published files are."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f'{i}\t{item}\t{gold}\tsome text\t"{answer.replace(chr(34), 2 * chr(34))}"\n'
             for i, (item, gold, answer) in enumerate(rows)]  # fmt: skip
    (folder / f"{lang}.tsv").write_text(HEADER + "".join(lines), encoding="utf-8")


def test_reference_correctness_reads_the_published_files(tmp_path):
    _answers(tmp_path, "sin_Sinh", [
        ("7", "travel", 'This news is related to "Travel".'),
        ("9", "health", 'This news is related to "Politics".'),
        ("12", "sports", "Sorry, I cannot tell."),
    ])  # fmt: skip
    correct = reference_correctness(tmp_path, ["sin_Sinh", "tam_Taml"])
    assert correct == {"sin_Sinh": {"7": True, "9": False, "12": False}}  # no tam_Taml file: left out


def _predictions(lang_items: dict[str, list[tuple[str, int, int]]]) -> dict:
    """One seed's predictions.json: lang -> (item id, gold, pred) rows."""
    return {
        lang: {
            "uid": [f"sib200/test/{lang}/{item}" for item, _, _ in rows],
            "gold": [gold for _, gold, _ in rows],
            "pred": [pred for _, _, pred in rows],
        }
        for lang, rows in lang_items.items()
    }


def test_comparison_pairs_items_and_resamples_sentences():
    # two languages, the same 4 sentences; the fusion's two seeds; the reference right on 1, 2
    seed_1 = _predictions({"a": [("1", 0, 0), ("2", 0, 0), ("3", 0, 0), ("4", 0, 1)],
                           "b": [("1", 0, 0), ("2", 0, 1), ("3", 0, 1), ("4", 0, 1)]})  # fmt: skip
    seed_2 = _predictions({"a": [("1", 0, 0), ("2", 0, 0), ("3", 0, 1), ("4", 0, 1)],
                           "b": [("1", 0, 0), ("2", 0, 0), ("3", 0, 1), ("4", 0, 1)]})  # fmt: skip
    reference = {lang: {"1": True, "2": True, "3": False, "4": False} for lang in ("a", "b")}
    out = compare_to_reference({"last": [seed_1, seed_2]}, reference, {"all": ["a", "b"]}, n_resamples=2000)
    assert out["languages"]["a"] == {"n": 4, "reference": 0.5, "last": pytest.approx(5 / 8)}
    assert out["languages"]["b"]["last"] == pytest.approx(3 / 8)
    group = out["groups"]["all"]
    assert group["reference"] == 0.5 and group["last"]["accuracy"] == pytest.approx(0.5)
    # per sentence, averaged over a and b: d = (0, -0.25, +0.25, 0) -> delta 0, CI inside [-0.25, 0.25]
    assert group["last"]["delta"] == pytest.approx(0.0)
    assert -0.25 <= group["last"]["ci_low"] < 0 < group["last"]["ci_high"] <= 0.25
    assert group["last"]["p_value"] > 0.5
    with pytest.raises(ValueError, match="lack test item"):
        compare_to_reference({"last": [seed_1]}, {"a": {"1": True}}, {"all": ["a"]})


def _export(folder, languages: list[str]) -> None:
    """A committed-export layout: comparison.json + runs/<fusion>/seed-<s>/predictions.json."""
    summary = {
        "fusions": ["last", "transformer-softmax"],
        "languages": languages,
        "groups": {"all": languages, "covered": languages[:2]},
        "low_resource": languages[1:],
        "table": {f: {"seeds": [1, 2]} for f in ("last", "transformer-softmax")},
    }
    folder.mkdir(parents=True)
    (folder / "comparison.json").write_text(json.dumps(summary))
    rng = np.random.default_rng(0)
    for fusion in summary["fusions"]:
        for seed in (1, 2):
            rows = {lang: [(str(i), i % 7, int(rng.integers(0, 7))) for i in range(10)] for lang in languages}
            run = folder / "runs" / fusion / f"seed-{seed}"
            run.mkdir(parents=True)
            (run / "predictions.json").write_text(json.dumps(_predictions(rows)))


def test_reference_cli_writes_the_comparison_and_rejects_bad_input(tmp_path, capsys):
    langs = ["eng_Latn", "sin_Sinh", "zzz_Latn"]  # covered: eng, sin; low-resource: sin, zzz
    _export(tmp_path / "study", langs)
    topics = ["science/technology", "travel", "politics", "sports", "health", "entertainment", "geography"]
    always_science = [(str(i), topics[i % 7], f'About "{topics[0]}".') for i in range(12)]
    for lang in langs:
        _answers(tmp_path / "gpt4", lang, always_science)
    assert main(["reference", str(tmp_path / "nowhere"), "--answers", str(tmp_path / "gpt4")]) == 2
    assert "no comparison.json" in capsys.readouterr().err
    assert main(["reference", str(tmp_path / "study"), "--answers", str(tmp_path)]) == 2
    assert "no answers files" in capsys.readouterr().err
    assert not list((tmp_path / "study").glob("reference-*"))  # nothing written on bad input

    assert main(["reference", str(tmp_path / "study"), "--answers", str(tmp_path / "gpt4")]) == 0
    result = json.loads((tmp_path / "study" / "reference-gpt-4.json").read_text())
    assert result["groups"]["low_resource_covered"]["languages"] == ["sin_Sinh"]
    assert result["items_per_language"] == 10 and result["full_test_items"] == 12
    assert result["languages"]["sin_Sinh"]["reference"] == pytest.approx(2 / 10)  # items 0 and 7
    assert "| sin_Sinh | 20.0 (16.7) |" in (tmp_path / "study" / "reference-gpt-4.md").read_text()
