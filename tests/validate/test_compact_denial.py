"""Compact denial (RFC 9824 "black lies") and online-signed minimally covering records (RFC
4470 "white lies", NSEC3 white lies as PowerDNS narrow mode makes them), each shape with its
negative twin. Every record is signed with dnspython at the pinned time of tests.validate."""

from __future__ import annotations

import dns.rcode
import dns.rrset
import pytest

from auditor.findings import ValidationCode as C
from auditor.validate import Status
from auditor.validate.compact import (
    COMPACT_NXNAME_TEXT,
    is_compact_shape,
    is_minimally_covering,
    successor,
)
from tests.validate.denial_builders import DenialLab, Nsec3Chain
from tests.validate.signing import flip_signature, name, rrset

QNAME = "nx.example.test."
HASH_SPACE = 1 << 160


@pytest.fixture(scope="module")
def env() -> DenialLab:
    return DenialLab()


def signed_nsec(env: DenialLab, owner: str, following: str, types: str) -> list[dns.rrset.RRset]:
    nsec = rrset(owner, "NSEC", f"{following} {types}")
    return [nsec, env.zone.sign(nsec)]


def black_lie(env: DenialLab, owner: str = QNAME, types: str = "RRSIG NSEC NXNAME",
              following: str | None = None) -> list[dns.rrset.RRset]:
    """The NSEC a compact-denial signer makes at the query name (RFC 9824 3)."""
    return signed_nsec(env, owner, following or successor(name(owner)).to_text(), types)


def test_successor_is_the_zero_label_child() -> None:
    assert successor(name(QNAME)).to_text() == "\\000.nx.example.test."
    assert is_compact_shape(name(QNAME), name("\\000.nx.example.test."))
    assert not is_compact_shape(name(QNAME), name("nx\\000.example.test."))


# --- RFC 9824: NOERROR with NXNAME ------------------------------------------------------------

def test_noerror_compact_denial_with_nxname_says_the_name_does_not_exist(env: DenialLab) -> None:
    response = env.nodata(QNAME, "A", black_lie(env))
    verdict = env.judge(response)
    assert verdict.status is Status.SECURE, verdict
    assert C.COMPACT_DENIAL_NXNAME in verdict.codes
    assert any(COMPACT_NXNAME_TEXT in line for line in verdict.detail)
    assert response.rcode == dns.rcode.NOERROR  # the rcode is kept as seen


def test_noerror_compact_denial_listing_the_queried_type_is_bogus(env: DenialLab) -> None:
    verdict = env.judge(env.nodata(QNAME, "A", black_lie(env, types="A RRSIG NSEC NXNAME")))
    assert verdict.status is Status.BOGUS
    assert C.DENIAL_BITMAP_HAS_TYPE in verdict.codes
    assert C.COMPACT_DENIAL_NXNAME not in verdict.codes


def test_noerror_compact_denial_with_a_broken_signature_is_bogus(env: DenialLab) -> None:
    nsec, sig = black_lie(env)
    verdict = env.judge(env.nodata(QNAME, "A", [nsec, flip_signature(sig)]))
    assert verdict.status is Status.BOGUS
    assert C.BAD_SIGNATURE in verdict.codes


def test_compact_denial_with_nxname_and_ns_is_bogus(env: DenialLab) -> None:
    verdict = env.judge(env.nodata(QNAME, "A", black_lie(env, types="NS RRSIG NSEC NXNAME")))
    assert verdict.status is Status.BOGUS


# --- RFC 9824 4: NXDOMAIN restored from a compact denial (CO flag) ----------------------------

def test_nxdomain_with_the_compact_nsec_is_secure(env: DenialLab) -> None:
    response = env.nxdomain(QNAME, black_lie(env))
    verdict = env.judge(response)
    assert verdict.status is Status.SECURE, verdict
    assert C.COMPACT_DENIAL_NXNAME in verdict.codes
    assert C.DENIAL_NAME_EXISTS not in verdict.codes
    assert response.rcode == dns.rcode.NXDOMAIN


def test_nxdomain_with_the_compact_nsec_listing_the_queried_type_is_bogus(env: DenialLab) -> None:
    verdict = env.judge(env.nxdomain(QNAME, black_lie(env, types="A RRSIG NSEC NXNAME")))
    assert verdict.status is Status.BOGUS
    assert C.DENIAL_BITMAP_HAS_TYPE in verdict.codes


def test_nxdomain_with_an_nsec_at_the_name_without_nxname_is_bogus(env: DenialLab) -> None:
    # Without NXNAME the NSEC owned by the name says it exists (RFC 4035 5.4).
    verdict = env.judge(env.nxdomain(QNAME, black_lie(env, types="RRSIG NSEC")))
    assert verdict.status is Status.BOGUS
    assert C.DENIAL_NAME_EXISTS in verdict.codes


def test_nxdomain_with_the_compact_nsec_broken_signature_is_bogus(env: DenialLab) -> None:
    nsec, sig = black_lie(env)
    verdict = env.judge(env.nxdomain(QNAME, [nsec, flip_signature(sig)]))
    assert verdict.status is Status.BOGUS


# --- compact NODATA without NXNAME (Knot mod-onlinesign, Cloudflare before RFC 9824) -----------

@pytest.mark.parametrize("types", ["RRSIG NSEC", "AAAA RRSIG NSEC"])
def test_compact_nodata_without_nxname_validates_as_nodata(env: DenialLab, types: str) -> None:
    verdict = env.judge(env.nodata(QNAME, "A", black_lie(env, types=types)))
    assert verdict.status is Status.SECURE, verdict
    assert C.COMPACT_DENIAL_NXNAME not in verdict.codes


def test_compact_nodata_listing_the_queried_type_is_bogus(env: DenialLab) -> None:
    verdict = env.judge(env.nodata(QNAME, "A", black_lie(env, types="A RRSIG NSEC")))
    assert verdict.status is Status.BOGUS
    assert C.DENIAL_BITMAP_HAS_TYPE in verdict.codes


# --- RFC 4470 NSEC white lies -----------------------------------------------------------------

def white_lies(env: DenialLab, qname: str = QNAME) -> list[dns.rrset.RRset]:
    """RFC 4470 3 (RFC 4471 modified method): the name's predecessor to its successor, and the
    same around the wildcard at the apex (from ``\\)`` to ``\\000.*``)."""
    first, rest = qname.split(".", 1)
    before = first[:-1] + chr(ord(first[-1]) - 1) + "\\255"
    return [*signed_nsec(env, f"{before}.{rest}", f"{first}\\000.{rest}", "RRSIG NSEC"),
            *signed_nsec(env, "\\).example.test.", "\\000.*.example.test.", "RRSIG NSEC")]


def test_nxdomain_with_white_lies_is_secure(env: DenialLab) -> None:
    verdict = env.judge(env.nxdomain(QNAME, white_lies(env)))
    assert verdict.status is Status.SECURE, verdict


def test_nxdomain_with_a_white_lie_made_for_another_name_is_bogus(env: DenialLab) -> None:
    # The span around ny. does not cover nx.
    verdict = env.judge(env.nxdomain(QNAME, white_lies(env, "ny.example.test.")))
    assert verdict.status is Status.BOGUS
    assert C.DENIAL_NO_COVER in verdict.codes


def test_nxdomain_with_white_lies_and_a_broken_signature_is_bogus(env: DenialLab) -> None:
    nsec, sig, *wildcard = white_lies(env)
    verdict = env.judge(env.nxdomain(QNAME, [nsec, flip_signature(sig), *wildcard]))
    assert verdict.status is Status.BOGUS


# --- NSEC3 white lies (owner H-1, next H+1; the closest encloser matched exactly) -------------

def around(digest: bytes, before: int = 1, after: int = 1) -> tuple[bytes, bytes]:
    value = int.from_bytes(digest, "big")
    return (((value - before) % HASH_SPACE).to_bytes(20, "big"),
            ((value + after) % HASH_SPACE).to_bytes(20, "big"))


@pytest.fixture(scope="module")
def nsec3(env: DenialLab) -> Nsec3Chain:
    return Nsec3Chain(env.zone)


def nsec3_white_lies(chain: Nsec3Chain, qname: str = QNAME,
                     shift: int = 0) -> list[dns.rrset.RRset]:
    apex = chain.digest("example.test.")
    owner, following = around(chain.digest(qname), 1 - shift, 1 + shift)
    wild_owner, wild_next = around(chain.digest("*.example.test."))
    return [
        # RFC 5155 7.2.1: the closest encloser, matched (its next hash is H+1).
        *chain.record_for_hash(apex, "NS SOA RRSIG DNSKEY NSEC3PARAM", around(apex)[1]),
        *chain.record_for_hash(owner, "", following),
        *chain.record_for_hash(wild_owner, "", wild_next),
    ]


def test_nsec3_white_lies_nxdomain_is_secure(env: DenialLab, nsec3: Nsec3Chain) -> None:
    verdict = env.judge(env.nxdomain(QNAME, nsec3_white_lies(nsec3)))
    assert verdict.status is Status.SECURE, verdict


def test_nsec3_white_lie_that_misses_the_hash_is_bogus(env: DenialLab, nsec3: Nsec3Chain) -> None:
    # Shifted two past H: the span (H+1, H+3) no longer covers H.
    verdict = env.judge(env.nxdomain(QNAME, nsec3_white_lies(nsec3, shift=2)))
    assert verdict.status is Status.BOGUS
    assert C.DENIAL_NO_COVER in verdict.codes


def test_nsec3_white_lie_nodata_is_secure(env: DenialLab, nsec3: Nsec3Chain) -> None:
    digest = nsec3.digest("a.example.test.")
    proof = nsec3.record_for_hash(digest, "A RRSIG", around(digest)[1])
    verdict = env.judge(env.nodata("a.example.test.", "TXT", proof))
    assert verdict.status is Status.SECURE, verdict


def test_nsec3_white_lie_nodata_listing_the_type_is_bogus(
    env: DenialLab, nsec3: Nsec3Chain
) -> None:
    digest = nsec3.digest("a.example.test.")
    proof = nsec3.record_for_hash(digest, "A TXT RRSIG", around(digest)[1])
    verdict = env.judge(env.nodata("a.example.test.", "TXT", proof))
    assert verdict.status is Status.BOGUS
    assert C.DENIAL_BITMAP_HAS_TYPE in verdict.codes


def test_nxdomain_with_an_absolute_method_white_lie_is_bogus(env: DenialLab) -> None:
    # RFC 4471 absolute successor \000.nx as next name: nx. looks like an empty non-terminal;
    # Unbound 1.17 answers SERVFAIL for it too (tests/integration/test_online_signing_lab.py).
    proof = [*signed_nsec(env, "nw\\255.example.test.", "\\000.nx.example.test.", "RRSIG NSEC"),
             *white_lies(env)[2:]]
    verdict = env.judge(env.nxdomain(QNAME, proof))
    assert verdict.status is Status.BOGUS
    assert C.DENIAL_NAME_EXISTS in verdict.codes


@pytest.mark.parametrize(("following", "made_on_the_fly"), [
    ("\\000.nx.example.test.", True),
    ("nx\\000.example.test.", True),
    ("\\000.*.example.test.", True),
    ("z.example.test.", False),
    ("example.test.", False),
])
def test_minimally_covering_next_names(following: str, made_on_the_fly: bool) -> None:
    assert is_minimally_covering(name(following)) is made_on_the_fly
