"""Where one step's time goes: ``torch.profiler`` over a single call, summarised.

``layerbridge bench --profile`` profiles one training step of each design after the timed
ones. The summary says whether a step is bound by arithmetic or by the host: with ``n``
operator calls and ``k`` kernel launches per step, a step whose host time ``t_cpu`` far
exceeds its device time ``t_dev`` (the sum of the kernels' own time) leaves the accelerator
idle for ``1 - t_dev / t_wall`` of the step, whatever the batch size.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

from layerbridge.bench.hardware import sync

#: rows of the operator table kept in the report
TOP_OPS = 15


def _self_device_us(event) -> float:
    """An averaged event's own accelerator time in µs (the attribute was renamed in torch 2.x)."""
    for name in ("self_device_time_total", "self_cuda_time_total"):
        if hasattr(event, name):
            return float(getattr(event, name))
    return 0.0


def profile_call(fn: Callable[[], None], device: torch.device) -> dict[str, Any]:
    """Run ``fn`` once under the profiler; return counts, times (ms) and the top operators.

    ``ops``: ATen operator calls (nested ones included); ``launches``: kernel launches seen by
    the CUDA runtime; ``wall_ms``: the call, synchronised; ``device_ms``: the sum of every
    kernel's time on the accelerator (0 on a CPU); ``top``: the ``TOP_OPS`` ATen operators with
    the most own time on the device (on a CPU, on the host) — name, calls, own host ms, and the
    device ms of the kernels they launched themselves.
    """
    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    sync(device)
    with profile(activities=activities) as prof:
        start = time.perf_counter()
        fn()
        sync(device)
        wall = time.perf_counter() - start
    events = prof.key_averages()
    kernels = [e for e in events if e.device_type == DeviceType.CUDA]
    rows = [
        {
            "op": e.key,
            "calls": e.count,
            "self_cpu_ms": round(e.self_cpu_time_total / 1000, 3),
            "self_device_ms": round(_self_device_us(e) / 1000, 3),
        }
        for e in events
        if e.key.startswith("aten::")
    ]
    key = "self_device_ms" if device.type == "cuda" else "self_cpu_ms"
    rows.sort(key=lambda r: r[key], reverse=True)
    return {
        "ops": sum(e.count for e in events if e.key.startswith("aten::")),
        "launches": sum(e.count for e in events if e.key.startswith(("cudaLaunch", "cuLaunch"))),
        "wall_ms": round(1000 * wall, 2),
        "device_ms": round(sum(_self_device_us(e) for e in kernels) / 1000, 2),
        "top": rows[:TOP_OPS],
    }
