"""CUDA: the bridge computes on a GPU what it computes on the CPU, and trains there.

Skipped where torch sees no CUDA GPU (CI has none); run on a GPU machine with
``python -m pytest tests/test_gpu.py``. Results are recorded in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import json

import pytest
import torch

from layerbridge.bench.naive import naive_loss
from layerbridge.checkpoint import load_bridge, save_bridge
from layerbridge.evaluation.predict import score_texts
from layerbridge.runtime import autocast, compute_precision
from layerbridge.training import train
from tests.conftest import FUSION_NAMES, tiny_run_config
from tests.test_bridge import LABELS, PROMPTS, TARGETS, _batch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

CUDA = torch.device("cuda")


@pytest.fixture(autouse=True)
def _exact_fp32():
    """fp32 comparisons must not run through TF32 matrix units."""
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


def _copy_trainable(source, target) -> None:
    weights = dict(source.named_parameters())
    for name, p in target.named_parameters():
        if p.requires_grad:
            p.copy_(weights[name])


def _on(batch, device):
    return tuple(t.to(device) for t in batch)


@pytest.mark.parametrize("fusion", FUSION_NAMES)
def test_fp32_loss_gradients_and_scores_equal_cpu(make_bridge, fusion):
    cpu = make_bridge("bert", fusion, dtype="fp32").eval()
    gpu = make_bridge("bert", fusion, device="cuda", dtype="fp32").eval()
    with torch.no_grad():
        cpu.boundary.normal_()
        _copy_trainable(cpu, gpu)
    losses, grads = {}, {}
    for name, bridge in (("cpu", cpu), ("gpu", gpu)):
        loss = bridge(*_on(_batch(bridge), bridge.device)).example_loss
        loss.sum().backward()
        losses[name] = loss.detach().cpu()
        grads[name] = {n: p.grad.cpu() for n, p in bridge.named_parameters() if p.grad is not None}
    torch.testing.assert_close(losses["gpu"], losses["cpu"], atol=1e-4, rtol=1e-4)
    assert grads["gpu"].keys() == grads["cpu"].keys()
    trainable = {n for n, p in gpu.named_parameters() if p.requires_grad}
    assert set(grads["gpu"]) == trainable  # frozen encoder / LLM get no gradient on the GPU either
    for name in trainable:
        torch.testing.assert_close(grads["gpu"][name], grads["cpu"][name], atol=1e-4, rtol=1e-3)
    with torch.no_grad():
        scores = {
            n: torch.as_tensor(score_texts(b, PROMPTS, LABELS, precision="fp32"))
            for n, b in (("cpu", cpu), ("gpu", gpu))
        }
    torch.testing.assert_close(scores["gpu"], scores["cpu"], atol=1e-3, rtol=1e-4)


@pytest.mark.parametrize("fusion", FUSION_NAMES)
def test_bf16_autocast_on_gpu_matches_the_naive_design(make_bridge, fusion):
    bridge = make_bridge("bert", fusion, device="cuda", dtype="fp32")
    assert compute_precision("auto", CUDA) == ("bf16" if torch.cuda.is_bf16_supported() else "fp32")
    with torch.no_grad(), autocast(CUDA, "bf16"):
        ours = bridge(*_on(_batch(bridge), CUDA)).example_loss
        reference = naive_loss(bridge, PROMPTS, TARGETS)
    assert torch.isfinite(ours).all()
    torch.testing.assert_close(ours.float(), reference.float(), atol=0.05, rtol=0.02)


def test_padding_does_not_change_a_gpu_score(make_bridge):
    bridge = make_bridge("bert", "transformer-softmax", device="cuda", dtype="fp32").eval()
    with torch.no_grad():
        alone = score_texts(bridge, PROMPTS[:1], LABELS, precision="fp32")
        batched = score_texts(bridge, PROMPTS, LABELS, precision="fp32")  # longer neighbours pad it
    torch.testing.assert_close(torch.as_tensor(batched[0]), torch.as_tensor(alone[0]), atol=1e-4, rtol=1e-5)


def test_gpu_checkpoint_loads_on_cpu_unchanged(make_bridge, tiny_dir, tmp_path):
    bridge = make_bridge("bert", "global-softmax", device="cuda")
    with torch.no_grad():
        for p in bridge.parameters():
            if p.requires_grad:
                p.normal_()
    save_bridge(bridge, tmp_path / "ckpt")
    again = load_bridge(tmp_path / "ckpt", device="cpu")
    for key, value in bridge.bridge_state_dict().items():
        assert torch.equal(again.bridge_state_dict()[key], value.cpu()), key


def test_training_on_the_gpu_learns_the_marker_task(tiny_dir, marker_task, tmp_path):
    config = tiny_run_config(
        tiny_dir, marker_task, tmp_path / "run", max_steps=150, eval_every=50, save_every=50
    )
    result = train(config, progress=False)
    summary = json.loads((result.output_dir / "summary.json").read_text())
    assert summary["device"].startswith("cuda"), summary["device"]
    assert summary["precision"] == ("bf16" if torch.cuda.is_bf16_supported() else "fp32")
    assert summary["best_dev_accuracy"] >= 0.8, summary
