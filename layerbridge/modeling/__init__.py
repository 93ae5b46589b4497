"""The model: ``encoder -> fusion -> projector -> LLM`` (one module per stage)."""

from layerbridge.modeling.bridge import Bridge, BridgeOutput, LabelScores
from layerbridge.modeling.fusion import FUSIONS, build_fusion
from layerbridge.modeling.projector import PROJECTORS, build_projector

__all__ = [
    "FUSIONS",
    "PROJECTORS",
    "Bridge",
    "BridgeOutput",
    "LabelScores",
    "build_fusion",
    "build_projector",
]
