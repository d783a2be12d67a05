"""UDP/TCP header decoding, the DNS port filter, and the wire message every later stage reads."""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from enum import StrEnum

from auditor.decode.dissect import AddressMemos, IPDatagram, IPProtocol
from auditor.ledger import Ledger, Reason

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
    """False for a bad checksum (counted, never dropped), None when absent (IPv4 zero) or
    not verified (``split_transport(..., verify_checksums=False)``)."""


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
    """False for a bad checksum (counted, never dropped), None when not verified."""


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
    cut: bool = False
    """The capture's snapshot length cut the message: only its start is here (``cut.py``)."""


_UDP_HEADER = struct.Struct("!HHHH")
"""Source Port, Destination Port, Length, Checksum (RFC 768)."""
_TCP_HEADER = struct.Struct("!HHIIH")
"""Source Port, Destination Port, Sequence, Acknowledgment, Data Offset+flags (RFC 9293 3.1)."""
_AF_BY_VERSION = {4: socket.AF_INET, 6: socket.AF_INET6}
_pton = socket.inet_pton


def _address_value(memos: AddressMemos, family: int, address: str) -> int:
    """Integer value of an address's bytes, memoised in ``memos.values`` (a resolver talks to
    few addresses)."""
    values = memos.values
    value = values.get(address)
    if value is None:
        if memos.full(values):
            values.clear()
        value = values[address] = int.from_bytes(_pton(family, address), "big")
    return value


def _checksum_ok(ip: IPDatagram, segment: bytes, protocol: int, memos: AddressMemos) -> bool:
    """Whether ``segment`` (header and data) sums to zero with its pseudo-header.

    The one's complement sum of 16-bit words is congruent to the big-endian integer value of
    the bytes modulo 0xFFFF (2**16 = 1 mod 0xFFFF), so one ``int.from_bytes`` does the work in C.
    A correct checksum makes the sum 0xFFFF (negative zero), i.e. 0 modulo 0xFFFF.
    """
    family = _AF_BY_VERSION[ip.version]
    # RFC 768 / RFC 9293 3.1 (IPv4) and RFC 8200 8.1 (IPv6) pseudo-headers: addresses, protocol
    # and upper-layer length; their word sum is what matters, not their layout.
    total = _address_value(memos, family, ip.src) + _address_value(memos, family, ip.dst)
    total += protocol + len(segment)
    value = int.from_bytes(segment, "big")
    if len(segment) & 1:
        value <<= 8  # pad an odd length with one zero byte
    return (total + value) % 0xFFFF == 0


def _udp(
    datagram: IPDatagram, ports: frozenset[int], ledger: Ledger, verify: bool,
    memos: AddressMemos,
) -> UDPDatagram | None:
    payload = datagram.payload
    owned = datagram.owned_frames
    if len(payload) < 8:
        ledger.settle(Reason.MALFORMED_TRANSPORT, owned)
        return None
    sport, dport, length, checksum = _UDP_HEADER.unpack_from(payload)
    if sport not in ports and dport not in ports:
        ledger.settle(Reason.NOT_DNS_PORT, owned)
        return None
    # RFC 768: Length counts the 8-byte header. The IP stage already cut snaplen-truncated
    # frames, so a Length beyond the IP payload is the packet's own inconsistency.
    if length < 8 or length > len(payload):
        ledger.settle(Reason.MALFORMED_TRANSPORT, owned)
        return None
    checksum_ok: bool | None = None
    if checksum == 0 and datagram.version == 4:
        pass  # RFC 768: an all-zero checksum over IPv4 means none was computed
    elif verify:
        segment = payload if length == len(payload) else payload[:length]
        # RFC 8200 8.1: a zero UDP checksum over IPv6 is invalid
        checksum_ok = checksum != 0 and _checksum_ok(datagram, segment, IPProtocol.UDP, memos)
        if not checksum_ok:
            ledger.observe("udp_bad_checksum")
    if length == 8:
        ledger.settle(Reason.EMPTY_UDP, owned)
        return None
    return UDPDatagram(datagram, sport, dport, payload[8:length], checksum_ok)


def _tcp(
    datagram: IPDatagram, ports: frozenset[int], ledger: Ledger, verify: bool,
    memos: AddressMemos,
) -> TCPSegment | None:
    payload = datagram.payload
    owned = datagram.owned_frames
    if len(payload) < 20:
        ledger.settle(Reason.MALFORMED_TRANSPORT, owned)
        return None
    sport, dport, seq, ack, offset_flags = _TCP_HEADER.unpack_from(payload)
    if sport not in ports and dport not in ports:
        ledger.settle(Reason.NOT_DNS_PORT, owned)
        return None
    header_length = (offset_flags >> 12) << 2  # RFC 9293 3.1: Data Offset in 32-bit words
    if header_length < 20 or header_length > len(payload):
        ledger.settle(Reason.MALFORMED_TRANSPORT, owned)
        return None
    checksum_ok: bool | None = None
    if verify:
        checksum_ok = _checksum_ok(datagram, payload, IPProtocol.TCP, memos)
        if not checksum_ok:
            ledger.observe("tcp_bad_checksum")
    return TCPSegment(
        datagram, sport, dport, seq, ack, offset_flags & 0xFF, payload[header_length:], checksum_ok
    )


def split_transport(
    datagram: IPDatagram,
    ports: frozenset[int],
    ledger: Ledger,
    *,
    verify_checksums: bool = False,
    memos: AddressMemos | None = None,
) -> UDPDatagram | TCPSegment | None:
    """Decode the UDP/TCP header; keep DNS-port traffic, settle everything else in ``ledger``.

    ``datagram`` must be whole (out of the ``Defragmenter``); the ``owned_frames`` of anything
    settled here are settled together. ``verify_checksums`` checks UDP/TCP checksums (a bad
    one is counted in ``ledger.observed`` and kept, never dropped); it is off by default here,
    on by default in the pipeline's ``DecodeChain`` (whose common UDP case goes through
    ``fastpath.fast_udp_message`` instead). Unchecked, ``checksum_ok`` is None. ``memos``:
    the run's address memos (without them a fresh set for this datagram).
    """
    if datagram.fragment is not None:
        raise ValueError(f"frame {datagram.frame}: split_transport needs a defragmented datagram")
    protocol = datagram.protocol
    if protocol == IPProtocol.UDP:
        return _udp(datagram, ports, ledger, verify_checksums, memos or AddressMemos())
    if protocol == IPProtocol.TCP:
        return _tcp(datagram, ports, ledger, verify_checksums, memos or AddressMemos())
    ledger.settle(Reason.NOT_UDP_TCP, datagram.owned_frames)
    return None


def udp_message(datagram: UDPDatagram) -> WireMessage:
    """The wire message carried by one UDP datagram."""
    ip = datagram.ip
    return WireMessage(
        transport=Transport.UDP,
        src=ip.src,
        sport=datagram.sport,
        dst=ip.dst,
        dport=datagram.dport,
        wire=datagram.payload,
        capture=ip.capture,
        frame=ip.frame,
        frames=ip.frames,
        ts_ns=ip.ts_ns,
        hop_limit=ip.hop_limit,
        owned_frames=ip.owned_frames,
    )
