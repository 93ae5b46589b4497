"""The frozen causal LM: loading, special tokens, and logits only where they are needed."""

from __future__ import annotations

import inspect

import torch
from torch import nn

from layerbridge.errors import ModelError


def load_llm_model(
    path: str, dtype: torch.dtype, trust_remote_code: bool = False, attn_implementation: str | None = None
) -> nn.Module:
    """``AutoModelForCausalLM.from_pretrained`` with a clear error on failure
    (``attn_implementation``: None = transformers' default)."""
    from transformers import AutoModelForCausalLM

    kernel = {"attn_implementation": attn_implementation} if attn_implementation else {}
    try:
        return AutoModelForCausalLM.from_pretrained(
            path, dtype=dtype, trust_remote_code=trust_remote_code, **kernel
        )
    except (OSError, ValueError) as err:
        raise ModelError(f"cannot load causal LM {path!r}: {err}") from None


def input_embeddings(llm: nn.Module) -> nn.Module:
    """The LLM's token-embedding module, or a clear error if it has none."""
    try:
        emb = llm.get_input_embeddings()
    except (AttributeError, NotImplementedError):
        emb = None
    if emb is None:
        raise ModelError(
            f"LLM {type(llm).__name__} exposes no input embeddings (get_input_embeddings()); "
            "layerbridge feeds the LLM through inputs_embeds and needs them"
        )
    return emb


def llm_hidden_size(llm: nn.Module) -> int:
    return int(input_embeddings(llm).weight.shape[1])


def accepts_logits_to_keep(llm: nn.Module) -> bool:
    """Whether ``llm.forward`` can compute logits for selected positions only."""
    try:
        return "logits_to_keep" in inspect.signature(llm.forward).parameters
    except (TypeError, ValueError):
        return False


def cache_argument(llm: nn.Module) -> str:
    """Name of the KV-cache argument of ``llm.forward``.

    ``transformers`` 5.x renamed ``past_key_values`` to ``cache``; accept both.
    """
    try:
        params = inspect.signature(llm.forward).parameters
    except (TypeError, ValueError):
        return "past_key_values"
    return "cache" if "cache" in params else "past_key_values"


def output_cache(output) -> object:
    """The KV cache returned by a forward pass (``cache`` or ``past_key_values``)."""
    cache = getattr(output, "cache", None)
    return cache if cache is not None else output.past_key_values


def special_token_ids(tokenizer, use_bos: bool) -> tuple[int | None, int]:
    """(BOS id or None, EOS id) of an LLM tokenizer."""
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ModelError("the LLM tokenizer defines no EOS token; set tokenizer.eos_token first")
    bos = tokenizer.bos_token_id if use_bos else None
    return bos, int(eos)


def position_ids_from_mask(mask: torch.Tensor, offset: torch.Tensor | int = 0) -> torch.Tensor:
    """Positions 0, 1, … over real tokens only (pads get 0): mask [B, S] -> [B, S].

    ``offset`` [B] shifts every row (used for tokens that continue a cached prefix).
    """
    pos = mask.long().cumsum(-1) - 1
    if isinstance(offset, torch.Tensor):
        offset = offset.unsqueeze(-1)  # [B, 1]
    pos = pos + offset
    return pos.clamp_min(0).masked_fill(mask == 0, 0)


@torch.no_grad()
def embedding_rms(llm: nn.Module, sample: int = 8192) -> float:
    """RMS of the LLM's input embeddings over ``sample`` evenly spaced token ids, read through
    the embedding module (some LLMs scale inside it, as Gemma does by sqrt(D))."""
    embed = input_embeddings(llm)
    ids = torch.linspace(0, embed.weight.shape[0] - 1, sample, device=embed.weight.device).long().unique()
    return float(embed(ids).float().pow(2).mean().sqrt())
