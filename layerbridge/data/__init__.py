"""Data plumbing shared by all tasks: containers, file readers, splits, hub access, prompts."""

from layerbridge.data.types import DataReport, Example, TaskData

__all__ = ["DataReport", "Example", "TaskData"]
