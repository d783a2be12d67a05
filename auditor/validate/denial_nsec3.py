"""NSEC3 denial proofs (RFC 5155 8, 7.2 for what servers send; RFC 9276 3 for parameters):
closest encloser, NXDOMAIN, NODATA, wildcard NODATA, wildcard answers, DS absence, opt-out."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import dns.name
import dns.rdatatype
import dns.rrset

from auditor.findings.codes import ValidationCode as C
from auditor.validate.budget import BudgetExceeded, WorkBudget
from auditor.validate.denial_common import (
    NSEC3,
    OPT_OUT,
    SHA1,
    Claim,
    DenialMemos,
    Outcome,
    ProofResult,
    ancestor,
    denies_type,
    failed,
    is_delegation_bitmap,
    is_insecure_delegation_bitmap,
    label_count,
    next_closer,
    nsec3_covers,
    nsec3_owner_hash,
    nsec3_well_formed,
    wildcard_of,
)
from auditor.validate.policy import ValidationPolicy


@dataclass(frozen=True, slots=True)
class _Nsec3:
    """One usable NSEC3 record."""

    rrset: dns.rrset.RRset
    owner_hash: bytes
    rdata: NSEC3
    types: frozenset[int]

    @property
    def opt_out(self) -> bool:
        return bool(self.rdata.flags & OPT_OUT)


@dataclass(frozen=True, slots=True)
class _Encloser:
    """A closest encloser proof (RFC 5155 8.3)."""

    name: dns.name.Name
    match: _Nsec3
    next_closer: dns.name.Name
    cover: _Nsec3


class _Ring:
    """The usable NSEC3 records of one zone, with matching and covering by hash. Records are
    grouped by parameters (salt, iterations), so a name is hashed once per parameter set,
    not once per record; each hash is charged to ``budget`` (CVE-2023-50868)."""

    def __init__(self, records: list[_Nsec3], budget: WorkBudget | None,
                 digest: Callable[[dns.name.Name, bytes, int], bytes]) -> None:
        self.records = records
        self._budget = budget
        self._digest = digest
        groups: dict[tuple[bytes, int], list[_Nsec3]] = {}
        for record in records:
            params = (bytes(record.rdata.salt), int(record.rdata.iterations))
            groups.setdefault(params, []).append(record)
        self._groups = [(salt, iterations, members,
                         {r.owner_hash: r for r in reversed(members)})
                        for (salt, iterations), members in groups.items()]

    def _hash(self, name: dns.name.Name, salt: bytes, iterations: int) -> bytes:
        if self._budget is not None:
            self._budget.charge_hash(name, salt, iterations)
        return self._digest(name, salt, iterations)

    def matching(self, name: dns.name.Name) -> _Nsec3 | None:
        for salt, iterations, _, by_owner in self._groups:
            found = by_owner.get(self._hash(name, salt, iterations))
            if found is not None:
                return found
        return None

    def covering(self, name: dns.name.Name) -> _Nsec3 | None:
        for salt, iterations, members, _ in self._groups:
            target = self._hash(name, salt, iterations)
            found = next((r for r in members if nsec3_covers(r.owner_hash, r.rdata, target)),
                         None)
            if found is not None:
                return found
        return None


def prove_nsec3(
    claim: Claim,
    name: dns.name.Name,
    rdtype: int,
    zone: dns.name.Name,
    rrsets: Sequence[dns.rrset.RRset],
    policy: ValidationPolicy,
    wildcard_labels: int | None = None,
    budget: WorkBudget | None = None,
    memos: DenialMemos | None = None,
) -> ProofResult:
    """Judge NSEC3 RRsets (already restricted to ``zone``'s signer) against ``claim``; the
    hashing is charged to ``budget`` (``memos``: the validator's bitmaps and hashes)."""
    in_zone = [r for r in rrsets if r.name.parent() == zone and nsec3_owner_hash(r.name)]
    if not in_zone:
        # RFC 5155 8.3: NSEC3 owners are one label below the zone apex.
        return failed(C.DENIAL_WRONG_ZONE, f"no NSEC3 record is owned by a hash in {zone}")
    # RFC 9276 3.2: the iteration limit is checked before any hash is computed.
    notes, unusable = _parameter_notes(in_zone, policy)
    if unusable is not None:
        return unusable
    if memos is None:
        memos = DenialMemos()
    ring = _Ring(_usable(in_zone, memos.bitmap_types), budget, memos.digest)
    if not ring.records:
        if _malformed(in_zone):
            # A SHA-1 NSEC3 whose hashes are not 20 octets is malformed, not of an unknown
            # algorithm: it proves nothing, so the proof fails (bogus, as Unbound says);
            # calling it insecure would let anyone strip a denial to insecure.
            return failed(C.NSEC3_MALFORMED, "NSEC3 records with a SHA-1 hash whose owner "
                          "or next hashed owner is not 20 octets prove nothing (RFC 5155 3.1.7)")
        # RFC 5155 8.1/8.2: records with unknown hash or flags are ignored; none remain.
        return ProofResult(Outcome.UNUSABLE, (*notes, C.NSEC3_UNKNOWN_ALGORITHM),
                           tuple(in_zone), ("no NSEC3 record with a known hash and flags",))
    try:
        result = _dispatch(claim, name, rdtype, zone, ring, wildcard_labels)
    except BudgetExceeded as exhausted:
        # CVE-2023-50868: as Unbound's MAX_NSEC3_CALCULATIONS, the hashing stops; the proof is
        # not made, so the answer is bogus.
        return failed(C.VALIDATION_BUDGET_EXCEEDED,
                      f"validation budget exceeded: NSEC3 proof for {name} needs more than "
                      f"{exhausted}")
    if result.outcome is Outcome.FAILED:
        return result
    return ProofResult(result.outcome, (*notes, *result.codes), result.used, result.detail)


def _parameter_notes(
    rrsets: list[dns.rrset.RRset], policy: ValidationPolicy
) -> tuple[tuple[C, ...], ProofResult | None]:
    notes: list[C] = []
    for rrset in rrsets:
        owner_hash = nsec3_owner_hash(rrset.name) or b""
        for rdata in rrset:
            if rdata.algorithm != SHA1 or not nsec3_well_formed(owner_hash, rdata):
                continue  # ignored or malformed records: their parameters say nothing
            if rdata.iterations > policy.max_nsec3_iterations:
                # RFC 9276 3.2: validators treat responses above their limit as insecure.
                return (), ProofResult(
                    Outcome.UNUSABLE, (C.NSEC3_ITERATIONS_TOO_HIGH,), tuple(rrsets),
                    (f"NSEC3 iterations {rdata.iterations} above the policy limit "
                     f"{policy.max_nsec3_iterations}",))
            if rdata.iterations and C.NSEC3_ITERATIONS_NONZERO not in notes:
                notes.append(C.NSEC3_ITERATIONS_NONZERO)  # RFC 9276 3.1: SHOULD be 0
            if rdata.salt and C.NSEC3_SALT_PRESENT not in notes:
                notes.append(C.NSEC3_SALT_PRESENT)  # RFC 9276 3.1: SHOULD NOT use a salt
    return tuple(notes), None


def _usable(rrsets: list[dns.rrset.RRset],
            types_of: Callable[[NSEC3], frozenset[int]]) -> list[_Nsec3]:
    records: list[_Nsec3] = []
    for rrset in rrsets:
        owner_hash = nsec3_owner_hash(rrset.name)
        assert owner_hash is not None
        records.extend(
            _Nsec3(rrset, owner_hash, rdata, types_of(rdata))
            for rdata in rrset
            # RFC 5155 8.1: unknown hash algorithms are ignored; 8.2: flags other than
            # opt-out are ignored too; RFC 5155 3.1.7: a SHA-1 hash is 20 octets.
            if rdata.algorithm == SHA1 and not rdata.flags & ~OPT_OUT
            and nsec3_well_formed(owner_hash, rdata)
        )
    return records


def _malformed(rrsets: list[dns.rrset.RRset]) -> bool:
    """Whether some SHA-1 NSEC3 with known flags has hashes of the wrong length."""
    for rrset in rrsets:
        owner_hash = nsec3_owner_hash(rrset.name)
        assert owner_hash is not None
        if any(rdata.algorithm == SHA1 and not rdata.flags & ~OPT_OUT
               and not nsec3_well_formed(owner_hash, rdata) for rdata in rrset):
            return True
    return False


def _dispatch(
    claim: Claim,
    name: dns.name.Name,
    rdtype: int,
    zone: dns.name.Name,
    ring: _Ring,
    wildcard_labels: int | None,
) -> ProofResult:
    if claim is Claim.NXDOMAIN:
        return _nxdomain(name, zone, ring)
    if claim is Claim.NODATA:
        return _nodata(name, rdtype, zone, ring)
    if claim is Claim.REFERRAL:
        return _no_ds(name, zone, ring)
    assert wildcard_labels is not None
    return _wildcard_answer(name, ancestor(name, wildcard_labels), ring)


def _closest_encloser(
    name: dns.name.Name, zone: dns.name.Name, ring: _Ring
) -> _Encloser | ProofResult:
    """RFC 5155 8.3: the longest proper ancestor of ``name`` matched by an NSEC3, and an NSEC3
    covering the next closer name."""
    candidate = name
    while candidate != zone:
        candidate = candidate.parent()
        match = ring.matching(candidate)
        if match is None:
            continue
        if candidate != zone and (is_delegation_bitmap(match.types)
                                  or dns.rdatatype.DNAME in match.types):
            # RFC 5155 8.3 / RFC 6840 4.1: an NSEC3 at a cut or DNAME proves nothing below.
            return failed(C.DENIAL_PARENT_SIDE,
                          f"NSEC3 matching {candidate} is a delegation or DNAME")
        closer = next_closer(name, candidate)
        cover = ring.covering(closer)
        if cover is None:
            return failed(C.DENIAL_NO_COVER, f"no NSEC3 covers next closer name {closer}")
        return _Encloser(candidate, match, closer, cover)
    return failed(C.DENIAL_NO_CLOSEST_ENCLOSER, f"no NSEC3 matches an ancestor of {name}")


def _nxdomain(name: dns.name.Name, zone: dns.name.Name, ring: _Ring) -> ProofResult:
    if ring.matching(name) is not None:
        return failed(C.DENIAL_NAME_EXISTS, f"an NSEC3 matches {name}: it exists")
    encloser = _closest_encloser(name, zone, ring)
    if isinstance(encloser, ProofResult):
        return encloser
    wildcard = wildcard_of(encloser.name)
    wild = ring.covering(wildcard)
    if wild is None:
        # RFC 5155 8.4: an NSEC3 must cover the wildcard at the closest encloser.
        return failed(C.DENIAL_WILDCARD_NOT_EXCLUDED, f"no NSEC3 covers wildcard {wildcard}")
    used = (encloser.match, encloser.cover, wild)
    text = (f"closest encloser {encloser.name}, next closer {encloser.next_closer} and "
            f"wildcard {wildcard} covered")
    return _opt_out_or_proven(encloser, used, text)


def _opt_out_or_proven(encloser: _Encloser, used: Sequence[_Nsec3], text: str) -> ProofResult:
    if encloser.cover.opt_out:
        # RFC 5155 9.2: no AD when the next closer name's covering NSEC3 has opt-out set.
        return ProofResult(Outcome.OPT_OUT, (C.NSEC3_OPT_OUT,), _rrsets(used),
                           (f"{text}; the next closer span is opt-out",))
    return ProofResult(Outcome.PROVEN, (), _rrsets(used), (text,))


def _nodata(
    name: dns.name.Name, rdtype: int, zone: dns.name.Name, ring: _Ring
) -> ProofResult:
    match = ring.matching(name)
    if match is not None:
        return _nodata_match(name, rdtype, match)
    encloser = _closest_encloser(name, zone, ring)
    if isinstance(encloser, ProofResult):
        return failed(C.DENIAL_NO_MATCH, f"no NSEC3 matches {name}", *encloser.codes)
    wildcard = wildcard_of(encloser.name)
    wild = ring.matching(wildcard)
    if wild is not None:
        # RFC 5155 8.7: wildcard NODATA.
        if not denies_type(wild.types, rdtype):
            return failed(C.DENIAL_BITMAP_HAS_TYPE,
                          f"NSEC3 matching {wildcard} lists {_type(rdtype)} or CNAME")
        return _opt_out_or_proven(encloser, (encloser.match, encloser.cover, wild),
                                  f"wildcard NODATA at {wildcard} for {name}")
    if encloser.cover.opt_out:
        # RFC 5155 8.6 (and erratum 3441 for other types): no matching NSEC3, the next closer
        # name lies in an opt-out span: insecure.
        return ProofResult(Outcome.OPT_OUT, (C.NSEC3_OPT_OUT,),
                           _rrsets((encloser.match, encloser.cover)),
                           (f"{name} lies in an opt-out span below {encloser.name}",))
    return failed(C.DENIAL_NO_MATCH, f"no NSEC3 matches {name} or wildcard {wildcard}")


def _nodata_match(name: dns.name.Name, rdtype: int, match: _Nsec3) -> ProofResult:
    if not denies_type(match.types, rdtype):
        # RFC 5155 8.5/8.6: the type and CNAME bits must be clear.
        return failed(C.DENIAL_BITMAP_HAS_TYPE,
                      f"NSEC3 matching {name} lists {_type(rdtype)} or CNAME")
    if rdtype != dns.rdatatype.DS and is_delegation_bitmap(match.types):
        # RFC 6840 4.1: the parent-side NSEC3 at a cut proves only the absence of DS.
        return failed(C.DENIAL_PARENT_SIDE,
                      f"NSEC3 matching delegation {name} cannot deny {_type(rdtype)}")
    if rdtype == dns.rdatatype.DS and dns.rdatatype.SOA in match.types and len(name) > 1:
        # RFC 5155 B.6: the child's own apex answer; RFC 6840 4.4: no proof for the parent.
        return ProofResult(Outcome.PROVEN, (C.DENIAL_CHILD_SIDE,), (match.rrset,),
                           (f"DS NODATA from the child apex {name}",))
    return ProofResult(Outcome.PROVEN, (), (match.rrset,),
                       (f"NSEC3 matching {name} lacks {_type(rdtype)}",))


def _no_ds(name: dns.name.Name, zone: dns.name.Name, ring: _Ring) -> ProofResult:
    match = ring.matching(name)
    if match is not None:
        if dns.rdatatype.SOA in match.types:
            return failed(C.DENIAL_CHILD_SIDE, f"NSEC3 matching {name} is the child apex's")
        if not is_insecure_delegation_bitmap(match.types):
            # RFC 5155 8.9: NS set, DS clear.
            return failed(C.DENIAL_BITMAP_HAS_TYPE,
                          f"NSEC3 matching {name} does not show NS without DS")
        return ProofResult(Outcome.PROVEN, (), (match.rrset,),
                           (f"NSEC3 matching {name} has NS without DS or SOA",))
    encloser = _closest_encloser(name, zone, ring)
    if isinstance(encloser, ProofResult):
        return failed(C.DENIAL_NO_MATCH, f"no NSEC3 matches delegation {name}", *encloser.codes)
    if not encloser.cover.opt_out:
        # RFC 5155 8.9: without a matching NSEC3 only an opt-out span can hide the delegation.
        return failed(C.DENIAL_NO_MATCH,
                      f"no NSEC3 matches {name} and its covering span is not opt-out")
    return ProofResult(Outcome.OPT_OUT, (C.NSEC3_OPT_OUT,),
                       _rrsets((encloser.match, encloser.cover)),
                       (f"delegation {name} lies in an opt-out span below {encloser.name}",))


def _wildcard_answer(name: dns.name.Name, encloser: dns.name.Name, ring: _Ring) -> ProofResult:
    if label_count(name) <= label_count(encloser):
        return failed(C.DENIAL_NO_COVER, f"{name} is not below wildcard parent {encloser}")
    closer = next_closer(name, encloser)
    cover = ring.covering(closer)
    if cover is None:
        # RFC 5155 8.8: the next closer name must be covered.
        return failed(C.DENIAL_NO_COVER, f"no NSEC3 covers next closer name {closer}")
    text = f"NSEC3 covers next closer {closer} of wildcard *.{encloser}"
    if cover.opt_out:
        # RFC 5155 9.2: an opt-out span may hide an unsigned delegation at the next closer
        # name, so the wildcard expansion is not proven: insecure, never secure.
        return ProofResult(Outcome.OPT_OUT, (C.NSEC3_OPT_OUT,), (cover.rrset,),
                           (f"{text}; the span is opt-out",))
    return ProofResult(Outcome.PROVEN, (), (cover.rrset,), (text,))


def _rrsets(records: Sequence[_Nsec3]) -> tuple[dns.rrset.RRset, ...]:
    return tuple({id(r.rrset): r.rrset for r in records}.values())


def _type(rdtype: int) -> str:
    return dns.rdatatype.to_text(dns.rdatatype.RdataType.make(rdtype))
