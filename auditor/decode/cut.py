"""The DNS message of a UDP datagram the capture's snapshot length cut short, as far as it was
captured: listed (header and question) as tshark lists such a packet as malformed, never
judged. The frame stays settled as ``truncated_snaplen`` by the IP stage; the message owns no
frame."""

from __future__ import annotations

import struct

from auditor.capture.frame import Frame
from auditor.decode.census import looks_like_dns
from auditor.decode.dissect import _BY_NIBBLE, _LINK_DECODERS, AddressMemos
from auditor.decode.transport import Transport, WireMessage

_UDP = 17
_UDP_HEADER = struct.Struct("!HHHH")
_DNS_HEADER = 12


def _ip_fields(frame: Frame, memos: AddressMemos) -> tuple[str, str, int, int, bytes] | None:
    """(source, destination, protocol, hop limit, captured IP payload) of an unfragmented
    IPv4 or IPv6 packet without extension headers; None otherwise."""
    link = _LINK_DECODERS.get(frame.linktype)
    if link is None:
        return None
    data = frame.data
    version, off = link(data)
    if version == _BY_NIBBLE and data:
        version = data[0] >> 4
    if version == 4 and len(data) >= off + 20 and data[off] >> 4 == 4:
        ihl = (data[off] & 0x0F) << 2
        if ihl < 20 or int.from_bytes(data[off + 6:off + 8], "big") & 0x3FFF:  # a fragment
            return None
        return (memos.text(data[off + 12:off + 16]), memos.text(data[off + 16:off + 20]),
                data[off + 9], data[off + 8], data[off + ihl:])
    if version == 6 and len(data) >= off + 40 and data[off] >> 4 == 6:
        return (memos.text(data[off + 8:off + 24]), memos.text(data[off + 24:off + 40]),
                data[off + 6], data[off + 7], data[off + 40:])
    return None


def cut_udp_message(frame: Frame, ports: frozenset[int], memos: AddressMemos | None = None
                    ) -> WireMessage | None:
    """The captured part of a DNS message in a UDP datagram cut by the snapshot length (the
    frame's wire length exceeds its captured bytes), when its header and question were
    captured whole; None for anything else (``memos``: the run's address memos)."""
    if frame.wirelen <= len(frame.data):
        return None
    fields = _ip_fields(frame, memos or AddressMemos())
    if fields is None:
        return None
    src, dst, protocol, hop_limit, payload = fields
    if protocol != _UDP or len(payload) < _UDP_HEADER.size + _DNS_HEADER:
        return None
    sport, dport, _, _ = _UDP_HEADER.unpack_from(payload)
    message = payload[_UDP_HEADER.size:]
    if (sport not in ports and dport not in ports) or not looks_like_dns(message):
        return None
    return WireMessage(
        transport=Transport.UDP, src=src, sport=sport, dst=dst, dport=dport, wire=message,
        capture=frame.capture, frame=frame.number, frames=(frame.number,), ts_ns=frame.ts_ns,
        hop_limit=hop_limit, owned_frames=0, cut=True)
