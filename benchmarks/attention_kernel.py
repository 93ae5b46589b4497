"""Which attention kernel is faster for the built-in LLM on this machine: ``sdpa`` or ``eager``?

SmolLM2-135M, forward + backward to its input embeddings (what a bridge's training step asks of
the frozen LLM) on a [batch, positions] block with a padding mask, in the chosen dtype. The two
kernels take turns, ``--repeats`` times each after one untimed warm-up, so a busy moment of the
machine falls on both alike::

    .venv/bin/python benchmarks/attention_kernel.py --dtype bf16 --batch 8 --positions 100

Prints one JSON line per kernel (milliseconds of every repeat) and the environment.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def load_llm(kernel: str, dtype: torch.dtype) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM

    from layerbridge.builtin import resolve_model

    model = AutoModelForCausalLM.from_pretrained(
        resolve_model("smollm2-135m"), attn_implementation=kernel, dtype=dtype
    )
    return model.requires_grad_(False).eval()


def step(model: torch.nn.Module, embeds: torch.Tensor, mask: torch.Tensor) -> float:
    """Seconds for one forward + backward to the input embeddings."""
    inputs = embeds.detach().requires_grad_(True)
    start = time.perf_counter()
    logits = model(inputs_embeds=inputs, attention_mask=mask, logits_to_keep=1).logits  # [B, 1, V]
    logits[:, -1].float().logsumexp(-1).sum().backward()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="bf16")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--positions", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=4)
    args = parser.parse_args()
    from layerbridge.runtime import environment

    dtype = DTYPES[args.dtype]
    models = {kernel: load_llm(kernel, dtype) for kernel in ("sdpa", "eager")}
    torch.manual_seed(0)
    width = models["sdpa"].config.hidden_size
    embeds = (0.02 * torch.randn(args.batch, args.positions, width)).to(dtype)  # [B, T, D]
    mask = torch.ones(args.batch, args.positions, dtype=torch.long)
    for row in range(args.batch):  # right padding: row r keeps a different number of positions
        mask[row, args.positions - row * args.positions // (2 * args.batch) :] = 0
    times: dict[str, list[float]] = {kernel: [] for kernel in models}
    for repeat in range(args.repeats + 1):
        for kernel, model in models.items():
            seconds = step(model, embeds, mask)
            if repeat:
                times[kernel].append(round(1000 * seconds, 1))
    for kernel, ms in times.items():
        print(json.dumps({"kernel": kernel, "dtype": args.dtype, "batch": args.batch,
                          "positions": args.positions, "ms": ms}))  # fmt: skip
    print(json.dumps({"environment": environment()}))


if __name__ == "__main__":
    main()
