"""Reads one response for the denial proofs: which name is denied, in which zone, with which
NSEC/NSEC3 records, and how a proof plus the verdicts of its records become a status."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import dns.name
import dns.rdatatype
import dns.rrset

from auditor.evidence import ResponseEvidence, RRsetEvidence, Section
from auditor.findings.codes import ValidationCode
from auditor.validate.denial_common import Outcome, ProofResult
from auditor.validate.verdict import RRsetVerdict, Status, worst

_DENIAL_TYPES = frozenset({dns.rdatatype.NSEC, dns.rdatatype.NSEC3})


def denied_name(qname: dns.name.Name, chain: Sequence[RRsetEvidence]) -> dns.name.Name:
    """The name a negative answer is about: the question name, or the target the answer's
    CNAME/DNAME chain ends at (RFC 1034 3.6.2, RFC 6672 3)."""
    name = qname
    for item in chain:
        rrset = item.rrset
        if rrset.rdtype == dns.rdatatype.CNAME and rrset.name == name:
            name = rrset[0].target
        elif rrset.rdtype == dns.rdatatype.DNAME and name.is_subdomain(rrset.name):
            name = dname_substitution(name, rrset)
    return name


def dname_substitution(name: dns.name.Name, dname: dns.rrset.RRset) -> dns.name.Name:
    """RFC 6672 2.2: replace the DNAME owner suffix of ``name`` by the DNAME target."""
    return name.relativize(dname.name).concatenate(dname[0].target)


def denial_records(
    evidence: ResponseEvidence, zone: dns.name.Name | None = None
) -> list[tuple[dns.rrset.RRset, dns.name.Name]]:
    """Signed NSEC/NSEC3 RRsets of the authority section with their signer (``zone`` when
    one of the RRSIGs names it)."""
    records = []
    for item in evidence.section(Section.AUTHORITY):
        if item.rrset.rdtype not in _DENIAL_TYPES or not item.rrsigs:
            continue
        if _wildcard_expanded(item):
            # An NSEC/NSEC3 synthesised from a wildcard (RRSIG Labels below the owner's, RFC
            # 4035 5.3.2) was never in the zone's chain: it proves nothing (RFC 4592 4.5).
            continue
        signers = [rrsig.signer for rrsig in item.rrsigs]
        records.append((item.rrset, zone if zone is not None and zone in signers else signers[0]))
    return records


def _wildcard_expanded(item: RRsetEvidence) -> bool:
    """Whether every RRSIG of the RRset says it was expanded from a wildcard: its Labels field
    is below the owner's label count (not counting the root or a leading ``*``)."""
    assert item.rrsigs is not None
    owner = item.rrset.name
    labels = len(owner) - 1 - (1 if owner.is_wild() else 0)
    return all(int(rrsig.labels) < labels for rrsig in item.rrsigs)


def referral_point(evidence: ResponseEvidence, name: dns.name.Name) -> dns.name.Name | None:
    """The delegation of a referral (RFC 4035 3.1.4): unsigned authority NS at an ancestor of
    ``name``, no SOA."""
    authority = evidence.section(Section.AUTHORITY)
    if any(i.rrset.rdtype == dns.rdatatype.SOA for i in authority):
        return None
    for item in authority:
        rrset = item.rrset
        if rrset.rdtype == dns.rdatatype.NS and item.rrsigs is None and name.is_subdomain(
                rrset.name):
            return rrset.name
    return None


def soa_zone(evidence: ResponseEvidence, name: dns.name.Name) -> dns.name.Name | None:
    """The owner of the authority SOA when it encloses ``name``."""
    for item in evidence.section(Section.AUTHORITY):
        if item.rrset.rdtype == dns.rdatatype.SOA and name.is_subdomain(item.rrset.name):
            return item.rrset.name
    return None


def deepest_signer(
    records: Sequence[tuple[dns.rrset.RRset, dns.name.Name]],
    name: dns.name.Name,
    *,
    proper: bool = False,
) -> dns.name.Name | None:
    """The deepest denial signer enclosing ``name`` (strictly above it when ``proper``)."""
    candidates = [s for _, s in records
                  if name.is_subdomain(s) and not (proper and s == name)]
    return max(candidates, key=len, default=None)


def weigh(
    result: ProofResult, verdicts: Mapping[int, RRsetVerdict]
) -> tuple[Status, list[ValidationCode], list[str]]:
    """The status of a proof: its outcome, bounded by the verdicts of the records it used
    (every NSEC/NSEC3 relied on must validate in the zone)."""
    codes = list(result.codes)
    detail = list(result.detail)
    if result.outcome is Outcome.FAILED:
        return Status.BOGUS, [*codes, ValidationCode.DNSSEC_BOGUS], detail
    used = [verdicts[id(rrset)] for rrset in result.used if id(rrset) in verdicts]
    status = worst([v.status for v in used])
    if status is not Status.SECURE:
        for verdict in used:
            codes.extend(c for c in verdict.codes if c not in codes)
            detail.extend(verdict.detail)
        return status, codes, detail
    if result.outcome is Outcome.PROVEN:
        return Status.SECURE, codes, detail
    return Status.INSECURE, codes, detail


def with_status(
    verdict: RRsetVerdict,
    status: Status,
    codes: Sequence[ValidationCode],
    detail: Sequence[str],
) -> RRsetVerdict:
    """``verdict`` with another status, its codes and detail extended (de-duplicated)."""
    merged = list(verdict.codes)
    merged.extend(c for c in codes if c not in merged)
    return dataclasses.replace(verdict, status=status, codes=tuple(merged),
                               detail=tuple(dict.fromkeys((*verdict.detail, *detail))))
