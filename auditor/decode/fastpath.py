"""The common case decoded in one step: a whole IPv4/IPv6 UDP datagram on a DNS port, straight
from the frame to its wire message, without the intermediate datagram objects."""

from __future__ import annotations

import socket
import struct

from auditor.capture.frame import Frame, LinkType
from auditor.decode.dissect import AddressMemos, EtherType
from auditor.decode.transport import Transport, WireMessage
from auditor.ledger import Ledger, Reason

# Anything unusual (VLAN tags, IPv4 options, IPv6 extension headers, fragments, TCP, a header
# that does not add up, an empty or inconsistent UDP datagram) is left to the general stages
# (dissect -> defrag -> transport), which decide and settle it. This path settles only what it
# fully decided, and settles it exactly as they would.

_LINK_HEADERS: dict[int, tuple[int, int]] = {
    LinkType.ETHERNET: (12, 14),  # IEEE 802.3: EtherType at 12, IP at 14 (untagged)
    LinkType.LINUX_SLL: (14, 16),  # Linux cooked v1: protocol type at 14, IP at 16
    LinkType.LINUX_SLL2: (0, 20),  # Linux cooked v2: protocol type at 0, IP at 20
}
"""Link type -> (where its EtherType is, where the IP header starts)."""

_IPV4_UDP = struct.Struct("!BxHxxHBBxxIIHHHH")
"""Version+IHL, Total Length, Flags+Fragment Offset, TTL, Protocol, Source, Destination
(RFC 791 3.1; Identification and header checksum skipped), then the UDP header (RFC 768)."""
_IPV6_UDP = struct.Struct("!BxxxHBB16s16sHHHH")
"""Version+class, Payload Length, Next Header, Hop Limit, Source, Destination (RFC 8200 3),
then the UDP header (RFC 768)."""
_IPV4_MIN = 28  # 20-byte IPv4 header without options + 8-byte UDP header
_IPV6_MIN = 48  # 40-byte IPv6 header + 8-byte UDP header
_IPV4_NO_OPTIONS = 0x45  # version 4, IHL 5 words
_FRAGMENT_BITS = 0x3FFF  # RFC 791 3.1: More Fragments flag and Fragment Offset
_UDP = 17
_CHECKSUM_MODULUS = 0xFFFF
_ETHERTYPE_IPV4 = EtherType.IPV4.value
_ETHERTYPE_IPV6 = EtherType.IPV6.value
_NOT_DNS_PORT = Reason.NOT_DNS_PORT
_TRANSPORT_UDP = Transport.UDP
_ntop = socket.inet_ntop
_AF_INET = socket.AF_INET
_AF_INET6 = socket.AF_INET6



def _ipv4_text(memos: AddressMemos, value: int) -> str:
    """Presentation text of an IPv4 address value, added to ``memos.ipv4_texts``."""
    texts = memos.ipv4_texts
    if memos.full(texts):
        texts.clear()
    text = texts[value] = _ntop(_AF_INET, value.to_bytes(4, "big"))
    return text


def _ipv6_address(memos: AddressMemos, raw: bytes) -> tuple[str, int]:
    """(presentation text, integer value) of IPv6 address bytes, added to
    ``memos.ipv6_addresses``."""
    addresses = memos.ipv6_addresses
    if memos.full(addresses):
        addresses.clear()
    found = addresses[raw] = (_ntop(_AF_INET6, raw), int.from_bytes(raw, "big"))
    return found


def _udp_checksum_ok(addresses: int, ports_and_checksum: int, length: int, wire: bytes) -> bool:
    """Whether a UDP datagram sums to zero with its pseudo-header (RFC 768, RFC 8200 8.1).

    ``addresses`` is the sum of the source and destination address values, and
    ``ports_and_checksum`` that of the ports and the checksum field. A value is congruent to
    the one's complement sum of its 16-bit words modulo 0xFFFF (2**16 = 1 modulo 0xFFFF), so
    the whole payload is summed by one ``int.from_bytes`` (it starts on an even offset; an odd
    length is padded with one zero byte). A correct checksum makes the sum 0 modulo 0xFFFF.
    """
    payload = int.from_bytes(wire, "big")
    if length & 1:
        payload <<= 8
    # Pseudo-header: addresses, protocol, UDP length; then the header words: ports, the
    # length again, the checksum; then the payload.
    total = addresses + _UDP + length + ports_and_checksum + length + payload
    return total % _CHECKSUM_MODULUS == 0


def fast_udp_message(
    frame: Frame, ports: frozenset[int], ledger: Ledger, verify_checksums: bool,
    memos: AddressMemos | None = None,
) -> WireMessage | bool:
    """Decode ``frame`` if it is a plain UDP datagram; settle it if it is one off the DNS ports.

    Returns the wire message of a non-empty UDP datagram on a DNS port (its checksum verified
    and a bad one counted, as ``split_transport`` does), True when the frame was settled here
    (UDP outside the DNS port set), and False when the general stages must decode the frame;
    nothing is settled or counted then. ``memos``: the run's address memos (without them a
    fresh set for this frame).
    """
    link = _LINK_HEADERS.get(frame.linktype)
    if link is None:
        return False
    data = frame.data
    at, ip = link
    if len(data) < ip + _IPV4_MIN:
        return False
    ethertype = (data[at] << 8) | data[at + 1]
    if ethertype == _ETHERTYPE_IPV4:
        first, total, fragment, ttl, protocol, src, dst, sport, dport, length, checksum = (
            _IPV4_UDP.unpack_from(data, ip)
        )
        if (
            first != _IPV4_NO_OPTIONS
            or protocol != _UDP
            or fragment & _FRAGMENT_BITS
            or total < _IPV4_MIN
            or ip + total > len(data)
        ):
            return False
        if sport not in ports and dport not in ports:
            ledger.settle(_NOT_DNS_PORT)
            return True
        if length <= 8 or length > total - 20:  # RFC 768: Length counts the 8-byte header
            return False
        start = ip + 28
        wire = data[start : start + length - 8]
        # RFC 768: an all-zero checksum over IPv4 means none was computed.
        if (
            checksum
            and verify_checksums
            and not _udp_checksum_ok(src + dst, sport + dport + checksum, length, wire)
        ):
            ledger.observe("udp_bad_checksum")
        if memos is None:
            memos = AddressMemos()
        texts = memos.ipv4_texts
        src_text = texts.get(src) or _ipv4_text(memos, src)
        dst_text = texts.get(dst) or _ipv4_text(memos, dst)
    elif ethertype == _ETHERTYPE_IPV6:
        if len(data) < ip + _IPV6_MIN:
            return False
        first, total, next_header, ttl, src6, dst6, sport, dport, length, checksum = (
            _IPV6_UDP.unpack_from(data, ip)
        )
        if first >> 4 != 6 or next_header != _UDP or ip + 40 + total > len(data):
            return False
        if sport not in ports and dport not in ports:
            ledger.settle(_NOT_DNS_PORT)
            return True
        if length <= 8 or length > total:  # RFC 768: Length counts the 8-byte header
            return False
        start = ip + 48
        wire = data[start : start + length - 8]
        if memos is None:
            memos = AddressMemos()
        addresses = memos.ipv6_addresses
        src_text, src = addresses.get(src6) or _ipv6_address(memos, src6)
        dst_text, dst = addresses.get(dst6) or _ipv6_address(memos, dst6)
        # RFC 8200 8.1: a zero UDP checksum over IPv6 is invalid.
        if verify_checksums and (
            not checksum or not _udp_checksum_ok(src + dst, sport + dport + checksum, length, wire)
        ):
            ledger.observe("udp_bad_checksum")
    else:
        return False
    number = frame.number
    return WireMessage(
        _TRANSPORT_UDP,
        src_text,
        sport,
        dst_text,
        dport,
        wire,
        frame.capture,
        number,
        (number,),
        frame.ts_ns,
        ttl,
        1,
    )
