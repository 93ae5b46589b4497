"""The bridge learns: a few hundred steps on a synthetic task reach ~100% accuracy."""

from __future__ import annotations

import random

import pytest
import torch

from layerbridge.evaluation.predict import encode_texts, score_texts
from tests.conftest import FUSION_NAMES, marker_example


@pytest.mark.parametrize("fusion", FUSION_NAMES)
def test_bridge_learns_marker_task(make_bridge, fusion):
    encoder = "t5" if fusion == "global-softmax" else "bert"
    bridge = make_bridge(encoder, fusion, seed=0)
    rng = random.Random(0)
    test = [marker_example(random.Random(10_000 + i)) for i in range(200)]
    params = [p for p in bridge.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=3e-3)
    bridge.train()
    losses = []
    for _ in range(400):
        batch = [marker_example(rng) for _ in range(16)]
        ids, mask = encode_texts(bridge, [x for x, _ in batch])
        tids, tmask = bridge.pad_targets([bridge.target_token_ids(y) for _, y in batch])
        loss = bridge(ids, mask, tids, tmask).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    bridge.eval()
    scores = torch.as_tensor(score_texts(bridge, [x for x, _ in test], ["yes", "no"]), dtype=torch.float32)
    gold = torch.tensor([0 if y == "yes" else 1 for _, y in test])
    accuracy = (scores.argmax(1) == gold).float().mean().item()
    first, last = sum(losses[:20]) / 20, sum(losses[-20:]) / 20
    assert last < 0.25 * first, (first, last)
    assert accuracy >= 0.97, accuracy
