"""Model FLOPs of one bridge training step, next to the model (for MFU, as nanoGPT's ``estimate_mfu``).

Counted (multiply-add = 2 FLOPs), over real tokens only, so padding never counts as work:

* encoder forward: 2 P_enc n + attention 4 L_enc n^2 D_enc per sequence of n tokens;
* fusion: forward + backward (x3) of :meth:`LayerFusion.flops_per_token` per token, read
  from the built fusion (its real widths, whatever ``fusion_options`` chose);
* projector: x3 (forward, input and weight gradients), 2 x its weights per token;
* LLM forward 2 P_llm s + attention 4 L_llm s^2 D_llm over its s input positions
  (:func:`llm_positions`), and the input-gradient backward the same again (weights are frozen);
* LM head on the target positions: forward + input gradient, 2 x 2 V D_llm per target.

P = parameters in the transformer blocks (embeddings excluded).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from layerbridge.data.encoded import llm_positions


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


def training_step_flops(bridge, encoder_lengths: Sequence[int], target_lengths: Sequence[int]) -> float:
    """Model FLOPs of one training step over a batch with these real lengths."""
    llm = bridge.llm
    d_enc, layers_enc = bridge.encoder.hidden_size, bridge.encoder.num_model_layers
    vocab, d_llm = llm.get_input_embeddings().weight.shape
    layers_llm = llm.config.num_hidden_layers
    p_enc, p_llm = block_parameters(bridge.encoder.model), block_parameters(llm)
    p_proj = sum(p.numel() for p in bridge.projector.parameters() if p.ndim == 2)  # matmul weights
    fusion = bridge.fusion.flops_per_token()
    has_bos = bridge.bos_id is not None
    total = 0.0
    for n, m in zip(encoder_lengths, target_lengths, strict=True):
        s = llm_positions(n, m, has_bos)
        total += 2 * p_enc * n + 4 * layers_enc * n * n * d_enc
        total += 3 * n * fusion
        total += 3 * n * 2 * p_proj
        total += 2 * (2 * p_llm * s + 4 * layers_llm * s * s * d_llm)
        total += 2 * 2 * vocab * d_llm * m
    return total
