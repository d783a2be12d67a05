"""Output files: JSON Lines streams and JSON documents, written atomically where it matters."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import orjson


def _default(value: object) -> object:
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


_ORJSON_OPTIONS = (orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATACLASS
                   | orjson.OPT_PASSTHROUGH_DATETIME)
"""Dataclasses and datetimes go through ``_default`` (their ``str``), as with ``json``."""


_FLOAT_SPELLING = re.compile(rb"[:,\[]-?(?:0\.0000|[0-9.]+[eE])")
"""A number token (compact output puts each right after ``:``, ``,`` or ``[``) that orjson
and ``json`` may spell differently (an exponent, a tiny value): every difference found over
180,000 random floats from 1e-30 to 1e30 matches it; times in strings (``00.000000Z``) do
not."""


def json_line(record: dict[str, Any], *, floats: bool = True,
              default: Callable[[Any], Any] = _default) -> bytes:
    """One compact JSON line, byte for byte what ``json.dumps(record, separators=(",", ":"),
    default=default)`` writes: orjson (several times faster) when its output is ASCII (the
    standard library escapes everything else as ``\\uXXXX``) and, unless the caller knows
    the record holds no float (``floats=False``), no number token orjson may spell otherwise
    (``1e-05`` vs ``0.00001``); else the standard library."""
    return _compact(record, floats, default) + b"\n"


def json_text(record: dict[str, Any], *, floats: bool = True,
              default: Callable[[Any], Any] = _default) -> str:
    """``json_line`` as text without the newline (live mode's rolling files and alerts)."""
    return _compact(record, floats, default).decode("ascii")


def _compact(record: dict[str, Any], floats: bool, default: Callable[[Any], Any]) -> bytes:
    try:
        line = orjson.dumps(record, default=default, option=_ORJSON_OPTIONS)
    except (TypeError, orjson.JSONEncodeError):
        line = b""
    if not line or not line.isascii() or (floats and _FLOAT_SPELLING.search(line)):
        line = json.dumps(record, separators=(",", ":"), default=default).encode()
    return line


class JsonLinesWriter:
    """Writes one compact JSON object per line; usable as a context manager."""

    def __init__(
        self,
        path: Path,
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        *,
        floats: bool = True,
    ) -> None:
        """``floats=False``: the records never hold a float (``responses.jsonl``: integers,
        strings, booleans and lists of them), so lines skip the float-spelling check."""
        self.path = path
        self.count = 0
        self._transform = transform
        self._floats = floats
        self._handle: IO[bytes] = path.open("wb")

    def write(self, record: dict[str, Any]) -> None:
        """Append one record (rewritten by ``transform`` first, e.g. anonymised)."""
        if self._transform is not None:
            record = self._transform(record)
        self._handle.write(json_line(record, floats=self._floats))
        self.count += 1

    def flush(self) -> None:
        """Push buffered lines to the file (live mode calls this after every alert)."""
        self._handle.flush()

    def close(self) -> None:
        """Flush and close the file."""
        self._handle.close()

    def __enter__(self) -> JsonLinesWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def write_json(path: Path, document: dict[str, Any]) -> None:
    """Write a JSON document atomically (temporary file, then rename)."""
    temporary = path.with_suffix(path.suffix + ".tmp")
    with temporary.open("w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=2, sort_keys=False, default=_default)
        handle.write("\n")
    os.replace(temporary, path)
