"""SIB-200: the task (local layout, hub records, aliases, validation), language metadata, grouped
reports, Holm correction, comparison plots, and the layer-wise alignment probe."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import numpy as np
import pytest

from layerbridge.config import EvalConfig, TaskConfig
from layerbridge.data import hub
from layerbridge.errors import ConfigError, DataError
from layerbridge.evaluation import metrics
from layerbridge.evaluation.alignment import ProbeModel, alignment_probe, retrieval_accuracy
from layerbridge.evaluation.evaluate import evaluate
from layerbridge.experiments.compare import summarize
from layerbridge.languages import (
    coverage_for,
    is_covered,
    language_groups,
    language_info,
    read_language_list,
    xlmr_coverage,
)
from layerbridge.tasks import get_task
from layerbridge.tasks.sib200 import Sib200
from tests.test_tasks import DATA, needs_data

LABELS = Sib200.label_names
SIZES = {"train": 21, "dev": 7, "test": 14}


def _sentences(n: int, seed: int) -> list[str]:
    """Distinct sentences over the tiny tokenizers' words (w0..w39)."""
    rng = random.Random(seed)
    seen: set[str] = set()
    while len(seen) < n:
        seen.add(" ".join(f"w{rng.randint(0, 39)}" for _ in range(rng.randint(4, 9))))
    return sorted(seen)


def write_sib(root: Path, languages: dict[str, str]) -> Path:
    """A SIB-200 copy: languages maps code -> "en" (English text), "copy" (= English) or "other"."""
    english = {split: _sentences(n, seed) for seed, (split, n) in enumerate(SIZES.items())}
    for code, kind in languages.items():
        folder = root / "sib200" / "annotated" / code
        folder.mkdir(parents=True)
        for split, n in SIZES.items():
            texts = english[split] if kind in ("en", "copy") else _sentences(n, 100 + len(code) + n)
            with open(folder / f"{split}.tsv", "w", encoding="utf-8", newline="") as handle:
                writer = csv.writer(handle, delimiter="\t")
                writer.writerow(["index_id", "category", "text"])
                for i, text in enumerate(texts):
                    writer.writerow([1000 + i + 100 * list(SIZES).index(split), LABELS[i % 7], text])
    return root


@pytest.fixture
def sib_dir(tmp_path) -> Path:
    return write_sib(
        tmp_path, {"eng_Latn": "en", "sin_Sinh": "other", "fra_Latn": "copy", "dzo_Tibt": "other"}
    )


def _sib(root: Path, **kwargs) -> Sib200:
    return get_task(TaskConfig(name="sib200", data_dir=str(root), **kwargs))


# ---------------------------------------------------------------------------------- the task
def test_fixture_counts_labels_aliases_and_parallel_ids(sib_dir):
    task = _sib(sib_dir, languages=["si", "en", "dzo_Tibt"])
    assert task.source == "local"
    assert task.languages == ("dzo_Tibt", "eng_Latn", "fra_Latn", "sin_Sinh")  # the folders present
    assert task.eval_languages == ("sin_Sinh", "eng_Latn", "dzo_Tibt")  # aliases resolved
    train = task.load("train")
    assert train.language == "eng_Latn" and len(train) == SIZES["train"]
    assert sorted(set(train.labels)) == list(range(7))
    assert task.split_languages("train") == ("eng_Latn",)  # English-only training
    si, en = task.load("test", "si"), task.load("test", "en")
    assert len(si) == len(en) == SIZES["test"]
    assert [ex.item_id for ex in si.examples] == [ex.item_id for ex in en.examples]
    assert si.examples[0].uid == f"sib200/test/sin_Sinh/{si.examples[0].item_id}"
    assert task.render(en.examples[0]).startswith("Sentence: ") and task.render(en.examples[0]).endswith(
        "Topic: "
    )
    with pytest.raises(DataError, match="unknown language 'xx_Yyyy'"):
        task.load("test", "xx_Yyyy")
    with pytest.raises(DataError, match="unknown language 'sin_Sinh' for the train split"):
        task.load("train", "si")


def test_missing_empty_and_malformed_language_files_are_named(sib_dir):
    folder = sib_dir / "sib200" / "annotated" / "sin_Sinh"
    (folder / "test.tsv").unlink()
    task = _sib(sib_dir)
    with pytest.raises(DataError, match=r"test file for sin_Sinh is missing: .*sin_Sinh/test\.tsv"):
        task.load("test", "sin_Sinh")
    bad_files = {
        "index_id\tcategory\ttext\n": r"sin_Sinh/test\.tsv: the SIB-200 test file for sin_Sinh is empty",
        "id\tcategory\ttext\n1\ttravel\tw1 w2\n": r"sin_Sinh/test\.tsv: missing column\(s\) index_id",
        "index_id\tcategory\ttext\nabc\ttravel\tw1 w2\n": r"test\.tsv, row 2: malformed row",
        "index_id\tcategory\ttext\n7\tcooking\tw1 w2\n": r"label 'cooking' is not in the label set",
    }
    for content, message in bad_files.items():
        (folder / "test.tsv").write_text(content, encoding="utf-8")
        with pytest.raises(DataError, match=message):
            task.load("test", "sin_Sinh")
    empty = sib_dir / "empty"
    (empty / "sib200" / "annotated").mkdir(parents=True)
    with pytest.raises(DataError, match="holds no language folders"):
        _sib(empty)


def test_hub_records_convert_like_the_local_files(monkeypatch, tmp_path):
    calls = []

    def fake(dataset, config, split):
        calls.append((dataset, config, split))
        return [
            {"index_id": 5, "category": "health", "text": "w1 w2 w3"},
            {"index_id": 9, "category": "geography", "text": "w4 w5"},
        ]

    monkeypatch.setattr(hub, "fetch_records", fake)
    task = get_task(TaskConfig(name="sib200", source="hub", data_dir=str(tmp_path)))
    data = task.load("dev", "ta")
    assert calls == [("Davlan/sib200", "tam_Taml", "validation")]
    assert data.labels == [Sib200.label_names.index("health"), Sib200.label_names.index("geography")]
    assert [ex.item_id for ex in data.examples] == ["5", "9"]
    assert data.source == "hub:Davlan/sib200/tam_Taml/validation"
    task.load("test", "kmr_Latn")  # any FLORES code can be asked of the hub
    assert calls[-1] == ("Davlan/sib200", "kmr_Latn", "test")


@needs_data
def test_real_copy_has_181_parallel_languages_with_provenance_counts():
    task = get_task(TaskConfig(name="sib200", data_dir=str(DATA)))
    assert len(task.languages) == 181 and "eng_Latn" in task.languages
    labels = (DATA / "sib200" / "annotated" / "eng_Latn" / "labels.txt").read_text().split()
    assert tuple(labels) == Sib200.label_names
    train = task.load("train")
    assert len(train) == 701
    counts = {name: train.labels.count(i) for i, name in enumerate(Sib200.label_names)}
    assert counts == {
        "science/technology": 176,
        "travel": 138,
        "politics": 102,
        "sports": 85,
        "health": 77,
        "entertainment": 65,
        "geography": 58,
    }
    for code in ("eng_Latn", "sin_Sinh", "tam_Taml", "dzo_Tibt"):
        assert len(task.load("dev", code)) == 99
        test = task.load("test", code)
        assert len(test) == 204 and not test.report.notes
    ids = [ex.item_id for ex in task.load("test", "en").examples]
    assert ids == [ex.item_id for ex in task.load("test", "si").examples]


# ---------------------------------------------------------------------------------- metadata
def test_language_metadata_scripts_coverage_and_groups(tmp_path):
    assert language_info("si").flores == "sin_Sinh" and language_info("sin_Sinh").iso == "si"
    assert language_info("zho_Hant").script == "Hant" and language_info("ur").script == "Arab"
    assert language_info("xx").script == "?"
    cov = coverage_for("e5-small")
    assert cov == xlmr_coverage() and coverage_for("intfloat/multilingual-e5-large") == cov
    assert coverage_for("google/mt5-large") is None  # unknown unless the user says
    assert len({iso for iso in cov if "_" not in iso}) == 93  # 100 = 93 + 6 romanised/Zawgyi + zh twice
    for code in ("si", "sin_Sinh", "tam_Taml", "swh_Latn", "urd_Arab", "hin_Deva", "eng_Latn", "zho_Hant"):
        assert is_covered(code, cov), code
    for code in ("dzo_Tibt", "yor_Latn", "arz_Arab", "yue_Hant", "ltg_Latn", "yo"):
        assert is_covered(code, cov) is False, code
    assert is_covered("si", None) is None
    listed = tmp_path / "langs.txt"
    listed.write_text("# mine\nsi\nyor_Latn  # Yoruba\n", encoding="utf-8")
    user = coverage_for("google/mt5-large", str(listed))
    assert is_covered("sin_Sinh", user) and is_covered("yo", user) and not is_covered("ta", user)
    assert coverage_for("x", "ta, sw") == read_language_list(["ta", "sw"])
    with pytest.raises(ConfigError, match="does not exist"):
        read_language_list("missing/file.txt")
    groups = language_groups(["eng_Latn", "sin_Sinh", "dzo_Tibt", "fra_Latn"], cov, ["sin_Sinh"])
    assert groups["covered"] == ["eng_Latn", "sin_Sinh", "fra_Latn"] and groups["not_covered"] == ["dzo_Tibt"]
    assert groups["script:Latn"] == ["eng_Latn", "fra_Latn"] and groups["low_resource"] == ["sin_Sinh"]
    assert "covered" not in language_groups(["en"], None)


def test_holm_known_answer():
    # m = 4: sorted 0.01, 0.02, 0.03, 0.5 -> 0.04, 0.06, 0.06 (monotone), 0.5
    assert metrics.holm([0.03, 0.5, 0.01, 0.02]) == pytest.approx([0.06, 0.5, 0.04, 0.06])
    assert metrics.holm([0.4, 0.3]) == pytest.approx([0.6, 0.6])  # 2 x 0.3, then monotone
    assert metrics.holm([]) == []


def test_seed_range_test_known_answers():
    rng = np.random.default_rng(1)
    same = rng.random(40) < 0.7
    tied = metrics.seed_range_test([np.stack([same, same, same])], n_resamples=500)
    assert tied == {"range": 0.0, "null_median": 0.0, "p_value": 1.0}  # identical seeds
    # seed 1 right on every item, seeds 2 and 3 on half: far beyond what shuffling items explains
    half = np.arange(40) % 2 == 0
    apart = metrics.seed_range_test([np.stack([np.ones(40, bool), half, half])], n_resamples=500)
    assert apart["range"] == pytest.approx(0.5) and apart["p_value"] < 0.01 and apart["null_median"] < 0.3
    # two seeds differing on 2 of 4 items in opposite directions: every shuffle gives 0 or 0.5
    a, b = np.array([1, 0, 1, 1], bool), np.array([0, 1, 1, 1], bool)
    swap = metrics.seed_range_test([np.stack([a, b])], n_resamples=2000, seed=3)
    assert swap["range"] == 0.0 and swap["p_value"] == 1.0
    # groups weigh equally: (1 + 0) / 2 vs (0 + 0) / 2 over groups of 1 and 3 items
    grouped = metrics.seed_range_test([np.array([[1], [0]], bool), np.zeros((2, 3), bool)], n_resamples=200)
    assert grouped["range"] == pytest.approx(0.5)


# ---------------------------------------------------------------------------------- evaluation
def test_sib_evaluation_reports_scripts_coverage_and_groups(make_bridge, sib_dir, tmp_path):
    bridge = make_bridge("bert", "last")
    task = _sib(sib_dir)
    results = evaluate(
        bridge, task, EvalConfig(limit=7, batch_size=8), out_dir=tmp_path / "ev", progress=False
    )
    assert set(results["languages"]) == {"dzo_Tibt", "eng_Latn", "fra_Latn", "sin_Sinh"}
    assert results["languages"]["dzo_Tibt"]["script"] == "Tibt"
    # the tiny encoder's name says nothing about coverage: unknown unless the user lists it
    assert results["languages"]["dzo_Tibt"]["covered"] is None and "covered" not in results["averages"]
    listed = evaluate(bridge, task, EvalConfig(limit=7, covered_languages=["en", "si"]), progress=False)
    assert listed["averages"]["covered"]["languages"] == ["eng_Latn", "sin_Sinh"]
    assert listed["averages"]["not_covered"]["languages"] == ["dzo_Tibt", "fra_Latn"]
    assert listed["averages"]["script:Latn"]["languages"] == ["eng_Latn", "fra_Latn"]
    with open(tmp_path / "ev" / "results.csv", encoding="utf-8") as handle:
        rows = {row["language"]: row for row in csv.DictReader(handle)}
    assert rows["sin_Sinh"]["script"] == "Sinh" and rows["sin_Sinh"]["low_resource"] == "1"


def _fake_run(accs: dict[str, float], seed: int, groups: dict[str, list[str]]) -> dict:
    rng = np.random.default_rng(seed)
    languages, predictions = {}, {}
    for lang, acc in accs.items():
        gold = rng.integers(0, 7, size=200)
        pred = np.where(rng.random(200) < acc, gold, (gold + 1) % 7)
        languages[lang] = {
            "accuracy": float(np.mean(gold == pred)),
            "macro_f1": 0.0,
            "accuracy_ci": [0, 1],
            "n": 200,
            "script": language_info(lang).script,
            "covered": lang != "dzo_Tibt",
        }
        predictions[lang] = {"uid": list(range(200)), "gold": gold.tolist(), "pred": pred.tolist()}
    averages = {name: {"languages": langs} for name, langs in groups.items()}
    return {
        "results": {"languages": languages, "averages": averages},
        "predictions": predictions,
        "train": {"best_dev_accuracy": 0.5},
    }


def test_comparison_groups_holm_and_plots(tmp_path):
    from layerbridge.report.comparison import plot_gain_vs_baseline, plot_sorted_accuracy

    groups = {"all": ["eng_Latn", "sin_Sinh", "dzo_Tibt"], "covered": ["eng_Latn", "sin_Sinh"]}
    groups["not_covered"] = ["dzo_Tibt"]
    base = {"eng_Latn": 0.8, "sin_Sinh": 0.6, "dzo_Tibt": 0.3}
    better = {"eng_Latn": 0.8, "sin_Sinh": 0.75, "dzo_Tibt": 0.3}
    runs = {
        "last": {s: _fake_run(base, s, groups) for s in (1, 2)},
        "transformer-softmax": {s: _fake_run(better, s + 10, groups) for s in (1, 2)},
    }
    for fusion in runs:  # pair the gold labels of the two fusions
        for s in (1, 2):
            for lang in base:
                runs[fusion][s]["predictions"][lang]["gold"] = runs["last"][s]["predictions"][lang]["gold"]
    summary = summarize(runs, ["sin_Sinh"], baseline="last")
    assert summary["groups"]["covered"] == ["eng_Latn", "sin_Sinh"]
    assert set(summary["table"]["last"]["averages"]) == {"all", "covered", "not_covered"}
    sig = summary["significance"]["transformer-softmax"]
    raw = [sig[lang]["bootstrap"]["p_value"] for lang in summary["languages"]]
    assert [sig[lang]["bootstrap"]["p_holm"] for lang in summary["languages"]] == metrics.holm(raw)
    assert all(sig[lang]["bootstrap"]["p_holm"] >= sig[lang]["bootstrap"]["p_value"] for lang in base)
    assert "avg:covered" in sig and "avg:not_covered" in sig
    plot_sorted_accuracy(summary, tmp_path / "sorted.png")
    plot_gain_vs_baseline(summary, tmp_path / "gain.png")
    for name in ("sorted.png", "gain.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"


# ---------------------------------------------------------------------------------- the probe
def test_retrieval_accuracy_known_answers():
    a = np.eye(4)
    assert retrieval_accuracy(a, a) == (1.0, 1.0)
    assert retrieval_accuracy(a, a[[1, 0, 2, 3]]) == (0.5, 0.5)


def test_alignment_probe_on_a_tiny_encoder(make_bridge, sib_dir, tiny_dir):
    import torch

    from layerbridge.modeling.builders import load_tokenizer
    from layerbridge.modeling.encoder import load_encoder_model

    task = _sib(sib_dir)
    path = str(tiny_dir / "bert")
    model = ProbeModel(load_encoder_model(path, torch.float32), load_tokenizer(path, False))
    probe = alignment_probe(model, task, task.languages, coverage=xlmr_coverage(), progress=False)
    assert probe["columns"] == ["emb", "1", "2", "3"]
    assert set(probe["languages"]) == {"dzo_Tibt", "fra_Latn", "sin_Sinh"}  # English is the pivot
    for lang, r in probe["languages"].items():
        for key in ("to_en", "from_en", "mean"):
            assert len(r[key]) == 4 and all(0.0 <= v <= 1.0 for v in r[key]), (lang, key)
    assert probe["languages"]["fra_Latn"]["mean"] == [1.0] * 4  # a copy of English retrieves itself
    assert probe["languages"]["dzo_Tibt"]["covered"] is False
    assert probe["summary"]["covered"]["languages"] == 2
    json.dumps(probe)  # serialisable
    # with a bridge: two more columns (fused, projected)
    bridge = make_bridge("bert", "transformer-softmax")
    probe = alignment_probe(ProbeModel.of_bridge(bridge), task, ["fra_Latn"], progress=False)
    assert probe["columns"][-2:] == ["fused", "projected"]
    assert probe["languages"]["fra_Latn"]["mean"] == [1.0] * 6


def test_probe_refuses_tasks_without_parallel_test_sets(tmp_path, tiny_dir, marker_task):
    import torch

    from layerbridge.modeling.builders import load_tokenizer
    from layerbridge.modeling.encoder import load_encoder_model

    path = str(tiny_dir / "bert")
    model = ProbeModel(load_encoder_model(path, torch.float32), load_tokenizer(path, False))
    task = get_task(TaskConfig(name="custom", spec=str(marker_task)))
    with pytest.raises(DataError, match="no parallel test sets"):
        alignment_probe(model, task, ["en"], progress=False)


def test_probe_command_end_to_end_and_remote_code_only_on_request(
    make_bridge, sib_dir, tmp_path, monkeypatch
):
    import layerbridge.checkpoint as checkpoint
    from layerbridge import save_bridge
    from layerbridge.cli.main import main

    folder = save_bridge(make_bridge("bert", "global-softmax"), tmp_path / "bridge")
    seen = []
    real = checkpoint.build_bridge
    monkeypatch.setattr(
        checkpoint, "build_bridge", lambda c, **k: seen.append(c.trust_remote_code) or real(c, **k)
    )
    args = ["probe", "--bridge", str(folder), "--data-dir", str(sib_dir), "--out", str(tmp_path / "p")]
    assert main(args) == 0 and seen == [False]
    probe = json.loads((tmp_path / "p" / "alignment.json").read_text())
    assert probe["columns"][-2:] == ["fused", "projected"] and len(probe["languages"]) == 3
    assert (tmp_path / "p" / "alignment.png").read_bytes()[:4] == b"\x89PNG"
    assert main([*args, "--trust-remote-code", "--languages", "fr"]) == 0 and seen[-1] is True


def test_study_probes_each_fusions_trained_bridge_once(make_bridge, sib_dir, tmp_path):
    """The study writes an alignment report per fusion (first seed's best bridge) for a task with
    parallel test sets, skips fusions whose weights are not there, and never redoes one."""
    from layerbridge import save_bridge
    from layerbridge.config import EvalConfig, RunConfig
    from layerbridge.experiments.config import ExperimentConfig
    from layerbridge.experiments.study import probe_alignment

    recipe = ExperimentConfig(fusions=["last", "global-softmax"], seeds=[3, 4], run={})
    save_bridge(make_bridge("bert", "last"), tmp_path / "runs" / "last" / "seed-3" / "best")
    config = RunConfig.from_dict({"task": {"name": "sib200", "data_dir": str(sib_dir)}})
    eval_config = EvalConfig(languages=["fra_Latn", "sin_Sinh"])
    logged = []
    probe_alignment(tmp_path / "runs", tmp_path / "export", config, eval_config, recipe, logged.append)
    report = json.loads((tmp_path / "export" / "alignment" / "last" / "alignment.json").read_text())
    assert report["columns"][-2:] == ["fused", "projected"] and set(report["languages"]) == {
        "fra_Latn",
        "sin_Sinh",
    }
    assert report["languages"]["fra_Latn"]["mean"] == [1.0] * len(report["columns"])
    assert (tmp_path / "export" / "alignment" / "last" / "alignment.png").is_file()
    assert not (tmp_path / "export" / "alignment" / "global-softmax").exists()  # no weights: skipped
    probe_alignment(tmp_path / "runs", tmp_path / "export", config, eval_config, recipe, logged.append)
    assert len(logged) == 1  # done once


def test_group_bootstrap_resamples_sentences_of_parallel_test_sets():
    """The 2 languages hold translations of the same 40 sentences with identical outcomes: the
    parallel bootstrap must give the single-language interval, not one sqrt(2) narrower."""
    from layerbridge.experiments.compare import paired_tests_pooled

    rng = np.random.default_rng(0)
    right_a, right_b = rng.random(40) < 0.7, rng.random(40) < 0.5

    def runs(right):
        preds = {
            lang: {"uid": [f"sib200/test/{lang}/{i}" for i in range(40)], "gold": [0] * 40,
                   "pred": [0 if r else 1 for r in right]}
            for lang in ("sin_Sinh", "tam_Taml")
        }  # fmt: skip
        return {1: {"predictions": preds}}

    one = paired_tests_pooled(runs(right_a), runs(right_b), ["sin_Sinh"])["bootstrap"]
    pooled = paired_tests_pooled(runs(right_a), runs(right_b), ["sin_Sinh", "tam_Taml"], parallel=True)
    naive = paired_tests_pooled(runs(right_a), runs(right_b), ["sin_Sinh", "tam_Taml"])["bootstrap"]
    assert pooled["resampled"] == "items, translations together"
    assert pooled["bootstrap"] == one  # the same sentences, the same evidence
    width = one["ci_high"] - one["ci_low"]
    assert naive["ci_high"] - naive["ci_low"] < 0.85 * width  # ~1/sqrt(2): overstated precision
    assert naive["delta"] == pytest.approx(one["delta"])
