"""Bridge checkpoints: small, exact round trip, strict checks, atomic writes."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from safetensors import safe_open

from layerbridge import load_bridge, save_bridge
from layerbridge.checkpoint import CONFIG_NAME, WEIGHTS_NAME, load_bridge_weights, read_tensors
from layerbridge.errors import CheckpointError
from layerbridge.evaluation.predict import score_texts
from layerbridge.io import sha256_file
from tests.conftest import FUSION_NAMES
from tests.test_bridge import LABELS, PROMPTS, TARGETS, _batch


def _randomise(bridge):
    torch.manual_seed(123)
    with torch.no_grad():
        for p in bridge.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.1)


@pytest.mark.parametrize(
    "fusion, options",
    [(f, {}) for f in FUSION_NAMES] + [("transformer-softmax", {"projector_norm": "rms"})],
)
def test_save_load_reproduces_outputs_and_holds_only_bridge_tensors(make_bridge, tmp_path, fusion, options):
    bridge = make_bridge("bert", fusion, **options)
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
    assert meta["bridge"]["projector_norm"] == options.get("projector_norm", "none")
    assert meta["base_models"]["encoder"]["num_layers"] == 3
    weights_bytes = (out_dir / WEIGHTS_NAME).stat().st_size
    llm_bytes = sum(p.numel() * p.element_size() for p in bridge.llm.parameters())
    assert weights_bytes < llm_bytes / 2
    for key, value in bridge.bridge_state_dict().items():
        assert torch.equal(loaded.bridge_state_dict()[key], value)
    with torch.no_grad():
        a = bridge(*_batch(bridge)).example_loss
        b = loaded(*_batch(loaded)).example_loss
        sa = torch.as_tensor(score_texts(bridge, PROMPTS, LABELS), dtype=torch.float32)
        sb = torch.as_tensor(score_texts(loaded, PROMPTS, LABELS), dtype=torch.float32)
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


def test_mlp_projector_has_named_parts_and_old_names_still_load(make_bridge):
    """The mlp projector's weights are linear_1 / linear_2; bridges saved as projector.0 / .2 load."""
    bridge = make_bridge("bert", "last", projector="mlp")
    names = {k for k in bridge.bridge_state_dict() if k.startswith("projector.")}
    assert names == {f"projector.linear_{i}.{p}" for i in (1, 2) for p in ("weight", "bias")}
    _randomise(bridge)
    legacy = {
        k.replace("projector.linear_1.", "projector.0.").replace("projector.linear_2.", "projector.2."): v
        for k, v in bridge.bridge_state_dict().items()
    }
    fresh = make_bridge("bert", "last", projector="mlp", seed=5)
    load_bridge_weights(fresh, legacy, "legacy")
    for key, value in bridge.bridge_state_dict().items():
        assert torch.equal(fresh.bridge_state_dict()[key], value), key


def test_identical_weights_give_identical_files(make_bridge, tmp_path):
    """Byte-reproducible checkpoints: the same weights always hash the same (weights_sha256)."""
    bridge = make_bridge("bert", "global-softmax")
    hashes = set()
    for i in range(4):
        save_bridge(bridge, tmp_path / f"copy-{i}")
        hashes.add(json.loads((tmp_path / f"copy-{i}" / CONFIG_NAME).read_text())["weights_sha256"])
    assert len(hashes) == 1


def test_save_pretrained_from_pretrained_round_trip_and_model_card(make_bridge, tmp_path):
    from layerbridge import Bridge

    bridge = make_bridge("bert", "transformer-softmax")
    _randomise(bridge)
    extra = {
        "task": {"name": "marker", "template": "{text}", "labels": {"a": "yes"}, "languages": ["en", "si"]}
    }
    folder = bridge.save_pretrained(tmp_path / "bridge", extra=extra)
    loaded = Bridge.from_pretrained(folder, device="cpu")
    bridge.eval(), loaded.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(*_batch(loaded)).loss, bridge(*_batch(bridge)).loss, atol=0, rtol=0)
    card = (folder / "README.md").read_text(encoding="utf-8")
    header = yaml.safe_load(card.split("---")[1])
    assert header["library_name"] == "layerbridge" and header["language"] == ["en", "si"]
    assert header["base_model"] == [bridge.config.encoder, bridge.config.llm]  # local paths stay as given
    assert f"`{bridge.config.encoder}`" in card and f"`{bridge.config.llm}`" in card
    assert "`transformer-softmax`" in card and "Training: not recorded" in card
