"""Configuration objects: plain dataclasses that round-trip through JSON and YAML.

``RunConfig`` is what ``layerbridge train`` reads: ``bridge`` (the model), ``task`` (the data)
and ``train`` (the optimisation). Every field has the reference default from the paper's
code (the README's "Method" section), and any field can be overridden from the
command line with a dotted path: ``--set train.lr=6e-4 --set bridge.fusion=last``.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from layerbridge.errors import ConfigError
from layerbridge.io import load_yaml
from layerbridge.runtime import canonical_precision

C = TypeVar("C")


class ConfigMixin:
    """``to_dict`` / ``from_dict`` / JSON / YAML for dataclass configs, strict about keys."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any] | None) -> C:
        return _build(cls, data or {}, cls.__name__)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    @classmethod
    def from_json(cls: type[C], text: str) -> C:
        return cls.from_dict(json.loads(text))  # type: ignore[attr-defined]

    @classmethod
    def from_file(cls: type[C], path: str | Path) -> C:
        """Read a ``.json``, ``.yaml`` or ``.yml`` file."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as err:
            raise ConfigError(f"config file {path} is not valid UTF-8 ({err.reason})") from None
        try:
            data = json.loads(text) if path.suffix == ".json" else load_yaml(text)
        except (json.JSONDecodeError, yaml.YAMLError) as err:
            raise ConfigError(f"config file {path} is not valid {path.suffix[1:]}: {err}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path} must hold a mapping at the top level")
        return cls.from_dict(data)  # type: ignore[attr-defined]

    def replace(self: C, **changes: Any) -> C:
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


def _build(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(unknown)} in {where}; known: {', '.join(sorted(fields))}"
        )
    kwargs = {name: _coerce(hints[name], value, f"{where}.{name}") for name, value in data.items()}
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, where: str) -> Any:
    """Check (and gently convert: int->float, list->tuple) ``value`` against type ``tp``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, where)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if errors else f"{where}: bad value {value!r}")
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where)
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"{where} must have {len(args)} items, got {len(value)}")
            return tuple(_coerce(a, v, where) for a, v in zip(args, value, strict=True))
        inner = args[0] if args else Any
        items = [_coerce(inner, v, where) for v in value]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a mapping, got {value!r}")
        return dict(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return value
    return value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides (values parsed as YAML) to a nested dict, in place."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        path, raw = item.split("=", 1)
        keys = path.strip().split(".")
        target = data
        for key in keys[:-1]:
            target = target.setdefault(key, {})
            if not isinstance(target, dict):
                raise ConfigError(f"override {item!r}: {key} is not a section")
        try:
            target[keys[-1]] = load_yaml(raw) if raw.strip() else ""
        except yaml.YAMLError:
            target[keys[-1]] = raw
    return data


@dataclass
class BridgeConfig(ConfigMixin):
    """Everything that defines a bridge: the two frozen base models and the trained parts.

    ``encoder`` / ``llm`` are a built-in name (``e5-small``, ``smollm2-135m``), a Hugging
    Face model id, or a local path.
    """

    encoder: str = "e5-small"
    llm: str = "smollm2-135m"
    fusion: str = "transformer-softmax"
    #: keyword arguments of the fusion (e.g. ``num_heads``, ``ffn_dim``, ``dropout``)
    fusion_options: dict[str, Any] = field(default_factory=dict)
    projector: str = "linear"
    #: keyword arguments of the projector (e.g. ``hidden_dim`` for ``mlp``)
    projector_options: dict[str, Any] = field(default_factory=dict)
    #: "default" (PyTorch init, as the reference) or "zeros": the projector's last layer
    #: starts at zero, i.e. training starts from an empty soft prompt (steadier on short budgets)
    projector_init: str = "default"
    #: "none" (the paper, LangBridge) or "rms": RMS-normalise each soft-prompt vector and scale
    #: it by a learned gain that starts at the LLM's input-embedding RMS (NormedProjector)
    projector_norm: str = "none"
    #: include the encoder's embedding-layer output h^(0) among the fused layers
    include_embeddings: bool = False
    freeze_encoder: bool = True
    #: keep the frozen encoder's dropout active while training (the reference code leaves the
    #: encoder in train mode); default off: the frozen encoder is deterministic
    encoder_dropout: bool = False
    #: "zeros" (reference), "normal" (LangBridge-style random init, std 0.02) or "token": the
    #: LLM's own input embedding of the last token of ``boundary_token`` (docs/recipe.md)
    boundary_init: str = "zeros"
    #: the text whose last token starts the boundary when ``boundary_init`` is "token"
    boundary_token: str = ":"
    #: encoder tokens per prompt (longer prompts are shortened, keeping the template)
    max_length: int = 200
    #: start the LLM input with the LLM's BOS embedding when it has one
    use_bos: bool = True
    #: precision of the frozen base models (auto | fp32 | bf16 | fp16, see layerbridge.runtime);
    #: "auto" = bf16 on a bf16 GPU or a native-bf16 CPU (held in the compute dtype), else fp32
    dtype: str = "auto"
    trust_remote_code: bool = False

    def __post_init__(self) -> None:
        self.dtype = canonical_precision(self.dtype, "dtype")
        if self.projector_init not in ("default", "zeros"):
            raise ConfigError(f"unknown projector_init {self.projector_init!r}; choose default or zeros")
        if self.projector_norm not in ("none", "rms"):
            raise ConfigError(f"unknown projector_norm {self.projector_norm!r}; choose none or rms")
        if self.projector_norm == "rms" and self.projector_init == "zeros":
            raise ConfigError("projector_norm rms cannot start from projector_init zeros (0 has no norm)")
        if self.boundary_init not in ("zeros", "normal", "token"):
            raise ConfigError(f"unknown boundary_init {self.boundary_init!r}; choose zeros, normal or token")
        if self.boundary_init == "token" and not self.boundary_token.strip(" "):
            raise ConfigError("bridge.boundary_token must name at least one character (boundary_init token)")
        # fusion / projector names are checked by the model registries
        # (layerbridge.modeling.builders.check_bridge_config), so config does not import modeling
        if self.max_length < 4:
            raise ConfigError(f"max_length must be at least 4, got {self.max_length}")


SOURCES = ("auto", "local", "hub")
#: train.schedule names -> transformers' scheduler names (linear warm-up first in each)
SCHEDULES = {"cosine": "cosine", "linear": "linear", "constant": "constant_with_warmup"}


@dataclass
class TaskConfig(ConfigMixin):
    """Which task, where its data comes from, and optional prompt/label overrides."""

    name: str = "sinhala-news"
    #: a folder in the layout of the README's "Data" section; default $LAYERBRIDGE_DATA
    data_dir: str | None = None
    #: "local" (data_dir), "hub" (Hugging Face datasets), or "auto" (local when present)
    source: str = "auto"
    #: prompt template with the task's fields in braces, e.g. "Review: {review} Label: "
    template: str | None = None
    #: the strings the LLM must produce, one per class in the task's class order
    labels: list[str] | None = None
    #: test languages to evaluate (default: all of the task's languages)
    languages: list[str] | None = None
    #: YAML/JSON spec of a custom task (name: custom)
    spec: str | None = None

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ConfigError(f"unknown data source {self.source!r}; choose one of: {', '.join(SOURCES)}")


@dataclass
class EvalConfig(ConfigMixin):
    """How to evaluate a bridge on a task."""

    split: str = "test"
    #: languages to evaluate (default: the task's evaluation languages)
    languages: list[str] | None = None
    #: "score": pick the label string with the highest log-probability (default);
    #: "generate": greedy generation, exact match against the label strings (the paper's metric);
    #: "both": label scoring as the main metric and generation beside it, from one scoring pass
    #: (only examples whose greedy continuation is no label are actually generated)
    mode: str = "score"
    #: "sum" of label-token log-probs (= probability of generating the label), or "mean"
    score: str = "sum"
    #: at most this many examples per language (class-balanced, deterministic)
    limit: int | None = None
    batch_size: int = 32
    bootstrap: int = 1000
    seed: int = 0
    #: "auto" = bf16 autocast on GPU and on a CPU with native bf16 (AMX / AVX512-BF16), else fp32
    precision: str = "auto"
    #: languages the encoder was pretrained on, for grouped reports (default: known for the
    #: XLM-R family, e.g. e5; unknown otherwise)
    covered_languages: list[str] | None = None
    #: read the frozen encoder's layer states of the evaluation prompts from the disk cache
    #: (modeling/state_cache.py): every later bridge (fusion, seed) on the same encoder and
    #: data skips the encoder; computed in the same batches, so the scores are identical
    encoder_cache: bool = False
    #: where the cache files go (null: $LAYERBRIDGE_CACHE/encoder-states)
    encoder_cache_dir: str | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("score", "generate", "both"):
            raise ConfigError(f"unknown evaluation mode {self.mode!r}; choose score, generate or both")
        if self.score not in ("sum", "mean"):
            raise ConfigError(f"unknown score {self.score!r}; choose sum or mean")
        self.precision = canonical_precision(self.precision)
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"limit must be positive, got {self.limit}")
        if self.batch_size < 1:
            raise ConfigError(f"batch size must be at least 1, got {self.batch_size}")
        if self.bootstrap < 1:
            raise ConfigError(f"bootstrap resamples must be at least 1, got {self.bootstrap}")
        if self.split not in ("train", "dev", "test"):
            raise ConfigError(f"unknown split {self.split!r}; choose dev or test")


@dataclass
class TrainConfig(ConfigMixin):
    """Optimisation settings. Defaults follow the paper's reference code (README, "The method")."""

    output_dir: str = "runs/bridge"
    seed: int = 42
    lr: float = 3e-5
    #: learning rate of the fusion's parameters (default: ``lr``); the projector uses ``lr``
    fusion_lr: float | None = None
    #: learning rate of the boundary vector (default: ``lr``); see docs/recipe.md, last section
    boundary_lr: float | None = None
    betas: tuple[float, float] = (0.8, 0.999)
    weight_decay: float = 3e-7
    epochs: float = 3.0
    #: optimizer steps; overrides ``epochs`` when set
    max_steps: int | None = None
    #: examples per device per micro-step (global batch = batch_size x grad_accum x processes)
    batch_size: int = 8
    grad_accum: int = 1
    warmup_ratio: float = 0.05
    #: learning-rate schedule after the linear warm-up: "cosine" (the reference's, to 0 at the
    #: last step), "linear" (to 0) or "constant" (stays at lr)
    schedule: str = "cosine"
    max_grad_norm: float | None = 1.0
    #: English training examples, class-stratified subsample (reference: up to 100k)
    max_train_examples: int | None = 100_000
    #: seed of the training-data subsample (kept fixed across training seeds)
    data_seed: int = 0
    #: evaluate on English dev every N optimizer steps (0 = only at the end)
    eval_every: int = 500
    #: at this optimizer step, a run whose English dev accuracy is not above what one constant
    #: label scores (one-sided binomial test, p >= 0.01) starts again from seed + 1000 x restart,
    #: at most ``max_restarts`` times; 0 = never. See docs/recipe.md, "Restarting a stalled run".
    stall_check: int = 0
    max_restarts: int = 2
    #: which weights become ``best/``: "best" (the best English dev accuracy, checked every
    #: eval_every steps) or "last" (the final weights, as the reference code; dev is still logged)
    selection: str = "best"
    #: English dev examples used for model selection (class-balanced)
    dev_limit: int | None = 500
    #: resumable checkpoint every N optimizer steps (0 = none)
    save_every: int = 500
    keep_checkpoints: int = 2
    log_every: int = 10
    #: "auto" = bf16 autocast on GPU and on a native-bf16 CPU, else fp32; or fp32 / bf16 / fp16
    precision: str = "auto"
    #: batches are built from examples of similar length within windows of this many batches
    bucket_size: int = 50
    #: each micro-batch runs as forward passes of similar length (data.batching.length_groups):
    #: at most this many padded LLM positions per pass (null = by device: 1536 on CPU, no
    #: limit on GPU; 0 = no limit) ...
    max_pass_tokens: int | None = None
    #: read the frozen encoder's layer states from a disk cache shared by epochs, fusions and
    #: seeds (modeling/state_cache.py; needs a frozen encoder without dropout)
    encoder_cache: bool = False
    #: where the cache files go (null: $LAYERBRIDGE_CACHE/encoder-states)
    encoder_cache_dir: str | None = None
    #: ... trading padding against this fixed cost per pass, in positions (null = by device:
    #: 48 on CPU, never split for padding on GPU). The gradient is the batch's either way.
    pass_cost: float | None = None
    num_workers: int = 0
    eval_batch_size: int = 32
    tensorboard: bool = False
    #: torch.compile the LLM's decoder stack (dynamic shapes); see benchmarks/RESULTS.md
    compile: bool = False

    def __post_init__(self) -> None:
        self.precision = canonical_precision(self.precision)
        for name in ("batch_size", "grad_accum", "eval_batch_size", "log_every", "bucket_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name} must be at least 1, got {getattr(self, name)}")
        for name in (
            "eval_every",
            "stall_check",
            "max_restarts",
            "save_every",
            "keep_checkpoints",
            "num_workers",
            "max_pass_tokens",
            "pass_cost",
        ):
            if (getattr(self, name) or 0) < 0:
                raise ConfigError(f"train.{name} must be 0 or more, got {getattr(self, name)}")
        for name in ("max_steps", "max_train_examples", "dev_limit"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"train.{name} must be at least 1 (or null), got {value}")
        rates = (self.lr, self.fusion_lr, self.boundary_lr)
        if any(rate is not None and rate <= 0 for rate in rates):
            raise ConfigError(f"train.lr, fusion_lr and boundary_lr must be positive, got {rates}")
        if self.selection not in ("best", "last"):
            raise ConfigError(f"unknown train.selection {self.selection!r}; choose best or last")
        if self.max_steps is None and self.epochs <= 0:
            raise ConfigError("train.epochs must be positive (or set train.max_steps)")
        if self.max_steps is not None:
            self.check_stall_check(self.max_steps)
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"train.warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"unknown train.schedule {self.schedule!r}; choose {', '.join(SCHEDULES)}")
        if self.max_grad_norm is not None and self.max_grad_norm <= 0:
            raise ConfigError(f"train.max_grad_norm must be positive (or null), got {self.max_grad_norm}")
        if self.weight_decay < 0 or not all(0 <= b < 1 for b in self.betas):
            raise ConfigError(f"train.betas must be in [0, 1) and weight_decay >= 0, got {self.betas}")

    def check_stall_check(self, total_steps: int, how: str = "") -> None:
        """A stall check at or after the last step would never run: refuse it. ``total_steps`` is
        ``max_steps``, or (with ``epochs``) the schedule's length once the data are encoded."""
        if self.stall_check and self.stall_check >= total_steps:
            raise ConfigError(
                f"train.stall_check ({self.stall_check}) must come before the last step ({total_steps}{how})"
            )


@dataclass
class RunConfig(ConfigMixin):
    """Everything ``layerbridge train`` needs: the bridge, the task and the optimisation."""

    bridge: BridgeConfig = field(default_factory=BridgeConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if self.train.encoder_cache and (not self.bridge.freeze_encoder or self.bridge.encoder_dropout):
            raise ConfigError(
                "train.encoder_cache needs a frozen, deterministic encoder: set bridge.freeze_encoder: "
                "true and bridge.encoder_dropout: false, or train.encoder_cache: false"
            )

    def to_yaml(self) -> str:
        return yaml.safe_dump(_plain(self.to_dict()), sort_keys=False, allow_unicode=True)

    @classmethod
    def load(cls, path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
        """A config file (optional) plus ``section.key=value`` overrides."""
        data: dict[str, Any] = {}
        if path is not None:
            data = cls.from_file(path).to_dict()
        return cls.from_dict(apply_overrides(data, overrides or []))


def _plain(value: Any) -> Any:
    """Tuples -> lists, recursively (for YAML output)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
