"""One training step, side by side: the paper's own code, layerbridge, and layerbridge's naive design.

The paper's code (ThemiraChathumina/MultiLingualImprove at ae18189, ``experiments/``: MPTModel
with the TransSM encoder) is not part of this repository; export it into the git-ignored
``.reference/`` folder and point ``--reference`` at it::

    git clone https://github.com/ThemiraChathumina/MultiLingualImprove /tmp/mli
    mkdir -p .reference/MultiLingualImprove
    git -C /tmp/mli archive ae18189 experiments | tar -x -C .reference/MultiLingualImprove
    .venv/bin/python benchmarks/reference_step.py --reference .reference/MultiLingualImprove/experiments \
        --batch-sizes 8 32 --out benchmarks/results/reference-step-cpu.jsonl

All variants run on the built-in pair (e5-small -> SmolLM2-135M), Transformer Softmax, linear
projector, the same consecutive XNLI English training rows in the same order (no length
bucketing: batch k is rows kB..kB+B-1), ``--warmup`` untimed then ``--steps`` timed steps,
AdamW step included. Timing: all variants in one process, taking turns step by step (a busy
moment of the machine falls on all alike; ratios are per batch size). Peak memory: each
variant alone in a fresh process (its ``VmHWM``, ``--memory-steps`` steps). Variants:

* ``reference``: the paper's ``MPTModel.forward`` (tokenises inside, encoder in train mode,
  full TransSM block, full-vocabulary logits and Hugging Face's loss) + its AdamW + cosine
  schedule, exactly as its ``trainer.py`` steps (``.cuda()`` is a no-op on a CPU-only run, and
  its allow-list of model ids is widened to the built-in models; nothing else is changed);
* ``reference-bf16``: the same with the whole model cast to bf16 (as its DeepSpeed bf16 run;
  compare it with ``--precision bf16`` runs of ours);
* ``ours``: :meth:`layerbridge.training.TrainRecipe.train_step` on the collated rows;
* ``ours-cached``: the same step reading the encoder's layer states from the state cache
  (filled before timing, as after the first epoch);
* ``naive``: :mod:`layerbridge.bench.naive` (the design the benchmark compares against) + the
  recipe's optimizer step.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

import torch

VARIANTS = ("reference", "reference-bf16", "naive", "ours", "ours-cached")


def rss_gib() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not inherited from the parent)."""
    from layerbridge.bench.hardware import peak_memory

    return peak_memory(torch.device("cpu"))


def load_rows(pool: int) -> tuple[Any, list]:
    from layerbridge.config import TaskConfig
    from layerbridge.tasks import get_task

    task = get_task(TaskConfig(name="xnli"))
    return task, task.load("train", limit=pool, seed=0).examples


def reference_step_fn(args, task, examples, paths: dict[str, str], bf16: bool = False):
    """The paper's MPTModel + TransSM and its optimizer, as trainer.py runs one step (``bf16``:
    the whole model cast to bf16 first)."""
    sys.path.insert(0, str(Path(args.reference).resolve()))
    if not torch.cuda.is_available():
        torch.Tensor.cuda = lambda self, *a, **k: self  # the reference hard-codes .cuda()
    stub = types.ModuleType("Configs")

    class IDPConfigs:  # the only settings MPTModel reads
        encoder = "TransSM"

    stub.IDPConfigs = IDPConfigs
    sys.modules["Configs"] = stub
    from mlEmbModel.TransSMEmbeddingModel import TransSMMultilingualEmbeddingModel
    from model import MPTModel
    from read_data import llm_input_features
    from transformers import AutoTokenizer, get_scheduler

    TransSMMultilingualEmbeddingModel.ALLOWED_MODELS = {paths["encoder"]}
    tok = AutoTokenizer.from_pretrained(paths["llm"], use_fast=True)
    tok.pad_token, tok.padding_side = tok.eos_token, "left"
    config = {
        "mt_path": paths["encoder"],
        "ext_path": paths["encoder"],
        "llm_path": paths["llm"],
        "max_gen_len": 200,
        "llm_bos_token_id": tok.bos_token_id,
        "llm_pad_token_id": tok.pad_token_id,
        "augmentation": False,
        "max_seq_len": args.max_length,
    }
    torch.manual_seed(0)
    model = MPTModel(config)
    if bf16:
        model.to(torch.bfloat16)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, betas=[0.8, 0.999], eps=1e-8, weight_decay=3e-7, lr=3e-5)
    total = args.warmup + args.steps
    scheduler = get_scheduler(
        "cosine", optimizer, num_training_steps=total, num_warmup_steps=int(total * 0.05)
    )
    model.train()

    def step(rows: list) -> None:
        prompts = [task.render(ex) for ex in rows]
        targets = [task.label_strings[ex.label] for ex in rows]
        labels, mask_label = llm_input_features(targets, tok, 200, False, True)
        loss = model(prompts, labels=labels, mask_label=mask_label)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        scheduler.step()

    return step


def layerbridge_step_fn(args, task, examples, variant: str):
    """layerbridge's recipe step (optionally on cached encoder states) or the naive design's step."""
    from layerbridge.bench.naive import naive_loss
    from layerbridge.config import BridgeConfig, RunConfig, TrainConfig
    from layerbridge.data.encoded import Collator, EncodedExamples
    from layerbridge.modeling.builders import build_bridge
    from layerbridge.training import TrainRecipe

    config = BridgeConfig(
        encoder="e5-small", llm="smollm2-135m", fusion="transformer-softmax", max_length=args.max_length
    )
    torch.manual_seed(0)
    bridge = build_bridge(config, device="cpu")
    train = TrainConfig(precision=args.precision, lr=3e-5, encoder_cache=variant == "ours-cached")
    recipe = TrainRecipe(RunConfig(bridge=config, train=train))
    recipe.attach(bridge, total_steps=args.warmup + args.steps)
    encoded = EncodedExamples.build(task.template, examples, task.label_strings, bridge)
    index = {id(ex): i for i, ex in enumerate(examples)}
    recipe.use_encoder_cache(encoded)  # ours-cached: computed here, before timing (as after epoch 1)
    collate = Collator(encoded, states=recipe.state_cache)
    bridge.train()

    def ours(rows: list) -> None:
        recipe.train_step([collate([index[id(ex)] for ex in rows])])

    def naive(rows: list) -> None:
        prompts = [task.render(ex) for ex in rows]
        labels = [task.label_strings[ex.label] for ex in rows]
        naive_loss(bridge, prompts, labels).mean().backward()
        recipe.optimizer_step()

    return naive if variant == "naive" else ours


def build_step(args, variant: str, task, examples):
    from layerbridge.builtin import resolve_model

    if variant.startswith("reference"):
        paths = {"encoder": resolve_model("e5-small"), "llm": resolve_model("smollm2-135m")}
        return reference_step_fn(args, task, examples, paths, bf16=variant == "reference-bf16")
    return layerbridge_step_fn(args, task, examples, variant)


def timed_steps(args, variants: list[str]) -> dict[str, list[float]]:
    """Seconds per timed step of each variant; variants take turns step by step, so a slower or
    busier moment of the machine falls on all of them alike."""
    torch.set_num_threads(args.threads or torch.get_num_threads())
    task, examples = load_rows(max(args.pool, args.batch * (args.warmup + args.steps)))
    steps = {v: build_step(args, v, task, examples) for v in variants}
    times: dict[str, list[float]] = {v: [] for v in variants}
    for k in range(args.warmup + args.steps):
        rows = examples[k * args.batch : (k + 1) * args.batch]
        for variant, step in steps.items():
            start = time.perf_counter()
            step(rows)
            if k >= args.warmup:
                times[variant].append(time.perf_counter() - start)
    return times


def run_variants(args) -> list[dict[str, Any]]:
    """Timing of ``--variants`` (interleaved, one process); with ``--memory``, also the peak
    resident memory of each variant alone in a fresh process (``--memory-steps`` steps)."""
    from layerbridge.runtime import environment

    times = timed_steps(args, args.variants)
    results = []
    for variant, seconds in times.items():
        results.append({
            "variant": variant,
            "batch": args.batch,
            "precision": args.precision,
            "step_ms": round(1000 * sum(seconds) / len(seconds), 1),
            "step_ms_each": [round(1000 * t, 1) for t in seconds],
            "environment": environment(),
        })  # fmt: skip
    return results


def peak_memory(args) -> dict[str, Any]:
    """This process runs ``--memory-steps`` steps of one variant; its peak RSS."""
    task, examples = load_rows(max(args.pool, args.batch * args.memory_steps))
    step = build_step(args, args.variant, task, examples)
    loaded = rss_gib()
    for k in range(args.memory_steps):
        step(examples[k * args.batch : (k + 1) * args.batch])
    return {"rss_after_load_gib": round(loaded, 3), "peak_rss_gib": round(rss_gib(), 3)}


def run_all(args) -> list[dict[str, Any]]:
    """Per batch size: interleaved timing in one process, then each variant's memory in its own."""
    results = []
    for batch in args.batch_sizes:
        args.batch = batch
        print(f"batch {batch}: timing {', '.join(args.variants)}", file=sys.stderr, flush=True)
        rows = run_variants(args)
        for row in rows:
            cmd = [sys.executable, __file__, "--memory-of", row["variant"], "--batch", str(batch)]
            cmd += ["--memory-steps", str(args.memory_steps), "--precision", args.precision]
            cmd += ["--max-length", str(args.max_length), "--pool", str(args.pool)]
            if args.reference:
                cmd += ["--reference", args.reference]
            print(f"batch {batch}: memory of {row['variant']}", file=sys.stderr, flush=True)
            out = (
                subprocess.run(cmd, check=True, capture_output=True, text=True)
                .stdout.strip()
                .splitlines()[-1]
            )
            row |= json.loads(out)
            results.append(row)
            if args.out:
                with open(args.out, "a", encoding="utf-8") as f:
                    f.write(json.dumps(row) + "\n")
    return results


def table(results: list[dict[str, Any]]) -> str:
    """Markdown: step time, ratio to the reference at the same batch size, peak memory."""
    ref = {r["batch"]: r["step_ms"] for r in results if r["variant"].startswith("reference")}
    lines = ["| variant | batch | ms/step | reference / this | peak RSS (GiB) |", "|---|---:|---:|---:|---:|"]
    for r in results:
        ratio = f"{ref[r['batch']] / r['step_ms']:.2f}x" if r["batch"] in ref else "–"
        lines.append(
            f"| {r['variant']} | {r['batch']} | {r['step_ms']:.0f} | {ratio} | {r['peak_rss_gib']:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reference", help="the reference checkout's experiments/ folder")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[8, 32])
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--memory-steps", type=int, default=3, help="steps of the separate memory runs")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--max-length", type=int, default=200)
    parser.add_argument("--pool", type=int, default=512)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", help="append result lines (JSON) to this file")
    parser.add_argument("--memory-of", choices=VARIANTS, help=argparse.SUPPRESS)  # one memory run
    parser.add_argument("--batch", type=int, default=8, help=argparse.SUPPRESS)
    args = parser.parse_args()
    chosen = args.variants if args.memory_of is None else [args.memory_of]
    if any(v.startswith("reference") for v in chosen) and not args.reference:
        parser.error("--reference is required to time the reference (or leave it out of --variants)")
    if args.memory_of:
        args.variant = args.memory_of
        print(json.dumps(peak_memory(args)))
    else:
        print(table(run_all(args)))


if __name__ == "__main__":
    main()
