"""Output files: JSON Lines streams and JSON documents, written atomically where it matters."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Any


def _default(value: object) -> object:
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


class JsonLinesWriter:
    """Writes one compact JSON object per line; usable as a context manager."""

    def __init__(
        self,
        path: Path,
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        self.path = path
        self.count = 0
        self._transform = transform
        self._handle: IO[str] = path.open("w", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        """Append one record (rewritten by ``transform`` first, e.g. anonymised)."""
        if self._transform is not None:
            record = self._transform(record)
        self._handle.write(json.dumps(record, separators=(",", ":"), default=_default))
        self._handle.write("\n")
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
