"""What the benchmark measures against: the device's peak FLOP/s, memory, and its description."""

from __future__ import annotations

import resource
import time
from typing import Any

import torch

from layerbridge.runtime import environment

#: Dense bf16 tensor-core peaks (FLOP/s) of common accelerators, for MFU on GPU.
GPU_PEAK_BF16 = {
    "H100 SXM": 989.4e12,
    "H100 PCIe": 756.0e12,
    "H100": 989.4e12,
    "H200": 989.4e12,
    "A100": 312.0e12,
    "L40S": 362.0e12,
    "A10G": 70.0e12,
}


def gpu_peak(name: str) -> float | None:
    """The published dense bf16 peak of the GPU called ``name`` (None if unknown)."""
    for key in sorted(GPU_PEAK_BF16, key=len, reverse=True):
        if key.lower() in name.lower():
            return GPU_PEAK_BF16[key]
    return None


def cpu_matmul_peak(dtype: torch.dtype = torch.float32, size: int = 2048, repeats: int = 8) -> float:
    """Measured dense matmul throughput (FLOP/s) of this CPU in ``dtype``: the MFU denominator on CPU."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    torch.mm(a, b)
    start = time.perf_counter()
    for _ in range(repeats):
        torch.mm(a, b)
    return 2 * size**3 * repeats / (time.perf_counter() - start)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory(device: torch.device) -> float:
    """GiB: CUDA peak allocated since the last reset; on CPU the process's peak RSS so far."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def describe_device(device: torch.device) -> dict[str, Any]:
    """environment() (CPU model and flags, versions) plus the device's type and name."""
    info = environment() | {"type": device.type}
    info["name"] = torch.cuda.get_device_name(device) if device.type == "cuda" else info["cpu"]
    return info
