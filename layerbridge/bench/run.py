"""``layerbridge bench``: training and evaluation throughput, ours vs the naive design, same process.

For each model shape and batch size it measures, after warm-up steps,

* training step time, examples/s, LLM tokens/s, peak memory and MFU of the optimised step
  (pre-tokenised, length-bucketed batches, logits only at target positions, Transformer
  Softmax on real tokens only, autocast) and of the naive step (:mod:`layerbridge.bench.naive`)
  on the same examples, and their ratio;
* label-scoring throughput (one cached prefix pass shared by all labels vs one full pass per
  label) and greedy-generation throughput.

Prompts are real XNLI English training prompts (their real token lengths). MFU is model
FLOPs (:mod:`layerbridge.bench.flops`) / time / peak; the peak is the accelerator's dense
bf16 peak on GPU, and a measured fp32 matmul peak on CPU.
"""

from __future__ import annotations

import random
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from layerbridge.bench import flops
from layerbridge.bench.naive import naive_label_scores, naive_loss
from layerbridge.config import BridgeConfig, EvalConfig, TaskConfig
from layerbridge.data.batching import bucketed_batches, pad_batch
from layerbridge.data.prompts import encode_examples
from layerbridge.evaluation.predict import predict_examples
from layerbridge.modeling.bridge import Bridge
from layerbridge.modeling.builders import build_bridge, load_base_models, resolve_device, resolve_dtype
from layerbridge.runtime import autocast, compile_llm, environment
from layerbridge.tasks import get_task


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


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_memory(device: torch.device) -> float:
    """GiB: CUDA peak allocated since the last reset; on CPU the process's peak RSS so far."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def cpu_matmul_peak(dtype: torch.dtype = torch.float32, size: int = 2048, repeats: int = 8) -> float:
    """Measured dense matmul throughput (FLOP/s) of this CPU: the MFU denominator on CPU."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    torch.mm(a, b)
    start = time.perf_counter()
    for _ in range(repeats):
        torch.mm(a, b)
    return 2 * size**3 * repeats / (time.perf_counter() - start)


def describe_device(device: torch.device) -> dict[str, Any]:
    info = environment() | {"type": device.type}
    info["name"] = torch.cuda.get_device_name(device) if device.type == "cuda" else info["cpu"]
    return info


def _time(fn: Callable[[int], None], warmup: int, steps: int, device: torch.device) -> list[float]:
    for i in range(warmup):
        fn(i)
    _sync(device)
    times = []
    for i in range(steps):
        start = time.perf_counter()
        fn(warmup + i)
        _sync(device)
        times.append(time.perf_counter() - start)
    return times


def _train_case(
    bridge: Bridge, data: dict, batch: int, cfg: BenchConfig, peak: float | None
) -> dict[str, Any]:
    device = bridge.device
    params = [p for p in bridge.parameters() if p.requires_grad]
    lengths = [len(x) for x in data["ids"]]
    n_steps = cfg.warmup + cfg.steps
    rng = random.Random(cfg.seed)
    bucketed = bucketed_batches(lengths, batch, seed=cfg.seed, bucket_size=50, drop_last=True)[:n_steps]
    random_batches = [rng.sample(range(len(lengths)), batch) for _ in range(n_steps)]
    targets = data["targets"]
    result: dict[str, Any] = {"batch": batch}

    def record(name: str, times: list[float], batches: list[list[int]]) -> None:
        used = batches[cfg.warmup :]
        examples = batch * len(used)
        tokens = sum(lengths[i] + 2 + len(targets[data["labels"][i]]) - 1 for b in used for i in b)
        seconds = sum(times)
        work = sum(
            flops.training_step_flops(
                bridge, [lengths[i] for i in b], [len(targets[data["labels"][i]]) for i in b]
            )
            for b in used
        )
        result[name] = {
            "step_ms": round(1000 * seconds / len(times), 2),
            "examples_per_s": round(examples / seconds, 2),
            "tokens_per_s": round(tokens / seconds, 1),
            "tflops": round(work / seconds / 1e12, 3),
            "mfu": round(work / seconds / peak, 4) if peak else None,
        }

    optimizer = torch.optim.AdamW(params, lr=1e-5)
    bridge.train()

    def optimised(i: int) -> None:
        ids, mask = pad_batch([data["ids"][j] for j in bucketed[i]], bridge.encoder_pad_id)
        tids, tmask = pad_batch([targets[data["labels"][j]] for j in bucketed[i]], bridge.eos_id)
        with autocast(device, cfg.precision):
            loss = bridge(ids.to(device), mask.to(device), tids.to(device), tmask.to(device)).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    _reset_peak(device)
    record("optimised", _time(optimised, cfg.warmup, cfg.steps, device), bucketed)
    result["optimised"]["peak_memory_gib"] = round(_peak_memory(device), 3)

    if cfg.naive:

        def naive(i: int) -> None:
            rows = random_batches[i]
            with autocast(device, cfg.precision):
                loss = naive_loss(
                    bridge, [data["prompts"][j] for j in rows], [data["label_strings"][j] for j in rows]
                )
            loss.mean().backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        _reset_peak(device)
        record("naive", _time(naive, cfg.warmup, cfg.steps, device), random_batches)
        result["naive"]["peak_memory_gib"] = round(_peak_memory(device), 3)
        result["speedup"] = round(result["naive"]["step_ms"] / result["optimised"]["step_ms"], 2)
    bridge.eval()
    return result


def _eval_case(bridge: Bridge, task, data: dict, cfg: BenchConfig) -> dict[str, Any]:
    device = bridge.device
    examples = data["examples"][: cfg.eval_examples]
    config = EvalConfig(batch_size=cfg.eval_batch_size, precision=cfg.precision)
    predict_examples(
        bridge, task, examples[: cfg.eval_batch_size], task.label_strings, config, progress=False
    )
    _sync(device)
    start = time.perf_counter()
    predict_examples(bridge, task, examples, task.label_strings, config, progress=False)
    _sync(device)
    scoring = len(examples) / (time.perf_counter() - start)
    out: dict[str, Any] = {"label_scoring_examples_per_s": round(scoring, 2)}
    if cfg.naive:
        prompts = [task.render(ex) for ex in examples]
        start = time.perf_counter()
        with autocast(device, cfg.precision):
            for i in range(0, len(prompts), cfg.eval_batch_size):
                naive_label_scores(bridge, prompts[i : i + cfg.eval_batch_size], task.label_strings)
        _sync(device)
        naive_rate = len(prompts) / (time.perf_counter() - start)
        out["naive_label_scoring_examples_per_s"] = round(naive_rate, 2)
        out["label_scoring_speedup"] = round(scoring / naive_rate, 2)
    gen = examples[: cfg.generate_examples]
    gen_config = EvalConfig(mode="generate", batch_size=cfg.eval_batch_size, precision=cfg.precision)
    start = time.perf_counter()
    predict_examples(bridge, task, gen, task.label_strings, gen_config, progress=False)
    _sync(device)
    out["generation_examples_per_s"] = round(len(gen) / (time.perf_counter() - start), 2)
    return out


def run_benchmark(cfg: BenchConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    task = get_task(TaskConfig(name="xnli", data_dir=cfg.data_dir))
    examples = task.load("train", limit=cfg.pool, seed=cfg.seed).examples
    peak = None
    if device.type == "cuda":
        peak = flops.gpu_peak(torch.cuda.get_device_name(device))
        peak_source = "published dense bf16 peak"
    else:
        peak = cpu_matmul_peak(torch.float32 if cfg.precision in ("auto", "fp32") else torch.bfloat16)
        peak_source = "measured matmul peak of this CPU"
    report: dict[str, Any] = {
        "device": describe_device(device),
        "precision": cfg.precision,
        "compiled": cfg.compile,
        "peak_flops": peak,
        "peak_source": peak_source,
        "config": cfg.__dict__,
        "cases": [],
    }
    builtin_base = None
    for shape in cfg.shapes:
        if shape == "builtin":
            bridge_config = BridgeConfig(encoder="e5-small", llm="smollm2-135m", fusion=cfg.fusion)
            builtin_base = load_base_models(bridge_config, device)
            base = builtin_base
        elif shape == "paper":
            from layerbridge.bench.shapes import paper_scale_base

            bridge_config = BridgeConfig(encoder="e5-small", llm="smollm2-135m", fusion=cfg.fusion)
            tokenizers = builtin_base or load_base_models(bridge_config, "cpu")
            base = paper_scale_base(
                tokenizers.encoder_tokenizer,
                tokenizers.llm_tokenizer,
                resolve_dtype(bridge_config.dtype, device),
                device,
            )
            bridge_config = bridge_config.replace(
                encoder="mt5-large-shaped (random)", llm="llama-3.2-1b-shaped (random)"
            )
        else:
            raise ValueError(f"unknown shape {shape!r}; choose builtin or paper")
        torch.manual_seed(cfg.seed)
        bridge = build_bridge(bridge_config, device=device, base=base)
        if cfg.compile:
            compile_llm(bridge.llm)  # compiled during the warm-up steps
        data = {
            "examples": examples,
            "prompts": [task.render(ex) for ex in examples],
            "label_strings": [task.label_strings[ex.label] for ex in examples],
            "labels": [ex.label for ex in examples],
            "ids": encode_examples(task, examples, bridge.encoder_tokenizer, bridge.config.max_length),
            "targets": [bridge.target_token_ids(s) for s in task.label_strings],
        }
        case: dict[str, Any] = {
            "shape": shape,
            "encoder": bridge_config.encoder,
            "llm": bridge_config.llm,
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
        del bridge, base
    return report


def markdown(report: dict[str, Any]) -> str:
    dev = report["device"]
    lines = [
        f"**{dev['name']}** ({dev['type']}, {dev['torch_threads']} threads), torch {dev['torch']}, "
        f"transformers {dev['transformers']}, precision `{report['precision']}`, "
        f"{'torch.compile' if report.get('compiled') else 'eager'}; MFU peak: "
        f"{report['peak_flops'] / 1e12:.2f} TFLOP/s ({report['peak_source']}).",
        "",
        "| shape | batch | ours ms/step | ours ex/s | ours tok/s | ours MFU | naive ms/step | naive ex/s "
        "| speed-up | peak mem ours / naive (GiB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for case in report["cases"]:
        for t in case["train"]:
            o, n = t["optimised"], t.get("naive")
            mfu = f"{100 * o['mfu']:.1f}%" if o["mfu"] is not None else "–"
            naive_cols = (
                (
                    f"{n['step_ms']:.0f} | {n['examples_per_s']:.1f} | **{t['speedup']:.2f}x** | "
                    f"{o['peak_memory_gib']:.2f} / {n['peak_memory_gib']:.2f}"
                )
                if n
                else "– | – | – | –"
            )
            lines.append(
                f"| {case['shape']} | {t['batch']} | {o['step_ms']:.0f} | {o['examples_per_s']:.1f} | "
                f"{o['tokens_per_s']:.0f} | {mfu} | {naive_cols} |"
            )
    lines += [
        "",
        "| shape | label scoring ex/s (ours) | naive ex/s | speed-up | generation ex/s |",
        "|---|---:|---:|---:|---:|",
    ]
    for case in report["cases"]:
        e = case["eval"]
        lines.append(
            f"| {case['shape']} | {e['label_scoring_examples_per_s']:.1f} | "
            f"{e.get('naive_label_scoring_examples_per_s', '–')} | {e.get('label_scoring_speedup', '–')}x | "
            f"{e['generation_examples_per_s']:.1f} |"
        )
    return "\n".join(lines) + "\n"
