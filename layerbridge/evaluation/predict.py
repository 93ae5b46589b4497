"""Running a bridge over task examples: label scoring or generation, batched by length."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from layerbridge.config import EvalConfig
from layerbridge.data.batching import pad_batch, sorted_batches
from layerbridge.data.prompts import encode_examples
from layerbridge.data.types import Example
from layerbridge.modeling.bridge import Bridge
from layerbridge.runtime import autocast


@dataclass
class Predictions:
    pred: np.ndarray  # [N] predicted class, -1 = generation matched no label string
    scores: np.ndarray | None  # [N, K] label log-probabilities (score mode)
    texts: list[str] | None  # [N] generated strings (generate mode)
    layer_weight_sum: np.ndarray  # [L] fusion weights summed over all real tokens
    token_count: int  # number of real tokens summed over

    @property
    def mean_layer_weights(self) -> np.ndarray:
        """[L] mean fusion weight of each layer over the real tokens seen."""
        return self.layer_weight_sum / max(self.token_count, 1)

    def probabilities(self) -> np.ndarray:
        """[N, K] softmax of the label scores over the candidate labels."""
        assert self.scores is not None
        shifted = self.scores - self.scores.max(1, keepdims=True)
        exp = np.exp(shifted)
        return exp / exp.sum(1, keepdims=True)


def normalise_label(text: str) -> str:
    return " ".join(text.strip().strip(".:;!?\"'").lower().split())


def match_label(text: str, label_strings: Sequence[str]) -> int:
    """Index of the label string ``text`` equals (case and end punctuation ignored), else -1."""
    wanted = normalise_label(text)
    for index, label in enumerate(label_strings):
        if normalise_label(label) == wanted:
            return index
    return -1


def predict_examples(
    bridge: Bridge,
    template_task,
    examples: Sequence[Example],
    label_strings: Sequence[str],
    config: EvalConfig | None = None,
    desc: str | None = None,
    progress: bool = True,
) -> Predictions:
    """Predict a class for every example (in input order)."""
    config = config or EvalConfig()
    bridge.eval()
    ids = encode_examples(template_task, examples, bridge.encoder_tokenizer, bridge.config.max_length)
    candidates = [bridge.target_token_ids(label) for label in label_strings]
    n, k = len(examples), len(label_strings)
    scores = np.zeros((n, k), dtype=np.float64) if config.mode == "score" else None
    texts: list[str] | None = [""] * n if config.mode == "generate" else None
    pred = np.full(n, -1, dtype=np.int64)
    weight_sum = np.zeros(bridge.encoder.num_layers)
    tokens = 0
    max_new = max(len(c) for c in candidates) + 2
    batches = sorted_batches([len(x) for x in ids], config.batch_size)
    bar = tqdm(total=n, desc=desc, unit="ex", disable=not progress, leave=False)
    with torch.no_grad(), autocast(bridge.device, config.precision):
        for batch in batches:
            input_ids, mask = pad_batch([ids[i] for i in batch], bridge.encoder_pad_id)
            input_ids, mask = input_ids.to(bridge.device), mask.to(bridge.device)
            if config.mode == "score":
                out = bridge.score_candidates(input_ids, mask, candidates)
                values = (out.total if config.score == "sum" else out.mean).float().cpu().numpy()
                scores[batch] = values  # type: ignore[index]
                pred[batch] = values.argmax(1)
                weights = out.layer_weights
            else:
                generated = bridge.generate_ids(input_ids, mask, max_new_tokens=max_new)
                for row, token_ids in zip(batch, generated, strict=True):
                    text = bridge.llm_tokenizer.decode(token_ids, skip_special_tokens=True).strip()
                    texts[row] = text  # type: ignore[index]
                    pred[row] = match_label(text, label_strings)
                weights = bridge.layer_weights(input_ids, mask)
            weight_sum += weights.float().sum((0, 1)).cpu().numpy()
            tokens += int(mask.sum())
            bar.update(len(batch))
    bar.close()
    return Predictions(pred, scores, texts, weight_sum, tokens)
