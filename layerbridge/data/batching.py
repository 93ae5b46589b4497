"""Padding and length-bucketed batching of pre-tokenised prompts.

Prompts are tokenised once, up front; a batch is then only a padding of id lists. Batches
are built from examples of similar length so that little compute is spent on padding:
within "mega-batches" of ``bucket_size`` batches the examples are sorted by length, cut into
batches, and the batch order is shuffled (seeded, so an epoch's order is reproducible).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import torch


def pad_batch(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad id lists -> ids [B, T] (long), attention mask [B, T] (long)."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, seq in enumerate(seqs):
        ids[row, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    return ids, mask


def bucketed_batches(
    lengths: Sequence[int], batch_size: int, seed: int, bucket_size: int = 50, drop_last: bool = False
) -> list[list[int]]:
    """Shuffled batches of indices whose members have similar lengths (training order)."""
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    batches: list[list[int]] = []
    span = batch_size * bucket_size
    for start in range(0, len(order), span):
        chunk = sorted(order[start : start + span], key=lambda i: lengths[i])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    if drop_last:
        batches = [b for b in batches if len(b) == batch_size]
    rng.shuffle(batches)
    return batches


def sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Batches of indices sorted by length, longest first (evaluation order)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def length_groups(lengths: Sequence[int], max_tokens: int | None, pass_cost: float) -> list[list[int]]:
    """Split one batch into forward passes of similar length: row indices per pass.

    Rows are sorted by length and cut into contiguous runs g minimising

        sum_g (|g| * max_{i in g} len_i  +  pass_cost)          (padded positions + fixed cost)

    subject to |g| * max len <= ``max_tokens`` (a row longer than that gets a pass of its own).
    Exact dynamic programme over the sorted rows, O(B^2). ``pass_cost`` is what one extra pass
    costs in token-equivalents: small on a CPU (work grows with positions), huge on a GPU
    (where one wide pass is nearly free), so a GPU batch is only split to fit ``max_tokens``.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    n = len(order)
    pass_cost = min(pass_cost, 1e12)  # "never split" stays comparable: fewest passes first
    best = [0.0] + [math.inf] * n  # best[j]: cost of the first j sorted rows
    cut = [0] * (n + 1)
    for j in range(1, n + 1):
        longest = lengths[order[j - 1]]  # sorted: the last row of a run is its longest
        for i in range(j - 1, -1, -1):
            size = j - i
            if max_tokens is not None and size > 1 and size * longest > max_tokens:
                break
            cost = best[i] + size * longest + pass_cost
            if cost < best[j]:
                best[j], cut[j] = cost, i
    groups, j = [], n
    while j > 0:
        groups.append(order[cut[j] : j])
        j = cut[j]
    return groups[::-1]
