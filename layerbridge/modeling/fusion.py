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
    d_model = D, layer positions P ~ N(0, 1) (``position_std``), and torch's default init of the
    head ``beta = softmax(W h_CLS + b)`` (``head_init="default"``). ``head_init="zeros"`` starts
    W = 0, b = 0, i.e. every token at uniform weights 1/L, as Global Softmax starts: no layer is
    preferred before the first gradient. Only real (unpadded) tokens are processed, and of the
    block only the CLS row is computed (:meth:`token_weights`).
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
        head_init: str = "default",
    ) -> None:
        super().__init__(num_layers, hidden_size)
        if hidden_size % num_heads:
            raise ConfigError(f"hidden size {hidden_size} is not divisible by num_heads={num_heads}")
        if head_init not in ("default", "zeros"):
            raise ConfigError(f"head_init must be 'default' or 'zeros', got {head_init!r}")
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
        self.to_weights = nn.Linear(hidden_size, num_layers)  # W [L, D], b [L]
        if head_init == "zeros":
            nn.init.zeros_(self.to_weights.weight)
            nn.init.zeros_(self.to_weights.bias)

    def flops_per_token(self) -> float:
        """Forward FLOPs per real token of the CLS-row computation (:meth:`token_weights`), with
        H heads over L + 1 positions of width D and feed-forward width F: scores and the weighted
        mix 4 H (L+1) D, value and output projections 4 D^2, feed-forward 4 D F, head 2 D L,
        and the final weighted sum 2 L D. (The full block, :meth:`token_weights_full`, would
        cost (L+1) (8 D^2 + 4 D F) + ...: ~15x more at e5-small's shape.)"""
        positions, dim, ffn = self.num_layers + 1, self.hidden_size, self.block.linear1.out_features
        heads = self.block.self_attn.num_heads
        return float(4 * heads * positions * dim + 4 * dim * dim + 4 * dim * ffn + 4 * dim * self.num_layers)

    def _sequence(self, layer_states: torch.Tensor) -> torch.Tensor:
        """[CLS; h^(1) + P_1; ...; h^(L) + P_L]: layer_states [N, L, D] -> [N, L+1, D]."""
        x = layer_states + self.layer_position.to(layer_states.dtype)  # [N, L, D]
        return torch.cat([self.cls.to(x.dtype).expand(x.shape[0], -1, -1), x], dim=1)

    def token_weights_full(self, layer_states: torch.Tensor) -> torch.Tensor:
        """The definition, literally: the whole block over all L + 1 positions, then the CLS row.

        layer_states [N, L, D] -> beta [N, L]. Kept as the known answer for
        :meth:`token_weights` and as the reference design's cost in the benchmark.
        """
        x = self.block(self._sequence(layer_states))  # [N, L+1, D]
        return torch.softmax(self.to_weights(x[:, 0]).float(), dim=-1)  # [N, L]

    def token_weights(self, layer_states: torch.Tensor) -> torch.Tensor:
        """beta [N, L] from layer_states [N, L, D] computing only the CLS row of the block.

        Only the CLS output is read, and in one encoder layer a row's output depends on the
        other rows only through its attention. With x_0 = CLS (the same for every token),
        y = x (post-LN) or LN_1(x) (pre-LN), q = W_q y_0 + b_q and, per head h of width d,

            s_{h,l} = q_h . (W_k y_l + b_k)_h / sqrt(d) = y_l . u_h + c_h,  u_h = W_{k,h}^T q_h / sqrt(d)

        (c_h is the same for every l, so it cancels in the softmax over l), a = softmax_l(s),
        dropped out as in the block, and the attention output

            o_h = sum_l a_{h,l} (W_v y_l + b_v)_h = W_{v,h} (sum_l a_{h,l} y_l) + (sum_l a_{h,l}) b_{v,h}

        so no position but CLS ever goes through W_q, W_k, W_v, the output projection or the
        feed-forward: per token O(H (L+1) D + D^2 + D F) instead of O((L+1)(D^2 + D F)). Equal
        to :meth:`token_weights_full` up to float rounding (a test checks it).
        """
        block, attn = self.block, self.block.self_attn
        heads, dim = attn.num_heads, self.hidden_size
        head_dim = dim // heads
        x = self._sequence(layer_states)  # [N, L+1, D]
        y = block.norm1(x) if block.norm_first else x  # [N, L+1, D]
        w_q, w_k, w_v = attn.in_proj_weight.to(x.dtype).chunk(3)  # [D, D] each
        b_q, _, b_v = attn.in_proj_bias.to(x.dtype).chunk(3)  # [D] each
        y0 = self.cls.view(dim).to(x.dtype)  # [D]: the CLS row is the same for every token
        y0 = block.norm1(y0) if block.norm_first else y0
        q = (y0 @ w_q.T + b_q).view(heads, head_dim)  # [H, d]
        u = torch.einsum("hd,hde->he", q, w_k.view(heads, head_dim, dim)) / math.sqrt(head_dim)  # [H, D]
        scores = torch.einsum("nld,hd->nhl", y, u)  # [N, H, L+1]
        a = nn.functional.dropout(torch.softmax(scores, dim=-1), attn.dropout, self.training)
        mixed = torch.einsum("nhl,nld->nhd", a, y)  # [N, H, D]
        o = torch.einsum("nhe,hde->nhd", mixed, w_v.view(heads, head_dim, dim))  # [N, H, d]
        o = (o + a.sum(-1, keepdim=True) * b_v.view(heads, head_dim)).reshape(-1, dim)  # [N, D]
        attended = block.dropout1(attn.out_proj(o))  # [N, D]
        cls = x[:, 0]  # [N, D]
        if block.norm_first:
            h = cls + attended
            h = h + self._feed_forward(block.norm2(h))
        else:
            h = block.norm1(cls + attended)
            h = block.norm2(h + self._feed_forward(h))
        return torch.softmax(self.to_weights(h).float(), dim=-1)  # [N, L]

    def _feed_forward(self, h: torch.Tensor) -> torch.Tensor:
        """The block's feed-forward sublayer with its dropouts: [N, D] -> [N, D]."""
        block = self.block
        return block.dropout2(block.linear2(block.dropout(block.activation(block.linear1(h)))))

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
