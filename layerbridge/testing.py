"""Tiny random models for tests, smoke runs and examples (no download, seconds to build).

Each ``make_tiny_*`` writes an ordinary Hugging Face checkpoint (config, safetensors weights,
``tokenizer.json``) to a folder, so it is loaded through exactly the same code path as a
real model. The tokenizers are word-level over a small vocabulary (unknown words map to
``[UNK]``); that is enough to express synthetic tasks such as "does the marker occur".
"""

from __future__ import annotations

from pathlib import Path

import torch

#: Words the tiny tokenizers know besides their special tokens.
WORDS = (
    [f"w{i}" for i in range(40)]
    + ["marker", "yes", "no", "text", "label", "premise", "hypothesis", "review", "news", "sentence"]
    + ["category", "entailment", "neutral", "contradiction", "positive", "negative", "very"]
    + ["business", "sports", "political", "entertainment", "science", "the", "a", "is", ":", ".", ","]
)


def _word_tokenizer(specials: list[str], template: str | None, lowercase: bool = True):
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.decoders import WordPiece as WordPieceDecoder
    from tokenizers.models import WordLevel

    vocab = {tok: i for i, tok in enumerate(specials + WORDS)}
    tok = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    if lowercase:
        tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = (
        pre_tokenizers.WhitespaceSplit()
        if not lowercase
        else pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    )
    tok.decoder = WordPieceDecoder(prefix="##")
    if template:
        tok.post_processor = processors.TemplateProcessing(
            single=template, special_tokens=[(s, vocab[s]) for s in specials if s in template]
        )
    return tok, len(vocab)


def _save_tokenizer(tok, out: Path, **special: str) -> None:
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(tokenizer_object=tok, **special)
    fast.model_max_length = 512
    fast.save_pretrained(out)


def make_tiny_bert(out: str | Path, layers: int = 3, hidden: int = 32, seed: int = 0) -> Path:
    """A BERT-like encoder (absolute positions, post-LN) with a [CLS] … [SEP] tokenizer."""
    from transformers import BertConfig, BertModel

    out = Path(out)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    tok, vocab = _word_tokenizer(specials, "[CLS] $A [SEP]")
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        intermediate_size=2 * hidden,
        max_position_embeddings=256,
        pad_token_id=0,
    )
    BertModel(config, add_pooling_layer=False).save_pretrained(out)
    _save_tokenizer(tok, out, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]")
    return out


def make_tiny_t5(out: str | Path, layers: int = 2, hidden: int = 32, seed: int = 0) -> Path:
    """A T5-like encoder-decoder (relative positions, pre-LN); the bridge uses its encoder."""
    from transformers import T5Config, T5ForConditionalGeneration

    out = Path(out)
    specials = ["<pad>", "</s>", "[UNK]"]
    tok, vocab = _word_tokenizer(specials, "$A </s>")
    torch.manual_seed(seed)
    config = T5Config(
        vocab_size=vocab,
        d_model=hidden,
        d_kv=8,
        d_ff=2 * hidden,
        num_layers=layers,
        num_decoder_layers=1,
        num_heads=4,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    T5ForConditionalGeneration(config).save_pretrained(out)
    _save_tokenizer(tok, out, pad_token="<pad>", eos_token="</s>", unk_token="[UNK]")
    return out


def make_tiny_llama(out: str | Path, layers: int = 2, hidden: int = 48, seed: int = 0) -> Path:
    """A Llama-like causal LM (RoPE, GQA, RMSNorm) with BOS ``<s>`` and EOS ``</s>``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    out = Path(out)
    specials = ["<pad>", "<s>", "</s>", "[UNK]"]
    tok, vocab = _word_tokenizer(specials, None)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        tie_word_embeddings=False,
        initializer_range=0.15,
    )
    LlamaForCausalLM(config).save_pretrained(out)
    _save_tokenizer(tok, out, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="[UNK]")
    return out
