"""Classification metrics, bootstrap confidence intervals and paired significance tests.

All functions take integer arrays of gold and predicted class indices; a prediction of -1
(e.g. a generation that matches no label string) counts as wrong.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

Array = np.ndarray


def accuracy(gold: Array, pred: Array) -> float:
    return float(np.mean(np.asarray(gold) == np.asarray(pred))) if len(gold) else float("nan")


def confusion_matrix(gold: Array, pred: Array, num_classes: int) -> Array:
    """[num_classes, num_classes + 1] counts; rows = gold, columns = predicted, last = invalid (-1)."""
    matrix = np.zeros((num_classes, num_classes + 1), dtype=np.int64)
    for g, p in zip(np.asarray(gold), np.asarray(pred), strict=True):
        matrix[g, p if p >= 0 else num_classes] += 1
    return matrix


def _macro_f1_batched(gold: Array, pred: Array, num_classes: int) -> Array:
    """Macro-F1 for each row of [R, n] arrays (classes absent from gold and pred are skipped)."""
    scores = []
    present = []
    for c in range(num_classes):
        g, p = gold == c, pred == c
        tp = np.sum(g & p, axis=-1)
        fp = np.sum(~g & p, axis=-1)
        fn = np.sum(g & ~p, axis=-1)
        denom = 2 * tp + fp + fn
        scores.append(np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0))
        present.append(denom > 0)
    scores_arr, present_arr = np.stack(scores, -1), np.stack(present, -1)
    return np.sum(scores_arr * present_arr, -1) / np.maximum(np.sum(present_arr, -1), 1)


def macro_f1(gold: Array, pred: Array, num_classes: int) -> float:
    """Unweighted mean of per-class F1 = 2TP / (2TP + FP + FN)."""
    return float(_macro_f1_batched(np.asarray(gold)[None], np.asarray(pred)[None], num_classes)[0])


def bootstrap_ci(
    gold: Array,
    pred: Array,
    statistic: Callable[[Array, Array], Array],
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap CI: resample examples with replacement ``n_resamples`` times.

    ``statistic`` maps [R, n] gold/pred arrays to [R] values.
    """
    gold, pred = np.asarray(gold), np.asarray(pred)
    if len(gold) == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(gold), size=(n_resamples, len(gold)))
    values = statistic(gold[idx], pred[idx])
    alpha = (1 - level) / 2
    return float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha))


def accuracy_ci(gold: Array, pred: Array, n_resamples: int = 1000, seed: int = 0) -> tuple[float, float]:
    return bootstrap_ci(gold, pred, lambda g, p: np.mean(g == p, axis=-1), n_resamples, seed)


def macro_f1_ci(
    gold: Array, pred: Array, num_classes: int, n_resamples: int = 1000, seed: int = 0
) -> tuple[float, float]:
    return bootstrap_ci(gold, pred, lambda g, p: _macro_f1_batched(g, p, num_classes), n_resamples, seed)


def item_means(values: Sequence[Array], items: Sequence[Sequence[str]]) -> Array | None:
    """Per item, the mean over languages of ``values`` (one array per language, aligned with its
    ``items`` ids), in the first language's order — when every language holds the same ids
    (parallel test sets, translations of the same items); None otherwise."""
    if not items or any(len(ids) != len(items[0]) or set(ids) != set(items[0]) for ids in items):
        return None
    sums = dict.fromkeys(items[0], 0.0)
    for vals, ids in zip(values, items, strict=True):
        for item, value in zip(ids, np.asarray(vals, dtype=np.float64), strict=True):
            sums[item] += value
    return np.asarray(list(sums.values())) / len(values)


def mean_accuracy_ci(
    pairs: Sequence[tuple[Array, Array]],
    n_resamples: int = 1000,
    seed: int = 0,
    items: Sequence[Sequence[str]] | None = None,
) -> tuple[float, float]:
    """CI of the unweighted mean of per-language accuracies (each language resampled on its own).

    ``items``: per language, the ids of its examples. When every language holds the same ids
    (translations of the same items, e.g. SIB-200), the items are resampled instead, each with
    its accuracy averaged over the languages — translations are not independent evidence.
    """
    if not pairs:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    per_item = (
        None if items is None else item_means([np.asarray(g) == np.asarray(p) for g, p in pairs], items)
    )
    if per_item is not None:
        correct = per_item
        idx = rng.integers(0, len(correct), size=(n_resamples, len(correct)))
        values = correct[idx].mean(-1)
        return float(np.quantile(values, 0.025)), float(np.quantile(values, 0.975))
    total = np.zeros(n_resamples)
    for gold, pred in pairs:
        correct = np.asarray(gold) == np.asarray(pred)
        idx = rng.integers(0, len(correct), size=(n_resamples, len(correct)))
        total += correct[idx].mean(-1)
    values = total / len(pairs)
    return float(np.quantile(values, 0.025)), float(np.quantile(values, 0.975))


#: resampled statistics within this of 0 are ties (float rounding, not evidence)
TIE = 1e-9


def bootstrap_difference(
    diffs: Sequence[Array], n_resamples: int = 10_000, seed: int = 0
) -> dict[str, float]:
    """Bootstrap the mean of per-example differences, averaged over one or more groups.

    ``diffs`` holds one array per group (e.g. per language) of paired per-example
    differences (correct_A - correct_B, possibly averaged over seeds); each group is resampled
    on its own and the statistic is the unweighted mean over groups of the group means.
    Returns the observed value, its 95% CI and a two-sided p-value (twice the smaller
    fraction of resampled statistics on either side of 0, a resample at 0 counting on both).
    A resample that is 0 in exact arithmetic comes out at ~1e-17 of either sign in floats,
    depending on the CPU's summation order, so "at 0" means within :data:`TIE` — the p-value
    is then the same on every machine.
    """
    rng = np.random.default_rng(seed)
    stats = np.zeros(n_resamples)
    for diff in diffs:
        diff = np.asarray(diff, dtype=np.float64)
        idx = rng.integers(0, len(diff), size=(n_resamples, len(diff)))
        stats += diff[idx].mean(-1)
    stats /= len(diffs)
    p = 2 * min(np.mean(stats <= TIE), np.mean(stats >= -TIE))
    return {
        "delta": float(np.mean([np.mean(d) for d in diffs])),
        "ci_low": float(np.quantile(stats, 0.025)),
        "ci_high": float(np.quantile(stats, 0.975)),
        "p_value": float(min(1.0, p)),
    }


def paired_bootstrap(
    gold: Array, pred_a: Array, pred_b: Array, n_resamples: int = 10_000, seed: int = 0
) -> dict[str, float]:
    """Paired bootstrap of acc(A) - acc(B) over the same examples (see :func:`bootstrap_difference`)."""
    gold = np.asarray(gold)
    diff = (np.asarray(pred_a) == gold).astype(np.float64) - (np.asarray(pred_b) == gold)
    return bootstrap_difference([diff], n_resamples, seed)


def mcnemar(gold: Array, pred_a: Array, pred_b: Array) -> dict[str, float]:
    """Exact McNemar test of two classifiers' predictions on the same gold labels."""
    gold = np.asarray(gold)
    return mcnemar_correct(np.asarray(pred_a) == gold, np.asarray(pred_b) == gold)


def mcnemar_correct(right_a: Array, right_b: Array) -> dict[str, float]:
    """Exact McNemar test on the discordant pairs (A right & B wrong vs A wrong & B right).

    ``right_a`` / ``right_b``: per-item correctness of A and B on the same items.
    p = two-sided binomial test of b successes out of b + c at 1/2.
    """
    right_a, right_b = np.asarray(right_a, dtype=bool), np.asarray(right_b, dtype=bool)
    b = int(np.sum(right_a & ~right_b))
    c = int(np.sum(~right_a & right_b))
    n = b + c
    if n == 0:
        return {"a_only": b, "b_only": c, "p_value": 1.0}
    tail = binomial_sf(max(b, c), n, 0.5)  # = P(X <= min(b, c)) by symmetry
    return {"a_only": b, "b_only": c, "p_value": float(min(1.0, 2 * tail))}


def binomial_sf(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p): the one-sided p-value of k successes in n trials
    against success rate p (summed in log space, so large n neither overflows nor underflows)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if p <= 0 or p >= 1:
        return float(p >= 1)
    log_comb = math.lgamma(n + 1)
    log_terms = [
        log_comb - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * math.log(p) + (n - i) * math.log1p(-p)
        for i in range(k, n + 1)
    ]
    top = max(log_terms)
    return float(min(1.0, math.exp(top) * sum(math.exp(t - top) for t in log_terms)))


def seed_range_test(
    correct: Sequence[Array], n_resamples: int = 10_000, seed: int = 0, chunk: int = 500
) -> dict[str, float]:
    """Do the seeds differ by more than the test items explain? A permutation test of seed spread.

    ``correct`` holds one ``[S, n_g]`` correctness matrix per group (e.g. per language; one
    group for a single language) for the same S seeds. The statistic is the range of the
    seeds' accuracies, R = max_s a_s - min_s a_s, with a_s the unweighted mean over groups of
    seed s's group accuracy. Under H0 the seeds are exchangeable — equally good bridges that
    differ only in which items they happen to get right — so each item's S outcomes are
    permuted among the seeds; p = P(R_perm >= R_obs). Returns R_obs, the null median and p.
    """
    rng = np.random.default_rng(seed)
    mats = [np.asarray(c, dtype=np.float64) for c in correct]
    observed = sum(m.mean(-1) for m in mats) / len(mats)  # [S]
    null = []
    for start in range(0, n_resamples, chunk):
        size = min(chunk, n_resamples - start)
        acc = np.zeros((size, observed.shape[0]))
        for m in mats:
            order = np.argsort(rng.random((size, *m.shape)), axis=1)  # a permutation per item
            acc += np.take_along_axis(np.broadcast_to(m, (size, *m.shape)), order, axis=1).mean(-1)
        acc /= len(mats)
        null.append(acc.max(1) - acc.min(1))
    null_ranges = np.concatenate(null)
    r_obs = float(observed.max() - observed.min())
    return {
        "range": r_obs,
        "null_median": float(np.median(null_ranges)),
        "p_value": float(np.mean(null_ranges >= r_obs - TIE)),
    }


def normalised_entropy(weights: Array) -> float:
    """H(p) / log L of the distribution p = w / sum(w) over L items: 1 = uniform, 0 = one item."""
    p = np.asarray(weights, dtype=np.float64)
    p = p / max(p.sum(), 1e-12)
    if len(p) < 2:
        return 0.0
    return max(0.0, float(-(p * np.log(np.clip(p, 1e-12, None))).sum() / np.log(len(p))))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (family-wise error control, any dependence).

    Sorted ascending p_(1) <= … <= p_(m): adjusted p_(i) = max_{j<=i} min(1, (m - j + 1) p_(j)),
    returned in the input order.
    """
    m = len(p_values)
    order = np.argsort(p_values, kind="stable")
    adjusted = [0.0] * m
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * float(p_values[index])))
        adjusted[index] = running
    return adjusted
