"""Which flow shard a frame belongs to: the unordered (source, destination) address pair.

Fragments of a datagram, both directions of a TCP stream, a query and its answer, and races or
spoofed answers forged with the server's address all share the pair, so a shard holds every
flow whole. Frames without an IP pair (non-IP, too short, unknown link types) belong to shard
0, so each is counted once.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

from auditor.capture.frame import Frame, LinkType
from auditor.decode.dissect import (  # the link-header tables dissect() uses
    _ETHERTYPE_VERSION,
    _LINK_DECODERS,
)

_BY_NIBBLE = 0
"""``_LINK_DECODERS``' answer for raw IP: the version nibble decides."""
_ADDRESSES = {4: (12, 4), 6: (8, 16)}
"""IP version -> (offset of the source address in the header, address length); the
destination follows the source (RFC 791 3.1, RFC 8200 3)."""


_ETHERNET = int(LinkType.ETHERNET)
_ETHERNET_HEADER = 14
"""Destination and source MAC addresses, then the EtherType (IEEE 802.3)."""
_ETHERNET_IP: dict[bytes, tuple[int, int]] = {
    ethertype.to_bytes(2, "big"): (_ETHERNET_HEADER + _ADDRESSES[version][0],
                                   _ADDRESSES[version][1])
    for ethertype, version in _ETHERTYPE_VERSION.items()}
"""Untagged Ethernet's EtherType bytes (IPv4, IPv6) -> (offset of the source address in the
frame, address length): most frames of most captures, read without the link decoder's call
(every shard reads every frame: about 1 µs less a frame; benchmarks/README.md, "session 14")."""


def address_pair(frame: Frame) -> bytes | None:
    """The frame's two IP addresses, smaller first (so both directions give the same bytes);
    None when the frame carries no whole IPv4/IPv6 address pair."""
    data = frame.data
    where = (_ETHERNET_IP.get(data[_ETHERNET_HEADER - 2:_ETHERNET_HEADER])
             if frame.linktype == _ETHERNET else None)
    if where is None:
        return _decoded_address_pair(frame)
    return _pair_at(data, *where)


def _decoded_address_pair(frame: Frame) -> bytes | None:
    """``address_pair`` of any frame, through the link decoder ``dissect`` uses."""
    link = _LINK_DECODERS.get(frame.linktype)
    if link is None:
        return None
    data = frame.data
    try:
        version, offset = link(data)
    except (IndexError, ValueError):
        return None
    if version == _BY_NIBBLE:
        if not data:
            return None
        version = data[0] >> 4
    where = _ADDRESSES.get(version)
    if where is None:
        return None
    start, size = where
    return _pair_at(data, offset + start, size)


def _pair_at(data: bytes, at: int, size: int) -> bytes | None:
    """The two ``size``-byte addresses at ``at``, smaller first; None if the frame is shorter."""
    if len(data) < at + 2 * size:
        return None
    first, second = data[at:at + size], data[at + size:at + 2 * size]
    return first + second if first <= second else second + first


def shard_of(frame: Frame, count: int) -> int:
    """The shard (0..count-1) that decodes ``frame``."""
    pair = address_pair(frame)
    return 0 if pair is None else zlib.crc32(pair) % count


@dataclass(slots=True)
class FlowShard:
    """A ``DecodeChain`` shard predicate: True for the frames shard ``index`` of ``count``
    decodes. ``own`` tells whether the last frame asked about was one of them."""

    index: int
    """This shard, 0-based."""
    count: int
    """Number of shards."""
    own: bool = field(default=False)
    """Whether the last frame asked about belongs to this shard."""

    def __call__(self, frame: Frame) -> bool:
        self.own = shard_of(frame, self.count) == self.index
        return self.own
