"""UDP/TCP header decoding, the DNS port filter, and the wire message every later stage reads."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from auditor.decode.dissect import IPDatagram
from auditor.ledger import Ledger

DNS_PORTS: frozenset[int] = frozenset({53})
"""Default DNS port set; ``--port`` adds to it."""


class Transport(StrEnum):
    """How a DNS message travelled."""

    UDP = "udp"
    TCP = "tcp"


@dataclass(frozen=True, slots=True)
class UDPDatagram:
    """A UDP datagram on a DNS port."""

    ip: IPDatagram
    """The (reassembled) IP datagram that carried it."""
    sport: int
    dport: int
    payload: bytes
    """UDP payload (the DNS message), cut to the UDP length field."""
    checksum_ok: bool | None
    """False for a bad checksum (counted, never dropped), None when absent (IPv4 zero)."""


@dataclass(frozen=True, slots=True)
class TCPSegment:
    """A TCP segment on a DNS port (with or without payload)."""

    ip: IPDatagram
    sport: int
    dport: int
    seq: int
    ack: int
    flags: int
    """TCP flags byte (FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10)."""
    payload: bytes
    checksum_ok: bool | None


@dataclass(frozen=True, slots=True)
class WireMessage:
    """The bytes of one DNS message with where and when they were seen."""

    transport: Transport
    src: str
    sport: int
    dst: str
    dport: int
    wire: bytes
    """The DNS message (for TCP, without the two-byte length prefix)."""
    capture: str
    """Capture name of the frame that completed the message."""
    frame: int
    """Number of the frame that completed the message."""
    frames: tuple[int, ...]
    """Every frame that contributed bytes to the message, in arrival order."""
    ts_ns: int
    """Capture time of the completing frame, nanoseconds since the epoch."""
    hop_limit: int
    """IP TTL / hop limit of the completing packet."""
    owned_frames: int
    """How many frames the DNS stage settles with this message (a TCP segment that carries
    the end of one message and the start of the next is owned by the later one)."""


def split_transport(
    datagram: IPDatagram, ports: frozenset[int], ledger: Ledger
) -> UDPDatagram | TCPSegment | None:
    """Decode the UDP/TCP header; keep DNS-port traffic, settle everything else in ``ledger``."""
    raise NotImplementedError


def udp_message(datagram: UDPDatagram) -> WireMessage:
    """The wire message carried by one UDP datagram."""
    raise NotImplementedError
