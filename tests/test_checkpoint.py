"""Bridge checkpoints: small, exact round trip, strict checks, atomic writes."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from layerbridge import load_bridge, save_bridge
from layerbridge.checkpoint import CONFIG_NAME, WEIGHTS_NAME, read_tensors
from layerbridge.errors import CheckpointError
from layerbridge.io import sha256_file
from tests.conftest import FUSION_NAMES
from tests.test_bridge import LABELS, PROMPTS, TARGETS, _batch


def _randomise(bridge):
    torch.manual_seed(123)
    with torch.no_grad():
        for p in bridge.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.1)


@pytest.mark.parametrize("fusion", FUSION_NAMES)
def test_save_load_reproduces_outputs_and_holds_only_bridge_tensors(make_bridge, tmp_path, fusion):
    bridge = make_bridge("bert", fusion)
    _randomise(bridge)
    out_dir = save_bridge(bridge, tmp_path / "bridge", extra={"task": "unit"})
    loaded = load_bridge(out_dir, device="cpu")
    with safe_open(str(out_dir / WEIGHTS_NAME), framework="pt") as handle:
        keys = set(handle.keys())
    assert keys == set(bridge.bridge_state_dict())
    assert all(k.startswith(("fusion.", "projector.", "boundary")) for k in keys)
    assert not any(k.startswith(("encoder.", "llm.")) for k in keys)
    meta = json.loads((out_dir / CONFIG_NAME).read_text())
    assert meta["bridge"]["fusion"] == fusion and meta["extra"] == {"task": "unit"}
    assert meta["base_models"]["encoder"]["num_layers"] == 3
    weights_bytes = (out_dir / WEIGHTS_NAME).stat().st_size
    llm_bytes = sum(p.numel() * p.element_size() for p in bridge.llm.parameters())
    assert weights_bytes < llm_bytes / 2
    for key, value in bridge.bridge_state_dict().items():
        assert torch.equal(loaded.bridge_state_dict()[key], value)
    with torch.no_grad():
        a = bridge(*_batch(bridge)).example_loss
        b = loaded(*_batch(loaded)).example_loss
        sa = bridge.score_labels(PROMPTS, LABELS).total
        sb = loaded.score_labels(PROMPTS, LABELS).total
    assert torch.equal(a, b) and torch.equal(sa, sb)
    assert len(TARGETS) == len(PROMPTS)


def test_checkpoint_on_other_base_models_is_refused(make_bridge, tiny_dir, tmp_path):
    bridge = make_bridge("bert", "global-softmax")
    out_dir = save_bridge(bridge, tmp_path / "bridge")
    with pytest.raises(CheckpointError, match="encoder hidden size is 40, checkpoint expects 32"):
        load_bridge(out_dir, encoder=str(tiny_dir / "bert-wide"), device="cpu")
    with pytest.raises(CheckpointError, match="encoder num layers is 2, checkpoint expects 3"):
        load_bridge(out_dir, encoder=str(tiny_dir / "t5"), device="cpu")


def test_truncated_or_missing_checkpoint_is_refused(make_bridge, tmp_path):
    bridge = make_bridge("bert", "last")
    out_dir = save_bridge(bridge, tmp_path / "bridge")
    weights = out_dir / WEIGHTS_NAME
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="does not match the SHA-256 .* corrupt"):
        load_bridge(out_dir, device="cpu")
    with pytest.raises(CheckpointError, match="truncated or corrupt"):  # also caught without a checksum
        read_tensors(weights)
    with pytest.raises(CheckpointError, match="not a bridge checkpoint"):
        load_bridge(tmp_path / "nowhere", device="cpu")
    (out_dir / CONFIG_NAME).write_text('{"format_version": 1, "bri')
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_bridge(out_dir, device="cpu")


def test_checkpoint_with_wrong_tensors_is_refused(make_bridge, tmp_path):
    from safetensors.torch import save_file

    bridge = make_bridge("bert", "global-softmax")
    out_dir = save_bridge(bridge, tmp_path / "bridge")
    tensors = dict(bridge.bridge_state_dict())
    tensors.pop("boundary")
    save_file({k: v.contiguous() for k, v in tensors.items()}, out_dir / WEIGHTS_NAME)
    meta = json.loads((out_dir / CONFIG_NAME).read_text())
    meta["weights_sha256"] = sha256_file(out_dir / WEIGHTS_NAME)  # a consistent but wrong checkpoint
    (out_dir / CONFIG_NAME).write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"missing \['boundary'\]"):
        load_bridge(out_dir, device="cpu")


def test_failed_save_leaves_previous_checkpoint_intact(make_bridge, tmp_path, monkeypatch):
    bridge = make_bridge("bert", "last")
    out_dir = save_bridge(bridge, tmp_path / "bridge")
    before = (out_dir / WEIGHTS_NAME).read_bytes()
    _randomise(bridge)

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("layerbridge.checkpoint.write_json", boom)
    with pytest.raises(OSError, match="disk full"):
        save_bridge(bridge, out_dir)
    assert (out_dir / WEIGHTS_NAME).read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bridge"]  # no temporary leftovers
