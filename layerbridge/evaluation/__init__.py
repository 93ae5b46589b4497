"""Evaluation: label scoring or generation, metrics with bootstrap CIs, reports and plots."""

from layerbridge.evaluation.evaluate import evaluate
from layerbridge.evaluation.predict import Predictions, predict_examples

__all__ = ["Predictions", "evaluate", "predict_examples"]
