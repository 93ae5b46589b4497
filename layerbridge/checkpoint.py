"""Bridge checkpoints: the bridge's own weights plus a JSON config, never the base models.

A bridge directory holds

* ``bridge.safetensors``  fusion, projector and boundary tensors (+ the encoder's, only
  when it was trained);
* ``bridge_config.json``  the :class:`BridgeConfig` (naming the encoder and the LLM by id or
  path), the base models' shapes for mismatch checks, and optional extra metadata (the task
  the bridge was trained for, training summary).

Both are written into a temporary directory that replaces the target in one rename, and
weights are read with ``safetensors`` only (no pickle).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from layerbridge.config import BridgeConfig
from layerbridge.errors import CheckpointError, ConfigError
from layerbridge.io import atomic_dir, sha256_file, umask, write_json
from layerbridge.modeling.bridge import Bridge
from layerbridge.modeling.builders import BaseModels, build_bridge
from layerbridge.modeling.llm import llm_hidden_size
from layerbridge.modeling.projector import LEGACY_KEYS
from layerbridge.report.model_card import model_card

WEIGHTS_NAME = "bridge.safetensors"
CONFIG_NAME = "bridge_config.json"
FORMAT_VERSION = 1
#: the model card written beside the weights (Hugging Face convention)
CARD_NAME = "README.md"


def base_model_info(bridge: Bridge) -> dict[str, dict[str, Any]]:
    """Shapes of the base models a bridge is tied to."""
    enc_cfg, llm_cfg = bridge.encoder.model.config, bridge.llm.config
    return {
        "encoder": {
            "model_type": enc_cfg.model_type,
            "hidden_size": bridge.encoder.hidden_size,
            "num_layers": bridge.encoder.num_model_layers,
        },
        "llm": {
            "model_type": llm_cfg.model_type,
            "hidden_size": llm_hidden_size(bridge.llm),
            "vocab_size": int(getattr(llm_cfg, "vocab_size", 0) or 0),
        },
    }


def write_bridge_files(bridge: Bridge, folder: Path, extra: dict[str, Any] | None = None) -> None:
    """Write the bridge's two files into an existing ``folder`` (no atomicity by itself)."""
    from layerbridge import __version__

    tensors = {k: v.detach().to("cpu").contiguous() for k, v in bridge.bridge_state_dict().items()}
    meta = {
        "format_version": FORMAT_VERSION,
        "layerbridge_version": __version__,
        "bridge": bridge.config.to_dict(),
        "base_models": base_model_info(bridge),
        "parameters": bridge.parameter_counts(),
        "extra": extra or {},
    }
    weights = folder / WEIGHTS_NAME
    # one metadata key only: safetensors writes the header's metadata in hash order, so a second
    # key would make identical weights give different bytes (and a different weights_sha256)
    save_file(tensors, weights, metadata={"format": "pt"})
    os.chmod(weights, 0o666 & ~umask())  # the same permissions as every other file we write
    meta["weights_sha256"] = sha256_file(weights)
    write_json(folder / CONFIG_NAME, meta)
    (folder / CARD_NAME).write_text(model_card(meta), encoding="utf-8")


def save_bridge(bridge: Bridge, directory: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Write ``bridge`` to ``directory`` atomically (all or nothing); returns the directory."""
    directory = Path(directory)
    with atomic_dir(directory) as tmp:
        write_bridge_files(bridge, tmp, extra)
    return directory


def read_bridge_meta(directory: str | Path) -> dict[str, Any]:
    """The parsed ``bridge_config.json`` of a bridge directory."""
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise CheckpointError(f"{directory} is not a bridge checkpoint (no {CONFIG_NAME})")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path} is truncated or corrupt: {err}") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path} must hold a JSON object, found {type(meta).__name__}")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path} has unsupported format_version {meta.get('format_version')!r}")
    return meta


def read_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a safetensors file, turning any decoding failure into a :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as handle:
            return {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"checkpoint file {path} is truncated or corrupt: {err}") from None


def read_bridge_tensors(directory: str | Path, meta: dict[str, Any] | None = None) -> dict[str, torch.Tensor]:
    """The bridge weights of a checkpoint folder, after checking them against the recorded SHA-256."""
    directory = Path(directory)
    meta = meta if meta is not None else read_bridge_meta(directory)
    path = directory / WEIGHTS_NAME
    if not path.is_file():
        raise CheckpointError(f"checkpoint file {path} does not exist")
    expected = meta.get("weights_sha256")
    if expected is None:
        warnings.warn(
            f"{directory}: no weights checksum recorded (older checkpoint); not verified", stacklevel=2
        )
    elif sha256_file(path) != expected:
        raise CheckpointError(
            f"{path} does not match the SHA-256 recorded in {CONFIG_NAME}: it is corrupt or was modified"
        )
    return read_tensors(path)


def check_base_models(expected: dict[str, dict[str, Any]], bridge: Bridge, directory: Path) -> None:
    """Raise if the loaded base models do not have the shapes the checkpoint was trained on."""
    actual = base_model_info(bridge)
    problems = []
    for role, keys in (("encoder", ("hidden_size", "num_layers")), ("llm", ("hidden_size",))):
        for key in keys:
            want, got = expected.get(role, {}).get(key), actual[role][key]
            if want is not None and want != got:
                problems.append(f"{role} {key.replace('_', ' ')} is {got}, checkpoint expects {want}")
    if problems:
        raise CheckpointError(f"bridge {directory} does not fit these base models: " + "; ".join(problems))
    for role, key in (("encoder", "model_type"), ("llm", "model_type"), ("llm", "vocab_size")):
        want, got = expected.get(role, {}).get(key), actual[role][key]
        if want not in (None, got):
            warnings.warn(
                f"bridge {directory}: {role} {key} is {got!r}, it was trained with {want!r}", stacklevel=3
            )


def _current_key(key: str) -> str:
    """A state-dict key of an older layerbridge version under its current name."""
    for old, new in LEGACY_KEYS.items():
        if key.startswith(old):
            return new + key[len(old) :]
    return key


def load_bridge_weights(bridge: Bridge, tensors: dict[str, torch.Tensor], source: str) -> None:
    """Copy checkpoint tensors into ``bridge``, requiring exactly the expected keys and shapes."""
    tensors = {_current_key(key): value for key, value in tensors.items()}
    expected = bridge.bridge_state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{source} does not match this bridge: missing {missing or 'nothing'}, "
            f"unexpected {unexpected or 'nothing'}"
        )
    for key, value in tensors.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise CheckpointError(
                f"{source}: tensor {key} has shape {tuple(value.shape)}, the bridge expects "
                f"{tuple(expected[key].shape)}"
            )
    bridge.load_state_dict(tensors, strict=False)


def _legacy_options(config: BridgeConfig, tensors: dict[str, torch.Tensor]) -> BridgeConfig:
    """Options that older layerbridge versions used by default, read off a checkpoint's tensors.

    Global Softmax bridges saved before the log-temperature default hold ``fusion.t`` (the
    reference parametrisation tau = 100 + 1e5 t) and record no ``parametrisation``.
    """
    options = config.fusion_options
    if config.fusion == "global-softmax" and "fusion.t" in tensors and "parametrisation" not in options:
        return config.replace(fusion_options={**options, "parametrisation": "reference"})
    return config


def load_bridge(
    directory: str | Path,
    *,
    encoder: str | None = None,
    llm: str | None = None,
    device: str | torch.device | None = None,
    dtype: str | None = None,
    base: BaseModels | None = None,
    trust_remote_code: bool = False,
) -> Bridge:
    """Rebuild a saved bridge on its base models (optionally at another ``encoder``/``llm`` path).

    Custom model code runs only when *this call* passes ``trust_remote_code=True``; the flag a
    checkpoint file records is ignored, so a downloaded bridge can never switch it on.
    """
    directory = Path(directory)
    meta = read_bridge_meta(directory)
    try:
        config = BridgeConfig.from_dict(meta["bridge"])
    except (KeyError, TypeError, ConfigError) as err:
        raise CheckpointError(f"{directory / CONFIG_NAME} holds an invalid bridge config: {err}") from None
    changes = {k: v for k, v in {"encoder": encoder, "llm": llm, "dtype": dtype}.items() if v is not None}
    config = config.replace(**changes, trust_remote_code=trust_remote_code)
    tensors = read_bridge_tensors(directory, meta)
    config = _legacy_options(config, tensors)
    bridge = build_bridge(config, device=device, base=base)
    check_base_models(meta.get("base_models", {}), bridge, directory)
    load_bridge_weights(bridge, tensors, str(directory / WEIGHTS_NAME))
    return bridge
