"""Other systems' published zero-shot answers, scored on the very test items a bridge was tested on.

SIB-200's authors published the raw answers of GPT-4 and GPT-3.5-Turbo to every test sentence in
every language (github.com/dadelani/sib-200, ``llm-results/output_gpt4/<lang>.tsv``, columns
``index_id, category, text, <model>``). An answer is free text — ``This news article is related to
"Science/Technology".`` — so it is parsed here (:func:`parse_topic`): its label is the topic whose
keyword occurs first in it, case-insensitively; an answer naming no topic is wrong.

The comparison (:func:`compare_to_reference`) pairs a bridge's seed-averaged correctness with the
reference's on the same (language, sentence) items. SIB-200 is parallel — every language has the
same sentence ids — so the bootstrap resamples *sentences*, each carrying its difference averaged
over the group's languages; resampling (language, sentence) pairs as independent would treat the
15 translations of one sentence as 15 pieces of evidence and give too narrow an interval:

    d_j = mean_{l in group} ( mean_s correct_{bridge,s}(l, j) - correct_ref(l, j) ),
    delta = mean_j d_j,   95% CI / p from resampling the sentences j.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from layerbridge.errors import DataError
from layerbridge.evaluation import metrics

#: keyword (lower case) -> SIB-200 topic; "science" and "technology" both name science/technology
SIB200_KEYWORDS = {
    "science": "science/technology",
    "technology": "science/technology",
    "travel": "travel",
    "politic": "politics",
    "sport": "sports",
    "health": "health",
    "entertainment": "entertainment",
    "geograph": "geography",
}


def parse_topic(answer: str, keywords: Mapping[str, str] = SIB200_KEYWORDS) -> str | None:
    """The topic whose keyword occurs first in ``answer`` (None: no keyword at all)."""
    text = answer.lower()
    found = [(text.find(word), topic) for word, topic in keywords.items() if word in text]
    return min(found)[1] if found else None


def read_answers(path: Path) -> dict[str, tuple[str, str]]:
    """``index_id -> (gold category, answer)`` from one published answers file (TSV, the answer
    in the last column)."""
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t"))
    if len(rows) < 2 or "index_id" not in rows[0] or "category" not in rows[0]:
        raise DataError(f"{path}: not a SIB-200 answers file (needs index_id, category and an answer column)")
    item, gold = rows[0].index("index_id"), rows[0].index("category")
    return {row[item].strip(): (row[gold].strip(), row[-1]) for row in rows[1:] if len(row) == len(rows[0])}


def reference_correctness(
    answers_dir: Path, languages: Sequence[str], keywords: Mapping[str, str] = SIB200_KEYWORDS
) -> dict[str, dict[str, bool]]:
    """Per language (those with an answers file): ``index_id -> the reference answered right``."""
    out = {}
    for lang in languages:
        path = answers_dir / f"{lang}.tsv"
        if path.is_file():
            out[lang] = {i: parse_topic(a, keywords) == gold for i, (gold, a) in read_answers(path).items()}
    if not out:
        raise DataError(f"{answers_dir} holds no answers file for any tested language (e.g. sin_Sinh.tsv)")
    return out


def bridge_correctness(predictions: Sequence[Mapping[str, Any]], lang: str) -> dict[str, float]:
    """``item id -> fraction of seeds right`` on one language, from each seed's predictions.json."""
    per_seed = []
    for run in predictions:
        p = run[lang]
        rows = zip(p["uid"], p["gold"], p["pred"], strict=True)
        per_seed.append({uid.rsplit("/", 1)[-1]: gold == pred for uid, gold, pred in rows})
    items = per_seed[0].keys()
    if any(seed.keys() != items for seed in per_seed):
        raise DataError(f"the seeds were tested on different {lang} items; cannot average them")
    return {item: float(np.mean([seed[item] for seed in per_seed])) for item in items}


def compare_to_reference(
    fusions: Mapping[str, Sequence[Mapping[str, Any]]],
    reference: Mapping[str, Mapping[str, bool]],
    groups: Mapping[str, Sequence[str]],
    n_resamples: int = 10_000,
) -> dict[str, Any]:
    """Each fusion (its seeds' predictions) against the reference on the same items, per language
    and per group (sentence-level bootstrap, module docstring). Languages the reference did not
    answer are left out of every group."""
    languages = [lang for lang in next(iter(fusions.values()))[0] if lang in reference]
    bridge = {f: {lang: bridge_correctness(runs, lang) for lang in languages} for f, runs in fusions.items()}
    first = bridge[next(iter(bridge))]
    per_language = {
        lang: {"n": len(first[lang]), "reference": _mean(reference[lang], first[lang])}
        | {f: float(np.mean(list(bridge[f][lang].values()))) for f in fusions}
        for lang in languages
    }
    out_groups = {}
    for name, members in groups.items():
        langs = [lang for lang in members if lang in per_language]
        if not langs:
            continue
        out_groups[name] = {
            "languages": langs,
            "reference": float(np.mean([per_language[lang]["reference"] for lang in langs])),
        } | {f: _group_test(bridge[f], reference, langs, n_resamples) for f in fusions}
    full = {lang: float(np.mean(list(reference[lang].values()))) for lang in languages}
    return {"languages": per_language, "groups": out_groups, "reference_full_test": full}


def _mean(correct: Mapping[str, bool], items: Mapping[str, float]) -> float:
    missing = [i for i in items if i not in correct]
    if missing:
        raise DataError(f"the reference answers lack test item(s) {', '.join(missing[:3])}")
    return float(np.mean([correct[i] for i in items]))


def _group_test(
    bridge: Mapping[str, Mapping[str, float]],
    reference: Mapping[str, Mapping[str, bool]],
    langs: Sequence[str],
    n_resamples: int,
) -> dict[str, float]:
    """Bridge minus reference over ``langs``: accuracy and the sentence-level paired bootstrap."""
    items = [sorted(bridge[lang]) for lang in langs]
    diffs = [
        np.asarray([bridge[lang][i] - reference[lang][i] for i in ids])
        for lang, ids in zip(langs, items, strict=True)
    ]
    per_item = metrics.item_means(diffs, items)  # translations together
    accuracy = float(np.mean([np.mean(list(bridge[lang].values())) for lang in langs]))
    return {"accuracy": accuracy} | metrics.bootstrap_difference(
        [per_item] if per_item is not None else diffs, n_resamples
    )
