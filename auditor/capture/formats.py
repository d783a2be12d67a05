"""What the pcap and pcapng readers share: interface descriptions, limits and read errors."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

from auditor.capture.frame import Frame

ReadFn = Callable[[int], bytes]
"""Reads exactly ``n`` bytes from the (decompressed) capture stream, fewer only at its end."""

READ_ERRORS: tuple[type[Exception], ...] = (OSError, EOFError, zlib.error)
"""What reading a capture stream can raise: I/O errors, a cut gzip stream, corrupt deflate data
(``gzip.BadGzipFile`` is an ``OSError``)."""

MAX_RECORD_BYTES = 64 * 1024 * 1024
"""Largest pcap record or pcapng block we accept (64 MiB); a larger length field is corruption.
It also bounds what one garbage length can make us allocate."""

NANOSECONDS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class InterfaceInfo:
    """One capture interface as the file describes it (classic pcap has exactly one)."""

    index: int
    """File-wide interface number, counted across pcapng sections in the order the Interface
    Description Blocks appear; this is ``Frame.interface``."""
    section: int
    """0-based pcapng section the interface belongs to (always 0 for classic pcap)."""
    local_id: int
    """Interface id within its section, as packet blocks refer to it."""
    linktype: int
    """LINKTYPE_ value (see ``LinkType``), without the FCS bits of the classic pcap header."""
    snaplen: int
    """Snapshot length; 0 means no limit."""
    name: str | None = None
    """``if_name`` option, when recorded."""
    fcs_len: int | None = None
    """Length in bytes of the frame check sequence at the end of each frame, when the file says
    (pcap header FCS bits, pcapng ``if_fcslen``); ``None`` when unknown. Frames keep it."""
    ts_units_per_second: int = 1_000_000
    """Timestamp resolution: units per second (``if_tsresol``; 10**6 by default)."""
    ts_offset_s: int = 0
    """Seconds added to every timestamp of this interface (``if_tsoffset``)."""

    def describe(self) -> str:
        """Short human description for error messages, e.g. ``interface 1 (eth0)``."""
        label = f"interface {self.index}"
        return f"{label} ({self.name})" if self.name else label


class FormatReader(Protocol):
    """A parsed capture header plus a generator of the frames that follow it."""

    @property
    def interfaces(self) -> Mapping[int, InterfaceInfo]:
        """Interfaces seen so far, keyed by ``InterfaceInfo.index``; pcapng adds as it reads."""
        ...

    def frames(self) -> Iterator[Frame]:
        """Yield the remaining frames; record non-fatal problems instead of raising."""
        ...
