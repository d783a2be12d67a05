"""Link-layer and IP header decoding: every link type, extension headers, cut and bad headers."""

from __future__ import annotations

import logging
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import (
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
)
from scapy.layers.l2 import CookedLinux, Dot1Q, Ether

from auditor.anomaly import AnomalyCode
from auditor.capture.frame import LinkType
from auditor.decode.dissect import FragmentInfo, dissect
from auditor.ledger import Ledger, Reason
from tests.decode.packets import (
    V4_DST,
    V4_SRC,
    V6_DST,
    V6_SRC,
    dissect_one,
    ether,
    frame,
    udp4,
    udp6,
    vlan_tags,
)

MACS = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01"


def assert_udp4(datagram: object, packet: IP) -> None:
    """``datagram`` carries exactly the reference IPv4 packet's UDP bytes and header fields."""
    assert datagram is not None
    assert datagram.version == 4  # type: ignore[attr-defined]
    assert datagram.src == V4_SRC  # type: ignore[attr-defined]
    assert datagram.dst == V4_DST  # type: ignore[attr-defined]
    assert datagram.protocol == 17  # type: ignore[attr-defined]
    assert datagram.hop_limit == packet.ttl  # type: ignore[attr-defined]
    assert datagram.ip_id == packet.id  # type: ignore[attr-defined]
    assert datagram.payload == bytes(packet[UDP])  # type: ignore[attr-defined]
    assert datagram.fragment is None  # type: ignore[attr-defined]


def assert_udp6(datagram: object, packet: IPv6) -> None:
    assert datagram is not None
    assert datagram.version == 6  # type: ignore[attr-defined]
    assert datagram.src == V6_SRC  # type: ignore[attr-defined]
    assert datagram.dst == V6_DST  # type: ignore[attr-defined]
    assert datagram.protocol == 17  # type: ignore[attr-defined]
    assert datagram.hop_limit == packet.hlim  # type: ignore[attr-defined]
    assert datagram.ip_id is None  # type: ignore[attr-defined]
    assert datagram.payload == bytes(packet[UDP])  # type: ignore[attr-defined]


# --- link types ---------------------------------------------------------------------------------


def test_ethernet_ipv4_drops_padding_and_keeps_header_fields() -> None:
    packet = udp4(b"x")
    padded = bytes(Ether() / packet) + b"\x00" * 12  # short frame padded to the 60-byte minimum
    datagram, ledger = dissect_one(padded)
    assert_udp4(datagram, packet)
    assert datagram is not None
    assert (datagram.capture, datagram.frame, datagram.frames) == ("test.pcap", 1, (1,))
    assert datagram.owned_frames == 1
    assert ledger.pending == 1


def test_ethernet_ipv6() -> None:
    packet = udp6()
    datagram, _ = dissect_one(bytes(Ether() / packet))
    assert_udp6(datagram, packet)


def test_single_vlan_tag() -> None:
    packet = udp4()
    datagram, _ = dissect_one(bytes(Ether() / Dot1Q(vlan=7) / packet))
    assert_udp4(datagram, packet)


@pytest.mark.parametrize("outer", [0x88A8, 0x9100, 0x8100])
def test_stacked_vlan_tags(outer: int) -> None:
    packet = udp6()
    data = MACS + struct.pack("!H", outer) + vlan_tags(0x8100, 0x86DD) + bytes(packet)
    datagram, _ = dissect_one(data)
    assert_udp6(datagram, packet)


def test_three_stacked_tags() -> None:
    packet = udp4()
    data = MACS + struct.pack("!H", 0x88A8) + vlan_tags(0x88A8, 0x8100, 0x0800) + bytes(packet)
    assert_udp4(dissect_one(data)[0], packet)


def test_linux_cooked_v1() -> None:
    packet = udp4()
    data = bytes(CookedLinux(pkttype=0, lladdrtype=1, lladdrlen=6, proto=0x0800) / packet)
    assert len(data) == 16 + len(packet)
    assert_udp4(dissect_one(data, LinkType.LINUX_SLL)[0], packet)


def test_linux_cooked_v2() -> None:
    packet = udp6()
    header = struct.pack("!HHIHBB8s", 0x86DD, 0, 3, 1, 0, 6, b"\x02" * 6 + b"\x00\x00")
    assert len(header) == 20
    assert_udp6(dissect_one(header + bytes(packet), LinkType.LINUX_SLL2)[0], packet)


@pytest.mark.parametrize("linktype", [LinkType.RAW, LinkType.RAW_BSD12, LinkType.RAW_BSD14])
def test_raw_links_take_the_version_nibble(linktype: LinkType) -> None:
    v4, v6 = udp4(), udp6()
    assert_udp4(dissect_one(bytes(v4), linktype)[0], v4)
    assert_udp6(dissect_one(bytes(v6), linktype)[0], v6)


def test_linktype_ipv4_and_ipv6() -> None:
    v4, v6 = udp4(), udp6()
    assert_udp4(dissect_one(bytes(v4), LinkType.IPV4)[0], v4)
    assert_udp6(dissect_one(bytes(v6), LinkType.IPV6)[0], v6)
    datagram, ledger = dissect_one(bytes(v6), LinkType.IPV4)
    assert datagram is None
    assert ledger.settled == {Reason.MALFORMED_IP: 1}


@pytest.mark.parametrize("order", ["<I", ">I"])
@pytest.mark.parametrize(("family", "version"), [(2, 4), (24, 6), (28, 6), (30, 6)])
def test_bsd_null_in_either_byte_order(order: str, family: int, version: int) -> None:
    packet = udp4() if version == 4 else udp6()
    datagram, _ = dissect_one(struct.pack(order, family) + bytes(packet), LinkType.NULL)
    assert datagram is not None
    assert datagram.version == version
    assert datagram.payload == bytes(packet[UDP])


def test_bsd_loop_is_network_order() -> None:
    packet = udp6()
    datagram, _ = dissect_one(struct.pack(">I", 24) + bytes(packet), LinkType.LOOP)
    assert_udp6(datagram, packet)
    datagram, ledger = dissect_one(struct.pack("<I", 24) + bytes(packet), LinkType.LOOP)
    assert datagram is None
    assert ledger.settled == {Reason.NOT_IP: 1}


@pytest.mark.parametrize(
    ("data", "linktype"),
    [
        (ether(b"\x00\x01\x08\x00" + b"\x00" * 24, ethertype=0x0806), LinkType.ETHERNET),  # ARP
        (MACS + b"\x00\x2e" + b"\xaa" * 46, LinkType.ETHERNET),  # 802.3 length field + LLC
        (MACS + struct.pack("!H", 0x8100) + vlan_tags(0x88CC) + b"\x00" * 40, LinkType.ETHERNET),
        (struct.pack("!HHH8sH", 0, 1, 6, b"", 0x0806) + b"\x00" * 28, LinkType.LINUX_SLL),
        (struct.pack("<I", 7) + bytes(udp4()), LinkType.NULL),
    ],
)
def test_non_ip_payloads_settle_not_ip(data: bytes, linktype: LinkType) -> None:
    datagram, ledger = dissect_one(data, linktype)
    assert datagram is None
    assert ledger.settled == {Reason.NOT_IP: 1}


@pytest.mark.parametrize(
    ("data", "linktype"),
    [
        (MACS, LinkType.ETHERNET),
        (MACS + b"\x81\x00\x00", LinkType.ETHERNET),
        (b"\x00" * 15, LinkType.LINUX_SLL),
        (b"\x86\xdd" + b"\x00" * 17, LinkType.LINUX_SLL2),
        (b"\x02\x00", LinkType.NULL),
        (b"", LinkType.LOOP),
    ],
)
def test_short_link_headers(data: bytes, linktype: LinkType) -> None:
    datagram, ledger = dissect_one(data, linktype)
    assert datagram is None
    assert ledger.settled == {Reason.MALFORMED_LINK: 1}
    _, ledger = dissect_one(data, linktype, wirelen=len(data) + 100)
    assert ledger.settled == {Reason.TRUNCATED_SNAPLEN: 1}


def test_unsupported_linktype_warns_and_notes_once_per_interface(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ledger = Ledger()
    frames = [
        frame(
            b"\x01\x02",
            147,
            number=n,
            capture="odd.pcapng",
            interface=n % 2,
            interface_name=f"usb{n % 2}",
        )
        for n in range(1, 11)
    ]
    frames.append(frame(bytes(Ether() / udp4()), number=11, capture="odd.pcapng", interface=2))
    with caplog.at_level(logging.WARNING, logger="auditor.decode.dissect"):
        results = [dissect(f, ledger) for f in frames]
    ledger.read(len(frames))
    assert results[:10] == [None] * 10
    assert results[10] is not None  # the rest of the file still reads
    assert ledger.settled == {Reason.UNSUPPORTED_LINKTYPE: 10}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert all("odd.pcapng" in w and "147" in w for w in warnings)
    assert any("interface 0 (usb0)" in w for w in warnings)
    assert any("interface 1 (usb1)" in w for w in warnings)
    anomalies = ledger.take_anomalies()
    assert [a.code for a in anomalies] == [AnomalyCode.UNSUPPORTED_LINKTYPE] * 2
    assert sorted(a.params["interface"] for a in anomalies) == [0, 1]  # type: ignore[type-var]
    assert {a.params["linktype"] for a in anomalies} == {147}

    # A new run (a new ledger) over the same capture is told again.
    fresh = Ledger()
    dissect(frames[0], fresh)
    assert [a.code for a in fresh.take_anomalies()] == [AnomalyCode.UNSUPPORTED_LINKTYPE]


# --- IPv4 -----------------------------------------------------------------------------------


def test_ipv4_options_are_skipped() -> None:
    packet = IP(src=V4_SRC, dst=V4_DST, options=b"\x94\x04\x00\x00") / UDP(sport=53) / b"hi"
    raw = bytes(packet)
    assert raw[0] & 0x0F == 6
    assert_udp4(dissect_one(raw, LinkType.RAW)[0], IP(raw))


def test_ipv4_fragment_info() -> None:
    first = udp4(b"a" * 64, id=999, flags="MF")
    datagram, _ = dissect_one(bytes(first), LinkType.RAW)
    assert datagram is not None
    assert datagram.fragment == FragmentInfo(999, 0, True)
    later = IP(src=V4_SRC, dst=V4_DST, id=999, frag=5, proto=17) / (b"b" * 10)
    datagram, _ = dissect_one(bytes(later), LinkType.RAW)
    assert datagram is not None
    assert datagram.fragment == FragmentInfo(999, 40, False)
    assert datagram.payload == b"b" * 10


def test_ipv4_unaligned_middle_fragment_is_malformed() -> None:
    packet = IP(src=V4_SRC, dst=V4_DST, id=5, flags="MF", proto=17) / (b"c" * 13)
    datagram, ledger = dissect_one(bytes(packet), LinkType.RAW)
    assert datagram is None
    assert ledger.settled == {Reason.MALFORMED_IP: 1}


def _patched(raw: bytes, offset: int, value: bytes) -> bytes:
    return raw[:offset] + value + raw[offset + len(value) :]


@pytest.mark.parametrize(
    "mutate",
    [
        lambda raw: _patched(raw, 0, b"\x55"),  # version 5
        lambda raw: _patched(raw, 0, b"\x44"),  # IHL 4
        lambda raw: _patched(raw, 2, b"\x00\x13"),  # total length 19 < IHL
        lambda raw: raw[:19],  # header cut short, no snaplen explanation
        lambda raw: _patched(raw, 2, struct.pack("!H", len(raw) + 1)),  # claims one byte more
    ],
)
def test_malformed_ipv4(mutate: object) -> None:
    raw = mutate(bytes(udp4()))  # type: ignore[operator]
    datagram, ledger = dissect_one(ether(raw))
    assert datagram is None
    assert ledger.settled == {Reason.MALFORMED_IP: 1}


@pytest.mark.parametrize("keep", [10, 30, 40])
def test_snaplen_cut_ipv4_is_truncated(keep: int) -> None:
    data = ether(bytes(udp4(b"z" * 100)))
    datagram, ledger = dissect_one(data[: 14 + keep], wirelen=len(data))
    assert datagram is None
    assert ledger.settled == {Reason.TRUNCATED_SNAPLEN: 1}


# --- IPv6 -----------------------------------------------------------------------------------


def ah_header(next_header: int, icv: bytes = b"\x11" * 12) -> bytes:
    """An RFC 4302 AH header: Payload Len in 4-octet units minus 2."""
    return struct.pack("!BBHII", next_header, (12 + len(icv)) // 4 - 2, 0, 0x1234, 1) + icv


def test_ipv6_extension_header_chain() -> None:
    upper = UDP(sport=53, dport=5353) / b"answer"
    chain = (
        IPv6ExtHdrHopByHop()
        / IPv6ExtHdrRouting(addresses=["2001:db8::99"])
        / IPv6ExtHdrDestOpt(nh=51)
    )
    udp_bytes = bytes(IPv6(src=V6_SRC, dst=V6_DST) / upper)[40:]
    ext = bytes(IPv6(src=V6_SRC, dst=V6_DST) / chain)[40:] + ah_header(17)
    header = bytes(IPv6(src=V6_SRC, dst=V6_DST, nh=0, plen=len(ext) + len(udp_bytes)))
    datagram, _ = dissect_one(ether(header + ext + udp_bytes, 0x86DD))
    assert datagram is not None
    assert datagram.protocol == 17
    assert datagram.payload == udp_bytes


def test_ipv6_extension_header_running_past_the_payload_is_malformed() -> None:
    raw = bytes(IPv6(src=V6_SRC, dst=V6_DST) / IPv6ExtHdrDestOpt() / UDP() / b"q")
    raw = _patched(raw, 41, b"\x09")  # Hdr Ext Len 9: 80 bytes, more than there are
    datagram, ledger = dissect_one(raw, LinkType.RAW)
    assert datagram is None
    assert ledger.settled == {Reason.MALFORMED_IP: 1}


def test_ipv6_first_and_later_fragments() -> None:
    inner = bytes(UDP(sport=53, dport=4000) / (b"p" * 30))
    first = IPv6(src=V6_SRC, dst=V6_DST) / IPv6ExtHdrFragment(id=0xDEADBEEF, m=1, nh=17)
    datagram, _ = dissect_one(bytes(first / inner[:16]), LinkType.RAW)
    assert datagram is not None
    assert datagram.fragment == FragmentInfo(0xDEADBEEF, 0, True)
    assert (datagram.protocol, datagram.ip_id, datagram.payload) == (17, 0xDEADBEEF, inner[:16])

    later = IPv6(src=V6_SRC, dst=V6_DST) / IPv6ExtHdrFragment(id=0xDEADBEEF, offset=2, nh=17)
    datagram, _ = dissect_one(bytes(later / inner[16:]), LinkType.RAW)
    assert datagram is not None
    assert datagram.fragment == FragmentInfo(0xDEADBEEF, 16, False)
    assert datagram.payload == inner[16:]  # raw data, never parsed as a header


def test_ipv6_atomic_fragment_is_a_whole_packet() -> None:
    packet = IPv6(src=V6_SRC, dst=V6_DST) / IPv6ExtHdrFragment(id=77) / UDP(sport=53) / b"x"
    datagram, _ = dissect_one(bytes(packet), LinkType.RAW)
    assert datagram is not None
    assert datagram.fragment is None
    assert (datagram.protocol, datagram.ip_id) == (17, 77)
    assert datagram.payload == bytes(packet[UDP])


@pytest.mark.parametrize(
    "mutate",
    [
        lambda raw: _patched(raw, 0, b"\x40"),  # version 4 in an IPv6 header
        lambda raw: raw[:39],
        lambda raw: _patched(raw, 4, struct.pack("!H", len(raw) - 39)),  # claims one byte more
    ],
)
def test_malformed_ipv6(mutate: object) -> None:
    raw = mutate(bytes(udp6()))  # type: ignore[operator]
    datagram, ledger = dissect_one(raw, LinkType.IPV6)
    assert datagram is None
    assert ledger.settled == {Reason.MALFORMED_IP: 1}


def test_snaplen_cut_ipv6_is_truncated() -> None:
    raw = bytes(udp6(b"k" * 200))
    datagram, ledger = dissect_one(raw[:96], LinkType.RAW, wirelen=len(raw))
    assert datagram is None
    assert ledger.settled == {Reason.TRUNCATED_SNAPLEN: 1}


def test_tcp_protocol_is_passed_on() -> None:
    packet = IP(src=V4_SRC, dst=V4_DST) / TCP(sport=53, dport=1234, flags="SA")
    datagram, _ = dissect_one(bytes(packet), LinkType.RAW)
    assert datagram is not None
    assert datagram.protocol == 6
    assert datagram.payload == bytes(packet[TCP])


# --- stranger-controlled bytes ---------------------------------------------------------------

LINKTYPES = st.sampled_from([*(int(t) for t in LinkType), 147, 9999])


@settings(max_examples=600, deadline=None)
@given(data=st.binary(max_size=120), linktype=LINKTYPES, extra=st.integers(0, 2))
def test_random_bytes_never_raise_and_settle_at_most_once(
    data: bytes, linktype: int, extra: int
) -> None:
    ledger = Ledger()
    ledger.read()
    datagram = dissect(frame(data, linktype, wirelen=len(data) + extra), ledger)
    settled = sum(ledger.settled.values())
    assert settled == (0 if datagram is not None else 1)


@settings(max_examples=300, deadline=None)
@given(
    prefix=st.sampled_from(
        [ether(b""), ether(b"", 0x86DD), b"\x02\x00\x00\x00", b"\x00\x00\x00\x18", b""]
    ),
    header=st.sampled_from([bytes(udp4(b"abc")), bytes(udp6(b"abc"))]),
    noise=st.binary(max_size=60),
    cut=st.integers(0, 80),
    linktype=st.sampled_from([LinkType.ETHERNET, LinkType.NULL, LinkType.RAW]),
)
def test_near_valid_packets_never_raise(
    prefix: bytes, header: bytes, noise: bytes, cut: int, linktype: int
) -> None:
    data = (prefix + header[:cut] + noise)[: len(prefix) + 80]
    ledger = Ledger()
    ledger.read()
    datagram = dissect(frame(data, linktype), ledger)
    assert ledger.pending == (1 if datagram is not None else 0)


# --- FDDI (LINKTYPE 10), as in zeek/dns-inverse-query.pcap ---------------------------------------

_FDDI_MAC = b"\x50" + bytes.fromhex("aa000400 83a7".replace(" ", "")) + bytes(6)


def test_fddi_llc_snap_frame_carries_ipv4() -> None:
    packet = bytes(udp4())
    data = _FDDI_MAC + b"\xaa\xaa\x03\x00\x00\x00\x08\x00" + packet
    datagram, ledger = dissect_one(data, LinkType.FDDI)
    assert datagram is not None and datagram.version == 4
    assert datagram.src == V4_SRC


def test_fddi_frame_without_snap_is_not_ip() -> None:
    # Twin: station management or any non-SNAP LLC frame is counted, never parsed as IP.
    data = _FDDI_MAC + b"\x42\x42\x03" + bytes(udp4())
    datagram, ledger = dissect_one(data, LinkType.FDDI)
    assert datagram is None
    assert ledger.settled[Reason.NOT_IP] == 1


def test_clearing_the_address_memos_empties_every_one_and_decoding_refills_them() -> None:
    import socket

    from auditor.decode import fastpath, transport
    from auditor.decode.dissect import AddressMemos

    found = AddressMemos()
    found.text(bytes([192, 0, 2, 1]))
    fastpath._ipv4_text(found, 0xC0000201)
    fastpath._ipv6_address(found, bytes(15) + b"\x01")
    transport._address_value(found, socket.AF_INET, "192.0.2.1")
    memos = (found.texts, found.ipv4_texts, found.ipv6_addresses, found.values)
    assert all(memos)
    found.clear()
    assert not any(memos)
    assert found.text(bytes([192, 0, 2, 1])) == "192.0.2.1"
    assert fastpath._ipv4_text(found, 0xC0000201) == "192.0.2.1"
    assert found.texts and found.ipv4_texts
