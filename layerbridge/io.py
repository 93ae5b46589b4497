"""Atomic file and directory writes.

A reader never sees a half-written file: everything is written next to its destination
under a temporary name and moved into place with :func:`os.replace` (atomic on POSIX).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml


def umask() -> int:
    """The process's umask (read without changing it for longer than a moment)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str], mode: str = "w", **open_kwargs: Any) -> Iterator[Any]:
    """Open a temporary file beside ``path``; on success move it onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.chmod(tmp, 0o666 & ~umask())  # mkstemp creates 0600; use the usual permissions
    try:
        with os.fdopen(fd, mode, **open_kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_file(path, "w", encoding="utf-8") as handle:
        json.dump(obj, handle, indent=2, ensure_ascii=False)
        handle.write("\n")


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a fresh temporary directory; on success it replaces ``path`` as a whole.

    On error the temporary directory is removed and ``path`` is left as it was. An existing
    ``path`` is moved aside first and deleted only after the new one is in place.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o777 & ~umask())
    try:
        yield tmp
        old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
        for _ in range(5):  # another process may put its own copy in place at the same moment
            with contextlib.suppress(FileNotFoundError):
                os.replace(path, old / f"{len(list(old.iterdir()))}")  # move any current copy aside
            try:
                os.replace(tmp, path)
                break
            except OSError as err:
                if err.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
        else:
            raise OSError(errno.EEXIST, f"could not put {path} in place: another process keeps writing it")
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def recover_atomic_leftovers(folder: Path) -> None:
    """Clean up after a process killed inside :func:`atomic_dir` / :func:`atomic_file`.

    A half-written ``.NAME.*.tmp`` is removed. A ``.NAME.*.old`` holds the previous copy of
    NAME, moved aside just before the new one was renamed into place: if NAME is missing (the
    kill came between the two renames) the previous copy is put back, else it is removed.
    """
    for tmp in folder.glob(".*.tmp"):
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
    for old in folder.glob(".*.old"):
        name = old.name[1:].rsplit(".", 2)[0]
        target = folder / name
        copies = sorted(old.iterdir()) if old.is_dir() else []
        if not target.exists() and copies:
            os.replace(copies[-1], target)
        shutil.rmtree(old, ignore_errors=True)


def ensure_writable(folder: Path) -> None:
    """Create ``folder`` if needed and check that files can be written in it (before long work)."""
    from layerbridge.errors import ConfigError

    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise ConfigError(f"cannot write to {folder}: {err.strerror or err}") from None


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 22) -> str:
    """Hex SHA-256 of a file, read in 4 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


class _Yaml12Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 scalars: booleans are only true/false (``yes`` / ``no`` /
    ``on`` / ``off`` stay strings — they are common label values) and ``1e-3`` is a float."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)
# YAML 1.1 reads "1e-3" (no dot) as a string; YAML 1.2 (and every user) reads a number.
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def load_yaml(text: str) -> Any:
    """Parse YAML (or JSON) text with YAML 1.2 booleans."""
    return yaml.load(text, Loader=_Yaml12Loader)
