"""The optimised path computes the same loss and label scores as the naive reference design."""

from __future__ import annotations

import pytest
import torch

from layerbridge.bench.hardware import gpu_peak
from layerbridge.bench.naive import naive_label_scores, naive_loss
from layerbridge.evaluation.predict import score_texts
from layerbridge.modeling import flops
from tests.conftest import FUSION_NAMES
from tests.test_bridge import LABELS, PROMPTS, TARGETS, _batch


@pytest.mark.parametrize("encoder", ["bert", "t5"])
@pytest.mark.parametrize("fusion", FUSION_NAMES)
def test_optimised_equals_naive_in_fp32(make_bridge, encoder, fusion):
    bridge = make_bridge(encoder, fusion)
    with torch.no_grad():
        bridge.boundary.normal_()
        ours = bridge(*_batch(bridge)).example_loss
        reference = naive_loss(bridge, PROMPTS, TARGETS)
        scores = torch.as_tensor(score_texts(bridge, PROMPTS, LABELS), dtype=torch.float32)
        reference_scores = naive_label_scores(bridge, PROMPTS, LABELS)
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(scores, reference_scores, atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("fusion", FUSION_NAMES)
def test_optimised_equals_naive_under_bf16_autocast(make_bridge, fusion):
    bridge = make_bridge("bert", fusion)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        ours = bridge(*_batch(bridge)).example_loss
        reference = naive_loss(bridge, PROMPTS, TARGETS)
    torch.testing.assert_close(ours.float(), reference.float(), atol=0.05, rtol=0.02)


def test_gradients_match_naive(make_bridge):
    bridge = make_bridge("bert", "transformer-softmax")
    bridge.eval()  # no dropout: both paths see the same function
    bridge(*_batch(bridge)).example_loss.sum().backward()
    ours = {n: p.grad.clone() for n, p in bridge.named_parameters() if p.requires_grad}
    bridge.zero_grad()
    naive_loss(bridge, PROMPTS, TARGETS).sum().backward()
    for name, p in bridge.named_parameters():
        if p.requires_grad:
            torch.testing.assert_close(ours[name], p.grad, atol=1e-5, rtol=1e-4)


def test_flop_count_known_answer(make_bridge):
    bridge = make_bridge("bert", "last")
    enc = flops.block_parameters(bridge.encoder.model)
    llm = flops.block_parameters(bridge.llm)
    assert enc == sum(
        p.numel() for n, p in bridge.encoder.model.named_parameters() if "_embeddings." not in n
    )
    assert llm == sum(
        p.numel() for n, p in bridge.llm.named_parameters() if "embed" not in n and "lm_head" not in n
    )
    n, m = 5, 2
    s = 1 + n + 1 + m - 1
    expected = (
        (2 * enc * n + 4 * 3 * n * n * 32) + 3 * n * 2 * 32 * 48 + 2 * (2 * llm * s + 4 * 2 * s * s * 48)
    )
    expected += 2 * 2 * bridge.llm.get_input_embeddings().weight.shape[0] * 48 * m
    assert flops.training_step_flops(bridge, [n], [m]) == expected
    assert gpu_peak("NVIDIA H100 80GB HBM3") == pytest.approx(989.4e12)


@pytest.mark.real_models
def test_benchmark_runs_end_to_end_on_the_builtin_pair():
    from layerbridge.bench.run import BenchConfig, run_benchmark
    from layerbridge.report.bench import bench_markdown as markdown

    config = BenchConfig(
        batch_sizes=[2], steps=1, warmup=1, eval_examples=4, eval_batch_size=4, generate_examples=2, pool=64
    )
    report = run_benchmark(config, log=lambda _: None)
    (case,) = report["cases"]
    (train,) = case["train"]
    assert train["optimised"]["examples_per_s"] > 0 and train["naive"]["examples_per_s"] > 0
    assert train["speedup"] > 0 and 0 < train["optimised"]["mfu"] < 1
    assert case["eval"]["label_scoring_examples_per_s"] > 0 and case["eval"]["generation_examples_per_s"] > 0
    assert "| builtin | 2 |" in markdown(report)
