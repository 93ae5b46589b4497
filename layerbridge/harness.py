"""A bridge as an EleutherAI lm-evaluation-harness model (``pip install 'layerbridge[harness]'``).

The harness's request types, for a bridge:

``loglikelihood(context, continuation)``
    The *context* goes through the encoder and becomes the soft prompt (exactly as
    ``layerbridge eval`` encodes a prompt); the *continuation* is scored by the LLM after it:
    ``sum_j log p(c_j | soft prompt, c_<j)``, with the greedy flag (every c_j is the argmax).
    By default the continuation is followed by EOS, as the bridge was trained to end its
    answer (label + EOS) — so a multiple-choice task gives exactly layerbridge's own label
    scoring; pass ``eos=False`` to score the bare continuation. Requests that share a context
    and a set of continuations run as one batch: one prefix pass, all continuations from its
    KV cache.
``generate_until(context, {until, max_gen_toks})``
    Greedy generation from the soft prompt, cut before the first ``until`` string.
``loglikelihood_rolling``
    Not defined: a bridge's LLM always reads a soft prompt from the encoder; a rolling
    perplexity of text with no prompt has nothing to encode.

Use it from the command line with ``layerbridge lm-eval run --model layerbridge --model_args
bridge=PATH[,device=cpu,batch_size=16,eos=True,precision=auto] --tasks …`` (all other
arguments are lm-eval's own), or from Python: ``import layerbridge.harness`` registers the
model, then ``lm_eval.simple_evaluate(model="layerbridge", model_args="bridge=PATH", …)``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from lm_eval.api.model import LM
from lm_eval.api.registry import register_model

from layerbridge.checkpoint import load_bridge
from layerbridge.config import EvalConfig
from layerbridge.data.encoded import EncodedExamples
from layerbridge.errors import ConfigError, DataError
from layerbridge.evaluation.predict import TEXT_TEMPLATE, generate_texts, predict_encoded, text_examples
from layerbridge.modeling.bridge import Bridge

log = logging.getLogger("layerbridge.harness")


def _flag(value: Any) -> bool:
    """A model_args boolean (lm-eval passes True/False, or the strings)."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return bool(value)


@register_model("layerbridge")
class BridgeLM(LM):
    """lm-eval model backed by a trained bridge (a folder, or a :class:`Bridge` in memory)."""

    def __init__(
        self,
        bridge: str | Bridge,
        device: str | None = None,
        batch_size: int | str = 16,
        eos: bool | str = True,
        precision: str = "auto",
        max_gen_toks: int = 256,
        trust_remote_code: bool | str = False,
        **unused: Any,
    ) -> None:
        super().__init__()
        if unused:
            log.info("layerbridge harness model ignores %s", ", ".join(sorted(unused)))
        if isinstance(bridge, Bridge):
            self.bridge = bridge
        else:
            self.bridge = load_bridge(bridge, device=device, trust_remote_code=_flag(trust_remote_code))
        self.batch_size = 16 if str(batch_size).startswith("auto") else int(batch_size)
        self.eos, self.precision, self.max_gen_toks = _flag(eos), precision, int(max_gen_toks)
        self._device = self.bridge.device

    # ------------------------------------------------------------------ loglikelihood
    def continuation_ids(self, text: str) -> list[int]:
        """LLM token ids of a continuation (+ EOS unless ``eos=False``)."""
        ids = self.bridge.llm_tokenizer(text, add_special_tokens=False)["input_ids"]
        ids = [*ids, self.bridge.eos_id] if self.eos else ids
        if not ids:
            raise DataError(f"continuation {text!r} has no tokens")
        return ids

    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        """(sum log p(continuation | soft prompt of context), is greedy) per request, in order."""
        by_context: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
        for index, request in enumerate(requests):
            context, continuation = request.args[0], request.args[1]
            by_context[context][continuation].append(index)
        groups: dict[tuple[str, ...], list[str]] = defaultdict(list)  # continuation set -> contexts
        for context, continuations in by_context.items():
            groups[tuple(continuations)].append(context)
        results: list[tuple[float, bool]] = [(0.0, False)] * len(requests)
        for continuations, contexts in groups.items():
            scores, greedy = self._score(contexts, continuations)
            for row, context in enumerate(contexts):
                for col, continuation in enumerate(continuations):
                    for index in by_context[context][continuation]:
                        results[index] = (float(scores[row, col]), bool(greedy[row, col]))
        return results

    def _score(self, contexts: Sequence[str], continuations: Sequence[str]):
        """[C, K] log-probabilities and greedy flags of every continuation after every context."""
        encoded = EncodedExamples.build(TEXT_TEMPLATE, text_examples(contexts), (), self.bridge)
        encoded = dataclasses.replace(encoded, target_ids=[self.continuation_ids(c) for c in continuations])
        config = EvalConfig(batch_size=self.batch_size, precision=self.precision)
        preds = predict_encoded(self.bridge, encoded, continuations, config, progress=False)
        return preds.scores, preds.greedy

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        raise ConfigError(
            "loglikelihood_rolling is not defined for a bridge: its LLM always reads a soft prompt "
            "made by the encoder from a context, and a rolling perplexity has no context to encode; "
            "use tasks of output_type multiple_choice / loglikelihood / generate_until"
        )

    # ------------------------------------------------------------------ generation
    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        """Greedy continuation of each context, cut before the first of its ``until`` strings."""
        groups: dict[str, list[int]] = defaultdict(list)
        for index, request in enumerate(requests):
            groups[json.dumps(request.args[1], sort_keys=True, default=str)].append(index)
        results = [""] * len(requests)
        for key, indices in groups.items():
            kwargs = json.loads(key)
            if kwargs.get("do_sample"):
                log.warning("layerbridge harness model decodes greedily; do_sample is ignored")
            until = kwargs.get("until") or []
            until = [until] if isinstance(until, str) else list(until)
            contexts = [requests[i].args[0] for i in indices]
            max_new = int(kwargs.get("max_gen_toks", self.max_gen_toks))
            texts = generate_texts(self.bridge, contexts, max_new, self.batch_size, self.precision)
            for index, text in zip(indices, texts, strict=True):
                results[index] = cut_at(text, until)
        return results


def cut_at(text: str, until: Sequence[str]) -> str:
    """``text`` up to (without) the earliest occurrence of any of the ``until`` strings."""
    ends = [text.find(stop) for stop in until if stop and stop in text]
    return text[: min(ends)] if ends else text
