"""Paper-scale model shapes with random weights (configs from published numbers, no download).

* mT5-large encoder (google/mt5-large config): d_model 1024, d_ff 2816, 24 layers,
  16 heads of 64, gated-GELU, vocabulary 250,112.
* Llama-3.2-1B (meta-llama/Llama-3.2-1B config): hidden 2048, intermediate 8192, 16 layers,
  32 heads / 8 KV heads, vocabulary 128,256, tied embeddings, RoPE theta 500,000.

The benchmark pairs them with the built-in tokenizers (e5's XLM-R vocabulary fits mT5's
table, SmolLM2's fits Llama's), which is all a throughput measurement needs.
"""

from __future__ import annotations

import torch


def mt5_large_encoder_config():
    from transformers import MT5Config

    return MT5Config(
        vocab_size=250112,
        d_model=1024,
        d_kv=64,
        d_ff=2816,
        num_layers=24,
        num_decoder_layers=24,
        num_heads=16,
        relative_attention_num_buckets=32,
        dropout_rate=0.1,
        layer_norm_epsilon=1e-6,
        feed_forward_proj="gated-gelu",
        tie_word_embeddings=False,
        pad_token_id=0,
        eos_token_id=1,
    )


def llama_1b_config():
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=128256,
        hidden_size=2048,
        intermediate_size=8192,
        num_hidden_layers=16,
        num_attention_heads=32,
        num_key_value_heads=8,
        head_dim=64,
        max_position_embeddings=131072,
        rms_norm_eps=1e-5,
        rope_theta=500000.0,
        tie_word_embeddings=True,
        bos_token_id=128000,
        eos_token_id=128001,
    )


def paper_scale_base(encoder_tokenizer, llm_tokenizer, dtype: torch.dtype, device: torch.device):
    """Random-weight mT5-large encoder + Llama-3.2-1B LLM in memory, with the given tokenizers."""
    from transformers import LlamaForCausalLM, MT5EncoderModel

    from layerbridge.modeling.builders import BaseModels

    torch.manual_seed(0)
    with torch.device(device):
        encoder = MT5EncoderModel(mt5_large_encoder_config()).to(dtype)
        llm = LlamaForCausalLM(llama_1b_config()).to(dtype)
    return BaseModels(encoder.eval(), encoder_tokenizer, llm.eval(), llm_tokenizer)
