"""Shared fixtures: tiny random models saved once per session, bridges built from them."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
import torch

# Results must not depend on the machine running the suite: "auto" precision would pick bf16 on
# a CPU with AMX / AVX512-BF16. The bf16 path is tested explicitly (tests/test_fast_paths.py).
os.environ.setdefault("LAYERBRIDGE_CPU_BF16", "0")

from layerbridge import BridgeConfig, build_bridge
from layerbridge.modeling.builders import BaseModels, load_base_models
from layerbridge.testing import make_tiny_bert, make_tiny_llama, make_tiny_t5

FUSION_NAMES = ["last", "global-softmax", "transformer-softmax"]
#: small fusion options so tiny models stay fast
TINY_FUSION_OPTIONS = {"transformer-softmax": {"ffn_dim": 64}}


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny-models")
    make_tiny_bert(root / "bert")
    make_tiny_bert(root / "bert-wide", layers=4, hidden=40)
    make_tiny_t5(root / "t5")
    make_tiny_llama(root / "llama")
    return root


@pytest.fixture(scope="session")
def _base_cache() -> dict:
    return {}


@pytest.fixture
def make_bridge(tiny_dir, _base_cache):
    """make_bridge(encoder="bert"|"t5", fusion=..., device="cpu", **config) -> a fresh Bridge.

    On the CPU, base models are loaded once per (encoder, llm) pair and shared; they are frozen.
    On another device they are loaded afresh (moving shared ones would move every CPU bridge).
    """

    def make(
        encoder: str = "bert",
        fusion: str = "transformer-softmax",
        seed: int = 0,
        device: str = "cpu",
        **kwargs,
    ):
        config = BridgeConfig(
            encoder=str(tiny_dir / encoder),
            llm=str(tiny_dir / "llama"),
            fusion=fusion,
            fusion_options=kwargs.pop("fusion_options", TINY_FUSION_OPTIONS.get(fusion, {})),
            **kwargs,
        )
        if device != "cpu":
            base = load_base_models(config, device=device)
            return _seeded(lambda: build_bridge(config, device=device, base=base), seed)
        key = (config.encoder, config.llm, config.freeze_encoder)
        if key not in _base_cache or not config.freeze_encoder:
            base = load_base_models(config, device="cpu")
            if not config.freeze_encoder:
                return _seeded(lambda: build_bridge(config, device="cpu", base=base), seed)
            _base_cache[key] = base
        base: BaseModels = _base_cache[key]
        return _seeded(lambda: build_bridge(config, device="cpu", base=base), seed)

    return make


def _seeded(fn, seed):
    torch.manual_seed(seed)
    return fn()


def marker_example(rng: random.Random) -> tuple[str, str]:
    """Synthetic task: the label is "yes" iff the word "marker" occurs in the text."""
    n = rng.randint(3, 10)
    words = [f"w{rng.randint(0, 39)}" for _ in range(n)]
    positive = rng.random() < 0.5
    if positive:
        words.insert(rng.randint(0, n), "marker")
    return "text : " + " ".join(words) + " label :", "yes" if positive else "no"


@pytest.fixture(autouse=True)
def _quiet_threads():
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    yield


@pytest.fixture(scope="session")
def marker_task(tmp_path_factory) -> Path:
    """A custom task spec (CSV files) for the synthetic marker task; returns the spec path."""
    root = tmp_path_factory.mktemp("marker-task")
    for name, n, seed in (("train.csv", 600, 1), ("dev.csv", 60, 2), ("test.csv", 60, 3)):
        rng = random.Random(seed)
        rows = [marker_example(rng) for _ in range(n)]
        (root / name).write_text("text,label\n" + "".join(f'"{x}",{y}\n' for x, y in rows), encoding="utf-8")
    spec = root / "marker.yaml"
    spec.write_text(
        "name: marker\n"
        'template: "{text}"\n'
        "labels: {yes: 'yes', no: 'no'}\n"
        "train: train.csv\n"
        "dev: dev.csv\n"
        "test:\n  - {path: test.csv, language: en}\n",
        encoding="utf-8",
    )
    return spec


def tiny_run_config(tiny_dir: Path, spec: Path, output_dir: Path, **train_kwargs):
    """A RunConfig for the marker task on the tiny models."""
    from layerbridge.config import RunConfig, TaskConfig, TrainConfig

    train = {
        "output_dir": str(output_dir),
        "lr": 3e-3,
        "max_steps": 40,
        "batch_size": 8,
        "eval_every": 20,
        "save_every": 20,
        "log_every": 5,
        "dev_limit": 60,
        "seed": 7,
        **train_kwargs,
    }
    return RunConfig(
        bridge=BridgeConfig(
            encoder=str(tiny_dir / "bert"),
            llm=str(tiny_dir / "llama"),
            fusion="transformer-softmax",
            fusion_options={"ffn_dim": 64},
        ),
        task=TaskConfig(name="custom", spec=str(spec)),
        train=TrainConfig(**train),
    )
