"""The fast CPU paths compute the same thing as the plain ones: length-grouped passes, the
encoder-state cache, and bf16 compute against fp32."""

from __future__ import annotations

import itertools
import random

import pytest
import torch

from layerbridge.config import RunConfig, TrainConfig
from layerbridge.data.batching import length_groups
from layerbridge.data.encoded import Collator, EncodedExamples
from layerbridge.data.types import Example
from layerbridge.training import TrainRecipe

WORDS = [f"w{i}" for i in range(1, 12)]


def _brute_force(lengths, max_tokens, cost):
    """Cheapest split of the sorted rows into contiguous runs, by enumerating every cut set."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    best = None
    for cuts in itertools.product([False, True], repeat=len(order) - 1):
        runs, run = [], [order[0]]
        for row, cut in zip(order[1:], cuts, strict=True):
            if cut:
                runs.append(run)
                run = []
            run.append(row)
        runs.append(run)
        widths = [len(r) * max(lengths[i] for i in r) for r in runs]
        if max_tokens and any(w > max_tokens and len(r) > 1 for w, r in zip(widths, runs, strict=True)):
            continue
        total = sum(widths) + cost * len(runs)
        best = total if best is None else min(best, total)
    return best


@pytest.mark.parametrize("seed", range(6))
def test_length_groups_is_the_cheapest_split_and_covers_every_row_once(seed):
    rng = random.Random(seed)
    lengths = [rng.randint(3, 60) for _ in range(rng.randint(1, 9))]
    max_tokens, cost = rng.choice([None, 80, 150]), rng.choice([0.0, 5.0, 40.0])
    groups = length_groups(lengths, max_tokens, cost)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    widths = [len(g) * max(lengths[i] for i in g) for g in groups]
    if max_tokens:
        assert all(w <= max_tokens or len(g) == 1 for w, g in zip(widths, groups, strict=True))
    assert sum(widths) + cost * len(groups) == pytest.approx(_brute_force(lengths, max_tokens, cost))


def test_length_groups_never_splits_when_a_pass_is_free_of_cost():
    assert len(length_groups([5, 50, 7, 90], None, float("inf"))) == 1
    assert len(length_groups([5, 50, 7, 90], 100, float("inf"))) == 3  # 4 x 90 > 100, 2 x 50 = 100


def _mixed_batch(bridge, n=6):
    """A batch whose prompts have very different lengths (and two different targets)."""
    rng = random.Random(0)
    texts = [" ".join(rng.choice(WORDS) for _ in range(rng.choice([1, 2, 12, 25]))) for _ in range(n)]
    examples = [Example({"text": t}, i % 2, f"x/{i}") for i, t in enumerate(texts)]
    encoded = EncodedExamples.build("text : {text} label :", examples, ["yes", "very positive"], bridge)
    return Collator(encoded)(range(n))


def _gradients(bridge, batch, **train):
    recipe = TrainRecipe(RunConfig(bridge=bridge.config, train=TrainConfig(**train)))
    recipe.attach(bridge, total_steps=10)
    seen = {}

    def record():
        seen.update({n: p.grad.clone() for n, p in bridge.named_parameters() if p.grad is not None})
        recipe.optimizer.zero_grad(set_to_none=True)

    recipe.optimizer_step = record
    parts = recipe.passes(batch)
    loss = recipe.train_step([batch])
    return loss, seen, len(parts)


@pytest.mark.parametrize("fusion", ["last", "global-softmax", "transformer-softmax"])
def test_length_grouped_passes_give_the_batch_gradient(make_bridge, fusion):
    bridge = make_bridge("bert", fusion, fusion_options={"dropout": 0.0} if fusion == "transformer-softmax" else {})
    batch = _mixed_batch(bridge)
    bridge.train()
    one_loss, one, one_parts = _gradients(bridge, batch, max_pass_tokens=0, pass_cost=float("inf"))
    split_loss, split, split_parts = _gradients(bridge, batch, max_pass_tokens=40, pass_cost=0.0)
    assert one_parts == 1 and split_parts > 2
    assert split_loss == pytest.approx(one_loss, rel=1e-5)
    assert one.keys() == split.keys() and one
    for name in one:
        torch.testing.assert_close(split[name], one[name], atol=1e-5, rtol=1e-4, msg=name)

