"""DS-absence proofs: NSEC, NSEC3 exact match and NSEC3 opt-out make a delegation insecure;
their negative twins (DS bit set, SOA bit set, broken signature, no opt-out) do not."""

from __future__ import annotations

import base64

import dns.dnssec
import dns.name
import dns.rdatatype
import dns.rrset
import pytest

from auditor.findings import ValidationCode as C
from auditor.validate import PERMISSIVE, RFC8624, Status, ValidationPolicy, Verdict
from auditor.validate.denial import bitmap_types, nsec3_covers
from tests.validate.signing import Lab, flip_signature, respond, rrset

SALT = "aabbccdd"
ITERATIONS = 0
CHILD = "insecure.example.test."


@pytest.fixture(scope="module")
def lab() -> Lab:
    return Lab()


def _nsec3_owner(digest: bytes) -> str:
    return base64.b32hexencode(digest).decode().lower() + ".example.test."


def _hash(text: str, iterations: int = ITERATIONS) -> bytes:
    value = dns.dnssec.nsec3_hash(dns.name.from_text(text), SALT, iterations, 1)
    return base64.b32hexdecode(value)


def _nsec3(owner_hash: bytes, next_hash: bytes, types: str, flags: int = 0) -> dns.rrset.RRset:
    following = base64.b32hexencode(next_hash).decode()
    return rrset(_nsec3_owner(owner_hash), "NSEC3",
                 f"1 {flags} {ITERATIONS} {SALT} {following} {types}")


def _judge_unsigned_child(lab: Lab, proof: list[dns.rrset.RRset]) -> Status:
    referral_ns = rrset(CHILD, "NS", "ns1.insecure.example.test.")
    referral = respond("www.insecure.example.test.", "A", authority=[referral_ns, *proof],
                       sport=43000)
    data = rrset("www.insecure.example.test.", "A", "192.0.2.80")
    validator = lab.validator([referral])
    return validator.judge(respond("www.insecure.example.test.", "A", [data])).status


def test_nsec_proof_of_no_ds_makes_child_insecure(lab: Lab) -> None:
    nsec = rrset(CHILD, "NSEC", "z.example.test. NS RRSIG NSEC")
    assert _judge_unsigned_child(lab, [nsec, lab.leaf.sign(nsec)]) is Status.INSECURE


@pytest.mark.parametrize("types", ["NS DS RRSIG NSEC", "NS SOA RRSIG NSEC", "A RRSIG NSEC"])
def test_nsec_bitmap_that_proves_nothing_leaves_ds_missing(lab: Lab, types: str) -> None:
    # Without a proof the child's DS is simply missing: indeterminate, naming the DS.
    nsec = rrset(CHILD, "NSEC", f"z.example.test. {types}")
    assert _judge_unsigned_child(lab, [nsec, lab.leaf.sign(nsec)]) is Status.INDETERMINATE


def test_nsec_proof_with_broken_signature_is_bogus(lab: Lab) -> None:
    nsec = rrset(CHILD, "NSEC", "z.example.test. NS RRSIG NSEC")
    assert _judge_unsigned_child(lab, [nsec, flip_signature(lab.leaf.sign(nsec))]) is Status.BOGUS


def test_insecure_verdict_carries_insecure_delegation_code(lab: Lab) -> None:
    nsec = rrset(CHILD, "NSEC", "z.example.test. NS RRSIG NSEC")
    referral = respond("www.insecure.example.test.", "A",
                       authority=[rrset(CHILD, "NS", "ns1.example.net."), nsec,
                                  lab.leaf.sign(nsec)], sport=43001)
    verdict = lab.validator([referral]).judge(
        respond("www.insecure.example.test.", "A",
                [rrset("www.insecure.example.test.", "A", "192.0.2.80")], ad=True))
    assert verdict.status is Status.INSECURE
    assert C.INSECURE_DELEGATION in verdict.codes
    assert C.AD_ON_INSECURE in verdict.codes


def test_nsec3_matching_proof(lab: Lab) -> None:
    child = _hash(CHILD)
    record = _nsec3(child, bytes(19) + b"\x01" if child != bytes(19) + b"\x01" else bytes(20),
                    "NS")
    assert _judge_unsigned_child(lab, [record, lab.leaf.sign(record)]) is Status.INSECURE
    with_ds = _nsec3(child, bytes(20), "NS DS")
    assert _judge_unsigned_child(lab, [with_ds, lab.leaf.sign(with_ds)]) is Status.INDETERMINATE


def _opt_out_proof(lab: Lab, flags: int) -> list[dns.rrset.RRset]:
    apex = _hash("example.test.")
    apex_next = (int.from_bytes(apex, "big") + 1).to_bytes(20, "big")
    child = int.from_bytes(_hash(CHILD), "big")
    cover = _nsec3((child - 1).to_bytes(20, "big"), (child + 1).to_bytes(20, "big"), "", flags)
    encloser = _nsec3(apex, apex_next, "NS SOA RRSIG DNSKEY NSEC3PARAM")
    return [encloser, lab.leaf.sign(encloser), cover, lab.leaf.sign(cover)]


def test_nsec3_opt_out_proof(lab: Lab) -> None:
    assert _judge_unsigned_child(lab, _opt_out_proof(lab, flags=1)) is Status.INSECURE
    assert _judge_unsigned_child(lab, _opt_out_proof(lab, flags=0)) is Status.INDETERMINATE


GRANDCHILD = "inner.insecure.example.test."


def _judge_below(lab: Lab, encloser_types: str) -> Status:
    """An unsigned answer of GRANDCHILD, whose DS absence is claimed in example.test. by the
    NSEC3 matching CHILD (bitmap ``encloser_types``) and an opt-out NSEC3 covering
    GRANDCHILD as the next closer name."""
    child = _hash(CHILD)
    encloser = _nsec3(child, (int.from_bytes(child, "big") + 1).to_bytes(20, "big"),
                      encloser_types)
    below = int.from_bytes(_hash(GRANDCHILD), "big")
    cover = _nsec3((below - 1).to_bytes(20, "big"), (below + 1).to_bytes(20, "big"), "", 1)
    proof = [encloser, lab.leaf.sign(encloser), cover, lab.leaf.sign(cover)]
    referral = respond("www." + GRANDCHILD, "A",
                       authority=[rrset(GRANDCHILD, "NS", "ns1.example.net."), *proof],
                       sport=43003)
    data = rrset("www." + GRANDCHILD, "A", "192.0.2.81")
    return lab.validator([referral]).judge(respond("www." + GRANDCHILD, "A", [data])).status


def test_opt_out_below_an_empty_non_terminal_makes_the_delegation_insecure(lab: Lab) -> None:
    # RFC 5155 8.6 / 6: CHILD is an empty non-terminal of example.test., the closest
    # encloser; the opt-out span covering the next closer name GRANDCHILD proves its DS absent.
    assert _judge_below(lab, "") is Status.INSECURE


@pytest.mark.parametrize("types", ["NS DS RRSIG", "DNAME RRSIG"])
def test_opt_out_below_a_zone_cut_proves_nothing(lab: Lab, types: str) -> None:
    # RFC 6840 4.1 / RFC 5155 8.3: the NSEC3 matching CHILD was made at a zone cut (or a
    # DNAME); example.test. does not speak for names below it, so its opt-out span says
    # nothing of GRANDCHILD's DS: the chain to it is unknown, never insecure.
    assert _judge_below(lab, types) is Status.INDETERMINATE


def test_nsec3_iterations_above_policy_make_the_delegation_insecure(lab: Lab) -> None:
    # RFC 9276 3.2: the zone's NSEC3 chain uses more iterations than the policy checks, so
    # its denials (the absence of this DS included) are treated as insecure, unhashed.
    child = _hash(CHILD, 500)
    record = rrset(_nsec3_owner(child), "NSEC3",
                   f"1 0 500 {SALT} {base64.b32hexencode(bytes(20)).decode()} NS")
    data = [rrset("www.insecure.example.test.", "A", "192.0.2.80")]

    def judge(signature: dns.rrset.RRset, policy: ValidationPolicy = RFC8624) -> Verdict:
        referral = respond("www.insecure.example.test.", "A",
                           authority=[rrset(CHILD, "NS", "ns1.example.net."), record,
                                      signature], sport=43002)
        return lab.validator([referral], policy=policy).judge(
            respond("www.insecure.example.test.", "A", data))

    strict = judge(lab.leaf.sign(record))
    assert strict.status is Status.INSECURE
    assert C.NSEC3_ITERATIONS_TOO_HIGH in strict.rrsets[0].codes
    # The permissive preset allows 2500 iterations, so the same proof holds there.
    assert judge(lab.leaf.sign(record), PERMISSIVE).status is Status.INSECURE
    # Twin: the same record with a broken signature proves nothing, insecure least of all.
    assert judge(flip_signature(lab.leaf.sign(record))).status is Status.BOGUS


def test_bitmap_types_decodes_windows() -> None:
    record = rrset("a.example.", "NSEC", "b.example. A NS SOA TYPE1234 CAA")
    assert bitmap_types(record[0]) == {1, 2, 6, 1234, 257}


def test_nsec3_covers_wraps_around_the_ring() -> None:
    record = _nsec3(b"\xf0" * 20, b"\x10" * 20, "A")[0]
    assert nsec3_covers(b"\xf0" * 20, record, b"\xff" * 20)
    assert nsec3_covers(b"\xf0" * 20, record, b"\x01" * 20)
    assert not nsec3_covers(b"\xf0" * 20, record, b"\x80" * 20)
    assert dns.rdatatype.NSEC3 == record.rdtype


def _cname_into_child(lab: Lab, nsec_sigs: dns.rrset.RRset | None = None,
                      ns_owner: str = CHILD) -> Verdict:
    """An authoritative answer of example.test.: a signed CNAME whose target lies below the
    delegation to insecure.example.test., ended by the referral (NS + NSEC proving no DS),
    as BIND serves it (RFC 1034 4.3.2 step 3b)."""
    cname = rrset("alias.example.test.", "CNAME", "www.insecure.example.test.")
    nsec = rrset(CHILD, "NSEC", "z.example.test. NS RRSIG NSEC")
    sigs = nsec_sigs if nsec_sigs is not None else lab.leaf.sign(nsec)
    answer = respond("alias.example.test.", "A", [cname, lab.leaf.sign(cname)],
                     authority=[rrset(ns_owner, "NS", "ns1.insecure.example.test."), nsec, sigs],
                     aa=True, sport=43002)
    return lab.validator().judge(answer)


def test_cname_into_an_insecure_delegation_of_the_same_zone_is_insecure(lab: Lab) -> None:
    # Was bogus (denial_parent_side): the delegation NSEC was taken as a denial of the target.
    verdict = _cname_into_child(lab)
    assert verdict.status is Status.INSECURE, verdict.detail
    assert C.INSECURE_DELEGATION in verdict.codes
    assert C.DENIAL_PARENT_SIDE not in verdict.codes


def test_cname_into_a_delegation_with_a_broken_proof_is_bogus(lab: Lab) -> None:
    # Negative twin: the proof of no DS does not validate, so the delegation is not insecure.
    nsec = rrset(CHILD, "NSEC", "z.example.test. NS RRSIG NSEC")
    verdict = _cname_into_child(lab, flip_signature(lab.leaf.sign(nsec)))
    assert verdict.status is Status.BOGUS, verdict.detail


def test_the_zones_own_apex_ns_is_no_delegation_of_the_target(lab: Lab) -> None:
    # Negative twin: an NS RRset at the zone's apex beside the CNAME refers nowhere; the
    # answer is then a CNAME whose target's data is missing, as before (never insecure).
    verdict = _cname_into_child(lab, ns_owner="example.test.")
    assert verdict.status is not Status.INSECURE
    assert C.INSECURE_DELEGATION not in verdict.codes
