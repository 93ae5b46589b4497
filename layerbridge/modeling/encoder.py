"""The multilingual encoder, returning the hidden states of all its layers.

Encoder-only models (BERT, XLM-R, e5, …) load through ``AutoModel``; for T5-family
encoder-decoder checkpoints (T5, mT5, umT5) only the encoder stack is loaded. Either way the
wrapper returns a ``[batch, tokens, layers, hidden]`` tensor with h^(1)..h^(L) (plus the
embedding output h^(0) first when ``include_embeddings``).
"""

from __future__ import annotations

import inspect

import torch
from torch import nn

from layerbridge.errors import ModelError

#: ``model_type`` -> class name of its encoder-only variant in ``transformers``.
T5_ENCODERS = {"t5": "T5EncoderModel", "mt5": "MT5EncoderModel", "umt5": "UMT5EncoderModel"}


def encoder_dims(config) -> tuple[int, int]:
    """(hidden size D, number of layers L) from a ``transformers`` config."""
    hidden = getattr(config, "hidden_size", None) or getattr(config, "d_model", None)
    layers = getattr(config, "num_hidden_layers", None) or getattr(config, "num_layers", None)
    if not hidden or not layers:
        raise ModelError(f"cannot read hidden size / layer count from the {config.model_type!r} config")
    return int(hidden), int(layers)


#: model types whose position ids start after the padding index (usable = max_positions - pad - 1)
OFFSET_POSITIONS = ("roberta", "xlm-roberta", "camembert", "xlm-roberta-xl")


def max_input_tokens(config) -> int | None:
    """Longest input the encoder's position embeddings allow (None: relative positions, no limit)."""
    positions = getattr(config, "max_position_embeddings", None)
    if not positions:
        return None
    if config.model_type in OFFSET_POSITIONS:
        positions -= int(getattr(config, "pad_token_id", 1) or 1) + 1
    return int(positions)


def read_encoder_config(path: str, trust_remote_code: bool = False):
    """The encoder checkpoint's ``transformers`` config (no weights read)."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as err:
        raise ModelError(f"cannot load encoder {path!r}: {err}") from None


def load_encoder_model(path: str, dtype: torch.dtype, trust_remote_code: bool = False) -> nn.Module:
    """Load the encoder half of any Hugging Face checkpoint."""
    import transformers
    from transformers import AutoModel

    config = read_encoder_config(path, trust_remote_code)
    kwargs = {"dtype": dtype, "trust_remote_code": trust_remote_code}
    if config.model_type in T5_ENCODERS:
        cls = getattr(transformers, T5_ENCODERS[config.model_type])
        return cls.from_pretrained(path, **kwargs)
    try:
        auto_cls = AutoModel._model_mapping[type(config)]
    except (AttributeError, KeyError):
        auto_cls = None
    if auto_cls is not None and "add_pooling_layer" in inspect.signature(auto_cls.__init__).parameters:
        kwargs["add_pooling_layer"] = False  # BERT-style pooler: unused, skip its random init
    model = AutoModel.from_pretrained(path, **kwargs)
    if getattr(model.config, "is_encoder_decoder", False):
        model = model.get_encoder()
    return model


class LayerStackEncoder(nn.Module):
    """Wraps a ``transformers`` encoder; ``forward`` returns all layer states stacked.

    Args:
        model: the encoder (``output_hidden_states`` must be supported).
        include_embeddings: also return the embedding-layer output h^(0).
    """

    def __init__(self, model: nn.Module, include_embeddings: bool = False) -> None:
        super().__init__()
        self.model = model
        self.include_embeddings = include_embeddings
        self.hidden_size, self.num_model_layers = encoder_dims(model.config)

    @property
    def num_layers(self) -> int:
        """Number of layers handed to fusion: L, or L + 1 with the embedding output."""
        return self.num_model_layers + int(self.include_embeddings)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """input_ids, attention_mask: [B, T] -> states [B, T, L, D]."""
        out = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            output_hidden_states=True,
            return_dict=True,
        )
        hidden_states = getattr(out, "hidden_states", None)
        if not hidden_states:
            raise ModelError(
                f"encoder {type(self.model).__name__} returned no hidden states; layerbridge "
                "needs a model that supports output_hidden_states=True"
            )
        expected = self.num_model_layers + 1
        if len(hidden_states) != expected:
            raise ModelError(
                f"encoder returned {len(hidden_states)} hidden states, expected {expected} "
                f"(embeddings + {self.num_model_layers} layers)"
            )
        layers = hidden_states if self.include_embeddings else hidden_states[1:]
        return torch.stack(layers, dim=2)  # [B, T, L, D]
