"""NSEC3 proofs through the validator (RFC 5155 8, RFC 9276 3, RFC 6840 4.1) in the shape
BIND 9.18 sends (SHA-1, no salt, 0 iterations, optional opt-out), each with its negative twin
(dropped record, one bitmap bit, shifted hash, foreign zone) that must turn the verdict bogus."""

from __future__ import annotations

import base64

import dns.dnssec
import dns.name
import dns.rrset
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditor.findings import ValidationCode as C
from auditor.validate import PERMISSIVE, RFC9904, Status
from auditor.validate.denial_common import DenialMemos, nsec3_digest
from tests.validate.denial_builders import DenialLab, Nsec3Chain
from tests.validate.signing import flip_signature, respond, rrset
from tests.validate.test_denial_nsec import wildcard_answer


@pytest.fixture(scope="module")
def env() -> DenialLab:
    return DenialLab()


@pytest.fixture(scope="module")
def chain(env: DenialLab) -> Nsec3Chain:
    return Nsec3Chain(env.zone)


@pytest.fixture(scope="module")
def opt_out(env: DenialLab) -> Nsec3Chain:
    return Nsec3Chain(env.zone, opt_out=True)


def nxdomain_proof(chain: Nsec3Chain, qname: str = "nx.example.test.",
                   encloser: str = "example.test.") -> list[list[dns.rrset.RRset]]:
    """Closest encloser match, next closer cover, wildcard cover (RFC 5155 7.2.2)."""
    return [chain.match(encloser), chain.cover(qname), chain.cover(f"*.{encloser}")]


def flat(parts: list[list[dns.rrset.RRset]]) -> list[dns.rrset.RRset]:
    seen: dict[str, dns.rrset.RRset] = {}
    for part in parts:
        for item in part:
            seen.setdefault(item.to_text(), item)
    return list(seen.values())


# --- NXDOMAIN ---------------------------------------------------------------------------------

def test_nxdomain_closest_encloser_proof_is_secure(env: DenialLab, chain: Nsec3Chain) -> None:
    verdict = env.judge(env.nxdomain("nx.example.test.", flat(nxdomain_proof(chain))))
    assert verdict.status is Status.SECURE, verdict
    # BIND 9.18 defaults follow RFC 9276: no guidance notes.
    assert C.NSEC3_SALT_PRESENT not in verdict.codes
    assert C.NSEC3_ITERATIONS_NONZERO not in verdict.codes


@pytest.mark.parametrize(("dropped", "code"), [
    (0, C.DENIAL_NO_CLOSEST_ENCLOSER),
    (1, C.DENIAL_NO_COVER),
    (2, C.DENIAL_WILDCARD_NOT_EXCLUDED),
])
def test_nxdomain_missing_one_nsec3_is_bogus(
    env: DenialLab, chain: Nsec3Chain, dropped: int, code: C
) -> None:
    parts = nxdomain_proof(chain)
    kept = [p for i, p in enumerate(parts) if i != dropped]
    # The apex record may also be the one covering another part: only judge real drops.
    if flat(kept) == flat(parts):
        pytest.skip("the same record serves two parts of the proof")
    verdict = env.judge(env.nxdomain("nx.example.test.", flat(kept)))
    assert verdict.status is Status.BOGUS
    assert code in verdict.codes or C.DENIAL_NO_COVER in verdict.codes


def test_nxdomain_with_shifted_hash_is_bogus(env: DenialLab, chain: Nsec3Chain) -> None:
    # The covering record's next hash moved to just below H(qname): it no longer covers.
    parts = nxdomain_proof(chain)
    target = chain.digest("nx.example.test.")
    owner = base64.b32hexdecode(parts[1][0].name.labels[0].decode().upper())
    shifted = (int.from_bytes(target, "big") - 1).to_bytes(20, "big")
    if not owner < shifted:
        pytest.skip("covering span wraps the ring")
    parts[1] = chain.record_for_hash(owner, "A RRSIG", shifted)
    verdict = env.judge(env.nxdomain("nx.example.test.", flat(parts)))
    assert verdict.status is Status.BOGUS
    assert C.DENIAL_NO_COVER in verdict.codes


def test_nxdomain_nsec3_from_another_zone_is_bogus(env: DenialLab, chain: Nsec3Chain) -> None:
    parts = nxdomain_proof(chain)
    wild_hash = base64.b32hexdecode(parts[2][0].name.labels[0].decode().upper())
    parts[2] = chain.record_for_hash(wild_hash, "A RRSIG", zone=env.lab.tld)
    verdict = env.judge(env.nxdomain("nx.example.test.", flat(parts)))
    assert verdict.status is Status.BOGUS
    assert C.DENIAL_WRONG_ZONE in verdict.codes


def test_nxdomain_with_broken_nsec3_signature_is_bogus(env: DenialLab, chain: Nsec3Chain) -> None:
    parts = nxdomain_proof(chain)
    parts[1] = [parts[1][0], flip_signature(parts[1][1])]
    verdict = env.judge(env.nxdomain("nx.example.test.", flat(parts)))
    assert verdict.status is Status.BOGUS


def test_nxdomain_for_existing_name_is_bogus(env: DenialLab, chain: Nsec3Chain) -> None:
    proof = flat([chain.match("a.example.test."), chain.cover("*.example.test.")])
    verdict = env.judge(env.nxdomain("a.example.test.", proof))
    assert verdict.status is Status.BOGUS
    assert C.DENIAL_NAME_EXISTS in verdict.codes


def test_nxdomain_below_delegation_nsec3_is_bogus(env: DenialLab, chain: Nsec3Chain) -> None:
    # RFC 5155 8.3 / RFC 6840 4.1: the delegation's NSEC3 cannot be the closest encloser.
    proof = flat([chain.match("d.example.test."), chain.cover("x.d.example.test."),
                  chain.cover("*.d.example.test.")])
    verdict = env.judge(env.nxdomain("x.d.example.test.", proof))
    assert verdict.status is Status.BOGUS
    assert C.DENIAL_PARENT_SIDE in verdict.codes


def test_opt_out_nxdomain_is_insecure(env: DenialLab, opt_out: Nsec3Chain) -> None:
    verdict = env.judge(env.nxdomain("nx.example.test.", flat(nxdomain_proof(opt_out)),
                                     ad=True))
    assert verdict.status is Status.INSECURE
    assert C.NSEC3_OPT_OUT in verdict.codes and C.AD_ON_INSECURE in verdict.codes


# --- NODATA -----------------------------------------------------------------------------------

def test_nodata_matching_nsec3_is_secure(env: DenialLab, chain: Nsec3Chain) -> None:
    assert env.judge(env.nodata("a.example.test.", "MX",
                                chain.match("a.example.test."))).status is Status.SECURE
    twin = env.judge(env.nodata("a.example.test.", "MX",
                                chain.match("a.example.test.", "A MX RRSIG")))
    assert twin.status is Status.BOGUS
    assert C.DENIAL_BITMAP_HAS_TYPE in twin.codes


def test_nodata_empty_non_terminal_is_secure(env: DenialLab, chain: Nsec3Chain) -> None:
    assert env.judge(env.nodata("c.example.test.", "A",
                                chain.match("c.example.test."))).status is Status.SECURE
    twin = env.judge(env.nodata("c.example.test.", "A", chain.match("a.example.test.")))
    assert twin.status is Status.BOGUS


def test_ds_nodata_at_delegation_is_secure(env: DenialLab, chain: Nsec3Chain) -> None:
    assert env.judge(env.nodata("d.example.test.", "DS",
                                chain.match("d.example.test."))).status is Status.SECURE
    twin = env.judge(env.nodata("d.example.test.", "A", chain.match("d.example.test.")))
    assert twin.status is Status.BOGUS
    assert C.DENIAL_PARENT_SIDE in twin.codes


def test_opt_out_ds_nodata_is_insecure(env: DenialLab, opt_out: Nsec3Chain) -> None:
    proof = flat([opt_out.match("example.test."), opt_out.cover("d.example.test.")])
    verdict = env.judge(env.nodata("d.example.test.", "DS", proof))
    assert verdict.status is Status.INSECURE
    assert C.NSEC3_OPT_OUT in verdict.codes


def test_wildcard_nodata_is_secure(env: DenialLab, chain: Nsec3Chain) -> None:
    parts = [chain.match("w.example.test."), chain.cover("host.w.example.test."),
             chain.match("*.w.example.test.")]
    assert env.judge(env.nodata("host.w.example.test.", "MX",
                                flat(parts))).status is Status.SECURE
    parts[2] = chain.match("*.w.example.test.", "A MX RRSIG")
    twin = env.judge(env.nodata("host.w.example.test.", "MX", flat(parts)))
    assert twin.status is Status.BOGUS
    assert C.DENIAL_BITMAP_HAS_TYPE in twin.codes


# --- wildcard answers -------------------------------------------------------------------------

def test_wildcard_answer_with_next_closer_cover_is_secure(
    env: DenialLab, chain: Nsec3Chain
) -> None:
    response = respond("host.w.example.test.", "A", wildcard_answer(env),
                       authority=chain.cover("host.w.example.test."))
    assert env.judge(response).status is Status.SECURE
    twin = env.judge(respond("host.w.example.test.", "A", wildcard_answer(env),
                             authority=chain.match("a.example.test.")))
    assert twin.status is Status.BOGUS
    assert C.WILDCARD_UNPROVEN in twin.codes


def test_wildcard_answer_over_an_opt_out_span_is_insecure(
    env: DenialLab, opt_out: Nsec3Chain
) -> None:
    # Issue 12 class 2: the next closer's covering span has opt-out set, so an unsigned
    # delegation may hide there: insecure, never secure (RFC 5155 9.2; the non-opt-out twin
    # above is secure).
    response = respond("host.w.example.test.", "A", wildcard_answer(env),
                       authority=opt_out.cover("host.w.example.test."))
    verdict = env.judge(response)
    assert verdict.status is Status.INSECURE, verdict
    assert C.NSEC3_OPT_OUT in verdict.codes


# --- referrals --------------------------------------------------------------------------------

def referral(env: DenialLab, child: str, proof: list[dns.rrset.RRset]) -> tuple[Status, tuple]:
    ns = rrset(child, "NS", f"ns1.{child}")
    verdict = env.judge(respond(f"www.{child}", "A", authority=[ns, *proof]))
    return verdict.status, verdict.codes


def test_referral_matching_nsec3_is_insecure(env: DenialLab, chain: Nsec3Chain) -> None:
    status, codes = referral(env, "d.example.test.", chain.match("d.example.test."))
    assert status is Status.INSECURE and C.INSECURE_DELEGATION in codes
    status, _ = referral(env, "d.example.test.", chain.match("d.example.test.", "NS DS RRSIG"))
    assert status is Status.BOGUS


def test_referral_opt_out_is_insecure_and_needs_opt_out(
    env: DenialLab, opt_out: Nsec3Chain, chain: Nsec3Chain
) -> None:
    proof = flat([opt_out.match("example.test."), opt_out.cover("e.example.test.")])
    status, codes = referral(env, "e.example.test.", proof)
    assert status is Status.INSECURE and C.NSEC3_OPT_OUT in codes
    plain = flat([chain.match("example.test."), chain.cover("e.example.test.")])
    status, codes = referral(env, "e.example.test.", plain)
    assert status is Status.BOGUS and C.DENIAL_NO_MATCH in codes


# --- parameters (RFC 5155 8.1, RFC 9276) ------------------------------------------------------

def test_iterations_at_the_default_limit_are_checked(env: DenialLab) -> None:
    # RFC 9276 3.2: the default policy checks proofs up to 150 iterations, the limit Unbound
    # 1.17 and BIND 9.18 apply, so such a proof is secure (with the guidance noted) ...
    proof = flat(nxdomain_proof(Nsec3Chain(env.zone, iterations=150)))
    verdict = env.judge(env.nxdomain("nx.example.test.", proof))
    assert verdict.status is Status.SECURE
    assert C.NSEC3_ITERATIONS_NONZERO in verdict.codes
    # ... and the strict preset keeps the lower limit of 100.
    strict = env.judge(env.nxdomain("nx.example.test.", proof), policy=RFC9904)
    assert strict.status is Status.INSECURE
    assert C.NSEC3_ITERATIONS_TOO_HIGH in strict.codes
    # Twin: below the limit the proof is checked, so a broken one is bogus.
    broken = [proof[0], flip_signature(proof[1]), *proof[2:]]
    assert env.judge(env.nxdomain("nx.example.test.", broken)).status is Status.BOGUS


def test_iterations_above_policy_are_insecure(env: DenialLab) -> None:
    heavy = Nsec3Chain(env.zone, iterations=151)
    proof = flat(nxdomain_proof(heavy))
    verdict = env.judge(env.nxdomain("nx.example.test.", proof))
    assert verdict.status is Status.INSECURE
    assert C.NSEC3_ITERATIONS_TOO_HIGH in verdict.codes
    assert C.NSEC3_ITERATIONS_TOO_HIGH.ede == 27
    # The permissive preset allows 2500: the same proof is secure there, with the RFC 9276
    # guidance violation noted.
    permissive = env.judge(env.nxdomain("nx.example.test.", proof), policy=PERMISSIVE)
    assert permissive.status is Status.SECURE
    assert C.NSEC3_ITERATIONS_NONZERO in permissive.codes
    # Twin: a broken signature on the high-iteration proof is still bogus, never insecure.
    broken = [proof[0], flip_signature(proof[1]), *proof[2:]]
    assert env.judge(env.nxdomain("nx.example.test.", broken)).status is Status.BOGUS


def test_salt_is_noted(env: DenialLab) -> None:
    salted = Nsec3Chain(env.zone, salt="aabbccdd", iterations=1)
    verdict = env.judge(env.nxdomain("nx.example.test.", flat(nxdomain_proof(salted))))
    assert verdict.status is Status.SECURE
    assert C.NSEC3_SALT_PRESENT in verdict.codes and C.NSEC3_ITERATIONS_NONZERO in verdict.codes


def test_unknown_hash_algorithm_is_insecure(env: DenialLab) -> None:
    unknown = Nsec3Chain(env.zone, algorithm=2)
    verdict = env.judge(env.nxdomain("nx.example.test.", flat(nxdomain_proof(unknown))))
    assert verdict.status is Status.INSECURE
    assert C.NSEC3_UNKNOWN_ALGORITHM in verdict.codes


# --- hashing ----------------------------------------------------------------------------------

_LABEL = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-*", min_size=1, max_size=12)


@settings(max_examples=60, deadline=None)
@given(labels=st.lists(_LABEL, min_size=0, max_size=4), salt=st.binary(max_size=8),
       iterations=st.integers(min_value=0, max_value=20), upper=st.booleans())
def test_nsec3_digest_equals_dnspython(labels: list[str], salt: bytes, iterations: int,
                                       upper: bool) -> None:
    text = ".".join([*labels, "example", ""]) if labels else "example."
    name = dns.name.from_text(text.upper() if upper else text)
    expected = dns.dnssec.nsec3_hash(name, salt or None, iterations, 1)
    assert nsec3_digest(name, salt, iterations) == base64.b32hexdecode(expected)


def test_nsec3_digest_is_memoised_per_validator_run() -> None:
    memos = DenialMemos()
    name = dns.name.from_text("memo.example.")
    memos.digest(name, b"\x01", 3)
    memos.digest(dns.name.from_text("MEMO.example."), b"\x01", 3)
    assert memos.digest.cache_info().hits == 1
    assert memos.digest.cache_info().maxsize is not None
    assert DenialMemos().digest.cache_info().currsize == 0  # another run starts empty
