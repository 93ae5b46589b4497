"""Training: English-only prefix-LM training of the bridge, resumable, multi-process ready."""

from layerbridge.training.recipe import TrainResult, train

__all__ = ["TrainResult", "train"]
