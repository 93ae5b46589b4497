"""Deterministic, stratified splitting and sub-sampling.

Neither depends on file order or on a global random state: an item's place is decided by a
SHA-1 hash of its text (for splits) or by a seeded permutation (for ``--limit`` samples), so
the same data always gives the same splits on every machine.
"""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from collections.abc import Sequence

from layerbridge.data.types import Example


def _hash(text: str, salt: str) -> str:
    return hashlib.sha1(f"{salt}\x00{text}".encode()).hexdigest()


def stratified_split(
    examples: Sequence[Example], fractions: dict[str, float], salt: str
) -> dict[str, list[Example]]:
    """Split examples into named parts with the given fractions, per class.

    Within each class, distinct texts are ordered by ``sha1(salt, text)`` and cut at the
    cumulative fractions (rounded), so that the class balance is kept in every part and
    identical texts (duplicates) always land in the same part. Parts keep input order.
    """
    if abs(sum(fractions.values()) - 1.0) > 1e-9:
        raise ValueError(f"split fractions must sum to 1, got {fractions}")
    by_class: dict[int, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for index, ex in enumerate(examples):
        by_class[ex.label][ex.text_key()].append(index)
    assignment: dict[int, str] = {}
    names = list(fractions)
    for label in sorted(by_class):
        texts = sorted(by_class[label], key=lambda t: _hash(t, salt))
        start = 0
        cumulative = 0.0
        for part_index, name in enumerate(names):
            cumulative += fractions[name]
            end = len(texts) if part_index == len(names) - 1 else round(cumulative * len(texts))
            for text in texts[start:end]:
                for index in by_class[label][text]:
                    assignment[index] = name
            start = end
    parts: dict[str, list[Example]] = {name: [] for name in names}
    for index, ex in enumerate(examples):
        parts[assignment[index]].append(ex)
    return parts


def stratified_sample(examples: Sequence[Example], limit: int | None, seed: int = 0) -> list[Example]:
    """At most ``limit`` examples, class-balanced, chosen by a seeded permutation.

    Classes are interleaved round-robin in permuted order, so any prefix is balanced. The
    chosen examples are returned in their original order. Datasets that are row-parallel
    across languages (XNLI) get the same rows in every language.
    """
    if limit is None or limit >= len(examples):
        return list(examples)
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    queues: dict[int, list[int]] = defaultdict(list)
    for index in order:
        queues[examples[index].label].append(index)
    chosen: list[int] = []
    labels = sorted(queues)
    position = 0
    while len(chosen) < limit:
        for label in labels:
            if position < len(queues[label]) and len(chosen) < limit:
                chosen.append(queues[label][position])
        position += 1
    return [examples[i] for i in sorted(chosen)]
