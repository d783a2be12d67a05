"""Evidence output: the frames behind forgery findings as a pcapng file, and input digests."""

from __future__ import annotations

import hashlib
import struct
from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from auditor.capture.frame import Frame
from auditor.findings.catalogue import Finding
from auditor.forgery import evidence_refs

FrameRef = tuple[str, int]
"""(capture name, 1-based frame number)."""

_SHB, _IDB, _EPB = 0x0A0D0D0A, 0x00000001, 0x00000006
_BYTE_ORDER_MAGIC = 0x1A2B3C4D
_OPT_END, _OPT_COMMENT = 0, 1
_IF_NAME, _IF_TSRESOL = 2, 9
_SHB_USERAPPL = 4


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes as stored (compressed bytes for .gz)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _option(code: int, value: bytes) -> bytes:
    padding = (-len(value)) % 4
    return struct.pack("<HH", code, len(value)) + value + b"\x00" * padding


def _block(block_type: int, body: bytes) -> bytes:
    # pcapng (draft-ietf-opsawg-pcapng 3.1): type, total length, body, total length again.
    length = 12 + len(body)
    return struct.pack("<II", block_type, length) + body + struct.pack("<I", length)


class EvidencePcapng:
    """Writes frames to a pcapng file: one interface per (capture, link type, interface), each
    packet with nanosecond timestamp and a comment naming its capture and frame number."""

    def __init__(self, handle: BinaryIO, application: str) -> None:
        self._handle = handle
        self._interfaces: dict[tuple[str, int, int], int] = {}
        self.written = 0
        options = _option(_SHB_USERAPPL, application.encode()) + _option(_OPT_END, b"")
        body = struct.pack("<IHHq", _BYTE_ORDER_MAGIC, 1, 0, -1) + options
        handle.write(_block(_SHB, body))

    def write(self, frame: Frame) -> None:
        """Append one frame with its original timestamp, link type and lengths."""
        interface = self._interface(frame)
        ts = frame.ts_ns
        data = frame.data
        comment = f"{frame.capture} frame {frame.number}".encode()
        body = (
            struct.pack("<IIIII", interface, ts >> 32, ts & 0xFFFFFFFF, len(data), frame.wirelen)
            + data + b"\x00" * ((-len(data)) % 4)
            + _option(_OPT_COMMENT, comment) + _option(_OPT_END, b"")
        )
        self._handle.write(_block(_EPB, body))
        self.written += 1

    def _interface(self, frame: Frame) -> int:
        key = (frame.capture, frame.linktype, frame.interface)
        number = self._interfaces.get(key)
        if number is None:
            number = self._interfaces[key] = len(self._interfaces)
            name = f"{frame.capture}:{frame.interface_name or frame.interface}".encode()
            options = (_option(_IF_NAME, name) + _option(_IF_TSRESOL, b"\x09")
                       + _option(_OPT_END, b""))
            body = struct.pack("<HHI", frame.linktype, 0, 0) + options
            self._handle.write(_block(_IDB, body))
        return number


def write_evidence(path: Path, frames: Iterable[Frame], application: str) -> tuple[int, str]:
    """Write ``frames`` to ``path``; return (frames written, SHA-256 of the file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        writer = EvidencePcapng(handle, application)
        for frame in frames:
            writer.write(frame)
    return writer.written, sha256_file(path)


def select_frames(frames: Iterable[Frame], wanted: set[FrameRef]) -> Iterator[Frame]:
    """The frames whose (capture, number) is wanted, in input order."""
    for frame in frames:
        if (frame.capture, frame.number) in wanted:
            yield frame


class FrameRing:
    """For input that cannot be read twice (standard input): keeps the last ``max_frames``
    frames (at most ``max_bytes``), so frames cited by findings made soon after can be kept."""

    def __init__(self, *, max_frames: int = 200_000, max_bytes: int = 256 << 20,
                 max_kept: int = 100_000) -> None:
        self._ring: deque[Frame] = deque()
        self._index: dict[FrameRef, Frame] = {}
        self._bytes = 0
        self._max_frames = max_frames
        self._max_bytes = max_bytes
        self._max_kept = max_kept
        self.kept: OrderedDict[FrameRef, Frame] = OrderedDict()
        """Frames copied out of the ring because a finding cited them."""
        self.missed = 0
        """Cited frames that had already left the ring (or exceeded ``max_kept``)."""

    def watch(self, frames: Iterable[Frame]) -> Iterator[Frame]:
        """Pass frames through, remembering the most recent ones."""
        for frame in frames:
            self._ring.append(frame)
            self._index[(frame.capture, frame.number)] = frame
            self._bytes += len(frame.data)
            while self._ring and (len(self._ring) > self._max_frames
                                  or self._bytes > self._max_bytes):
                old = self._ring.popleft()
                self._bytes -= len(old.data)
                self._index.pop((old.capture, old.number), None)
            yield frame

    def keep(self, refs: Iterable[FrameRef]) -> None:
        """Copy the cited frames out of the ring while they are still there."""
        for ref in refs:
            if ref in self.kept:
                continue
            frame = self._index.get(ref)
            if frame is None or len(self.kept) >= self._max_kept:
                self.missed += 1
                continue
            self.kept[ref] = frame

    def frames(self) -> list[Frame]:
        """The kept frames in capture order."""
        return sorted(self.kept.values(), key=lambda f: (f.ts_ns, f.capture, f.number))


class EvidenceCollector:
    """Gathers the frames cited by forged/suspicious findings as the run produces them."""

    def __init__(self, ring: FrameRing | None = None) -> None:
        self.ring = ring
        """Recent-frame buffer for standard input (None for files, which are read again)."""
        self.wanted: set[FrameRef] = set()
        """Every cited (capture, frame)."""
        self.findings = 0
        """Findings that cited frames."""

    def note(self, finding: Finding) -> None:
        """Take one finding; remember the frames it cites if it is forged or suspicious."""
        refs = evidence_refs(finding)
        if not refs:
            return
        self.findings += 1
        self.wanted.update(refs)
        if self.ring is not None:
            self.ring.keep(refs)
