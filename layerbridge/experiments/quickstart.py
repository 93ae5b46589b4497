"""The quickstart: a real, small experiment that runs on a laptop CPU in about ten minutes.

With the built-in models (e5-small encoder, SmolLM2-135M LLM) it trains two bridges on
English BBC news — Transformer Softmax (all 12 encoder layers, token-wise weights) and the
LangBridge last-layer baseline — and tests both on English and, zero-shot, on Sinhala news.

The budget is deliberately small (150 optimizer steps of 8 examples; 150 test examples per
language), so the numbers are noisy; ``layerbridge study`` runs the full comparison.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from layerbridge.config import BridgeConfig, EvalConfig, RunConfig, TaskConfig, TrainConfig
from layerbridge.experiments.compare import run_comparison

FUSIONS = ("last", "transformer-softmax")
STEPS = 150  # optimizer steps per bridge (batch 8)
TEST_LIMIT = 150  # test examples per language


def quickstart_config(steps: int = STEPS, data_dir: str | None = None) -> RunConfig:
    """The recipe; ``configs/quickstart.yaml`` is the same config as a file (a test keeps them equal)."""
    return RunConfig(
        bridge=BridgeConfig(
            encoder="e5-small", llm="smollm2-135m", fusion="transformer-softmax", max_length=96
        ),
        task=TaskConfig(name="sinhala-news", data_dir=data_dir),
        train=TrainConfig(
            lr=1e-3,
            max_steps=steps,
            batch_size=8,
            warmup_ratio=0.05,
            eval_every=0,  # select on English dev once, at the end
            dev_limit=100,
            save_every=0,
            log_every=10,
            seed=1,
        ),
    )


def quickstart_eval(limit: int = TEST_LIMIT) -> EvalConfig:
    return EvalConfig(languages=["en", "si"], limit=limit, batch_size=16)


def run_quickstart(
    out_dir: str | Path = "runs/quickstart",
    steps: int = STEPS,
    limit: int = TEST_LIMIT,
    data_dir: str | None = None,
    progress: bool = True,
    log=print,
) -> dict[str, Any]:
    """Train both bridges, evaluate them, and return the comparison summary."""
    config = quickstart_config(steps, data_dir)
    return run_comparison(
        config,
        FUSIONS,
        [config.train.seed],
        out_dir,
        quickstart_eval(limit),
        reuse=False,
        progress=progress,
        log=log,
    )
