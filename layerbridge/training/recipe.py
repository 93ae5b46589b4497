"""The training recipe: English-only prefix-LM training of a bridge, readable top to bottom.

In the style of torchtune's recipes — ``setup`` builds everything, ``loss_step`` is the one
unit of work (the benchmark times this same step), ``train`` is the loop::

    recipe = TrainRecipe(config)
    recipe.setup()        # task data (English train / dev) -> bridge -> AdamW + cosine warm-up
    result = recipe.train()
        # loop: length-bucketed micro-batches -> train_step (loss_step + backward, x grad_accum;
        #       clip, optimizer, schedule) -> log every log_every steps
        #       -> every eval_every steps: English dev accuracy (label scoring), keep the best
        #       -> at stall_check: still at chance on English dev? start again from a new seed
        #       -> every save_every steps: resumable checkpoint (atomic)
        # end: final dev evaluation, final/ and best/ bridges, summary.json

Multi-GPU (or multi-process CPU with gloo) needs no code change: ``accelerate launch``
starts one process per device, ``Accelerator`` wraps the bridge in DDP (only the bridge's
parameters are synchronised), and each process takes every ``world``-th batch.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs, broadcast_object_list, set_seed
from tqdm.auto import tqdm

from layerbridge.checkpoint import load_bridge_weights, read_bridge_tensors, save_bridge
from layerbridge.config import SCHEDULES, EvalConfig, RunConfig
from layerbridge.data.batching import length_groups
from layerbridge.data.encoded import EncodedExamples, epoch_batches, llm_positions, make_loader, split_batch
from layerbridge.data.types import TaskData
from layerbridge.errors import CheckpointError, ConfigError, TrainingError
from layerbridge.evaluation import metrics
from layerbridge.evaluation.predict import predict_examples
from layerbridge.io import write_json
from layerbridge.modeling.bridge import Bridge, BridgeOutput
from layerbridge.modeling.builders import BaseModels, build_bridge, check_bridge_config, load_base_models
from layerbridge.modeling.llm import embedding_rms
from layerbridge.modeling.state_cache import EncoderStateCache, default_cache_dir
from layerbridge.report.training import plot_training
from layerbridge.runtime import (
    accelerate_mixed_precision,
    compile_llm,
    compute_precision,
    environment,
    pass_plan,
)
from layerbridge.tasks import Task, get_task
from layerbridge.training import state as ckpt
from layerbridge.training.checkpointing import resume_latest, save_checkpoint
from layerbridge.training.logger import RunLogger, Throughput, read_log
from layerbridge.training.outputs import check_output_dir, prepare_output_dir
from layerbridge.training.stall import StalledRun, recorded_restarts, restart_seed, stall_record

#: optimizer steps in a row with a non-finite gradient after which training stops
NONFINITE_LIMIT = 10


@dataclass
class TrainResult:
    bridge: Bridge  # with the best dev weights loaded
    output_dir: Path
    best_dir: Path
    summary: dict[str, Any]


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


def dev_accuracy(bridge: Bridge, task: Task, dev: TaskData, config: RunConfig) -> dict[str, Any]:
    """English dev accuracy / macro-F1 by label scoring (the model-selection metric), and what
    the fusion does on dev (:func:`fusion_diagnostics`)."""
    tc = config.train
    eval_config = EvalConfig(
        split="dev",
        batch_size=tc.eval_batch_size,
        precision=tc.precision,
        encoder_cache=tc.encoder_cache,
        encoder_cache_dir=tc.encoder_cache_dir,
    )
    preds = predict_examples(
        bridge, task.template, dev.examples, task.label_strings, eval_config, progress=False
    )
    return {
        "dev_accuracy": metrics.accuracy(dev.labels, preds.pred),
        "dev_macro_f1": metrics.macro_f1(dev.labels, preds.pred, task.num_classes),
        **fusion_diagnostics(bridge, preds.mean_layer_weights),
    }


def fusion_diagnostics(bridge: Bridge, mean_weights) -> dict[str, Any]:
    """Mean layer weights over real dev tokens, their normalised entropy H(w) / log L (1 = uniform,
    0 = one layer), and Global Softmax's temperature."""
    p = np.asarray(mean_weights, dtype=np.float64)
    p = p / max(p.sum(), 1e-12)
    record: dict[str, Any] = {
        "layer_weights": [round(float(w), 6) for w in p],
        "layer_entropy": metrics.normalised_entropy(p),
    }
    temperature = getattr(bridge.fusion, "temperature", None)
    if temperature is not None:
        record["temperature"] = float(temperature.detach())
    return record


def make_accelerator(precision: str, device: torch.device | None = None) -> Accelerator:
    """One Accelerator per run: mixed precision from ``precision``, DDP over the bridge only."""
    ddp = DistributedDataParallelKwargs(broadcast_buffers=False)
    # Several processes without CUDA (e.g. `accelerate launch --multi_gpu --num_processes 2` on a CPU
    # machine) must ask accelerate for multi-CPU (gloo) explicitly; so must a CPU run on a GPU machine.
    multi_cpu = not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1
    cpu = multi_cpu or (device is not None and device.type == "cpu" and torch.cuda.is_available())
    return Accelerator(
        mixed_precision=accelerate_mixed_precision(precision, device), kwargs_handlers=[ddp], cpu=cpu
    )


def parameter_groups(
    bridge: Bridge, lr: float, fusion_lr: float | None, boundary_lr: float | None = None
) -> list[dict[str, Any]]:
    """AdamW groups: the fusion at ``fusion_lr`` and the boundary vector at ``boundary_lr``
    (each default ``lr``), everything else trainable (the projector) at ``lr``."""
    fusion = {id(p) for p in bridge.fusion.parameters()}
    rates = {"bridge": lr, "fusion": fusion_lr or lr, "boundary": boundary_lr or lr}

    def group_of(p: torch.nn.Parameter) -> str:
        return "fusion" if id(p) in fusion else "boundary" if p is bridge.boundary else "bridge"

    trainable = [p for p in bridge.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in trainable if group_of(p) == name], "lr": rate, "name": name}
        for name, rate in rates.items()
    ]
    return [g for g in groups if g["params"]]


def _warn(message: str) -> None:
    logging.getLogger("layerbridge.training").warning(message)


class TrainRecipe:
    """Train a bridge for ``config.task`` on English data (see the module docstring)."""

    def __init__(
        self,
        config: RunConfig,
        *,
        resume: bool = False,
        overwrite: bool = False,
        progress: bool = True,
        restarts: list[dict[str, Any]] | None = None,
    ) -> None:
        self.config, self.tc = config, config.train
        self.out = Path(self.tc.output_dir)
        self.resume, self.overwrite, self.progress = resume, overwrite, progress
        #: the stall checks that restarted this run before this attempt (training/stall.py)
        self.restarts = list(restarts or [])
        self.loop = ckpt.LoopState()
        #: [L + 3]: per-layer weight sums, tokens, entropy sum, soft-prompt mean-square sum — over
        #: the real training tokens since the last log
        self.fusion_sums: torch.Tensor | None = None
        #: the last optimizer step's gradient norm before clipping
        self.grad_norm: float | None = None
        #: optimizer steps in a row whose gradient was not finite (see :meth:`optimizer_step`)
        self.nonfinite_in_a_row = 0

    # ------------------------------------------------------------------ setup
    def setup(self, base: BaseModels | None = None) -> None:
        """Validate every input, then build data, model, optimizer; resume if asked."""
        tc = self.tc
        self.accelerator = make_accelerator(tc.precision)
        self.main = self.accelerator.is_main_process
        self.task = get_task(self.config.task)
        check_bridge_config(self.config.bridge)
        check_output_dir(self.out, self.resume, self.overwrite)
        if self.resume:  # an interrupted run continues as the attempt it was (training/stall.py)
            self.restarts = recorded_restarts(self.out / "log.jsonl")
        set_seed(self.seed)
        self.train_data, self.dev_data = prepare_data(self.task, self.config)
        self.bridge = self._setup_model(base)
        self.embedding_rms = embedding_rms(self.bridge.llm)  # the scale the LLM's tokens come at
        self.encoded = EncodedExamples.build(
            self.task.template, self.train_data.examples, self.task.label_strings, self.bridge
        )
        self.use_encoder_cache(self.encoded)
        self.steps_per_epoch, self.total_steps = self._schedule_length()
        if self.main:  # only now, with every input validated, is anything written or replaced
            prepare_output_dir(self.out, self.resume, self.overwrite)
        self.accelerator.wait_for_everyone()
        self.setup_optimizer(self.total_steps)
        if self.resume:
            self.loop = resume_latest(
                self.out, self.bridge, self.optimizer, self.scheduler, self.config, self.rank, log=_warn
            )
        self._setup_logging()

    def _setup_model(self, base: BaseModels | None) -> Bridge:
        with self.accelerator.main_process_first():  # built-in models are prepared once, by rank 0
            self.base = base or load_base_models(self.config.bridge, device=self.accelerator.device)
        torch.manual_seed(self.seed)
        bridge = build_bridge(self.config.bridge, device=self.accelerator.device, base=self.base)
        if self.tc.compile:
            compile_llm(bridge.llm)
        return bridge

    def use_encoder_cache(self, encoded: EncodedExamples) -> None:
        """With ``train.encoder_cache``: the encoder's layer states of ``encoded``, read from the
        disk cache or computed into it once (:mod:`layerbridge.modeling.state_cache`)."""
        self.state_cache = None
        if not self.tc.encoder_cache:
            return
        directory = self.tc.encoder_cache_dir or default_cache_dir()
        precision = compute_precision(self.tc.precision, self.accelerator.device)
        with self.accelerator.main_process_first():  # rank 0 writes the file, the others read it
            self.state_cache = EncoderStateCache.load_or_build(
                self.bridge.encoder,
                encoded.prompt_ids,
                encoded.prompt_pad_id,
                directory,
                self.tc.eval_batch_size,
                precision,
            )

    def attach(self, bridge: Bridge, total_steps: int) -> None:
        """Use an already built bridge without task data or run folder (the benchmark's setup)."""
        self.accelerator = make_accelerator(self.tc.precision, bridge.device)
        self.main = self.accelerator.is_main_process
        self.bridge = bridge
        self.embedding_rms = embedding_rms(bridge.llm)
        self.setup_optimizer(total_steps)

    @property
    def seed(self) -> int:
        """The seed this attempt trains with: ``train.seed``, moved on by each restart."""
        return restart_seed(self.tc.seed, len(self.restarts))

    @property
    def rank(self) -> int:
        return self.accelerator.process_index

    @property
    def world(self) -> int:
        return self.accelerator.num_processes

    def _schedule_length(self) -> tuple[int, int]:
        """(optimizer steps per epoch, total optimizer steps)."""
        steps_per_epoch = len(self._epoch_batches(0)) // self.tc.grad_accum
        if steps_per_epoch == 0:
            raise ConfigError(
                f"{len(self.encoded)} training examples make no full optimizer step with "
                f"batch_size={self.tc.batch_size}, grad_accum={self.tc.grad_accum} and "
                f"{self.world} process(es)"
            )
        if self.tc.max_steps is not None:  # TrainConfig checked the stall check against it
            return steps_per_epoch, self.tc.max_steps
        total = math.ceil(self.tc.epochs * steps_per_epoch)
        self.tc.check_stall_check(total, f" = {self.tc.epochs} epoch(s) x {steps_per_epoch} steps")
        return steps_per_epoch, total

    def setup_optimizer(self, total_steps: int) -> None:
        """AdamW over the trainable parameters; linear warm-up, then ``train.schedule``."""
        from transformers import get_scheduler

        tc = self.tc
        self.params = [p for p in self.bridge.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(
            parameter_groups(self.bridge, tc.lr, tc.fusion_lr, tc.boundary_lr),
            betas=tc.betas,
            weight_decay=tc.weight_decay,
        )
        warmup = round(tc.warmup_ratio * total_steps)
        self.scheduler = get_scheduler(SCHEDULES[tc.schedule], optimizer, warmup, total_steps)
        self.model, self.optimizer = self.accelerator.prepare(self.bridge, optimizer)

    def _setup_logging(self) -> None:
        self.extra_meta = {"task": self.task.describe(), "run": str(self.out)}
        self.logger = (
            RunLogger(self.out / "log.jsonl", tensorboard=self.tc.tensorboard) if self.main else None
        )
        if self.main:
            (self.out / "config.yaml").write_text(self.config.to_yaml(), encoding="utf-8")
        if self.logger and not self.loop.step:
            self.logger.log(
                event="start",
                train_examples=len(self.encoded),
                dev_examples=len(self.dev_data),
                total_steps=self.total_steps,
                steps_per_epoch=self.steps_per_epoch,
                world_size=self.world,
                device=str(self.accelerator.device),
                parameters=self.bridge.parameter_counts(),
                data_report=self.train_data.report.to_dict(),
                restarts=self.restarts,
            )

    def _budget(self) -> dict[str, Any]:
        """The training budget recorded with every saved bridge (and its model card)."""
        tc = self.tc
        return {
            "train_examples": len(self.encoded),
            "total_steps": self.total_steps,
            "batch_size": tc.batch_size,
            "grad_accum": tc.grad_accum,
            "world_size": self.world,
            "lr": tc.lr,
            "seed": self.seed,
            "precision": accelerate_mixed_precision(tc.precision, self.accelerator.device),
            "examples_seen": self.loop.examples_seen,
            "restarts": len(self.restarts),
        }

    def _meta(self, **more: Any) -> dict[str, Any]:
        """Metadata saved with a bridge now: task, run, budget (examples seen so far) and ``more``."""
        return self.extra_meta | {"training": self._budget(), "step": self.loop.step, **more}

    # ------------------------------------------------------------------ one step
    def loss_step(self, batch: dict[str, torch.Tensor]) -> BridgeOutput:
        """Forward one micro-batch under the run's autocast: ``.loss`` is the mean target-token
        NLL, ``.layer_weights`` what the fusion did."""
        batch = {k: v.to(self.accelerator.device, non_blocking=True) for k, v in batch.items()}
        with self.accelerator.autocast():
            return self.model(**batch)

    def train_step(self, micro_batches: list[dict[str, torch.Tensor]]) -> float:
        """One optimizer step over ``grad_accum`` micro-batches; returns the mean loss.

        Each micro-batch runs as length-grouped passes (:meth:`passes`); pass p's loss is
        weighted by its share of the micro-batch's target tokens, so the gradient is the
        micro-batch's mean target-token NLL gradient whatever the split. Gradients are
        synchronised across processes only at the last pass.
        """
        work = [(part, share) for batch in micro_batches for part, share in self.passes(batch)]
        total = 0.0
        for i, (part, share) in enumerate(work):
            last = i == len(work) - 1
            with contextlib.nullcontext() if last else self.accelerator.no_sync(self.model):
                out = self.loss_step(part)
                self.accelerator.backward(out.loss * (share / self.tc.grad_accum))
            total += out.loss.item() * share / self.tc.grad_accum
            self._add_fusion_sums(out, part["attention_mask"])
        self.optimizer_step()
        return total

    def _add_fusion_sums(self, out: BridgeOutput, mask: torch.Tensor) -> None:
        """Add what the bridge did on this pass's real tokens (``mask`` [B, T]): the fusion's
        weights beta [B, T, L] summed per layer, the token count, the sum of each token's entropy
        -sum_l beta_l log beta_l, and the sum of each soft-prompt vector's mean square."""
        w = out.layer_weights.detach().float()
        real = mask.to(w.device).bool()  # batches stay on the CPU until loss_step moves them
        square = out.soft_prompt.detach().float().pow(2).mean(-1)[real].sum()  # sum_i mean_d s_id^2
        stats = torch.stack([real.sum(), -torch.xlogy(w, w).sum(), square])
        total = torch.cat([w.sum((0, 1)), stats])  # [L + 3]
        self.fusion_sums = total if self.fusion_sums is None else self.fusion_sums + total

    def passes(self, batch: dict[str, torch.Tensor]) -> list[tuple[dict[str, torch.Tensor], float]]:
        """A collated micro-batch as forward passes of similar length, each with its share of
        the batch's target tokens (:func:`~layerbridge.data.batching.length_groups`)."""
        max_tokens, cost = pass_plan(self.accelerator.device, self.tc.max_pass_tokens, self.tc.pass_cost)
        has_bos = self.bridge.bos_id is not None
        enc, tgt = batch["attention_mask"].sum(1).tolist(), batch["target_mask"].sum(1).tolist()
        lengths = [llm_positions(n, m, has_bos) for n, m in zip(enc, tgt, strict=True)]
        groups = length_groups(lengths, max_tokens, cost)
        if len(groups) == 1:
            return [(batch, 1.0)]
        targets = sum(tgt)
        return [(part, float(part["target_mask"].sum()) / targets) for part in split_batch(batch, groups)]

    def optimizer_step(self) -> None:
        """Clip the gradient norm (kept, before clipping, as ``grad_norm``), step AdamW and the
        schedule, clear the gradients.

        A step whose gradient norm is not finite (a NaN or inf loss or gradient, e.g. from a bf16
        overflow) changes no weight and no optimizer moment: it is skipped and counted
        (``skipped_steps`` in the log and summary); :data:`NONFINITE_LIMIT` of them in a row stop
        the run with :class:`TrainingError` instead of training on, so a diverged run never
        reaches a results table. (The norm is the all-reduced one: every process decides alike.)
        """
        limit = self.tc.max_grad_norm or math.inf  # inf: measure the norm, clip nothing
        self.grad_norm = float(self.accelerator.clip_grad_norm_(self.params, limit))
        if math.isfinite(self.grad_norm):
            self.optimizer.step()
            self.nonfinite_in_a_row = 0
        else:
            self.loop.skipped_steps += 1
            self.nonfinite_in_a_row += 1
            if self.nonfinite_in_a_row >= NONFINITE_LIMIT:
                raise TrainingError(
                    f"{self.out}: the loss or its gradient was not finite for {self.nonfinite_in_a_row} "
                    f"optimizer steps in a row (step {self.loop.step + 1}, {self.loop.skipped_steps} "
                    f"skipped in all); lower the learning rate or train in fp32 (train.precision: fp32)"
                )
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)

    # ------------------------------------------------------------------ dev evaluation, checkpoints
    def evaluate_dev(self) -> None:
        """English dev accuracy; a new best is saved to ``best/``."""
        if self.main:
            self.model.eval()
            scores = self.last_dev = dev_accuracy(self.bridge, self.task, self.dev_data, self.config)
            loop = self.loop
            improved = loop.best_metric is None or scores["dev_accuracy"] > loop.best_metric
            if self.tc.selection == "best" and improved:
                loop.best_metric, loop.best_step = scores["dev_accuracy"], loop.step
                save_bridge(self.bridge, self.out / "best", extra=self._meta(**scores))
            self.logger.log(
                event="dev", step=loop.step, **scores, best=loop.best_metric, best_step=loop.best_step
            )
            self.model.train()
        self.accelerator.wait_for_everyone()

    def save_checkpoint(self) -> None:
        save_checkpoint(self, self._meta())

    def check_stall(self) -> None:
        """``train.stall_check``: English dev against the constant-label share (training/stall.py);
        raises :class:`StalledRun` for a run at chance that has restarts left. Selection is not
        touched: this dev pass saves nothing."""
        record = None
        if self.main:
            self.model.eval()
            accuracy = dev_accuracy(self.bridge, self.task, self.dev_data, self.config)["dev_accuracy"]
            self.model.train()
            record = stall_record(accuracy, self.dev_data.labels, self.seed, self.loop.step)
            self.logger.log(event="stall_check", **record)
        record = broadcast_object_list([record])[0]
        if not record["stalled"]:
            return
        if len(self.restarts) < self.tc.max_restarts:
            if self.logger:
                self.logger.close()
            raise StalledRun(record)
        _warn(f"{StalledRun(record)}; no restarts left (train.max_restarts), training on")

    # ------------------------------------------------------------------ the loop
    def _epoch_batches(self, epoch: int) -> list[list[int]]:
        tc, seed = self.tc, self.seed
        return epoch_batches(
            self.encoded, tc.batch_size, seed, epoch, self.rank, self.world, tc.grad_accum, tc.bucket_size
        )

    def _steps_of_epoch(self) -> Iterator[list[dict[str, torch.Tensor]]]:
        """The rest of the current epoch, as groups of ``grad_accum`` collated micro-batches."""
        batches = self._epoch_batches(self.loop.epoch)[self.loop.batch_in_epoch :]
        pin = self.accelerator.device.type == "cuda"
        group: list[dict[str, torch.Tensor]] = []
        for batch in make_loader(self.encoded, batches, self.tc.num_workers, pin, self.state_cache):
            group.append(batch)
            if len(group) == self.tc.grad_accum:
                self.loop.batch_in_epoch += len(group)
                yield group
                group = []

    def train(self) -> TrainResult:
        """Run the loop to ``total_steps`` (from a resumed position), then finish."""
        tc, loop = self.tc, self.loop
        self.model.train()
        self.window, self.start_step = Throughput(), loop.step
        with tqdm(total=self.total_steps, initial=loop.step, desc="train", unit="step",
                  disable=not (self.main and self.progress)) as bar:  # fmt: skip
            while loop.step < self.total_steps:
                for micro_batches in self._steps_of_epoch():
                    loss = self.train_step(micro_batches)
                    loop.step += 1
                    loop.examples_seen += tc.batch_size * tc.grad_accum * self.world
                    bar.update(1)
                    self._account(loss, micro_batches, bar)
                    self._maybe_evaluate_and_save()
                    if loop.step >= self.total_steps:
                        break
                else:
                    loop.epoch += 1
                    loop.batch_in_epoch = 0
        return self._finish()

    def _account(self, loss: float, micro_batches: list[dict[str, torch.Tensor]], bar) -> None:
        """Add one step to the throughput window; log it every ``log_every`` steps."""
        has_bos = self.bridge.bos_id is not None
        tokens = sum(
            int(llm_positions(b["attention_mask"].sum(1), b["target_mask"].sum(1), has_bos).sum())
            for b in micro_batches
        )
        examples = sum(b["input_ids"].shape[0] for b in micro_batches)
        self.window.add(loss, examples * self.world, tokens * self.world, self.grad_norm)
        if self.loop.step % self.tc.log_every == 0 or self.loop.step == self.total_steps:
            record = {"step": self.loop.step, "epoch": self.loop.epoch, **self.window.flush()}
            record["lr"] = self.scheduler.get_last_lr()[0]
            record["skipped_steps"] = self.loop.skipped_steps
            if self.fusion_sums is not None:  # the bridge over the window's training tokens
                *weights, tokens, entropy, square = self.fusion_sums.tolist()
                record |= fusion_diagnostics(self.bridge, weights)
                # per-token entropy / log L: 1 = each token mixes all layers, 0 = each picks one
                record["token_entropy"] = entropy / max(tokens, 1) / math.log(max(len(weights), 2))
                # the soft prompt's size beside the LLM's own token embeddings'
                record["prompt_rms"] = math.sqrt(square / max(tokens, 1))
                record["embedding_rms"] = self.embedding_rms
                self.fusion_sums = None
            if self.logger:
                self.logger.log(event="train", **record)
            bar.set_postfix(loss=f"{record['loss']:.3f}", ex_s=f"{record['examples_per_s']:.1f}")

    def _maybe_evaluate_and_save(self) -> None:
        """Dev evaluation and checkpoints at their intervals (their time is not training time)."""
        step, tc = self.loop.step, self.tc
        if tc.eval_every and step % tc.eval_every == 0 and step < self.total_steps:
            with self.window.paused():
                self.evaluate_dev()
        if tc.stall_check and step == tc.stall_check:
            with self.window.paused():
                self.check_stall()
        if tc.save_every and step % tc.save_every == 0 and step < self.total_steps:
            with self.window.paused():
                self.save_checkpoint()

    # ------------------------------------------------------------------ the end
    def _finish(self) -> TrainResult:
        """Final dev evaluation, final/ and best/ bridges, summary.json; loads the best weights."""
        self.evaluate_dev()
        if self.main:
            save_bridge(self.bridge, self.out / "final", extra=self._meta())
            if self.tc.selection == "last":  # the reference: the last weights, no selection
                self.loop.best_metric, self.loop.best_step = self.last_dev["dev_accuracy"], self.loop.step
                save_bridge(self.bridge, self.out / "best", extra=self._meta(**self.last_dev))
            plot_training(read_log(self.out / "log.jsonl"), self.out / "training.png")
        best_dir = self.out / "best"
        self.accelerator.wait_for_everyone()
        if not (best_dir / "bridge.safetensors").is_file():
            raise CheckpointError(f"training finished but no best bridge was written to {best_dir}")
        load_bridge_weights(self.bridge, read_bridge_tensors(best_dir), str(best_dir))
        summary = self._summary()
        if self.main:
            write_json(self.out / "summary.json", summary)
            self.logger.log(event="end", **summary)
            self.logger.close()
        self.accelerator.wait_for_everyone()
        return TrainResult(bridge=self.bridge, output_dir=self.out, best_dir=best_dir, summary=summary)

    def _summary(self) -> dict[str, Any]:
        tc, loop, seconds = self.tc, self.loop, self.window.train_seconds
        trained = (loop.step - self.start_step) * tc.batch_size * tc.grad_accum * self.world
        return {
            "task": self.task.name,
            "fusion": self.config.bridge.fusion,
            "steps": loop.step,
            "epochs": round(loop.step / self.steps_per_epoch, 3),
            "best_step": loop.best_step,
            "best_dev_accuracy": loop.best_metric,
            "examples_seen": loop.examples_seen,
            "batch_size": tc.batch_size * tc.grad_accum * self.world,
            "lr": tc.lr,
            "fusion_lr": tc.fusion_lr or tc.lr,
            "boundary_lr": tc.boundary_lr or tc.lr,
            "seed": self.seed,
            "restarts": self.restarts,
            "skipped_steps": loop.skipped_steps,
            "train_examples": len(self.encoded),
            "dev_examples": len(self.dev_data),
            "dropped_overlap": self.train_data.report.dropped_overlap,
            "train_seconds": round(seconds, 1),
            "examples_per_second": round(trained / max(seconds, 1e-9), 2),
            "world_size": self.world,
            "device": str(self.accelerator.device),
            "precision": accelerate_mixed_precision(tc.precision, self.accelerator.device),
            "machine": environment(),
            "parameters": self.bridge.parameter_counts(),
        }


def train(
    config: RunConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    base: BaseModels | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train a bridge for ``config.task`` on English data; returns it with its best dev weights.

    A run that ``train.stall_check`` finds at chance starts again in the same folder from the
    next restart seed, reusing the loaded base models (training/stall.py)."""
    restarts: list[dict[str, Any]] = []
    stalled_logs: dict[str, str] = {}  # the stalled attempts' log.jsonl, kept beside the new one
    while True:
        recipe = TrainRecipe(config, resume=resume, overwrite=overwrite, progress=progress, restarts=restarts)
        recipe.setup(base)
        if recipe.main:
            for name, text in stalled_logs.items():
                (recipe.out / name).write_text(text, encoding="utf-8")
        try:
            return recipe.train()
        except StalledRun as stalled:
            restarts = [*recipe.restarts, stalled.record]
            if recipe.main:
                log_text = (recipe.out / "log.jsonl").read_text(encoding="utf-8")
                stalled_logs[f"log.stalled-seed-{stalled.record['seed']}.jsonl"] = log_text
            seed, limit = restart_seed(config.train.seed, len(restarts)), config.train.max_restarts
            _warn(f"{stalled}: restarting from seed {seed} ({len(restarts)} of {limit})")
            base, resume, overwrite = recipe.base, False, True
