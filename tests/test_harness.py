"""lm-evaluation-harness integration, offline: a local YAML task, tiny random models."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from lm_eval.api.instance import Instance

from layerbridge import save_bridge
from layerbridge.config import EvalConfig, TaskConfig
from layerbridge.errors import ConfigError
from layerbridge.evaluation import evaluate
from layerbridge.evaluation.predict import generate_texts, score_texts
from layerbridge.harness import BridgeLM, cut_at
from layerbridge.tasks import get_task
from tests.test_bridge import LABELS, PROMPTS
from tests.test_checkpoint import _randomise
from tests.test_sib200 import write_sib


@pytest.fixture
def bridge(make_bridge):
    bridge = make_bridge("bert", "transformer-softmax")
    _randomise(bridge)
    return bridge.eval()


def _requests(kind: str, pairs) -> list[Instance]:
    return [Instance(kind, {}, args, i) for i, args in enumerate(pairs)]


def test_loglikelihood_equals_label_scoring(bridge):
    """Context -> soft prompt, continuation (+ EOS) scored: exactly layerbridge's label scores."""
    model = BridgeLM(bridge, batch_size=2)
    pairs = [(p, label) for p in PROMPTS for label in LABELS]
    got = model.loglikelihood(_requests("loglikelihood", pairs))
    expected = score_texts(bridge, PROMPTS, LABELS)
    for (p, label), (logprob, _) in zip(pairs, got, strict=True):
        assert logprob == pytest.approx(expected[PROMPTS.index(p), LABELS.index(label)], abs=1e-5)


def test_greedy_flag_and_bare_continuations(bridge):
    model = BridgeLM(bridge, eos=False)
    greedy_ids = bridge.generate_ids(*_encode(bridge, PROMPTS[:1]), max_new_tokens=2)[0]
    assert greedy_ids, "the random model stopped at once; pick another seed"
    greedy_text = bridge.llm_tokenizer.decode(greedy_ids[:1])
    other_id = next(i for i in range(5, 60) if i != greedy_ids[0])
    other_text = bridge.llm_tokenizer.decode([other_id])
    (greedy, other) = model.loglikelihood(
        _requests("loglikelihood", [(PROMPTS[0], greedy_text), (PROMPTS[0], other_text)])
    )
    assert greedy[1] is True and other[1] is False and greedy[0] > other[0]


def _encode(bridge, prompts):
    from layerbridge.evaluation.predict import encode_texts

    return encode_texts(bridge, prompts)


def test_generate_until_stops_at_the_until_strings(bridge):
    model = BridgeLM(bridge, batch_size=2)
    free = model.generate_until(
        _requests("generate_until", [(p, {"until": [], "max_gen_toks": 8}) for p in PROMPTS])
    )
    assert free == generate_texts(bridge, PROMPTS, max_new_tokens=8)
    text = max(free, key=len)
    assert len(text) >= 4, "the random model generated too little text for this test"
    stop = text[len(text) // 2 : len(text) // 2 + 2]
    (cut,) = model.generate_until(
        _requests(
            "generate_until", [(PROMPTS[free.index(text)], {"until": [stop, "zzz"], "max_gen_toks": 8})]
        )
    )
    assert cut == text[: text.find(stop)] and stop not in cut
    assert cut_at("a. b\nc", ["\n", "."]) == "a" and cut_at("abc", ["x"]) == "abc"


def test_rolling_loglikelihood_is_refused_with_a_reason(bridge):
    with pytest.raises(ConfigError, match="no context to encode"):
        BridgeLM(bridge).loglikelihood_rolling(_requests("loglikelihood_rolling", [("text",)]))


@pytest.fixture
def local_task(bridge, tmp_path, monkeypatch):
    """28 SIB-200 rows (English + Sinhala) as JSON lines, a harness YAML task over them, and
    layerbridge's own accuracy on the same rows with the same bridge."""
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    sib = write_sib(tmp_path, {"eng_Latn": "en", "sin_Sinh": "other"})
    # label strings the tiny LLM's word vocabulary knows (SIB-200's own would all be [UNK]: ties)
    task = get_task(TaskConfig(name="sib200", data_dir=str(sib), labels=[f"w{30 + i}" for i in range(7)]))
    languages = ["eng_Latn", "sin_Sinh"]
    ours = evaluate(bridge, task, EvalConfig(languages=languages, bootstrap=10), progress=False)
    rows = [
        {"text": ex.fields["text"], "label": ex.label}
        for lang in languages
        for ex in task.load("test", lang).examples
    ]
    correct = sum(ours["languages"][lang]["accuracy"] * ours["languages"][lang]["n"] for lang in languages)
    data = tmp_path / "sib-rows.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    spec = {
        "task": "sib_local",
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data)}},
        "test_split": "test",
        "output_type": "multiple_choice",
        "doc_to_text": task.template.replace("{text}", "{{text}}"),
        "doc_to_target": "label",
        "doc_to_choice": list(task.label_strings),
        "target_delimiter": "",
        "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
    }
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "sib_local.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    assert len(rows) == 28
    return {
        "tasks": tmp_path / "tasks",
        "accuracy": correct / len(rows),
        "bridge": save_bridge(bridge, tmp_path / "bridge"),
    }


def test_simple_evaluate_on_a_local_yaml_task_equals_layerbridge_eval(local_task):
    """The bridge loaded by name through lm_eval.simple_evaluate: the same accuracy as `layerbridge eval`."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    out = lm_eval.simple_evaluate(
        model="layerbridge",
        model_args=f"bridge={local_task['bridge']},batch_size=8",
        tasks=["sib_local"],
        task_manager=TaskManager(include_path=str(local_task["tasks"])),
        device="cpu",
    )
    assert out["results"]["sib_local"]["acc,none"] == pytest.approx(local_task["accuracy"], abs=1e-9)


def test_layerbridge_lm_eval_command(local_task, tmp_path):
    from layerbridge.cli.main import main

    args = ["lm-eval", "run", "--model", "layerbridge", "--model_args", f"bridge={local_task['bridge']}"]
    args += ["--tasks", "sib_local", "--include_path", str(local_task["tasks"]), "--device", "cpu"]
    assert main([*args, "--output_path", str(tmp_path / "out")]) == 0
    (result,) = (tmp_path / "out").rglob("results_*.json")
    acc = json.loads(result.read_text())["results"]["sib_local"]["acc,none"]
    assert acc == pytest.approx(local_task["accuracy"], abs=1e-9)


def test_harness_model_loads_a_bridge_folder_like_from_pretrained(bridge, tmp_path):
    folder = bridge.save_pretrained(tmp_path / "b")
    model = BridgeLM(str(folder), device="cpu", batch_size="auto")
    (a,) = model.loglikelihood(_requests("loglikelihood", [(PROMPTS[0], LABELS[0])]))
    assert a[0] == pytest.approx(float(score_texts(bridge, PROMPTS[:1], LABELS[:1])[0, 0]), abs=1e-5)
    assert model.batch_size == 16 and isinstance(model.bridge, torch.nn.Module)
