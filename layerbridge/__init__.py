"""layerbridge: fuse all layers of a frozen multilingual encoder into a frozen LLM.

Pipeline: ``encoder -> fusion -> projector -> LLM``. See README.md.
"""

__version__ = "0.1.0"

from layerbridge.api import evaluate, predict, train
from layerbridge.checkpoint import load_bridge, save_bridge
from layerbridge.config import BridgeConfig, EvalConfig, RunConfig, TaskConfig, TrainConfig
from layerbridge.modeling.bridge import Bridge
from layerbridge.modeling.builders import build_bridge, load_base_models

__all__ = [
    "Bridge",
    "BridgeConfig",
    "EvalConfig",
    "RunConfig",
    "TaskConfig",
    "TrainConfig",
    "__version__",
    "build_bridge",
    "evaluate",
    "load_base_models",
    "load_bridge",
    "predict",
    "save_bridge",
    "train",
]
