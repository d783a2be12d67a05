"""Flow shards: both directions of a flow, and every fragment, in one shard; frames without an
IP address pair in shard 0."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from auditor.capture.frame import Frame, LinkType
from auditor.scale.shard import FlowShard, _decoded_address_pair, address_pair, shard_of


def _ipv4(src: bytes, dst: bytes, payload: bytes = b"", fragment: int = 0) -> bytes:
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, fragment, 64, 17, 0,
                         src, dst)
    return header + payload


def _frame(data: bytes, linktype: int = LinkType.RAW, number: int = 1) -> Frame:
    return Frame("t", number, 0, linktype, data, len(data))


def test_both_directions_and_fragments_share_a_shard() -> None:
    a, b = bytes([192, 0, 2, 1]), bytes([198, 51, 100, 7])
    there = _frame(_ipv4(a, b, b"x" * 8, fragment=0x2000))
    back = _frame(_ipv4(b, a))
    last = _frame(_ipv4(a, b, b"y" * 8, fragment=1))
    assert address_pair(there) == address_pair(back) == address_pair(last) == a + b
    for count in (2, 3, 8):
        assert shard_of(there, count) == shard_of(back, count) == shard_of(last, count)


def test_ethernet_vlan_and_ipv6() -> None:
    src, dst = bytes(range(16)), bytes(range(16, 32))
    ipv6 = struct.pack("!IHBB16s16s", 6 << 28, 0, 17, 64, dst, src)
    tagged = b"\x00" * 12 + b"\x81\x00\x00\x05" + b"\x86\xdd" + ipv6
    assert address_pair(_frame(tagged, LinkType.ETHERNET)) == src + dst


def test_frames_without_an_address_pair_go_to_shard_zero() -> None:
    arp = b"\x00" * 12 + b"\x08\x06" + b"\x00" * 28
    for frame in (_frame(arp, LinkType.ETHERNET), _frame(b"", LinkType.RAW),
                  _frame(b"\x45\x00", LinkType.RAW), _frame(b"\x00" * 40, 147)):
        assert address_pair(frame) is None
        assert shard_of(frame, 4) == 0
    shard = FlowShard(0, 4)
    assert shard(_frame(arp, LinkType.ETHERNET)) and shard.own


_ETHERTYPES = st.sampled_from([b"\x08\x00", b"\x86\xdd", b"\x81\x00", b"\x08\x06"])
_ETHERNET_FRAMES = st.builds(lambda macs, kind, size, body: _frame(
    macs + kind + (body * size)[:size], LinkType.ETHERNET),
    st.binary(min_size=12, max_size=12), _ETHERTYPES, st.integers(0, 72),
    st.binary(min_size=1, max_size=8))
"""Ethernet frames of every length up to past an IPv6 address pair, the EtherTypes around the
fast path's."""
_OTHER_FRAMES = st.builds(_frame, st.binary(max_size=80),
                          st.sampled_from([LinkType.ETHERNET, LinkType.RAW, LinkType.LINUX_SLL,
                                           147]))


@settings(max_examples=500, deadline=None)
@given(frame=st.one_of(_ETHERNET_FRAMES, _OTHER_FRAMES))
def test_the_ethernet_fast_path_gives_what_the_link_decoder_gives(frame: Frame) -> None:
    """Untagged Ethernet IPv4/IPv6 frames skip the link decoder: the same pair (or None) for
    every frame, whole or cut short, as the decoder's path (the shards must not change)."""
    assert address_pair(frame) == _decoded_address_pair(frame)
