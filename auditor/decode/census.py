"""Which UDP/TCP ports outside the DNS port set carry payloads that look like DNS: what a run
that found no DNS suggests to ``--port``."""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Iterable

from auditor.capture.frame import Frame
from auditor.decode.dissect import AddressMemos, dissect
from auditor.ledger import Ledger

_UDP, _TCP = 17, 6
_HEADER = struct.Struct("!HHHHHH")
_QUERY_OPCODES = frozenset({0, 4, 5})  # QUERY, NOTIFY (RFC 1996), UPDATE (RFC 2136)
_CLASSES = frozenset({1, 3, 4, 254, 255})  # IN, CH, HS, NONE, ANY (RFC 1035 3.2.4, 2136)


def looks_like_dns(payload: bytes) -> bool:
    """A header with one question (RFC 1035 4.1.1) whose name and class read cleanly.

    >>> looks_like_dns(bytes.fromhex("1234010000010000000000000377777700000100 01"))
    True
    >>> looks_like_dns(b"GET / HTTP/1.1\\r\\nHost: x\\r\\n")
    False
    """
    if len(payload) < _HEADER.size + 5:
        return False
    _, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(payload)
    if qdcount != 1 or (flags >> 11) & 0xF not in _QUERY_OPCODES or flags & 0x0040:  # Z=0
        return False
    if max(ancount, nscount, arcount) > 512:
        return False
    offset, total = _HEADER.size, 0
    while True:
        length = payload[offset]
        offset += 1
        if length == 0:
            break
        if length > 63 or offset + length >= len(payload):
            return False
        total += length + 1
        if total > 255:
            return False
        offset += length
    if offset + 4 > len(payload):
        return False
    _, qclass = struct.unpack_from("!HH", payload, offset)
    return qclass in _CLASSES


def _transport_payload(protocol: int, segment: bytes) -> tuple[int, int, bytes] | None:
    """(source port, destination port, DNS message candidate) of a UDP datagram or TCP
    segment (a TCP segment's payload without its RFC 1035 4.2.2 length prefix)."""
    if protocol == _UDP and len(segment) >= 8:
        sport, dport = struct.unpack_from("!HH", segment)
        return sport, dport, segment[8:]
    if protocol == _TCP and len(segment) >= 20:
        sport, dport = struct.unpack_from("!HH", segment)
        data = segment[(segment[12] >> 4) * 4:]
        if len(data) > 2 and int.from_bytes(data[:2], "big") >= len(data) - 2:
            return sport, dport, data[2:]
    return None


def dns_like_ports(frames: Iterable[Frame], ports: frozenset[int],
                   max_frames: int = 100_000) -> Counter[tuple[str, int]]:
    """(``udp``/``tcp``, port) -> payloads that look like DNS, over ports not in ``ports``,
    in the first ``max_frames`` frames. Both ends of each packet are counted, so the server
    port (in queries and answers alike) outnumbers the clients' ephemeral ports."""
    found: Counter[tuple[str, int]] = Counter()
    ledger = Ledger()  # a throwaway: this census settles nothing of the real run
    memos = AddressMemos()
    for number, frame in enumerate(frames):
        if number >= max_frames:
            break
        ledger.frames_read += 1
        datagram = dissect(frame, ledger, memos)
        if datagram is None or datagram.fragment is not None:
            continue
        unit = _transport_payload(datagram.protocol, datagram.payload)
        if unit is None or not looks_like_dns(unit[2]):
            continue
        name = "udp" if datagram.protocol == _UDP else "tcp"
        for port in unit[:2]:
            if port not in ports:
                found[(name, port)] += 1
    return found
