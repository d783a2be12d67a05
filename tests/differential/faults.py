"""Apply a scenario's post-signing faults to a signed zone (edits of the zone, not re-signing)."""

from __future__ import annotations

from collections.abc import Iterable

import dns.dnssec
import dns.name
import dns.node
import dns.rdata
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rdtypes.ANY.NSEC
import dns.rdtypes.ANY.NSEC3
import dns.zone

from tests.differential.model import Fault, FaultKind

_ALTERED = {"A": "192.0.2.250", "AAAA": "2001:db8::dead", "TXT": '"altered"', "MX": "20 altered"}


def _remove_rrsig(
    zone: dns.zone.Zone, owner: dns.name.Name, rdtype: dns.rdatatype.RdataType
) -> None:
    node = zone.get_node(owner)
    if node is not None:
        node.delete_rdataset(dns.rdataclass.IN, dns.rdatatype.RRSIG, rdtype)


def _alter(zone: dns.zone.Zone, owner: dns.name.Name, rdtype: dns.rdatatype.RdataType) -> None:
    rdataset = zone.get_rdataset(owner, rdtype)
    if rdataset is None:
        return
    replacement = dns.rdata.from_text(
        dns.rdataclass.IN, rdtype, _ALTERED[dns.rdatatype.to_text(rdtype)], origin=zone.origin
    )
    first = rdataset[0]
    rdataset.discard(first)
    rdataset.add(replacement if replacement not in rdataset else first)


def _nsec_covering(zone: dns.zone.Zone, name: dns.name.Name) -> dns.name.Name | None:
    """Owner of the NSEC matching or covering *name* (RFC 4034 6.1 canonical order)."""
    owners = sorted(
        o
        for o, node in zone.nodes.items()
        if node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.NSEC) is not None
    )
    before = [owner for owner in owners if owner <= name]
    return before[-1] if before else (owners[-1] if owners else None)


def _nsec3_covering(zone: dns.zone.Zone, name: dns.name.Name) -> dns.name.Name | None:
    """Owner of the NSEC3 matching or covering the hash of *name* (RFC 5155 8.3)."""
    chain: list[tuple[str, dns.name.Name, dns.rdtypes.ANY.NSEC3.NSEC3]] = []
    for owner, node in zone.nodes.items():
        rdataset = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.NSEC3)
        if rdataset is not None:
            chain.append((owner.labels[0].decode().upper(), owner, rdataset[0]))
    if not chain:
        return None
    chain.sort(key=lambda entry: entry[0])
    params = chain[0][2]
    hashed = dns.dnssec.nsec3_hash(name, params.salt, params.iterations, params.algorithm)
    before = [entry for entry in chain if entry[0] <= hashed]
    return (before[-1] if before else chain[-1])[1]


def _strip_denial(zone: dns.zone.Zone, name: dns.name.Name) -> None:
    owner = _nsec3_covering(zone, name) or _nsec_covering(zone, name)
    if owner is None or owner == zone.origin:
        return
    node = zone.get_node(owner)
    assert node is not None
    for rdtype in (dns.rdatatype.NSEC, dns.rdatatype.NSEC3):
        node.delete_rdataset(dns.rdataclass.IN, rdtype)
        node.delete_rdataset(dns.rdataclass.IN, dns.rdatatype.RRSIG, rdtype)
    if not len(node):
        zone.delete_node(owner)


def _break_chain(zone: dns.zone.Zone, name: dns.name.Name) -> None:
    """Delete *name*'s data and signatures; an NSEC there goes too, NSEC3s stay (RFC 5155 7.1)."""
    if zone.get_node(name) is not None:
        zone.delete_node(name)


_UNSUPPORTED = frozenset({1, 3, 6})
"""RSAMD5 and DSA: RFC 8624 3.1 MUST NOT validate."""


def _keep_only_unsupported(
    zone: dns.zone.Zone, owner: dns.name.Name, rdtype: dns.rdatatype.RdataType
) -> None:
    """Leave only the RRSIGs of an unsupported algorithm over *owner*/*rdtype*."""
    node = zone.get_node(owner)
    sigs = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.RRSIG, rdtype) if node else None
    if node is None or sigs is None:
        return
    kept = [sig for sig in sigs if sig.algorithm in _UNSUPPORTED]
    node.delete_rdataset(dns.rdataclass.IN, dns.rdatatype.RRSIG, rdtype)
    if kept:
        replacement = dns.rdataset.from_rdata_list(sigs.ttl, kept)
        node.replace_rdataset(replacement)


def _target(fault: Fault, origin: dns.name.Name) -> tuple[dns.name.Name, dns.rdatatype.RdataType]:
    owner, _, rdtype = fault.target.partition(" ")
    name = dns.name.from_text(owner, origin=origin)
    return name, dns.rdatatype.from_text(rdtype or "A")


def apply(zone: dns.zone.Zone, faults: Iterable[Fault]) -> None:
    """Edit *zone* in place for every post-signing fault among *faults*."""
    for fault in faults:
        name, rdtype = _target(fault, zone.origin)
        match fault.kind:
            case FaultKind.RRSIG_REMOVED:
                _remove_rrsig(zone, name, rdtype)
            case FaultKind.RDATA_ALTERED:
                _alter(zone, name, rdtype)
            case FaultKind.NSEC_STRIPPED:
                _strip_denial(zone, name)
            case FaultKind.CHAIN_BROKEN:
                _break_chain(zone, name)
            case FaultKind.UNSUPPORTED_ONLY:
                _keep_only_unsupported(zone, name, rdtype)
            case _:
                pass  # signing-time and parent-side faults


def replace_apex_dnskeys(zone: dns.zone.Zone, donor: dns.zone.Zone) -> None:
    """Put *donor*'s apex DNSKEY RRset and its RRSIGs in place of *zone*'s."""
    apex = zone.find_node(zone.origin)
    donor_apex = donor.find_node(donor.origin)
    for covers in (dns.rdatatype.NONE, dns.rdatatype.DNSKEY):
        rdtype = dns.rdatatype.RRSIG if covers else dns.rdatatype.DNSKEY
        apex.delete_rdataset(dns.rdataclass.IN, rdtype, covers)
        found = donor_apex.get_rdataset(dns.rdataclass.IN, rdtype, covers)
        if found is not None:
            apex.replace_rdataset(found)
