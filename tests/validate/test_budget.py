"""The validation budget (KeyTrap CVE-2023-50387, NSEC3 CVE-2023-50868) and the downgrades of
issue 13: small versions of the attacks, each with its legitimate negative twin."""

from __future__ import annotations

import base64
import dataclasses
import random

import dns.dnssec
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rdtypes.ANY.DNSKEY
import dns.rdtypes.ANY.RRSIG
import dns.rrset
import pytest

from auditor.findings.codes import ValidationCode as C
from auditor.findings.validation import ValidationFindings
from auditor.trust import KeyMaterial
from auditor.validate import RFC8624, Status
from auditor.validate.budget import WorkBudget, ZoneRate
from auditor.validate.policy import PERMISSIVE, BudgetLimits
from auditor.validate.validator import Validator
from tests.validate.denial_builders import ZONE, DenialLab, Nsec3Chain
from tests.validate.signing import (
    EXPIRATION,
    INCEPTION,
    NS,
    WHEN,
    Lab,
    Zone,
    name,
    respond,
    rrset,
)

DNSKEY = dns.rdtypes.ANY.DNSKEY.DNSKEY


def colliding_key(tag: int, algorithm: int, flags: int, rng: random.Random) -> DNSKEY:
    """A DNSKEY with random key bytes whose last two octets make its key tag ``tag``
    (RFC 4034 Appendix B: the tag is a ones-complement-like sum of 16-bit words)."""
    while True:
        body = bytes(rng.randrange(256) for _ in range(30))
        base = DNSKEY(dns.rdataclass.IN, dns.rdatatype.DNSKEY, flags, 3, algorithm,
                      body + b"\x00\x00")
        partial = dns.dnssec.key_id(base)
        word = (tag - partial) % 65536
        key = DNSKEY(dns.rdataclass.IN, dns.rdatatype.DNSKEY, flags, 3, algorithm,
                     body + word.to_bytes(2, "big"))
        if dns.dnssec.key_id(key) == tag:
            return key


def fake_rrsigs(data: dns.rrset.RRset, zone: Zone, count: int, rng: random.Random,
                tag: int | None = None) -> list[dns.rdtypes.ANY.RRSIG.RRSIG]:
    """``count`` RRSIGs over ``data`` naming the zone's ZSK (or ``tag``), none valid."""
    return [dns.rdtypes.ANY.RRSIG.RRSIG(
        dns.rdataclass.IN, dns.rdatatype.RRSIG, data.rdtype, zone.algorithm,
        len(data.name) - 1, data.ttl, EXPIRATION, INCEPTION,
        dns.dnssec.key_id(zone.zsk) if tag is None else tag, zone.origin,
        bytes(rng.randrange(256) for _ in range(64))) for _ in range(count)]


def sigset(data: dns.rrset.RRset, rrsigs: list[dns.rdtypes.ANY.RRSIG.RRSIG]) -> dns.rrset.RRset:
    out = dns.rrset.RRset(data.name, data.rdclass, dns.rdatatype.RRSIG, data.rdtype)
    out.update_ttl(data.ttl)
    for rrsig in rrsigs:
        out.add(rrsig)
    return out


def keytrap_lab(collisions: int) -> Lab:
    """Lab whose leaf (Ed25519) publishes ``collisions`` extra keys sharing the ZSK's tag."""
    lab = Lab(leaf=Zone(name("example.test."), 15))
    rng = random.Random(collisions)
    tag = dns.dnssec.key_id(lab.leaf.zsk)
    lab.leaf.extra_keys = [colliding_key(tag, 15, 256, rng) for _ in range(collisions)]
    return lab


# --- KeyTrap: colliding key tags x many signatures -------------------------------------------


def test_keytrap_colliding_keys_and_signatures_are_bogus_within_budget() -> None:
    lab = keytrap_lab(collisions=20)
    validator = lab.validator()
    assert validator.zone_trust(lab.leaf.origin).status is Status.SECURE
    data = rrset("www.example.test.", "A", "192.0.2.1")
    rrsigs = fake_rrsigs(data, lab.leaf, 20, random.Random(1))
    before = validator.checker.crypto_calls
    verdict = validator.judge(respond("www.example.test.", "A", [data, sigset(data, rrsigs)]))
    assert verdict.status is Status.BOGUS
    assert C.VALIDATION_BUDGET_EXCEEDED in verdict.codes
    assert C.DNSSEC_BOGUS in verdict.codes
    # 20 x 21 candidate pairs, but at most 4 keys per signature and 8 failures per RRset.
    assert validator.checker.crypto_calls - before <= RFC8624.budget.failures_per_rrset


def test_rrsigs_naming_absent_tags_cost_no_crypto() -> None:
    # A KeyTrap variant: hundreds of keys, hundreds of RRSIGs naming a tag no key has.
    lab = keytrap_lab(collisions=20)
    validator = lab.validator()
    validator.zone_trust(lab.leaf.origin)
    data = rrset("www.example.test.", "A", "192.0.2.1")
    rrsigs = fake_rrsigs(data, lab.leaf, 40, random.Random(9), tag=1)
    before = validator.checker.crypto_calls
    verdict = validator.judge(respond("www.example.test.", "A", [data, sigset(data, rrsigs)]))
    assert verdict.status is Status.BOGUS
    assert C.DNSKEY_MISSING in verdict.codes
    assert validator.checker.crypto_calls == before


def test_two_keys_sharing_a_tag_still_validate() -> None:
    # Negative twin: a legitimate collision (two keys, one tag) is tried in full.
    lab = keytrap_lab(collisions=1)
    validator = lab.validator()
    data, valid = lab.signed_a()
    rrsigs = [*fake_rrsigs(data, lab.leaf, 1, random.Random(2)), *valid]
    verdict = validator.judge(respond("www.example.test.", "A", [data, sigset(data, rrsigs)]))
    assert verdict.status is Status.SECURE, verdict
    assert C.VALIDATION_BUDGET_EXCEEDED not in verdict.codes


def test_many_bad_signatures_on_one_rrset_stop_after_the_rrset_limit() -> None:
    lab = Lab(leaf=Zone(name("example.test."), 15))
    validator = lab.validator()
    data = rrset("www.example.test.", "A", "192.0.2.1")
    rrsigs = fake_rrsigs(data, lab.leaf, 12, random.Random(3))
    validator.zone_trust(lab.leaf.origin)  # the chain's own checks, made once
    before = validator.checker.crypto_calls
    verdict = validator.judge(respond("www.example.test.", "A", [data, sigset(data, rrsigs)]))
    assert verdict.status is Status.BOGUS
    assert C.VALIDATION_BUDGET_EXCEEDED in verdict.codes
    assert validator.checker.crypto_calls - before == RFC8624.budget.failures_per_rrset


def test_a_few_bad_signatures_before_a_valid_one_still_validate() -> None:
    # Negative twin: a rollover or a stale signature or two are normal.
    lab = Lab(leaf=Zone(name("example.test."), 15))
    validator = lab.validator()
    data, valid = lab.signed_a()
    rrsigs = [*fake_rrsigs(data, lab.leaf, 3, random.Random(4)), *valid]
    verdict = validator.judge(respond("www.example.test.", "A", [data, sigset(data, rrsigs)]))
    assert verdict.status is Status.SECURE, verdict


def test_failures_spread_over_rrsets_hit_the_response_limit() -> None:
    lab = Lab(leaf=Zone(name("example.test."), 15))
    validator = lab.validator()
    rng = random.Random(5)
    records: list[dns.rrset.RRset] = []
    for index in range(4):
        data = rrset(f"h{index}.example.test.", "A", "192.0.2.1")
        records += [data, sigset(data, fake_rrsigs(data, lab.leaf, 6, rng))]
    verdict = validator.judge(respond("h0.example.test.", "A", records[:2],
                                      additional=records[2:]))
    assert verdict.status is Status.BOGUS
    assert C.VALIDATION_BUDGET_EXCEEDED in verdict.codes
    assert any("16 failed signature checks" in text for text in verdict.detail)


def test_budget_is_per_response_not_per_run() -> None:
    lab = Lab(leaf=Zone(name("example.test."), 15))
    validator = lab.validator()
    data = rrset("www.example.test.", "A", "192.0.2.1")
    attack = respond("www.example.test.", "A",
                     [data, sigset(data, fake_rrsigs(data, lab.leaf, 40, random.Random(6)))])
    assert validator.judge(attack).status is Status.BOGUS
    legit = respond("ok.example.test.", "A", lab.signed_a("ok.example.test."))
    assert validator.judge(legit).status is Status.SECURE


def _trapped_leaf_trust(decoys: int) -> Status:
    """Trust in the leaf whose only DNSKEY RRset lists ``decoys`` keys sharing the KSK's tag
    (and flags) before the KSK itself."""
    lab = Lab(leaf=Zone(name("example.test."), 15))
    rng = random.Random(decoys)
    ksk_tag = dns.dnssec.key_id(lab.leaf.ksk)
    keys = dns.rrset.RRset(lab.leaf.origin, dns.rdataclass.IN, dns.rdatatype.DNSKEY)
    keys.update_ttl(3600)
    for key in (*(colliding_key(ksk_tag, 15, 257, rng) for _ in range(decoys)),
                lab.leaf.ksk, lab.leaf.zsk):
        keys.add(key)
    material = KeyMaterial()
    for evidence in (lab.dnskey_response(lab.root), lab.dnskey_response(lab.tld),
                     lab.ds_response(lab.tld, lab.root), lab.ds_response(lab.leaf, lab.tld),
                     respond("example.test.", "DNSKEY", [keys, lab.leaf.sign(keys)])):
        material.observe(evidence)
    trust = lab.validator(material=material).zone_trust(lab.leaf.origin)
    if trust.status is Status.BOGUS:
        assert C.VALIDATION_BUDGET_EXCEEDED in trust.codes
    return trust.status


@pytest.fixture
def wire_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """Render records in the order given (dnspython shuffles them by default)."""
    monkeypatch.setattr(dns.rdataset.random, "shuffle", lambda items: None)  # type: ignore[attr-defined]


@pytest.mark.usefixtures("wire_order")
def test_ds_matching_stops_after_four_colliding_keys() -> None:
    assert _trapped_leaf_trust(decoys=8) is Status.BOGUS


@pytest.mark.usefixtures("wire_order")
def test_ds_matching_with_two_colliding_keys_still_validates() -> None:
    assert _trapped_leaf_trust(decoys=2) is Status.SECURE


# --- NSEC3 hashing (CVE-2023-50868) ------------------------------------------------------------


def _nsec3_flood(zone: Zone, params: int, iterations: int) -> list[dns.rrset.RRset]:
    """One NSEC3 RRset holding ``params`` records with distinct salts, validly signed."""
    rng = random.Random(params)
    owner = base64.b32hexencode(bytes(20)).decode().lower() + "." + ZONE
    texts = [f"1 0 {iterations} {rng.randbytes(8).hex()} "
             f"{base64.b32hexencode(rng.randbytes(20)).decode()} A RRSIG"
             for _ in range(params)]
    records = rrset(owner, "NSEC3", *texts)
    return [records, zone.sign(records)]


def test_nsec3_hash_flood_is_bogus_within_budget() -> None:
    env = DenialLab()
    deep = ".".join(f"l{i}" for i in range(30)) + "." + ZONE
    response = env.nxdomain(deep, _nsec3_flood(env.zone, params=60, iterations=50))
    validator = env.lab.validator()
    verdict = validator.judge(response)
    assert verdict.status is Status.BOGUS
    assert C.VALIDATION_BUDGET_EXCEEDED in verdict.codes
    assert validator.denial.digest.cache_info().misses <= RFC8624.budget.nsec3_hashes


def test_nsec3_proof_within_the_budget_still_validates() -> None:
    # Negative twin: a real chain at the policy's iteration limit, a name 8 labels deep.
    env = DenialLab()
    chain = Nsec3Chain(env.zone, salt="aabbccdd", iterations=RFC8624.max_nsec3_iterations)
    deep = ".".join(f"x{i}" for i in range(8)) + ".a.example.test."
    proof = [*chain.match("a.example.test."), *chain.cover(deep.split(".", 7)[-1]),
             *chain.cover("*.a.example.test.")]
    verdict = env.judge(env.nxdomain(deep, proof))
    assert verdict.status is Status.SECURE, verdict
    assert C.VALIDATION_BUDGET_EXCEEDED not in verdict.codes


def test_nsec3_rounds_limit_a_deep_name_at_2500_iterations() -> None:
    env = DenialLab()
    chain = Nsec3Chain(env.zone, iterations=2500)
    deep = ".".join(f"x{i}" for i in range(8)) + ".a.example.test."
    proof = [*chain.match("a.example.test."), *chain.cover(deep.split(".", 7)[-1]),
             *chain.cover("*.a.example.test.")]
    verdict = env.judge(env.nxdomain(deep, proof), policy=PERMISSIVE)
    assert verdict.status is Status.BOGUS
    assert C.VALIDATION_BUDGET_EXCEEDED in verdict.codes


def test_nsec3_at_2500_iterations_with_a_shallow_name_validates_when_permitted() -> None:
    env = DenialLab()
    chain = Nsec3Chain(env.zone, iterations=2500)
    proof = [*chain.match("example.test."), *chain.cover("nope.example.test."),
             *chain.cover("*.example.test.")]
    verdict = env.judge(env.nxdomain("nope.example.test.", proof), policy=PERMISSIVE)
    assert verdict.status is Status.SECURE, verdict


def test_iterations_above_the_policy_are_insecure_before_any_hashing() -> None:
    env = DenialLab()
    deep = ".".join(f"m{i}" for i in range(30)) + "." + ZONE
    response = env.nxdomain(deep, _nsec3_flood(env.zone, params=60, iterations=151))
    validator = env.lab.validator()
    verdict = validator.judge(response)
    after = validator.denial.digest.cache_info()
    assert verdict.status is Status.INSECURE
    assert C.NSEC3_ITERATIONS_TOO_HIGH in verdict.codes
    assert (after.hits, after.misses) == (0, 0)


def test_hash_charges_are_per_distinct_name_and_parameters() -> None:
    budget = WorkBudget(BudgetLimits(nsec3_hashes=2))
    budget.charge_hash(name("a.test."), b"", 0)
    budget.charge_hash(name("a.test."), b"", 0)
    budget.charge_hash(name("b.test."), b"", 0)
    assert budget.hashes == 2 and budget.exhausted is None
    with pytest.raises(Exception, match="2 NSEC3 hashes"):
        budget.charge_hash(name("c.test."), b"", 0)


# --- downgrades ---------------------------------------------------------------------------------


def test_unknown_algorithm_253_signature_in_an_ed25519_zone_is_bogus() -> None:
    # RFC 4035 5.2 / RFC 6840 5.2: insecure only when the DS RRset names no supported
    # algorithm; this zone's DS and keys are Ed25519, so a lone algorithm-253 RRSIG is a
    # stripped-and-replaced signature.
    lab = Lab(leaf=Zone(name("example.test."), 15))
    validator = lab.validator()
    data, valid = lab.signed_a()
    forged = sigset(data, [valid[0].replace(algorithm=253)])
    verdict = validator.judge(respond("www.example.test.", "A", [data, forged]))
    assert verdict.status is Status.BOGUS, verdict
    # Negative twin: the genuine Ed25519 signature validates.
    assert validator.judge(respond("www.example.test.", "A", [data, valid])).status is (
        Status.SECURE)


def test_signed_nsec3_with_a_255_octet_next_hash_does_not_make_nxdomain_insecure() -> None:
    env = DenialLab()
    chain = Nsec3Chain(env.zone)
    owner_hash = chain.digest("example.test.")
    records = chain.record_for_hash(owner_hash, "NS SOA RRSIG DNSKEY NSEC3PARAM",
                                    next_hash=bytes(range(255)))
    verdict = env.judge(env.nxdomain("nope.example.test.", records))
    assert verdict.status is Status.BOGUS, verdict
    assert C.NSEC3_MALFORMED in verdict.codes
    # Negative twin: the well-formed proof validates.
    proof = [*chain.match("example.test."), *chain.cover("nope.example.test."),
             *chain.cover("*.example.test.")]
    assert env.judge(env.nxdomain("nope.example.test.", proof)).status is Status.SECURE


# --- findings and the live per-zone rate ----------------------------------------------------------


def test_budget_finding_names_zone_server_and_frames_and_is_suspicious() -> None:
    lab = keytrap_lab(collisions=20)
    validator = lab.validator()
    data = rrset("www.example.test.", "A", "192.0.2.1")
    response = respond("www.example.test.", "A",
                       [data, sigset(data, fake_rrsigs(data, lab.leaf, 20, random.Random(8)))])
    findings = ValidationFindings()
    findings.feed(response, validator.judge(response))
    [found] = [f for f in findings.flush() if f.code == "validation_budget_exceeded"]
    assert found.verdict == "suspicious"
    assert found.params["zone"] == "example.test."
    assert found.params["server"] == response.transaction.response.wire.src
    assert found.provenance.frames == tuple(response.transaction.response.wire.frames)
    assert "share key tag" in str(found.params["limits"])


def test_live_zone_rate_stops_validation_for_the_rest_of_the_second() -> None:
    lab = Lab(leaf=Zone(name("example.test."), 15))
    limits = dataclasses.replace(RFC8624.budget, zone_checks_per_second=2)
    policy = dataclasses.replace(RFC8624, budget=limits)
    base = lab.validator(policy=policy)
    validator = Validator(base.keys, policy, zone_rate=ZoneRate(limits))
    verdicts = [validator.judge(respond(f"n{i}.example.test.", "A",
                                        lab.signed_a(f"n{i}.example.test.")))
                for i in range(4)]
    statuses = [v.status for v in verdicts]
    assert statuses[:2] == [Status.SECURE, Status.SECURE]
    assert statuses[2:] == [Status.BOGUS, Status.BOGUS]
    assert C.VALIDATION_BUDGET_EXCEEDED in verdicts[3].codes
    later = respond("n9.example.test.", "A", lab.signed_a("n9.example.test."), ts=WHEN + 1)
    assert validator.judge(later).status is Status.SECURE
    assert validator.zone_rate is not None and validator.zone_rate.refused == 2
    assert NS  # pinned times: every response at WHEN unless told
