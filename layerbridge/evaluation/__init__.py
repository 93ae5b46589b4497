"""Evaluation: label scoring or generation, metrics with bootstrap CIs (rendered by layerbridge.report)."""

from layerbridge.evaluation.evaluate import evaluate
from layerbridge.evaluation.predict import Predictions, generate_texts, predict_examples, score_texts

__all__ = ["Predictions", "evaluate", "generate_texts", "predict_examples", "score_texts"]
