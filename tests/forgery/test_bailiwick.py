"""Bailiwick: data a resolver would cache for an unrelated zone is suspicious; the normal extras
of real servers (out-of-zone NS addresses, a recursive resolver's glue) are not, and records a
resolver discards anyway are a low hygiene note."""

from __future__ import annotations

from pathlib import Path

import dns.flags
import dns.message
import dns.opcode
import pytest

from auditor.capture.sources import CaptureReader
from auditor.findings.catalogue import Finding, Severity
from auditor.forgery import ForgeryDetector
from auditor.pipeline import EvidenceStream
from tests.forgery.builders import (
    RESOLVER,
    T0_NS,
    Traffic,
    answer,
    by_code,
    codes,
    insecure,
    query,
    run,
)
from tests.realcaps import REALCAPS, require

_ALARMS = ("out_of_bailiwick_data", "answer_outside_chain")


def _audit_capture(path: Path) -> list[Finding]:
    """Forgery findings of one real capture (every response judged insecure: the bailiwick
    rules do not depend on the verdict)."""
    require(path)
    detector = ForgeryDetector()
    stream = EvidenceStream(on_query=detector.observe_query)
    with CaptureReader(str(path)) as reader:
        frames = list(reader)
    found: list[Finding] = []
    for evidence in stream.run(frames):
        found.extend(detector.feed(evidence, insecure(evidence)))
    found.extend(detector.flush())
    return found


# --- real captures: normal behaviour -------------------------------------------------------


@pytest.mark.parametrize("relative", [
    # authoritative answers adding the addresses of out-of-zone NS (ns1.weberdns.de for
    # weberlab.de, roland.icir.org for netalyzr, NSAUTH1.NET.cmu.edu for ANDREW.cmu.edu...)
    "nDPI/dns_fragmented.pcap",
    "zeek/dns-two-responses.pcap",
    "zeek/dns-txt-multiple.pcap",
    "zeek/ipv6-fragmented-dns.pcap",
    # a .com server's referral carrying .net glue (gTLD servers serve both)
    "zeek/dns-edns-ecs.pcap",
    # an UPDATE response (its "answer" section holds prerequisites)
    "zeek/dns__dynamic-update.pcap",
    "suricata-verify/dns__dns-answer-emptydata__input.pcap",
    # a damaged message: records parsed out of garbage, of unknown classes
    "zeek/dns-edns-ecs-bad.pcap",
    # an additional record nothing refers to: discarded by resolvers, a low note at most
    "suricata-verify/pcaps__20250224-dns-additionals-with-cname.pcap",
    "zeek/dns__dns-edns-bad-length.pcap",
])
def test_real_captures_raise_no_bailiwick_alarm(relative: str) -> None:
    found = _audit_capture(REALCAPS / relative)
    assert by_code(found, "out_of_bailiwick_data") == []
    assert by_code(found, "answer_outside_chain") == []
    assert by_code(found, "additional_contradicts_validated") == []
    for finding in by_code(found, "extraneous_records"):
        assert finding.verdict is None and finding.severity is Severity.LOW


def test_real_unreferenced_additional_is_a_low_note() -> None:
    capture = "suricata-verify/pcaps__20250224-dns-additionals-with-cname.pcap"
    found = _audit_capture(REALCAPS / capture)
    notes = by_code(found, "extraneous_records")
    assert len(notes) == 1
    assert "service.example.com. CNAME is referenced by nothing" in notes[0].message


# --- synthetic: the same behaviours and their negative twins -------------------------------


def test_out_of_zone_ns_addresses_from_an_authoritative_server_are_normal() -> None:
    traffic = Traffic()
    q = query("www.example.", msg_id=1, flags=0)
    traffic.exchange(q, answer(q, "www.example. A 192.0.2.1",
                               authority=["example. NS ns1.dns-host.test.",
                                          "example. NS ns1.example."],
                               additional=["ns1.dns-host.test. A 203.0.113.1",
                                           "ns1.dns-host.test. AAAA 2001:db8::1",
                                           "ns1.example. A 192.0.2.53"],
                               flags=dns.flags.AA), at_ns=T0_NS)
    q2 = query("www.sub.example.", msg_id=2, flags=0)
    traffic.exchange(q2, answer(q2, authority=["sub.example. NS ns.elsewhere.test."],
                                additional=["ns.elsewhere.test. A 198.51.100.9"]),
                     at_ns=T0_NS + 1_000_000, port=40001)
    assert run(traffic) == []


def test_delegation_for_an_unrelated_zone_is_suspicious() -> None:
    # Negative twin of the test above: a referral that also delegates an unrelated zone to
    # the attacker's server (the Kaminsky payload), from an authoritative or recursive server.
    for flags in (0, dns.flags.AA, dns.flags.RA):
        traffic = Traffic()
        q = query("www.sub.example.", msg_id=1, flags=0)
        traffic.exchange(q, answer(q, authority=["sub.example. NS ns1.sub.example.",
                                                 "bank.test. NS ns.evil.test."],
                                   additional=["ns1.sub.example. A 192.0.2.1",
                                               "ns.evil.test. A 6.6.6.6"], flags=flags),
                         at_ns=T0_NS)
        found = run(traffic)
        assert codes(found) == ["out_of_bailiwick_data"], flags
        assert found[0].verdict == "suspicious" and found[0].severity is Severity.HIGH
        assert "bank.test. NS is not above www.sub.example." in found[0].message
        assert "ns.evil.test" not in found[0].message  # its glue is referenced: not the point


def test_answer_off_the_chain_is_suspicious_only_when_claiming_authority() -> None:
    traffic = Traffic()
    q1 = query("www.example.", msg_id=1)
    traffic.exchange(q1, answer(q1, "www.example. CNAME web.example.",
                                "web.example. A 192.0.2.1", flags=dns.flags.AA),
                     at_ns=T0_NS, port=46001)
    q2 = query("x.d.example.", msg_id=2)
    traffic.exchange(q2, answer(q2, "d.example. DNAME e.example.",
                                "x.d.example. CNAME x.e.example.", "x.e.example. A 192.0.2.2",
                                flags=dns.flags.AA),
                     at_ns=T0_NS + 1_000_000, port=46002)
    q3 = query("www.example.", msg_id=3)
    traffic.exchange(q3, answer(q3, "www.example. A 192.0.2.1", "www.bank.test. A 6.6.6.6",
                                flags=dns.flags.AA),
                     at_ns=T0_NS + 2_000_000, port=46003)
    found = run(traffic)
    assert codes(found) == ["answer_outside_chain"]
    assert found[0].verdict == "suspicious"
    assert "www.bank.test. A" in found[0].message

    recursive = Traffic()
    q4 = query("www.example.", msg_id=4)
    recursive.exchange(q4, answer(q4, "www.example. A 192.0.2.1", "www.bank.test. A 6.6.6.6",
                                  flags=dns.flags.RA), at_ns=T0_NS, server=RESOLVER)
    found = run(recursive)
    assert codes(found) == ["extraneous_records"]
    assert found[0].verdict is None and found[0].severity is Severity.LOW
    assert "answer www.bank.test. A" in found[0].message


def test_records_a_resolver_discards_are_a_low_note_not_an_alarm() -> None:
    traffic = Traffic()
    q = query("www.example.", msg_id=1, flags=0)
    traffic.exchange(q, answer(q, "www.example. A 192.0.2.1",
                               authority=["www.example. A 192.0.2.1",
                                          "other.test. SOA ns.other.test. h.other.test. "
                                          "1 3600 600 86400 300"],
                               additional=["www.bank.test. A 6.6.6.6"], flags=dns.flags.AA),
                     at_ns=T0_NS)
    found = run(traffic)
    assert codes(found) == ["extraneous_records"]
    note = found[0]
    assert note.verdict is None and note.severity is Severity.LOW
    for part in ("authority www.example. A (not a zone-cut type)",
                 "authority other.test. SOA is not above www.example.",
                 "additional www.bank.test. A is referenced by nothing"):
        assert part in note.message


def test_update_responses_are_not_judged_as_answers() -> None:
    traffic = Traffic()
    update = dns.message.make_query("example.", "SOA", id=9)
    update.set_opcode(dns.opcode.UPDATE)
    update.flags = dns.opcode.to_flags(dns.opcode.UPDATE)
    response = answer(update, "host.example. A 192.0.2.7",
                      authority=["host.example. A 192.0.2.7"], flags=dns.flags.AA)
    response.set_opcode(dns.opcode.UPDATE)
    traffic.exchange(update, response, at_ns=T0_NS)
    assert run(traffic) == []
    # the same records in a standard query response do fire
    q = query("example.", "SOA", msg_id=10, flags=0)
    twin = Traffic()
    twin.exchange(q, answer(q, "host.example. A 192.0.2.7", flags=dns.flags.AA), at_ns=T0_NS)
    assert codes(run(twin)) == ["answer_outside_chain"]
