"""NSEC denial proofs (RFC 4035 5.4, 3.1.3; RFC 4592; RFC 6840 4.1/4.4): NXDOMAIN, NODATA,
empty non-terminals, wildcard NODATA, wildcard answers and delegations without DS."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import dns.name
import dns.rdatatype
import dns.rrset

from auditor.findings.codes import ValidationCode as C
from auditor.validate.compact import COMPACT_NXNAME_TEXT, is_compact_shape, says_nonexistent
from auditor.validate.denial_common import (
    NSEC,
    Claim,
    DenialMemos,
    Outcome,
    ProofResult,
    ancestor,
    bitmap_types,
    common_ancestor,
    denies_type,
    failed,
    is_delegation_bitmap,
    is_insecure_delegation_bitmap,
    nsec_covers,
    wildcard_of,
)


@dataclass(frozen=True, slots=True)
class _Nsec:
    """One NSEC record with its decoded bitmap."""

    rrset: dns.rrset.RRset
    owner: dns.name.Name
    next: dns.name.Name
    types: frozenset[int]


def prove_nsec(
    claim: Claim,
    name: dns.name.Name,
    rdtype: int,
    zone: dns.name.Name,
    rrsets: Sequence[dns.rrset.RRset],
    wildcard_labels: int | None = None,
    memos: DenialMemos | None = None,
) -> ProofResult:
    """Judge NSEC RRsets (already restricted to ``zone``'s signer) against ``claim``
    (``memos``: the validator's, for the type bitmaps)."""
    types = bitmap_types if memos is None else memos.bitmap_types
    records = [
        _Nsec(rrset, rrset.name, rdata.next, types(rdata))
        for rrset in rrsets
        for rdata in rrset
        if isinstance(rdata, NSEC) and rrset.name.is_subdomain(zone)
    ]
    if not records:
        return failed(C.DENIAL_WRONG_ZONE, f"no NSEC record belongs to zone {zone}")
    if claim is Claim.NXDOMAIN:
        return _nxdomain(name, rdtype, zone, records)
    if claim is Claim.NODATA:
        return _nodata(name, rdtype, zone, records)
    if claim is Claim.REFERRAL:
        return _no_ds(name, records)
    assert wildcard_labels is not None
    return _wildcard_answer(name, ancestor(name, wildcard_labels), records)


def _matching(name: dns.name.Name, records: list[_Nsec]) -> _Nsec | None:
    return next((r for r in records if r.owner == name), None)


def _covering(name: dns.name.Name, records: list[_Nsec]) -> _Nsec | None:
    return next((r for r in records if nsec_covers(r.owner, r.next, name)), None)


def _closest_encloser(name: dns.name.Name, record: _Nsec) -> dns.name.Name:
    """RFC 4035 5.4 / RFC 4592 3.3.1: the longest common ancestor of ``name`` with the
    covering record's owner or next name."""
    first = common_ancestor(name, record.owner)
    second = common_ancestor(name, record.next)
    return first if len(first) >= len(second) else second


def _cover_problem(name: dns.name.Name, record: _Nsec) -> ProofResult | None:
    """Why a covering NSEC still does not prove ``name`` absent, if it does not."""
    if name.is_subdomain(record.owner) and (
        is_delegation_bitmap(record.types) or dns.rdatatype.DNAME in record.types
    ):
        # RFC 6840 4.1: an NSEC at a zone cut (NS without SOA) or a DNAME says nothing
        # about names below it.
        return failed(C.DENIAL_PARENT_SIDE,
                      f"NSEC at delegation/DNAME {record.owner} cannot deny {name} below it")
    if record.next.is_subdomain(name) and record.next != name:
        # RFC 4035 5.4: the next name lies below: the name is an empty non-terminal.
        return failed(C.DENIAL_NAME_EXISTS,
                      f"{name} exists as an empty non-terminal above {record.next}")
    return None


def _nxdomain(
    name: dns.name.Name, rdtype: int, zone: dns.name.Name, records: list[_Nsec]
) -> ProofResult:
    match = _matching(name, records)
    if match is not None:
        if says_nonexistent(match.types):
            # RFC 9824 4: a resolver restores NXDOMAIN from a compact denial (CO flag).
            return _compact(name, rdtype, match)
        return failed(C.DENIAL_NAME_EXISTS, f"an NSEC owned by {name} shows it exists")
    cover = _covering(name, records)
    if cover is None:
        return failed(C.DENIAL_NO_COVER, f"no NSEC covers {name}")
    problem = _cover_problem(name, cover)
    if problem is not None:
        return problem
    encloser = _closest_encloser(name, cover)
    if not encloser.is_subdomain(zone):
        return failed(C.DENIAL_WRONG_ZONE, f"closest encloser {encloser} is outside {zone}")
    wildcard = wildcard_of(encloser)
    if _matching(wildcard, records) is not None:
        return failed(C.DENIAL_WILDCARD_NOT_EXCLUDED,
                      f"wildcard {wildcard} exists and would have matched {name}")
    wild_cover = _covering(wildcard, records)
    if wild_cover is None:
        # RFC 4035 5.4 / RFC 4592 4: the wildcard at the closest encloser must be denied.
        return failed(C.DENIAL_WILDCARD_NOT_EXCLUDED, f"no NSEC covers wildcard {wildcard}")
    return _proven((cover, wild_cover),
                   f"NSEC {cover.owner} covers {name}; {wild_cover.owner} covers {wildcard}")


def _nodata(
    name: dns.name.Name, rdtype: int, zone: dns.name.Name, records: list[_Nsec]
) -> ProofResult:
    match = _matching(name, records)
    if match is not None:
        return _nodata_match(name, rdtype, match)
    cover = _covering(name, records)
    if cover is None:
        return failed(C.DENIAL_NO_MATCH, f"no NSEC matches or covers {name}")
    if cover.next.is_subdomain(name) and cover.next != name:
        # Empty non-terminal: the name exists only as an ancestor of the next name.
        return _proven((cover,), f"{name} is an empty non-terminal (NSEC {cover.owner} -> "
                                 f"{cover.next})")
    problem = _cover_problem(name, cover)
    if problem is not None:
        return problem
    # RFC 4035 3.1.3.4: wildcard NODATA, the name is covered and the wildcard at the closest
    # encloser matches without the type.
    wildcard = wildcard_of(_closest_encloser(name, cover))
    wild = _matching(wildcard, records)
    if wild is None:
        return failed(C.DENIAL_NO_MATCH, f"no NSEC matches {name} or wildcard {wildcard}")
    if not denies_type(wild.types, rdtype):
        return failed(C.DENIAL_BITMAP_HAS_TYPE,
                      f"wildcard NSEC {wildcard} lists {_type(rdtype)} or CNAME")
    if not wildcard.is_subdomain(zone):
        return failed(C.DENIAL_WRONG_ZONE, f"wildcard {wildcard} is outside {zone}")
    return _proven((cover, wild), f"wildcard NODATA: {cover.owner} covers {name}, {wildcard} "
                                  f"lacks {_type(rdtype)}")


def _nodata_match(name: dns.name.Name, rdtype: int, match: _Nsec) -> ProofResult:
    if not denies_type(match.types, rdtype):
        # RFC 4035 5.4: the bitmap must lack both the type and CNAME.
        return failed(C.DENIAL_BITMAP_HAS_TYPE,
                      f"NSEC at {name} lists {_type(rdtype)} or CNAME")
    if rdtype != dns.rdatatype.DS and is_delegation_bitmap(match.types):
        # RFC 6840 4.1: the parent-side NSEC at a cut proves only the absence of DS.
        return failed(C.DENIAL_PARENT_SIDE,
                      f"NSEC at delegation {name} cannot deny {_type(rdtype)}")
    if rdtype == dns.rdatatype.DS and dns.rdatatype.SOA in match.types and len(name) > 1:
        # RFC 6840 4.4: the child apex NSEC; true of the child zone, no proof about the parent.
        return ProofResult(Outcome.PROVEN, (C.DENIAL_CHILD_SIDE,), (match.rrset,),
                           (f"DS NODATA from the child apex {name} (proves nothing about the "
                            f"delegation)",))
    if says_nonexistent(match.types):
        return _compact(name, rdtype, match)
    return _proven((match,), f"NSEC at {name} lacks {_type(rdtype)}")


def _compact(name: dns.name.Name, rdtype: int, match: _Nsec) -> ProofResult:
    """RFC 9824 3: the NSEC owned by ``name`` with NXNAME in its bitmap says ``name`` does
    not exist, whether the rcode is NOERROR (as signed) or NXDOMAIN (restored, RFC 9824 4)."""
    if not denies_type(match.types, rdtype):
        # RFC 4035 5.4: a bitmap listing the type (or CNAME) contradicts the denial.
        return failed(C.DENIAL_BITMAP_HAS_TYPE,
                      f"compact denial NSEC at {name} lists {_type(rdtype)} or CNAME")
    if is_delegation_bitmap(match.types) or dns.rdatatype.DNAME in match.types:
        # RFC 9824 3: NXNAME stands alone with NSEC and RRSIG; NS/DNAME contradict it.
        return failed(C.DENIAL_BITMAP_HAS_TYPE,
                      f"compact denial NSEC at {name} also lists NS or DNAME")
    shape = "" if is_compact_shape(name, match.next) else f" (next name {match.next})"
    return ProofResult(Outcome.PROVEN, (C.COMPACT_DENIAL_NXNAME,), (match.rrset,),
                       (f"{COMPACT_NXNAME_TEXT}: NSEC at {name} has NXNAME{shape}",))


def _no_ds(name: dns.name.Name, records: list[_Nsec]) -> ProofResult:
    match = _matching(name, records)
    if match is None:
        return failed(C.DENIAL_NO_MATCH, f"no NSEC at delegation {name}")
    if dns.rdatatype.SOA in match.types:
        return failed(C.DENIAL_CHILD_SIDE, f"NSEC at {name} is the child apex's (RFC 6840 4.4)")
    if not is_insecure_delegation_bitmap(match.types):
        # RFC 4035 5.2: NS set, DS clear.
        return failed(C.DENIAL_BITMAP_HAS_TYPE, f"NSEC at {name} does not show NS without DS")
    return _proven((match,), f"NSEC at {name} has NS without DS or SOA")


def _wildcard_answer(
    name: dns.name.Name, encloser: dns.name.Name, records: list[_Nsec]
) -> ProofResult:
    cover = _covering(name, records)
    if cover is None or _matching(name, records) is not None:
        return failed(C.DENIAL_NO_COVER, f"no NSEC proves {name} does not exist")
    problem = _cover_problem(name, cover)
    if problem is not None:
        return problem
    # RFC 4035 5.3.4: no closer match; the closest encloser derived from the NSEC must be the
    # wildcard's parent (otherwise the next closer name exists).
    derived = _closest_encloser(name, cover)
    if derived != encloser:
        return failed(C.DENIAL_NO_COVER, f"NSEC {cover.owner} does not cover the next closer "
                      f"name below {encloser} (closest encloser {derived})")
    return _proven((cover,), f"NSEC {cover.owner} proves no closer match than *.{encloser}")


def _proven(records: Sequence[_Nsec], text: str) -> ProofResult:
    used = tuple({id(r.rrset): r.rrset for r in records}.values())
    return ProofResult(Outcome.PROVEN, (), used, (text,))


def _type(rdtype: int) -> str:
    return dns.rdatatype.to_text(dns.rdatatype.RdataType.make(rdtype))
