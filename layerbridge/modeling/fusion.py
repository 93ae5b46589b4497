"""Layer fusion: turn the encoder's per-layer states into one vector per token.

Notation: ``h_i^(l)`` is the state of token ``i`` after encoder layer ``l`` (l = 1..L),
stacked as ``states[b, i, l, :]``. Every strategy returns

* ``fused``   [B, T, D]: ``z_i = sum_l w_{i,l} h_i^(l)``, exactly zero on padding tokens;
* ``weights`` [B, T, L]: the layer weights ``w_{i,l}`` it used (zero on padding), so that
  the weights of any strategy can be analysed the same way.

Strategies (registered by name in :data:`FUSIONS`):

``last``                LangBridge's baseline: ``w_{i,l} = 1[l = L]``.
``global-softmax``      one scalar per layer shared by all tokens:
                        ``alpha = softmax(tau * w)``, tau learned from ~101 (as ``exp(s)``, or
                        the reference's ``100 + 1e5 * t``), ``w`` learned, init equal (uniform alpha).
``transformer-softmax`` token-specific weights: for each real token, the sequence
                        ``[CLS; h^(1) + P_1; …; h^(L) + P_L]`` goes through one
                        transformer encoder layer (attending across layers, never across
                        tokens); ``beta_i = softmax(Linear_{D->L}(CLS output))`` and
                        ``z_i = sum_l beta_{i,l} h_i^(l)`` on the *original* states.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from layerbridge.errors import ConfigError
from layerbridge.registry import Registry

FUSIONS: Registry[type[LayerFusion]] = Registry("fusion")


class LayerFusion(nn.Module):
    """Base class. Subclasses implement :meth:`forward`."""

    def __init__(self, num_layers: int, hidden_size: int) -> None:
        super().__init__()
        self.num_layers = num_layers
        self.hidden_size = hidden_size

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """states [B, T, L, D], mask [B, T] (1 = real token) -> (fused [B, T, D], weights [B, T, L])."""
        raise NotImplementedError

    def flops_per_token(self) -> float:
        """Forward FLOPs of the fusion per real token (multiply-add = 2); see modeling/flops.py."""
        return 0.0

    def _check(self, states: torch.Tensor) -> None:
        if states.shape[2] != self.num_layers or states.shape[3] != self.hidden_size:
            raise ConfigError(
                f"{type(self).__name__} was built for {self.num_layers} layers x {self.hidden_size} "
                f"dims but got states of shape {tuple(states.shape)}"
            )


@FUSIONS.register("last")
class LastLayerFusion(LayerFusion):
    """z_i = h_i^(L) (LangBridge). No parameters."""

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self._check(states)
        m = mask.to(states.dtype).unsqueeze(-1)  # [B, T, 1]
        fused = states[:, :, -1] * m  # [B, T, D]
        weights = torch.zeros(states.shape[:3], dtype=states.dtype, device=states.device)
        weights[:, :, -1] = 1.0
        return fused, weights * m  # [B, T, D], [B, T, L]


@FUSIONS.register("global-softmax")
class GlobalSoftmaxFusion(LayerFusion):
    """z_i = sum_l alpha_l h_i^(l), alpha = softmax(tau * w).

    The temperature tau is learned. ``parametrisation="log"`` (default): tau = exp(s), s
    learned, init log(tau0 + scale * t_init) ~ log 101 — one Adam step moves tau by a factor
    ~exp(lr), i.e. 0.1% at lr 1e-3. ``parametrisation="reference"`` (the paper's code):
    tau = tau0 + scale * t with t learned (init 1e-5, tau ~ 101); Adam moves t by ~lr per step,
    so tau moves by ~scale * lr = ±100 per step at lr 1e-3 (±3 at the paper's 3e-5).
    """

    def __init__(
        self,
        num_layers: int,
        hidden_size: int,
        tau_offset: float = 100.0,
        tau_scale: float = 1e5,
        t_init: float = 1e-5,
        parametrisation: str = "log",
    ) -> None:
        super().__init__(num_layers, hidden_size)
        if parametrisation not in ("log", "reference"):
            raise ConfigError(f"unknown parametrisation {parametrisation!r}; choose log or reference")
        self.parametrisation = parametrisation
        self.tau_offset = tau_offset
        self.tau_scale = tau_scale
        self.layer_logits = nn.Parameter(torch.zeros(num_layers))  # w, equal init -> uniform
        if parametrisation == "reference":
            self.t = nn.Parameter(torch.tensor(float(t_init)))
        else:
            self.log_temperature = nn.Parameter(torch.tensor(math.log(tau_offset + tau_scale * t_init)))

    @property
    def temperature(self) -> torch.Tensor:
        if self.parametrisation == "reference":
            return self.tau_offset + self.tau_scale * self.t
        return self.log_temperature.exp()

    def flops_per_token(self) -> float:
        """The weighted sum over L layers: 2 L D."""
        return 2.0 * self.num_layers * self.hidden_size

    def layer_weights(self) -> torch.Tensor:
        """alpha [L]."""
        return torch.softmax(self.temperature * self.layer_logits, dim=0)

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self._check(states)
        alpha = self.layer_weights().to(states.dtype)  # [L]
        m = mask.to(states.dtype).unsqueeze(-1)  # [B, T, 1]
        fused = torch.einsum("btld,l->btd", states, alpha) * m  # [B, T, D]
        return fused, alpha.expand(states.shape[:3]) * m  # [B, T, D], [B, T, L]


@FUSIONS.register("transformer-softmax")
class TransformerSoftmaxFusion(LayerFusion):
    """Token-wise layer weights from a one-layer transformer over the layer axis.

    The reference uses torch defaults: 1 head, feed-forward 2048, dropout 0.1, post-LN,
    d_model = D, and layer positions P ~ N(0, 1) (``position_std``). Only real (unpadded) tokens
    are processed, all in one batch of shape [N_real, L + 1, D].
    """

    def __init__(
        self,
        num_layers: int,
        hidden_size: int,
        num_heads: int = 1,
        ffn_dim: int = 2048,
        dropout: float = 0.1,
        norm_first: bool = False,
        position_std: float = 1.0,
    ) -> None:
        super().__init__(num_layers, hidden_size)
        if hidden_size % num_heads:
            raise ConfigError(f"hidden size {hidden_size} is not divisible by num_heads={num_heads}")
        # P [L, D] ~ N(0, position_std^2): the reference's torch.randn(L, D) (std 1), on the scale
        # of the layer-normed states, so the CLS output can tell the layers apart (0.02 cannot)
        self.layer_position = nn.Parameter(torch.randn(num_layers, hidden_size) * position_std)
        self.cls = nn.Parameter(torch.zeros(1, 1, hidden_size))  # [1, 1, D], init zero
        self.block = nn.TransformerEncoderLayer(
            d_model=hidden_size,
            nhead=num_heads,
            dim_feedforward=ffn_dim,
            dropout=dropout,
            batch_first=True,
            norm_first=norm_first,
        )
        self.to_weights = nn.Linear(hidden_size, num_layers)

    def flops_per_token(self) -> float:
        """Over L + 1 positions of width D with feed-forward width F, per real token:
        projections 8 D^2, feed-forward 4 D F, attention 4 (L+1) D per position; head 2 D L;
        the weighted sum 2 L D."""
        positions, dim, ffn = self.num_layers + 1, self.hidden_size, self.block.linear1.out_features
        per_position = 8 * dim * dim + 4 * dim * ffn + 4 * positions * dim
        return float(positions * per_position + 2 * dim * self.num_layers + 2 * self.num_layers * dim)

    def token_weights(self, layer_states: torch.Tensor) -> torch.Tensor:
        """layer_states [N, L, D] (real tokens only) -> beta [N, L], rows sum to 1."""
        n = layer_states.shape[0]
        x = layer_states + self.layer_position.to(layer_states.dtype)  # [N, L, D]
        x = torch.cat([self.cls.to(x.dtype).expand(n, -1, -1), x], dim=1)  # [N, L+1, D]
        x = self.block(x)  # [N, L+1, D]
        return torch.softmax(self.to_weights(x[:, 0]).float(), dim=-1)  # [N, L]

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self._check(states)
        real = mask.bool()  # [B, T]
        h = states[real]  # [N, L, D]
        beta = self.token_weights(h)  # [N, L]
        z = torch.einsum("nl,nld->nd", beta.to(h.dtype), h)  # [N, D]
        batch, tokens, layers, dim = states.shape
        fused = states.new_zeros(batch, tokens, dim)
        fused[real] = z.to(fused.dtype)  # padding stays exactly 0
        weights = beta.new_zeros(batch, tokens, layers)
        weights[real] = beta
        return fused, weights  # [B, T, D], [B, T, L]


def build_fusion(name: str, num_layers: int, hidden_size: int, **options: Any) -> LayerFusion:
    """Instantiate fusion ``name`` for ``num_layers`` states of width ``hidden_size``."""
    cls = FUSIONS.get(name)
    try:
        return cls(num_layers, hidden_size, **options)
    except TypeError as err:
        raise ConfigError(f"bad fusion_options for {name!r}: {err}") from None
