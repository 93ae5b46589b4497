"""The bridge: encoder -> layer fusion -> projector -> frozen causal LM.

LLM input for one example with n real encoder tokens and target tokens y_1..y_m (the label
string followed by EOS)::

    [ emb(BOS) ; proj(z_1) … proj(z_n) ; boundary ; emb(y_1) … emb(y_{m-1}) ]
    └──────────────── prefix (length n + 2) ─────┘

The prefix is *left*-padded in a batch and the targets right-padded, so every example's
prefix ends in the same column P - 1 and target y_j is predicted from column P - 2 + j for
all examples at once; position ids count real tokens only, so padding never changes a
result. The loss is the causal-LM cross-entropy on the targets only (prefix-LM objective):

    loss = - sum_{b, j} log p(y_{b,j} | prefix_b, y_{b,<j}) / #target tokens

Logits are computed only at the M target columns (``logits_to_keep``), never over the
whole sequence. Inference reuses the same prefix: label scoring runs it once with a KV cache
and continues every candidate label from that cache; generation hands it to
``transformers``' ``generate``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from layerbridge.config import BridgeConfig
from layerbridge.data.batching import pad_batch
from layerbridge.errors import ConfigError, DataError
from layerbridge.modeling.encoder import LayerStackEncoder, max_input_tokens
from layerbridge.modeling.fusion import build_fusion
from layerbridge.modeling.llm import (
    accepts_logits_to_keep,
    cache_argument,
    embedding_rms,
    input_embeddings,
    llm_hidden_size,
    output_cache,
    position_ids_from_mask,
    special_token_ids,
)
from layerbridge.modeling.projector import build_projector

#: prefixes of the state-dict keys that belong to the bridge itself
BRIDGE_PREFIXES = ("fusion.", "projector.", "boundary")


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    """log softmax(logits)[target] in float32 without a float32 copy of all logits at once.

    logits [N, S, V] (any dtype), targets [N, S] -> [N, S]; rows are processed in chunks.
    """
    out = torch.empty(targets.shape, dtype=torch.float32, device=logits.device)
    for start in range(0, logits.shape[0], chunk):
        part = logits[start : start + chunk].float()
        picked = part.gather(-1, targets[start : start + chunk].unsqueeze(-1)).squeeze(-1)
        out[start : start + chunk] = picked - torch.logsumexp(part, dim=-1)
    return out


@dataclass
class BridgeOutput:
    loss: torch.Tensor  # [] mean NLL over all target tokens of the batch
    example_loss: torch.Tensor  # [B] mean NLL over each example's target tokens
    logits: torch.Tensor  # [B, M, V] logits at the target positions only
    layer_weights: torch.Tensor  # [B, T, L] fusion weights (0 on padding)
    soft_prompt: torch.Tensor  # [B, T, D_llm] the projector's output (padding columns unused)


@dataclass
class LabelScores:
    total: torch.Tensor  # [B, K] sum_j log p(y_{k,j} | prefix, y_{k,<j}) over label k's tokens + EOS
    mean: torch.Tensor  # [B, K] total / number of tokens of label k (length-normalised)
    layer_weights: torch.Tensor  # [B, T, L]
    greedy: torch.Tensor  # [B, K] bool: every token of candidate k is the argmax at its position


class Bridge(nn.Module):
    """A trainable bridge between a frozen multilingual encoder and a frozen causal LM."""

    def __init__(
        self,
        config: BridgeConfig,
        encoder: nn.Module,
        encoder_tokenizer,
        llm: nn.Module,
        llm_tokenizer,
    ) -> None:
        super().__init__()
        self.config = config
        limit = max_input_tokens(encoder.config)
        if limit is not None and config.max_length > limit:
            raise ConfigError(
                f"bridge.max_length={config.max_length} is longer than the encoder's {limit} positions; "
                f"set bridge.max_length to at most {limit}"
            )
        self.encoder = LayerStackEncoder(encoder, include_embeddings=config.include_embeddings)
        self.llm = llm
        self.encoder_tokenizer = encoder_tokenizer
        self.llm_tokenizer = llm_tokenizer
        self.bos_id, self.eos_id = special_token_ids(llm_tokenizer, config.use_bos)

        enc_dim, llm_dim = self.encoder.hidden_size, llm_hidden_size(llm)
        self.fusion = build_fusion(config.fusion, self.encoder.num_layers, enc_dim, **config.fusion_options)
        self.projector = build_projector(
            config.projector,
            enc_dim,
            llm_dim,
            init=config.projector_init,
            norm=config.projector_norm,
            norm_scale=embedding_rms(llm) if config.projector_norm == "rms" else 1.0,
            **config.projector_options,
        )
        self.boundary = nn.Parameter(self._initial_boundary(llm_dim))  # [D_llm]
        self._keep_logits = accepts_logits_to_keep(llm)
        self._cache_arg = cache_argument(llm)

        self.llm.requires_grad_(False)
        self.encoder.requires_grad_(not config.freeze_encoder)
        self.train(False)

    # ------------------------------------------------------------------ bookkeeping
    def train(self, mode: bool = True) -> Bridge:
        """The frozen LLM always stays in eval mode (no dropout); so does a frozen encoder unless
        ``encoder_dropout`` (the reference keeps it in train mode: dropout on, no gradients)."""
        super().train(mode)
        self.llm.eval()
        if self.config.freeze_encoder and not self.config.encoder_dropout:
            self.encoder.eval()
        return self

    @property
    def device(self) -> torch.device:
        return self.boundary.device

    @property
    def llm_dtype(self) -> torch.dtype:
        return input_embeddings(self.llm).weight.dtype

    def bridge_state_dict(self) -> dict[str, torch.Tensor]:
        """The weights a bridge checkpoint holds: fusion, projector, boundary (+ encoder if trained)."""
        prefixes = BRIDGE_PREFIXES + (() if self.config.freeze_encoder else ("encoder.",))
        return {k: v for k, v in self.state_dict().items() if k.startswith(prefixes)}

    def parameter_counts(self) -> dict[str, int]:
        """Trainable and total parameter counts, and the size of each part."""

        def count(module: nn.Module | nn.Parameter) -> int:
            if isinstance(module, nn.Parameter):
                return module.numel()
            return sum(p.numel() for p in module.parameters())

        return {
            "trainable": sum(p.numel() for p in self.parameters() if p.requires_grad),
            "total": count(self),
            "encoder": count(self.encoder),
            "fusion": count(self.fusion),
            "projector": count(self.projector),
            "boundary": count(self.boundary),
            "llm": count(self.llm),
        }

    # ------------------------------------------------------------------ Hugging Face conventions
    @classmethod
    def from_pretrained(cls, path: str | Path, **kwargs: Any) -> Bridge:
        """Load a saved bridge folder on its base models (``layerbridge.checkpoint.load_bridge``:
        ``device``, ``dtype``, ``encoder`` / ``llm`` paths, ``trust_remote_code``)."""
        from layerbridge.checkpoint import load_bridge

        return load_bridge(path, **kwargs)

    def save_pretrained(self, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
        """Save the bridge weights, ``bridge_config.json`` and a model card ``README.md``, atomically."""
        from layerbridge.checkpoint import save_bridge

        return save_bridge(self, path, extra=extra)

    # ------------------------------------------------------------------ tokenisation
    @property
    def encoder_pad_id(self) -> int:
        pad = self.encoder_tokenizer.pad_token_id
        return int(pad) if pad is not None else 0

    def target_token_ids(self, text: str) -> list[int]:
        """LLM token ids of a target string followed by EOS."""
        ids = self.llm_tokenizer(text, add_special_tokens=False)["input_ids"]
        if not ids:
            raise DataError(f"target text {text!r} has no tokens")
        return [*ids, self.eos_id]

    def pad_targets(self, targets: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-pad target id lists -> ids, mask [B, M] on the bridge's device (pads hold EOS, masked)."""
        ids, mask = pad_batch(targets, self.eos_id)
        return ids.to(self.device), mask.to(self.device)

    # ------------------------------------------------------------------ the pipeline
    def soft_prompt(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        encoder_states: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder -> fusion -> projector: [B, T] -> soft prompt [B, T, D_llm], weights [B, T, L].

        ``encoder_states`` [B, T, L, D_enc]: the frozen encoder's output for these ids, read from
        the state cache (:mod:`layerbridge.modeling.state_cache`) instead of recomputed.
        """
        states = self.layer_states(input_ids, attention_mask, encoder_states)  # [B, T, L, D_enc]
        fused, weights = self.fusion(states, attention_mask)  # [B, T, D_enc], [B, T, L]
        return self.projector(fused), weights  # [B, T, D_llm]

    def layer_states(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        encoder_states: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The encoder's layer states [B, T, L, D_enc] — ``encoder_states`` if given (the cache),
        else computed (no gradients through a frozen encoder) — in the bridge's dtype unless
        autocast decides."""
        if encoder_states is not None:
            states = encoder_states.to(self.device)
        else:
            grad = contextlib.nullcontext() if not self.config.freeze_encoder else torch.no_grad()
            with grad:
                states = self.encoder(input_ids, attention_mask)
        if not torch.is_autocast_enabled(states.device.type):
            states = states.to(self.boundary.dtype)
        return states

    @torch.no_grad()
    def layer_weights(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        encoder_states: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Fusion weights only (encoder + fusion, no LLM): [B, T] -> [B, T, L], 0 on padding."""
        return self.fusion(self.layer_states(input_ids, attention_mask, encoder_states), attention_mask)[1]

    def build_prefix(
        self, prompt: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-padded [BOS; soft prompt; boundary]: prompt [B, T, D] -> embeds [B, P, D], mask [B, P].

        P = T + 2 with BOS (T + 1 without). Example b occupies the last n_b + 2 columns.
        """
        _, tokens, dim = prompt.shape  # [B, T, D]
        n_bos = int(self.bos_id is not None)
        n_real = attention_mask.sum(1)  # [B]
        width = n_bos + tokens + 1  # P
        lengths = n_bos + n_real + 1  # [B] real prefix length
        cols = torch.arange(width, device=prompt.device)
        k = cols.unsqueeze(0) - (width - lengths).unsqueeze(1)  # [B, P] index within own prefix
        is_soft = (k >= n_bos) & (k < (n_bos + n_real).unsqueeze(1))  # [B, P]
        is_boundary = k == (n_bos + n_real).unsqueeze(1)  # [B, P]
        soft_index = (k - n_bos).clamp(0, tokens - 1)  # [B, P]
        soft = prompt.gather(1, soft_index.unsqueeze(-1).expand(-1, -1, dim))  # [B, P, D]
        embeds = soft * is_soft.unsqueeze(-1) + self.boundary.to(soft.dtype) * is_boundary.unsqueeze(-1)
        if self.bos_id is not None:
            # through the embedding module, not its weight: some LLMs scale inside it (Gemma)
            bos = self.embed_tokens(torch.tensor([self.bos_id], device=embeds.device))[0].to(
                embeds.dtype
            )  # [D]
            embeds = embeds + bos * (k == 0).unsqueeze(-1)
        return embeds.to(self.llm_dtype), (k >= 0).long()

    @torch.no_grad()
    def _initial_boundary(self, dim: int) -> torch.Tensor:
        """b_0 = 0 (reference), ~ N(0, 0.02^2) (LangBridge), or E[last token of boundary_token]:
        the LLM's own embedding, so the first label token is predicted from a position the LLM
        already reads as text (the encoder prompt ends "Category: "; ":" by default)."""
        init = self.config.boundary_init
        if init == "normal":
            return torch.zeros(dim).normal_(std=0.02)  # as before: same draws, same bridges
        if init == "token":
            ids = self.llm_tokenizer(self.config.boundary_token, add_special_tokens=False)["input_ids"]
            if not ids:
                raise ConfigError(f"bridge.boundary_token {self.config.boundary_token!r} has no LLM tokens")
            return self.embed_tokens(torch.tensor(ids[-1:], device=self.llm.device))[0].float().cpu()
        return torch.zeros(dim)

    def embed_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        return input_embeddings(self.llm)(ids)

    def _llm_logits(self, embeds: torch.Tensor, mask: torch.Tensor, first: int) -> torch.Tensor:
        """Run the LLM on [B, S, D] and return logits for columns first..S-1 only."""
        positions = position_ids_from_mask(mask)
        kwargs = {
            "inputs_embeds": embeds,
            "attention_mask": mask,
            "position_ids": positions,
            "use_cache": False,
        }
        if self._keep_logits:
            keep = torch.arange(first, embeds.shape[1], device=embeds.device)
            return self.llm(**kwargs, logits_to_keep=keep).logits
        return self.llm(**kwargs).logits[:, first:]

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        target_ids: torch.Tensor,
        target_mask: torch.Tensor,
        encoder_states: torch.Tensor | None = None,
    ) -> BridgeOutput:
        """Prefix-LM loss. input_ids/attention_mask [B, T] (encoder), target_ids/mask [B, M] (LLM);
        ``encoder_states`` [B, T, L, D_enc] (optional) replaces the encoder's forward pass."""
        prompt, weights = self.soft_prompt(input_ids, attention_mask, encoder_states)
        prefix, prefix_mask = self.build_prefix(prompt, attention_mask)  # [B, P, D], [B, P]
        width = prefix.shape[1]
        # y_M is never an input: [prefix; y_1 .. y_{M-1}] predicts y_1 .. y_M.
        inputs = torch.cat([prefix, self.embed_tokens(target_ids[:, :-1]).to(prefix.dtype)], dim=1)
        mask = torch.cat([prefix_mask, target_mask[:, :-1]], dim=1)  # [B, P + M - 1]
        logits = self._llm_logits(inputs, mask, first=width - 1)  # [B, M, V]
        nll = F.cross_entropy(logits.float().transpose(1, 2), target_ids, reduction="none")  # [B, M]
        tmask = target_mask.to(nll.dtype)
        example_loss = (nll * tmask).sum(1) / tmask.sum(1)
        loss = (nll * tmask).sum() / tmask.sum()
        return BridgeOutput(loss, example_loss, logits, weights, prompt)

    @torch.no_grad()
    def score_candidates(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        candidates: Sequence[Sequence[int]],
        encoder_states: torch.Tensor | None = None,
    ) -> LabelScores:
        """Log-probability of each candidate token sequence after the soft prompt.

        One prefix pass with a KV cache, then all K candidates continue from that cache in a
        single [B*K, M-1] pass (the first candidate token is scored from the prefix pass).
        """
        prompt, weights = self.soft_prompt(input_ids, attention_mask, encoder_states)
        prefix, prefix_mask = self.build_prefix(prompt, attention_mask)  # [B, P, D], [B, P]
        cand_ids, cand_mask = self.pad_targets(candidates)  # [K, M]
        out = self.llm(
            inputs_embeds=prefix,
            attention_mask=prefix_mask,
            position_ids=position_ids_from_mask(prefix_mask),
            use_cache=True,
            **({"logits_to_keep": 1} if self._keep_logits else {}),
        )
        first = torch.log_softmax(out.logits[:, -1].float(), dim=-1)  # [B, V]
        total = first[:, cand_ids[:, 0]]  # [B, K]: log p(y_1 | prefix)
        greedy = first.argmax(-1, keepdim=True) == cand_ids[:, 0].unsqueeze(0)  # [B, K]
        if cand_ids.shape[1] > 1:
            rest, rest_greedy = self._continuation_logprobs(out, prefix, prefix_mask, cand_ids, cand_mask)
            total, greedy = total + rest, greedy & rest_greedy
        lengths = cand_mask.sum(1).to(total.dtype)  # [K]
        return LabelScores(total=total, mean=total / lengths, layer_weights=weights, greedy=greedy)

    def _continuation_logprobs(
        self,
        prefix_out,
        prefix: torch.Tensor,
        prefix_mask: torch.Tensor,
        cand_ids: torch.Tensor,
        cand_mask: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """sum_{j>=2} log p(y_j | prefix, y_{<j}) for every example and candidate: [B, K], and
        whether each y_j (j >= 2) is the argmax at its position: [B, K] bool.

        Row b*K + k of one [B*K, M-1] pass continues example b with candidate k, reusing the
        prefix's KV cache (expanded K times). A cache that cannot be expanded falls back to
        running prefix + candidate again, which gives the same numbers.
        """
        batch, n_cand = prefix.shape[0], cand_ids.shape[0]
        inputs = cand_ids[:, :-1].repeat(batch, 1)  # [B*K, M-1]
        inputs_mask = cand_mask[:, :-1].repeat(batch, 1)
        embeds = self.embed_tokens(inputs).to(prefix.dtype)
        mask = torch.cat([prefix_mask.repeat_interleave(n_cand, 0), inputs_mask], dim=1)
        cache = output_cache(prefix_out)
        if hasattr(cache, "batch_repeat_interleave"):
            cache.batch_repeat_interleave(n_cand)
            offset = prefix_mask.sum(1).repeat_interleave(n_cand)  # [B*K] real prefix length
            logits = self.llm(
                inputs_embeds=embeds,
                attention_mask=mask,
                position_ids=position_ids_from_mask(inputs_mask, offset),
                use_cache=True,
                **{self._cache_arg: cache},
            ).logits  # [B*K, M-1, V]
        else:
            full = torch.cat([prefix.repeat_interleave(n_cand, 0), embeds], dim=1)
            logits = self._llm_logits(full, mask, first=prefix.shape[1])
        targets = cand_ids[:, 1:].repeat(batch, 1)  # [B*K, M-1]
        real = cand_mask[:, 1:].repeat(batch, 1)  # [B*K, M-1]
        token_lp = token_logprobs(logits, targets) * real
        greedy = ((logits.argmax(-1) == targets) | (real == 0)).all(-1)  # [B*K]
        return token_lp.sum(-1).view(batch, n_cand), greedy.view(batch, n_cand)

    @torch.no_grad()
    def generate_ids(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        max_new_tokens: int = 16,
        encoder_states: torch.Tensor | None = None,
    ) -> list[list[int]]:
        """Greedy decoding from the soft prompt; returns new token ids up to (without) EOS."""
        from transformers import GenerationConfig

        prompt, _ = self.soft_prompt(input_ids, attention_mask, encoder_states)
        prefix, prefix_mask = self.build_prefix(prompt, attention_mask)
        config = GenerationConfig(
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=self.eos_id,
            pad_token_id=self.eos_id,
            bos_token_id=self.bos_id,
        )
        out = self.llm.generate(inputs_embeds=prefix, attention_mask=prefix_mask, generation_config=config)
        results = []
        for row in out.tolist():
            results.append(row[: row.index(self.eos_id)] if self.eos_id in row else row)
        return results
