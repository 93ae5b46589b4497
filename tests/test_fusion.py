"""Fusion strategies on plain tensors: shapes, masks, weights, known answers."""

from __future__ import annotations

import pytest
import torch

from layerbridge.errors import ConfigError
from layerbridge.modeling.fusion import (
    FUSIONS,
    GlobalSoftmaxFusion,
    LastLayerFusion,
    TransformerSoftmaxFusion,
    build_fusion,
)

B, T, L, D = 3, 7, 5, 16


@pytest.fixture
def batch():
    torch.manual_seed(0)
    states = torch.randn(B, T, L, D)
    mask = torch.ones(B, T, dtype=torch.long)
    mask[1, 4:] = 0  # example 1 has 4 real tokens
    mask[2, 1:] = 0  # example 2 has 1 real token
    return states, mask


@pytest.mark.parametrize("name", ["last", "global-softmax", "transformer-softmax"])
def test_shapes_padding_zero_and_weights_sum_to_one(name, batch):
    states, mask = batch
    fusion = build_fusion(name, L, D, **({"ffn_dim": 32} if name == "transformer-softmax" else {}))
    fusion.eval()
    fused, weights = fusion(states, mask)
    assert fused.shape == (B, T, D)
    assert weights.shape == (B, T, L)
    pad = mask == 0
    assert torch.equal(fused[pad], torch.zeros_like(fused[pad]))
    assert torch.equal(weights[pad], torch.zeros_like(weights[pad]))
    sums = weights.sum(-1)
    torch.testing.assert_close(sums[~pad], torch.ones_like(sums[~pad]))
    assert (weights >= 0).all()
    # the fused vector is the weighted sum of the ORIGINAL layer states
    expected = torch.einsum("btl,btld->btd", weights, states)
    torch.testing.assert_close(fused, expected, atol=1e-5, rtol=1e-5)


def test_last_is_the_last_layer(batch):
    states, mask = batch
    fused, _ = LastLayerFusion(L, D)(states, mask)
    torch.testing.assert_close(fused[0], states[0, :, -1])


def test_global_softmax_starts_uniform_with_reference_temperature(batch):
    fusion = GlobalSoftmaxFusion(L, D)
    torch.testing.assert_close(fusion.layer_weights(), torch.full((L,), 1 / L))
    assert fusion.temperature.item() == pytest.approx(101.0)


def test_global_softmax_one_hot_on_last_equals_last(batch):
    states, mask = batch
    fusion = GlobalSoftmaxFusion(L, D)
    with torch.no_grad():
        fusion.layer_logits.zero_()
        fusion.layer_logits[-1] = 1.0  # tau ~ 101: exp(-101) ~ 1e-44, one-hot in fp32
    fused, weights = fusion(states, mask)
    expected, _ = LastLayerFusion(L, D)(states, mask)
    torch.testing.assert_close(fused, expected, atol=0, rtol=0)
    assert weights[0, 0, -1].item() == 1.0


def test_global_softmax_weights_are_shared_by_tokens(batch):
    states, mask = batch
    fusion = GlobalSoftmaxFusion(L, D)
    with torch.no_grad():
        fusion.layer_logits.copy_(torch.randn(L) * 0.01)
    _, weights = fusion(states, mask)
    real = weights[mask.bool()]
    torch.testing.assert_close(real, real[:1].expand_as(real))


def test_transformer_softmax_is_token_specific_and_ignores_padding(batch):
    states, mask = batch
    torch.manual_seed(1)
    fusion = TransformerSoftmaxFusion(L, D, ffn_dim=32).eval()
    fused, weights = fusion(states, mask)
    # different tokens get different layer weights
    assert not torch.allclose(weights[0, 0], weights[0, 1])
    # a token's result does not depend on padding or on other tokens (attention is over layers)
    alone_fused, alone_weights = fusion(states[1:2, :4], mask[1:2, :4])
    torch.testing.assert_close(fused[1:2, :4], alone_fused, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(weights[1:2, :4], alone_weights, atol=1e-6, rtol=1e-6)
    # changing a padded state changes nothing
    poked = states.clone()
    poked[1, 5] += 100.0
    fused2, _ = fusion(poked, mask)
    torch.testing.assert_close(fused, fused2, atol=0, rtol=0)


@pytest.mark.parametrize("heads,norm_first", [(1, False), (4, False), (2, True)])
def test_transformer_softmax_cls_row_equals_the_whole_block(heads, norm_first):
    """token_weights computes only the CLS row; the full block's CLS row is the known answer,
    values and gradients (dropout off so both are deterministic)."""
    torch.manual_seed(0)
    fusion = TransformerSoftmaxFusion(L, D, num_heads=heads, ffn_dim=32, dropout=0.0, norm_first=norm_first)
    with torch.no_grad():
        fusion.cls.normal_()  # a non-zero CLS, as after training
    x = torch.randn(7, L, D, requires_grad=True)
    probe = torch.randn(7, L)
    grads = []
    for fn in (fusion.token_weights, fusion.token_weights_full):
        fusion.zero_grad()
        x.grad = None
        out = fn(x)
        (out * probe).sum().backward()
        grads.append(
            (out.detach(), x.grad.clone(), {n: p.grad.clone() for n, p in fusion.named_parameters()})
        )
    (fast, fast_x, fast_p), (full, full_x, full_p) = grads
    torch.testing.assert_close(fast, full, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(fast_x, full_x, atol=1e-6, rtol=1e-4)
    for name in full_p:
        torch.testing.assert_close(fast_p[name], full_p[name], atol=1e-6, rtol=1e-4, msg=name)


def test_transformer_softmax_reference_hyperparameters():
    fusion = TransformerSoftmaxFusion(L, D)
    block = fusion.block
    assert block.self_attn.num_heads == 1
    assert block.linear1.out_features == 2048
    assert block.dropout.p == pytest.approx(0.1)
    assert block.norm_first is False  # post-LN, torch default
    assert torch.equal(fusion.cls, torch.zeros_like(fusion.cls))
    assert fusion.layer_position.shape == (L, D)
    assert fusion.to_weights.out_features == L


def test_transformer_softmax_zero_head_starts_uniform_and_still_learns(batch):
    states, mask = batch
    fusion = TransformerSoftmaxFusion(L, D, ffn_dim=32, head_init="zeros")
    fused, weights = fusion(states, mask)
    real = mask.bool()
    torch.testing.assert_close(weights[real], torch.full((int(real.sum()), L), 1 / L))
    torch.testing.assert_close(fused[real], states[real].mean(1))  # the plain layer average
    (fused * torch.randn_like(fused)).sum().backward()  # the head gets a gradient from the start
    assert fusion.to_weights.weight.grad.abs().sum() > 0
    with pytest.raises(ConfigError, match="head_init"):
        TransformerSoftmaxFusion(L, D, head_init="ones")


@pytest.mark.parametrize("name", ["global-softmax", "transformer-softmax"])
def test_fusion_parameters_receive_gradients(name, batch):
    states, mask = batch
    fusion = build_fusion(name, L, D)
    fused, _ = fusion(states, mask)
    fused.pow(2).sum().backward()
    grads = {n: p.grad for n, p in fusion.named_parameters()}
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads.values())
    assert any(g.abs().sum() > 0 for g in grads.values())


def test_unknown_fusion_and_bad_options_name_the_problem():
    with pytest.raises(ConfigError, match="unknown fusion 'mean'.*global-softmax"):
        build_fusion("mean", L, D)
    with pytest.raises(ConfigError, match="bad fusion_options for 'global-softmax'"):
        build_fusion("global-softmax", L, D, heads=3)
    with pytest.raises(ConfigError, match="expected|built for"):
        LastLayerFusion(L + 1, D)(torch.randn(1, 2, L, D), torch.ones(1, 2))
    assert FUSIONS.names() == ["global-softmax", "last", "transformer-softmax"]
