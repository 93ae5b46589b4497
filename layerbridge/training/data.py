"""Training data: tokenised once, served in length-bucketed batches that can resume mid-epoch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset

from layerbridge.data.batching import bucketed_batches, pad_batch


@dataclass
class EncodedExamples:
    """Encoder ids per example and LLM target ids (label string + EOS) per class."""

    prompt_ids: list[list[int]]
    labels: list[int]
    target_ids: list[list[int]]  # indexed by class
    prompt_pad_id: int
    target_pad_id: int

    def __len__(self) -> int:
        return len(self.prompt_ids)

    def tokens(self, index: int) -> int:
        """LLM tokens of one training sequence: BOS + prompt + boundary + target."""
        return len(self.prompt_ids[index]) + 2 + len(self.target_ids[self.labels[index]])


class _Indexed(Dataset):
    def __init__(self, data: EncodedExamples) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> int:
        return index


class Collator:
    """Indices -> padded tensors {input_ids, attention_mask, target_ids, target_mask}."""

    def __init__(self, data: EncodedExamples) -> None:
        self.data = data

    def __call__(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        d = self.data
        ids, mask = pad_batch([d.prompt_ids[i] for i in indices], d.prompt_pad_id)
        tids, tmask = pad_batch([d.target_ids[d.labels[i]] for i in indices], d.target_pad_id)
        return {"input_ids": ids, "attention_mask": mask, "target_ids": tids, "target_mask": tmask}


def epoch_batches(
    data: EncodedExamples,
    batch_size: int,
    seed: int,
    epoch: int,
    rank: int,
    world: int,
    grad_accum: int,
    bucket_size: int,
) -> list[list[int]]:
    """This rank's micro-batches for one epoch (a pure function of its arguments).

    The global batch order depends only on ``(seed, epoch)``; rank r takes every
    ``world``-th batch, and each rank keeps the same number of micro-batches, a multiple of
    ``grad_accum`` (leftovers are dropped), so every optimizer step sees full accumulation.
    """
    lengths = [len(ids) for ids in data.prompt_ids]
    batches = bucketed_batches(lengths, batch_size, seed=seed * 1000 + epoch, bucket_size=bucket_size)
    per_rank = len(batches) // world
    per_rank -= per_rank % grad_accum
    return batches[rank::world][:per_rank]


def make_loader(
    data: EncodedExamples, batches: list[list[int]], num_workers: int, pin_memory: bool
) -> DataLoader:
    # A private generator: creating a DataLoader iterator draws a seed from its generator,
    # and drawing it from the global RNG would make a resumed run's dropout masks diverge.
    return DataLoader(
        _Indexed(data),
        batch_sampler=batches,
        collate_fn=Collator(data),
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=False,
        generator=torch.Generator().manual_seed(0),
    )
