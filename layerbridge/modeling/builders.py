"""Builders: from a :class:`~layerbridge.config.BridgeConfig` to a ready :class:`Bridge`."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from layerbridge.builtin import resolve_model
from layerbridge.config import BridgeConfig
from layerbridge.errors import ConfigError, ModelError
from layerbridge.modeling.bridge import Bridge
from layerbridge.modeling.encoder import encoder_dims, load_encoder_model, read_encoder_config
from layerbridge.modeling.fusion import FUSIONS, build_fusion
from layerbridge.modeling.llm import load_llm_model
from layerbridge.modeling.projector import PROJECTORS, build_projector
from layerbridge.runtime import attention_kernel, quiet_transformers, resolve_device, weights_dtype


@dataclass
class BaseModels:
    """The two frozen base models and their tokenizers."""

    encoder: nn.Module
    encoder_tokenizer: object
    llm: nn.Module
    llm_tokenizer: object


def check_bridge_config(config: BridgeConfig) -> None:
    """Check the names the model registries resolve (fusion, projector), the names of their
    options, and their values (by building each at a toy size) before anything loads."""
    checks = [
        ("fusion", config.fusion, FUSIONS.get(config.fusion), config.fusion_options),
        ("projector", config.projector, PROJECTORS.get(config.projector), config.projector_options),
    ]
    for kind, name, builder, options in checks:
        params = list(inspect.signature(builder).parameters.values())
        if any(p.kind is p.VAR_KEYWORD for p in params):
            continue
        known = {p.name for p in params[2:]}  # after the two sizes: (L, D) / (in, out)
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigError(
                f"bad {kind}_options for {name!r}: unknown {', '.join(unknown)} "
                f"(it takes: {', '.join(sorted(known)) or 'none'})"
            )
    heads = config.fusion_options.get("num_heads", 1)
    width = 8 * heads if isinstance(heads, int) and heads > 0 else 8  # divisible by the heads asked for
    try:  # option values: what the real sizes cannot change (e.g. an unknown head_init) fails here
        build_fusion(config.fusion, 2, width, **config.fusion_options)
        build_projector(config.projector, 4, 4, **config.projector_options)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"bad fusion or projector options: {err}") from None


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
    check: Callable[[object], None] | None = None,
) -> tuple[nn.Module, object]:
    """The encoder named ``name`` (built-in, hub id or path) and its tokenizer, on ``device``;
    ``check`` sees its ``transformers`` config before any weights load."""
    quiet_transformers()
    dev = resolve_device(device)
    path = resolve_model(name, log=log)
    if check is not None:
        check(read_encoder_config(path, trust_remote_code))
    model = load_encoder_model(path, weights_dtype(dtype, dev), trust_remote_code).to(dev)
    return model, load_tokenizer(path, trust_remote_code)


def check_fusion_fits(config: BridgeConfig) -> Callable[[object], None]:
    """A check of the fusion options against the encoder's real width, run on the encoder's
    ``transformers`` config before its weights load (e.g. ``num_heads`` must divide D)."""

    def check(encoder_config: object) -> None:
        hidden, _ = encoder_dims(encoder_config)
        heads = config.fusion_options.get("num_heads", 1)
        if config.fusion == "transformer-softmax" and hidden % heads:
            raise ConfigError(
                f"fusion_options.num_heads={heads} does not divide the encoder's hidden size {hidden}"
            )

    return check


def load_base_models(
    config: BridgeConfig,
    device: str | torch.device | None = None,
    log: Callable[[str], None] | None = None,
) -> BaseModels:
    """Load (preparing built-ins first) the encoder and the LLM named in ``config``."""
    trust = config.trust_remote_code
    encoder, encoder_tokenizer = load_encoder(
        config.encoder, device, config.dtype, trust, log=log, check=check_fusion_fits(config)
    )
    dev = resolve_device(device)
    llm_path = resolve_model(config.llm, log=log)
    dtype = weights_dtype(config.dtype, dev)
    llm = load_llm_model(llm_path, dtype, trust, attention_kernel(dev, dtype)).to(dev)
    return BaseModels(encoder, encoder_tokenizer, llm, load_tokenizer(llm_path, trust))


def build_bridge(
    config: BridgeConfig,
    device: str | torch.device | None = None,
    base: BaseModels | None = None,
    log: Callable[[str], None] | None = None,
) -> Bridge:
    """A freshly initialised bridge on ``device`` (base models loaded unless given)."""
    check_bridge_config(config)
    base = base or load_base_models(config, device, log=log)
    dev = resolve_device(device) if device is not None else next(base.llm.parameters()).device
    bridge = Bridge(config, base.encoder, base.encoder_tokenizer, base.llm, base.llm_tokenizer)
    return bridge.to(dev)
