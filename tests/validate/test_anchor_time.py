"""Trust anchors in time (RFC 9718 2.2): an anchor applies only within its validity period at
the reference time; a root whose keys match no anchor in force is a named anchor mismatch, not
a bad signature; a DNSKEY RRset seen only without RRSIGs proves nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import dns.name

from auditor.findings.codes import ValidationCode as C
from auditor.report.chains import ChainDrawer
from auditor.trust import KeyView, TrustAnchors, parse_anchor_text
from auditor.trust.material import KeyMaterial
from auditor.validate import RFC8624, Status, Validator
from tests.validate.signing import NS, WHEN, Lab, Zone, name, respond

DAY = 86_400


def _iso(at_s: int) -> str:
    return datetime.fromtimestamp(at_s, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def _history(old: Zone, new: Zone) -> TrustAnchors:
    """An IANA-style root-anchors.xml: ``old`` valid from WHEN-10d until WHEN+10d, ``new``
    from WHEN+5d on (an overlap, as in a real rollover)."""
    def digest(zone: Zone, key_id: str, valid: str) -> str:
        ds = zone.ds()[0]
        return (f'<KeyDigest id="{key_id}" {valid}><KeyTag>{ds.key_tag}</KeyTag>'
                f"<Algorithm>{ds.algorithm}</Algorithm><DigestType>2</DigestType>"
                f"<Digest>{ds.digest.hex().upper()}</Digest></KeyDigest>")
    xml = ('<?xml version="1.0" encoding="UTF-8"?><TrustAnchor id="lab"><Zone>.</Zone>'
           + digest(old, "old", f'validFrom="{_iso(WHEN - 10 * DAY)}" '
                                f'validUntil="{_iso(WHEN + 10 * DAY)}"')
           + digest(new, "new", f'validFrom="{_iso(WHEN + 5 * DAY)}"')
           + "</TrustAnchor>")
    return TrustAnchors(parse_anchor_text(xml, "lab-root-anchors.xml"))


def _validator(lab: Lab, anchors: TrustAnchors, *, at_ns: int | None = None) -> Validator:
    return Validator(KeyView(anchors, lab.material()), RFC8624, at_ns=at_ns)


def _answer_at(lab: Lab, at_s: int) -> object:
    return respond("www.example.test.", "A", lab.signed_a(), ts=at_s)


def test_the_anchor_in_force_at_the_packet_time_validates() -> None:
    lab = Lab()
    anchors = _history(lab.root, Zone(name("."), 13, slot=7))
    verdict = _validator(lab, anchors).judge(_answer_at(lab, WHEN))
    assert verdict.status is Status.SECURE, verdict


def test_after_the_anchor_expired_the_same_root_is_an_anchor_mismatch() -> None:
    lab = Lab()
    new = Zone(name("."), 13, slot=7)
    anchors = _history(lab.root, new)
    verdict = _validator(lab, anchors, at_ns=(WHEN + 20 * DAY) * NS).judge(
        _answer_at(lab, WHEN))
    assert verdict.status is Status.BOGUS
    assert C.TRUST_ANCHOR_MISMATCH in verdict.codes
    assert C.BAD_SIGNATURE not in verdict.codes
    text = " ".join(verdict.rrsets[0].detail)
    assert f"{new.ds()[0].key_tag}/13" in text  # the anchor held is named
    assert "--trust-anchor" in text


def test_before_any_anchor_is_in_force_the_verdict_is_indeterminate() -> None:
    lab = Lab()
    anchors = _history(lab.root, Zone(name("."), 13, slot=7))
    verdict = _validator(lab, anchors, at_ns=(WHEN - 20 * DAY) * NS).judge(
        _answer_at(lab, WHEN))
    assert verdict.status is Status.INDETERMINATE
    assert C.NO_ANCHOR_IN_FORCE in verdict.codes
    assert any("before" in m and "anchors held" in m for m in verdict.missing), verdict.missing


def test_a_private_root_under_the_iana_anchors_is_a_named_mismatch_not_a_bad_signature() -> None:
    from auditor.trust import load_anchors

    lab = Lab()
    verdict = _validator(lab, load_anchors([])).judge(_answer_at(lab, WHEN))
    assert verdict.status is Status.BOGUS
    assert C.TRUST_ANCHOR_MISMATCH in verdict.codes
    # Negative twin: with the lab's own anchor the same capture is secure.
    assert _validator(lab, lab.anchors()).judge(_answer_at(lab, WHEN)).status is Status.SECURE


def test_ad_on_an_anchor_mismatch_is_another_anchor_not_ad_on_bogus() -> None:
    from auditor.trust import load_anchors

    lab = Lab()
    answer = respond("www.example.test.", "A", lab.signed_a(), ad=True)
    verdict = _validator(lab, load_anchors([])).judge(answer)
    assert C.AD_WITH_OTHER_ANCHOR in verdict.codes
    assert C.AD_ON_BOGUS not in verdict.codes
    # Negative twin: a real bad signature under the right anchor stays ad_on_bogus.
    from tests.validate.signing import flip_signature

    data, sigs = lab.signed_a()
    forged = respond("www.example.test.", "A", [data, flip_signature(sigs)], ad=True)
    verdict = _validator(lab, lab.anchors()).judge(forged)
    assert C.AD_ON_BOGUS in verdict.codes and C.AD_WITH_OTHER_ANCHOR not in verdict.codes


def test_a_dnskey_rrset_seen_only_without_rrsigs_is_indeterminate_not_bogus() -> None:
    lab = Lab()
    material = KeyMaterial()
    responses = lab.key_responses()
    leaf_keys = lab.leaf.dnskey_rrset()
    unsigned = respond("example.test.", "DNSKEY", [leaf_keys], query_do=False)
    for evidence in [r for r in responses if r.qname != lab.leaf.origin or r.qtype != 48]:
        material.observe(evidence)
    material.observe(unsigned)
    verdict = Validator(KeyView(lab.anchors(), material), RFC8624).judge(
        _answer_at(lab, WHEN))
    assert verdict.status is Status.INDETERMINATE, verdict
    assert C.DNSKEY_UNSIGNED_ONLY in verdict.codes
    assert any("without RRSIGs" in m for m in verdict.missing)
    # Negative twin: once the signed copy is seen, the answer validates.
    material.observe(lab.dnskey_response(lab.leaf))
    verdict = Validator(KeyView(lab.anchors(), material), RFC8624).judge(
        _answer_at(lab, WHEN))
    assert verdict.status is Status.SECURE


def test_the_chain_drawing_shows_only_the_anchor_in_force_as_trusted() -> None:
    lab = Lab()
    new = Zone(name("."), 13, slot=7)
    validator = _validator(lab, _history(lab.root, new))
    validator.judge(_answer_at(lab, WHEN))
    links = ChainDrawer(validator).chain("example.test.", WHEN)
    anchors = {link.text.split()[3]: link.status for link in links if link.kind == "anchor"}
    old_tag = f"{lab.root.ds()[0].key_tag}/13"
    new_tag = f"{new.ds()[0].key_tag}/13"
    assert anchors == {old_tag: "trusted", new_tag: "not in force"}
    later = ChainDrawer(validator).chain("example.test.", WHEN + 20 * DAY)
    anchors = {link.text.split()[3]: link.status for link in later if link.kind == "anchor"}
    assert anchors == {old_tag: "not in force", new_tag: "trusted"}
    assert dns.name.root.to_text() in {link.zone for link in links}


def test_a_dnskey_rrset_stripped_of_rrsigs_although_do_was_set_is_bogus() -> None:
    # Twin of the DO=0 case: asked with DO, the RRSIGs RFC 4035 3.1.1 requires are missing
    # (the lab's stripped.test., as Unbound says SERVFAIL).
    lab = Lab()
    material = KeyMaterial()
    for evidence in [r for r in lab.key_responses()
                     if r.qname != lab.leaf.origin or r.qtype != 48]:
        material.observe(evidence)
    material.observe(respond("example.test.", "DNSKEY", [lab.leaf.dnskey_rrset()],
                             query_do=True))
    verdict = Validator(KeyView(lab.anchors(), material), RFC8624).judge(
        _answer_at(lab, WHEN))
    assert verdict.status is Status.BOGUS, verdict
    assert C.RRSIGS_MISSING in verdict.codes


def test_a_revoked_ksk_named_by_the_parents_ds_still_validates_the_zone() -> None:
    # Issue 12 (differential class revoked-ksk-matching-ds): RFC 5011 2.1 revocation binds
    # trust anchors; a key the parent's validated DS names is trusted by that DS, as Unbound
    # and BIND validate it. Twin: the same revoked key as a trust anchor is refused.
    import dns.dnssec
    import dns.rrset

    from tests.validate.signing import EXPIRATION, INCEPTION, private_key

    lab = Lab()
    private = private_key(13, 40)
    revoked = dns.dnssec.make_dnskey(private.public_key(), 13, flags=257 | 0x80)
    keys = dns.rrset.from_rdata(lab.leaf.origin, 3600, revoked, lab.leaf.zsk)
    sig = dns.dnssec.sign(keys, private, lab.leaf.origin, revoked, inception=INCEPTION,
                          expiration=EXPIRATION, policy=dns.dnssec.allow_all_policy)
    signed_keys = [keys, dns.rrset.from_rdata(lab.leaf.origin, 3600, sig)]
    ds = dns.rrset.from_rdata(lab.leaf.origin, 3600, dns.dnssec.make_ds(
        lab.leaf.origin, revoked, "SHA256", policy=dns.dnssec.allow_all_policy))
    material = KeyMaterial()
    for evidence in (lab.dnskey_response(lab.root), lab.dnskey_response(lab.tld),
                     lab.ds_response(lab.tld, lab.root),
                     respond("example.test.", "DS", [ds, lab.tld.sign(ds)]),
                     respond("example.test.", "DNSKEY", signed_keys)):
        material.observe(evidence)
    answer = respond("www.example.test.", "A", lab.signed_a())
    verdict = Validator(KeyView(lab.anchors(), material), RFC8624).judge(answer)
    assert verdict.status is Status.SECURE, verdict
    # The DNSKEY RRset itself, signed only by the revoked KSK, validates too (Unbound: AD).
    keys_answer = respond("example.test.", "DNSKEY", signed_keys)
    assert Validator(KeyView(lab.anchors(), material), RFC8624).judge(
        keys_answer).status is Status.SECURE
    anchored = TrustAnchors(parse_anchor_text(f"example.test. IN DS {ds[0].to_text()}\n", "a"))
    verdict = Validator(KeyView(anchored, material), RFC8624).judge(answer)
    assert verdict.status is Status.BOGUS and C.KEY_REVOKED in verdict.codes


def test_below_a_zone_whose_validated_ds_names_keys_it_lacks_everything_is_bogus() -> None:
    # Differential class cd-data-below-insecure-ancestor: test. publishes a DS for
    # example.test., whose servers answer DNSKEY with no data (the zone is not signed): the
    # zone is bogus (RFC 4035 5.2), and so is a child zone seen below it.
    from tests.validate.signing import Zone, name, rrset

    lab = Lab()
    child = Zone(name("sub.example.test."), 13, slot=6)
    soa = rrset("example.test.", "SOA", "ns.example.test. h.example.test. 1 7200 3600 86400 300")
    material = KeyMaterial()
    for evidence in (lab.dnskey_response(lab.root), lab.dnskey_response(lab.tld),
                     lab.ds_response(lab.tld, lab.root), lab.ds_response(lab.leaf, lab.tld),
                     lab.dnskey_response(child)):
        material.observe(evidence)
    data = rrset("www.sub.example.test.", "A", "192.0.2.3")
    answer = respond("www.sub.example.test.", "A", [data, child.sign(data)])
    without_nodata = Validator(KeyView(lab.anchors(), material), RFC8624).judge(answer)
    material.observe(respond("example.test.", "DNSKEY", authority=[soa], aa=True))
    verdict = Validator(KeyView(lab.anchors(), material), RFC8624).judge(answer)
    assert verdict.status is Status.BOGUS, verdict
    # Twin: before the DNSKEY NODATA was seen, the missing link is only unknown.
    assert without_nodata.status is Status.INDETERMINATE
