"""Validation findings: verdicts become merged catalogue findings with provenance."""

from __future__ import annotations

import pytest

from auditor.findings.catalogue import Finding, Severity
from auditor.findings.validation import ValidationFindings
from auditor.validate import Status
from tests.helpers import CLIENT, SERVER
from tests.validate.signing import NS, WHEN, Lab, flip_signature, respond


@pytest.fixture(scope="module")
def lab() -> Lab:
    return Lab()


def _run(lab: Lab, responses: list) -> tuple[list[Finding], list[Status]]:  # type: ignore[type-arg]
    validator = lab.validator()
    source = ValidationFindings()
    statuses = []
    for evidence in responses:
        verdict = validator.judge(evidence)
        statuses.append(verdict.status)
        assert list(source.feed(evidence, verdict)) == []
    return list(source.flush()), statuses


def _by_code(found: list[Finding]) -> dict[str, Finding]:
    return {f.code: f for f in found}


def test_bogus_answers_merge_per_zone_and_server_with_count_and_times(lab: Lab) -> None:
    data, sigs = lab.signed_a()
    responses = [respond("www.example.test.", "A", [data, flip_signature(sigs)], ts=WHEN + n,
                         sport=40000 + n) for n in range(3)]
    found, statuses = _run(lab, responses)
    assert statuses == [Status.BOGUS] * 3
    codes = _by_code(found)
    bogus = codes["bogus_answer"]
    assert bogus.severity is Severity.HIGH and bogus.count == 3
    assert bogus.first_seen_ns == WHEN * NS + 1000
    assert bogus.last_seen_ns == (WHEN + 2) * NS + 1000
    assert bogus.provenance.server == SERVER and bogus.provenance.client == CLIENT
    assert bogus.provenance.capture == "test.pcap" and len(bogus.provenance.frames) == 1
    assert bogus.params["zone"] == "example.test."
    assert "signature does not verify" in bogus.message
    assert codes["bad_signature"].count == 3
    assert "www.example.test. A" in codes["bad_signature"].message
    assert "ad_on_bogus" not in codes


def test_ad_on_bogus_is_critical(lab: Lab) -> None:
    data, sigs = lab.signed_a()
    found, _ = _run(lab, [respond("www.example.test.", "A", [data, flip_signature(sigs)],
                                  ad=True)])
    critical = _by_code(found)["ad_on_bogus"]
    assert critical.severity is Severity.CRITICAL
    assert "claimed secure" in critical.message


def test_expired_signature_has_its_own_finding(lab: Lab) -> None:
    expired = lab.signed_a(inception=WHEN - 20 * 86_400, expiration=WHEN - 86_400)
    found, statuses = _run(lab, [respond("www.example.test.", "A", expired)])
    assert statuses == [Status.BOGUS]
    assert _by_code(found)["signature_expired"].params["rrsets"] == "www.example.test. A"


def test_secure_answers_give_no_findings(lab: Lab) -> None:
    found, statuses = _run(lab, [respond("www.example.test.", "A", lab.signed_a())])
    assert statuses == [Status.SECURE] and found == []


def test_indeterminate_answers_are_summarised_per_zone() -> None:
    lab = Lab()
    validator = lab.validator(material=_material_without_keys(lab))
    source = ValidationFindings()
    for n in range(4):
        evidence = respond(f"host{n}.example.test.", "A", lab.signed_a(f"host{n}.example.test."))
        verdict = validator.judge(evidence)
        assert verdict.status is Status.INDETERMINATE
        source.feed(evidence, verdict)
    [summary] = [f for f in source.flush() if f.code == "indeterminate_answers"]
    assert summary.count == 4 and summary.params["zone"] == "example.test."
    assert summary.severity is Severity.LOW


def test_indeterminate_answers_without_records_are_filed_under_the_closest_known_zone() -> None:
    import dns.rcode

    from auditor.findings.codes import ValidationCode

    lab = Lab()
    validator = lab.validator()
    source = ValidationFindings()
    for n in range(3):
        evidence = respond(f"gone{n}.example.test.", "A", [], rcode=dns.rcode.SERVFAIL)
        verdict = validator.judge(evidence)
        # The question name is not a zone; the closest zone the capture knows is.
        assert verdict.status is Status.INDETERMINATE and verdict.zone == "example.test."
        assert ValidationCode.NO_RECORDS in verdict.codes
        assert verdict.missing == ("the response has no records to validate",)
        source.feed(evidence, verdict)
    [summary] = [f for f in source.flush() if f.code == "indeterminate_answers"]
    assert summary.count == 3 and summary.params["zone"] == "example.test."
    assert summary.params["answers_list"] == [f"gone{n}.example.test. A" for n in range(3)]


def test_indeterminate_answers_with_no_zone_known_are_summarised_together() -> None:
    import dns.rcode

    from auditor.findings.validation import UNKNOWN_ZONE
    from auditor.trust import KeyMaterial, KeyView, TrustAnchors
    from auditor.validate import RFC8624, Validator

    validator = Validator(KeyView(TrustAnchors(), KeyMaterial()), RFC8624)
    source = ValidationFindings()
    for n in range(2):
        evidence = respond(f"gone{n}.example.test.", "A", [], rcode=dns.rcode.SERVFAIL)
        verdict = validator.judge(evidence)
        assert verdict.status is Status.INDETERMINATE and verdict.zone is None
        source.feed(evidence, verdict)
    [summary] = [f for f in source.flush() if f.code == "indeterminate_answers"]
    assert summary.count == 2 and summary.params["zone"] == UNKNOWN_ZONE


def _material_without_keys(lab: Lab):  # type: ignore[no-untyped-def]
    from auditor.trust import KeyMaterial

    material = KeyMaterial()
    for evidence in lab.key_responses(with_leaf_ds=False):
        material.observe(evidence)
    return material
