"""Running a bridge over task examples: label scoring or generation, batched by length."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from layerbridge.config import EvalConfig
from layerbridge.data.batching import sorted_batches
from layerbridge.data.encoded import Collator, EncodedExamples
from layerbridge.data.types import Example
from layerbridge.errors import DataError
from layerbridge.modeling.bridge import Bridge
from layerbridge.modeling.state_cache import EncoderStateCache, default_cache_dir
from layerbridge.runtime import autocast, compute_precision


@dataclass
class Predictions:
    pred: np.ndarray  # [N] predicted class, -1 = generation matched no label string
    scores: np.ndarray | None  # [N, K] label log-probabilities (score mode)
    texts: list[str] | None  # [N] generated strings (generate mode)
    layer_weight_sum: np.ndarray  # [L] fusion weights summed over all real tokens
    token_count: int  # number of real tokens summed over
    greedy: np.ndarray | None = None  # [N, K] label k is the greedy continuation (score mode)
    generated: np.ndarray | None = None  # [N] class by greedy generation + exact match (both mode)

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
    template: str,
    examples: Sequence[Example],
    label_strings: Sequence[str],
    config: EvalConfig | None = None,
    desc: str | None = None,
    progress: bool = True,
    max_new_tokens: int | None = None,
) -> Predictions:
    """Predict a class for every example (in input order), through the one data path.

    Score mode: sum (or mean) of log p(label tokens + EOS | soft prompt) per label, argmax.
    Generate mode: greedy generation (``max_new_tokens``, default the longest label + 2),
    exact match against the label strings (-1 if none matches).
    """
    encoded = EncodedExamples.build(template, examples, label_strings, bridge)
    return predict_encoded(bridge, encoded, label_strings, config, desc, progress, max_new_tokens)


def predict_encoded(
    bridge: Bridge,
    encoded: EncodedExamples,
    label_strings: Sequence[str],
    config: EvalConfig | None = None,
    desc: str | None = None,
    progress: bool = True,
    max_new_tokens: int | None = None,
) -> Predictions:
    """:func:`predict_examples` on already encoded examples; ``encoded.target_ids`` are the
    candidates (one per label string).

    Mode ``both`` gives both metrics from one scoring pass: ``pred`` by label scoring, and
    ``generated`` / ``texts`` as greedy generation would give them. Each candidate is the
    label's tokens + EOS, so when candidate k is the argmax at every one of its positions
    (``greedy``), greedy decoding emits exactly label k and stops: its text is label k's
    decoded tokens. Only the examples with no such candidate are generated.
    """
    config = config or EvalConfig()
    bridge.eval()
    scoring, generating = config.mode in ("score", "both"), config.mode in ("generate", "both")
    n, k = len(encoded), len(encoded.target_ids)
    scores = np.zeros((n, k), dtype=np.float64) if scoring else None
    greedy = np.zeros((n, k), dtype=bool) if scoring else None
    texts: list[str] | None = [""] * n if generating else None
    pred = np.full(n, -1, dtype=np.int64)
    generated = np.full(n, -1, dtype=np.int64) if config.mode == "both" else None
    weight_sum, tokens = np.zeros(bridge.encoder.num_layers), 0
    max_new = max_new_tokens or max(len(c) for c in encoded.target_ids) + 2
    label_texts = [_decode(bridge, ids) for ids in encoded.target_ids]  # what generating label k prints
    collate = Collator(encoded, targets=False, states=_state_cache(bridge, encoded, config))
    bar = tqdm(total=n, desc=desc, unit="ex", disable=not progress, leave=False)
    with torch.no_grad(), autocast(bridge.device, config.precision):
        for batch in sorted_batches(encoded.lengths(), config.batch_size):
            inputs = {key: t.to(bridge.device) for key, t in collate(batch).items()}
            flags = None
            if scoring:
                out = bridge.score_candidates(**inputs, candidates=encoded.target_ids)
                values = (out.total if config.score == "sum" else out.mean).float().cpu().numpy()
                scores[batch], pred[batch] = values, values.argmax(1)  # type: ignore[index]
                greedy[batch] = flags = out.greedy.cpu().numpy()  # type: ignore[index]
                weights = out.layer_weights
            else:
                weights = bridge.layer_weights(**inputs)
            if generating:
                batch_texts = _greedy_texts(bridge, inputs, flags, label_texts, max_new)
                for row, text in zip(batch, batch_texts, strict=True):
                    texts[row] = text  # type: ignore[index]
                    (generated if scoring else pred)[row] = match_label(text, label_strings)  # type: ignore[index]
            weight_sum += weights.float().sum((0, 1)).cpu().numpy()
            tokens += int(inputs["attention_mask"].sum())
            bar.update(len(batch))
    bar.close()
    return Predictions(pred, scores, texts, weight_sum, tokens, greedy, generated)


def _greedy_texts(
    bridge: Bridge,
    inputs: dict[str, torch.Tensor],
    flags: np.ndarray | None,
    label_texts: Sequence[str],
    max_new: int,
) -> list[str]:
    """What greedy generation prints for each row of a batch: label k's text where candidate k
    (label + EOS) is the argmax at every position (``flags`` [B, K] from scoring; at most one k,
    as no label + EOS is a prefix of another), else the decoded output of generating."""
    rows = inputs["input_ids"].shape[0]
    texts = (
        [label_texts[int(f.argmax())] if f.any() else "" for f in flags] if flags is not None else [""] * rows
    )
    todo = [i for i in range(rows) if flags is None or not flags[i].any()]
    if todo:
        part = inputs if len(todo) == rows else {key: t[todo] for key, t in inputs.items()}
        for i, token_ids in zip(todo, bridge.generate_ids(**part, max_new_tokens=max_new), strict=True):
            texts[i] = _decode(bridge, token_ids)
    return texts


def _state_cache(bridge: Bridge, encoded: EncodedExamples, config: EvalConfig) -> EncoderStateCache | None:
    """The encoder-state cache of these prompts when ``config.encoder_cache`` asks for it (built
    in the evaluation's own sorted batches, so cached and recomputed states are the same)."""
    if not config.encoder_cache:
        return None
    directory = config.encoder_cache_dir or default_cache_dir()
    precision = compute_precision(config.precision, bridge.device)
    return EncoderStateCache.load_or_build(
        bridge.encoder, encoded.prompt_ids, encoded.prompt_pad_id, directory, config.batch_size, precision
    )


def _decode(bridge: Bridge, token_ids: list[int]) -> str:
    return bridge.llm_tokenizer.decode(token_ids, skip_special_tokens=True).strip()


# ---------------------------------------------------------------------- plain-text prompts
#: a prompt given as finished text is a one-field template; long texts are shortened from
#: the end by the same template-aware encoding as task prompts
TEXT_TEMPLATE = "{text}"


def text_examples(prompts: Sequence[str]) -> list[Example]:
    """Finished prompts as one-field examples of :data:`TEXT_TEMPLATE` (empty ones refused)."""
    for i, text in enumerate(prompts):
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"input text #{i} is empty")
    return [Example({"text": text}, 0, f"text/{i}") for i, text in enumerate(prompts)]


def encode_texts(bridge: Bridge, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Finished prompts -> encoder ids, mask [B, T] (right-padded) on the bridge's device."""
    encoded = EncodedExamples.build(TEXT_TEMPLATE, text_examples(prompts), (), bridge)
    batch = Collator(encoded, targets=False)(range(len(prompts)))
    return batch["input_ids"].to(bridge.device), batch["attention_mask"].to(bridge.device)


def score_texts(
    bridge: Bridge,
    prompts: Sequence[str],
    labels: Sequence[str],
    batch_size: int = 32,
    score: str = "sum",
    precision: str = "auto",
) -> np.ndarray:
    """[N, K] log-probability of every label string (+ EOS) after every finished prompt."""
    config = EvalConfig(batch_size=batch_size, score=score, precision=precision)
    preds = predict_examples(bridge, TEXT_TEMPLATE, text_examples(prompts), labels, config, progress=False)
    return preds.scores  # type: ignore[return-value]


def generate_texts(
    bridge: Bridge,
    prompts: Sequence[str],
    max_new_tokens: int = 16,
    batch_size: int = 32,
    precision: str = "auto",
) -> list[str]:
    """Greedy generation of free text after every finished prompt."""
    config = EvalConfig(mode="generate", batch_size=batch_size, precision=precision)
    examples = text_examples(prompts)
    preds = predict_examples(
        bridge, TEXT_TEMPLATE, examples, (), config, progress=False, max_new_tokens=max_new_tokens
    )
    return preds.texts  # type: ignore[return-value]
