"""One training step, side by side: the paper's own code, layerbridge, and layerbridge's naive design.

The paper's code (ThemiraChathumina/MultiLingualImprove at ae18189, ``experiments/``: MPTModel
with the TransSM encoder) is not part of this repository; export it into the git-ignored
``.reference/`` folder and point ``--reference`` at it::

    git clone https://github.com/ThemiraChathumina/MultiLingualImprove /tmp/mli
    mkdir -p .reference/MultiLingualImprove
    git -C /tmp/mli archive ae18189 experiments | tar -x -C .reference/MultiLingualImprove
    .venv/bin/python benchmarks/reference_step.py --all --batch-sizes 8 32 \
        --out benchmarks/results/reference-step-cpu.jsonl

Every variant runs in a fresh process (so its peak resident memory is its own) on the built-in
pair (e5-small -> SmolLM2-135M), Transformer Softmax, linear projector, the same consecutive
XNLI English training rows in the same order (no length bucketing: batch k is rows
kB..kB+B-1), ``--warmup`` untimed then ``--steps`` timed steps, AdamW step included:

* ``reference``: the paper's ``MPTModel.forward`` (tokenises inside, encoder in train mode,
  full TransSM block, full-vocabulary logits and Hugging Face's loss) + its AdamW + cosine
  schedule, exactly as its ``trainer.py`` steps (``.cuda()`` is a no-op on a CPU-only run, and
  its allow-list of model ids is widened to the built-in models; nothing else is changed);
* ``ours``: :meth:`layerbridge.training.TrainRecipe.train_step` on the collated rows;
* ``ours-cached``: the same step reading the encoder's layer states from the state cache
  (filled before timing, as after the first epoch);
* ``naive``: :mod:`layerbridge.bench.naive` (the design the benchmark compares against) + the
  recipe's optimizer step.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

import torch

VARIANTS = ("reference", "naive", "ours", "ours-cached")


def rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def load_rows(pool: int) -> tuple[Any, list]:
    from layerbridge.config import TaskConfig
    from layerbridge.tasks import get_task

    task = get_task(TaskConfig(name="xnli"))
    return task, task.load("train", limit=pool, seed=0).examples


def reference_step_fn(args, task, examples, paths: dict[str, str]):
    """The paper's MPTModel + TransSM and its optimizer, as trainer.py runs one step."""
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


def run_variant(args) -> dict[str, Any]:
    from layerbridge.builtin import resolve_model
    from layerbridge.runtime import environment

    torch.set_num_threads(args.threads or torch.get_num_threads())
    task, examples = load_rows(max(args.pool, args.batch * (args.warmup + args.steps)))
    if args.variant == "reference":
        paths = {"encoder": resolve_model("e5-small"), "llm": resolve_model("smollm2-135m")}
        step = reference_step_fn(args, task, examples, paths)
    else:
        step = layerbridge_step_fn(args, task, examples, args.variant)
    loaded = rss_gib()
    times = []
    for k in range(args.warmup + args.steps):
        rows = examples[k * args.batch : (k + 1) * args.batch]
        start = time.perf_counter()
        step(rows)
        if k >= args.warmup:
            times.append(time.perf_counter() - start)
    return {
        "variant": args.variant,
        "batch": args.batch,
        "precision": args.precision,
        "step_ms": round(1000 * sum(times) / len(times), 1),
        "step_ms_each": [round(1000 * t, 1) for t in times],
        "rss_after_load_gib": round(loaded, 3),
        "peak_rss_gib": round(rss_gib(), 3),
        "environment": environment(),
    }


def run_all(args) -> list[dict[str, Any]]:
    """Each (batch, variant) in its own process; the lines are appended to ``--out``."""
    results = []
    for batch in args.batch_sizes:
        for variant in args.variants:
            cmd = [sys.executable, __file__, "--variant", variant, "--batch", str(batch)]
            cmd += ["--warmup", str(args.warmup), "--steps", str(args.steps), "--precision", args.precision]
            cmd += ["--max-length", str(args.max_length), "--pool", str(args.pool)]
            if args.reference:
                cmd += ["--reference", args.reference]
            print(f"batch {batch}: {variant}", file=sys.stderr, flush=True)
            line = (
                subprocess.run(cmd, check=True, capture_output=True, text=True)
                .stdout.strip()
                .splitlines()[-1]
            )
            results.append(json.loads(line))
            if args.out:
                with open(args.out, "a", encoding="utf-8") as f:
                    f.write(line + "\n")
    return results


def table(results: list[dict[str, Any]]) -> str:
    """Markdown: step time, ratio to the reference at the same batch size, peak memory."""
    ref = {r["batch"]: r["step_ms"] for r in results if r["variant"] == "reference"}
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
    parser.add_argument("--variant", choices=VARIANTS)
    parser.add_argument("--all", action="store_true", help="run --variants x --batch-sizes, one process each")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[8, 32])
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--max-length", type=int, default=200)
    parser.add_argument("--pool", type=int, default=512)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", help="append result lines (JSON) to this file")
    args = parser.parse_args()
    if args.all or args.variant is None:
        if "reference" in args.variants and not args.reference:
            parser.error("--reference is required to time the reference (or leave it out of --variants)")
        print(table(run_all(args)))
    else:
        if args.variant == "reference" and not args.reference:
            parser.error("--reference is required for --variant reference")
        print(json.dumps(run_variant(args)))


if __name__ == "__main__":
    main()
