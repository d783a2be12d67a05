"""PPPoE session frames (RFC 2516), bare or behind 802.1Q / QinQ tags, carry IP like any other
Ethernet frame; discovery frames and other PPP protocols are counted by name (issue 11, 9)."""

from __future__ import annotations

import dataclasses
import json
import struct
from pathlib import Path

import dns.message
import pytest

from auditor.decode.dissect import EtherType, PPPProtocol
from auditor.ledger import Ledger, Reason
from auditor.pipeline import AuditOptions, DecodeChain, run_audit
from tests.decode.packets import dissect_one, ether, frame, udp4, udp6
from tests.decode.test_dissect import MACS, assert_udp4, assert_udp6
from tests.decode.test_fastpath import _assert_agrees
from tests.realcaps import REALCAPS, absent_outside_ci

NDPI_DNS = REALCAPS / "nDPI" / "dns.pcap"
"""nDPI's tests/cfgs/default/pcap/dns.pcap: three untagged frames, then a query and its
response in Ethernet / 802.1Q 421 / 802.1Q 785 / PPPoE session / IPv4 / UDP."""

LCP = 0xC021
"""PPP Link Control Protocol (RFC 1661), which is not IP."""

TAGS = {
    "untagged": b"",
    "802.1Q": struct.pack("!HH", EtherType.VLAN, 421),
    "QinQ": struct.pack("!HHHH", EtherType.QINQ, 421, EtherType.VLAN, 785),
}


def pppoe(ip_bytes: bytes, tags: bytes = b"", protocol: int = PPPProtocol.IPV4,
          ethertype: int = EtherType.PPPOE_SESSION) -> bytes:
    """Ethernet, optional tags, a PPPoE session header (version 1, type 1, code 0, session
    0x1234, length of the PPP frame) and PPP's protocol field in front of ``ip_bytes``."""
    ppp = struct.pack("!H", protocol) + ip_bytes
    return MACS + tags + struct.pack("!HBBHH", ethertype, 0x11, 0, 0x1234, len(ppp)) + ppp


@pytest.mark.parametrize("tags", TAGS.values(), ids=TAGS.keys())
def test_pppoe_session_frames_carry_ipv4_and_ipv6(tags: bytes) -> None:
    packet4 = udp4()
    datagram, ledger = dissect_one(pppoe(bytes(packet4), tags))
    assert_udp4(datagram, packet4)
    packet6 = udp6()
    datagram, _ = dissect_one(pppoe(bytes(packet6), tags, PPPProtocol.IPV6))
    assert_udp6(datagram, packet6)
    assert not ledger.settled


@pytest.mark.parametrize("tags", TAGS.values(), ids=TAGS.keys())
def test_other_ppp_protocols_and_discovery_are_counted_by_name(tags: bytes) -> None:
    """Negative twin: the same frames with LCP instead of IPv4, or in the discovery stage,
    are not IP."""
    for data, name in ((pppoe(bytes(udp4()), tags, LCP), "ppp_not_ip"),
                       (pppoe(b"\x01\x01\x00\x00", tags, ethertype=EtherType.PPPOE_DISCOVERY),
                        "pppoe_discovery")):
        datagram, ledger = dissect_one(data)
        assert datagram is None
        assert ledger.settled == {Reason.NOT_IP: 1}
        assert ledger.observed == {name: 1}


def test_a_cut_pppoe_header_is_a_malformed_or_cut_link_header() -> None:
    data = pppoe(bytes(udp4()))[:19]  # the PPP protocol field is cut in half
    _, ledger = dissect_one(data)
    assert ledger.settled == {Reason.MALFORMED_LINK: 1}
    _, ledger = dissect_one(data, wirelen=100)
    assert ledger.settled == {Reason.TRUNCATED_SNAPLEN: 1}


@pytest.mark.parametrize("tags", TAGS.values(), ids=TAGS.keys())
def test_fast_and_general_paths_give_the_same_message(tags: bytes) -> None:
    query = dns.message.make_query("www.example.", "A", id=7).to_wire()
    packet = bytes(udp4(query, sport=40000, dport=53))
    wrapped = pppoe(packet, tags)
    assert _assert_agrees(frame(wrapped)) is False  # left, untouched, to the general path
    ledger = Ledger()
    chain = DecodeChain(ledger)
    plain = chain.feed(frame(ether(packet), number=1))
    chain.feed(frame(ether(packet), number=2))  # the fast path, once the clock is running
    general = chain.feed(frame(wrapped, number=3))
    assert len(plain) == len(general) == 1
    assert dataclasses.replace(plain[0].wire, frame=3, frames=(3,)) == general[0].wire
    assert ledger.settled == {Reason.DNS_MESSAGE: 3}


@pytest.mark.skipif(absent_outside_ci(NDPI_DNS), reason=f"real captures not found at {REALCAPS}")
def test_ndpi_vlan_pppoe_capture_gives_the_responses_tshark_finds(tmp_path: Path) -> None:
    """tshark -n -r nDPI/dns.pcap -Y 'dns.flags.response == 1': frames 1, 3 and 5, the last
    from 82.178.158.181 through QinQ and PPPoE (it used to be settled as not_ip)."""
    outcome = run_audit(AuditOptions(captures=(str(NDPI_DNS),), out_dir=tmp_path,
                                     report_formats=frozenset()))
    records = [json.loads(line)
               for line in (tmp_path / "responses.jsonl").read_text().splitlines()]
    assert [(r["frame"], r["src"], r["qname"]) for r in records] == [
        (1, "192.168.170.20", "www.l.google.com."),
        (3, "192.168.170.20", "www.example.com."),
        (5, "82.178.158.181", "e7.whatsapp.net."),
    ]
    assert outcome.stats["frames"]["not_ip"] == 0
    assert outcome.stats["frames"]["dns_message"] == outcome.stats["frames_read"] == 5
