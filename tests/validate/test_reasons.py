"""Reasons that are true (issue 11 points 3 and 7): an unsigned answer to a query without DO is
explained by DO=0, not by a key nobody asked for; the missing link nearest the data comes
first; ``zone`` names the closest known zone; ``--at`` moves only the signatures' time, never
what the resolver's AD bit is judged by."""

from __future__ import annotations

import dns.rcode
import dns.rrset

from auditor.findings.codes import ValidationCode as C
from auditor.trust import KeyMaterial, KeyView
from auditor.validate import RFC8624, Status, Validator
from tests.validate.signing import EXPIRATION, NS, WHEN, Lab, respond, rrset


def _without_leaf_keys(lab: Lab) -> KeyMaterial:
    material = KeyMaterial()
    for evidence in lab.key_responses(with_leaf_ds=False):
        if evidence.qname != lab.leaf.origin:
            material.observe(evidence)
    return material


def test_unsigned_answer_without_do_is_explained_by_do_0() -> None:
    lab = Lab()
    validator = Validator(KeyView(lab.anchors(), _without_leaf_keys(lab)), RFC8624)
    plain = respond("www.example.test.", "A", [rrset("www.example.test.", "A", "192.0.2.1")],
                    [rrset("example.test.", "NS", "ns.example.test.")], query_do=False)
    verdict = validator.judge(plain)
    assert verdict.status is Status.INDETERMINATE
    assert C.DNSSEC_NOT_REQUESTED in verdict.codes
    assert C.DNSKEY_MISSING not in verdict.codes and C.DS_MISSING not in verdict.codes
    assert verdict.missing[0].startswith("no DNSSEC requested (DO=0)")
    assert verdict.zone == "example.test."  # the authority NS names the zone


def test_signed_answer_with_do_names_the_nearest_missing_link_first() -> None:
    # Twin of the test above: with DO the signatures are there and the missing DS is the reason.
    lab = Lab()
    validator = Validator(KeyView(lab.anchors(), _without_leaf_keys(lab)), RFC8624)
    verdict = validator.judge(respond("www.example.test.", "A", lab.signed_a()))
    assert verdict.status is Status.INDETERMINATE
    assert C.DNSSEC_NOT_REQUESTED not in verdict.codes
    assert verdict.missing[0] == "DS for example.test. not seen"
    assert verdict.zone == "example.test."


def test_an_answer_with_records_never_says_it_has_none() -> None:
    lab = Lab()
    validator = lab.validator()
    empty = validator.judge(respond("x.example.test.", "A", [], rcode=dns.rcode.REFUSED))
    assert C.NO_RECORDS in empty.codes
    full = validator.judge(respond("www.example.test.", "A", lab.signed_a()))
    assert C.NO_RECORDS not in full.codes and full.status is Status.SECURE


def test_at_moves_the_signature_time_but_not_the_resolvers_ad_claim() -> None:
    lab = Lab()
    answer = respond("www.example.test.", "A", lab.signed_a(), ad=True)
    later = (EXPIRATION + 86_400) * NS
    verdict = lab.validator(at_ns=later).judge(answer)
    assert verdict.status is Status.BOGUS  # the signature has expired at --at
    assert C.SIGNATURE_EXPIRED in verdict.rrsets[0].codes
    # ...but the resolver answered at capture time, when the data validated: AD was right.
    assert verdict.status_for_claims is Status.SECURE
    assert C.AD_ON_BOGUS not in verdict.codes
    # Twin: an answer captured after expiry with AD set is a false claim.
    late = respond("www.example.test.", "A", lab.signed_a(), ad=True, ts=EXPIRATION + 86_400)
    verdict = lab.validator().judge(late)
    assert verdict.status is Status.BOGUS and C.AD_ON_BOGUS in verdict.codes
    assert WHEN < EXPIRATION


def test_a_chaos_class_answer_is_never_judged_as_stripped_in_data() -> None:
    # version.bind CH TXT with DO, under a validated root: CHAOS data is never signed, and no
    # trust anchor exists for it; indeterminate, not bogus for a missing RRSIG.
    import dns.rdataclass

    lab = Lab()
    txt = dns.rrset.from_text("version.bind.", 0, "CH", "TXT", '"9.18"')
    query = respond("version.bind.", "TXT", [txt])
    chaos = lab.validator().judge(_with_class(query, dns.rdataclass.CH))
    assert chaos.status is Status.INDETERMINATE and C.NOT_CLASS_IN in chaos.codes
    # Twin: the same unsigned data in class IN under the signed root is bogus (RRSIG missing).
    inside = lab.validator().judge(respond("version.bind.", "TXT",
                                           [rrset("version.bind.", "TXT", '"9.18"')]))
    assert inside.status is Status.BOGUS


def _with_class(evidence, rdclass):  # type: ignore[no-untyped-def]
    import dataclasses

    return dataclasses.replace(evidence, qclass=int(rdclass))


def test_a_zone_transfer_is_not_validated() -> None:
    # An AXFR carrying more signed RRsets than any answer must not trip the validation budget
    # (a false KeyTrap alarm): zone transfers are not resolver answers.
    lab = Lab()
    records = []
    for n in range(300):
        data = rrset(f"h{n}.example.test.", "A", f"192.0.2.{n % 250 + 1}")
        records.extend([data, lab.leaf.sign(data)])
    verdict = lab.validator().judge(respond("example.test.", "AXFR", records))
    assert verdict.status is Status.INDETERMINATE and C.ZONE_TRANSFER in verdict.codes
    assert C.VALIDATION_BUDGET_EXCEEDED not in verdict.codes
    # Twin: the same records answering an ordinary question are judged (and validate).
    answer = lab.validator().judge(respond("h1.example.test.", "A", records[2:4]))
    assert answer.status is Status.SECURE
