"""Link-layer and IP header decoding of one frame into an IP datagram (or fragment)."""

from __future__ import annotations

import logging
import socket
import struct
from collections.abc import Callable, Sized
from dataclasses import dataclass
from enum import IntEnum

from auditor.anomaly import Anomaly, AnomalyCode
from auditor.capture.frame import Frame, LinkType
from auditor.ledger import Ledger, Reason

logger = logging.getLogger(__name__)


class EtherType(IntEnum):
    """EtherType values we act on, named after the IEEE 802 Numbers registry."""

    IPV4 = 0x0800
    IPV6 = 0x86DD
    VLAN = 0x8100
    """IEEE 802.1Q customer VLAN tag."""
    QINQ = 0x88A8
    """IEEE 802.1ad service VLAN tag (stacked VLANs)."""
    QINQ_LEGACY = 0x9100
    """Pre-standard stacked VLAN tag still written by some switches."""
    PPPOE_DISCOVERY = 0x8863
    """PPPoE Discovery stage (RFC 2516 5): PADI/PADO/PADR/PADS/PADT, never IP."""
    PPPOE_SESSION = 0x8864
    """PPPoE Session stage (RFC 2516 6): a PPP frame follows a 6-byte PPPoE header."""


class PPPProtocol(IntEnum):
    """PPP protocol numbers we act on, named after the IANA PPP DLL Protocol Numbers registry."""

    IPV4 = 0x0021
    """Internet Protocol version 4 (RFC 1332)."""
    IPV6 = 0x0057
    """Internet Protocol version 6 (RFC 5072)."""


class IPProtocol(IntEnum):
    """IP protocol / IPv6 next-header numbers, named after the IANA Protocol Numbers registry."""

    HOPOPT = 0
    TCP = 6
    UDP = 17
    IPV6_ROUTE = 43
    IPV6_FRAG = 44
    AH = 51
    IPV6_NONXT = 59
    IPV6_OPTS = 60


class BSDAddressFamily(IntEnum):
    """AF_ values found in LINKTYPE_NULL / LINKTYPE_LOOP headers (tcpdump.org link-layer list)."""

    INET = 2
    INET6_BSD = 24
    """NetBSD, OpenBSD, BSD/OS."""
    INET6_FREEBSD = 28
    """FreeBSD, DragonFly BSD."""
    INET6_DARWIN = 30
    """macOS / iOS."""


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


# --- link layer -------------------------------------------------------------------------------
# A link decoder returns (version, offset): the IP version the link header announces (4 or 6),
# _BY_NIBBLE when the IP header's first nibble decides, _NOT_IP, or _SHORT when the link header
# itself is cut; ``offset`` is where the IP header starts.

_BY_NIBBLE = 0
_NOT_IP = -1
_SHORT = -2
_PPPOE_DISCOVERY = -3
_PPP_NOT_IP = -4

NOT_IP_DETAILS: dict[int, str] = {
    _PPPOE_DISCOVERY: "pppoe_discovery",
    _PPP_NOT_IP: "ppp_not_ip",
}
"""Frames settled as ``not_ip`` that are also counted under a name in ``stats.json``'s
``observed``: PPPoE discovery frames and PPPoE session frames carrying another PPP protocol
(LCP, IPCP, CHAP, ...)."""
_PPP_VERSION: dict[int, int] = {PPPProtocol.IPV4: 4, PPPProtocol.IPV6: 6}
_PPPOE_HEADER = 6  # RFC 2516 4: VER/TYPE, CODE, SESSION_ID, LENGTH

_VLAN_TPIDS = frozenset({EtherType.VLAN, EtherType.QINQ, EtherType.QINQ_LEGACY})
_ETHERTYPE_VERSION: dict[int, int] = {EtherType.IPV4: 4, EtherType.IPV6: 6}
_AF_VERSION: dict[int, int] = {
    BSDAddressFamily.INET: 4,
    BSDAddressFamily.INET6_BSD: 6,
    BSDAddressFamily.INET6_FREEBSD: 6,
    BSDAddressFamily.INET6_DARWIN: 6,
}
_U32_BE = struct.Struct("!I")
_U32_LE = struct.Struct("<I")


def _ethernet(data: bytes) -> tuple[int, int]:
    """IEEE 802.3 header, skipping any stack of 802.1Q / 802.1ad tags."""
    if len(data) < 14:
        return _SHORT, 0
    ethertype = (data[12] << 8) | data[13]
    offset = 14
    while ethertype in _VLAN_TPIDS:  # IEEE 802.1Q 9.3: TPID, then 2-byte TCI, then EtherType
        if len(data) < offset + 4:
            return _SHORT, 0
        ethertype = (data[offset + 2] << 8) | data[offset + 3]
        offset += 4
    if ethertype == EtherType.PPPOE_SESSION:
        return _pppoe_session(data, offset)
    if ethertype == EtherType.PPPOE_DISCOVERY:
        return _PPPOE_DISCOVERY, offset
    return _ETHERTYPE_VERSION.get(ethertype, _NOT_IP), offset


def _pppoe_session(data: bytes, offset: int) -> tuple[int, int]:
    """RFC 2516 6: a 6-byte PPPoE header, then PPP's 2-byte protocol field (RFC 1661 2; PPPoE
    forbids its compression), then the IP header."""
    if len(data) < offset + _PPPOE_HEADER + 2:
        return _SHORT, 0
    at = offset + _PPPOE_HEADER
    protocol = (data[at] << 8) | data[at + 1]
    return _PPP_VERSION.get(protocol, _PPP_NOT_IP), at + 2


_FDDI_MAC_HEADER = 13
"""Frame control (1 byte), destination and source addresses (6 + 6)."""
_LLC_SNAP = b"\xaa\xaa\x03"
"""IEEE 802.2 LLC header announcing SNAP (RFC 1042): DSAP 0xAA, SSAP 0xAA, UI control."""


def _fddi(data: bytes) -> tuple[int, int]:
    """FDDI: the MAC header, then LLC/SNAP (RFC 1188 / RFC 1042: 3-byte LLC, 3-byte OUI,
    2-byte EtherType) before the IP header. Frames without SNAP (e.g. station management)
    are not IP."""
    at = _FDDI_MAC_HEADER
    if len(data) < at + 8:
        return _SHORT, 0
    if data[at:at + 3] != _LLC_SNAP:
        return _NOT_IP, 0
    ethertype = (data[at + 6] << 8) | data[at + 7]
    return _ETHERTYPE_VERSION.get(ethertype, _NOT_IP), at + 8


def _linux_sll(data: bytes) -> tuple[int, int]:
    """Linux cooked v1: 16 bytes, protocol type (an EtherType for IP) in the last two."""
    if len(data) < 16:
        return _SHORT, 0
    return _ETHERTYPE_VERSION.get((data[14] << 8) | data[15], _NOT_IP), 16


def _linux_sll2(data: bytes) -> tuple[int, int]:
    """Linux cooked v2: 20 bytes, protocol type (an EtherType for IP) in the first two."""
    if len(data) < 20:
        return _SHORT, 0
    return _ETHERTYPE_VERSION.get((data[0] << 8) | data[1], _NOT_IP), 20


def _raw(data: bytes) -> tuple[int, int]:
    """No link header: the IP version nibble decides."""
    return _BY_NIBBLE, 0


def _raw_ipv4(data: bytes) -> tuple[int, int]:
    """LINKTYPE_IPV4: no link header, IPv4 only."""
    return 4, 0


def _raw_ipv6(data: bytes) -> tuple[int, int]:
    """LINKTYPE_IPV6: no link header, IPv6 only."""
    return 6, 0


def _bsd_null(data: bytes) -> tuple[int, int]:
    """BSD loopback: a 4-byte AF_ value in the writing host's byte order (either one)."""
    if len(data) < 4:
        return _SHORT, 0
    # AF_ values are small, so the byte order that yields the smaller number is the right one.
    family = min(_U32_BE.unpack_from(data)[0], _U32_LE.unpack_from(data)[0])
    return _AF_VERSION.get(family, _NOT_IP), 4


def _bsd_loop(data: bytes) -> tuple[int, int]:
    """OpenBSD loopback: a 4-byte AF_ value in network byte order."""
    if len(data) < 4:
        return _SHORT, 0
    return _AF_VERSION.get(_U32_BE.unpack_from(data)[0], _NOT_IP), 4


_LINK_DECODERS: dict[int, Callable[[bytes], tuple[int, int]]] = {
    LinkType.ETHERNET: _ethernet,
    LinkType.FDDI: _fddi,
    LinkType.LINUX_SLL: _linux_sll,
    LinkType.LINUX_SLL2: _linux_sll2,
    LinkType.RAW: _raw,
    LinkType.RAW_BSD12: _raw,
    LinkType.RAW_BSD14: _raw,
    LinkType.IPV4: _raw_ipv4,
    LinkType.IPV6: _raw_ipv6,
    LinkType.NULL: _bsd_null,
    LinkType.LOOP: _bsd_loop,
}
"""Every link type we decode; anything else is settled as UNSUPPORTED_LINKTYPE."""


# --- unsupported link types: one warning and one anomaly per run, not per frame ---------------
# Keyed by capture/interface; the value is the ledger (the run) already told, so a later run in
# the same process, with a new ledger, is told again. Bounded by the number of interfaces seen.
_warned_linktypes: dict[tuple[str, int, int], Ledger] = {}
_noted_interfaces: dict[tuple[str, int], Ledger] = {}


def _settle_unsupported_linktype(frame: Frame, ledger: Ledger) -> None:
    ledger.settle(Reason.UNSUPPORTED_LINKTYPE)
    warn_key = (frame.capture, frame.interface, frame.linktype)
    if _warned_linktypes.get(warn_key) is ledger:
        return
    _warned_linktypes[warn_key] = ledger
    name = f" ({frame.interface_name})" if frame.interface_name else ""
    detail = (
        f"capture {frame.capture}: interface {frame.interface}{name} has link type "
        f"{frame.linktype}, which is not decoded; its frames are counted as "
        f"{Reason.UNSUPPORTED_LINKTYPE.value}"
    )
    logger.warning("%s", detail)
    note_key = (frame.capture, frame.interface)
    if _noted_interfaces.get(note_key) is ledger:
        return
    _noted_interfaces[note_key] = ledger
    ledger.note(
        Anomaly(
            code=AnomalyCode.UNSUPPORTED_LINKTYPE,
            capture=frame.capture,
            frames=(frame.number,),
            ts_ns=frame.ts_ns,
            detail=detail,
            params={
                "interface": frame.interface,
                "interface_name": frame.interface_name,
                "linktype": frame.linktype,
            },
        )
    )


def _settle_short(frame: Frame, ledger: Ledger, malformed: Reason) -> None:
    """A header or payload runs past the captured bytes: snaplen's fault or a malformed packet."""
    if frame.wirelen > len(frame.data):
        ledger.settle(Reason.TRUNCATED_SNAPLEN)
    else:
        ledger.settle(malformed)


# --- IP -----------------------------------------------------------------------------------------

_IPV4_FIELDS = struct.Struct("!HHHBB")
"""Total Length, Identification, Flags+Fragment Offset, TTL, Protocol (RFC 791 3.1)."""
_IPV6_FIELDS = struct.Struct("!HBB")
"""Payload Length, Next Header, Hop Limit (RFC 8200 3)."""
_IPV6_FRAGMENT = struct.Struct("!BxHI")
"""Next Header, Reserved, Fragment Offset+Res+M, Identification (RFC 8200 4.5)."""

_IPV4_MF = 0x2000
_IPV4_OFFSET_MASK = 0x1FFF
_IPV6_SKIPPED_HEADERS = frozenset(
    {IPProtocol.HOPOPT, IPProtocol.IPV6_ROUTE, IPProtocol.IPV6_OPTS, IPProtocol.AH}
)
"""Extension headers walked over to reach the upper layer (the Fragment header is handled
on its own)."""

_AF_INET = socket.AF_INET
_AF_INET6 = socket.AF_INET6
_ntop = socket.inet_ntop

ADDRESS_MEMO_SIZE = 65536
"""Default bound of each address memo of the decode stage; a memo that fills up is cleared and
refilled."""


class AddressMemos:
    """The decode stage's memos of addresses, one set per run (``engine/caches.py``): a
    capture point sees few addresses, and ``inet_ntop``/``inet_pton`` plus the objects they
    build cost more than a lookup. A memo that reaches ``size`` entries is cleared and
    refilled."""

    __slots__ = ("ipv4_texts", "ipv6_addresses", "size", "texts", "values")

    def __init__(self, size: int = ADDRESS_MEMO_SIZE) -> None:
        self.size = max(1, size)
        """Cap of each memo."""
        self.texts: dict[bytes, str] = {}
        """Address bytes (4 or 16) -> presentation text (``text``)."""
        self.ipv4_texts: dict[int, str] = {}
        """IPv4 address value -> presentation text (``fastpath``)."""
        self.ipv6_addresses: dict[bytes, tuple[str, int]] = {}
        """IPv6 address bytes -> (presentation text, integer value for the checksum)
        (``fastpath``)."""
        self.values: dict[str, int] = {}
        """Address text -> integer value of its bytes (``transport`` checksums)."""

    def full(self, memo: Sized) -> bool:
        """Whether one of these memos reached the cap (checked only when adding an entry)."""
        return len(memo) >= self.size

    def text(self, raw: bytes) -> str:
        """Compressed presentation form of a 4- or 16-byte address, memoised."""
        texts = self.texts
        text = texts.get(raw)
        if text is None:
            if len(texts) >= self.size:
                texts.clear()
            text = texts[raw] = _ntop(_AF_INET if len(raw) == 4 else _AF_INET6, raw)
        return text

    def clear(self) -> None:
        """Empty every memo (pure: refilled on demand; the cap stays). Their entries are
        small objects made all along a run; the ones left after the rest of a run's state is
        released keep whole allocator arenas alive (a names flood with ever new clients:
        14,000 texts)."""
        for memo in (self.texts, self.ipv4_texts, self.ipv6_addresses, self.values):
            memo.clear()


def walk_ipv6_headers(
    data: bytes, next_header: int, pos: int, end: int
) -> tuple[int, int, FragmentInfo | None, int | None] | None:
    """Skip IPv6 extension headers in ``data[pos:end]`` starting with ``next_header``.

    Returns (upper-layer protocol, where its bytes start, fragment info, atomic fragment id);
    the walk stops after a Fragment header of a real fragment, whose remaining bytes are
    fragment data. Returns None when a header runs past ``end``.
    """
    atomic_ident: int | None = None
    while True:
        if next_header in _IPV6_SKIPPED_HEADERS:
            if pos + 2 > end:
                return None
            if next_header == IPProtocol.AH:
                size = (data[pos + 1] + 2) << 2  # RFC 4302 2.2: length in 4-octet units, minus 2
            else:
                size = (data[pos + 1] + 1) << 3  # RFC 8200 4.3-4.6: 8-octet units, minus 1
            next_header = data[pos]
            pos += size
            if pos > end:
                return None
        elif next_header == IPProtocol.IPV6_FRAG:
            if pos + 8 > end:
                return None
            following, offset_flags, ident = _IPV6_FRAGMENT.unpack_from(data, pos)
            pos += 8
            offset = offset_flags & 0xFFF8  # RFC 8200 4.5: 13-bit offset in 8-octet units
            more = offset_flags & 1
            if offset or more:
                return following, pos, FragmentInfo(ident, offset, bool(more)), ident
            # RFC 6946 4: an atomic fragment is processed in isolation, as a whole packet.
            atomic_ident = ident
            next_header = following
        else:
            return next_header, pos, None, atomic_ident


def _ipv4(frame: Frame, data: bytes, off: int, ledger: Ledger, memos: AddressMemos
          ) -> IPDatagram | None:
    if len(data) - off < 20:
        _settle_short(frame, ledger, Reason.MALFORMED_IP)
        return None
    first = data[off]
    ihl = (first & 0x0F) << 2
    if first >> 4 != 4 or ihl < 20:  # RFC 791 3.1: Version 4, IHL at least 5 words
        ledger.settle(Reason.MALFORMED_IP)
        return None
    total, ident, flags_offset, ttl, protocol = _IPV4_FIELDS.unpack_from(data, off + 2)
    if total < ihl:  # RFC 791 3.1: Total Length includes the header
        ledger.settle(Reason.MALFORMED_IP)
        return None
    end = off + total
    if end > len(data):
        _settle_short(frame, ledger, Reason.MALFORMED_IP)
        return None
    fragment = None
    more = flags_offset & _IPV4_MF
    if more or flags_offset & _IPV4_OFFSET_MASK:
        if more and (total - ihl) & 7:  # RFC 791 3.2: all but the last fragment 8-octet aligned
            ledger.settle(Reason.MALFORMED_IP)
            return None
        fragment = FragmentInfo(ident, (flags_offset & _IPV4_OFFSET_MASK) << 3, bool(more))
    number = frame.number
    return IPDatagram(
        frame.capture,
        number,
        (number,),
        frame.ts_ns,
        4,
        memos.text(data[off + 12 : off + 16]),
        memos.text(data[off + 16 : off + 20]),
        protocol,
        ttl,
        ident,
        data[off + ihl : end],  # cut to Total Length: drops Ethernet padding
        fragment,
    )


def _ipv6(frame: Frame, data: bytes, off: int, ledger: Ledger, memos: AddressMemos
          ) -> IPDatagram | None:
    if len(data) - off < 40:
        _settle_short(frame, ledger, Reason.MALFORMED_IP)
        return None
    if data[off] >> 4 != 6:  # RFC 8200 3: Version 6
        ledger.settle(Reason.MALFORMED_IP)
        return None
    payload_length, next_header, hop_limit = _IPV6_FIELDS.unpack_from(data, off + 4)
    end = off + 40 + payload_length
    if end > len(data):
        _settle_short(frame, ledger, Reason.MALFORMED_IP)
        return None
    walked = walk_ipv6_headers(data, next_header, off + 40, end)
    if walked is None:
        ledger.settle(Reason.MALFORMED_IP)
        return None
    protocol, start, fragment, ident = walked
    if fragment is not None and fragment.more and (end - start) & 7:
        ledger.settle(Reason.MALFORMED_IP)  # RFC 8200 4.5: M=1 fragments are 8-octet multiples
        return None
    number = frame.number
    return IPDatagram(
        frame.capture,
        number,
        (number,),
        frame.ts_ns,
        6,
        memos.text(data[off + 8 : off + 24]),
        memos.text(data[off + 24 : off + 40]),
        protocol,
        hop_limit,
        ident,
        data[start:end],
        fragment,
    )


def dissect(frame: Frame, ledger: Ledger, memos: AddressMemos | None = None
            ) -> IPDatagram | None:
    """Decode one frame's link and IP headers, or settle it in ``ledger`` and return None
    (``memos``: the run's address memos; without them a fresh set for this frame)."""
    link = _LINK_DECODERS.get(frame.linktype)
    if link is None:
        _settle_unsupported_linktype(frame, ledger)
        return None
    data = frame.data
    version, off = link(data)
    if version == _BY_NIBBLE:
        if not data:
            _settle_short(frame, ledger, Reason.MALFORMED_IP)
            return None
        version = data[0] >> 4
    if version == 4:
        return _ipv4(frame, data, off, ledger, memos or AddressMemos())
    if version == 6:
        return _ipv6(frame, data, off, ledger, memos or AddressMemos())
    if version == _NOT_IP:
        ledger.settle(Reason.NOT_IP)
    elif version in NOT_IP_DETAILS:
        ledger.settle(Reason.NOT_IP)
        ledger.observe(NOT_IP_DETAILS[version])
    elif version == _SHORT:
        _settle_short(frame, ledger, Reason.MALFORMED_LINK)
    else:  # a raw-IP link type whose first nibble is neither 4 nor 6
        ledger.settle(Reason.MALFORMED_IP)
    return None
