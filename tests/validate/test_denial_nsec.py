"""NSEC proofs through the validator (RFC 4035 5.4, 3.1.3; RFC 4592; RFC 6840 4.1/4.4): each
proof shape with its negative twin (dropped record, one bitmap bit, foreign zone, broken
signature) that must turn the verdict bogus."""

from __future__ import annotations

import dns.rcode
import dns.rrset
import pytest

from auditor.findings import ValidationCode as C
from auditor.trust import KeyMaterial
from auditor.validate import Status
from tests.validate.denial_builders import DenialLab, NsecChain, soa
from tests.validate.signing import Zone, flip_signature, name, respond, rrset


@pytest.fixture(scope="module")
def env() -> DenialLab:
    return DenialLab()


@pytest.fixture(scope="module")
def chain(env: DenialLab) -> NsecChain:
    return NsecChain(env.zone)


# --- NXDOMAIN ---------------------------------------------------------------------------------

def test_nxdomain_with_cover_and_wildcard_cover_is_secure(env: DenialLab, chain: NsecChain) -> None:
    # b.example.test. sorts between a. and b.c.; *.example.test. between the apex and a.
    proof = [*chain.record("a.example.test."), *chain.record("example.test.")]
    verdict = env.judge(env.nxdomain("b.example.test.", proof))
    assert verdict.status is Status.SECURE, verdict
    assert verdict.zone == "example.test."


def test_nxdomain_without_wildcard_cover_is_bogus(env: DenialLab, chain: NsecChain) -> None:
    verdict = env.judge(env.nxdomain("b.example.test.", chain.record("a.example.test.")))
    assert verdict.status is Status.BOGUS
    assert C.DENIAL_WILDCARD_NOT_EXCLUDED in verdict.codes


def test_nxdomain_without_covering_record_is_bogus(env: DenialLab, chain: NsecChain) -> None:
    verdict = env.judge(env.nxdomain("b.example.test.", chain.record("example.test.")))
    assert verdict.status is Status.BOGUS
    assert C.DENIAL_NO_COVER in verdict.codes


def test_nxdomain_with_wildcard_proof_from_another_zone_is_bogus(
    env: DenialLab, chain: NsecChain
) -> None:
    foreign = NsecChain(env.lab.tld).record("example.test.")
    verdict = env.judge(env.nxdomain("b.example.test.",
                                     [*chain.record("a.example.test."), *foreign]))
    assert verdict.status is Status.BOGUS
    assert C.DENIAL_WRONG_ZONE in verdict.codes


def test_nxdomain_with_broken_nsec_signature_is_bogus(env: DenialLab, chain: NsecChain) -> None:
    nsec, sig = chain.record("a.example.test.")
    proof = [nsec, flip_signature(sig), *chain.record("example.test.")]
    verdict = env.judge(env.nxdomain("b.example.test.", proof))
    assert verdict.status is Status.BOGUS
    assert C.BAD_SIGNATURE in verdict.codes


def test_nxdomain_for_an_empty_non_terminal_is_bogus(env: DenialLab, chain: NsecChain) -> None:
    # c.example.test. exists as the parent of b.c.example.test.
    proof = [*chain.record("a.example.test."), *chain.record("example.test.")]
    verdict = env.judge(env.nxdomain("c.example.test.", proof))
    assert verdict.status is Status.BOGUS
    assert C.DENIAL_NAME_EXISTS in verdict.codes


def test_nsec_at_delegation_cannot_deny_names_below_it(env: DenialLab, chain: NsecChain) -> None:
    # RFC 6840 4.1: the parent-side NSEC at d. "covers" x.d. canonically but proves nothing.
    proof = [*chain.record("d.example.test."), *chain.record("example.test.")]
    verdict = env.judge(env.nxdomain("x.d.example.test.", proof))
    assert verdict.status is Status.BOGUS
    assert C.DENIAL_PARENT_SIDE in verdict.codes


def test_signed_zone_negative_answer_without_nsec_is_bogus(env: DenialLab) -> None:
    verdict = env.judge(env.nxdomain("b.example.test.", []))
    assert verdict.status is Status.BOGUS
    assert C.NSEC_MISSING in verdict.codes
    without_do = env.judge(env.nxdomain("b.example.test.", [], query_do=False))
    assert without_do.status is Status.INDETERMINATE
    assert C.DENIAL_NOT_CHECKED in without_do.codes


def test_negative_answer_without_zone_keys_is_indeterminate(chain: NsecChain) -> None:
    bare = DenialLab()
    validator = bare.lab.validator(material=_material_without_leaf_keys(bare))
    proof = [*chain.record("a.example.test."), *chain.record("example.test.")]
    verdict = validator.judge(bare.nxdomain("b.example.test.", proof))
    assert verdict.status is Status.INDETERMINATE
    assert verdict.missing


def _material_without_leaf_keys(env: DenialLab) -> KeyMaterial:
    material = KeyMaterial()
    for evidence in env.lab.key_responses():
        if str(evidence.qname) != "example.test." or evidence.qtype != 48:
            material.observe(evidence)
    return material


# --- NODATA -----------------------------------------------------------------------------------

def test_nodata_matching_nsec_without_type_is_secure(env: DenialLab, chain: NsecChain) -> None:
    verdict = env.judge(env.nodata("a.example.test.", "MX", chain.record("a.example.test.")))
    assert verdict.status is Status.SECURE


@pytest.mark.parametrize("bitmap", ["A MX RRSIG NSEC", "A CNAME RRSIG NSEC"])
def test_nodata_bitmap_showing_the_type_or_cname_is_bogus(
    env: DenialLab, chain: NsecChain, bitmap: str
) -> None:
    proof = chain.record("a.example.test.", bitmap)
    verdict = env.judge(env.nodata("a.example.test.", "MX", proof))
    assert verdict.status is Status.BOGUS
    assert C.DENIAL_BITMAP_HAS_TYPE in verdict.codes


def test_nodata_empty_non_terminal_is_secure(env: DenialLab, chain: NsecChain) -> None:
    verdict = env.judge(env.nodata("c.example.test.", "A", chain.record("a.example.test.")))
    assert verdict.status is Status.SECURE
    # Twin: the record before the apex proves nothing about c.
    twin = env.judge(env.nodata("c.example.test.", "A", chain.record("example.test.")))
    assert twin.status is Status.BOGUS
    assert C.DENIAL_NO_MATCH in twin.codes


def test_ds_nodata_at_delegation_is_secure(env: DenialLab, chain: NsecChain) -> None:
    verdict = env.judge(env.nodata("d.example.test.", "DS", chain.record("d.example.test.")))
    assert verdict.status is Status.SECURE
    twin = env.judge(env.nodata("d.example.test.", "DS",
                                chain.record("d.example.test.", "NS DS RRSIG NSEC")))
    assert twin.status is Status.BOGUS
    assert C.DENIAL_BITMAP_HAS_TYPE in twin.codes


def test_parent_side_nsec_cannot_deny_other_types(env: DenialLab, chain: NsecChain) -> None:
    verdict = env.judge(env.nodata("d.example.test.", "A", chain.record("d.example.test.")))
    assert verdict.status is Status.BOGUS
    assert C.DENIAL_PARENT_SIDE in verdict.codes


def test_wildcard_nodata_is_secure(env: DenialLab, chain: NsecChain) -> None:
    # host.w. is covered by the NSEC at *.w. which also matches the wildcard without MX.
    verdict = env.judge(env.nodata("host.w.example.test.", "MX",
                                   chain.record("*.w.example.test.")))
    assert verdict.status is Status.SECURE
    twin = env.judge(env.nodata("host.w.example.test.", "MX",
                                chain.record("*.w.example.test.", "A MX RRSIG NSEC")))
    assert twin.status is Status.BOGUS
    assert C.DENIAL_BITMAP_HAS_TYPE in twin.codes


# --- wildcard answers -------------------------------------------------------------------------

def wildcard_answer(env: DenialLab, owner: str = "host.w.example.test.") -> list[dns.rrset.RRset]:
    """An A RRset at ``owner`` signed as the expansion of *.w.example.test."""
    wild = rrset("*.w.example.test.", "A", "192.0.2.50")
    sigs = env.zone.sign(wild)
    expanded = rrset(owner, "A", "192.0.2.50")
    moved = dns.rrset.RRset(expanded.name, sigs.rdclass, sigs.rdtype, sigs.covers)
    moved.update_ttl(sigs.ttl)
    for rrsig in sigs:
        moved.add(rrsig)
    return [expanded, moved]


def test_wildcard_answer_with_proof_is_secure(env: DenialLab, chain: NsecChain) -> None:
    response = respond("host.w.example.test.", "A", wildcard_answer(env),
                       authority=chain.record("*.w.example.test."))
    verdict = env.judge(response)
    assert verdict.status is Status.SECURE, verdict
    assert C.WILDCARD_EXPANDED in verdict.codes


def test_wildcard_answer_without_proof_is_bogus(env: DenialLab) -> None:
    verdict = env.judge(respond("host.w.example.test.", "A", wildcard_answer(env)))
    assert verdict.status is Status.BOGUS
    assert C.WILDCARD_UNPROVEN in verdict.codes and C.NSEC_MISSING in verdict.codes


def test_wildcard_answer_whose_nsec_leaves_a_closer_name_is_bogus(
    env: DenialLab, chain: NsecChain
) -> None:
    # The apex NSEC (-> a.) does not cover host.w.: no proof that no closer match exists.
    response = respond("host.w.example.test.", "A", wildcard_answer(env),
                       authority=chain.record("example.test."))
    verdict = env.judge(response)
    assert verdict.status is Status.BOGUS
    assert C.DENIAL_NO_COVER in verdict.codes


def test_wildcard_proof_from_another_zone_is_bogus(env: DenialLab) -> None:
    foreign = NsecChain(env.lab.tld).record("*.w.example.test.")
    response = respond("host.w.example.test.", "A", wildcard_answer(env), authority=foreign)
    verdict = env.judge(response)
    assert verdict.status is Status.BOGUS
    assert C.WILDCARD_UNPROVEN in verdict.codes


# --- referrals (insecure delegations) ---------------------------------------------------------

def referral(env: DenialLab, proof: list[dns.rrset.RRset]) -> Status:
    ns = rrset("d.example.test.", "NS", "ns1.d.example.test.")
    glue = rrset("ns1.d.example.test.", "A", "192.0.2.99")
    verdict = env.judge(respond("www.d.example.test.", "A", authority=[ns, *proof],
                                additional=[glue]))
    return verdict.status


def test_referral_with_nsec_proof_of_no_ds_is_insecure(env: DenialLab, chain: NsecChain) -> None:
    assert referral(env, chain.record("d.example.test.")) is Status.INSECURE


@pytest.mark.parametrize("bitmap", ["NS DS RRSIG NSEC", "NS SOA RRSIG NSEC", "A RRSIG NSEC"])
def test_referral_with_wrong_bitmap_is_bogus(env: DenialLab, chain: NsecChain,
                                             bitmap: str) -> None:
    assert referral(env, chain.record("d.example.test.", bitmap)) is Status.BOGUS


def test_referral_without_proof_from_signed_parent_is_bogus(env: DenialLab) -> None:
    assert referral(env, []) is Status.BOGUS


def test_referral_without_ds_is_secure_when_the_childs_ds_validates_elsewhere() -> None:
    # Issue 12 class 4: the referral omits the DS, but the capture holds the child's DS RRset
    # validated (the resolver asked for it): the delegation is secure (RFC 4035 5.2). The twin
    # above (no DS anywhere) stays bogus.
    from tests.validate.signing import Lab, Zone, name

    lab = Lab()
    child = Zone(name("d.example.test."), 13, slot=3)
    ds_answer = respond("d.example.test.", "DS", [child.ds(), lab.leaf.sign(child.ds())])
    ns = rrset("d.example.test.", "NS", "ns1.d.example.test.")
    glue = rrset("ns1.d.example.test.", "A", "192.0.2.99")
    verdict = lab.validator([ds_answer]).judge(
        respond("www.d.example.test.", "A", authority=[ns], additional=[glue]))
    assert verdict.status is Status.SECURE, verdict
    assert verdict.zone == "example.test."
    # Twin: the same DS RRset with a broken signature does not make the delegation secure.
    broken = respond("d.example.test.", "DS",
                     [child.ds(), flip_signature(lab.leaf.sign(child.ds()))])
    verdict = lab.validator([broken]).judge(
        respond("www.d.example.test.", "A", authority=[ns], additional=[glue]))
    assert verdict.status is not Status.SECURE


# --- DNAME (RFC 6672) -------------------------------------------------------------------------

def dname_response(env: DenialLab, target: str) -> list[dns.rrset.RRset]:
    dname = rrset("alias.example.test.", "DNAME", "other.test.")
    cname = rrset("x.alias.example.test.", "CNAME", target)
    return [dname, env.zone.sign(dname), cname]


def test_synthesised_cname_matching_the_dname_is_accepted(env: DenialLab) -> None:
    verdict = env.judge(respond("x.alias.example.test.", "A",
                                dname_response(env, "x.other.test.")))
    assert verdict.status is Status.SECURE, verdict
    cname = next(v for v in verdict.rrsets if v.rdtype == "CNAME")
    assert cname.status is Status.SECURE and C.CNAME_SYNTHESIZED in cname.codes


def test_synthesised_cname_differing_from_the_dname_is_bogus(env: DenialLab) -> None:
    verdict = env.judge(respond("x.alias.example.test.", "A",
                                dname_response(env, "evil.other.test.")))
    assert verdict.status is Status.BOGUS
    assert C.DNAME_SYNTHESIS_MISMATCH in verdict.codes


def test_nxdomain_after_cname_is_proven_for_the_target(env: DenialLab, chain: NsecChain) -> None:
    cname = rrset("alias2.example.test.", "CNAME", "b.example.test.")
    proof = [*chain.record("a.example.test."), *chain.record("example.test.")]
    response = respond("alias2.example.test.", "A", [cname, env.zone.sign(cname)],
                       authority=[*soa(env.zone), *proof], rcode=dns.rcode.NXDOMAIN)
    assert env.judge(response).status is Status.SECURE


# --- CNAME chains crossing into an insecure child (issue 12 class 1) --------------------------

def _cname_into_insecure_child(env: DenialLab, capture_holds_proof: bool) -> Status:
    cname = rrset("alias.example.test.", "CNAME", "x.d.example.test.")
    target = rrset("x.d.example.test.", "A", "192.0.2.7")
    earlier = []
    if capture_holds_proof:  # the resolver's DS query for d.: NODATA with the NSEC at d.
        earlier.append(env.nodata("d.example.test.", "DS",
                                  NsecChain(env.zone).record("d.example.test.")))
    answer = respond("alias.example.test.", "A", [cname, env.zone.sign(cname), target])
    return env.lab.validator(earlier).judge(answer).status


def test_cname_target_under_a_proven_insecure_delegation_is_insecure(env: DenialLab) -> None:
    # The signed parent's CNAME points into d.example.test., which the capture proves has no
    # DS: the unsigned target belongs to the insecure child (RFC 4035 5.2), as Unbound says.
    assert _cname_into_insecure_child(env, capture_holds_proof=True) is Status.INSECURE


def test_cname_target_without_proof_of_an_insecure_cut_is_bogus(env: DenialLab) -> None:
    # Twin: nothing in the capture shows a delegation, so the unsigned target is the signed
    # parent's own data without RRSIG.
    assert _cname_into_insecure_child(env, capture_holds_proof=False) is Status.BOGUS


def _cname_with_out_of_zone_target(env: DenialLab, *, authoritative: bool) -> object:
    cname = rrset("alias.example.test.", "CNAME", "www.elsewhere.test.")
    target = rrset("www.elsewhere.test.", "A", "192.0.2.66")
    # The target's data, signed by the wrong zone: example.test. cannot speak for it.
    response = respond("alias.example.test.", "A",
                       [cname, env.zone.sign(cname), target,
                        env.zone.sign(target, signer=env.zone.origin)], aa=authoritative)
    return env.judge(response)


def test_out_of_zone_target_records_in_an_authoritative_answer_are_ignored(
    env: DenialLab,
) -> None:
    # Issue 12 class 1: a validating resolver discards data outside the answering server's
    # zone and asks again (RFC 2181 5.4.1); the CNAME itself validates.
    verdict = _cname_with_out_of_zone_target(env, authoritative=True)
    assert verdict.status is Status.SECURE, verdict  # type: ignore[attr-defined]
    assert C.OUT_OF_ZONE_IGNORED in verdict.codes  # type: ignore[attr-defined]


def test_the_same_records_in_a_recursive_answer_are_judged_and_bogus(env: DenialLab) -> None:
    # Twin: a resolver's answer (AA clear) vouches for the whole chain it returns.
    verdict = _cname_with_out_of_zone_target(env, authoritative=False)
    assert verdict.status is Status.BOGUS  # type: ignore[attr-defined]


# --- a wildcard-expanded NSEC proves nothing (issue 12 class 3) -----------------------------

def _expanded_nsec(env: DenialLab, owner: str) -> list[dns.rrset.RRset]:
    """An NSEC at ``owner`` whose RRSIG was made for *.w.example.test. (Labels 3 < 4): what a
    server synthesising from a wildcard NSEC would send, never a record of the chain."""
    nsec = rrset("*.w.example.test.", "NSEC", "z.example.test. A RRSIG NSEC")
    sigs = env.zone.sign(nsec)
    moved_nsec = rrset(owner, "NSEC", "z.example.test. A RRSIG NSEC")
    moved = dns.rrset.RRset(moved_nsec.name, sigs.rdclass, sigs.rdtype, sigs.covers)
    moved.update_ttl(sigs.ttl)
    for rrsig in sigs:
        moved.add(rrsig)
    return [moved_nsec, moved]


def test_a_wildcard_expanded_nsec_does_not_prove_nodata(env: DenialLab) -> None:
    # A NODATA for MX at host.w. "proven" by an NSEC owned by host.w. that is itself a
    # wildcard expansion: it proves nothing (RFC 4592 4.5), so the signed NODATA is bogus.
    verdict = env.judge(env.nodata("host.w.example.test.", "MX",
                                   _expanded_nsec(env, "host.w.example.test.")))
    assert verdict.status is Status.BOGUS, verdict
    # Twin: the wildcard's own NSEC (owner *.w., Labels equal) is a valid wildcard NODATA.
    chain = NsecChain(env.zone)
    proof = [*chain.record("*.w.example.test."), *chain.record("a.example.test.")]
    verdict = env.judge(env.nodata("host.w.example.test.", "MX", proof))
    assert verdict.status is Status.SECURE, verdict


def test_a_zone_below_a_proven_insecure_delegation_is_insecure() -> None:
    # Issue 12 (differential class below-insecure-ancestor): sub.d.example.test. is signed, but
    # d.example.test. is proven to have no DS: everything below is insecure (RFC 4035 5.2),
    # and a validator never asks sub.d. for its DS.
    from tests.validate.signing import Lab, Zone, name

    lab = Lab()
    island = Zone(name("sub.d.example.test."), 13, slot=4)
    keys = lab.dnskey_response(island)
    data = rrset("www.sub.d.example.test.", "A", "192.0.2.8")
    answer = respond("www.sub.d.example.test.", "A", [data, island.sign(data)])
    proof = DenialLab(lab).nodata("d.example.test.", "DS",
                                  NsecChain(lab.leaf).record("d.example.test."))
    assert lab.validator([keys, proof]).judge(answer).status is Status.INSECURE
    # Twin: without the proof, the missing DS of sub.d. leaves it undecided.
    verdict = lab.validator([keys]).judge(answer)
    assert verdict.status is Status.INDETERMINATE
    assert "DS for sub.d.example.test. not seen" in verdict.missing


def _recursive_cname_into_insecure_nodata(env: DenialLab) -> Status:
    # alias.example.test. (signed) -> x.unsigned.test., another zone, proven unsigned by the
    # NSEC of test. at unsigned.test. (NS without DS) that the resolver fetched.
    cname = rrset("alias.example.test.", "CNAME", "x.unsigned.test.")
    authority = [rrset("unsigned.test.", "SOA", "ns.unsigned.test. h.unsigned.test. "
                       "1 7200 3600 1209600 300")]
    nsec = rrset("unsigned.test.", "NSEC", "z.test. NS RRSIG NSEC")
    proof = respond("unsigned.test.", "DS", authority=[nsec, env.lab.tld.sign(nsec)])
    answer = respond("alias.example.test.", "A", [cname, env.zone.sign(cname)], authority)
    return env.lab.validator([proof]).judge(answer).status


def test_a_recursive_answer_ending_in_an_insecure_zones_nodata_is_insecure(
    env: DenialLab,
) -> None:
    # Differential class chain-into-insecure-called-secure: the resolver's answer carries the
    # signed CNAME and the unsigned child's NODATA (its SOA): the chain ends insecure.
    assert _recursive_cname_into_insecure_nodata(env) is Status.INSECURE


def test_a_cname_leaving_its_zone_without_the_targets_answer_is_judged_by_its_hops(
    env: DenialLab,
) -> None:
    # Twin: a CNAME out of the zone with nothing about the target in the response (the
    # resolver fetches it separately) is as secure as its hop.
    cname = rrset("alias.example.test.", "CNAME", "www.elsewhere.test.")
    answer = respond("alias.example.test.", "A", [cname, env.zone.sign(cname)])
    assert env.judge(answer).status is Status.SECURE


def _unsigned_answer_from_a_child_server(env: DenialLab, *, names_its_zone: bool) -> object:
    data = rrset("www.sub.example.test.", "A", "192.0.2.9")
    authority = [rrset("sub.example.test.", "NS", "ns.sub.example.test.")] if (
        names_its_zone) else []
    return env.judge(respond("www.sub.example.test.", "A", [data], authority, aa=True))


def test_unsigned_data_from_a_server_naming_an_unknown_child_zone_is_indeterminate(
    env: DenialLab,
) -> None:
    # The answering server speaks for sub.example.test. (its authority NS), a zone the capture
    # has no DS, DNSKEY or proof for: its data's status is unknown, never "stripped".
    verdict = _unsigned_answer_from_a_child_server(env, names_its_zone=True)
    assert verdict.status is Status.INDETERMINATE, verdict  # type: ignore[attr-defined]
    assert "DS for sub.example.test. not seen" in verdict.missing  # type: ignore[attr-defined]


def test_unsigned_data_of_a_signed_zone_with_do_is_bogus(env: DenialLab) -> None:
    # Twin: nothing suggests another zone: example.test.'s data without RRSIG although DO.
    verdict = _unsigned_answer_from_a_child_server(env, names_its_zone=False)
    assert verdict.status is Status.BOGUS  # type: ignore[attr-defined]
    assert C.RRSIGS_MISSING in verdict.codes  # type: ignore[attr-defined]


def test_a_zone_below_a_delegation_whose_no_ds_proof_fails_is_bogus() -> None:
    # Differential (CD, key-missing): the proof that d.example.test. has no DS does not
    # validate, so the cut is not proven and a zone below it cannot be trusted (Unbound:
    # SERVFAIL). The twin with a valid proof is insecure (test above).
    from tests.validate.signing import Lab, Zone, name

    lab = Lab()
    island = Zone(name("sub.d.example.test."), 13, slot=4)
    keys = lab.dnskey_response(island)
    data = rrset("www.sub.d.example.test.", "A", "192.0.2.8")
    answer = respond("www.sub.d.example.test.", "A", [data, island.sign(data)])
    nsec, sig = NsecChain(lab.leaf).record("d.example.test.")
    proof = DenialLab(lab).nodata("d.example.test.", "DS", [nsec, flip_signature(sig)])
    assert lab.validator([keys, proof]).judge(answer).status is Status.BOGUS


# --- the denied name's zone, before any of its keys were seen (one pass, live) ----------------

def _cname_cut_short(env: DenialLab, signer: str) -> Status:
    # An authoritative answer that stops after one hop of an in-zone CNAME (no target, no
    # proof): the resolver asks for the target next. Its zone is the CNAME's signer, which
    # the capture has not yet shown keys or a DS for (a single pass judges it first).
    child = Zone(name(signer), slot=3)
    cname = rrset(f"cn1.{signer}", "CNAME", f"cn0.{signer}")
    answer = respond(f"cn1.{signer}", "A", [cname, child.sign(cname)], aa=True)
    return env.judge(answer).status


def test_a_chain_cut_short_in_a_zone_not_yet_seen_is_indeterminate(env: DenialLab) -> None:
    # The RRSIG's signer shows the zone (RFC 4034 3.1.7): its chain is unknown so far, so the
    # missing proof says nothing; the signed parent example.test. must not be blamed (was
    # bogus nsec_missing in stdin and live mode).
    assert _cname_cut_short(env, "child.example.test.") is Status.INDETERMINATE


def test_a_chain_cut_short_in_the_signed_zone_itself_is_bogus(env: DenialLab) -> None:
    # Twin: signed by the known secure zone, the answer is a NODATA for the target without
    # proof, which Unbound rejects too (RFC 4035 5.4).
    assert _cname_cut_short(env, "example.test.") is Status.BOGUS
