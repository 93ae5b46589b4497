"""The code's shape: layers import downwards, short functions, one data path, one training step."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

from layerbridge.data.encoded import Collator, EncodedExamples, llm_positions
from layerbridge.data.types import Example
from layerbridge.evaluation.predict import encode_texts
from layerbridge.training.logger import Throughput
from tests.test_bridge import PROMPTS

PACKAGE = Path(__file__).resolve().parents[1] / "layerbridge"

#: lower number = lower layer; a module may import its own layer or lower ones only
LAYERS = {
    "errors": 0, "registry": 0, "io": 0, "runtime": 0, "languages": 0,
    "config": 1,
    "data": 2, "tasks": 2, "builtin": 2, "report": 2,
    "modeling": 3, "checkpoint": 3, "testing": 3,
    "training": 4, "evaluation": 4,
    "experiments": 5, "bench": 5, "api": 5, "harness": 5,
    "cli": 6,
}  # fmt: skip


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[0] != "__init__":
            yield path, parts[0], ast.parse(path.read_text(encoding="utf-8"))


def test_no_module_imports_a_higher_layer():
    upward = []
    for path, top, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("layerbridge."):
                target = node.module.split(".")[1]
                if LAYERS[target] > LAYERS[top]:
                    upward.append(f"{path.relative_to(PACKAGE)} imports {node.module}")
    assert not upward, upward


@pytest.mark.parametrize("package", ["training", "evaluation", "experiments", "cli"])
def test_functions_are_short(package):
    long = []
    for path, top, tree in _modules():
        if top != package:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.end_lineno - node.lineno + 1 > 60:
                long.append(f"{path.name}:{node.lineno} {node.name}")
    assert not long, long


def test_token_count_is_what_the_llm_processes(make_bridge):
    """EncodedExamples.llm_tokens (used by the logs and the benchmark) = real LLM input positions."""
    bridge = make_bridge("bert", "last")
    examples = [Example({"text": p}, i % 2, f"x/{i}") for i, p in enumerate(PROMPTS)]
    encoded = EncodedExamples.build("{text}", examples, ["yes", "very positive"], bridge)
    positions = 0
    for i in range(len(examples)):  # each example alone: what forward() feeds the LLM, unpadded
        batch = Collator(encoded)([i])
        prompt, _ = bridge.soft_prompt(batch["input_ids"], batch["attention_mask"])
        _, prefix_mask = bridge.build_prefix(prompt, batch["attention_mask"])
        positions += int(prefix_mask.sum() + batch["target_mask"][:, :-1].sum())
    assert encoded.llm_tokens(range(len(examples))) == positions
    batch = Collator(encoded)(range(len(examples)))
    per_row = llm_positions(batch["attention_mask"].sum(1), batch["target_mask"].sum(1))
    assert int(per_row.sum()) == positions


def test_text_prompts_are_right_padded_whatever_the_tokenizer_says(make_bridge):
    """Plain-text prompts go through the one data path: a left-padding tokenizer changes nothing."""
    bridge = make_bridge("bert", "last")
    ids, mask = encode_texts(bridge, PROMPTS)
    bridge.encoder_tokenizer.padding_side = "left"
    try:
        ids_left, mask_left = encode_texts(bridge, PROMPTS)
    finally:
        bridge.encoder_tokenizer.padding_side = "right"
    assert torch.equal(ids, ids_left) and torch.equal(mask, mask_left)
    assert (mask[:, 0] == 1).all() and mask.sum(1).tolist()[1] < ids.shape[1]


def _tiny_bench_data(bridge):
    """Twelve two-label examples of the test prompts, as the benchmark's data."""
    from layerbridge.bench.run import BenchData

    examples = [Example({"text": PROMPTS[i % 3]}, i % 2, f"x/{i}") for i in range(12)]
    encoded = EncodedExamples.build("{text}", examples, ["yes", "no"], bridge)
    return BenchData(
        examples, encoded, [PROMPTS[i % 3] for i in range(12)], [["yes", "no"][i % 2] for i in range(12)]
    )


def test_benchmark_times_the_recipes_own_step(make_bridge, monkeypatch):
    from layerbridge.bench.run import BenchConfig, _train_case
    from layerbridge.training.recipe import TrainRecipe

    calls = []
    original = TrainRecipe.loss_step

    def spy(self, batch):
        calls.append(batch["input_ids"].shape[0])
        return original(self, batch)

    monkeypatch.setattr(TrainRecipe, "loss_step", spy)
    bridge = make_bridge("bert", "transformer-softmax")
    data = _tiny_bench_data(bridge)
    config = BenchConfig(steps=2, warmup=1, naive=False)
    result = _train_case(bridge, data, 4, config, peak=1e6)
    assert calls == [4, 4, 4]  # warm-up + timed steps, all through TrainRecipe.loss_step
    assert result["optimised"]["step_ms"] > 0 and result["optimised"]["mfu"] > 0


def test_benchmark_profiles_one_step_of_each_design(make_bridge):
    from layerbridge.bench.run import BenchConfig, _train_case
    from layerbridge.report.bench import bench_markdown

    bridge = make_bridge("bert", "transformer-softmax")
    data = _tiny_bench_data(bridge)
    result = _train_case(bridge, data, 4, BenchConfig(steps=3, warmup=1, profile=True), peak=1e6)
    ours, naive = result["optimised"], result["naive"]
    low, high = ours["step_ms_range"]
    assert low <= ours["step_ms_median"] <= high and low <= ours["step_ms"] <= high
    for design in (ours, naive):
        profile = design["profile"]
        assert profile["ops"] > 50 and profile["wall_ms"] > 0
        assert profile["launches"] == 0 and profile["device_ms"] == 0  # a CPU: no kernels
        assert profile["top"] and all(row["op"].startswith("aten::") for row in profile["top"])
    report = {
        "device": {"name": "cpu", "type": "cpu", "torch_threads": 1, "torch": "x", "transformers": "y"},
        "precision": "fp32",
        "peak_flops": 1e12,
        "peak_source": "test",
        "cases": [
            {
                "shape": "tiny",
                "train": [result],
                "eval": {"label_scoring_examples_per_s": 1.0, "generation_examples_per_s": 1.0},
            }
        ],
    }
    text = bench_markdown(report)
    assert "| tiny | 4 | optimised |" in text and "| tiny | 4 | naive |" in text and "Top operators" in text


def test_throughput_window_excludes_paused_time(monkeypatch):
    clock = iter([0.0, 1.0, 5.0, 7.0, 7.0, 9.0])
    monkeypatch.setattr("layerbridge.training.logger.time.perf_counter", lambda: next(clock))
    window = Throughput()  # starts at t=0
    window.add(loss=2.0, examples=8, tokens=100)
    with window.paused():  # paused from t=1 to t=5 (dev evaluation)
        pass
    window.add(loss=1.0, examples=8, tokens=100)
    record = window.flush()  # at t=7: 1 s + 2 s of training
    assert record == {"loss": 1.5, "examples_per_s": 16 / 3, "tokens_per_s": 200 / 3}
    assert window.train_seconds == 3.0
