"""What the benchmark measures against: the device's peak FLOP/s, memory, and its description."""

from __future__ import annotations

import contextlib
import resource
import time
from pathlib import Path
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


def _status_kib(field: str) -> int | None:
    """A ``/proc/self/status`` field in KiB (Linux), or None."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def peak_memory(device: torch.device) -> float:
    """GiB: CUDA peak allocated since the last reset; on CPU the process's peak resident set
    since the last reset (Linux ``VmHWM``; elsewhere ``ru_maxrss``, which never resets and, in
    a child process, starts from its parent's size)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    hwm = _status_kib("VmHWM")
    if hwm is not None:
        return hwm / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def reset_peak(device: torch.device) -> None:
    """Start a new peak: CUDA allocator stats, or on Linux the process's ``VmHWM``
    (``echo 5 > /proc/self/clear_refs``)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def describe_device(device: torch.device) -> dict[str, Any]:
    """environment() (CPU model and flags, versions) plus the device's type and name."""
    info = environment() | {"type": device.type}
    info["name"] = torch.cuda.get_device_name(device) if device.type == "cuda" else info["cpu"]
    return info
