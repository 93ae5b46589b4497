"""The naive reference design the benchmark measures against (do not use it for real work).

This mirrors how public reference implementations of the method run one training step:

* tokenise inside ``forward`` (encoder and LLM tokenizers, every step);
* pad the batch to its longest prompt; the Transformer Softmax runs its whole block (all
  L + 1 positions) on the real tokens, as the reference does, then the weighted sum runs on
  every position, padding included (masked afterwards);
* build the LLM input as [BOS; all T soft-prompt slots (holes at padding); boundary; targets]
  with padding masked by the attention mask;
* compute LLM logits over the full vocabulary at every position, then the loss on the
  target positions only (labels -100 elsewhere);
* score labels with one full forward pass per candidate label.

It shares the bridge's weights (fusion, projector, boundary, base models), so it computes
the same function as :class:`~layerbridge.modeling.bridge.Bridge` — positions are counted
over real tokens exactly as there — and the tests check that both give the same loss and
label scores. Only the amount of work differs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from layerbridge.modeling.bridge import Bridge
from layerbridge.modeling.fusion import TransformerSoftmaxFusion
from layerbridge.modeling.llm import position_ids_from_mask


def _fuse_all_positions(bridge: Bridge, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The reference's fusion: whole block on real tokens, weighted sum on every position, masked."""
    fusion = bridge.fusion
    if isinstance(fusion, TransformerSoftmaxFusion):
        batch, tokens, layers, dim = states.shape
        flat = states.reshape(batch * tokens, layers, dim)  # [B*T, L, D], padding included
        real = mask.reshape(-1).bool()
        beta = flat.new_zeros(batch * tokens, layers)
        beta[real] = fusion.token_weights_full(flat[real]).to(flat.dtype)  # [N_real, L]
        fused = torch.einsum("nl,nld->nd", beta, flat).reshape(batch, tokens, dim)
        return fused * mask.unsqueeze(-1).to(fused.dtype)
    return fusion(states, mask)[0]


def naive_loss(bridge: Bridge, prompts: Sequence[str], targets: Sequence[str]) -> torch.Tensor:
    """Per-example mean target NLL [B], computed the naive way (see module docstring)."""
    enc = bridge.encoder_tokenizer(
        list(prompts), padding=True, truncation=True, max_length=bridge.config.max_length, return_tensors="pt"
    )
    ids, mask = enc["input_ids"].to(bridge.device), enc["attention_mask"].to(bridge.device)
    with torch.no_grad():
        states = bridge.encoder(ids, mask)
    if not torch.is_autocast_enabled(states.device.type):
        states = states.to(bridge.boundary.dtype)
    soft = bridge.projector(_fuse_all_positions(bridge, states, mask))  # [B, T, D]
    target_ids = [bridge.target_token_ids(t) for t in targets]  # tokenised here, every step
    width = max(len(t) for t in target_ids)
    emb = bridge.llm.get_input_embeddings()
    rows, masks, labels = [], [], []
    for b, tgt in enumerate(target_ids):
        tgt_t = torch.tensor(tgt + [bridge.eos_id] * (width - len(tgt)), device=bridge.device)
        parts = [soft[b], bridge.boundary[None].to(soft.dtype), emb(tgt_t).to(soft.dtype)]
        part_masks = [
            mask[b],
            torch.ones(1, device=mask.device, dtype=mask.dtype),
            (torch.arange(width, device=mask.device) < len(tgt)).to(mask.dtype),
        ]
        if bridge.bos_id is not None:
            parts.insert(0, emb.weight[bridge.bos_id][None].to(soft.dtype))
            part_masks.insert(0, torch.ones(1, device=mask.device, dtype=mask.dtype))
        rows.append(torch.cat(parts))
        masks.append(torch.cat(part_masks))
        label = torch.full((rows[-1].shape[0],), -100, device=bridge.device)
        start = rows[-1].shape[0] - width
        label[start : start + len(tgt)] = torch.tensor(tgt, device=bridge.device)
        labels.append(label)
    embeds = torch.stack(rows).to(bridge.llm_dtype)  # [B, 1 + T + 1 + M, D]
    attention = torch.stack(masks)
    logits = bridge.llm(
        inputs_embeds=embeds, attention_mask=attention, position_ids=position_ids_from_mask(attention)
    ).logits  # [B, S, V]: full vocabulary, every position
    label_t = torch.stack(labels)
    batch, width, vocab = logits.shape
    nll = F.cross_entropy(  # over the flattened [B * (S-1), V] logits, as transformers' loss does
        logits[:, :-1].reshape(-1, vocab).float(),
        label_t[:, 1:].reshape(-1),
        reduction="none",
        ignore_index=-100,
    ).view(batch, width - 1)
    valid = (label_t[:, 1:] != -100).float()
    return (nll * valid).sum(1) / valid.sum(1)


@torch.no_grad()
def naive_label_scores(bridge: Bridge, prompts: Sequence[str], labels: Sequence[str]) -> torch.Tensor:
    """[B, K] summed log-probability of each label (+EOS): one full forward pass per label."""
    columns = []
    for label in labels:
        n_tokens = len(bridge.target_token_ids(label))
        columns.append(-naive_loss(bridge, prompts, [label] * len(prompts)) * n_tokens)
    return torch.stack(columns, dim=1)
