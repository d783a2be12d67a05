"""UDP/TCP decoding, the DNS port filter, checksums, and the whole decode chain's ledger."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6

from auditor.capture.frame import LinkType
from auditor.decode.defrag import Defragmenter
from auditor.decode.dissect import FragmentInfo, IPDatagram, dissect
from auditor.decode.transport import (
    DNS_PORTS,
    TCPSegment,
    Transport,
    UDPDatagram,
    split_transport,
    udp_message,
)
from auditor.ledger import Ledger, Reason
from tests.decode.packets import TS, V4_DST, V4_SRC, V6_DST, V6_SRC, frame, udp4, udp6


def datagram_of(packet: IP | IPv6, **changes: object) -> IPDatagram:
    datagram = dissect(frame(bytes(packet), LinkType.RAW), Ledger())
    assert datagram is not None
    return dataclasses.replace(datagram, **changes)  # type: ignore[arg-type]


def split(
    packet: IP | IPv6, ports: frozenset[int] = DNS_PORTS, verify: bool = True, **changes: object
) -> tuple[UDPDatagram | TCPSegment | None, Ledger]:
    """split_transport with checksum verification on, as most tests here want."""
    ledger = Ledger()
    datagram = datagram_of(packet, **changes)
    return split_transport(datagram, ports, ledger, verify_checksums=verify), ledger


def corrupt_last_byte(raw: bytes) -> bytes:
    return raw[:-1] + bytes([raw[-1] ^ 0x5A])


# --- UDP ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [udp4, udp6])
def test_udp_with_good_checksum(make: object) -> None:
    packet = make(b"odd-length-payload!", sport=33333, dport=53)  # type: ignore[operator]
    result, ledger = split(packet)
    assert isinstance(result, UDPDatagram)
    assert (result.sport, result.dport, result.payload) == (33333, 53, b"odd-length-payload!")
    assert result.checksum_ok is True
    assert ledger.observed == {} and ledger.settled == {}


@pytest.mark.parametrize("make", [udp4, udp6])
def test_bad_udp_checksum_is_kept_and_counted(make: object) -> None:
    raw = corrupt_last_byte(bytes(make(b"answer")))  # type: ignore[operator]
    ledger = Ledger()
    datagram = dissect(frame(raw, LinkType.RAW), ledger)
    assert datagram is not None
    result = split_transport(datagram, DNS_PORTS, ledger, verify_checksums=True)
    assert isinstance(result, UDPDatagram)
    assert result.checksum_ok is False
    assert result.payload == b"answes"[:5] + bytes([ord("r") ^ 0x5A])
    assert ledger.observed == {"udp_bad_checksum": 1}


def test_ipv4_zero_udp_checksum_means_absent() -> None:
    packet = IP(src=V4_SRC, dst=V4_DST) / UDP(sport=53, dport=1, chksum=0) / b"x"
    result, ledger = split(packet)
    assert isinstance(result, UDPDatagram) and result.checksum_ok is None
    assert ledger.observed == {}


def test_ipv6_zero_udp_checksum_is_bad() -> None:
    packet = IPv6(src=V6_SRC, dst=V6_DST) / UDP(sport=53, dport=1, chksum=0) / b"x"
    result, ledger = split(packet)
    assert isinstance(result, UDPDatagram) and result.checksum_ok is False
    assert ledger.observed == {"udp_bad_checksum": 1}


def test_checksums_are_opt_in() -> None:
    datagram = datagram_of(IP(corrupt_last_byte(bytes(udp4()))))
    ledger = Ledger()
    result = split_transport(datagram, DNS_PORTS, ledger)
    assert isinstance(result, UDPDatagram) and result.checksum_ok is None
    tcp = IP(src=V4_SRC, dst=V4_DST) / TCP(sport=53, chksum=1)
    segment = split_transport(datagram_of(tcp), DNS_PORTS, ledger)
    assert isinstance(segment, TCPSegment) and segment.checksum_ok is None
    assert ledger.observed == {}


@settings(max_examples=60, deadline=None)
@given(
    payload=st.binary(min_size=1, max_size=300),
    version=st.sampled_from([4, 6]),
    flip=st.integers(0, 299),
)
def test_checksum_agrees_with_scapy(payload: bytes, version: int, flip: int) -> None:
    raw = bytes(udp4(payload) if version == 4 else udp6(payload))
    packet = IP(raw) if version == 4 else IPv6(raw)
    absent = packet[UDP].chksum == 0 and version == 4  # scapy sends 0xFFFF for a zero sum
    result, _ = split(packet)
    assert isinstance(result, UDPDatagram)
    assert result.checksum_ok is (None if absent else True)
    index = flip % len(payload)
    changed = payload[:index] + bytes([payload[index] ^ 0x01]) + payload[index + 1 :]
    tampered = raw[: len(raw) - len(payload)] + changed
    result, ledger = split(IP(tampered) if version == 4 else IPv6(tampered))
    assert isinstance(result, UDPDatagram)
    assert result.checksum_ok is (None if absent else False)
    assert ledger.observed == ({} if absent else {"udp_bad_checksum": 1})


def test_udp_payload_is_cut_to_the_udp_length() -> None:
    packet = udp4(b"exact")
    datagram = datagram_of(packet, payload=bytes(packet[UDP]) + b"trailer")
    ledger = Ledger()
    result = split_transport(datagram, DNS_PORTS, ledger, verify_checksums=True)
    assert isinstance(result, UDPDatagram)
    assert result.payload == b"exact" and result.checksum_ok is True


@pytest.mark.parametrize(
    "udp_bytes",
    [
        b"\x00\x35\x00\x35\x00",  # header cut short
        b"\x00\x35\x00\x35\x00\x07\x00\x00",  # Length 7 < 8
        b"\x00\x35\x00\x35\x00\x20\x00\x00abc",  # Length 32 > the bytes there are
    ],
)
def test_malformed_udp(udp_bytes: bytes) -> None:
    result, ledger = split(udp4(), payload=udp_bytes, owned_frames=2)
    assert result is None
    assert ledger.settled == {Reason.MALFORMED_TRANSPORT: 2}


def test_empty_udp_on_a_dns_port() -> None:
    result, ledger = split(udp4(b""))
    assert result is None
    assert ledger.settled == {Reason.EMPTY_UDP: 1}


def test_port_filter_settles_every_owned_frame() -> None:
    result, ledger = split(udp4(sport=1000, dport=2000), owned_frames=3)
    assert result is None
    assert ledger.settled == {Reason.NOT_DNS_PORT: 3}
    result, _ = split(udp4(sport=1000, dport=5353), ports=frozenset({53, 5353}))
    assert isinstance(result, UDPDatagram)


def test_other_protocols_are_not_udp_tcp() -> None:
    result, ledger = split(IP(src=V4_SRC, dst=V4_DST) / ICMP(), owned_frames=2)
    assert result is None
    assert ledger.settled == {Reason.NOT_UDP_TCP: 2}


def test_fragments_must_be_reassembled_first() -> None:
    with pytest.raises(ValueError, match="defragmented"):
        split(udp4(), fragment=FragmentInfo(1, 0, True))


def test_udp_message() -> None:
    datagram = datagram_of(udp6(b"msg"), frames=(4, 9), frame=9, owned_frames=2, ts_ns=TS + 5)
    result = split_transport(datagram, DNS_PORTS, Ledger())
    assert isinstance(result, UDPDatagram)
    message = udp_message(result)
    assert message.transport is Transport.UDP
    assert (message.src, message.sport, message.dst, message.dport) == (V6_SRC, 53, V6_DST, 33333)
    assert (message.wire, message.capture, message.frame) == (b"msg", "test.pcap", 9)
    assert (message.frames, message.ts_ns, message.hop_limit, message.owned_frames) == (
        (4, 9),
        TS + 5,
        61,
        2,
    )


# --- TCP ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("base", [IP(src=V4_SRC, dst=V4_DST), IPv6(src=V6_SRC, dst=V6_DST)])
def test_tcp_segment_with_options(base: IP | IPv6) -> None:
    tcp = TCP(sport=53, dport=40000, seq=1000, ack=2000, flags="PA", options=[("MSS", 1460)])
    packet = base / tcp / b"\x00\x03abc"
    result, ledger = split(packet)
    assert isinstance(result, TCPSegment)
    assert (result.sport, result.dport, result.seq, result.ack) == (53, 40000, 1000, 2000)
    assert result.flags == 0x18
    assert result.payload == b"\x00\x03abc"
    assert result.checksum_ok is True
    result, ledger = split(base.__class__(corrupt_last_byte(bytes(packet))))
    assert isinstance(result, TCPSegment) and result.checksum_ok is False
    assert ledger.observed == {"tcp_bad_checksum": 1}


def test_tcp_control_segment_is_returned() -> None:
    result, ledger = split(IP(src=V4_SRC, dst=V4_DST) / TCP(sport=4000, dport=53, flags="S"))
    assert isinstance(result, TCPSegment)
    assert result.payload == b"" and result.flags == 0x02 and result.checksum_ok is True
    assert ledger.settled == {}


@pytest.mark.parametrize("offset_byte", [0x40, 0xF0])  # data offset 4 words, 15 words
def test_malformed_tcp_data_offset(offset_byte: int) -> None:
    raw = bytearray(bytes(TCP(sport=53, dport=1)))
    raw[12] = offset_byte
    result, ledger = split(IP(src=V4_SRC, dst=V4_DST) / TCP(), payload=bytes(raw))
    assert result is None
    assert ledger.settled == {Reason.MALFORMED_TRANSPORT: 1}


def test_short_tcp_header() -> None:
    result, ledger = split(IP(src=V4_SRC, dst=V4_DST) / TCP(), payload=b"\x00\x35" * 5)
    assert result is None and ledger.settled == {Reason.MALFORMED_TRANSPORT: 1}


# --- stranger-controlled bytes, whole decode chain --------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    payload=st.binary(max_size=64),
    protocol=st.sampled_from([6, 17, 1]),
    owned=st.integers(1, 3),
    version=st.sampled_from([4, 6]),
)
def test_random_transport_bytes_settle_exactly_the_owned_frames(
    payload: bytes, protocol: int, owned: int, version: int
) -> None:
    base = udp4() if version == 4 else udp6()
    datagram = datagram_of(base, payload=payload, protocol=protocol, owned_frames=owned)
    ledger = Ledger()
    result = split_transport(datagram, frozenset(range(65536)), ledger)
    assert sum(ledger.settled.values()) == (0 if result is not None else owned)


def settle_downstream(result: UDPDatagram | TCPSegment, ledger: Ledger) -> None:
    """What the later stages do with a kept datagram: settle the frames it owns."""
    if isinstance(result, UDPDatagram):
        ledger.settle(Reason.DNS_MESSAGE, udp_message(result).owned_frames)
    else:
        ledger.settle(Reason.TCP_CONTROL, result.ip.owned_frames)


@settings(max_examples=250, deadline=None)
@given(
    frames=st.lists(
        st.tuples(
            st.sampled_from([*(int(t) for t in LinkType), 147]),
            st.one_of(
                st.binary(max_size=100),
                st.sampled_from(
                    [bytes(udp4()), bytes(udp6()), bytes(udp4(b"y" * 24, flags="MF", id=3))]
                ),
            ),
        ),
        max_size=12,
    ),
    verify=st.booleans(),
)
def test_decode_chain_settles_every_frame_exactly_once(
    frames: list[tuple[int, bytes]], verify: bool
) -> None:
    ledger = Ledger()
    defrag = Defragmenter(ledger)
    for number, (linktype, data) in enumerate(frames, start=1):
        ledger.read()
        datagram = dissect(frame(data, linktype, number=number), ledger)
        whole = defrag.feed(datagram) if datagram is not None else None
        result = (
            split_transport(whole, frozenset({53}), ledger, verify_checksums=verify)
            if whole is not None
            else None
        )
        if result is not None:
            settle_downstream(result, ledger)
        assert ledger.pending == defrag.held_frames
    defrag.flush()
    assert ledger.pending == 0
    assert ledger.frames_read == len(frames)
