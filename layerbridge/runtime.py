"""Device and precision helpers shared by training and evaluation."""

from __future__ import annotations

import contextlib

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
