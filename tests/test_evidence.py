"""Tests for RRset/RRSIG pairing and the header facts evidence keeps."""

from __future__ import annotations

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import dns.rrset

from auditor.evidence import Section, build_evidence
from auditor.transactions import Matcher
from tests.helpers import CLIENT, SERVER, observe


def _evidence(query: dns.message.Message, response: dns.message.Message):  # noqa: ANN202
    matcher = Matcher()
    matcher.feed(observe(query, src=CLIENT, dst=SERVER, sport=5555, dport=53))
    transaction = matcher.feed(observe(response, src=SERVER, sport=53, dst=CLIENT, dport=5555))
    assert transaction is not None
    return build_evidence(transaction)


def _rrsig(covered: str, owner: str = "www.example.") -> dns.rrset.RRset:
    text = f"{covered} 13 2 300 20301231000000 20200101000000 12345 example. AAAA"
    return dns.rrset.from_text(owner, 300, "IN", "RRSIG", text)


def test_rrsets_are_paired_with_their_rrsigs_per_section() -> None:
    query = dns.message.make_query("www.example.", "A", want_dnssec=True)
    response = dns.message.make_response(query)
    response.use_edns(0, dns.flags.DO, 1232)  # make_response does not copy the DO bit
    response.answer.append(dns.rrset.from_text("www.example.", 300, "IN", "A", "192.0.2.1"))
    response.answer.append(_rrsig("A"))
    response.authority.append(dns.rrset.from_text("example.", 300, "IN", "NS", "ns.example."))
    evidence = _evidence(query, response)
    answer = evidence.section(Section.ANSWER)
    assert len(answer) == 1
    assert answer[0].rrsigs is not None and len(answer[0].rrsigs) == 1
    authority = evidence.section(Section.AUTHORITY)
    assert authority[0].rrsigs is None
    assert evidence.do is True and evidence.query_do is True
    assert not evidence.orphan_rrsigs


def test_rrsig_for_an_absent_type_is_an_orphan() -> None:
    query = dns.message.make_query("www.example.", "A", want_dnssec=True)
    response = dns.message.make_response(query)
    response.answer.append(_rrsig("AAAA"))
    evidence = _evidence(query, response)
    assert evidence.rrsets == ()
    assert len(evidence.orphan_rrsigs) == 1


def test_several_rrsigs_for_one_rrset_are_all_kept() -> None:
    query = dns.message.make_query("www.example.", "A", want_dnssec=True)
    response = dns.message.make_response(query)
    response.answer.append(dns.rrset.from_text("www.example.", 300, "IN", "A", "192.0.2.1"))
    sigs = _rrsig("A")
    sigs.add(
        dns.rrset.from_text(
            "www.example.",
            300,
            "IN",
            "RRSIG",
            "A 8 2 300 20301231000000 20200101000000 999 example. AAAA",
        )[0]
    )
    response.answer.append(sigs)
    evidence = _evidence(query, response)
    assert evidence.rrsets[0].rrsigs is not None and len(evidence.rrsets[0].rrsigs) == 2


def test_ede_codes_and_flags() -> None:
    query = dns.message.make_query("bad.example.", "A", want_dnssec=True)
    response = dns.message.make_response(query)
    response.set_rcode(dns.rcode.SERVFAIL)
    response.use_edns(
        0, dns.flags.DO, 1232, options=[dns.edns.EDEOption(dns.edns.EDECode.SIGNATURE_EXPIRED)]
    )
    evidence = _evidence(query, response)
    assert evidence.ede == (7,)
    assert evidence.rcode == dns.rcode.SERVFAIL
    assert evidence.flags & dns.flags.QR


def test_query_without_do() -> None:
    query = dns.message.make_query("www.example.", "A", want_dnssec=False)
    response = dns.message.make_response(query)
    evidence = _evidence(query, response)
    assert evidence.query_do is False and evidence.do is False
