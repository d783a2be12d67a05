"""The frame: one captured link-layer packet with its timestamp and where it came from."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class LinkType(IntEnum):
    """Link-layer header types, named and numbered after the tcpdump.org LINKTYPE_ registry."""

    NULL = 0
    """BSD loopback: a 4-byte address family in the writer's byte order."""
    ETHERNET = 1
    FDDI = 10
    """FDDI (ANSI X3.139): 13-byte MAC header, then IEEE 802.2 LLC/SNAP carrying an EtherType."""
    RAW_BSD12 = 12
    """LINKTYPE 12 as some BSDs write DLT_RAW: raw IPv4/IPv6."""
    RAW_BSD14 = 14
    """LINKTYPE 14 as some BSDs write DLT_RAW: raw IPv4/IPv6."""
    RAW = 101
    """Raw IPv4 or IPv6, version taken from the first nibble."""
    LOOP = 108
    """OpenBSD loopback: a 4-byte address family in network byte order."""
    LINUX_SLL = 113
    """Linux cooked capture v1 (``tcpdump -i any``)."""
    IPV4 = 228
    IPV6 = 229
    LINUX_SLL2 = 276
    """Linux cooked capture v2."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One packet as the capture source delivered it, before any decoding."""

    capture: str
    """Display name of the source: the capture file's base name, ``-`` for stdin, or the
    interface name in live mode."""
    number: int
    """1-based frame number within ``capture``, as Wireshark counts."""
    ts_ns: int
    """Capture timestamp in nanoseconds since the Unix epoch (UTC)."""
    linktype: int
    """LINKTYPE_ value of the interface the frame was captured on (see ``LinkType``); kept as
    a plain int so unknown link types can still be reported by number."""
    data: bytes
    """The captured bytes (possibly cut by the snapshot length)."""
    wirelen: int
    """The frame's original length on the wire; ``wirelen > len(data)`` means snaplen cut it."""
    interface: int = 0
    """pcapng interface id (0 for classic pcap and live single-interface capture)."""
    interface_name: str | None = None
    """Interface name when the capture records one (pcapng ``if_name``) or in live mode."""
