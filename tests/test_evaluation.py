"""Metrics (known answers) and end-to-end evaluation artefacts."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from layerbridge.config import EvalConfig, TaskConfig
from layerbridge.evaluation import evaluate, metrics
from layerbridge.evaluation.predict import match_label
from layerbridge.tasks import get_task
from tests.test_tasks import DATA, needs_data


def test_accuracy_f1_confusion_known_answers():
    gold = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([0, 1, 1, 1, 2, -1])
    assert metrics.accuracy(gold, pred) == pytest.approx(4 / 6)
    # F1: class0 = 2*1/(2+0+1) = 2/3; class1 = 2*2/(4+1+0) = 4/5; class2 = 2*1/(2+0+1) = 2/3
    assert metrics.macro_f1(gold, pred, 3) == pytest.approx((2 / 3 + 4 / 5 + 2 / 3) / 3)
    confusion = metrics.confusion_matrix(gold, pred, 3)
    assert confusion.tolist() == [[1, 1, 0, 0], [0, 2, 0, 0], [0, 0, 1, 1]]


def test_bootstrap_ci_brackets_the_estimate_and_shrinks_with_n():
    rng = np.random.default_rng(0)
    small_gold = rng.integers(0, 2, 50)
    small_pred = np.where(rng.random(50) < 0.7, small_gold, 1 - small_gold)
    big_gold = rng.integers(0, 2, 2000)
    big_pred = np.where(rng.random(2000) < 0.7, big_gold, 1 - big_gold)
    lo, hi = metrics.accuracy_ci(small_gold, small_pred)
    assert lo <= metrics.accuracy(small_gold, small_pred) <= hi
    blo, bhi = metrics.accuracy_ci(big_gold, big_pred)
    assert bhi - blo < (hi - lo) / 3
    flo, fhi = metrics.macro_f1_ci(big_gold, big_pred, 2)
    assert flo < metrics.macro_f1(big_gold, big_pred, 2) < fhi


def test_paired_tests_known_answers():
    gold = np.zeros(40, dtype=int)
    a = np.zeros(40, dtype=int)  # always right
    b = np.zeros(40, dtype=int)
    b[:12] = 1  # wrong on 12
    result = metrics.mcnemar(gold, a, b)
    assert result["a_only"] == 12 and result["b_only"] == 0
    assert result["p_value"] == pytest.approx(2 * 0.5**12)
    boot = metrics.paired_bootstrap(gold, a, b)
    assert boot["delta"] == pytest.approx(0.3) and boot["ci_low"] > 0 and boot["p_value"] < 0.01
    same = metrics.mcnemar(gold, a, a)
    assert same["p_value"] == 1.0


def test_bootstrap_p_value_counts_exact_ties_whatever_the_summation_order():
    """Seed-averaged differences are thirds; a resample whose mean is 0 in exact arithmetic may
    land at +-1e-17 in floats, on a side that depends on the CPU's summation order. The p-value
    must count such a tie on both sides, as the exact (integer) computation does."""
    rng = np.random.default_rng(3)
    groups = [rng.integers(-1, 2, size=n) for n in (30, 30, 45)]  # 3 x (thirds of a seed average)
    diffs = [g / 3 for g in groups]
    result = metrics.bootstrap_difference(diffs, n_resamples=4000, seed=7)
    # the same resamples in integers: sum_g mean_g = sum_g (sum_g / n_g); exact with a common denominator
    draw = np.random.default_rng(7)
    denom = int(np.lcm.reduce([len(g) for g in groups]))
    exact = np.zeros(4000, dtype=np.int64)
    for g in groups:
        idx = draw.integers(0, len(g), size=(4000, len(g)))
        exact += g[idx].sum(-1) * (denom // len(g))
    assert np.mean(exact == 0) > 0.005  # the case exists: ties at exactly zero
    expected = min(1.0, 2 * min(np.mean(exact <= 0), np.mean(exact >= 0)))
    assert result["p_value"] == pytest.approx(expected, abs=1e-12)


def test_generation_matching():
    labels = ["Entailment", "Neutral", "Contradiction"]
    assert match_label(" entailment.", labels) == 0
    assert match_label("Contradiction", labels) == 2
    assert match_label("I think neutral", labels) == -1


@needs_data
def test_random_bridge_evaluation_writes_all_artefacts_near_chance(make_bridge, tmp_path):
    bridge = make_bridge("bert", "transformer-softmax")
    task = get_task(TaskConfig(name="xnli", data_dir=str(DATA), languages=["en", "sw", "ur"]))
    out = tmp_path / "eval"
    results = evaluate(bridge, task, EvalConfig(limit=20, batch_size=8), out_dir=out, progress=False)
    for name in (
        "results.json",
        "predictions.json",
        "results.csv",
        "results.md",
        "layer_weights.png",
        "accuracy.png",
    ):
        assert (out / name).stat().st_size > 0, name
    assert (out / "layer_weights.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((out / "results.json").read_text())
    assert saved == json.loads(json.dumps(results))
    assert set(saved["languages"]) == {"en", "sw", "ur"}
    for lang, r in saved["languages"].items():
        assert r["n"] == 20
        assert 0.1 <= r["accuracy"] <= 0.6, (lang, r["accuracy"])  # 3 classes: chance = 1/3
        assert r["accuracy_ci"][0] <= r["accuracy"] <= r["accuracy_ci"][1]
        assert np.asarray(r["confusion"]).sum() == 20
        weights = np.asarray(r["layer_weights"])
        assert weights.shape == (3,) and weights.sum() == pytest.approx(1.0, abs=1e-5)
    assert saved["averages"]["low_resource"]["languages"] == ["sw", "ur"]
    assert abs(saved["averages"]["all"]["accuracy"] - 1 / 3) < 0.2
    with open(out / "results.csv", encoding="utf-8") as handle:
        rows = {row["language"]: row for row in csv.DictReader(handle)}
    assert float(rows["sw"]["accuracy"]) == pytest.approx(saved["languages"]["sw"]["accuracy"])
    predictions = json.loads((out / "predictions.json").read_text())
    assert len(predictions["ur"]["gold"]) == 20 and len(predictions["ur"]["uid"]) == 20
    assert "| sw *(low-resource)* | 20 |" in (out / "results.md").read_text()


@needs_data
def test_generation_mode_counts_invalid_outputs(make_bridge):
    bridge = make_bridge("t5", "global-softmax")
    task = get_task(TaskConfig(name="sinhala-news", data_dir=str(DATA)))
    results = evaluate(bridge, task, EvalConfig(mode="generate", limit=10, languages=["si"]), progress=False)
    r = results["languages"]["si"]
    assert r["n"] == 10 and 0 <= r["invalid"] <= 10
    assert np.asarray(r["confusion"])[:, -1].sum() == r["invalid"]


def test_group_ci_of_parallel_languages_resamples_items_with_their_translations():
    from layerbridge.evaluation.metrics import mean_accuracy_ci

    rng = np.random.default_rng(1)
    gold, pred = np.zeros(50, dtype=int), (rng.random(50) < 0.35).astype(int)  # ~65% right
    ids = [str(i) for i in range(50)]
    order = rng.permutation(50)  # the second language lists the same items in another order
    shuffled = (gold[order], pred[order])
    one = mean_accuracy_ci([(gold, pred)], 2000, 0, items=[ids])
    both = mean_accuracy_ci([(gold, pred), shuffled], 2000, 0, items=[ids, [ids[i] for i in order]])
    assert both == one  # translations with identical outcomes add no evidence
    naive = mean_accuracy_ci([(gold, pred), shuffled], 2000, 0)
    assert naive[1] - naive[0] < 0.85 * (one[1] - one[0])
    other = mean_accuracy_ci([(gold, pred), shuffled], 2000, 0, items=[ids, [f"x{i}" for i in order]])
    assert other == naive  # different items: each language on its own
