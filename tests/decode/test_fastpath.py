"""The UDP fast path decides exactly as the general stages (dissect -> transport) would."""

from __future__ import annotations

import dataclasses
import struct

import dns.message
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrDestOpt

from auditor.capture.frame import Frame, LinkType
from auditor.decode.dissect import dissect
from auditor.decode.fastpath import fast_udp_message
from auditor.decode.transport import (
    DNS_PORTS,
    UDPDatagram,
    WireMessage,
    split_transport,
    udp_message,
)
from auditor.ledger import Ledger, Reason
from tests.decode.packets import V4_DST, V4_SRC, V6_DST, V6_SRC, ether, frame, udp4, udp6

_SLL_HEADER = struct.Struct("!HHH8sH")
"""Linux cooked v1: packet type, ARPHRD type, address length, address, protocol type."""
_SLL2_HEADER = struct.Struct("!HHIHBB8s")
"""Linux cooked v2: protocol type, reserved, interface index, ARPHRD, packet type, length,
address."""


def _linked(ip_bytes: bytes, linktype: int, ethertype: int) -> bytes:
    if linktype == LinkType.ETHERNET:
        return ether(ip_bytes, ethertype)
    if linktype == LinkType.LINUX_SLL:
        return _SLL_HEADER.pack(0, 1, 6, b"\x02" * 8, ethertype) + ip_bytes
    return _SLL2_HEADER.pack(ethertype, 0, 1, 1, 0, 6, b"\x02" * 8) + ip_bytes


def _ledger_state(ledger: Ledger) -> tuple[int, dict[Reason, int], dict[str, int]]:
    return ledger.frames_read, dict(ledger.settled), dict(ledger.observed)


def _general(data: Frame, ports: frozenset[int], verify: bool) -> tuple[object, Ledger]:
    """What the general stages make of an unfragmented frame: a wire message, or None."""
    ledger = Ledger()
    datagram = dissect(data, ledger)
    if datagram is None or datagram.fragment is not None:
        return None, ledger
    unit = split_transport(datagram, ports, ledger, verify_checksums=verify)
    if not isinstance(unit, UDPDatagram):
        return None, ledger
    return udp_message(unit), ledger


def _assert_agrees(data: Frame, ports: frozenset[int] = DNS_PORTS, verify: bool = True) -> object:
    """Run both paths on ``data``; the fast one must decline untouched or agree exactly."""
    fast_ledger = Ledger()
    found = fast_udp_message(data, ports, fast_ledger, verify)
    if found is False:
        assert _ledger_state(fast_ledger) == (0, {}, {})
        return found
    expected, general_ledger = _general(data, ports, verify)
    if found is True:
        assert expected is None
    else:
        assert isinstance(found, WireMessage) and found == expected
    assert _ledger_state(fast_ledger) == _ledger_state(general_ledger)
    return found


@pytest.mark.parametrize("make", [udp4, udp6])
@pytest.mark.parametrize("linktype", [LinkType.ETHERNET, LinkType.LINUX_SLL, LinkType.LINUX_SLL2])
def test_plain_udp_is_decoded_as_the_general_path_does(make: object, linktype: int) -> None:
    packet = make(b"odd-length-payload!", sport=33333, dport=53)  # type: ignore[operator]
    ethertype = 0x0800 if make is udp4 else 0x86DD
    found = _assert_agrees(frame(_linked(bytes(packet), linktype, ethertype), linktype))
    assert isinstance(found, WireMessage)
    src, dst = (V4_SRC, V4_DST) if make is udp4 else (V6_SRC, V6_DST)
    assert (found.src, found.dst, found.sport, found.dport) == (src, dst, 33333, 53)
    assert found.wire == b"odd-length-payload!"
    assert (found.frames, found.owned_frames) == ((1,), 1)


@pytest.mark.parametrize("make", [udp4, udp6])
@pytest.mark.parametrize("payload", [b"even-payload", b"odd-payload"])
def test_bad_checksum_is_counted_and_the_message_kept(make: object, payload: bytes) -> None:
    raw = bytearray(bytes(make(payload)))  # type: ignore[operator]
    raw[-1] ^= 0x01
    fast_ledger = Ledger()
    found = fast_udp_message(
        frame(ether(bytes(raw), 0x0800 if make is udp4 else 0x86DD)), DNS_PORTS, fast_ledger, True
    )
    assert isinstance(found, WireMessage)
    assert fast_ledger.observed == {"udp_bad_checksum": 1}
    # ...and the same frame unverified counts nothing.
    quiet = Ledger()
    fast_udp_message(frame(ether(bytes(raw))), DNS_PORTS, quiet, False)
    assert quiet.observed == {}


def test_zero_checksum_means_none_over_ipv4_and_bad_over_ipv6() -> None:
    v4 = IP(src=V4_SRC, dst=V4_DST) / UDP(sport=53, dport=40000, chksum=0) / b"payload"
    v6 = IPv6(src=V6_SRC, dst=V6_DST) / UDP(sport=53, dport=40000, chksum=0) / b"payload"
    ledger4, ledger6 = Ledger(), Ledger()
    assert isinstance(
        fast_udp_message(frame(ether(bytes(v4))), DNS_PORTS, ledger4, True), WireMessage
    )
    assert isinstance(
        fast_udp_message(frame(ether(bytes(v6), 0x86DD)), DNS_PORTS, ledger6, True), WireMessage
    )
    assert ledger4.observed == {} and ledger6.observed == {"udp_bad_checksum": 1}


def test_other_ports_are_settled_here() -> None:
    ledger = Ledger()
    found = fast_udp_message(
        frame(ether(bytes(udp4(sport=123, dport=123)))), DNS_PORTS, ledger, True
    )
    assert found is True and ledger.settled == {Reason.NOT_DNS_PORT: 1}


@pytest.mark.parametrize(
    "data",
    [
        ether(bytes(udp4(frag=0, flags="MF")[IP])),  # a first fragment
        ether(bytes(IP(src=V4_SRC, dst=V4_DST, options=b"\x01\x01\x01\x01") / UDP() / b"x")),
        ether(bytes(IP(src=V4_SRC, dst=V4_DST) / TCP(sport=53, dport=4000) / b"x")),
        ether(bytes(IPv6(src=V6_SRC, dst=V6_DST) / IPv6ExtHdrDestOpt() / UDP() / b"x"), 0x86DD),
        ether(bytes(udp4(b""))),  # empty UDP: the general path settles it
        ether(b"\x00" * 30, 0x0806),  # ARP
        ether(bytes(udp4()))[:40],  # cut short
    ],
    ids=["fragment", "ip-options", "tcp", "ipv6-ext", "empty-udp", "arp", "short"],
)
def test_anything_unusual_is_left_to_the_general_stages(data: bytes) -> None:
    ledger = Ledger()
    assert fast_udp_message(frame(data), DNS_PORTS, ledger, True) is False
    assert _ledger_state(ledger) == (0, {}, {})


@pytest.mark.parametrize("v6", [False, True])
@pytest.mark.parametrize("excess", [1, 2, 9])
def test_udp_length_beyond_the_ip_payload_is_left_to_the_general_stages(
    v6: bool, excess: int
) -> None:
    packet = udp6(b"payload") if v6 else udp4(b"payload")
    packet[UDP].len = 8 + len(b"payload") + excess
    data = ether(bytes(packet), 0x86DD if v6 else 0x0800) + b"\x00" * 16  # Ethernet padding
    assert _assert_agrees(frame(data)) is False
    _, general = _general(frame(data), DNS_PORTS, True)
    assert general.settled == {Reason.MALFORMED_TRANSPORT: 1}


def test_unsupported_and_raw_link_types_are_left_to_the_general_stages() -> None:
    raw = bytes(udp4())
    assert fast_udp_message(frame(raw, LinkType.RAW), DNS_PORTS, Ledger(), True) is False
    assert fast_udp_message(frame(raw, 147), DNS_PORTS, Ledger(), True) is False


@settings(max_examples=300, deadline=None)
@given(
    v6=st.booleans(),
    linktype=st.sampled_from([LinkType.ETHERNET, LinkType.LINUX_SLL, LinkType.LINUX_SLL2]),
    payload=st.binary(max_size=64),
    sport=st.sampled_from([53, 5353, 40000]),
    dport=st.sampled_from([53, 40000]),
    flips=st.lists(st.tuples(st.integers(0, 200), st.integers(1, 255)), max_size=3),
    cut=st.integers(0, 12),
    padding=st.binary(max_size=8),
    verify=st.booleans(),
)
def test_mutated_frames_agree_with_the_general_path(
    v6: bool,
    linktype: int,
    payload: bytes,
    sport: int,
    dport: int,
    flips: list[tuple[int, int]],
    cut: int,
    padding: bytes,
    verify: bool,
) -> None:
    packet = (
        udp6(payload, sport=sport, dport=dport) if v6 else udp4(payload, sport=sport, dport=dport)
    )
    data = bytearray(_linked(bytes(packet), linktype, 0x86DD if v6 else 0x0800) + padding)
    for position, mask in flips:
        if position < len(data):
            data[position] ^= mask
    data = data[: len(data) - cut] if cut else data
    _assert_agrees(frame(bytes(data), linktype), frozenset({53, 5353}), verify)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=120), linktype=st.sampled_from(list(LinkType)))
def test_random_bytes_never_raise(data: bytes, linktype: int) -> None:
    _assert_agrees(frame(data, linktype))


def test_decode_chain_gives_the_same_message_by_either_path() -> None:
    from auditor.pipeline import DecodeChain

    query = dns.message.make_query("www.example.", "A", id=7).to_wire()
    packet = bytes(udp4(query, sport=40000, dport=53))
    plain = ether(packet)
    tagged = plain[:12] + struct.pack("!HH", 0x8100, 100) + plain[12:]  # IEEE 802.1Q tag
    ledger = Ledger()
    chain = DecodeChain(ledger)
    first = chain.feed(frame(plain, number=1))  # starts the expiry clock: general path
    fast = chain.feed(frame(plain, number=2))
    general = chain.feed(frame(tagged, number=3))
    assert len(first) == len(fast) == len(general) == 1
    assert dataclasses.replace(fast[0].wire, frame=3, frames=(3,)) == general[0].wire
    assert fast[0].summary == general[0].summary == first[0].summary
    assert ledger.settled == {Reason.DNS_MESSAGE: 3} and ledger.frames_read == 3
