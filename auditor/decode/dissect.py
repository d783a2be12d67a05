"""Link-layer and IP header decoding of one frame into an IP datagram (or fragment)."""

from __future__ import annotations

from dataclasses import dataclass

from auditor.capture.frame import Frame
from auditor.ledger import Ledger


@dataclass(frozen=True, slots=True)
class FragmentInfo:
    """Where an IP fragment sits in its datagram."""

    ident: int
    """IPv4 Identification (16 bits) or IPv6 Fragment header Identification (32 bits)."""
    offset: int
    """Offset of this fragment's data in the reassembled payload, in bytes."""
    more: bool
    """The More Fragments flag."""


@dataclass(frozen=True, slots=True)
class IPDatagram:
    """An IPv4/IPv6 packet's upper-layer payload with the header fields later stages need."""

    capture: str
    """Capture name of the frame that completed the datagram."""
    frame: int
    """Number of the frame that completed the datagram (the last fragment to arrive)."""
    frames: tuple[int, ...]
    """Numbers of every frame the datagram was built from, in arrival order."""
    ts_ns: int
    """Capture time of the completing frame, nanoseconds since the epoch."""
    version: int
    """4 or 6."""
    src: str
    """Source address in compressed presentation form."""
    dst: str
    """Destination address in compressed presentation form."""
    protocol: int
    """Upper-layer protocol number after walking IPv6 extension headers (17 UDP, 6 TCP)."""
    hop_limit: int
    """IPv4 TTL or IPv6 Hop Limit, as seen by the capture point."""
    ip_id: int | None
    """IPv4 Identification, or the IPv6 fragment identification when fragmented, else None."""
    payload: bytes
    """The upper-layer bytes (a fragment's data when ``fragment`` is set)."""
    fragment: FragmentInfo | None = None
    """Set when this is one fragment of a larger datagram, None for whole datagrams."""
    owned_frames: int = 1
    """How many frames this datagram settles downstream (every frame it was built from, less
    those the defragmenter already settled as duplicates)."""


def dissect(frame: Frame, ledger: Ledger) -> IPDatagram | None:
    """Decode one frame's link and IP headers, or settle it in ``ledger`` and return None."""
    raise NotImplementedError
