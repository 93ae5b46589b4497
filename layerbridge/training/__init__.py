"""Training: English-only prefix-LM training of the bridge, resumable, multi-process ready."""

from layerbridge.training.recipe import TrainRecipe, TrainResult, train

__all__ = ["TrainRecipe", "TrainResult", "train"]
