"""Projectors: map fused encoder states (width D_enc) into the LLM's embedding space (D_llm).

``linear``  W z + b (the paper and LangBridge's default).
``mlp``     W2 GELU(W1 z + b1) + b2, hidden width D_llm (LLaVA-1.5's ``mlp2x_gelu``), with
          named submodules ``linear_1`` / ``act`` / ``linear_2`` as in transformers'
          ``LlavaMultiModalProjector``.

Either can end in an RMS norm (``bridge.projector_norm: rms``, :class:`NormedProjector`) that
holds every soft-prompt vector at the norm of a typical LLM input embedding.
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


class NormedProjector(nn.Module):
    """A projector whose output is RMS-normalised to a learned per-dimension scale.

    For y_i = proj(z_i) in R^{D_llm}:  s_i = g * y_i / sqrt(mean_d y_{i,d}^2 + eps),
    g initialised to ``scale`` (the RMS of the LLM's input-embedding matrix), so every
    soft-prompt vector starts with a typical token embedding's norm. Adam moves each weight of
    ``proj`` by ~lr per step whatever its gradient's size, which can grow an unnormalised soft
    prompt tens of times past the LLM's embedding scale within a few dozen steps at lr 1e-3;
    here only its direction follows ``proj`` and its size follows g, which Adam moves by ~lr.
    """

    def __init__(self, proj: nn.Module, out_dim: int, scale: float = 1.0) -> None:
        super().__init__()
        self.proj = proj  # [..., D_enc] -> [..., D_llm]
        self.norm = nn.RMSNorm(out_dim, eps=1e-6)  # [..., D_llm], weight g
        nn.init.constant_(self.norm.weight, scale)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        y = self.proj(z)  # [..., D_llm], bf16 under autocast
        # the statistic in fp32 (g is fp32): precise, and torch's fused kernel wants equal dtypes
        return self.norm(y.float()).to(y.dtype)


#: state-dict names of bridges saved before the mlp projector's submodules were named
LEGACY_KEYS = {"projector.0.": "projector.linear_1.", "projector.2.": "projector.linear_2."}


def build_projector(
    name: str,
    in_dim: int,
    out_dim: int,
    init: str = "default",
    norm: str = "none",
    norm_scale: float = 1.0,
    **options: Any,
) -> nn.Module:
    """Instantiate projector ``name``: [..., in_dim] -> [..., out_dim].

    ``init="zeros"`` zeroes the last linear layer, so the projector starts at 0 (an empty
    soft prompt) while every layer still receives gradients (as LoRA's B matrix).
    ``norm="rms"`` wraps it in :class:`NormedProjector` with gain ``norm_scale``.
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
    if norm == "rms":
        return NormedProjector(projector, out_dim, norm_scale)
    return projector
