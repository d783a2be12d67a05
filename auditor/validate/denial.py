"""NSEC/NSEC3 denial proofs on dns.name ordering and dns.dnssec.nsec3_hash.

Today: the proof that a delegation has no DS (RFC 4035 5.2, RFC 6840 4.4, RFC 5155 8.6/8.9).
The helpers (bitmap types, NSEC3 matching/covering, closest encloser) are the building blocks
the NXDOMAIN/NODATA/wildcard proofs will reuse. This module only finds which records prove
what; their signatures are checked by the chain, like every other RRset.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import dns.dnssec
import dns.name
import dns.rdatatype
import dns.rdtypes.ANY.NSEC
import dns.rdtypes.ANY.NSEC3

from auditor.trust.material import SignedRRset
from auditor.validate.policy import ValidationPolicy

NSEC = dns.rdtypes.ANY.NSEC.NSEC
NSEC3 = dns.rdtypes.ANY.NSEC3.NSEC3
_OPT_OUT = 0x01
_SHA1 = 1


class ProofKind(StrEnum):
    """How the absence was proven."""

    NSEC = "nsec"
    """An NSEC at the delegation name (RFC 4035 5.2)."""
    NSEC3 = "nsec3"
    """An NSEC3 matching the delegation name's hash (RFC 5155 8.6)."""
    NSEC3_OPT_OUT = "nsec3_opt_out"
    """Closest-encloser proof with an opt-out NSEC3 covering the next closer name (RFC 5155
    8.6, 6.)."""


@dataclass(frozen=True, slots=True)
class DenialProof:
    """Records that together prove a fact, before their signatures are checked."""

    kind: ProofKind
    """The proof shape."""
    zone: dns.name.Name
    """The zone whose NSEC/NSEC3 records make the proof (the parent of the delegation)."""
    rrsets: tuple[SignedRRset, ...]
    """The NSEC/NSEC3 RRsets used; all must validate in ``zone``."""
    detail: str
    """Explanation."""


def bitmap_types(rdata: NSEC | NSEC3) -> frozenset[int]:
    """The RR types present in an NSEC/NSEC3 type bitmap (RFC 4034 4.1.2)."""
    types: set[int] = set()
    for window, bitmap in rdata.windows:
        for index, byte in enumerate(bitmap):
            types.update(
                window * 256 + index * 8 + bit for bit in range(8) if byte & (0x80 >> bit)
            )
    return frozenset(types)


def is_insecure_delegation_bitmap(types: frozenset[int]) -> bool:
    """NS present, DS and SOA absent (RFC 4035 5.2, RFC 6840 4.4: SOA means a zone apex,
    i.e. the child side, which cannot prove anything about the parent's DS)."""
    return (
        dns.rdatatype.NS in types
        and dns.rdatatype.DS not in types
        and dns.rdatatype.SOA not in types
    )


def nsec3_hash_bytes(name: dns.name.Name, rdata: NSEC3) -> bytes:
    """The NSEC3 hash of ``name`` with ``rdata``'s parameters (RFC 5155 5)."""
    text = dns.dnssec.nsec3_hash(name, rdata.salt, rdata.iterations, rdata.algorithm)
    return base64.b32hexdecode(text.upper())


def nsec3_owner_hash(owner: dns.name.Name) -> bytes | None:
    """The hash in an NSEC3 owner's first label, or None when it is not base32hex."""
    try:
        return base64.b32hexdecode(owner.labels[0].decode("ascii").upper())
    except (ValueError, UnicodeDecodeError, IndexError):
        return None


def nsec3_covers(owner_hash: bytes, rdata: NSEC3, target: bytes) -> bool:
    """Whether the NSEC3 span (owner hash, next hash) strictly covers ``target`` (RFC 5155
    8.3), including the span that wraps around the end of the hash ring."""
    following = rdata.next
    if owner_hash < following:
        return owner_hash < target < following
    return target > owner_hash or target < following


def prove_no_ds(
    delegation: dns.name.Name,
    zone: dns.name.Name,
    entries: Sequence[SignedRRset],
    policy: ValidationPolicy,
) -> DenialProof | None:
    """Find, among NSEC/NSEC3 RRsets signed by ``zone``, a proof that ``delegation`` has no
    DS RRset; None when there is none."""
    if not delegation.is_subdomain(zone) or delegation == zone:
        return None
    nsec = _nsec_no_ds(delegation, zone, entries)
    if nsec is not None:
        return nsec
    return _nsec3_no_ds(delegation, zone, entries, policy)


def _nsec_no_ds(
    delegation: dns.name.Name, zone: dns.name.Name, entries: Sequence[SignedRRset]
) -> DenialProof | None:
    for entry in entries:
        rrset = entry.rrset
        if rrset.rdtype != dns.rdatatype.NSEC or rrset.name != delegation:
            continue
        for rdata in rrset:
            # RFC 4035 5.2 / RFC 6840 4.4: exact owner match, NS set, DS and SOA clear.
            if is_insecure_delegation_bitmap(bitmap_types(rdata)):
                return DenialProof(ProofKind.NSEC, zone, (entry,),
                                   f"NSEC at {delegation} has NS without DS or SOA")
    return None


def _nsec3_records(
    zone: dns.name.Name, entries: Sequence[SignedRRset], policy: ValidationPolicy
) -> list[tuple[bytes, NSEC3, SignedRRset]]:
    records: list[tuple[bytes, NSEC3, SignedRRset]] = []
    for entry in entries:
        rrset = entry.rrset
        if rrset.rdtype != dns.rdatatype.NSEC3 or rrset.name.parent() != zone:
            continue
        owner_hash = nsec3_owner_hash(rrset.name)
        if owner_hash is None:
            continue
        # RFC 5155 8.1: unknown hash algorithms are ignored; RFC 9276 3.2: too many
        # iterations make the proof unusable under this policy.
        records.extend(
            (owner_hash, rdata, entry)
            for rdata in rrset
            if rdata.algorithm == _SHA1 and rdata.iterations <= policy.max_nsec3_iterations
        )
    return records


def _nsec3_no_ds(
    delegation: dns.name.Name,
    zone: dns.name.Name,
    entries: Sequence[SignedRRset],
    policy: ValidationPolicy,
) -> DenialProof | None:
    records = _nsec3_records(zone, entries, policy)
    if not records:
        return None
    matching = _nsec3_matching(delegation, records)
    if matching is not None:
        _, rdata, entry = matching
        if is_insecure_delegation_bitmap(bitmap_types(rdata)):
            # RFC 5155 8.6: matching NSEC3 with NS, without DS and SOA.
            return DenialProof(ProofKind.NSEC3, zone, (entry,),
                               f"NSEC3 matching {delegation} has NS without DS or SOA")
        return None
    return _nsec3_opt_out(delegation, zone, records)


def _nsec3_matching(
    name: dns.name.Name, records: list[tuple[bytes, NSEC3, SignedRRset]]
) -> tuple[bytes, NSEC3, SignedRRset] | None:
    for record in records:
        if nsec3_hash_bytes(name, record[1]) == record[0]:
            return record
    return None


def _nsec3_opt_out(
    delegation: dns.name.Name,
    zone: dns.name.Name,
    records: list[tuple[bytes, NSEC3, SignedRRset]],
) -> DenialProof | None:
    # RFC 5155 8.6 / 7.2.1: closest provable encloser, then an opt-out NSEC3 covering the
    # next closer name.
    next_closer = delegation
    encloser = delegation.parent()
    while encloser.is_subdomain(zone):
        found = _nsec3_matching(encloser, records)
        if found is not None:
            for owner_hash, rdata, entry in records:
                target = nsec3_hash_bytes(next_closer, rdata)
                if rdata.flags & _OPT_OUT and nsec3_covers(owner_hash, rdata, target):
                    return DenialProof(
                        ProofKind.NSEC3_OPT_OUT, zone, (found[2], entry),
                        f"closest encloser {encloser} proven; opt-out NSEC3 covers next "
                        f"closer {next_closer}",
                    )
            return None
        if encloser == zone:
            return None
        next_closer = encloser
        encloser = encloser.parent()
    return None
