"""Projectors: map fused encoder states (width D_enc) into the LLM's embedding space (D_llm).

``linear``  W z + b (the paper and LangBridge's default).
``mlp``     W2 GELU(W1 z + b1) + b2, hidden width D_llm (LLaVA-1.5's ``mlp2x_gelu``), with
          named submodules ``linear_1`` / ``act`` / ``linear_2`` as in transformers'
          ``LlavaMultiModalProjector``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from layerbridge.errors import ConfigError
from layerbridge.registry import Registry

PROJECTORS: Registry[Callable[..., nn.Module]] = Registry("projector")


@PROJECTORS.register("linear")
def linear_projector(in_dim: int, out_dim: int) -> nn.Module:
    return nn.Linear(in_dim, out_dim)


@PROJECTORS.register("mlp")
class MLPProjector(nn.Module):
    """z [..., D_enc] -> linear_2(GELU(linear_1(z))) [..., D_llm]."""

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int | None = None) -> None:
        super().__init__()
        hidden_dim = hidden_dim or out_dim
        self.linear_1 = nn.Linear(in_dim, hidden_dim)  # [D_enc -> H]
        self.act = nn.GELU()
        self.linear_2 = nn.Linear(hidden_dim, out_dim)  # [H -> D_llm]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.linear_2(self.act(self.linear_1(z)))


#: state-dict names of bridges saved before the mlp projector's submodules were named
LEGACY_KEYS = {"projector.0.": "projector.linear_1.", "projector.2.": "projector.linear_2."}


def build_projector(name: str, in_dim: int, out_dim: int, init: str = "default", **options: Any) -> nn.Module:
    """Instantiate projector ``name``: [..., in_dim] -> [..., out_dim].

    ``init="zeros"`` zeroes the last linear layer, so the projector starts at 0 (an empty
    soft prompt) while every layer still receives gradients (as LoRA's B matrix).
    """
    builder = PROJECTORS.get(name)
    try:
        projector = builder(in_dim, out_dim, **options)
    except TypeError as err:
        raise ConfigError(f"bad options for projector {name!r}: {err}") from None
    if init == "zeros":
        last = [m for m in projector.modules() if isinstance(m, nn.Linear)][-1]
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
    return projector
