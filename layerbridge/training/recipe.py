"""The training recipe: English-only prefix-LM training of a bridge, readable top to bottom.

    config -> task data (English train / dev) -> bridge -> AdamW + cosine warm-up
           -> loop: length-bucketed batches, autocast, grad accumulation, clipping
           -> every eval_every steps: English dev accuracy (label scoring), keep the best
           -> every save_every steps: resumable checkpoint (atomic)

Multi-GPU (or multi-process CPU with gloo) needs no code change: ``accelerate launch``
starts one process per device, ``Accelerator`` wraps the bridge in DDP (only the bridge's
parameters are synchronised), and each process takes every ``world``-th batch.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs, set_seed
from tqdm.auto import tqdm

from layerbridge.checkpoint import load_bridge_weights, read_bridge_tensors, save_bridge, write_bridge_files
from layerbridge.config import EvalConfig, RunConfig
from layerbridge.data.prompts import encode_examples
from layerbridge.data.types import TaskData
from layerbridge.errors import CheckpointError, ConfigError
from layerbridge.evaluation import metrics
from layerbridge.evaluation.predict import predict_examples
from layerbridge.io import recover_atomic_leftovers, write_json
from layerbridge.modeling.bridge import Bridge
from layerbridge.modeling.builders import BaseModels, build_bridge, load_base_models
from layerbridge.runtime import compile_llm
from layerbridge.tasks import Task, get_task
from layerbridge.training import state as ckpt
from layerbridge.training.data import EncodedExamples, epoch_batches, make_loader
from layerbridge.training.logger import RunLogger

#: TrainConfig fields that may change when a run is resumed (they do not affect the result).
RESUMABLE_CHANGES = {
    "output_dir",  # the run may be moved, or its path spelled differently
    "save_every",
    "keep_checkpoints",
    "log_every",
    "num_workers",
    "tensorboard",
    "eval_batch_size",
}


def _warn(message: str) -> None:
    import logging

    logging.getLogger("layerbridge.training").warning(message)


@dataclass
class TrainResult:
    bridge: Bridge  # with the best dev weights loaded
    output_dir: Path
    best_dir: Path
    summary: dict[str, Any]


def mixed_precision(precision: str) -> str:
    """TrainConfig.precision -> accelerate's ``mixed_precision``."""
    if precision == "auto":
        if not torch.cuda.is_available():
            return "no"
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}[precision]


def prepare_data(task: Task, config: RunConfig) -> tuple[TaskData, TaskData]:
    """English train (stratified subsample, minus texts that occur in English dev/test) and dev."""
    tc = config.train
    train = task.load("train", limit=tc.max_train_examples, seed=tc.data_seed)
    dev = task.load("dev", task.train_language, limit=tc.dev_limit, seed=tc.data_seed)
    held_out = {ex.text_key() for ex in task.load("dev", task.train_language).examples}
    if task.train_language in task.split_languages("test"):
        held_out |= {ex.text_key() for ex in task.load("test", task.train_language).examples}
    kept = [ex for ex in train.examples if ex.text_key() not in held_out]
    dropped = len(train.examples) - len(kept)
    if dropped:
        train.report.dropped_overlap = dropped
        train.report.warn(
            f"{task.name}: dropped {dropped} training example(s) whose text is in English dev/test"
        )
        train.examples = kept
    return train, dev


def encode_task_data(bridge: Bridge, task: Task, data: TaskData) -> EncodedExamples:
    prompts = encode_examples(task, data.examples, bridge.encoder_tokenizer, bridge.config.max_length)
    targets = [bridge.target_token_ids(label) for label in task.label_strings]
    return EncodedExamples(prompts, data.labels, targets, bridge.encoder_pad_id, bridge.eos_id)


def dev_accuracy(bridge: Bridge, task: Task, dev: TaskData, config: RunConfig) -> dict[str, float]:
    """English dev accuracy / macro-F1 by label scoring (the model-selection metric)."""
    tc = config.train
    eval_config = EvalConfig(split="dev", batch_size=tc.eval_batch_size, precision=tc.precision)
    preds = predict_examples(bridge, task, dev.examples, task.label_strings, eval_config, progress=False)
    gold = dev.labels
    return {
        "dev_accuracy": metrics.accuracy(gold, preds.pred),
        "dev_macro_f1": metrics.macro_f1(gold, preds.pred, task.num_classes),
    }


def _check_resume_config(saved: dict[str, Any], config: RunConfig) -> None:
    now = config.to_dict()
    for section in ("bridge", "task", "train"):
        for key, value in saved.get(section, {}).items():
            if section == "train" and key in RESUMABLE_CHANGES:
                continue
            current = now[section].get(key)
            if key in ("spec", "data_dir") and current and value:
                current, value = str(Path(current).resolve()), str(Path(value).resolve())
            if json.dumps(current, sort_keys=True) != json.dumps(value, sort_keys=True):
                raise ConfigError(
                    f"cannot resume: {section}.{key} is {current!r} now but {value!r} in the saved run; "
                    "use the same config (or start a new output_dir)"
                )


#: what a run folder holds; --overwrite removes a folder only if it is recognisably a run
RUN_MARKERS = ("config.yaml", "log.jsonl")


def is_run_dir(out: Path) -> bool:
    """Whether ``out`` is a layerbridge training run (config + log, or a training checkpoint)."""
    return all((out / name).is_file() for name in RUN_MARKERS) or bool(ckpt.checkpoint_dirs(out))


def check_output_dir(out: Path, resume: bool, overwrite: bool) -> None:
    """Validate the output folder against --resume / --overwrite; changes nothing."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output folder {out} is a file")
    has_run = out.is_dir() and is_run_dir(out)
    if out.is_dir() and any(out.iterdir()) and not has_run:
        raise ConfigError(
            f"{out} is not empty and is not a layerbridge run; refusing to "
            + ("delete" if overwrite else "write into")
            + " it (choose another --output-dir)"
        )
    if has_run and not resume and not overwrite:
        raise ConfigError(
            f"{out} already holds a run; pass --resume to continue it or --overwrite to replace it"
        )
    parent = next((p for p in (out, *out.parents) if p.exists()), Path("."))
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write to {parent} (permission denied)")


def _prepare_output_dir(out: Path, resume: bool, overwrite: bool, accelerator: Accelerator) -> None:
    """After every input was validated: replace an old run (--overwrite), clear killed-run leftovers."""
    if accelerator.is_main_process:
        if overwrite and not resume and out.is_dir() and is_run_dir(out):
            shutil.rmtree(out)
        out.mkdir(parents=True, exist_ok=True)
        recover_atomic_leftovers(out)  # a kill while `best/` or `final/` was being replaced
        if (out / "checkpoints").is_dir():
            for stale in (out / "checkpoints").glob(".step-*"):  # a kill while checkpointing
                shutil.rmtree(stale, ignore_errors=True)
    accelerator.wait_for_everyone()


def _restore(folder: Path, bridge, optimizer, scheduler, config: RunConfig, rank: int) -> ckpt.LoopState:
    """Load a training checkpoint into bridge / optimizer / scheduler / RNG; returns the loop state.

    Every file is read and verified before anything is applied, so a corrupt checkpoint
    changes nothing.
    """
    loop, extra = ckpt.read_loop_state(folder)
    _check_resume_config(extra.get("config", {}), config)
    tensors = read_bridge_tensors(folder)
    optimizer_state = ckpt.load_state_files(folder, "optimizer")
    scheduler_state = ckpt.load_state_files(folder, "scheduler")
    rng = ckpt.load_state_files(folder, f"rng-rank{rank}")
    load_bridge_weights(bridge, tensors, str(folder))
    optimizer.load_state_dict(optimizer_state)
    scheduler.load_state_dict(scheduler_state)
    ckpt.set_rng_state(rng)
    return loop


def resume_latest(
    out: Path, bridge, optimizer, scheduler, config: RunConfig, rank: int, log
) -> ckpt.LoopState:
    """Resume from the newest intact checkpoint, falling back to older ones if it is corrupt."""
    folders = ckpt.checkpoint_dirs(out)
    problems = []
    for folder in reversed(folders):
        try:
            return _restore(folder, bridge, optimizer, scheduler, config, rank)
        except CheckpointError as err:
            problems.append(str(err))
            log(f"skipping checkpoint {folder.name}: {err}")
    if folders:
        raise CheckpointError(f"cannot resume {out}: no intact checkpoint ({problems[0]})")
    return ckpt.LoopState()


def train(
    config: RunConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    base: BaseModels | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train a bridge for ``config.task`` on English data; returns it with its best dev weights."""
    tc = config.train
    out = Path(tc.output_dir)
    ddp = DistributedDataParallelKwargs(broadcast_buffers=False)
    # Several processes without CUDA (e.g. `accelerate launch --multi_gpu --num_processes 2` on a CPU
    # machine) must ask accelerate for multi-CPU (gloo) explicitly.
    multi_cpu = not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1
    accelerator = Accelerator(
        mixed_precision=mixed_precision(tc.precision), kwargs_handlers=[ddp], cpu=multi_cpu
    )
    rank, world, main = accelerator.process_index, accelerator.num_processes, accelerator.is_main_process
    task = get_task(config.task)
    check_output_dir(out, resume, overwrite)
    set_seed(tc.seed)

    # ---- data and model (every input is validated here, before anything is written)
    train_data, dev_data = prepare_data(task, config)
    with accelerator.main_process_first():  # built-in models are prepared once, by rank 0
        base = base or load_base_models(config.bridge, device=accelerator.device)
    torch.manual_seed(tc.seed)
    bridge = build_bridge(config.bridge, device=accelerator.device, base=base)
    if tc.compile:
        compile_llm(bridge.llm)
    encoded = encode_task_data(bridge, task, train_data)
    _prepare_output_dir(out, resume, overwrite, accelerator)

    # ---- schedule
    def batches_for(epoch: int) -> list[list[int]]:
        return epoch_batches(
            encoded, tc.batch_size, tc.seed, epoch, rank, world, tc.grad_accum, tc.bucket_size
        )

    steps_per_epoch = len(batches_for(0)) // tc.grad_accum
    if steps_per_epoch == 0:
        raise ConfigError(
            f"{len(encoded)} training examples make no full optimizer step with batch_size={tc.batch_size}, "
            f"grad_accum={tc.grad_accum} and {world} process(es)"
        )
    total_steps = tc.max_steps if tc.max_steps is not None else math.ceil(tc.epochs * steps_per_epoch)
    params = [p for p in bridge.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=tc.lr, betas=tc.betas, weight_decay=tc.weight_decay)
    from transformers import get_cosine_schedule_with_warmup

    scheduler = get_cosine_schedule_with_warmup(optimizer, round(tc.warmup_ratio * total_steps), total_steps)
    model, optimizer = accelerator.prepare(bridge, optimizer)

    # ---- resume
    loop = ckpt.LoopState()
    if resume:
        loop = resume_latest(out, bridge, optimizer, scheduler, config, rank, log=_warn)
    if main:
        (out / "config.yaml").write_text(config.to_yaml(), encoding="utf-8")
    logger = RunLogger(out / "log.jsonl", tensorboard=tc.tensorboard) if main else None
    if logger and not loop.step:
        logger.log(
            event="start",
            train_examples=len(encoded),
            dev_examples=len(dev_data),
            total_steps=total_steps,
            steps_per_epoch=steps_per_epoch,
            world_size=world,
            device=str(accelerator.device),
            parameters=bridge.parameter_counts(),
            data_report=train_data.report.to_dict(),
        )

    # ---- helpers
    extra_meta = {"task": task.describe(), "run": str(out)}

    def evaluate_dev() -> None:
        if main:
            model.eval()
            scores = dev_accuracy(bridge, task, dev_data, config)
            improved = loop.best_metric is None or scores["dev_accuracy"] > loop.best_metric
            if improved:
                loop.best_metric, loop.best_step = scores["dev_accuracy"], loop.step
                save_bridge(bridge, out / "best", extra=extra_meta | {"step": loop.step, **scores})
            logger.log(event="dev", step=loop.step, **scores, best=loop.best_metric, best_step=loop.best_step)
            model.train()
        accelerator.wait_for_everyone()

    def save_checkpoint() -> None:
        root = out / "checkpoints"
        staging = root / f".step-{loop.step:06d}"
        if main:
            staging.mkdir(parents=True, exist_ok=True)
        accelerator.wait_for_everyone()
        try:
            ckpt.save_state_files(staging, f"rng-rank{rank}", ckpt.rng_state())
            accelerator.wait_for_everyone()
            if main:
                write_bridge_files(bridge, staging, extra=extra_meta | {"step": loop.step})
                ckpt.save_state_files(staging, "optimizer", optimizer.state_dict())
                ckpt.save_state_files(staging, "scheduler", scheduler.state_dict())
                ckpt.write_loop_state(staging, loop, {"config": config.to_dict()})
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)  # a failed save leaves nothing half-written
            raise
        if main:
            final = root / f"step-{loop.step:06d}"
            if final.exists():
                shutil.rmtree(final)
            staging.rename(final)  # atomic: the checkpoint appears complete or not at all
            ckpt.prune_checkpoints(out, tc.keep_checkpoints)
        accelerator.wait_for_everyone()

    # ---- the loop
    model.train()
    bar = tqdm(
        total=total_steps, initial=loop.step, desc="train", unit="step", disable=not (main and progress)
    )
    window_loss, window_examples, window_tokens, window_start = 0.0, 0, 0, time.perf_counter()
    train_time, start_step = 0.0, loop.step
    while loop.step < total_steps:
        batches = batches_for(loop.epoch)
        loader = make_loader(
            encoded, batches[loop.batch_in_epoch :], tc.num_workers, accelerator.device.type == "cuda"
        )
        for batch in loader:
            batch = {k: v.to(accelerator.device, non_blocking=True) for k, v in batch.items()}
            loop.batch_in_epoch += 1
            sync = loop.batch_in_epoch % tc.grad_accum == 0
            with accelerator.no_sync(model) if not sync else contextlib.nullcontext():
                with accelerator.autocast():
                    loss = model(**batch).loss
                accelerator.backward(loss / tc.grad_accum)
            window_loss += loss.item() / tc.grad_accum
            window_examples += batch["input_ids"].shape[0] * world
            window_tokens += world * int(batch["attention_mask"].sum() + batch["target_mask"].sum())
            if not sync:
                continue
            if tc.max_grad_norm:
                accelerator.clip_grad_norm_(params, tc.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            loop.step += 1
            loop.examples_seen += tc.batch_size * tc.grad_accum * world
            bar.update(1)
            if loop.step % tc.log_every == 0 or loop.step == total_steps:
                elapsed = time.perf_counter() - window_start
                train_time += elapsed
                steps_in_window = tc.log_every if loop.step % tc.log_every == 0 else loop.step % tc.log_every
                record = {
                    "step": loop.step,
                    "epoch": loop.epoch,
                    "loss": window_loss / max(steps_in_window, 1),
                    "lr": scheduler.get_last_lr()[0],
                    "examples_per_s": window_examples / elapsed,
                    "tokens_per_s": window_tokens / elapsed,
                }
                if logger:
                    logger.log(event="train", **record)
                bar.set_postfix(loss=f"{record['loss']:.3f}", ex_s=f"{record['examples_per_s']:.1f}")
                window_loss, window_examples, window_tokens = 0.0, 0, 0
                window_start = time.perf_counter()
            if tc.eval_every and loop.step % tc.eval_every == 0 and loop.step < total_steps:
                evaluate_dev()
                window_start = time.perf_counter()  # evaluation time is not training time
            if tc.save_every and loop.step % tc.save_every == 0 and loop.step < total_steps:
                save_checkpoint()
                window_start = time.perf_counter()
            if loop.step >= total_steps:
                break
        else:
            loop.epoch += 1
            loop.batch_in_epoch = 0
    bar.close()

    # ---- the end: final dev evaluation, final + best bridges, summary
    evaluate_dev()
    if main:
        save_bridge(bridge, out / "final", extra=extra_meta | {"step": loop.step})
    best_dir = out / "best"
    accelerator.wait_for_everyone()
    if not (best_dir / "bridge.safetensors").is_file():
        raise CheckpointError(f"training finished but no best bridge was written to {best_dir}")
    load_bridge_weights(bridge, read_bridge_tensors(best_dir), str(best_dir))
    trained_steps = loop.step - start_step
    summary = {
        "task": task.name,
        "fusion": config.bridge.fusion,
        "steps": loop.step,
        "epochs": round(loop.step / steps_per_epoch, 3),
        "best_step": loop.best_step,
        "best_dev_accuracy": loop.best_metric,
        "train_examples": len(encoded),
        "dev_examples": len(dev_data),
        "dropped_overlap": train_data.report.dropped_overlap,
        "train_seconds": round(train_time, 1),
        "examples_per_second": round(
            trained_steps * tc.batch_size * tc.grad_accum * world / max(train_time, 1e-9), 2
        ),
        "world_size": world,
        "device": str(accelerator.device),
        "precision": mixed_precision(tc.precision),
        "parameters": bridge.parameter_counts(),
    }
    if main:
        write_json(out / "summary.json", summary)
        logger.log(event="end", **summary)
        logger.close()
    accelerator.wait_for_everyone()
    return TrainResult(bridge=bridge, output_dir=out, best_dir=best_dir, summary=summary)
