"""Builders: from a :class:`~layerbridge.config.BridgeConfig` to a ready :class:`Bridge`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from layerbridge.builtin import resolve_model
from layerbridge.config import BridgeConfig
from layerbridge.errors import ConfigError, ModelError
from layerbridge.modeling.bridge import Bridge
from layerbridge.modeling.encoder import load_encoder_model
from layerbridge.modeling.llm import load_llm_model


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None`` -> the first GPU if there is one, else the CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as err:
        raise ConfigError(f"unknown device {device!r}: {err}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {device!r}: no CUDA GPU is available to this torch build")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"device {device!r}: only {torch.cuda.device_count()} GPU(s) are visible")
    elif dev.type not in ("cpu", "mps", "xpu"):
        raise ConfigError(f"unsupported device {device!r}; use cpu, cuda or cuda:N")
    return dev


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """``auto`` -> bfloat16 on GPU (where supported), float32 elsewhere."""
    if name == "auto":
        cuda_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if cuda_bf16 else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


@dataclass
class BaseModels:
    """The two frozen base models and their tokenizers."""

    encoder: nn.Module
    encoder_tokenizer: object
    llm: nn.Module
    llm_tokenizer: object


def _quiet() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def load_tokenizer(path: str, trust_remote_code: bool):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as err:
        raise ModelError(f"cannot load tokenizer of {path!r}: {err}") from None


def load_encoder(
    name: str,
    device: str | torch.device | None = None,
    dtype: str = "auto",
    trust_remote_code: bool = False,
    log: Callable[[str], None] | None = None,
) -> tuple[nn.Module, object]:
    """The encoder named ``name`` (built-in, hub id or path) and its tokenizer, on ``device``."""
    _quiet()
    dev = resolve_device(device)
    path = resolve_model(name, log=log)
    model = load_encoder_model(path, resolve_dtype(dtype, dev), trust_remote_code).to(dev)
    return model, load_tokenizer(path, trust_remote_code)


def load_base_models(
    config: BridgeConfig,
    device: str | torch.device | None = None,
    log: Callable[[str], None] | None = None,
) -> BaseModels:
    """Load (preparing built-ins first) the encoder and the LLM named in ``config``."""
    trust = config.trust_remote_code
    encoder, encoder_tokenizer = load_encoder(config.encoder, device, config.dtype, trust, log=log)
    dev = resolve_device(device)
    llm_path = resolve_model(config.llm, log=log)
    llm = load_llm_model(llm_path, resolve_dtype(config.dtype, dev), trust).to(dev)
    return BaseModels(encoder, encoder_tokenizer, llm, load_tokenizer(llm_path, trust))


def build_bridge(
    config: BridgeConfig,
    device: str | torch.device | None = None,
    base: BaseModels | None = None,
    log: Callable[[str], None] | None = None,
) -> Bridge:
    """A freshly initialised bridge on ``device`` (base models loaded unless given)."""
    base = base or load_base_models(config, device, log=log)
    dev = resolve_device(device) if device is not None else next(base.llm.parameters()).device
    bridge = Bridge(config, base.encoder, base.encoder_tokenizer, base.llm, base.llm_tokenizer)
    return bridge.to(dev)
