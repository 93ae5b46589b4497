"""The one data path: task examples -> token ids (once) -> batches of indices -> padded tensors.

Training, evaluation, prediction and the benchmark all go through it::

    EncodedExamples.build(template, examples, label_strings, bridge)   # tokenise once
      -> epoch_batches(...)      training order: length-bucketed, seeded, resumable mid-epoch
         sorted_batches(...)     evaluation order: longest first (data/batching.py)
      -> Collator(encoded)(indices) -> {input_ids, attention_mask [B, T]; target_ids, target_mask [B, M]}
      -> split_batch(batch, length_groups(...))   forward passes of similar length (training step)

The encoder side holds the filled prompt template, fitted to ``max_length`` without losing
the template's end (:func:`~layerbridge.data.prompts.encode_prompt`); the LLM side holds each
class's target: the label string's tokens followed by EOS.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from torch.utils.data import DataLoader, Dataset

from layerbridge.data.batching import bucketed_batches, pad_batch
from layerbridge.data.prompts import encode_prompt
from layerbridge.data.types import Example


def llm_positions(prompt_tokens: int, target_tokens: int, has_bos: bool = True) -> int:
    """LLM input positions of one training sequence — the token count used everywhere.

    [BOS] + n soft-prompt vectors + boundary + the first m - 1 target tokens (the last target
    token is predicted, never fed).
    """
    return int(has_bos) + prompt_tokens + 1 + target_tokens - 1


@dataclass
class EncodedExamples:
    """Encoder ids per example and LLM target ids (label string + EOS) per class."""

    prompt_ids: list[list[int]]
    labels: list[int]
    target_ids: list[list[int]]  # indexed by class
    prompt_pad_id: int
    target_pad_id: int

    @classmethod
    def build(
        cls, template: str, examples: Sequence[Example], label_strings: Sequence[str], bridge
    ) -> EncodedExamples:
        """Tokenise ``examples`` with ``template`` for ``bridge``.

        ``bridge`` supplies the tokenisation (a :class:`~layerbridge.modeling.bridge.Bridge`:
        ``encoder_tokenizer``, ``config.max_length``, ``encoder_pad_id``, ``eos_id``,
        ``target_token_ids``).
        """
        tokenizer, max_length = bridge.encoder_tokenizer, bridge.config.max_length
        prompts = [encode_prompt(template, ex.fields, tokenizer, max_length) for ex in examples]
        targets = [bridge.target_token_ids(label) for label in label_strings]
        labels = [ex.label for ex in examples]
        return cls(prompts, labels, targets, bridge.encoder_pad_id, bridge.eos_id)

    def __len__(self) -> int:
        return len(self.prompt_ids)

    def lengths(self) -> list[int]:
        """Encoder tokens per example."""
        return [len(ids) for ids in self.prompt_ids]

    def llm_tokens(self, indices: Sequence[int], has_bos: bool = True) -> int:
        """LLM input positions of these examples' training sequences (:func:`llm_positions`)."""
        return sum(
            llm_positions(len(self.prompt_ids[i]), len(self.target_ids[self.labels[i]]), has_bos)
            for i in indices
        )


class StateSource(Protocol):
    """Where cached encoder states come from (modeling/state_cache.py)."""

    def batch(self, indices: Sequence[int]) -> torch.Tensor:
        """Right-padded [B, T, L, D] layer states of these examples."""
        ...


class Collator:
    """Indices -> padded tensors {input_ids, attention_mask[, target_ids, target_mask][, encoder_states]}.

    Targets are each example's own class target; ``targets=False`` leaves them out (inference,
    where every class is scored). ``states`` (an encoder-state cache over the same examples,
    :class:`~layerbridge.modeling.state_cache.EncoderStateCache`) adds their cached layer
    states [B, T, L, D].
    """

    def __init__(
        self, data: EncodedExamples, targets: bool = True, states: StateSource | None = None
    ) -> None:
        self.data = data
        self.targets = targets
        self.states = states

    def __call__(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        d = self.data
        ids, mask = pad_batch([d.prompt_ids[i] for i in indices], d.prompt_pad_id)  # [B, T]
        batch = {"input_ids": ids, "attention_mask": mask}
        if self.targets:
            tids, tmask = pad_batch([d.target_ids[d.labels[i]] for i in indices], d.target_pad_id)  # [B, M]
            batch |= {"target_ids": tids, "target_mask": tmask}
        if self.states is not None:
            batch["encoder_states"] = self.states.batch(indices)  # [B, T, L, D]
        return batch


def split_batch(
    batch: dict[str, torch.Tensor], groups: Sequence[Sequence[int]]
) -> list[dict[str, torch.Tensor]]:
    """Rows ``groups`` of a collated batch, each re-padded to its own longest row.

    Every [B, T] / [B, M] tensor is cut to the group's rows and its columns to the group's
    longest mask (right padding), so a pass never computes the batch's padding.
    """
    parts = []
    for rows in groups:
        index = torch.as_tensor(rows, dtype=torch.long)
        width = int(batch["attention_mask"][index].sum(1).max())
        part = {
            "input_ids": batch["input_ids"][index, :width],
            "attention_mask": batch["attention_mask"][index, :width],
        }
        if "target_ids" in batch:
            m = int(batch["target_mask"][index].sum(1).max())
            part |= {
                "target_ids": batch["target_ids"][index, :m],
                "target_mask": batch["target_mask"][index, :m],
            }
        parts.append(part)
    return parts


def epoch_batches(
    data: EncodedExamples,
    batch_size: int,
    seed: int,
    epoch: int,
    rank: int = 0,
    world: int = 1,
    grad_accum: int = 1,
    bucket_size: int = 50,
) -> list[list[int]]:
    """This rank's micro-batches for one epoch (a pure function of its arguments).

    The global batch order depends only on ``(seed, epoch)``; rank r takes every
    ``world``-th batch, and each rank keeps the same number of micro-batches, a multiple of
    ``grad_accum`` (leftovers are dropped), so every optimizer step sees full accumulation.
    """
    batches = bucketed_batches(data.lengths(), batch_size, seed=seed * 1000 + epoch, bucket_size=bucket_size)
    per_rank = len(batches) // world
    per_rank -= per_rank % grad_accum
    return batches[rank::world][:per_rank]


class _Indexed(Dataset):
    def __init__(self, data: EncodedExamples) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> int:
        return index


def make_loader(
    data: EncodedExamples,
    batches: list[list[int]],
    num_workers: int = 0,
    pin_memory: bool = False,
    states=None,
) -> DataLoader:
    """A DataLoader over pre-built index batches, collated by :class:`Collator` (with ``states``)."""
    # A private generator: creating a DataLoader iterator draws a seed from its generator,
    # and drawing it from the global RNG would make a resumed run's dropout masks diverge.
    return DataLoader(
        _Indexed(data),
        batch_sampler=batches,
        collate_fn=Collator(data, states=states),
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=False,
        generator=torch.Generator().manual_seed(0),
    )
