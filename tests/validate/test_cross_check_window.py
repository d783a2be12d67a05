"""Validator cross-check of unsigned (DO=0) answers against validated copies: only a copy
valid at the time of the unsigned answer (its TTL from when it was seen, its signature window)
can make it bogus; a truncated answer without RRSIGs is indeterminate (issue 11 point 5)."""

from __future__ import annotations

from auditor.findings.codes import ValidationCode
from auditor.validate import Status
from tests.validate.signing import WHEN, Lab, respond, rrset

YEAR_S = 365 * 86_400


def _verdict_of_unsigned(delay_s: int, *, expiration: int | None = None):  # type: ignore[no-untyped-def]
    lab = Lab()
    data = rrset("www.example.test.", "A", "192.0.2.1")
    sign = {} if expiration is None else {"expiration": expiration}
    signed = respond("www.example.test.", "A", [data, lab.leaf.sign(data, **sign)], ts=WHEN)
    forged = respond("www.example.test.", "A", [rrset("www.example.test.", "A", "6.6.6.6")],
                     query_do=False, ts=WHEN + delay_s, sport=40001)
    validator = lab.validator([signed, forged])
    return validator.judge(forged).rrsets[0]


def test_unsigned_answer_contradicting_a_current_validated_copy_is_bogus() -> None:
    judged = _verdict_of_unsigned(60)
    assert judged.status is Status.BOGUS
    assert ValidationCode.UNSIGNED_CONTRADICTS_VALIDATED in judged.codes


def test_a_validated_copy_from_years_earlier_proves_nothing() -> None:
    judged = _verdict_of_unsigned(3 * YEAR_S, expiration=WHEN + 4 * YEAR_S)
    assert judged.status is Status.INDETERMINATE
    assert ValidationCode.UNSIGNED_CONTRADICTS_VALIDATED not in judged.codes


def test_a_validated_copy_past_its_ttl_proves_nothing() -> None:
    judged = _verdict_of_unsigned(400)  # the copy's TTL is 300 s
    assert judged.status is Status.INDETERMINATE


def test_a_validated_copy_past_its_signature_expiration_proves_nothing() -> None:
    judged = _verdict_of_unsigned(120, expiration=WHEN + 60)
    assert judged.status is Status.INDETERMINATE


def test_unsigned_answer_with_do_is_bogus() -> None:
    lab = Lab()
    plain = respond("www.example.test.", "A", [rrset("www.example.test.", "A", "192.0.2.1")])
    judged = lab.validator([plain]).judge(plain)
    assert judged.status is Status.BOGUS
    assert ValidationCode.RRSIGS_MISSING in judged.rrsets[0].codes


def test_truncated_answer_without_rrsigs_is_indeterminate() -> None:
    # Twin of the test above: RFC 4035 3.1.1, RRSIGs that do not fit set TC; the client
    # retries over TCP, so the missing signatures prove nothing.
    lab = Lab()
    cut = respond("www.example.test.", "A", [rrset("www.example.test.", "A", "192.0.2.1")],
                  tc=True)
    judged = lab.validator([cut]).judge(cut)
    assert judged.status is Status.INDETERMINATE
    assert ValidationCode.TRUNCATED in judged.codes
    assert ValidationCode.RRSIGS_MISSING not in judged.rrsets[0].codes


def test_a_rotating_subset_of_a_validated_copy_is_neither_secure_nor_bogus() -> None:
    # Load-balanced or CDN answers share records with the validated copy but differ: not a
    # contradiction (the disjoint twin at the top of this file is bogus).
    lab = Lab()
    data = rrset("www.example.test.", "A", "192.0.2.1")
    signed = respond("www.example.test.", "A", [data, lab.leaf.sign(data)], ts=WHEN)
    rotated = respond("www.example.test.", "A",
                      [rrset("www.example.test.", "A", "192.0.2.1", "192.0.2.2")],
                      query_do=False, ts=WHEN + 60, sport=40001)
    judged = lab.validator([signed, rotated]).judge(rotated).rrsets[0]
    assert judged.status is Status.INDETERMINATE
    assert ValidationCode.UNSIGNED_CONTRADICTS_VALIDATED not in judged.codes
