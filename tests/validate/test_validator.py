"""Validator verdicts over a private . -> test. -> example.test. hierarchy, each with its
negative twin that must change the verdict."""

from __future__ import annotations

from typing import cast

import dns.dnssec
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
from dns.rdtypes.ANY.DNSKEY import DNSKEY
from hypothesis import given, settings
from hypothesis import strategies as st

from auditor.findings import ValidationCode as C
from auditor.trust import KeyMaterial, KeyView, TrustAnchors
from auditor.validate import PERMISSIVE, RFC8624, RFC9904, Status, Validator
from tests.validate.signing import (
    EXPIRATION,
    INCEPTION,
    NS,
    WHEN,
    Lab,
    Zone,
    flip_signature,
    name,
    replace_rdata,
    respond,
    rrset,
)


@pytest.fixture(scope="module")
def lab() -> Lab:
    return Lab()


def test_signed_answer_is_secure(lab: Lab) -> None:
    verdict = lab.validator().judge(respond("www.example.test.", "A", lab.signed_a()))
    assert verdict.status is Status.SECURE
    assert verdict.zone == "example.test."
    answer = verdict.rrsets[0]
    assert answer.status is Status.SECURE
    assert answer.signer == "example.test."
    assert answer.inception == INCEPTION and answer.expiration == EXPIRATION
    assert verdict.reference_time_ns == WHEN * NS + 1000


def test_flipped_signature_byte_is_bogus(lab: Lab) -> None:
    data, sigs = lab.signed_a()
    verdict = lab.validator().judge(respond("www.example.test.", "A", [data, flip_signature(sigs)]))
    assert verdict.status is Status.BOGUS
    assert C.BAD_SIGNATURE in verdict.codes


def test_changed_rdata_byte_is_bogus(lab: Lab) -> None:
    _, sigs = lab.signed_a()
    forged = rrset("www.example.test.", "A", "192.0.2.2")
    verdict = lab.validator().judge(respond("www.example.test.", "A", [forged, sigs]))
    assert verdict.status is Status.BOGUS
    assert C.BAD_SIGNATURE in verdict.rrsets[0].codes


def test_expired_signature_is_bogus_and_skew_rescues_it(lab: Lab) -> None:
    answer = lab.signed_a(inception=WHEN - 1000, expiration=WHEN - 10)
    verdict = lab.validator().judge(respond("www.example.test.", "A", answer))
    assert verdict.status is Status.BOGUS
    assert C.SIGNATURE_EXPIRED in verdict.codes
    assert C.SIGNATURE_EXPIRED.ede == 7
    assert lab.validator(policy=PERMISSIVE).judge(
        respond("www.example.test.", "A", answer)).status is Status.SECURE


def test_not_yet_valid_signature_is_bogus(lab: Lab) -> None:
    answer = lab.signed_a(inception=WHEN + 3600, expiration=WHEN + 7200)
    verdict = lab.validator().judge(respond("www.example.test.", "A", answer))
    assert verdict.status is Status.BOGUS
    assert C.SIGNATURE_NOT_YET_VALID in verdict.codes


def test_fixed_reference_time_overrides_capture_time(lab: Lab) -> None:
    answer = lab.signed_a()
    assert lab.validator(at_ns=(EXPIRATION + 10) * NS).judge(
        respond("www.example.test.", "A", answer)).status is Status.BOGUS
    assert lab.validator(at_ns=(WHEN + 10) * NS).judge(
        respond("www.example.test.", "A", answer, ts=EXPIRATION + 100)).status is Status.SECURE


def test_missing_leaf_ds_is_indeterminate_and_says_which(lab: Lab) -> None:
    validator = lab.validator(material=_material_without_leaf_ds(lab))
    verdict = validator.judge(respond("www.example.test.", "A", lab.signed_a()))
    assert verdict.status is Status.INDETERMINATE
    assert "DS for example.test. not seen" in verdict.missing
    assert C.DS_MISSING in verdict.codes


def _material_without_leaf_ds(lab: Lab) -> KeyMaterial:
    material = KeyMaterial()
    for evidence in lab.key_responses(with_leaf_ds=False):
        material.observe(evidence)
    return material


def test_missing_dnskey_is_indeterminate_and_names_the_key(lab: Lab) -> None:
    material = KeyMaterial()
    for evidence in lab.key_responses():
        if evidence.qname != name("example.test.") or evidence.qtype != dns.rdatatype.DNSKEY:
            material.observe(evidence)
    verdict = lab.validator(material=material).judge(
        respond("www.example.test.", "A", lab.signed_a()))
    assert verdict.status is Status.INDETERMINATE
    tag = dns.dnssec.key_id(lab.leaf.ksk)
    assert f"DNSKEY for example.test. with key tag {tag} alg 13 not seen" in verdict.missing


def test_replaced_ds_digest_is_bogus(lab: Lab) -> None:
    ds = lab.leaf.ds()
    wrong = replace_rdata(ds, digest=bytes(32))
    responses = [respond("example.test.", "DS", [wrong, lab.tld.sign(wrong)])]
    material = KeyMaterial()
    for evidence in [*lab.key_responses(with_leaf_ds=False), *responses]:
        material.observe(evidence)
    verdict = lab.validator(material=material).judge(
        respond("www.example.test.", "A", lab.signed_a()))
    assert verdict.status is Status.BOGUS
    assert C.DS_MISMATCH in verdict.codes


def test_zone_key_bit_cleared_is_bogus() -> None:
    lab = Lab(leaf=Zone(name("example.test."), 13, slot=7))
    leaf = lab.leaf
    keys = leaf.dnskey_rrset()
    keys = replace_rdata(keys, flags=0)  # both keys lose the Zone Key bit
    # The DS must match the key as published (flags are part of the digest).
    ds = dns.dnssec.make_ds(leaf.origin, next(iter(keys)), dns.dnssec.DSDigest.SHA256)
    ds_rrset = dns.rrset.from_rdata(leaf.origin, 3600, ds)
    material = KeyMaterial()
    for evidence in lab.key_responses(with_leaf_ds=False):
        if evidence.qname != leaf.origin:
            material.observe(evidence)
    material.observe(respond("example.test.", "DNSKEY", [keys, leaf.sign(keys)]))
    material.observe(respond("example.test.", "DS", [ds_rrset, lab.tld.sign(ds_rrset)]))
    verdict = lab.validator(material=material).judge(
        respond("www.example.test.", "A", lab.signed_a()))
    assert verdict.status is Status.BOGUS
    assert C.NO_ZONE_KEY_BIT in verdict.codes


def test_dnskey_after_data_and_live_observation(lab: Lab) -> None:
    material = KeyMaterial()
    validator = lab.validator(material=material)
    answer = respond("www.example.test.", "A", lab.signed_a())
    material.observe(answer)
    assert validator.judge(answer).status is Status.INDETERMINATE
    for evidence in reversed(lab.key_responses()):
        material.observe(evidence)
    assert validator.judge(answer).status is Status.SECURE
    assert isinstance(validator.keys, KeyView)


def test_unsigned_answer_with_do_is_bogus(lab: Lab) -> None:
    data = rrset("www.example.test.", "A", "192.0.2.1")
    verdict = lab.validator().judge(respond("www.example.test.", "A", [data]))
    assert verdict.status is Status.BOGUS
    assert C.RRSIGS_MISSING in verdict.codes
    assert C.RRSIGS_MISSING.ede == 10


def test_unsigned_answer_without_do_is_cross_checked(lab: Lab) -> None:
    upstream = respond("www.example.test.", "A", lab.signed_a(), sport=41000)
    validator = lab.validator([upstream])
    same = respond("www.example.test.", "A", [rrset("www.example.test.", "A", "192.0.2.1")],
                   query_do=False)
    verdict = validator.judge(same)
    assert verdict.status is Status.SECURE
    assert C.UNSIGNED_CROSS_CHECKED in verdict.codes
    other = respond("www.example.test.", "A", [rrset("www.example.test.", "A", "203.0.113.9")],
                    query_do=False)
    verdict = validator.judge(other)
    assert verdict.status is Status.BOGUS
    assert C.UNSIGNED_CONTRADICTS_VALIDATED in verdict.codes
    lonely = respond("mail.example.test.", "A", [rrset("mail.example.test.", "A", "192.0.2.7")],
                     query_do=False)
    verdict = validator.judge(lonely)
    assert verdict.status is Status.INDETERMINATE
    assert C.UNSIGNED_NOT_CROSS_CHECKED in verdict.codes


def test_cname_across_zones_follows_each_hop(lab: Lab) -> None:
    cname = rrset("alias.test.", "CNAME", "www.example.test.")
    answer = [cname, lab.tld.sign(cname), *lab.signed_a()]
    verdict = lab.validator().judge(respond("alias.test.", "A", answer))
    assert verdict.status is Status.SECURE
    assert [v.signer for v in verdict.rrsets] == ["test.", "example.test."]
    forged = [cname, flip_signature(lab.tld.sign(cname)), *lab.signed_a()]
    assert lab.validator().judge(respond("alias.test.", "A", forged)).status is Status.BOGUS


def test_ad_on_bogus_and_insecure(lab: Lab) -> None:
    data, sigs = lab.signed_a()
    verdict = lab.validator().judge(
        respond("www.example.test.", "A", [data, flip_signature(sigs)], ad=True))
    assert C.AD_ON_BOGUS in verdict.codes
    verdict = lab.validator().judge(respond("www.example.test.", "A", [data, sigs], ad=True))
    assert C.AD_ON_BOGUS not in verdict.codes and C.AD_ON_INSECURE not in verdict.codes


def test_servfail_contradicted_by_valid_copy(lab: Lab) -> None:
    upstream = respond("www.example.test.", "A", lab.signed_a(), sport=41000)
    validator = lab.validator([upstream])
    servfail = respond("www.example.test.", "A", rcode=dns.rcode.SERVFAIL, ede=[7])
    verdict = validator.judge(servfail)
    assert C.SERVFAIL_CONTRADICTS_EVIDENCE in verdict.codes
    expired = respond("www.example.test.", "A",
                      lab.signed_a(inception=WHEN - 100, expiration=WHEN - 10), sport=41001)
    honest = lab.validator([expired]).judge(servfail)
    assert C.SERVFAIL_CONTRADICTS_EVIDENCE not in honest.codes


def test_negative_answer_without_nsec_is_bogus(lab: Lab) -> None:
    soa = rrset("example.test.", "SOA", "ns.example.test. h.example.test. 1 2 3 4 300")
    verdict = lab.validator().judge(
        respond("nx.example.test.", "A", authority=[soa, lab.leaf.sign(soa)],
                rcode=dns.rcode.NXDOMAIN))
    # RFC 4035 5.4: a negative answer from a signed zone, asked with DO, needs NSEC/NSEC3.
    assert verdict.status is Status.BOGUS
    assert C.NSEC_MISSING in verdict.codes
    unsigned = lab.validator().judge(
        respond("nx.example.test.", "A", authority=[soa], rcode=dns.rcode.NXDOMAIN))
    assert unsigned.status is Status.BOGUS
    assert C.RRSIGS_MISSING in unsigned.codes


def test_wildcard_expansion_is_not_secure_without_proof(lab: Lab) -> None:
    wild = rrset("*.example.test.", "A", "192.0.2.50")
    sigs = lab.leaf.sign(wild)
    expanded = rrset("host.example.test.", "A", "192.0.2.50")
    moved = sigs.__class__(expanded.name, sigs.rdclass, sigs.rdtype, sigs.covers)
    moved.update_ttl(sigs.ttl)
    for rrsig in sigs:
        moved.add(rrsig)
    verdict = lab.validator().judge(respond("host.example.test.", "A", [expanded, moved]))
    assert verdict.status is Status.BOGUS
    assert C.WILDCARD_UNPROVEN in verdict.codes and C.WILDCARD_EXPANDED in verdict.codes
    forged = rrset("host.example.test.", "A", "192.0.2.51")
    assert lab.validator().judge(
        respond("host.example.test.", "A", [forged, moved])).status is Status.BOGUS


def test_labels_above_owner_count_is_bogus(lab: Lab) -> None:
    data, sigs = lab.signed_a()
    verdict = lab.validator().judge(
        respond("www.example.test.", "A", [data, replace_rdata(sigs, labels=9)]))
    assert verdict.status is Status.BOGUS
    assert C.LABELS_INVALID in verdict.codes


def test_signer_outside_owner_is_bogus(lab: Lab) -> None:
    data = rrset("www.other.test.", "A", "192.0.2.1")
    sigs = lab.leaf.sign(data)
    verdict = lab.validator().judge(respond("www.other.test.", "A", [data, sigs]))
    assert verdict.status is Status.BOGUS
    assert C.SIGNER_NOT_ZONE in verdict.codes


def test_received_ttl_above_original_is_noted_not_fatal(lab: Lab) -> None:
    data = rrset("www.example.test.", "A", "192.0.2.1", ttl=300)
    sigs = replace_rdata(lab.leaf.sign(data), original_ttl=300)
    longer = rrset("www.example.test.", "A", "192.0.2.1", ttl=900)
    verdict = lab.validator().judge(respond("www.example.test.", "A", [longer, sigs]))
    assert verdict.status is Status.SECURE
    assert C.ORIGINAL_TTL_EXCEEDED in verdict.rrsets[0].codes


@pytest.mark.parametrize("algorithm", [8, 10, 13, 14, 15, 16])
def test_each_algorithm_validates_and_its_forgery_does_not(algorithm: int) -> None:
    lab = Lab(leaf=Zone(name("example.test."), algorithm))
    assert lab.validator().judge(
        respond("www.example.test.", "A", lab.signed_a())).status is Status.SECURE
    data, sigs = lab.signed_a()
    assert lab.validator().judge(
        respond("www.example.test.", "A", [data, flip_signature(sigs, 10)])
    ).status is Status.BOGUS


@pytest.mark.parametrize("digest", [1, 2, 4])
def test_each_ds_digest_type(digest: int) -> None:
    lab = Lab(leaf_digest=digest)
    verdict = lab.validator().judge(respond("www.example.test.", "A", lab.signed_a()))
    assert verdict.status is Status.SECURE


def test_sha1_only_ds_is_insecure_under_rfc9904() -> None:
    lab = Lab(leaf_digest=1)
    verdict = lab.validator(policy=RFC9904).judge(
        respond("www.example.test.", "A", lab.signed_a()))
    assert verdict.status is Status.INSECURE
    assert C.UNSUPPORTED_DS_DIGEST in verdict.codes


def test_unsupported_algorithm_only_is_insecure_and_ad_flagged() -> None:
    lab = Lab(leaf=Zone(name("example.test."), 5))
    answer = respond("www.example.test.", "A", lab.signed_a(), ad=True)
    strict = lab.validator(policy=RFC9904).judge(answer)
    assert strict.status is Status.INSECURE
    assert C.UNSUPPORTED_DNSKEY_ALGORITHM in strict.codes
    assert C.AD_ON_INSECURE in strict.codes
    assert lab.validator().judge(answer).status is Status.SECURE


def test_crypto_is_memoised(lab: Lab) -> None:
    validator = lab.validator()
    answer = respond("www.example.test.", "A", lab.signed_a())
    validator.judge(answer)
    calls = validator.checker.crypto_calls
    for _ in range(50):
        validator.judge(answer)
    assert validator.checker.crypto_calls == calls
    assert validator.checker.memo_hits >= 50


def test_rollover_copies_any_valid_one_counts(lab: Lab) -> None:
    forged = Zone(name("example.test."), 13, slot=9)
    fake_keys = forged.dnskey_rrset()
    material = lab.material([respond("example.test.", "DNSKEY",
                                     [fake_keys, forged.sign(fake_keys)], sport=42000)])
    verdict = lab.validator(material=material).judge(
        respond("www.example.test.", "A", lab.signed_a()))
    assert verdict.status is Status.SECURE
    forged_answer = [rrset("www.example.test.", "A", "192.0.2.66")]
    forged_answer.append(forged.sign(forged_answer[0]))
    verdict = lab.validator(material=material).judge(
        respond("www.example.test.", "A", forged_answer))
    assert verdict.status is Status.BOGUS


def test_no_trust_anchor_is_indeterminate(lab: Lab) -> None:
    validator = Validator(KeyView(TrustAnchors(), lab.material()), RFC8624)
    verdict = validator.judge(respond("www.example.test.", "A", lab.signed_a()))
    assert verdict.status is Status.INDETERMINATE
    assert C.NO_TRUST_ANCHOR in verdict.codes


def _anchored_leaf_validator(lab: Lab, material: KeyMaterial) -> Validator:
    from auditor.trust import TrustAnchor

    anchor = TrustAnchor(lab.leaf.origin, None, lab.leaf.ksk, "test")
    return Validator(KeyView(TrustAnchors([anchor]), material), RFC8624)


def test_revoked_anchor_key_no_longer_validates() -> None:
    lab = Lab(leaf=Zone(name("example.test."), 13, slot=11))
    leaf = lab.leaf
    material = KeyMaterial()
    material.observe(lab.dnskey_response(leaf))
    answer = respond("www.example.test.", "A", lab.signed_a())
    assert _anchored_leaf_validator(lab, material).judge(answer).status is Status.SECURE
    # RFC 5011: the KSK re-published with REVOKE and self-signed by the revoked key.
    revoked = cast(DNSKEY, leaf.ksk.replace(flags=leaf.ksk.flags | 0x0080))
    keys = dns.rrset.from_rdata_list(leaf.origin, 3600, [revoked, leaf.zsk])
    rrsig = dns.dnssec.sign(keys, leaf.ksk_private, leaf.origin, revoked,
                            inception=WHEN - 100, expiration=WHEN + 86_400)
    sigs = dns.rrset.from_rdata_list(leaf.origin, 3600, [rrsig])
    material.observe(respond("example.test.", "DNSKEY", [keys, sigs], sport=44000))
    verdict = _anchored_leaf_validator(lab, material).judge(answer)
    assert verdict.status is Status.BOGUS
    assert C.KEY_REVOKED in verdict.codes
    updates = _anchored_leaf_validator(lab, material).cache_updates()
    assert any(u.state == "revoked" and u.dnskey == revoked for u in updates)


def test_zone_key_signature_before_its_dnskey_rrset_is_indeterminate() -> None:
    # Live capture started after the resolver fetched the DNSKEY RRset: only the KSK anchor is
    # known and the answer is signed by the ZSK. Unknown, not bogus (RFC 4035 5.3.1).
    lab = Lab(leaf=Zone(name("example.test."), 13, slot=12))
    answer = respond("www.example.test.", "A", lab.signed_a())
    verdict = _anchored_leaf_validator(lab, KeyMaterial()).judge(answer)
    assert verdict.status is Status.INDETERMINATE
    assert C.DNSKEY_MISSING in verdict.codes
    tag = dns.dnssec.key_id(lab.leaf.zsk)
    assert f"DNSKEY RRset of example.test. (key tag {tag}) not seen" in verdict.missing


def test_zone_key_absent_from_the_seen_dnskey_rrset_is_bogus() -> None:
    # The negative twin: the zone's DNSKEY RRset was seen (signed by the anchor) and has no
    # key with the signature's tag, so the signature cannot be the zone's.
    lab = Lab(leaf=Zone(name("example.test."), 13, slot=12))
    leaf = lab.leaf
    keys = dns.rrset.from_rdata_list(leaf.origin, 3600, [leaf.ksk])
    material = KeyMaterial()
    material.observe(respond("example.test.", "DNSKEY", [keys, leaf.sign(keys)]))
    answer = respond("www.example.test.", "A", lab.signed_a())
    verdict = _anchored_leaf_validator(lab, material).judge(answer)
    assert verdict.status is Status.BOGUS
    assert C.DNSKEY_MISSING in verdict.codes


def test_policy_presets_by_name() -> None:
    from auditor.errors import ConfigError
    from auditor.validate import policy_from_name

    assert policy_from_name("rfc8624") is RFC8624
    assert policy_from_name("RFC9904") is RFC9904
    assert policy_from_name("permissive", clock_skew_s=60).clock_skew_s == 60
    with pytest.raises(ConfigError):
        policy_from_name("nope")
    assert {c.ede for c in C if c.ede is not None} == {1, 2, 5, 6, 7, 8, 9, 10, 11, 12, 27}


@settings(max_examples=150, deadline=None)
@given(st.binary(min_size=12, max_size=300))
def test_random_wire_responses_never_crash_observe_or_judge(data: bytes) -> None:
    from auditor.evidence import build_evidence
    from auditor.ledger import Ledger
    from auditor.messages import MessageParser
    from auditor.transactions import Transaction
    from tests.helpers import wire_message

    wire = bytes([data[0], data[1], data[2] | 0x80]) + data[3:]  # force QR=1
    observed = MessageParser(Ledger()).feed(wire_message(wire))
    if observed is None:
        return
    evidence = build_evidence(Transaction(observed, None, 0))
    lab = _FUZZ_LAB
    material = lab.material()
    material.observe(evidence)
    verdict = lab.validator(material=material).judge(evidence)
    assert verdict.status in set(Status)


_FUZZ_LAB = Lab()


def test_truncated_empty_response_is_not_a_denial(lab: Lab) -> None:
    truncated = lab.validator().judge(respond("example.test.", "DNSKEY", tc=True))
    assert truncated.status is Status.INDETERMINATE
    assert C.TRUNCATED in truncated.codes
    assert C.NSEC_MISSING not in truncated.codes
    # Its twin without TC is an empty NOERROR with DO and no proof: bogus.
    empty = lab.validator().judge(respond("example.test.", "DNSKEY"))
    assert empty.status is Status.BOGUS
