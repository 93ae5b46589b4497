"""Layer-wise cross-lingual alignment: how language-agnostic is each encoder layer?

The paper's mechanism is that lower encoder layers carry language-general information the
last layer loses. This probe measures it directly on parallel sentences (SIB-200: the same
FLORES-200 sentences in every language). For a language X with N test sentences that have
English translations, and for each encoder layer l (0 = embedding output, 1..L = blocks):

    v_i^(l)  = mean over the real tokens of sentence i of h^(l)          (mean pooling)
    S[i, j]  = cos(v_i^(l)(X), v_j^(l)(en))                              [N, N]
    X->en    = 1/N sum_i 1[argmax_j S[i, j] = i]                         (translation retrieval)
    en->X    = 1/N sum_j 1[argmax_i S[i, j] = j]

and the score is the mean of both directions (chance = 1/N). With a trained bridge the same
is computed for its fused representation z (``fused``: mean-pooled z_i = sum_l w_{i,l} h_i^(l))
and for the projected soft prompt (``projected``). The raw sentence is encoded, without the
task's prompt template, so that shared template words cannot inflate the alignment.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from layerbridge.data.batching import pad_batch, sorted_batches
from layerbridge.data.types import Example
from layerbridge.errors import DataError
from layerbridge.languages import is_covered, language_info
from layerbridge.modeling.bridge import Bridge
from layerbridge.tasks.base import Task


@dataclass
class ProbeModel:
    """What the probe runs: an encoder with its tokenizer, and optionally a bridge's fusion/projector."""

    encoder: nn.Module  # a transformers encoder (output_hidden_states supported)
    tokenizer: Any
    max_length: int = 200
    bridge: Bridge | None = None

    @classmethod
    def of_bridge(cls, bridge: Bridge) -> ProbeModel:
        return cls(bridge.encoder.model, bridge.encoder_tokenizer, bridge.config.max_length, bridge)

    @property
    def device(self) -> torch.device:
        return next(self.encoder.parameters()).device


def mean_pool(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """states [..., B, T, D], mask [B, T] -> [..., B, D]: mean over real tokens."""
    m = mask.to(states.dtype).unsqueeze(-1)  # [B, T, 1]
    return (states * m).sum(-2) / m.sum(-2).clamp_min(1)


@torch.no_grad()
def sentence_vectors(model: ProbeModel, texts: Sequence[str], batch_size: int = 64) -> dict[str, np.ndarray]:
    """Mean-pooled vectors [N, D] of every representation, in order: ``emb``, ``1`` … ``L``, and
    with a bridge ``fused`` (D_enc) and ``projected`` (D_llm)."""
    model.encoder.eval()
    enc = model.tokenizer(list(texts), truncation=True, max_length=model.max_length)["input_ids"]
    pad = model.tokenizer.pad_token_id or 0
    chunks: dict[str, list[np.ndarray]] = {}
    order: list[int] = []
    for batch in sorted_batches([len(ids) for ids in enc], batch_size):
        ids, mask = (t.to(model.device) for t in pad_batch([enc[i] for i in batch], pad))  # [B, T]
        hidden = model.encoder(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
        pooled = mean_pool(torch.stack(hidden).float(), mask)  # [L+1, B, D_enc]
        columns = {("emb" if k == 0 else str(k)): pooled[k] for k in range(len(hidden))}
        if model.bridge is not None:
            bridge = model.bridge
            layers = hidden if bridge.encoder.include_embeddings else hidden[1:]
            states = torch.stack(layers, dim=2).to(bridge.boundary.dtype)  # [B, T, L, D_enc]
            fused, _ = bridge.fusion(states, mask)  # [B, T, D_enc]
            columns["fused"] = mean_pool(fused.float(), mask)  # [B, D_enc]
            columns["projected"] = mean_pool(bridge.projector(fused).float(), mask)  # [B, D_llm]
        for name, vectors in columns.items():
            chunks.setdefault(name, []).append(vectors.cpu().numpy())
        order.extend(batch)
    inverse = np.argsort(order)
    return {name: np.concatenate(parts)[inverse] for name, parts in chunks.items()}


def retrieval_accuracy(source: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """(source->target, target->source) top-1 retrieval accuracy; row i of each is a translation pair."""
    a = source / np.maximum(np.linalg.norm(source, axis=-1, keepdims=True), 1e-12)
    b = target / np.maximum(np.linalg.norm(target, axis=-1, keepdims=True), 1e-12)
    sim = a.astype(np.float64) @ b.astype(np.float64).T  # [N, N]
    gold = np.arange(len(sim))
    return float(np.mean(sim.argmax(1) == gold)), float(np.mean(sim.argmax(0) == gold))


def _text(example: Example) -> str:
    return " ".join(example.fields.values())


def _parallel(english: list[Example], other: list[Example], language: str) -> tuple[list[int], list[int]]:
    """Indices into ``english`` and ``other`` of the items both have, in English order."""
    position = {ex.item_id: i for i, ex in enumerate(other)}
    if len(position) != len(other):
        raise DataError(f"{language}: item ids are not unique; the probe needs parallel, id-aligned data")
    pairs = [(i, position[ex.item_id]) for i, ex in enumerate(english) if ex.item_id in position]
    if len(pairs) < 2:
        raise DataError(f"{language}: fewer than 2 items share an id with English; is the data parallel?")
    return [p[0] for p in pairs], [p[1] for p in pairs]


def alignment_probe(
    model: ProbeModel,
    task: Task,
    languages: Sequence[str],
    *,
    split: str = "test",
    limit: int | None = None,
    batch_size: int = 64,
    coverage: frozenset[str] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Translation-retrieval accuracy against English for every language x representation."""
    if not task.parallel:
        raise DataError(
            f"task {task.name} has no parallel test sets; the alignment probe needs translations "
            "of the same items in every language (use sib200)"
        )
    english_code = task.train_language
    languages = [task.canonical_language(x) for x in languages if task.canonical_language(x) != english_code]
    for lang in languages:
        task.check_language(split, lang)
    start = time.perf_counter()
    english = task.load(split, english_code, limit=limit).examples
    english_vectors = sentence_vectors(model, [_text(ex) for ex in english], batch_size)
    columns = list(english_vectors)
    results: dict[str, Any] = {}
    for lang in tqdm(languages, desc="alignment", unit="lang", disable=not progress):
        other = task.load(split, lang).examples
        en_idx, other_idx = _parallel(english, other, lang)
        vectors = sentence_vectors(model, [_text(other[i]) for i in other_idx], batch_size)
        to_en, from_en = [], []
        for c in columns:
            x_to_en, en_to_x = retrieval_accuracy(vectors[c], english_vectors[c][en_idx])
            to_en.append(x_to_en)
            from_en.append(en_to_x)
        results[lang] = {
            "n": len(en_idx),
            "to_en": to_en,
            "from_en": from_en,
            "mean": [(a + b) / 2 for a, b in zip(to_en, from_en, strict=True)],
            "script": language_info(lang).script,
            "covered": is_covered(lang, coverage),
            "low_resource": lang in task.low_resource,
        }
    seconds = time.perf_counter() - start
    n_sentences = len(english) + sum(r["n"] for r in results.values())
    return {
        "task": task.name,
        "split": split,
        "columns": columns,
        "chance": {lang: 1 / r["n"] for lang, r in results.items()},
        "languages": results,
        "summary": summarize_alignment(results, columns),
        "timing": {
            "seconds": round(seconds, 2),
            "sentences": n_sentences,
            "sentences_per_second": round(n_sentences / max(seconds, 1e-9), 1),
        },
    }


def summarize_alignment(results: dict[str, dict], columns: list[str]) -> dict[str, Any]:
    """Mean retrieval accuracy per representation over all / covered / not-covered languages."""
    groups = {
        "all": list(results),
        "covered": [x for x, r in results.items() if r["covered"] is True],
        "not_covered": [x for x, r in results.items() if r["covered"] is False],
        "low_resource": [x for x, r in results.items() if r["low_resource"]],
    }
    summary = {}
    for name, langs in groups.items():
        if not langs:
            continue
        means = np.mean([results[x]["mean"] for x in langs], axis=0)
        summary[name] = {
            "languages": len(langs),
            "mean": [float(v) for v in means],
            "best": columns[int(np.argmax(means))],
        }
    return summary
