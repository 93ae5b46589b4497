"""Exception types.

Every error that a user can cause (bad names, bad data, bad checkpoints) is raised as a
:class:`LayerbridgeError` with a message that names the problem; the command line prints
that message on one line and exits non-zero instead of showing a traceback.
"""

from __future__ import annotations


class LayerbridgeError(Exception):
    """Base class for user-facing errors."""


class ConfigError(LayerbridgeError, ValueError):
    """A configuration value is unknown, missing or of the wrong type."""


class ModelError(LayerbridgeError):
    """A base model cannot be used as an encoder or LLM (or cannot be prepared)."""


class CheckpointError(LayerbridgeError):
    """A bridge or training checkpoint is missing, truncated, corrupt or mismatched."""


class DataError(LayerbridgeError, ValueError):
    """Input data is missing, malformed, or inconsistent with the task."""


class TrainingError(LayerbridgeError):
    """Training cannot go on: e.g. the loss or its gradients stopped being finite."""
