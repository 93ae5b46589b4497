"""Padding and length-bucketed batching of pre-tokenised prompts.

Prompts are tokenised once, up front; a batch is then only a padding of id lists. Batches
are built from examples of similar length so that little compute is spent on padding:
within "mega-batches" of ``bucket_size`` batches the examples are sorted by length, cut into
batches, and the batch order is shuffled (seeded, so an epoch's order is reproducible).
"""

from __future__ import annotations

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
