"""Model FLOPs of one bridge training step, for MFU.

Counted (multiply-add = 2 FLOPs), over real tokens only, so padding never counts as work:

* encoder forward: 2 P_enc t + attention 4 L_enc n^2 D_enc per sequence of n tokens;
* fusion: forward + backward (x3) — Global Softmax 2 L D per token; Transformer Softmax per
  token over L + 1 positions: projections 8 D^2, feed-forward 4 D F, attention 4 (L+1) D, head 2 D L;
* projector: x3 (forward, input and weight gradients), 2 D_enc D_llm per token;
* LLM forward 2 P_llm s + attention 4 L_llm s^2 D_llm, and the input-gradient backward the
  same again (weights are frozen: no weight gradients);
* LM head on the target positions: forward + input gradient, 2 x 2 V D_llm per target.

P = parameters in the transformer blocks (embeddings excluded).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn


def block_parameters(model: nn.Module) -> int:
    """Parameters outside embedding tables and the LM head."""
    skip = set()
    for module in model.modules():
        if isinstance(module, nn.Embedding):
            skip.update(id(p) for p in module.parameters())
    get_out = getattr(model, "get_output_embeddings", None)
    head = get_out() if callable(get_out) else None
    if head is not None:
        skip.update(id(p) for p in head.parameters())
    return sum(p.numel() for p in model.parameters() if id(p) not in skip)


def fusion_flops_per_token(fusion: str, layers: int, dim: int, ffn_dim: int = 2048) -> float:
    """Forward FLOPs of the fusion per real token."""
    if fusion == "transformer-softmax":
        positions = layers + 1
        return positions * (8 * dim * dim + 4 * dim * ffn_dim + 4 * positions * dim) + 2 * dim * layers
    if fusion == "global-softmax":
        return 2 * layers * dim
    return 0.0


def training_step_flops(
    bridge, encoder_lengths: Sequence[int], target_lengths: Sequence[int], ffn_dim: int = 2048
) -> float:
    """Model FLOPs of one training step over a batch with these real lengths."""
    enc_cfg, llm = bridge.encoder.model.config, bridge.llm
    d_enc, layers_enc = bridge.encoder.hidden_size, bridge.encoder.num_model_layers
    d_llm = llm.get_input_embeddings().weight.shape[1]
    layers_llm = llm.config.num_hidden_layers
    vocab = llm.get_input_embeddings().weight.shape[0]
    p_enc, p_llm = block_parameters(bridge.encoder.model), block_parameters(llm)
    n_bos = int(bridge.bos_id is not None)
    total = 0.0
    for n, m in zip(encoder_lengths, target_lengths, strict=True):
        s = n_bos + n + 1 + m - 1  # LLM sequence: BOS, prompt, boundary, targets without the last
        total += 2 * p_enc * n + 4 * layers_enc * n * n * d_enc
        total += (
            3 * n * fusion_flops_per_token(bridge.config.fusion, bridge.encoder.num_layers, d_enc, ffn_dim)
        )
        total += 3 * n * 2 * d_enc * d_llm
        total += 2 * (2 * p_llm * s + 4 * layers_llm * s * s * d_llm)
        total += 2 * 2 * vocab * d_llm * m
    del enc_cfg
    return total


#: Dense bf16 tensor-core peaks (FLOP/s) of common accelerators, for MFU on GPU.
GPU_PEAK_BF16 = {
    "H100 SXM": 989.4e12,
    "H100 PCIe": 756.0e12,
    "H100": 989.4e12,
    "H200": 989.4e12,
    "A100": 312.0e12,
    "L40S": 362.0e12,
    "A10G": 70.0e12,
}


def gpu_peak(name: str) -> float | None:
    for key in sorted(GPU_PEAK_BF16, key=len, reverse=True):
        if key.lower() in name.lower():
            return GPU_PEAK_BF16[key]
    return None
