"""``layerbridge bench``: training and evaluation throughput, ours vs the naive design, same process.

For each model shape and batch size it measures, after warm-up steps,

* training step time, examples/s, LLM tokens/s, peak memory and MFU of the training recipe's
  own step (:meth:`TrainRecipe.train_step`: length-grouped passes of ``loss_step`` + backward,
  clipping, AdamW) and of the naive step (:mod:`layerbridge.bench.naive`, then the same
  optimizer step), on the same random (unbucketed) batches, and their ratio;
* label-scoring throughput (one cached prefix pass shared by all labels vs one full pass per
  label) and greedy-generation throughput.

Prompts are real XNLI English training prompts (their real token lengths). MFU is model
FLOPs (:mod:`layerbridge.modeling.flops`) / time / peak; the peak is the accelerator's dense
bf16 peak on GPU, and this CPU's measured matmul peak in the precision the step runs on CPU.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from layerbridge.bench.hardware import (
    cpu_matmul_peak,
    describe_device,
    gpu_peak,
    peak_memory,
    reset_peak,
    sync,
)
from layerbridge.bench.naive import naive_label_scores, naive_loss
from layerbridge.bench.profile import profile_call
from layerbridge.config import BridgeConfig, EvalConfig, RunConfig, TaskConfig, TrainConfig
from layerbridge.data.encoded import Collator, EncodedExamples
from layerbridge.evaluation.predict import predict_examples
from layerbridge.modeling import flops
from layerbridge.modeling.bridge import Bridge
from layerbridge.modeling.builders import BaseModels, build_bridge, load_base_models
from layerbridge.runtime import (
    TORCH_DTYPES,
    autocast,
    compile_llm,
    compute_precision,
    resolve_device,
    weights_dtype,
)
from layerbridge.tasks import get_task
from layerbridge.training.recipe import TrainRecipe


@dataclass
class BenchConfig:
    shapes: list[str] = field(default_factory=lambda: ["builtin"])  # builtin | paper
    batch_sizes: list[int] = field(default_factory=lambda: [8])
    steps: int = 10
    warmup: int = 3
    fusion: str = "transformer-softmax"
    device: str | None = None
    precision: str = "auto"
    naive: bool = True
    eval_examples: int = 64
    eval_batch_size: int = 16
    generate_examples: int = 16
    pool: int = 2048
    data_dir: str | None = None
    seed: int = 0
    compile: bool = False
    profile: bool = False  # also profile one step of each design (layerbridge.bench.profile)


@dataclass
class BenchData:
    """The benchmark's examples through the one data path, plus the naive design's raw text."""

    examples: list
    encoded: EncodedExamples
    prompts: list[str]  # rendered prompt text (the naive design tokenises it every step)
    label_strings: list[str]  # each example's target string


def _time(fn: Callable[[int], None], warmup: int, steps: int, device: torch.device) -> list[float]:
    for i in range(warmup):
        fn(i)
    sync(device)
    times = []
    for i in range(steps):
        start = time.perf_counter()
        fn(warmup + i)
        sync(device)
        times.append(time.perf_counter() - start)
    return times


def _measure(
    bridge: Bridge, data: BenchData, times: list[float], batches: list[list[int]], peak: float | None
) -> dict[str, Any]:
    """Step time, throughput and MFU of the timed ``batches``."""
    enc = data.encoded
    seconds, used = sum(times), batches[-len(times) :]
    examples = sum(len(b) for b in used)
    tokens = sum(enc.llm_tokens(b, bridge.bos_id is not None) for b in used)
    work = sum(
        flops.training_step_flops(
            bridge, [len(enc.prompt_ids[i]) for i in b], [len(enc.target_ids[enc.labels[i]]) for i in b]
        )
        for b in used
    )
    ordered = sorted(times)
    return {
        "step_ms": round(1000 * seconds / len(times), 2),
        "step_ms_median": round(1000 * ordered[len(ordered) // 2], 2),
        "step_ms_range": [round(1000 * ordered[0], 2), round(1000 * ordered[-1], 2)],
        "examples_per_s": round(examples / seconds, 2),
        "tokens_per_s": round(tokens / seconds, 1),
        "tflops": round(work / seconds / 1e12, 3),
        "mfu": round(work / seconds / peak, 4) if peak else None,
    }


def _train_case(
    bridge: Bridge, data: BenchData, batch: int, cfg: BenchConfig, peak: float | None
) -> dict[str, Any]:
    """Time the recipe's train_step (and the naive step) at one batch size."""
    device, n_steps = bridge.device, cfg.warmup + cfg.steps
    recipe = TrainRecipe(RunConfig(bridge=bridge.config, train=TrainConfig(precision=cfg.precision)))
    recipe.attach(bridge, total_steps=n_steps)
    rng, n = random.Random(cfg.seed), len(data.encoded)
    batches = [rng.sample(range(n), batch) for _ in range(n_steps)]  # the same batches for both designs
    collate = Collator(data.encoded)
    bridge.train()
    reset_peak(device)
    times = _time(lambda i: recipe.train_step([collate(batches[i])]), cfg.warmup, cfg.steps, device)
    result: dict[str, Any] = {"batch": batch, "optimised": _measure(bridge, data, times, batches, peak)}
    result["optimised"]["peak_memory_gib"] = round(peak_memory(device), 3)
    if cfg.profile:
        ours = result["optimised"]
        ours["profile"] = profile_call(lambda: recipe.train_step([collate(batches[-1])]), device)
    if cfg.naive:

        def naive(i: int) -> None:
            rows = batches[i]
            with autocast(device, cfg.precision):
                loss = naive_loss(
                    bridge, [data.prompts[j] for j in rows], [data.label_strings[j] for j in rows]
                )
            loss.mean().backward()
            recipe.optimizer_step()

        reset_peak(device)
        times = _time(naive, cfg.warmup, cfg.steps, device)
        result["naive"] = _measure(bridge, data, times, batches, peak)
        result["naive"]["peak_memory_gib"] = round(peak_memory(device), 3)
        if cfg.profile:
            result["naive"]["profile"] = profile_call(lambda: naive(n_steps - 1), device)
        result["speedup"] = round(result["naive"]["step_ms"] / result["optimised"]["step_ms"], 2)
    bridge.eval()
    return result


def _rate(fn: Callable[[], None], count: int, device: torch.device) -> float:
    """Items per second of one call of ``fn`` that handles ``count`` items."""
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return count / (time.perf_counter() - start)


def _eval_case(bridge: Bridge, task, data: BenchData, cfg: BenchConfig) -> dict[str, Any]:
    """Label-scoring (ours vs naive) and generation throughput."""
    device, examples = bridge.device, data.examples[: cfg.eval_examples]
    config = EvalConfig(batch_size=cfg.eval_batch_size, precision=cfg.precision)

    def predict(items, conf) -> None:
        predict_examples(bridge, task.template, items, task.label_strings, conf, progress=False)

    predict(examples[: cfg.eval_batch_size], config)  # warm-up
    scoring = _rate(lambda: predict(examples, config), len(examples), device)
    out: dict[str, Any] = {"label_scoring_examples_per_s": round(scoring, 2)}
    if cfg.naive:
        prompts, size = data.prompts[: len(examples)], cfg.eval_batch_size

        def naive() -> None:
            with autocast(device, cfg.precision):
                for i in range(0, len(prompts), size):
                    naive_label_scores(bridge, prompts[i : i + size], task.label_strings)

        naive_rate = _rate(naive, len(prompts), device)
        out["naive_label_scoring_examples_per_s"] = round(naive_rate, 2)
        out["label_scoring_speedup"] = round(scoring / naive_rate, 2)
    gen = examples[: cfg.generate_examples]
    gen_config = EvalConfig(mode="generate", batch_size=cfg.eval_batch_size, precision=cfg.precision)
    out["generation_examples_per_s"] = round(_rate(lambda: predict(gen, gen_config), len(gen), device), 2)
    return out


def _peak(device: torch.device, precision: str) -> tuple[float | None, str]:
    """The MFU denominator and where it comes from."""
    if device.type == "cuda":
        return gpu_peak(torch.cuda.get_device_name(device)), "published dense bf16 peak"
    resolved = compute_precision(precision, device)
    return cpu_matmul_peak(TORCH_DTYPES[resolved]), f"measured {resolved} matmul peak of this CPU"


def _shape_bridge(
    shape: str, cfg: BenchConfig, device: torch.device, builtin: BaseModels | None
) -> tuple[Bridge, BaseModels]:
    """The bridge of one model shape (built-in pair, or random paper-scale shapes)."""
    config = BridgeConfig(encoder="e5-small", llm="smollm2-135m", fusion=cfg.fusion)
    if shape == "builtin":
        base = builtin or load_base_models(config, device)
        builtin = base
    elif shape == "paper":
        from layerbridge.bench.shapes import paper_scale_base

        tokenizers = builtin or load_base_models(config, "cpu")
        base = paper_scale_base(
            tokenizers.encoder_tokenizer,
            tokenizers.llm_tokenizer,
            weights_dtype(config.dtype, device),
            device,
        )
        config = config.replace(encoder="mt5-large-shaped (random)", llm="llama-3.2-1b-shaped (random)")
    else:
        raise ValueError(f"unknown shape {shape!r}; choose builtin or paper")
    torch.manual_seed(cfg.seed)
    bridge = build_bridge(config, device=device, base=base)
    if cfg.compile:
        compile_llm(bridge.llm)  # compiled during the warm-up steps
    return bridge, builtin


def run_benchmark(cfg: BenchConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Every (shape, batch size) training case and each shape's evaluation case."""
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    task = get_task(TaskConfig(name="xnli", data_dir=cfg.data_dir))
    examples = task.load("train", limit=cfg.pool, seed=cfg.seed).examples
    peak, peak_source = _peak(device, cfg.precision)
    report: dict[str, Any] = {
        "device": describe_device(device),
        "precision": cfg.precision,
        "compute_precision": compute_precision(cfg.precision, device),
        "compiled": cfg.compile,
        "peak_flops": peak,
        "peak_source": peak_source,
        "config": cfg.__dict__,
        "cases": [],
    }
    builtin = None
    for shape in cfg.shapes:
        bridge, builtin = _shape_bridge(shape, cfg, device, builtin)
        data = BenchData(
            examples=examples,
            encoded=EncodedExamples.build(task.template, examples, task.label_strings, bridge),
            prompts=[task.render(ex) for ex in examples],
            label_strings=[task.label_strings[ex.label] for ex in examples],
        )
        case: dict[str, Any] = {
            "shape": shape,
            "encoder": bridge.config.encoder,
            "llm": bridge.config.llm,
            "fusion": cfg.fusion,
            "parameters": bridge.parameter_counts(),
            "train": [],
        }
        for batch in cfg.batch_sizes:
            log(f"{shape}: training, batch {batch}")
            case["train"].append(_train_case(bridge, data, batch, cfg, peak))
        log(f"{shape}: evaluation")
        case["eval"] = _eval_case(bridge, task, data, cfg)
        report["cases"].append(case)
        del bridge
    return report
