"""Weak RSA keys and algorithms outside the policy (issue 12, class 5), each verdict as Unbound
1.17 and BIND 9.18 gave it on the same zone shapes built by hand and served by named:

| leaf zone                                    | Unbound / BIND          | auditor (rfc8624) |
|----------------------------------------------|-------------------------|-------------------|
| RSASHA256, 512-bit keys                      | AD                      | secure            |
| same, one signature byte flipped             | SERVFAIL                | bogus             |
| RSASHA256, 1024-bit keys (+ flipped)         | AD (SERVFAIL)           | secure (bogus)    |
| DSA (3) or DSA-NSEC3-SHA1 (6), DS names it   | no AD (also if flipped) | insecure          |
| DS names RSASHA256 and DSA, A signed by DSA  | SERVFAIL                | bogus             |

Every test judges at the pinned WHEN of tests/validate/signing.py."""

from __future__ import annotations

import dns.dnssec
import dns.rdatatype
import dns.rrset
import pytest

from auditor.findings import ValidationCode as C
from auditor.trust import KeyMaterial
from auditor.validate import PERMISSIVE, RFC8624, Status
from auditor.validate.signature import rsa_modulus_bits
from tests.validate.signing import (
    EXPIRATION,
    INCEPTION,
    Lab,
    Zone,
    flip_signature,
    name,
    private_key,
    respond,
    rrset,
)

LEAF = "example.test."


def weak_lab(bits: int) -> Lab:
    return Lab(leaf=Zone(name(LEAF), 8, rsa_bits=bits))


@pytest.mark.parametrize("bits", [512, 1024])
def test_short_rsa_keys_validate_like_unbound(bits: int) -> None:
    lab = weak_lab(bits)
    assert rsa_modulus_bits(lab.leaf.ksk) == bits
    verdict = lab.validator().judge(respond("www.example.test.", "A", lab.signed_a()))
    assert verdict.status is Status.SECURE, verdict
    assert C.UNSUPPORTED_DNSKEY_ALGORITHM not in verdict.codes


@pytest.mark.parametrize("bits", [512, 1024])
def test_short_rsa_key_with_a_flipped_signature_is_bogus(bits: int) -> None:
    lab = weak_lab(bits)
    data, sigs = lab.signed_a()
    verdict = lab.validator().judge(respond("www.example.test.", "A",
                                            [data, flip_signature(sigs)]))
    assert verdict.status is Status.BOGUS
    assert C.BAD_SIGNATURE in verdict.codes


def test_short_rsa_key_chain_is_secure() -> None:
    # The 512-bit KSK signs the DNSKEY RRset the parent's DS names: the chain holds.
    lab = weak_lab(512)
    trust = lab.validator().zone_trust(name(LEAF))
    assert trust.status is Status.SECURE, trust


@pytest.mark.parametrize("algorithm", [3, 6])
def test_dsa_zone_is_insecure_not_indeterminate(algorithm: int) -> None:
    # RFC 8624 3.1: DSA MUST NOT be validated; a DS RRset naming only it makes the zone
    # insecure (RFC 4035 5.2, RFC 6840 5.2), whatever its signatures hold.
    lab = Lab(leaf=Zone(name(LEAF), algorithm))
    answer = respond("www.example.test.", "A", lab.signed_a())
    verdict = lab.validator().judge(answer)
    assert verdict.status is Status.INSECURE, verdict
    assert C.UNSUPPORTED_DNSKEY_ALGORITHM in verdict.codes
    data, sigs = lab.signed_a()
    flipped = lab.validator().judge(respond("www.example.test.", "A",
                                            [data, flip_signature(sigs)]))
    assert flipped.status is Status.INSECURE  # never checked, as Unbound does not


@pytest.mark.parametrize("algorithm", [3, 6])
def test_dsa_zone_is_insecure_without_its_dnskey_rrset(algorithm: int) -> None:
    # Unbound does not even fetch the DNSKEY RRset of a zone whose DS names only DSA.
    lab = Lab(leaf=Zone(name(LEAF), algorithm))
    material = KeyMaterial()
    for evidence in (lab.dnskey_response(lab.root), lab.dnskey_response(lab.tld),
                     lab.ds_response(lab.tld, lab.root), lab.ds_response(lab.leaf, lab.tld)):
        material.observe(evidence)
    verdict = lab.validator(material=material).judge(
        respond("www.example.test.", "A", lab.signed_a()))
    assert verdict.status is Status.INSECURE, verdict


def test_dsa_validates_under_the_permissive_preset() -> None:
    # The negative twin of the DSA tests: the crypto works, only the policy excludes it.
    lab = Lab(leaf=Zone(name(LEAF), 3))
    assert lab.validator(policy=PERMISSIVE).judge(
        respond("www.example.test.", "A", lab.signed_a())).status is Status.SECURE
    data, sigs = lab.signed_a()
    assert lab.validator(policy=PERMISSIVE).judge(
        respond("www.example.test.", "A", [data, flip_signature(sigs)])).status is Status.BOGUS


def test_rsasha256_zone_is_secure_where_dsa_is_insecure() -> None:
    lab = Lab(leaf=Zone(name(LEAF), 8))
    assert lab.validator().judge(
        respond("www.example.test.", "A", lab.signed_a())).status is Status.SECURE


def _mixed_lab() -> tuple[Lab, dns.rrset.RRset]:
    """A leaf signed with RSASHA256 whose DNSKEY RRset also holds a DSA KSK, and whose DS
    RRset names both; returns the lab and the DS RRset."""
    dsa_private = private_key(3, 40)
    dsa_key = dns.dnssec.make_dnskey(dsa_private.public_key(), 3, flags=257)
    leaf = Zone(name(LEAF), 8, extra_keys=[dsa_key], rsa_bits=1024)
    lab = Lab(leaf=leaf)
    ds = leaf.ds()
    ds.add(dns.dnssec.make_ds(leaf.origin, dsa_key, 2, policy=dns.dnssec.allow_all_policy))
    return lab, ds


def _mixed_material(lab: Lab, ds: dns.rrset.RRset) -> KeyMaterial:
    material = KeyMaterial()
    for evidence in lab.key_responses(with_leaf_ds=False):
        material.observe(evidence)
    material.observe(respond(LEAF, "DS", [ds, lab.tld.sign(ds)]))
    return material


def test_signature_by_an_unsupported_algorithm_alone_does_not_downgrade() -> None:
    # The DS names RSASHA256 too, so the zone must validate with it: an A RRset signed only
    # by the DSA key has no signature the policy can check. Unbound and BIND: SERVFAIL.
    lab, ds = _mixed_lab()
    dsa_key = lab.leaf.extra_keys[0]
    data = rrset("www.example.test.", "A", "192.0.2.1")
    rrsig = dns.dnssec.sign(data, private_key(3, 40), lab.leaf.origin, dsa_key,
                            inception=INCEPTION, expiration=EXPIRATION,
                            policy=dns.dnssec.allow_all_policy)
    sigs = dns.rrset.RRset(data.name, data.rdclass, dns.rdatatype.RRSIG, data.rdtype)
    sigs.update_ttl(data.ttl)
    sigs.add(rrsig)
    validator = lab.validator(material=_mixed_material(lab, ds))
    assert validator.zone_trust(lab.leaf.origin).status is Status.SECURE
    verdict = validator.judge(respond("www.example.test.", "A", [data, sigs]))
    assert verdict.status is Status.BOGUS, verdict
    assert C.UNSUPPORTED_DNSKEY_ALGORITHM in verdict.codes
    assert C.DNSSEC_BOGUS in verdict.codes


def test_mixed_zone_answer_signed_with_the_supported_algorithm_is_secure() -> None:
    lab, ds = _mixed_lab()
    validator = lab.validator(material=_mixed_material(lab, ds))
    verdict = validator.judge(respond("www.example.test.", "A", lab.signed_a()))
    assert verdict.status is Status.SECURE, verdict


def test_policy_has_no_key_size_gate() -> None:
    assert not hasattr(RFC8624, "min_rsa_bits")
