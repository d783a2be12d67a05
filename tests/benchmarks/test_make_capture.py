"""The benchmark capture generator: exact size, the promised mix, valid checksums and signatures,
and a file our own capture reader and decode pipeline read back completely."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import dns.dnssec
import dns.flags
import dns.rdata
import dns.rdatatype
import dns.rrset
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from auditor.capture.frame import LinkType
from auditor.capture.sources import CaptureSet
from auditor.evidence import ResponseEvidence
from auditor.pipeline import EvidenceStream

_SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "make_capture.py"
PACKETS = 5_000
"""Enough for a handful of fragmented and truncated responses with any seed (about 6 each)."""
SEED = 7


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_make_capture", _SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being created
    spec.loader.exec_module(module)
    return module


make_capture = _load_generator()


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    path = tmp_path_factory.mktemp("bench") / "small.pcap"
    return path, make_capture.write_capture(path, PACKETS, SEED)


@pytest.fixture(scope="module")
def evidence(generated: tuple[Path, Any]) -> tuple[list[ResponseEvidence], EvidenceStream]:
    path, _ = generated
    stream = EvidenceStream()
    with CaptureSet([str(path)]) as source:
        found = list(stream.run(source))
    return found, stream


def _naive_checksum(data: bytes) -> int:
    """RFC 1071 section 4.1, word by word with end-around carry."""
    if len(data) % 2:
        data += b"\x00"
    total = 0
    for index in range(0, len(data), 2):
        total += data[index] << 8 | data[index + 1]
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_checksum_matches_rfc1071_word_by_word(data: bytes) -> None:
    assert make_capture.checksum(data) == _naive_checksum(data)


def test_writes_exactly_the_frames_asked_and_reports_the_file_size(
    generated: tuple[Path, Any],
) -> None:
    path, summary = generated
    assert summary.packets == PACKETS
    assert path.stat().st_size == summary.bytes


def test_same_seed_gives_the_same_bytes_and_another_seed_does_not(tmp_path: Path) -> None:
    first, second, other = tmp_path / "a.pcap", tmp_path / "b.pcap", tmp_path / "c.pcap"
    make_capture.write_capture(first, 400, 3)
    make_capture.write_capture(second, 400, 3)
    make_capture.write_capture(other, 400, 4)
    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes() != other.read_bytes()


def test_capture_set_reads_every_frame_in_time_order(generated: tuple[Path, Any]) -> None:
    path, summary = generated
    with CaptureSet([str(path)]) as source:
        frames = list(source)
    assert len(frames) == PACKETS
    assert {frame.linktype for frame in frames} == {LinkType.ETHERNET}
    assert all(frame.wirelen == len(frame.data) for frame in frames)
    times = [frame.ts_ns for frame in frames]
    assert times == sorted(times)
    assert times[0] == summary.first_ts_ns // 1_000 * 1_000  # microsecond pcap
    assert times[-1] == summary.last_ts_ns // 1_000 * 1_000
    assert 2.0 < summary.duration_s < 4.0  # about 1,667 frames per second


def test_mix_has_every_kind_of_traffic_in_plausible_shares(generated: tuple[Path, Any]) -> None:
    _, summary = generated
    counts = summary.counts
    for tag in (
        "dnskey_response",
        "nxdomain_response",
        "nodata_response",
        "truncated_response",
        "fragmented_response",
        "dns_response_tcp",
        "tcp_split",
        "tcp_control",
        "arp",
    ):
        assert counts.get(tag, 0) > 0, tag
    assert counts["ipv4"] + counts["ipv6"] + counts["arp"] == PACKETS
    assert 0.05 < counts["ipv6"] / PACKETS < 0.30
    assert 0.01 < counts["noise"] / PACKETS < 0.10
    assert 0.02 < counts["tcp"] / PACKETS < 0.30
    assert counts["fragment"] >= 2 * counts["fragmented_response"]
    assert 0.3 < counts["dns_response"] / PACKETS < 0.5
    assert abs(counts["dns_query"] - counts["dns_response"]) < 0.05 * counts["dns_query"]


def test_ip_udp_tcp_checksums_agree_with_scapy(generated: tuple[Path, Any]) -> None:
    path, _ = generated
    with CaptureSet([str(path)]) as source:
        frames = [frame.data for frame in source][:600]
    checked = 0
    for data in frames:
        packet = Ether(data)
        if IP in packet and (packet[IP].flags.MF or packet[IP].frag):
            continue  # scapy cannot recompute a transport checksum from one fragment
        for layer in (IP, UDP, TCP):
            if layer in packet and (layer is IP or IP in packet or IPv6 in packet):
                written = packet[layer].chksum
                copy = Ether(data)
                del copy[layer].chksum
                assert Ether(bytes(copy))[layer].chksum == written, (layer.__name__, data.hex())
                checked += 1
    assert checked > 1_000


def test_pipeline_finds_every_response_the_generator_wrote(
    generated: tuple[Path, Any],
    evidence: tuple[list[ResponseEvidence], EvidenceStream],
) -> None:
    _, summary = generated
    found, stream = evidence
    counters = stream.counters()
    assert len(found) == summary.counts["dns_response"]
    assert counters["matching"]["queries"] == summary.counts["dns_query"]
    assert counters["frames_read"] == PACKETS
    bad = {
        "decoder_error",
        "malformed_link",
        "malformed_ip",
        "malformed_transport",
        "dns_parse_error",
        "tcp_gap",
        "tcp_midstream",
    }
    assert {
        reason: count for reason, count in counters["frames"].items() if reason in bad
    } == dict.fromkeys(bad, 0)
    assert counters["matching"]["unsolicited_responses"] == 0
    assert counters["matching"]["question_mismatch"] == 0


def test_every_signature_in_a_sample_validates_and_a_corrupted_one_does_not(
    evidence: tuple[list[ResponseEvidence], EvidenceStream],
) -> None:
    found, _ = evidence
    keys = make_capture.SigningKeys(SEED)
    dnskeys = [dns.rdata.from_text("IN", "DNSKEY", text) for text in keys.dnskey_texts]
    signed = [
        (item.rrset, item.rrsigs, response.ts_ns // 1_000_000_000)
        for response in found
        for item in response.rrsets
        if item.rrsigs is not None
    ]
    kinds = {rrset.rdtype for rrset, _, _ in signed}
    assert {dns.rdatatype.A, dns.rdatatype.NSEC, dns.rdatatype.SOA, dns.rdatatype.DNSKEY} <= kinds
    for rrset, rrsigs, when in signed[:: max(1, len(signed) // 300)]:
        signer = rrsigs[0].signer
        key_rrset = dns.rrset.from_rdata_list(signer, 3600, dnskeys)
        dns.dnssec.validate(rrset, rrsigs, {signer: key_rrset}, now=when)
    rrset, rrsigs, when = signed[0]
    rrsig = rrsigs[0]
    broken = rrsig.replace(signature=bytes([rrsig.signature[0] ^ 1]) + rrsig.signature[1:])
    key_rrset = dns.rrset.from_rdata_list(rrsig.signer, 3600, dnskeys)
    with pytest.raises(dns.dnssec.ValidationFailure):
        dns.dnssec.validate(
            rrset,
            dns.rrset.from_rdata(rrset.name, rrset.ttl, broken),
            {rrsig.signer: key_rrset},
            now=when,
        )


def test_ttl_decay_counts_cached_answers_down_and_changes_nothing_else(
        tmp_path: Path, generated: tuple[Path, Any]) -> None:
    path = tmp_path / "decay.pcap"
    summary = make_capture.write_capture(path, PACKETS, SEED, ttl_decay=True)
    _, plain = generated
    assert summary.counts == plain.counts  # the same traffic, only TTLs differ
    with CaptureSet([str(path)]) as source:
        found = list(EvidenceStream().run(source))
    served = [e for e in found if e.transaction.response.wire.src == "192.0.2.53"]
    ttls = [item.rrset.ttl for e in served for item in e.rrsets
            if item.rrset.rdtype == dns.rdatatype.A]
    assert max(ttls) <= make_capture.DATA_TTL
    aged = sum(ttl < make_capture.DATA_TTL for ttl in ttls)  # ~3 s of traffic: ages of 1-2 s
    assert len(ttls) // 10 < aged < len(ttls)
    assert all(ttl >= 0 for ttl in ttls)


def test_aging_a_template_lowers_answer_and_authority_ttls_only() -> None:
    import dns.message

    query = dns.message.make_query("www.example.", "A", want_dnssec=True)
    response = dns.message.make_response(query)
    response.use_edns(0, dns.flags.DO, 1232)
    response.answer.append(dns.rrset.from_text("www.example.", 300, "IN", "A", "192.0.2.1"))
    response.authority.append(dns.rrset.from_text("example.", 60, "IN", "NS", "ns.example."))
    response.additional.append(dns.rrset.from_text("ns.example.", 300, "IN", "A", "192.0.2.9"))
    aged = dns.message.from_wire(make_capture.with_ttls_aged(response.to_wire(), 100))
    assert [r.ttl for r in aged.answer] == [200]
    assert [r.ttl for r in aged.authority] == [0]  # never below zero
    assert [r.ttl for r in aged.additional] == [300]
    assert aged.edns == 0 and aged.ednsflags & dns.flags.DO
