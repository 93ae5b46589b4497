"""The fast CPU paths compute the same thing as the plain ones: length-grouped passes, the
encoder-state cache, and bf16 compute against fp32."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest
import torch

from layerbridge.config import BridgeConfig, RunConfig, TrainConfig
from layerbridge.data.batching import length_groups
from layerbridge.data.encoded import Collator, EncodedExamples
from layerbridge.data.types import Example
from layerbridge.errors import ConfigError
from layerbridge.modeling.state_cache import EncoderStateCache, cache_key, encoder_fingerprint
from layerbridge.training import TrainRecipe, train
from tests.conftest import tiny_run_config

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
    bridge = make_bridge(
        "bert", fusion, fusion_options={"dropout": 0.0} if fusion == "transformer-softmax" else {}
    )
    batch = _mixed_batch(bridge)
    bridge.train()
    one_loss, one, one_parts = _gradients(bridge, batch, max_pass_tokens=0, pass_cost=float("inf"))
    split_loss, split, split_parts = _gradients(bridge, batch, max_pass_tokens=40, pass_cost=0.0)
    assert one_parts == 1 and split_parts > 2
    assert split_loss == pytest.approx(one_loss, rel=1e-5)
    assert one.keys() == split.keys() and one
    for name in one:
        torch.testing.assert_close(split[name], one[name], atol=1e-5, rtol=1e-4, msg=name)


# ---------------------------------------------------------------- encoder-state cache
def _encoded(bridge, texts=None, max_length=None):
    texts = texts or ["w1 w2 w3", "w4", "w5 w6 w7 w8 w9 w10 w11", "w2 w2"]
    examples = [Example({"text": t}, i % 2, f"x/{i}") for i, t in enumerate(texts)]
    if max_length is not None:
        bridge.config = bridge.config.replace(max_length=max_length)
    return EncodedExamples.build("text : {text} label :", examples, ["yes", "no"], bridge)


def test_encoder_cache_returns_exactly_what_the_encoder_computes(make_bridge, tmp_path):
    bridge = make_bridge("bert", "global-softmax")
    enc = _encoded(bridge)
    cache = EncoderStateCache.load_or_build(
        bridge.encoder, enc.prompt_ids, enc.prompt_pad_id, tmp_path, batch_size=1
    )
    with torch.no_grad():
        for i, ids in enumerate(enc.prompt_ids):
            alone = bridge.encoder(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long))[0]
            assert torch.equal(cache.example(i), alone)  # bitwise: same computation, stored as is
        batch = Collator(enc)(range(len(enc)))
        full = bridge.encoder(batch["input_ids"], batch["attention_mask"])
    cached = Collator(enc, states=cache)(range(len(enc)))["encoder_states"]
    torch.testing.assert_close(cached, full * batch["attention_mask"][..., None, None], atol=1e-6, rtol=1e-5)
    # and the bridge gives the same loss from cached states as from its own encoder pass
    plain = bridge(**batch).loss
    from_cache = bridge(**batch, encoder_states=cached).loss
    torch.testing.assert_close(from_cache, plain, atol=1e-6, rtol=1e-5)


def test_encoder_cache_is_reused_and_never_stale(make_bridge, tmp_path):
    bridge = make_bridge("bert", "last")
    enc = _encoded(bridge)
    first = EncoderStateCache.load_or_build(bridge.encoder, enc.prompt_ids, enc.prompt_pad_id, tmp_path)
    # a second run (another fusion or seed) reads the file: the encoder is not called again
    forward = bridge.encoder.forward
    bridge.encoder.forward = lambda *a, **k: pytest.fail("encoder ran although the cache holds its states")
    try:
        again = EncoderStateCache.load_or_build(bridge.encoder, enc.prompt_ids, enc.prompt_pad_id, tmp_path)
    finally:
        bridge.encoder.forward = forward
    assert again.path == first.path and torch.equal(again.example(2), first.example(2))
    fingerprint = encoder_fingerprint(bridge.encoder)
    # data, max length and tokenizer all reach the key through the token ids
    other_data = _encoded(bridge, texts=["w1 w2 w3", "w4", "w5 w6 w7 w8 w9 w10 w11", "w2 w3"])
    shorter = _encoded(make_bridge("bert", "last"), max_length=6)
    other_tokenizer = _encoded(make_bridge("t5", "last"))
    keys = {cache_key(fingerprint, e.prompt_ids) for e in (enc, other_data, shorter, other_tokenizer)}
    assert len(keys) == 4 and cache_key(fingerprint, enc.prompt_ids) == first.key
    # so do the compute precision and the batching (each changes the float results)
    assert cache_key(fingerprint, enc.prompt_ids, "bf16") != first.key
    assert cache_key(fingerprint, enc.prompt_ids, batch_size=8) != first.key
    # one changed encoder weight is a new fingerprint, a new file and new states
    weight = next(
        p for n, p in bridge.encoder.named_parameters() if n.endswith("attention.self.query.weight")
    )
    saved = weight.detach().clone()
    try:
        with torch.no_grad():
            weight[0, 0] += 0.5
        assert encoder_fingerprint(bridge.encoder) != fingerprint
        changed = EncoderStateCache.load_or_build(bridge.encoder, enc.prompt_ids, enc.prompt_pad_id, tmp_path)
        assert changed.path != first.path and not torch.equal(changed.example(0), first.example(0))
    finally:
        with torch.no_grad():
            weight.copy_(saved)
    assert encoder_fingerprint(bridge.encoder) == fingerprint


def test_encoder_cache_refuses_an_encoder_that_is_not_frozen_and_deterministic(tiny_dir):
    with pytest.raises(ConfigError, match="encoder_cache needs a frozen, deterministic encoder"):
        RunConfig(bridge=BridgeConfig(encoder_dropout=True), train=TrainConfig(encoder_cache=True))
    with pytest.raises(ConfigError, match="encoder_cache needs"):
        RunConfig(bridge=BridgeConfig(freeze_encoder=False), train=TrainConfig(encoder_cache=True))


def test_training_with_the_encoder_cache_matches_training_without(tiny_dir, marker_task, tmp_path):
    """Same data, seed and batches: the cached run's bridge equals the plain run's (float rounding
    aside: cached states were computed in other batches), and its cache file is on disk."""
    results = []
    for cached in (False, True):
        config = tiny_run_config(
            tiny_dir,
            marker_task,
            tmp_path / f"run-{cached}",
            max_steps=6,
            eval_every=0,
            save_every=0,
            encoder_cache=cached,
            encoder_cache_dir=str(tmp_path / "states"),
        )
        results.append(train(config, progress=False).bridge.bridge_state_dict())
    assert list((tmp_path / "states").glob("*.safetensors"))
    for name, plain in results[0].items():
        torch.testing.assert_close(results[1][name], plain, atol=1e-5, rtol=1e-4, msg=name)


# ---------------------------------------------------------------- bf16 on the CPU
@pytest.mark.parametrize(
    "env,flags,expected",
    [("", ["avx2", "fma"], "fp32"), ("", ["avx2", "amx_bf16"], "bf16"), ("", ["avx512_bf16"], "bf16"),
     ("0", ["amx_bf16"], "fp32"), ("1", ["avx2"], "bf16")],
)  # fmt: skip
def test_auto_precision_is_bf16_exactly_where_the_cpu_has_native_bf16(monkeypatch, env, flags, expected):
    from layerbridge import runtime

    monkeypatch.setenv("LAYERBRIDGE_CPU_BF16", env)
    monkeypatch.setattr(runtime, "cpu_flags", lambda: flags)
    cpu = torch.device("cpu")
    assert runtime.compute_precision("auto", cpu) == expected
    assert runtime.weights_dtype("auto", cpu) == runtime.TORCH_DTYPES[expected]
    assert runtime.compute_precision("fp32", cpu) == "fp32"  # an explicit choice always wins


@pytest.mark.parametrize("fusion", ["last", "global-softmax", "transformer-softmax"])
def test_bf16_cpu_path_matches_fp32_for_every_fusion(make_bridge, tiny_dir, fusion):
    """Base weights held in bf16 + bf16 autocast (what auto picks on an AMX CPU) against fp32:
    the same loss and label scores within bf16 tolerance; trainable weights stay fp32."""
    from layerbridge.evaluation.predict import score_texts
    from layerbridge.modeling.builders import build_bridge, load_base_models
    from tests.test_bridge import LABELS, PROMPTS, _batch

    fp32 = make_bridge("bert", fusion).eval()
    config = fp32.config.replace(dtype="bf16")
    bf16 = build_bridge(config, device="cpu", base=load_base_models(config, device="cpu")).eval()
    bf16.load_state_dict(fp32.bridge_state_dict(), strict=False)
    assert bf16.llm_dtype == torch.bfloat16 and next(bf16.encoder.parameters()).dtype == torch.bfloat16
    assert all(p.dtype == torch.float32 for p in bf16.parameters() if p.requires_grad)
    # bf16 weights on a CPU attend with the eager kernel (bf16 sdpa backward is slow there)
    assert bf16.llm.config._attn_implementation == "eager"
    assert fp32.llm.config._attn_implementation == "sdpa"
    batch = _batch(fp32)
    with torch.no_grad():
        want = fp32(*batch).example_loss
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = bf16(*batch).example_loss
    torch.testing.assert_close(got.float(), want, atol=0.05, rtol=0.02)
    want_scores = score_texts(fp32, PROMPTS, LABELS, precision="fp32")
    got_scores = score_texts(bf16, PROMPTS, LABELS, precision="bf16")
    torch.testing.assert_close(
        torch.as_tensor(got_scores), torch.as_tensor(want_scores), atol=0.15, rtol=0.02
    )


@pytest.mark.parametrize("mode", ["score", "generate"])
def test_evaluation_from_the_encoder_cache_is_identical(make_bridge, tmp_path, mode):
    """Label scoring and generation read cached states computed in the evaluation's own batches:
    the same numbers, bitwise; a second bridge on the same prompts never runs the encoder."""
    from layerbridge.config import EvalConfig
    from layerbridge.evaluation.predict import predict_examples

    bridge = make_bridge("bert", "transformer-softmax")
    examples = [
        Example({"text": t}, i % 2, f"x/{i}") for i, t in enumerate(["w1 w2", "w3", "w4 w5 w6 w7", "w8 w9"])
    ]
    plain_config = EvalConfig(batch_size=3, mode=mode)
    cached_config = plain_config.replace(encoder_cache=True, encoder_cache_dir=str(tmp_path))
    args = (bridge, "text : {text} label :", examples, ["yes", "no"])
    plain = predict_examples(*args, plain_config, progress=False)
    cached = predict_examples(*args, cached_config, progress=False)
    forward = bridge.encoder.forward
    bridge.encoder.forward = lambda *a, **k: pytest.fail("encoder ran although its states are cached")
    try:
        again = predict_examples(*args, cached_config, progress=False)
    finally:
        bridge.encoder.forward = forward
    for result in (cached, again):
        assert (result.pred == plain.pred).all()
        assert np.array_equal(result.layer_weight_sum, plain.layer_weight_sum)
        if mode == "score":
            assert np.array_equal(result.scores, plain.scores)
        else:
            assert result.texts == plain.texts
