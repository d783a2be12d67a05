"""Prove the lab behaves as designed (per-zone verdicts, UDP/TCP, captures) before judging us."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import dns.dnssec
import dns.message
import dns.name
import dns.rdatatype
import dns.rrset
import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.utils import rdpcap

from tests.lab import (
    Expectation,
    Lab,
    LoopbackAddresses,
    Mutation,
    QueryResult,
    TcpdumpCapture,
    Tool,
    Validity,
)
from tests.lab.addresses import loopback_addresses
from tests.lab.tools import find_program

pytestmark = pytest.mark.integration

Capture = Callable[[str], TcpdumpCapture]

# Reason Unbound must log for each bogus probe: bogus for the designed cause, not by accident.
BOGUS_REASONS = {
    "www.expired.test.": "signature expired",
    "www.future.test.": "signature before inception date",
    "www.badds.test.": "DS hash mismatches key",
    "www.stripped.test.": "no signatures",
    "www.altered.test.": "signature crypto failed",
    "www.unsigned.test.": "No DNSKEY record",
    "www.brokennsec.test.": "nameerror proof failed",
}


def dns_packets(path: Path) -> list[tuple[str, str, str]]:
    """(transport, src, dst) of every port-53 IPv4 packet in the pcap."""
    found = []
    for packet in rdpcap(str(path)):
        if IP not in packet:
            continue
        for layer, name in ((UDP, "udp"), (TCP, "tcp")):
            if layer in packet and 53 in (packet[layer].sport, packet[layer].dport):
                found.append((name, packet[IP].src, packet[IP].dst))
    return found


def assert_verdict(result: QueryResult, expectation: Expectation) -> None:
    """RFC 4035 3.2.3 / 5.5: AD only for secure data, SERVFAIL for bogus."""
    match expectation:
        case Expectation.SECURE:
            assert (result.rcode, result.ad) == ("NOERROR", True), result.output
            assert result.answer, result.output
        case Expectation.INSECURE:
            assert (result.rcode, result.ad) == ("NOERROR", False), result.output
            assert result.answer, result.output
        case Expectation.BOGUS:
            assert result.rcode == "SERVFAIL", result.output
            assert not result.answer, result.output


def test_resolver_verdicts_match_design(lab: Lab, capture: Capture) -> None:
    lab.flush_resolver()
    with capture("resolver-verdicts") as pcap:
        results = {probe: lab.query_resolver(probe, dnssec=True) for probe in lab.expectations()}
    for probe, expectation in lab.expectations().items():
        assert_verdict(results[probe], expectation)
    failures = lab.validation_failures()
    for probe, reason in BOGUS_REASONS.items():
        assert any(reason in logged for logged in failures.get(probe, [])), failures
    packets = dns_packets(pcap.path)
    resolver, leaf = lab.addresses.resolver, lab.addresses.servers.leaf
    assert ("udp", lab.addresses.client, resolver) in packets
    assert ("udp", resolver, lab.addresses.servers.root) in packets
    assert ("udp", resolver, leaf) in packets
    # big.test's signed DNSKEY RRset exceeds 1232 bytes: TC over UDP, then TCP upstream.
    assert ("tcp", resolver, leaf) in packets
    assert pcap.packets == len(rdpcap(str(pcap.path))) > 0


def test_bogus_data_is_served_when_checking_disabled(lab: Lab) -> None:
    for zone in lab.leaf_zones():
        if zone.spec.expectation is Expectation.BOGUS:
            result = lab.query_resolver(zone.spec.probe, cd=True)
            deleted = zone.spec.mutation is Mutation.DELETE_NAME
            rcode = "NXDOMAIN" if deleted else "NOERROR"
            assert (result.rcode, result.ad) == (rcode, False), result.output
            assert result.answer or deleted or zone.name == "unsigned.test.", result.output


def test_resolver_over_tcp_and_without_do(lab: Lab, capture: Capture) -> None:
    with capture("resolver-tcp") as pcap:
        over_tcp = lab.query_resolver("www.ecdsa.test.", tcp=True)
        plain = lab.query_resolver("www.ecdsa.test.", dnssec=False)
        bogus_tcp = lab.query_resolver("www.expired.test.", tcp=True)
    assert over_tcp.ad and over_tcp.covered_by_rrsig() == {"A"}
    assert plain.rcode == "NOERROR" and plain.covered_by_rrsig() == set()
    assert bogus_tcp.rcode == "SERVFAIL"
    packets = dns_packets(pcap.path)
    assert ("tcp", lab.addresses.client, lab.addresses.resolver) in packets
    assert ("udp", lab.addresses.client, lab.addresses.resolver) in packets


@pytest.mark.parametrize(
    ("qname", "rdtype", "rcode", "addresses"),
    [
        ("anything.wild.sec.test.", "A", "NOERROR", {"192.0.2.53"}),
        ("missing.sec.test.", "A", "NXDOMAIN", set()),
        ("missing.nsec3.test.", "A", "NXDOMAIN", set()),
        ("www.nsec3.test.", "TXT", "NOERROR", set()),
        ("big.test.", "DNSKEY", "NOERROR", set()),
        ("www.cname.test.", "A", "NOERROR", {"192.0.2.1"}),
    ],
)
def test_resolver_proves_wildcards_denials_and_chains(
    lab: Lab, qname: str, rdtype: str, rcode: str, addresses: set[str]
) -> None:
    result = lab.query_resolver(qname, rdtype)
    assert (result.rcode, result.ad) == (rcode, True), result.output
    assert result.addresses() == addresses


def test_authoritative_udp_tcp_and_truncation(lab: Lab, capture: Capture) -> None:
    with capture("authoritative") as pcap:
        udp = lab.query_authoritative("www.sec.test.")
        tcp = lab.query_authoritative("www.sec.test.", tcp=True)
        truncated = lab.query_authoritative("big.test.", "DNSKEY", ignore_tc=True)
        big = lab.query_authoritative("big.test.", "DNSKEY", tcp=True)
        referral = lab.query_authoritative("www.sec.test.", server=lab.addresses.servers.root)
    for answer in (udp, tcp):
        assert answer.aa and answer.covered_by_rrsig() == {"A"}, answer.output
    assert truncated.tc and not truncated.answer
    (dnskeys,) = big.rrsets("DNSKEY")
    assert len(dnskeys) == 3 and len(big.rrsets("RRSIG")[0]) == 3
    assert not referral.aa and [
        r.name.to_text() for r in referral.rrsets("NS", section="authority")
    ] == ["test."]
    packets = dns_packets(pcap.path)
    leaf = lab.addresses.servers.leaf
    assert {("udp", leaf, lab.addresses.client), ("tcp", leaf, lab.addresses.client)} <= set(
        packets
    )


def test_served_zones_carry_the_designed_damage(lab: Lab) -> None:
    stripped = lab.query_authoritative("www.stripped.test.")
    altered = lab.query_authoritative("www.altered.test.")
    unsigned = lab.query_authoritative("www.unsigned.test.")
    assert stripped.addresses() == {"192.0.2.1"} and stripped.covered_by_rrsig() == set()
    assert altered.addresses() == {"192.0.2.66"} and altered.covered_by_rrsig() == {"A"}
    assert unsigned.covered_by_rrsig() == set()
    ds = lab.query_authoritative("p384.test.", "DS")
    assert {rdata.digest_type for rdata in ds.rrsets("DS")[0]} == {4}
    # www.brokennsec.test. is gone, but the NSEC before it still names it as next.
    deleted = lab.query_authoritative("www.brokennsec.test.")
    assert deleted.rcode == "NXDOMAIN", deleted.output
    nexts = {rdata.next.to_text() for rrset in deleted.rrsets("NSEC", section="authority")
             for rdata in rrset}  # fmt: skip
    assert "www.brokennsec.test." in nexts, deleted.output


def test_optout_child_referral_is_proven_insecure_by_an_opt_out_nsec3(lab: Lab) -> None:
    """The leaf refers child.optout.test. to another address with no DS, only NSEC3 records,
    and at least one has the opt-out flag (RFC 5155 3.1.2.1)."""
    referral = lab.query_authoritative("www.child.optout.test.", server=lab.addresses.servers.leaf)
    assert not referral.aa and referral.rcode == "NOERROR", referral.output
    (ns,) = referral.rrsets("NS", section="authority")
    assert ns.name.to_text() == "child.optout.test.", referral.output
    assert not referral.rrsets("DS", section="authority"), referral.output
    flags = {rdata.flags for rrset in referral.rrsets("NSEC3", section="authority")
             for rdata in rrset}  # fmt: skip
    assert 1 in flags, referral.output  # RFC 5155 3.1.2.1: bit 0 (value 1) is Opt-Out
    answer = lab.query_authoritative("www.child.optout.test.")
    assert lab.authoritative_for("www.child.optout.test.") == lab.addresses.servers.tld
    assert answer.aa and answer.addresses() == {"192.0.2.1"}, answer.output
    assert answer.covered_by_rrsig() == set(), answer.output


def test_signing_windows_are_recorded_relative_to_build_time(lab: Lab) -> None:
    windows = lab.signing_windows()
    for name, zone in lab.zones.items():
        if not zone.spec.signed:
            assert name not in windows
            continue
        inside = windows[name].contains(lab.built_at)
        assert inside == (zone.spec.validity is Validity.CURRENT), name


def test_trust_anchor_files_match_the_served_root_key(lab: Lab) -> None:
    served = lab.query_authoritative(".", "DNSKEY")
    (dnskeys,) = served.rrsets("DNSKEY")
    ksks = [key for key in dnskeys if key.flags & dns.dnssec.Flag.SEP]
    anchor_ds = _read_rrset(lab.trust_anchor_file)
    anchor_key = _read_rrset(lab.trust_anchor_dnskey_file)
    assert anchor_ds.rdtype == dns.rdatatype.DS and anchor_key.rdtype == dns.rdatatype.DNSKEY
    assert set(anchor_key) == set(ksks)
    assert {
        dns.dnssec.make_ds(dns.name.root, key, dns.dnssec.DSDigest.SHA256) for key in ksks
    } == set(anchor_ds)


def _read_rrset(path: Path) -> dns.rrset.RRset:
    lines = [line.split(None, 4) for line in path.read_text().splitlines() if line.strip()]
    return dns.rrset.from_text_list(
        lines[0][0], int(lines[0][1]), lines[0][2], lines[0][3], [line[4] for line in lines]
    )


@pytest.mark.skipif(find_program("kdig") is None, reason="kdig not installed")
def test_kdig_queries_parse_like_dig(lab: Lab) -> None:
    secure = lab.query_resolver("www.ed.test.", tool=Tool.KDIG)
    bogus = lab.query_resolver("www.future.test.", tool=Tool.KDIG, tcp=True)
    assert (secure.rcode, secure.ad, secure.addresses()) == ("NOERROR", True, {"192.0.2.1"})
    assert bogus.rcode == "SERVFAIL"


def test_resolver_over_ipv6_loopback(lab: Lab, capture: Capture) -> None:
    if lab.resolver_ipv6 is None:
        pytest.skip("port 53 on ::1 is taken on this machine")
    with capture("ipv6") as pcap:
        result = lab.query_resolver("www.ed448.test.", ipv6=True)
    assert (result.rcode, result.ad) == ("NOERROR", True)
    assert len(rdpcap(str(pcap.path))) >= 2


def test_loopback_addresses_are_removed_even_on_failure(lab: Lab) -> None:
    address = "127.53.9.9"
    with pytest.raises(RuntimeError), LoopbackAddresses([address, lab.addresses.resolver]):
        assert address in loopback_addresses()
        raise RuntimeError("boom")
    present = loopback_addresses()
    assert address not in present
    assert lab.addresses.resolver in present  # pre-existing: left alone


SAMPLE = Path(__file__).resolve().parents[2] / "captures" / "sample-dnssec.pcap"


def _udp_answer_types(path: Path) -> set[str]:
    types: set[str] = set()
    for packet in rdpcap(str(path)):
        if UDP in packet and packet[UDP].sport == 53:
            message = dns.message.from_wire(bytes(packet[UDP].payload))
            for rrset in (*message.answer, *message.authority):
                types.add(dns.rdatatype.to_text(rrset.rdtype))
    return types


def test_sample_capture_is_a_small_real_resolver_session() -> None:
    """captures/sample-dnssec.pcap (made by captures/make_sample.py) holds what it claims."""
    meta = json.loads(SAMPLE.with_suffix(".json").read_text())
    assert SAMPLE.stat().st_size < 200_000
    packets = dns_packets(SAMPLE)
    resolver, client = meta["addresses"]["resolver"], meta["addresses"]["client"]
    assert len(rdpcap(str(SAMPLE))) == meta["packets"]
    assert {("udp", client, resolver), ("tcp", client, resolver)} <= set(packets)
    assert ("tcp", resolver, meta["addresses"]["leaf"]) in packets
    assert {"DNSKEY", "DS", "RRSIG", "NSEC", "NSEC3"} <= _udp_answer_types(SAMPLE)
    verdicts = {(q["qname"], q.get("rcode"), "ad" in q.get("flags", [])) for q in meta["queries"]}
    assert ("www.expired.test.", "SERVFAIL", False) in verdicts
    assert ("www.sec.test.", "NOERROR", True) in verdicts
    anchor = SAMPLE.with_suffix(".anchor").read_text().split()
    assert anchor[:4] == [".", "300", "IN", "DS"]
