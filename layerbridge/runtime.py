"""Device and precision helpers shared by training and evaluation."""

from __future__ import annotations

import contextlib
import os
import platform
import sys
from pathlib import Path
from typing import Any

import torch

from layerbridge.errors import ConfigError


def autocast(device: torch.device, precision: str = "auto") -> contextlib.AbstractContextManager:
    """Autocast context: ``auto`` = bf16 on CUDA (fp16 where bf16 is missing), none on CPU."""
    if precision == "auto":
        if device.type != "cuda":
            return contextlib.nullcontext()
        precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision not in ("bf16", "fp16"):
        raise ConfigError(f"unknown precision {precision!r}")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def cpu_name() -> str:
    """The CPU model name (from /proc/cpuinfo on Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict[str, Any]:
    """Hardware and library versions, recorded with every study and benchmark result."""
    import transformers

    return {
        "cpu": cpu_name(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "platform": platform.platform(),
    }


def compile_llm(llm: torch.nn.Module) -> None:
    """``torch.compile`` the LLM's decoder stack in place (dynamic shapes, parameter names kept).

    The bridge's own modules stay eager: they are small, and the decoder holds nearly all the
    step's work. Compilation happens on the first forward and backward passes.
    """
    get_decoder = getattr(llm, "get_decoder", None)
    decoder = get_decoder() if callable(get_decoder) else None
    (decoder if isinstance(decoder, torch.nn.Module) else llm).compile(dynamic=True)
