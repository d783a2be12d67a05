"""Rolling output files for live mode: JSON Lines, Parquet and pcapng pieces (or one JSON Lines
file at a fixed path, rotated by renaming) rotated by age or size, with the oldest pieces
deleted beyond a retention count."""

from __future__ import annotations

import logging
import os
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from auditor.capture.frame import Frame
from auditor.report.evidence_pcap import EvidencePcapng
from auditor.report.files import json_text

if TYPE_CHECKING:  # pyarrow (and the pandas it loads) only when a Parquet piece is written
    import pyarrow as pa
    import pyarrow.parquet as pq

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Rotation:
    """When a piece is closed and the next one opened."""

    max_seconds: float = 3600.0
    """Age (wall clock) after which the current piece is rotated; 0 disables."""
    max_bytes: int = 256 << 20
    """Size after which the current piece is rotated; 0 disables."""
    keep: int = 168
    """Pieces kept per output; older ones are deleted (0 keeps every piece)."""


class RollingFile(ABC):
    """One output rotated into pieces ``<stem>-<UTC time>-<n><suffix>``; subclasses say how
    a piece is opened, written and closed. Pieces are opened lazily on the first write."""

    suffix = ""

    def __init__(
        self, directory: Path, stem: str, rotation: Rotation,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = directory
        self.stem = stem
        self.rotation = rotation
        self._clock = clock
        self._opened_at = 0.0
        self._sequence = 0
        self.current: Path | None = None
        """The piece being written, None between pieces."""
        self.pieces: deque[Path] = deque()
        """Pieces written (kept ones), oldest first, the current one last."""
        self.deleted = 0
        """Pieces deleted by the retention limit."""
        self.count = 0
        """Records written over every piece."""
        self.piece_bytes = 0
        """Bytes in the current piece (as written so far)."""

    def _path(self) -> Path:
        """Where the next piece is opened (subclasses may name pieces otherwise)."""
        self._sequence += 1
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self._clock()))
        return self.directory / f"{self.stem}-{stamp}-{self._sequence:04d}{self.suffix}"

    def _ensure_open(self) -> None:
        if self.current is not None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        self.current = self._path()
        self._opened_at = self._clock()
        self.piece_bytes = 0
        self._open(self.current)
        self._record_piece(self.current)

    def _record_piece(self, path: Path) -> None:
        """Note a newly opened piece and delete the oldest beyond the retention count."""
        self.pieces.append(path)
        self._apply_retention()

    def _apply_retention(self) -> None:
        keep = self.rotation.keep
        while keep and len(self.pieces) > keep:
            old = self.pieces.popleft()
            try:
                old.unlink()
                self.deleted += 1
            except OSError as exc:
                logger.warning("cannot delete old piece %s: %s", old, exc)

    def due(self) -> bool:
        """Whether the current piece has reached its age or size limit."""
        if self.current is None:
            return False
        rotation = self.rotation
        too_old = rotation.max_seconds and self._clock() - self._opened_at >= rotation.max_seconds
        too_big = rotation.max_bytes and self.piece_bytes >= rotation.max_bytes
        return bool(too_old or too_big)

    def rotate(self) -> None:
        """Close the current piece (the next write opens a new one)."""
        if self.current is not None:
            self._close()
            self.current = None

    def maybe_rotate(self) -> None:
        """Rotate if ``due``."""
        if self.due():
            self.rotate()

    def close(self) -> None:
        """Flush and close the current piece."""
        self.rotate()

    @abstractmethod
    def _open(self, path: Path) -> None:
        """Open a new piece at ``path`` (each file kind writes its own header)."""

    @abstractmethod
    def _close(self) -> None:
        """Finish and close the current piece."""


class RollingJsonLines(RollingFile):
    """One compact JSON object per line."""

    suffix = ".jsonl"

    def __init__(self, directory: Path, stem: str, rotation: Rotation,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(directory, stem, rotation, clock)
        self._handle: IO[str] | None = None

    def write(self, record: dict[str, Any]) -> None:
        """Append one record, rotating first if the piece is due."""
        self.write_line(json_text(record))

    def write_line(self, line: str) -> None:
        """Append one already encoded record (ASCII JSON, no newline), rotating first if the
        piece is due: a line never straddles two pieces."""
        self.maybe_rotate()
        self._ensure_open()
        assert self._handle is not None
        self._handle.write(line + "\n")
        self.piece_bytes += len(line) + 1
        self.count += 1

    def flush(self) -> None:
        """Push buffered lines to the file."""
        if self._handle is not None:
            self._handle.flush()

    def _open(self, path: Path) -> None:
        self._handle = path.open("w", encoding="utf-8")

    def _close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


class NumberedJsonLines(RollingJsonLines):
    """JSON Lines at one fixed path that is always the file being written, rotated as logrotate
    and Python's ``RotatingFileHandler`` do: ``<path>`` is renamed ``<path>.1`` (``<path>.1``
    becomes ``<path>.2`` and so on; pieces past ``Rotation.keep`` are deleted) and a new
    ``<path>`` is created at once, so tailers that follow the name (``tail -F``, Filebeat) go
    on reading.

    An existing file is appended to. Every line is flushed as it is written; rotation happens
    between lines only and never of an empty file. ``Rotation.keep`` counts the numbered pieces
    besides the current file (0 keeps them all). Rotating never raises: a failed rename is
    logged and the lines go on into ``<path>``.
    """

    def __init__(self, path: Path, rotation: Rotation,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(path.parent, path.stem, rotation, clock)
        self.path = path
        """The current file, the name tailers follow."""
        self.suffix = path.suffix
        self.rotations = 0
        """Times the current file was renamed ``<path>.1``."""
        self.failures = 0
        """Renames, closes or opens that failed (the first is logged as a warning)."""
        self._ensure_open()

    def numbered(self, number: int) -> Path:
        """The name of rotated piece ``number`` (1 is the newest)."""
        return self.path.with_name(f"{self.path.name}.{number}")

    def write_line(self, line: str) -> None:
        """Append one line and flush it; a piece's age counts from its first line."""
        if self.current is not None and self.piece_bytes == 0:
            self._opened_at = self._clock()
        super().write_line(line)
        self.flush()

    def due(self) -> bool:
        """As for every output, except that an empty file is not rotated."""
        return self.piece_bytes > 0 and super().due()

    def rotate(self) -> None:
        """Rename the current file into the numbered pieces and create a new one at ``path``;
        if another tool renamed ``path`` away, just create the new one."""
        ours = self.current is not None and not self._moved_away()
        if ours and self.piece_bytes == 0:
            return
        try:
            super().rotate()
            if ours:
                self._shift_pieces()
        except OSError as exc:
            self._failed("cannot rotate", exc)
        self._reopen()

    def close(self) -> None:
        """Flush and close the current file; it stays at ``path``."""
        super().rotate()  # the parent's rotate only closes the piece

    def _path(self) -> Path:
        return self.path

    def _record_piece(self, path: Path) -> None:
        rotated = self._rotated()
        self.pieces = deque([*(rotated[n] for n in sorted(rotated, reverse=True)), path])

    def _open(self, path: Path) -> None:
        self._handle = path.open("a", encoding="utf-8")  # an earlier run's lines stay
        self.piece_bytes = os.fstat(self._handle.fileno()).st_size

    def _rotated(self) -> dict[int, Path]:
        """The numbered pieces on disk (from any run), by number."""
        prefix = self.path.name + "."
        found: dict[int, Path] = {}
        with os.scandir(self.directory) as entries:
            for entry in entries:
                number = entry.name.removeprefix(prefix)
                if (entry.name.startswith(prefix) and number.isascii() and number.isdigit()
                        and not number.startswith("0")):
                    found[int(number)] = Path(entry.path)
        return found

    def _shift_pieces(self) -> None:
        """``path.n`` becomes ``path.n+1`` (newest last, so nothing is overwritten), those
        that would pass ``keep`` are deleted, then ``path`` becomes ``path.1``."""
        keep = self.rotation.keep
        rotated = self._rotated()
        for number in sorted(rotated, reverse=True):
            if keep and number >= keep:
                rotated[number].unlink()
                self.deleted += 1
            else:
                os.rename(rotated[number], self.numbered(number + 1))
        os.rename(self.path, self.numbered(1))
        self.rotations += 1

    def _moved_away(self) -> bool:
        """Whether ``path`` no longer names the open file."""
        assert self._handle is not None
        try:
            named = os.stat(self.path)
        except OSError:
            return True
        mine = os.fstat(self._handle.fileno())
        return (named.st_dev, named.st_ino) != (mine.st_dev, mine.st_ino)

    def _reopen(self) -> None:
        try:
            self._ensure_open()
        except OSError as exc:  # the next line tries again
            self._failed("cannot open", exc)

    def _failed(self, action: str, exc: OSError) -> None:
        self.failures += 1
        if self.current is not None and self._handle is not None and self._handle.closed:
            self._handle = None
            self.current = None
        log = logger.warning if self.failures == 1 else logger.debug
        log("%s %s: %s (further failures are counted, not logged)", action, self.path, exc)


def _table(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    import pyarrow as pa

    return pa.Table.from_pylist(rows, schema=schema)


class RollingParquet(RollingFile):
    """Rows buffered and written as row groups, one ``pyarrow.parquet.ParquetWriter`` per piece;
    ``flush`` writes what is buffered (the loop calls it every few seconds)."""

    suffix = ".parquet"

    def __init__(self, directory: Path, stem: str, rotation: Rotation, schema: pa.Schema,
                 *, batch_rows: int = 10_000, clock: Callable[[], float] = time.time) -> None:
        super().__init__(directory, stem, rotation, clock)
        self.schema = schema
        self.batch_rows = batch_rows
        self._rows: list[dict[str, Any]] = []
        self._writer: pq.ParquetWriter | None = None

    def write(self, row: dict[str, Any]) -> None:
        """Buffer one row; a full buffer is written out."""
        self._rows.append(row)
        self.count += 1
        if len(self._rows) >= self.batch_rows:
            self.flush()

    def flush(self) -> None:
        """Write buffered rows as a row group, rotating first if the piece is due."""
        if not self._rows:
            return
        self.maybe_rotate()
        self._ensure_open()
        assert self._writer is not None and self.current is not None
        rows, self._rows = self._rows, []
        self._writer.write_table(_table(rows, self.schema))
        self.piece_bytes = _size(self.current)

    def rotate(self) -> None:
        """Write what is buffered into the current piece, then close it."""
        if self._rows and self.current is not None:
            rows, self._rows = self._rows, []
            assert self._writer is not None
            self._writer.write_table(_table(rows, self.schema))
        super().rotate()

    def close(self) -> None:
        """Write what is buffered and close the piece."""
        self.flush()
        super().close()

    def _open(self, path: Path) -> None:
        import pyarrow.parquet as pq

        self._writer = pq.ParquetWriter(str(path), self.schema)

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class RollingPcapng(RollingFile):
    """Frames appended to pcapng pieces (the frames behind forged or suspicious findings)."""

    suffix = ".pcapng"

    def __init__(self, directory: Path, stem: str, rotation: Rotation, application: str,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(directory, stem, rotation, clock)
        self.application = application
        self._handle: IO[bytes] | None = None
        self._writer: EvidencePcapng | None = None

    def write_frames(self, frames: Sequence[Frame]) -> None:
        """Append frames and flush, so an incident responder can open the piece at once."""
        if not frames:
            return
        self.maybe_rotate()
        self._ensure_open()
        assert self._writer is not None and self._handle is not None
        for frame in frames:
            self._writer.write(frame)
            self.piece_bytes += len(frame.data) + 64
            self.count += 1
        self._handle.flush()

    def _open(self, path: Path) -> None:
        self._handle = path.open("wb")
        self._writer = EvidencePcapng(self._handle, self.application)

    def _close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
            self._writer = None


def _size(path: Path) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
