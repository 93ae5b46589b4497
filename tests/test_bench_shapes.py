"""The paper-scale benchmark shapes match the published models (built on the meta device: no memory)."""

import torch
from transformers import LlamaForCausalLM, MT5EncoderModel

from layerbridge.bench.shapes import llama_1b_config, mt5_large_encoder_config


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_llama_1b_shape_has_the_published_parameter_count():
    with torch.device("meta"):
        llm = LlamaForCausalLM(llama_1b_config())
    # meta-llama/Llama-3.2-1B: 1,235,814,400 parameters (tied input/output embeddings)
    assert _count(llm) == 1_235_814_400
    assert llm.get_input_embeddings().weight.shape == (128256, 2048)


def test_mt5_large_encoder_shape():
    with torch.device("meta"):
        encoder = MT5EncoderModel(mt5_large_encoder_config())
    assert encoder.config.num_layers == 24 and encoder.config.d_model == 1024
    # shared embedding 250,112 x 1024 + 24 blocks of (attention 4 x 1024^2 + gated FFN 3 x 1024 x 2816
    # + 2 RMSNorm) + final norm + relative-position bias of the first block (32 buckets x 16 heads)
    block = 4 * 1024 * 1024 + 3 * 1024 * 2816 + 2 * 1024
    assert _count(encoder) == 250112 * 1024 + 24 * block + 1024 + 32 * 16
