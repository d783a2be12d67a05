"""NSEC/NSEC3 denial proofs: the entry points.

``prove_denial`` judges the NSEC/NSEC3 records of one response against what it claims
(NXDOMAIN, NODATA, wildcard answer, delegation without DS), with the shapes in
``denial_nsec`` (RFC 4035 5.4) and ``denial_nsec3`` (RFC 5155 8); ``prove_no_ds`` finds, among
NSEC/NSEC3 records gathered from the whole capture, the proof that a delegation has no DS
(RFC 4035 5.2, RFC 6840 4.4, RFC 5155 8.6/8.9) for the chain of trust. This module only finds
which records prove what; their signatures are checked like every other RRset.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import dns.name
import dns.rdatatype
import dns.rrset

from auditor.findings.codes import ValidationCode
from auditor.trust.material import SignedRRset
from auditor.validate.budget import BudgetExceeded, WorkBudget
from auditor.validate.denial_common import (
    NSEC,
    NSEC3,
    OPT_OUT,
    SHA1,
    Claim,
    DenialMemos,
    Outcome,
    ProofResult,
    bitmap_types,
    failed,
    is_delegation_bitmap,
    is_insecure_delegation_bitmap,
    nsec3_covers,
    nsec3_owner_hash,
    nsec3_well_formed,
)
from auditor.validate.denial_nsec import prove_nsec
from auditor.validate.denial_nsec3 import prove_nsec3
from auditor.validate.policy import ValidationPolicy

__all__ = [
    "NSEC",
    "NSEC3",
    "Claim",
    "DenialMemos",
    "DenialProof",
    "Outcome",
    "ProofKind",
    "ProofResult",
    "bitmap_types",
    "is_insecure_delegation_bitmap",
    "nsec3_covers",
    "nsec3_owner_hash",
    "prove_denial",
    "prove_no_ds",
]

_OPT_OUT = OPT_OUT
_SHA1 = SHA1


def prove_denial(
    claim: Claim,
    name: dns.name.Name,
    rdtype: int,
    zone: dns.name.Name,
    records: Sequence[tuple[dns.rrset.RRset, dns.name.Name]],
    policy: ValidationPolicy,
    *,
    wildcard_labels: int | None = None,
    budget: WorkBudget | None = None,
    memos: DenialMemos | None = None,
) -> ProofResult:
    """Judge a response's NSEC/NSEC3 RRsets, each paired with its RRSIG signer, against
    ``claim`` about ``name``/``rdtype`` in ``zone``. For a wildcard answer,
    ``wildcard_labels`` is the RRSIG Labels field (RFC 4035 5.3.4). NSEC3 hashing is charged
    to ``budget``; ``memos``: the validator's bitmaps and hashes."""
    if not records:
        return failed(ValidationCode.NSEC_MISSING, f"no NSEC/NSEC3 record for {name}")
    if not name.is_subdomain(zone):
        return failed(ValidationCode.DENIAL_WRONG_ZONE, f"{name} is not in zone {zone}")
    own = [rrset for rrset, signer in records if signer == zone]
    foreign = len(own) < len(records)
    nsec = [r for r in own if r.rdtype == dns.rdatatype.NSEC]
    nsec3 = [r for r in own if r.rdtype == dns.rdatatype.NSEC3]
    results: list[ProofResult] = []
    if nsec:
        results.append(prove_nsec(claim, name, rdtype, zone, nsec, wildcard_labels, memos))
    if nsec3:
        results.append(prove_nsec3(claim, name, rdtype, zone, nsec3, policy, wildcard_labels,
                                   budget, memos))
    for result in results:
        if result.outcome is not Outcome.FAILED:
            return result
    if not results:
        return failed(ValidationCode.DENIAL_WRONG_ZONE,
                      f"every NSEC/NSEC3 record was signed by another zone than {zone}")
    worst = results[-1]
    if foreign and ValidationCode.DENIAL_WRONG_ZONE not in worst.codes:
        return ProofResult(worst.outcome, (*worst.codes, ValidationCode.DENIAL_WRONG_ZONE),
                           worst.used, (*worst.detail, f"records signed by other zones than "
                                        f"{zone} were ignored"))
    return worst


class ProofKind(StrEnum):
    """How the absence was proven."""

    NSEC = "nsec"
    """An NSEC at the delegation name (RFC 4035 5.2)."""
    NSEC3 = "nsec3"
    """An NSEC3 matching the delegation name's hash (RFC 5155 8.6)."""
    NSEC3_OPT_OUT = "nsec3_opt_out"
    """Closest-encloser proof with an opt-out NSEC3 covering the next closer name (RFC 5155
    8.6, 6.)."""
    NSEC3_ITERATIONS = "nsec3_iterations"
    """The zone's NSEC3 records use more iterations than the policy allows: its denials
    cannot be checked and are treated as insecure (RFC 9276 3.2)."""


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


def prove_no_ds(
    delegation: dns.name.Name,
    zone: dns.name.Name,
    entries: Sequence[SignedRRset],
    policy: ValidationPolicy,
    *,
    budget: WorkBudget | None = None,
    memos: DenialMemos | None = None,
) -> DenialProof | None:
    """Find, among NSEC/NSEC3 RRsets signed by ``zone``, a proof that ``delegation`` has no
    DS RRset; None when there is none or when ``budget`` runs out while hashing (the budget
    records it). ``memos``: the validator's bitmaps and hashes."""
    if not delegation.is_subdomain(zone) or delegation == zone:
        return None
    if memos is None:
        memos = DenialMemos()
    nsec = _nsec_no_ds(delegation, zone, entries, memos)
    if nsec is not None:
        return nsec
    try:
        found = _nsec3_no_ds(delegation, zone, entries, policy, budget, memos)
    except BudgetExceeded:  # CVE-2023-50868: no proof within the budget
        return None
    return found if found is not None else _nsec3_beyond_policy(delegation, zone, entries,
                                                                policy)


def _nsec3_beyond_policy(
    delegation: dns.name.Name,
    zone: dns.name.Name,
    entries: Sequence[SignedRRset],
    policy: ValidationPolicy,
) -> DenialProof | None:
    """RFC 9276 3.2: a zone whose NSEC3 chain uses more iterations than the policy allows has
    denials a validator does not check and treats as insecure, the absence of a DS included;
    no hash is computed (checked before any hashing, CVE-2023-50868). Needs the NSEC3 RRsets
    (validated by the caller) and none usable under the policy."""
    above = [entry for entry in entries
             if entry.rrset.rdtype == dns.rdatatype.NSEC3 and entry.rrset.name.parent() == zone
             and all(rdata.algorithm == _SHA1
                     and rdata.iterations > policy.max_nsec3_iterations
                     for rdata in entry.rrset)]
    if not above:
        return None
    iterations = max(rdata.iterations for entry in above for rdata in entry.rrset)
    return DenialProof(ProofKind.NSEC3_ITERATIONS, zone, (above[0],),
                       f"the NSEC3 chain of {zone} uses {iterations} iterations, above the "
                       f"policy's {policy.max_nsec3_iterations}: {delegation} is treated as an "
                       f"insecure delegation (RFC 9276 3.2)")


def _nsec_no_ds(
    delegation: dns.name.Name, zone: dns.name.Name, entries: Sequence[SignedRRset],
    memos: DenialMemos,
) -> DenialProof | None:
    for entry in entries:
        rrset = entry.rrset
        if rrset.rdtype != dns.rdatatype.NSEC or rrset.name != delegation:
            continue
        for rdata in rrset:
            # RFC 4035 5.2 / RFC 6840 4.4: exact owner match, NS set, DS and SOA clear.
            if is_insecure_delegation_bitmap(memos.bitmap_types(rdata)):
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
        # iterations make the proof unusable under this policy (checked before hashing);
        # RFC 5155 3.1.7: malformed hash lengths prove nothing.
        records.extend(
            (owner_hash, rdata, entry)
            for rdata in rrset
            if rdata.algorithm == _SHA1 and rdata.iterations <= policy.max_nsec3_iterations
            and nsec3_well_formed(owner_hash, rdata)
        )
    return records


def _nsec3_no_ds(
    delegation: dns.name.Name,
    zone: dns.name.Name,
    entries: Sequence[SignedRRset],
    policy: ValidationPolicy,
    budget: WorkBudget | None,
    memos: DenialMemos,
) -> DenialProof | None:
    records = _nsec3_records(zone, entries, policy)
    if not records:
        return None
    matching = _nsec3_matching(delegation, records, budget, memos)
    if matching is not None:
        _, rdata, entry = matching
        if is_insecure_delegation_bitmap(memos.bitmap_types(rdata)):
            # RFC 5155 8.6: matching NSEC3 with NS, without DS and SOA.
            return DenialProof(ProofKind.NSEC3, zone, (entry,),
                               f"NSEC3 matching {delegation} has NS without DS or SOA")
        return None
    return _nsec3_opt_out(delegation, zone, records, budget, memos)


def _nsec3_matching(
    name: dns.name.Name,
    records: list[tuple[bytes, NSEC3, SignedRRset]],
    budget: WorkBudget | None,
    memos: DenialMemos,
) -> tuple[bytes, NSEC3, SignedRRset] | None:
    for record in records:
        if memos.hash_bytes(name, record[1], budget) == record[0]:
            return record
    return None


def _nsec3_opt_out(
    delegation: dns.name.Name,
    zone: dns.name.Name,
    records: list[tuple[bytes, NSEC3, SignedRRset]],
    budget: WorkBudget | None,
    memos: DenialMemos,
) -> DenialProof | None:
    # RFC 5155 8.6 / 7.2.1: closest provable encloser, then an opt-out NSEC3 covering the
    # next closer name.
    next_closer = delegation
    encloser = delegation.parent()
    while encloser.is_subdomain(zone):
        found = _nsec3_matching(encloser, records, budget, memos)
        if found is not None:
            if encloser != zone and _cut_or_dname(memos.bitmap_types(found[1])):
                # RFC 6840 4.1 / RFC 5155 8.3: an NSEC3 at a zone cut (or a DNAME) is the
                # parent's view of the cut; it proves nothing about names below it, so no
                # opt-out span can make a delegation under another zone's cut insecure.
                return None
            for owner_hash, rdata, entry in records:
                target = memos.hash_bytes(next_closer, rdata, budget)
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


def _cut_or_dname(types: frozenset[int]) -> bool:
    """Whether an NSEC3 with these bitmap ``types`` was made at a zone cut (NS without SOA)
    or at a DNAME."""
    return is_delegation_bitmap(types) or dns.rdatatype.DNAME in types
