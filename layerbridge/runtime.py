"""Device, precision and process-wide settings: the one place that resolves them.

One vocabulary for numeric precision everywhere (configs, CLI, benchmark)::

    auto | fp32 | bf16 | fp16        (float32 / bfloat16 / float16 are accepted as aliases)

* the *weights* precision of the frozen base models (``BridgeConfig.dtype``):
  ``auto`` = bf16 on a GPU that supports it and on a CPU with native bf16 (AMX or
  AVX512-BF16), fp32 elsewhere — frozen weights held in the compute dtype, never re-cast;
* the *compute* precision of training and evaluation (``TrainConfig.precision``,
  ``EvalConfig.precision``): ``auto`` = bf16 autocast on a GPU (fp16 where bf16 is missing)
  and on a native-bf16 CPU, none (fp32) on other CPUs, where bf16 is emulated and slower
  (measured on a 2-core AVX2 EPYC, MARC training: 0.12 examples/s emulated against 7.2 native
  on the AVX512-BF16 EPYC — ~60x).

Trainable parameters and optimizer state stay fp32 in every case. ``LAYERBRIDGE_CPU_BF16=0``
(or ``1``) overrides the CPU detection — the test suite pins it to 0 so that its numbers do
not depend on the machine; the bf16 path has tests of its own.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import sys
from pathlib import Path
from typing import Any

import torch

from layerbridge.errors import ConfigError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
ALIASES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}
TORCH_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
#: a compute precision in accelerate's words (``mixed_precision``; recorded in run summaries)
ACCELERATE_NAMES = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}


def canonical_precision(name: str, what: str = "precision") -> str:
    """``name`` in the short vocabulary (aliases mapped); a ConfigError naming the choices otherwise."""
    name = ALIASES.get(name, name)
    if name not in PRECISIONS:
        raise ConfigError(f"unknown {what} {name!r}; choose one of: {', '.join(PRECISIONS)}")
    return name


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None`` -> the first GPU if there is one, else the CPU; a clear error for unusable devices."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as err:
        raise ConfigError(f"unknown device {device!r}: {err}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {device!r}: no CUDA GPU is available to this torch build")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"device {device!r}: only {torch.cuda.device_count()} GPU(s) are visible")
    elif dev.type not in ("cpu", "mps", "xpu"):
        raise ConfigError(f"unsupported device {device!r}; use cpu, cuda or cuda:N")
    return dev


def _cuda_bf16(device: torch.device) -> bool:
    return device.type == "cuda" and torch.cuda.is_bf16_supported()


def native_bf16_cpu() -> bool:
    """Whether this CPU computes bf16 matmuls natively (AMX-BF16 or AVX512-BF16), unless
    ``LAYERBRIDGE_CPU_BF16`` says otherwise (0 / 1)."""
    override = os.environ.get("LAYERBRIDGE_CPU_BF16", "").strip()
    if override in ("0", "1"):
        return override == "1"
    return bool({"amx_bf16", "avx512_bf16"} & set(cpu_flags()))


def _bf16_device(device: torch.device) -> bool:
    return _cuda_bf16(device) or (device.type == "cpu" and native_bf16_cpu())


def weights_dtype(precision: str, device: torch.device) -> torch.dtype:
    """dtype of the frozen base models: ``auto`` -> bfloat16 on a bf16 GPU or native-bf16 CPU,
    float32 elsewhere."""
    precision = canonical_precision(precision, "dtype")
    if precision == "auto":
        return torch.bfloat16 if _bf16_device(device) else torch.float32
    return TORCH_DTYPES[precision]


def attention_kernel(device: torch.device, dtype: torch.dtype) -> str | None:
    """The LLM's attention implementation: ``eager`` for bf16 weights on a CPU, else None
    (transformers' default, ``sdpa``). Measured (benchmarks/attention_kernel.py, SmolLM2
    forward + input-gradient backward at [8, 100]): on a 2-core EPYC with AVX512-BF16, bf16
    eager 1.27x faster than bf16 sdpa (whose CPU backward is slow in bf16; an AMX Xeon showed
    4x); in fp32 the two are within 4%."""
    return "eager" if device.type == "cpu" and dtype == torch.bfloat16 else None


def compute_precision(precision: str, device: torch.device) -> str:
    """Autocast precision: ``auto`` -> bf16 (fp16 without bf16) on CUDA, bf16 on a native-bf16
    CPU, fp32 elsewhere."""
    precision = canonical_precision(precision)
    if precision == "auto":
        if device.type == "cuda":
            return "bf16" if _cuda_bf16(device) else "fp16"
        return "bf16" if _bf16_device(device) else "fp32"
    return precision


#: what one extra forward pass costs, in LLM positions, when a batch is split by length
#: (:func:`layerbridge.data.batching.length_groups`). Measured on a 2-core EPYC with SmolLM2:
#: forward + input-gradient backward = ~165 ms + ~3 ms per position, so ~50 positions; on a
#: GPU a wider pass is nearly free, so a batch is split only to fit the position limit.
CPU_PASS_COST = 48.0
#: positions per pass on the CPU: wider passes got slower per position (cache-bound) and hold
#: ~1.3 MB of fp32 activations per position with SmolLM2 (batch 32 stays within ~4 GiB)
CPU_PASS_TOKENS = 1536


def pass_plan(device: torch.device, max_tokens: int | None, cost: float | None) -> tuple[int | None, float]:
    """(positions per forward pass or None for no limit, cost of one pass) for ``device``.

    ``None`` settings resolve by device (CPU: :data:`CPU_PASS_TOKENS`, :data:`CPU_PASS_COST`;
    GPU: no limit, never split for padding); a limit of 0 means no limit.
    """
    cpu = device.type == "cpu"
    if max_tokens is None:
        max_tokens = CPU_PASS_TOKENS if cpu else 0
    if cost is None:
        cost = CPU_PASS_COST if cpu else math.inf
    return (max_tokens or None), float(cost)


def autocast(device: torch.device, precision: str = "auto") -> contextlib.AbstractContextManager:
    """The autocast context of ``compute_precision`` (none for fp32)."""
    resolved = compute_precision(precision, device)
    if resolved == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=TORCH_DTYPES[resolved])


def precision_label(recorded: str | None) -> str:
    """A recorded precision (accelerate's ``no`` | ``bf16`` | ``fp16``) in the short vocabulary."""
    if recorded is None:
        return "?"
    return {v: k for k, v in ACCELERATE_NAMES.items()}.get(recorded, recorded)


def accelerate_mixed_precision(precision: str, device: torch.device | None = None) -> str:
    """``compute_precision`` in accelerate's words (``no`` | ``bf16`` | ``fp16``)."""
    device = device or resolve_device(None)
    return ACCELERATE_NAMES[compute_precision(precision, device)]


def quiet_transformers() -> None:
    """Silence transformers' warnings and download bars (layerbridge reports what matters)."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def cpu_name() -> str:
    """The CPU model name (from /proc/cpuinfo on Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    """The CPU's instruction-set flags that matter for matmul speed (AVX2/AVX-512/AMX/bf16)."""
    wanted = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile", "fma")
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                present = set(line.split(":", 1)[1].split())
                return [flag for flag in wanted if flag in present]
    except OSError:
        pass
    return []


def environment() -> dict[str, Any]:
    """Hardware and library versions, recorded with every study and benchmark result."""
    import transformers

    return {
        "cpu": cpu_name(),
        "cpu_flags": cpu_flags(),
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
