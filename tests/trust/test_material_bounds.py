"""KeyMaterial stays bounded however many zones, keys and forged copies the traffic carries."""

from __future__ import annotations

import base64

import dns.name
import dns.rrset

from auditor.trust import KeyMaterial

NS = 1_000_000_000


def _dnskey(zone: str, n: int) -> dns.rrset.RRset:
    key = base64.b64encode(b"\x03\x01\x00\x01" + n.to_bytes(4, "big") + bytes(56)).decode()
    return dns.rrset.from_text(zone, 3600, "IN", "DNSKEY", f"257 3 8 {key}")


def test_chain_rrsets_are_capped_least_recent_first() -> None:
    material = KeyMaterial(max_chain_rrsets=10)
    for n in range(25):
        material.add_rrset(_dnskey(f"z{n}.example.", n), None, n * NS)
    zones = material.known_zone_names()
    assert len(zones) == 10
    assert dns.name.from_text("z24.example.") in zones
    assert dns.name.from_text("z0.example.") not in zones
    assert material.evicted["chain_rrsets"] == 15


def test_versions_of_one_rrset_are_capped_keeping_the_newest() -> None:
    material = KeyMaterial(max_copies_per_rrset=4)
    for n in range(10):
        material.add_rrset(_dnskey("forged.example.", n), None, n * NS)
    kept = material.dnskey_rrsets(dns.name.from_text("forged.example."))
    assert len(kept) == 4
    assert {entry.first_seen_ns for entry in kept} == {6 * NS, 7 * NS, 8 * NS, 9 * NS}
    assert material.evicted["chain_versions"] == 6


def test_defaults_keep_everything_a_normal_capture_has() -> None:
    material = KeyMaterial()
    for n in range(100):
        material.add_rrset(_dnskey(f"z{n}.example.", n), None, n * NS)
    assert len(material.known_zone_names()) == 100
    assert not material.evicted


def _signed_nsec(zone: str, n: int) -> tuple[dns.rrset.RRset, dns.rrset.RRset]:
    nsec = dns.rrset.from_text(f"a.{zone}", 60, "IN", "NSEC", f"b{n}.{zone} A RRSIG NSEC")
    rrsig = dns.rrset.from_text(
        f"a.{zone}", 60, "IN", "RRSIG",
        f"NSEC 13 3 60 20250801000000 20250501000000 {n % 65536} {zone} "
        + base64.b64encode(n.to_bytes(64, "big")).decode())
    return nsec, rrsig


def test_denial_records_of_ever_new_zones_stay_within_the_cap_and_are_counted() -> None:
    material = KeyMaterial(max_denial=5)
    for n in range(40):
        nsec, rrsig = _signed_nsec(f"z{n}.example.", n)
        material.add_rrset(nsec, rrsig, n * NS)
    assert len(material._denial) == 5
    assert len(material._denial_by_zone) == 5  # zones left without records are forgotten
    assert material.denial_signers() == {dns.name.from_text(f"z{n}.example.")
                                         for n in range(35, 40)}
    assert material.evicted["denial_records"] == 35
    assert material.evicted["denial_zones"] == 35
    # The per-name question the validator asks agrees with the set, evicted zones included.
    assert [n for n in range(40) if material.signed_denial(dns.name.from_text(f"z{n}.example."))
            ] == list(range(35, 40))


def test_signed_copies_of_ever_new_names_stay_within_the_cap_and_are_counted() -> None:
    material = KeyMaterial(max_signed_copies=8)
    for n in range(30):
        a = dns.rrset.from_text(f"h{n}.example.", 60, "IN", "A", "192.0.2.1")
        rrsig = dns.rrset.from_text(
            f"h{n}.example.", 60, "IN", "RRSIG",
            "A 13 2 60 20250801000000 20250501000000 1 example. "
            + base64.b64encode(bytes(64)).decode())
        material.add_rrset(a, rrsig, n * NS)
    assert len(material._copies) == 8
    assert material.evicted["signed_copies"] == 22
