"""A disk cache of the frozen encoder's layer states, shared by epochs, fusions and seeds.

With a frozen encoder in eval mode, ``states = encoder(prompt)`` [n, L, D] is a pure function
of the encoder's weights and the prompt's token ids, so a run can compute it once and every
later epoch, fusion or seed on the same prompts can read it instead of running the encoder::

    key = sha256(encoder fingerprint, compute precision, batch size, the exact token-id lists)
    fingerprint = sha256(layer selection, and every encoder tensor's name, dtype, shape, bytes)

The token ids already carry the data, the prompt template, the tokenizer and ``max_length``,
so a change of any of them (or of a single encoder weight, or its dtype) is a different key:
a stale entry can never be served. One file per key, ``<key>.safetensors``: ``states``
[N_tokens, L, D] (all prompts packed, in the encoder's dtype, exactly what it computed) and
``offsets`` [n + 1]; written atomically, read lazily (memory-mapped slices per batch).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from layerbridge.data.batching import pad_batch, sorted_batches
from layerbridge.errors import ConfigError
from layerbridge.modeling.encoder import LayerStackEncoder
from layerbridge.runtime import autocast

FORMAT = "layerbridge-encoder-states/1"


def default_cache_dir() -> Path:
    """``$LAYERBRIDGE_CACHE/encoder-states`` (the model cache's root, see builtin/cache.py)."""
    from layerbridge.builtin import cache_root

    return cache_root() / "encoder-states"


#: fingerprints already computed, by (name, storage, in-place version) of every tensor: hashing
#: e5-small's weights takes ~1 s, and an evaluation asks once per language
_FINGERPRINTS: dict[tuple, str] = {}


def encoder_fingerprint(encoder: LayerStackEncoder) -> str:
    """sha256 over the layer selection and every tensor (name, dtype, shape, bytes) of the encoder.

    Remembered per tensor identity and version (``Tensor._version`` counts in-place writes), so
    a weight changed in place is hashed again.
    """
    state = sorted(encoder.state_dict().items())
    identity = (encoder.include_embeddings, *((n, t.data_ptr(), t._version, t.dtype) for n, t in state))
    if identity in _FINGERPRINTS:
        return _FINGERPRINTS[identity]
    digest = hashlib.sha256(json.dumps({"include_embeddings": encoder.include_embeddings}).encode())
    for name, tensor in state:
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    _FINGERPRINTS[identity] = digest.hexdigest()
    return _FINGERPRINTS[identity]


def cache_key(
    fingerprint: str, prompt_ids: Sequence[Sequence[int]], precision: str = "fp32", batch_size: int = 32
) -> str:
    """sha256 of the encoder fingerprint, the compute precision (autocast changes the states), the
    batch size (batches are length-sorted, so it fixes each prompt's padding and thus the float
    rounding) and the exact token-id lists (order included)."""
    head = f"{FORMAT}|{fingerprint}|{precision}|{batch_size}|{len(prompt_ids)}"
    digest = hashlib.sha256(head.encode())
    for ids in prompt_ids:
        digest.update(json.dumps(list(ids)).encode())
    return digest.hexdigest()


def check_cacheable(encoder: nn.Module) -> None:
    """A ConfigError unless the encoder is frozen and deterministic (eval mode)."""
    if any(p.requires_grad for p in encoder.parameters()) or encoder.training:
        raise ConfigError(
            "the encoder-state cache needs a frozen encoder in eval mode "
            "(bridge.freeze_encoder: true, bridge.encoder_dropout: false)"
        )


class EncoderStateCache:
    """Layer states of a fixed list of prompts: ``batch(indices)`` -> [B, T, L, D] (zeros on padding)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = safe_open(str(path), framework="pt")
        self._states = self._file.get_slice("states")
        self.offsets = self._file.get_tensor("offsets").tolist()
        self.key = self._file.metadata()["key"]

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def example(self, index: int) -> torch.Tensor:
        """[n, L, D] states of prompt ``index``."""
        return self._states[self.offsets[index] : self.offsets[index + 1]]

    def batch(self, indices: Sequence[int]) -> torch.Tensor:
        """Right-padded [B, T, L, D] states of these prompts (the collated batch's layout)."""
        parts = [self.example(i) for i in indices]
        out = parts[0].new_zeros(len(parts), max(p.shape[0] for p in parts), *parts[0].shape[1:])
        for row, part in enumerate(parts):
            out[row, : part.shape[0]] = part
        return out

    @classmethod
    def load_or_build(
        cls,
        encoder: LayerStackEncoder,
        prompt_ids: Sequence[Sequence[int]],
        pad_id: int,
        directory: str | Path,
        batch_size: int = 32,
        precision: str = "fp32",
    ) -> EncoderStateCache:
        """The cache file for these prompts under ``directory``: read if present, else computed
        (encoder forward over length-sorted batches of ``batch_size``, no gradients, under the
        autocast of ``precision``, a resolved compute precision) and written atomically."""
        check_cacheable(encoder)
        key = cache_key(encoder_fingerprint(encoder), prompt_ids, precision, batch_size)
        path = Path(directory) / f"{key}.safetensors"
        if not path.exists():
            states = compute_states(encoder, prompt_ids, pad_id, batch_size, precision)
            offsets = torch.tensor([0] + [len(ids) for ids in prompt_ids]).cumsum(0)
            _write(path, {"states": states, "offsets": offsets}, {"format": FORMAT, "key": key})
        cache = cls(path)
        if cache.key != key or len(cache) != len(prompt_ids):
            raise ConfigError(f"encoder-state cache {path} does not hold the states it is named for")
        return cache


def _write(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """safetensors file written beside ``path`` and moved onto it (never half-written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        save_file(tensors, str(tmp), metadata=metadata)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@torch.no_grad()
def compute_states(
    encoder: LayerStackEncoder,
    prompt_ids: Sequence[Sequence[int]],
    pad_id: int,
    batch_size: int,
    precision: str = "fp32",
) -> torch.Tensor:
    """All prompts' layer states, packed in prompt order: [sum_i n_i, L, D]."""
    device = next(encoder.parameters()).device
    offsets = [0]
    for ids in prompt_ids:
        offsets.append(offsets[-1] + len(ids))
    out = None
    for rows in sorted_batches([len(ids) for ids in prompt_ids], batch_size):
        ids, mask = pad_batch([prompt_ids[i] for i in rows], pad_id)
        with autocast(device, precision):
            states = encoder(ids.to(device), mask.to(device)).cpu()  # [B, T, L, D]
        if out is None:
            out = states.new_empty(offsets[-1], *states.shape[2:])  # [N_tokens, L, D]
        for row, i in enumerate(rows):
            out[offsets[i] : offsets[i + 1]] = states[row, : offsets[i + 1] - offsets[i]]
    return out
