"""Capture inputs: open a file, gzip stream or standard input, and merge several by timestamp."""

from __future__ import annotations

import gzip
import heapq
import io
import logging
import os
import stat
import sys
from collections.abc import Iterator, Mapping, Sequence
from operator import attrgetter
from types import TracebackType
from typing import TYPE_CHECKING, cast

from auditor.capture.formats import READ_ERRORS, FormatReader, InterfaceInfo
from auditor.capture.frame import Frame
from auditor.capture.pcap import PcapReader, is_modified_pcap_magic, is_pcap_magic
from auditor.capture.pcapng import SHB_MAGIC, PcapngReader
from auditor.errors import CaptureError

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

logger = logging.getLogger(__name__)

STDIN = "-"
"""The path that means standard input."""
STDIN_SOURCE = "<stdin>"
"""How error messages name standard input."""

_BUFFER_BYTES = 128 * 1024
_GZIP_MAGIC = b"\x1f\x8b"  # RFC 1952 2.3.1: ID1 ID2
_SNIFF_BYTES = 6
_UNSUPPORTED_COMPRESSION = {
    b"\xfd7zXZ\x00": "xz",
    b"BZh": "bzip2",
    b"\x28\xb5\x2f\xfd": "zstd",
}
_timestamp = attrgetter("ts_ns")


def is_gzip_file(path: str) -> bool:
    """Whether the file at ``path`` starts as a gzip stream does (detected by content, as
    ``CaptureReader`` does). Raises ``OSError`` if it cannot be read."""
    with open(path, "rb") as handle:
        return handle.read(len(_GZIP_MAGIC)) == _GZIP_MAGIC


class _CountingStream(io.RawIOBase):
    """Raw byte source that counts the bytes it pulls from the file or pipe underneath and
    replays the bytes sniffed at the start, so nothing is ever sought."""

    def __init__(self, inner: io.BufferedIOBase | io.RawIOBase, owns_inner: bool) -> None:
        super().__init__()
        self._inner = inner
        self._owns_inner = owns_inner
        self._replay = b""
        self.count = 0
        # A buffered pipe's readinto1 returns what is available instead of waiting for more.
        self._readinto = getattr(inner, "readinto1", None) or inner.readinto

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        if self._replay:
            size = min(memoryview(buffer).nbytes, len(self._replay))
            memoryview(buffer).cast("B")[:size] = self._replay[:size]
            self._replay = self._replay[size:]
            return size
        size = self._readinto(buffer) or 0
        self.count += size
        return int(size)

    def sniff(self, size: int) -> bytes:
        """Read up to ``size`` leading bytes (fewer only at end of input) to be replayed."""
        chunks: list[bytes] = []
        wanted = size
        while wanted > 0:
            chunk = self._inner.read(wanted)
            if not chunk:
                break
            chunks.append(chunk)
            wanted -= len(chunk)
        self._replay = b"".join(chunks)
        self.count += len(self._replay)
        return self._replay

    def close(self) -> None:
        if not self.closed and self._owns_inner:
            self._inner.close()
        super().close()


class CaptureReader:
    """One capture file or stream (pcap or pcapng, optionally gzip-compressed), read once,
    record by record, in constant memory.

    Opening reads and checks the file header and raises ``CaptureError`` for a missing,
    unreadable, empty or non-capture input. Iterating never raises for damage found later: a cut
    or corrupt record ends the frames and is appended to ``problems``. Byte offsets in problems
    count bytes of the capture format, i.e. after gzip decompression.
    """

    def __init__(self, path: str, name: str | None = None) -> None:
        """Open ``path`` (``-`` is standard input); ``name`` overrides ``Frame.capture``."""
        self.path = path
        """The path as given."""
        self.name = name if name is not None else display_name(path)
        """What frames carry as ``Frame.capture``: the base name, ``-`` for standard input."""
        self.source = STDIN_SOURCE if path == STDIN else path
        """How errors name this input."""
        self.problems: list[CaptureError] = []
        """Non-fatal damage found while iterating (a cut last record, a corrupt block)."""
        self.compressed = False
        """Whether the input is gzip-compressed."""
        self._started = False
        inner, self.total_bytes, owns_inner = _open_input(path, self.source)
        self._counter = _CountingStream(inner, owns_inner)
        self._stream: io.BufferedIOBase | None = None
        try:
            self._stream = self._open_decompressed()
            self._format = self._open_format(self._stream)
        except BaseException:
            self.close()
            raise

    @property
    def interfaces(self) -> Mapping[int, InterfaceInfo]:
        """Interfaces seen so far by ``Frame.interface``; pcapng files add more as they are read."""
        return self._format.interfaces

    @property
    def bytes_read(self) -> int:
        """Bytes consumed from the file or pipe so far (compressed bytes for gzip input)."""
        return self._counter.count

    def interface_of(self, frame: Frame) -> InterfaceInfo | None:
        """The interface a frame of this capture was captured on, if the capture described it."""
        return self._format.interfaces.get(frame.interface)

    def __iter__(self) -> Iterator[Frame]:
        if self._started:
            raise RuntimeError(f"{self.source}: a capture stream can be iterated only once")
        self._started = True
        return self._frames()

    def _frames(self) -> Iterator[Frame]:
        try:
            yield from self._format.frames()
        finally:
            self.close()
        for problem in self.problems:
            logger.debug("%s", problem)

    def close(self) -> None:
        """Release the file (standard input is left open)."""
        if self._stream is not None:
            self._stream.close()
        self._counter.close()

    def __enter__(self) -> CaptureReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _open_decompressed(self) -> io.BufferedIOBase:
        """Sniff the first bytes and stack a gzip decoder on top if they say gzip."""
        try:
            head = self._counter.sniff(_SNIFF_BYTES)
        except OSError as exc:
            raise CaptureError(self.source, f"cannot read: {exc.strerror or exc}") from exc
        if not head:
            raise CaptureError(self.source, "empty input, not a capture", 0)
        if head.startswith(_GZIP_MAGIC):  # detect by content, never by the file name
            self.compressed = True
            return gzip.GzipFile(fileobj=self._counter, mode="rb")
        for magic, method in _UNSUPPORTED_COMPRESSION.items():
            if head.startswith(magic):
                raise CaptureError(
                    self.source, f"{method}-compressed; only gzip compression is supported", 0
                )
        return io.BufferedReader(self._counter, _BUFFER_BYTES)

    def _open_format(self, stream: io.BufferedIOBase) -> FormatReader:
        """Read the magic number and the file header of the pcap or pcapng format."""
        inside = " inside the gzip stream" if self.compressed else ""
        try:
            magic = stream.read(4)
            if not magic:
                raise CaptureError(self.source, f"empty input{inside}, not a capture", 0)
            if len(magic) < 4:
                raise CaptureError(self.source, f"too short{inside} to be a capture", 0)
            if is_pcap_magic(magic):
                return PcapReader(magic, stream.read, self.name, self.source, self.problems)
            if magic == SHB_MAGIC:
                return PcapngReader(magic, stream.read, self.name, self.source, self.problems)
        except READ_ERRORS as exc:
            raise CaptureError(self.source, f"cannot read{inside}: {exc}") from exc
        if is_modified_pcap_magic(magic):
            raise CaptureError(self.source, "unsupported 'modified' pcap variant (a1b2cd34)", 0)
        raise CaptureError(
            self.source, f"not a pcap or pcapng file{inside} (starts with 0x{magic.hex()})", 0
        )


def open_capture(path: str, name: str | None = None) -> CaptureReader:
    """Open one capture file, or standard input for ``-``; raises ``CaptureError``."""
    return CaptureReader(path, name)


class CaptureSet:
    """Several captures (e.g. ``tcpdump -C/-G`` pieces) read as one stream merged by timestamp.

    Each file stays streaming: a heap holds one pending frame per file. Frames with equal
    timestamps come in the order the paths were given. Every file is open for the whole run.
    """

    def __init__(self, paths: Sequence[str]) -> None:
        """Open every path; raise ``CaptureError`` for the first one that cannot be read."""
        if not paths:
            raise CaptureError("(no input)", "no capture file given")
        if sum(path == STDIN for path in paths) > 1:
            raise CaptureError(STDIN_SOURCE, "standard input given more than once")
        self.readers: list[CaptureReader] = []
        """One reader per path, in the order given."""
        try:
            for path, name in zip(paths, unique_names(paths), strict=True):
                self.readers.append(CaptureReader(path, name))
        except BaseException:
            self.close()
            raise
        self._by_name = {reader.name: reader for reader in self.readers}

    def __iter__(self) -> Iterator[Frame]:
        if len(self.readers) == 1:
            return iter(self.readers[0])
        return heapq.merge(*self.readers, key=_timestamp)

    @property
    def problems(self) -> list[CaptureError]:
        """Non-fatal problems of every reader, file by file."""
        return [problem for reader in self.readers for problem in reader.problems]

    @property
    def bytes_read(self) -> int:
        """Bytes consumed so far over all inputs (compressed bytes for gzip input)."""
        return sum(reader.bytes_read for reader in self.readers)

    @property
    def total_bytes(self) -> int | None:
        """Total on-disk size of all inputs, or None when one of them (stdin, a pipe) has none."""
        sizes = [reader.total_bytes for reader in self.readers]
        if any(size is None for size in sizes):
            return None
        return sum(size for size in sizes if size is not None)

    @property
    def interfaces(self) -> dict[str, Mapping[int, InterfaceInfo]]:
        """Interfaces seen so far, per capture name then ``Frame.interface``."""
        return {reader.name: reader.interfaces for reader in self.readers}

    def interface_of(self, frame: Frame) -> InterfaceInfo | None:
        """The interface a frame was captured on, if its capture described it."""
        reader = self._by_name.get(frame.capture)
        return reader.interface_of(frame) if reader is not None else None

    def close(self) -> None:
        """Release every file."""
        for reader in self.readers:
            reader.close()

    def __enter__(self) -> CaptureSet:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def display_name(path: str) -> str:
    """``Frame.capture`` for a path: its base name, ``-`` for standard input."""
    return STDIN if path == STDIN else os.path.basename(path) or path


def unique_names(paths: Sequence[str]) -> list[str]:
    """Base names, except that paths whose base names collide keep the path as given."""
    names = [display_name(path) for path in paths]
    return [
        path if names.count(name) > 1 else name for path, name in zip(paths, names, strict=True)
    ]


def _open_input(
    path: str, source: str
) -> tuple[io.BufferedIOBase | io.RawIOBase, int | None, bool]:
    """(binary stream, total size if a regular file, whether we own and must close it)."""
    if path == STDIN:
        return cast(io.BufferedIOBase, sys.stdin.buffer), None, False
    try:
        handle = open(path, "rb", buffering=0)  # the reader closes it
    except FileNotFoundError as exc:
        raise CaptureError(source, "no such file") from exc
    except IsADirectoryError as exc:
        raise CaptureError(source, "is a directory, not a capture file") from exc
    except PermissionError as exc:
        raise CaptureError(source, "permission denied") from exc
    except OSError as exc:
        raise CaptureError(source, f"cannot open: {exc.strerror or exc}") from exc
    try:
        status = os.fstat(handle.fileno())
    except OSError as exc:
        handle.close()
        raise CaptureError(source, f"cannot stat: {exc.strerror or exc}") from exc
    if stat.S_ISDIR(status.st_mode):
        handle.close()
        raise CaptureError(source, "is a directory, not a capture file")
    total = status.st_size if stat.S_ISREG(status.st_mode) else None
    return handle, total, True
