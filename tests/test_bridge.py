"""The bridge on tiny random models: layout, masks, padding invariance, gradients, known answers."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from transformers.modeling_outputs import BaseModelOutput

from layerbridge import BridgeConfig
from layerbridge.errors import ConfigError, DataError, ModelError
from layerbridge.evaluation.predict import encode_texts, generate_texts, score_texts
from layerbridge.modeling import builders
from layerbridge.modeling.builders import check_bridge_config, load_base_models
from layerbridge.modeling.projector import build_projector
from tests.conftest import FUSION_NAMES

PROMPTS = [
    "text : w1 w2 w3 w4 w5 w6 marker w7 label :",
    "text : w8 label :",
    "premise : w9 w10 hypothesis : w11 label :",
]
TARGETS = ["yes", "very positive", "no"]
LABELS = ["yes", "no", "very negative", "neutral"]


def _batch(bridge, prompts=PROMPTS, targets=TARGETS):
    ids, mask = encode_texts(bridge, prompts)
    tids, tmask = bridge.pad_targets([bridge.target_token_ids(t) for t in targets])
    return ids, mask, tids, tmask


def test_prefix_layout_and_masks(make_bridge):
    bridge = make_bridge("bert", "last")
    ids, mask = encode_texts(bridge, PROMPTS)
    assert ids.shape == mask.shape and ids.shape[0] == 3
    n = mask.sum(1)
    assert (mask[:, 0] == 1).all() and n[1] < n[0]  # right-padded encoder batch
    prompt, _ = bridge.soft_prompt(ids, mask)
    embeds, pmask = bridge.build_prefix(prompt, mask)
    width = ids.shape[1] + 2
    assert embeds.shape == (3, width, prompt.shape[-1]) and pmask.shape == (3, width)
    bos = bridge.llm.get_input_embeddings().weight[bridge.bos_id]
    for b in range(3):
        pads = width - int(n[b]) - 2
        assert pmask[b].tolist() == [0] * pads + [1] * (int(n[b]) + 2)  # left-padded
        assert torch.equal(embeds[b, :pads], torch.zeros_like(embeds[b, :pads]))
        torch.testing.assert_close(embeds[b, pads], bos)
        torch.testing.assert_close(embeds[b, pads + 1 : width - 1], prompt[b, : int(n[b])])
        torch.testing.assert_close(embeds[b, -1], bridge.boundary)  # same column for everyone


@pytest.mark.parametrize("encoder", ["bert", "t5"])
@pytest.mark.parametrize("fusion", FUSION_NAMES)
def test_padded_batch_matches_each_example_alone(make_bridge, encoder, fusion):
    bridge = make_bridge(encoder, fusion)
    with torch.no_grad():
        bridge.boundary.normal_()  # a non-trivial boundary
    candidates = [bridge.target_token_ids(label) for label in LABELS]
    with torch.no_grad():
        batch_loss = bridge(*_batch(bridge)).example_loss
        batch_scores = bridge.score_candidates(*encode_texts(bridge, PROMPTS), candidates)
    for i in range(len(PROMPTS)):
        with torch.no_grad():
            alone = bridge(*_batch(bridge, PROMPTS[i : i + 1], TARGETS[i : i + 1])).example_loss
            scores = bridge.score_candidates(*encode_texts(bridge, PROMPTS[i : i + 1]), candidates)
        torch.testing.assert_close(batch_loss[i : i + 1], alone, atol=1e-5, rtol=0)
        torch.testing.assert_close(batch_scores.total[i : i + 1], scores.total, atol=1e-5, rtol=0)
        torch.testing.assert_close(batch_scores.mean[i : i + 1], scores.mean, atol=1e-5, rtol=0)


@pytest.mark.parametrize("fusion", FUSION_NAMES)
def test_only_bridge_parameters_get_gradients(make_bridge, fusion):
    bridge = make_bridge("t5", fusion)
    bridge.train()
    frozen_before = {
        name: p.detach().clone()
        for name, p in bridge.named_parameters()
        if name.startswith(("encoder.", "llm."))
    }
    optimizer = torch.optim.AdamW(bridge.parameters(), lr=1e-2, weight_decay=0.1)
    bridge(*_batch(bridge)).loss.backward()
    for name, p in bridge.named_parameters():
        if name.startswith(("fusion.", "projector.", "boundary")):
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
        else:
            assert p.grad is None, f"{name} must not receive a gradient"
    assert bridge.boundary.grad.abs().sum() > 0 and bridge.projector.weight.grad.abs().sum() > 0
    optimizer.step()
    for name, p in bridge.named_parameters():
        if name in frozen_before:
            assert torch.equal(p, frozen_before[name]), f"{name} changed"
    assert not bridge.llm.training and not bridge.encoder.training  # frozen models: no dropout


def test_loss_equals_hand_computed_cross_entropy(make_bridge):
    bridge = make_bridge("bert", "global-softmax")
    with torch.no_grad():
        bridge.boundary.normal_()
    ids, mask, tids, tmask = _batch(bridge)
    out = bridge(ids, mask, tids, tmask)
    assert out.logits.shape[:2] == tids.shape  # logits only at the target positions
    emb = bridge.llm.get_input_embeddings()
    prompt, _ = bridge.soft_prompt(ids, mask)
    nlls = []
    for b in range(len(PROMPTS)):
        n, m = int(mask[b].sum()), int(tmask[b].sum())
        y = tids[b, :m]
        seq = torch.cat([emb.weight[bridge.bos_id][None], prompt[b, :n], bridge.boundary[None], emb(y)])
        logits = bridge.llm(inputs_embeds=seq[None]).logits[0]  # [1 + n + 1 + m, V]
        logp = torch.log_softmax(logits, -1)
        # column n + 1 (the boundary) predicts y_0, column n + 1 + j predicts y_j
        token_nll = -torch.stack([logp[n + 1 + j, y[j]] for j in range(m)])
        nlls.append(token_nll)
        torch.testing.assert_close(out.example_loss[b], token_nll.mean(), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.loss, torch.cat(nlls).mean(), atol=1e-5, rtol=0)
    # and it is plain cross-entropy of the returned target logits
    manual = F.cross_entropy(out.logits[tmask.bool()], tids[tmask.bool()])
    torch.testing.assert_close(out.loss, manual, atol=1e-6, rtol=0)


@pytest.mark.parametrize("fusion", FUSION_NAMES)
def test_cached_label_scores_equal_teacher_forced_loss(make_bridge, fusion):
    bridge = make_bridge("t5", fusion)
    ids, mask = encode_texts(bridge, PROMPTS)
    candidates = [bridge.target_token_ids(label) for label in LABELS]
    scores = bridge.score_candidates(ids, mask, candidates)
    assert scores.total.shape == (len(PROMPTS), len(LABELS))
    for k, cand in enumerate(candidates):
        tids, tmask = bridge.pad_targets([cand] * len(PROMPTS))
        with torch.no_grad():
            nll = bridge(ids, mask, tids, tmask).example_loss  # mean NLL per token
        torch.testing.assert_close(scores.total[:, k], -nll * len(cand), atol=1e-5, rtol=0)
        torch.testing.assert_close(scores.mean[:, k], -nll, atol=1e-5, rtol=0)


def test_greedy_generation_matches_manual_decoding_and_padding(make_bridge):
    bridge = make_bridge("bert", "transformer-softmax")
    ids, mask = encode_texts(bridge, PROMPTS)
    generated = bridge.generate_ids(ids, mask, max_new_tokens=5)
    emb = bridge.llm.get_input_embeddings()
    prompt, _ = bridge.soft_prompt(ids, mask)
    for b in range(len(PROMPTS)):
        n = int(mask[b].sum())
        seq = torch.cat([emb.weight[bridge.bos_id][None], prompt[b, :n], bridge.boundary[None]])
        manual = []
        for _ in range(5):
            nxt = int(bridge.llm(inputs_embeds=seq[None]).logits[0, -1].argmax())
            if nxt == bridge.eos_id:
                break
            manual.append(nxt)
            seq = torch.cat([seq, emb.weight[nxt][None]])
        assert generated[b] == manual
        alone = bridge.generate_ids(*encode_texts(bridge, PROMPTS[b : b + 1]), max_new_tokens=5)
        assert alone[0] == generated[b]
    texts = generate_texts(bridge, PROMPTS, max_new_tokens=3)
    assert len(texts) == 3 and all(isinstance(t, str) for t in texts)


def test_parameter_counts(make_bridge):
    bridge = make_bridge("bert", "global-softmax")
    counts = bridge.parameter_counts()
    d_enc, d_llm, layers = 32, 48, 3
    assert counts["fusion"] == layers + 1  # w_l and t
    assert counts["projector"] == d_enc * d_llm + d_llm
    assert counts["boundary"] == d_llm
    assert counts["trainable"] == counts["fusion"] + counts["projector"] + counts["boundary"]
    assert counts["total"] == counts["trainable"] + counts["encoder"] + counts["llm"]
    mlp = make_bridge("bert", "last", projector="mlp").parameter_counts()
    assert mlp["projector"] == (d_enc * d_llm + d_llm) + (d_llm * d_llm + d_llm)


def test_options_include_embeddings_and_unfrozen_encoder(make_bridge):
    bridge = make_bridge("bert", "global-softmax", include_embeddings=True)
    assert bridge.encoder.num_layers == 4 and bridge.fusion.layer_logits.shape == (4,)
    states = bridge.encoder(*encode_texts(bridge, PROMPTS[:1]))
    assert states.shape[2] == 4
    unfrozen = make_bridge("bert", "last", freeze_encoder=False)
    unfrozen.train()
    assert unfrozen.encoder.training
    unfrozen(*_batch(unfrozen)).loss.backward()
    enc_grads = [p.grad for p in unfrozen.encoder.parameters()]
    assert all(g is not None for g in enc_grads)
    assert all(p.grad is None for p in unfrozen.llm.parameters())
    assert any(k.startswith("encoder.") for k in unfrozen.bridge_state_dict())


def test_fusion_width_is_checked_before_encoder_weights_load(tiny_dir, monkeypatch):
    def no_weights(*args, **kwargs):
        raise AssertionError("encoder weights were loaded before the fusion options were checked")

    monkeypatch.setattr(builders, "load_encoder_model", no_weights)
    config = BridgeConfig(
        encoder=str(tiny_dir / "bert"),  # hidden 32: 3 heads do not divide it, 4 do
        llm=str(tiny_dir / "llama"),
        fusion="transformer-softmax",
        fusion_options={"num_heads": 3},
    )
    check_bridge_config(config)  # the toy-size check cannot know the real width
    with pytest.raises(ConfigError, match="num_heads=3 does not divide the encoder's hidden size 32"):
        load_base_models(config, device="cpu")
    with pytest.raises(AssertionError, match="were loaded"):  # 4 heads pass the check
        load_base_models(config.replace(fusion_options={"num_heads": 4}), device="cpu")


def test_errors_name_the_problem(make_bridge, monkeypatch):
    with pytest.raises(ConfigError, match="unknown projector 'conv'.*linear, mlp"):
        check_bridge_config(BridgeConfig(projector="conv"))
    with pytest.raises(ConfigError, match="unknown fusion 'average'"):
        check_bridge_config(BridgeConfig(fusion="average"))
    # option names are checked before any model loads (values when the module is built)
    with pytest.raises(ConfigError, match="bad fusion_options for 'last': unknown head_init"):
        check_bridge_config(BridgeConfig(fusion="last", fusion_options={"head_init": "zeros"}))
    with pytest.raises(ConfigError, match="unknown hidden .*it takes: .*hidden_dim"):
        check_bridge_config(BridgeConfig(projector="mlp", projector_options={"hidden": 8}))
    check_bridge_config(BridgeConfig(fusion="transformer-softmax", fusion_options={"head_init": "zeros"}))
    with pytest.raises(ConfigError, match="head_init must be 'default' or 'zeros'"):  # a bad value, too
        check_bridge_config(BridgeConfig(fusion="transformer-softmax", fusion_options={"head_init": "ones"}))
    with pytest.raises(ConfigError, match="parametrisation"):
        check_bridge_config(BridgeConfig(fusion="global-softmax", fusion_options={"parametrisation": "x"}))
    bridge = make_bridge("bert", "last")
    with pytest.raises(DataError, match="input text #1 is empty"):
        encode_texts(bridge, ["text : w1", "   "])

    def no_hidden(*args, **kwargs):
        return BaseModelOutput(last_hidden_state=torch.zeros(1, 3, 32), hidden_states=None)

    monkeypatch.setattr(bridge.encoder.model, "forward", no_hidden)
    with pytest.raises(ModelError, match="returned no hidden states"):
        score_texts(bridge, ["text : w1"], ["yes"])


def test_llm_without_input_embeddings_is_rejected(make_bridge, monkeypatch):
    from transformers import LlamaForCausalLM

    monkeypatch.setattr(LlamaForCausalLM, "get_input_embeddings", lambda self: None)
    with pytest.raises(ModelError, match="exposes no input embeddings"):
        make_bridge("bert", "last")


def test_zero_initialised_projector_starts_from_an_empty_prompt(make_bridge):
    bridge = make_bridge("bert", "transformer-softmax", projector_init="zeros")
    ids, mask = encode_texts(bridge, PROMPTS)
    prompt, _ = bridge.soft_prompt(ids, mask)
    assert torch.equal(prompt, torch.zeros_like(prompt))
    bridge.train()
    bridge(*_batch(bridge)).loss.backward()
    assert bridge.projector.weight.grad.abs().sum() > 0  # it still learns
    mlp = make_bridge("bert", "last", projector="mlp", projector_init="zeros")
    assert torch.equal(mlp.projector.linear_2.weight, torch.zeros_like(mlp.projector.linear_2.weight))
    assert mlp.projector.linear_1.weight.abs().sum() > 0


def test_rms_normed_projector_holds_each_soft_prompt_vector_at_the_llm_embedding_scale(make_bridge):
    """projector_norm rms: every real soft-prompt vector starts with RMS = the LLM's embedding RMS
    (whatever proj's scale), and the gain g as well as proj are trained."""
    bridge = make_bridge("bert", "last", projector_norm="rms")
    target = float(bridge.llm.get_input_embeddings().weight.float().pow(2).mean().sqrt())
    with torch.no_grad():
        bridge.projector.proj.weight.mul_(50.0)  # a soft prompt 50x too large before the norm
    ids, mask = encode_texts(bridge, PROMPTS)
    prompt, _ = bridge.soft_prompt(ids, mask)  # [B, T, D_llm]
    rms = prompt.pow(2).mean(-1).sqrt()[mask.bool()]  # [real tokens]
    torch.testing.assert_close(rms, torch.full_like(rms, target), rtol=2e-3, atol=0)
    bridge.train()
    bridge(*_batch(bridge)).loss.backward()
    assert bridge.projector.proj.weight.grad.abs().sum() > 0
    assert bridge.projector.norm.weight.grad.abs().sum() > 0
    assert set(bridge.bridge_state_dict()) >= {"projector.proj.weight", "projector.norm.weight"}
    with pytest.raises(ConfigError, match="projector_norm"):
        BridgeConfig(projector_norm="layer")
    with pytest.raises(ConfigError, match="projector_init zeros"):
        BridgeConfig(projector_norm="rms", projector_init="zeros")


def test_rms_norm_under_bf16_autocast_is_computed_in_fp32_and_returns_bf16():
    """Under bf16 autocast the projector's output is bf16 and g is fp32: the norm's statistic is
    taken in fp32 (torch's fused kernel, no dtype-mismatch fallback) and the soft prompt comes
    back in bf16, within bf16 rounding of the fp32 computation."""
    projector = build_projector("linear", 16, 32, norm="rms", norm_scale=0.1)
    z = torch.randn(2, 5, 16, generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the mismatch fallback warns
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = projector(z)  # [2, 5, 32]
    assert out.dtype == torch.bfloat16
    y = projector.proj(z).to(torch.bfloat16).float()  # what the bf16 Linear gives, then fp32 maths
    expected = 0.1 * y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + 1e-6)
    torch.testing.assert_close(out.float(), expected, rtol=1e-2, atol=1e-3)


def test_label_scoring_without_an_expandable_cache_gives_the_same_scores(make_bridge, monkeypatch):
    bridge = make_bridge("t5", "global-softmax")
    ids, mask = encode_texts(bridge, PROMPTS)
    candidates = [bridge.target_token_ids(label) for label in LABELS]
    cached = bridge.score_candidates(ids, mask, candidates).total
    monkeypatch.setattr("layerbridge.modeling.bridge.output_cache", lambda out: object())
    uncached = bridge.score_candidates(ids, mask, candidates).total
    torch.testing.assert_close(cached, uncached, atol=1e-5, rtol=0)


def test_boundary_can_start_from_the_llms_own_token_embedding(make_bridge):
    """boundary_init token: b_0 = E[last LLM token of boundary_token], exactly; zeros stays 0;
    an empty text is refused by the config, before any model loads."""
    bridge = make_bridge("bert", "last", boundary_init="token", boundary_token=" label :")
    ids = bridge.llm_tokenizer(" label :", add_special_tokens=False)["input_ids"]
    expected = bridge.embed_tokens(torch.tensor(ids[-1:]))[0].float()
    assert expected.abs().sum() > 0
    assert torch.equal(bridge.boundary.detach(), expected)
    assert bridge.boundary.requires_grad
    assert make_bridge("bert", "last").boundary.abs().sum() == 0
    with pytest.raises(ConfigError, match="boundary_token must name at least one character"):
        BridgeConfig(boundary_init="token", boundary_token="")
    with pytest.raises(ConfigError, match="choose zeros, normal or token"):
        BridgeConfig(boundary_init="eos")
