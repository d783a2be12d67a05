"""Published RFC examples (tests/data/dnssec/*.zone) validate at a time inside their window,
and each negative twin (flipped signature byte, time past expiration) does not."""

from __future__ import annotations

from pathlib import Path

import dns.dnssec
import dns.rdatatype
import dns.rrset
import dns.zonefile
import pytest

from auditor.findings import ValidationCode as C
from auditor.trust import KeyMaterial, KeyView, TrustAnchor, TrustAnchors
from auditor.validate import PERMISSIVE, RFC8624, RFC9904, Status, ValidationPolicy, Validator
from tests.validate.signing import flip_signature, respond

DATA = Path(__file__).resolve().parents[1] / "data" / "dnssec"

# (file, query name, query type, a time inside the validity window, policy)
VECTORS = [
    ("rfc6605_p256.zone", "www.example.net.", "A", 1_281_700_000, RFC8624),
    ("rfc6605_p384.zone", "www.example.net.", "A", 1_281_700_000, RFC8624),
    ("rfc8080_ed25519.zone", "example.com.", "MX", 1_439_000_000, RFC8624),
    ("rfc8080_ed448.zone", "example.com.", "MX", 1_439_000_000, RFC8624),
    # The RFC 4035 signatures verify byte for byte (1024-bit RSASHA1 key 38519).
    ("rfc4035_appendix_b.zone", "x.w.example.", "MX", 1_082_000_000, RFC8624),
    ("rfc4035_appendix_b.zone", "xx.example.", "A", 1_082_000_000, RFC8624),
    ("rfc4035_appendix_b.zone", "example.", "NS", 1_082_000_000, PERMISSIVE),
]


def _records(file: str) -> list[dns.rrset.RRset]:
    return dns.zonefile.read_rrsets((DATA / file).read_text(), rdclass=None, relativize=False)


def _pick(records: list[dns.rrset.RRset], owner: str, rdtype: str) -> list[dns.rrset.RRset]:
    wanted = dns.rdatatype.from_text(rdtype)
    return [r for r in records if r.name.to_text() == owner
            and (r.rdtype == wanted or (r.rdtype == dns.rdatatype.RRSIG and r.covers == wanted))]


def _validator(records: list[dns.rrset.RRset], policy: ValidationPolicy, at: int) -> Validator:
    (keys,) = [r for r in records if r.rdtype == dns.rdatatype.DNSKEY]
    anchors = TrustAnchors([TrustAnchor(keys.name, None, k, "rfc") for k in keys])
    return Validator(KeyView(anchors, KeyMaterial()), policy, at_ns=at * 1_000_000_000)


@pytest.mark.parametrize(("file", "qname", "qtype", "at", "policy"), VECTORS)
def test_published_vector_validates(
    file: str, qname: str, qtype: str, at: int, policy: ValidationPolicy
) -> None:
    records = _records(file)
    answer = _pick(records, qname, qtype)
    verdict = _validator(records, policy, at).judge(respond(qname, qtype, answer))
    assert verdict.status is Status.SECURE, verdict


@pytest.mark.parametrize(("file", "qname", "qtype", "at", "policy"), VECTORS)
def test_published_vector_negative_twins(
    file: str, qname: str, qtype: str, at: int, policy: ValidationPolicy
) -> None:
    records = _records(file)
    data, sigs = sorted(_pick(records, qname, qtype), key=lambda r: r.rdtype == 46)
    flipped = _validator(records, policy, at).judge(
        respond(qname, qtype, [data, flip_signature(sigs, 7)]))
    assert flipped.status is Status.BOGUS
    assert C.BAD_SIGNATURE in flipped.codes
    late = _validator(records, policy, at + 100 * 86_400).judge(respond(qname, qtype, [data, sigs]))
    assert late.status is Status.BOGUS
    assert C.SIGNATURE_EXPIRED in late.codes


@pytest.mark.parametrize("file", ["rfc6605_p256.zone", "rfc6605_p384.zone",
                                  "rfc8080_ed25519.zone"])
def test_published_ds_digests_match(file: str) -> None:
    records = _records(file)
    (keys,) = [r for r in records if r.rdtype == dns.rdatatype.DNSKEY]
    (ds_set,) = [r for r in records if r.rdtype == dns.rdatatype.DS]
    ds = ds_set[0]
    computed = dns.dnssec.make_ds(keys.name, keys[0], ds.digest_type,
                                  policy=dns.dnssec.allow_all_policy)
    assert computed == ds
    assert dns.dnssec.key_id(keys[0]) == ds.key_tag


def test_rfc4035_rsasha1_is_unsupported_under_rfc9904() -> None:
    records = _records("rfc4035_appendix_b.zone")
    answer = _pick(records, "xx.example.", "A")
    verdict = _validator(records, RFC9904, 1_082_000_000).judge(
        respond("xx.example.", "A", answer))
    assert verdict.status is Status.INSECURE
    assert C.UNSUPPORTED_DNSKEY_ALGORITHM in verdict.codes


def test_rfc4035_wildcard_expansion_is_recognised() -> None:
    records = _records("rfc4035_appendix_b.zone")
    answer = _pick(records, "a.z.w.example.", "MX")
    verdict = _validator(records, PERMISSIVE, 1_082_000_000).judge(
        respond("a.z.w.example.", "MX", answer))
    # RFC 4035 5.3.4: without the NSEC proving the exact name absent, the expansion is bogus.
    assert verdict.status is Status.BOGUS
    assert C.WILDCARD_EXPANDED in verdict.codes and C.WILDCARD_UNPROVEN in verdict.codes
    assert C.NSEC_MISSING in verdict.codes
