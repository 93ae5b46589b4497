"""Evaluate a bridge on a task: languages x split, metrics with confidence intervals, artefacts."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from layerbridge.config import EvalConfig
from layerbridge.data.types import TaskData
from layerbridge.errors import DataError
from layerbridge.evaluation import metrics
from layerbridge.evaluation.predict import Predictions, predict_examples
from layerbridge.languages import coverage_for, is_covered, language_groups, language_info
from layerbridge.modeling.bridge import Bridge
from layerbridge.report.evaluation import write_report
from layerbridge.tasks.base import Task


def language_metrics(
    data: TaskData, predictions: Predictions, num_classes: int, config: EvalConfig
) -> dict[str, Any]:
    """Accuracy and macro-F1 (with bootstrap CIs), confusion matrix, invalid count, layer weights."""
    gold, pred = np.asarray(data.labels), predictions.pred
    generation = {}
    if predictions.generated is not None:  # mode "both": the paper's metric beside label scoring
        generation["generation"] = _class_metrics(gold, predictions.generated, num_classes, config)
    return generation | {
        "n": len(gold),
        **_class_metrics(gold, pred, num_classes, config),
        "macro_f1_ci": list(metrics.macro_f1_ci(gold, pred, num_classes, config.bootstrap, config.seed)),
        "confusion": metrics.confusion_matrix(gold, pred, num_classes).tolist(),
        "layer_weights": predictions.mean_layer_weights.tolist(),
        "source": data.source,
        "data_report": data.report.to_dict(),
    }


def _class_metrics(gold: np.ndarray, pred: np.ndarray, num_classes: int, config: EvalConfig) -> dict:
    """Accuracy (with its bootstrap CI), macro-F1, and how many predictions are no label (-1)."""
    return {
        "accuracy": metrics.accuracy(gold, pred),
        "accuracy_ci": list(metrics.accuracy_ci(gold, pred, config.bootstrap, config.seed)),
        "macro_f1": metrics.macro_f1(gold, pred, num_classes),
        "invalid": int(np.sum(pred < 0)),
    }


def average_metrics(
    per_language: dict[str, dict],
    pairs: dict[str, tuple],
    languages: list[str],
    config,
    parallel: bool = False,
) -> dict:
    """Mean accuracy (bootstrap CI over each language's examples, or over the items of a
    ``parallel`` task, translations together) and macro-F1 of ``languages``; with generation
    results (mode "both"), their mean accuracy as ``generation_accuracy``.
    ``pairs[lang]`` = (gold, pred, item ids)."""
    chosen = [lang for lang in languages if lang in per_language]
    if not chosen:
        return {"languages": [], "accuracy": None, "accuracy_ci": None, "macro_f1": None}
    average = {
        "languages": chosen,
        "accuracy": float(np.mean([per_language[lang]["accuracy"] for lang in chosen])),
        "accuracy_ci": list(
            metrics.mean_accuracy_ci(
                [pairs[lang][:2] for lang in chosen],
                config.bootstrap,
                config.seed,
                items=[pairs[lang][2] for lang in chosen] if parallel else None,
            )
        ),
        "macro_f1": float(np.mean([per_language[lang]["macro_f1"] for lang in chosen])),
    }
    if all("generation" in per_language[lang] for lang in chosen):
        accuracies = [per_language[lang]["generation"]["accuracy"] for lang in chosen]
        average["generation_accuracy"] = float(np.mean(accuracies))
    return average


def evaluate(
    bridge: Bridge,
    task: Task,
    config: EvalConfig | None = None,
    out_dir: str | Path | None = None,
    bridge_info: dict[str, Any] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate ``bridge`` on ``task`` per language; write artefacts to ``out_dir`` if given.

    Returns the results dictionary (also written as ``results.json``); per-example gold and
    predicted labels go to ``predictions.json`` for paired significance tests.
    """
    config = config or EvalConfig()
    default = task.eval_languages if config.split == "test" else (task.train_language,)
    languages = [task.canonical_language(lang) for lang in (config.languages or default)]
    for lang in languages:
        task.check_language(config.split, lang)
    coverage = coverage_for(bridge.config.encoder, config.covered_languages)
    train_keys = _train_text_keys(task) if config.split == "test" else set()
    start = time.perf_counter()
    per_language, predictions, pairs = {}, {}, {}
    outer = tqdm(
        languages, desc=f"{task.name} languages", unit="lang", disable=not progress or len(languages) < 2
    )
    for lang in outer:
        outer.set_postfix_str(lang)
        data = task.load(config.split, lang, limit=config.limit, seed=config.seed)
        desc = f"{task.name}/{lang}"
        preds = predict_examples(
            bridge, task.template, data.examples, task.label_strings, config, desc=desc, progress=progress
        )
        result = language_metrics(data, preds, task.num_classes, config)
        result |= _language_info(task, lang, coverage)
        result["overlap_with_train"] = sum(ex.text_key() in train_keys for ex in data.examples)
        if result["overlap_with_train"]:
            data.report.warn(f"{desc}: {result['overlap_with_train']} test text(s) also occur in train")
        per_language[lang] = result
        pairs[lang] = (np.asarray(data.labels), preds.pred, [ex.item_id for ex in data.examples])
        predictions[lang] = _prediction_record(data, preds)
    timing = {"seconds": time.perf_counter() - start, "examples": sum(r["n"] for r in per_language.values())}
    averages = {
        name: average_metrics(per_language, pairs, group, config, task.parallel)
        for name, group in language_groups(languages, coverage, task.low_resource).items()
    }
    results = _results_record(bridge, task, config, per_language, averages, coverage, timing, bridge_info)
    if out_dir is not None:
        write_report(results, predictions, Path(out_dir))
    return results


def _language_info(task: Task, lang: str, coverage) -> dict[str, Any]:
    return {
        "low_resource": lang in task.low_resource,
        "script": language_info(lang).script,
        "covered": is_covered(lang, coverage),
    }


def _prediction_record(data: TaskData, preds: Predictions) -> dict[str, Any]:
    """Per-example uid / gold / prediction (and generated text) of one language."""
    return {
        "uid": [ex.uid for ex in data.examples],
        "gold": list(data.labels),
        "pred": preds.pred.tolist(),
        **({"text": preds.texts} if preds.texts is not None else {}),
        **({"generated": preds.generated.tolist()} if preds.generated is not None else {}),
    }


def _results_record(
    bridge: Bridge,
    task: Task,
    config: EvalConfig,
    per_language: dict[str, dict],
    averages: dict[str, dict],
    coverage,
    timing: dict[str, float],
    bridge_info: dict[str, Any] | None,
) -> dict[str, Any]:
    """The ``results.json`` record of one evaluation."""
    seconds, n_total = timing["seconds"], timing["examples"]
    return {
        "task": task.name,
        "split": config.split,
        "config": config.to_dict(),
        "label_names": list(task.label_names),
        "label_strings": list(task.label_strings),
        "template": task.template,
        "bridge": {
            "fusion": bridge.config.fusion,
            "encoder": bridge.config.encoder,
            "llm": bridge.config.llm,
            "include_embeddings": bridge.config.include_embeddings,
            **(bridge_info or {}),
        },
        "languages": per_language,
        "coverage": "unknown"
        if coverage is None
        else ("user list" if config.covered_languages else "XLM-R / CC-100 (100 languages)"),
        "averages": averages,
        "timing": {
            "seconds": round(seconds, 2),
            "examples": n_total,
            "examples_per_second": round(n_total / max(seconds, 1e-9), 2),
        },
    }


def _train_text_keys(task: Task) -> set[str]:
    """Texts of the task's training split, to count train/test overlap (empty if unavailable)."""
    try:
        return {ex.text_key() for ex in task.load("train").examples}
    except DataError:
        return set()
