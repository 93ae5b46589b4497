"""Reading tabular files (CSV, TSV, JSON lines, JSON) into row dicts, with errors that name the file."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from layerbridge.errors import DataError

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))

FORMATS = ("csv", "tsv", "jsonl", "json")


def infer_format(path: Path) -> str:
    suffix = path.suffix.lower().lstrip(".")
    if suffix in ("jsonl", "ndjson"):
        return "jsonl"
    if suffix in FORMATS:
        return suffix
    raise DataError(f"cannot tell the format of {path}; use a .csv, .tsv, .jsonl or .json file")


def require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise DataError(f"{what} not found: {path}")
    return path


def read_rows(
    path: Path,
    fmt: str | None = None,
    columns: Sequence[str] | None = None,
    header: bool = True,
    quoting: int = csv.QUOTE_MINIMAL,
) -> Iterator[dict[str, str]]:
    """Yield each row of ``path`` as a dict of strings.

    For CSV/TSV without a header, ``columns`` names the columns in order. JSON files may
    hold a list of records or a mapping with a single key whose value is that list (the
    IndicXNLI release format).
    """
    fmt = fmt or infer_format(path)
    require_file(path, f"{fmt.upper()} file")
    try:
        yield from _read_rows(path, fmt, columns, header, quoting)
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not valid UTF-8 ({err.reason} at byte {err.start})") from None


def _read_rows(
    path: Path, fmt: str, columns: Sequence[str] | None, header: bool, quoting: int
) -> Iterator[dict[str, str]]:
    if fmt in ("csv", "tsv"):
        delimiter = "\t" if fmt == "tsv" else ","
        with open(path, encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle, delimiter=delimiter, quoting=quoting)
            names = list(columns) if not header else None
            for line_no, values in enumerate(reader, start=1):
                if names is None:
                    names = [v.strip() for v in values]
                    continue
                if not values:
                    continue
                if len(values) < len(names):
                    values = values + [""] * (len(names) - len(values))
                yield dict(zip(names, values, strict=False)) | {"__row__": str(line_no)}
    elif fmt == "jsonl":
        with open(path, encoding="utf-8") as handle:
            for line_no, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as err:
                    raise DataError(f"{path}, line {line_no}: invalid JSON ({err.msg})") from None
                yield _stringify(record) | {"__row__": str(line_no)}
    elif fmt == "json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise DataError(f"{path}: invalid JSON ({err.msg} at line {err.lineno})") from None
        if isinstance(data, dict) and len(data) == 1:
            data = next(iter(data.values()))
        if not isinstance(data, list):
            raise DataError(f"{path}: expected a list of records (or {{split: [records]}})")
        for index, record in enumerate(data):
            yield _stringify(record) | {"__row__": str(index)}
    else:
        raise DataError(f"unknown file format {fmt!r}; choose one of: {', '.join(FORMATS)}")


def _stringify(record: object) -> dict[str, str]:
    if not isinstance(record, dict):
        raise DataError(f"expected a JSON object per record, got {type(record).__name__}")
    return {str(k): "" if v is None else str(v) for k, v in record.items()}


def check_columns(row: dict[str, str], needed: Sequence[str], source: str) -> None:
    """Raise a :class:`DataError` naming the first missing column."""
    missing = [c for c in needed if c not in row]
    if missing:
        present = ", ".join(k for k in row if k != "__row__")
        raise DataError(f"{source}: missing column(s) {', '.join(missing)} (found: {present})")
