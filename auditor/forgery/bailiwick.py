"""Bailiwick: records in a response that the question (and its CNAME/DNAME chain) cannot
justify, the classic cache-poisoning payload."""

from __future__ import annotations

import dns.flags
import dns.name
import dns.rdatatype

from auditor.evidence import ResponseEvidence, RRsetEvidence, Section
from auditor.findings.catalogue import Finding
from auditor.forgery.common import ForgeryVerdict, ResponseSummary, forgery_finding

_AUTHORITY_TYPES = frozenset({dns.rdatatype.NS, dns.rdatatype.SOA, dns.rdatatype.DS,
                              dns.rdatatype.NSEC, dns.rdatatype.NSEC3})
_ADDRESS_TYPES = frozenset({dns.rdatatype.A, dns.rdatatype.AAAA})
_MAX_CHAIN = 16


def chain_names(evidence: ResponseEvidence) -> list[dns.name.Name]:
    """The question name and every name its CNAME/DNAME chain in the answer leads to."""
    if evidence.qname is None:
        return []
    answers = evidence.section(Section.ANSWER)
    names = [evidence.qname]
    current = evidence.qname
    for _ in range(_MAX_CHAIN):
        target = _next_name(answers, current)
        if target is None or target in names:
            break
        names.append(target)
        current = target
    return names


def _next_name(answers: tuple[RRsetEvidence, ...], name: dns.name.Name) -> dns.name.Name | None:
    for item in answers:
        if item.rdtype == dns.rdatatype.CNAME and item.name == name:
            return item.rrset[0].target  # type: ignore[no-any-return]
    for item in answers:
        if (item.rdtype == dns.rdatatype.DNAME and name.is_subdomain(item.name)
                and name != item.name):
            # RFC 6672 2.2: substitute the DNAME owner suffix with its target.
            return name.relativize(item.name).concatenate(item.rrset[0].target)
    return None


def outside_chain(evidence: ResponseEvidence, chain: list[dns.name.Name]) -> list[str]:
    """Answer RRsets whose owner is neither on the chain nor a DNAME above a chain name."""
    if not chain or evidence.qtype in (dns.rdatatype.ANY, dns.rdatatype.AXFR, dns.rdatatype.IXFR):
        return []
    bad = []
    for item in evidence.section(Section.ANSWER):
        if item.name in chain:
            continue
        if item.rdtype == dns.rdatatype.DNAME and any(n.is_subdomain(item.name) for n in chain):
            continue
        bad.append(f"{item.name} {item.rdtype.name}")
    return bad


def _is_ancestor_of_chain(name: dns.name.Name, chain: list[dns.name.Name]) -> bool:
    return any(n.is_subdomain(name) for n in chain)


def _referenced_names(evidence: ResponseEvidence) -> set[dns.name.Name]:
    """Names the answer and authority point at, for which additional data is expected."""
    names: set[dns.name.Name] = set()
    for item in (*evidence.section(Section.ANSWER), *evidence.section(Section.AUTHORITY)):
        names.add(item.name)
        for rdata in item.rrset:
            for attribute in ("target", "exchange", "mname"):
                value = getattr(rdata, attribute, None)
                if isinstance(value, dns.name.Name):
                    names.add(value)
    return names


def _glue_bailiwick(evidence: ResponseEvidence) -> dns.name.Name | None:
    """The zone an authoritative-side response speaks for: the SOA owner, else the apex NS
    owner (AA set) or the delegating parent (a referral)."""
    authority = evidence.section(Section.AUTHORITY)
    soa = [item.name for item in authority if item.rdtype == dns.rdatatype.SOA]
    if soa:
        return soa[0]
    ns = [item.name for item in authority if item.rdtype == dns.rdatatype.NS]
    if not ns:
        return None
    if evidence.flags & dns.flags.AA or len(ns[0]) <= 1:
        return ns[0]
    return ns[0].parent()


def out_of_bailiwick(evidence: ResponseEvidence, chain: list[dns.name.Name]) -> list[str]:
    """Authority and additional records the question cannot justify."""
    if not chain:
        return []
    bad: list[str] = []
    soa_owners = [i.name for i in evidence.section(Section.AUTHORITY)
                  if i.rdtype == dns.rdatatype.SOA]
    for item in evidence.section(Section.AUTHORITY):
        if item.rdtype not in _AUTHORITY_TYPES:
            bad.append(f"authority {item.name} {item.rdtype.name} (not a zone-cut type)")
        elif item.rdtype in (dns.rdatatype.NSEC, dns.rdatatype.NSEC3):
            if soa_owners and not item.name.is_subdomain(soa_owners[0]):
                bad.append(f"authority {item.name} {item.rdtype.name} outside {soa_owners[0]}")
        elif not _is_ancestor_of_chain(item.name, chain):
            # RFC 2181 5.4.1 / RFC 5452 6: zone-cut data must be for a zone holding the name.
            bad.append(f"authority {item.name} {item.rdtype.name} is not above {chain[-1]}")
    referenced = _referenced_names(evidence)
    bailiwick = None if evidence.flags & dns.flags.RA else _glue_bailiwick(evidence)
    for item in evidence.section(Section.ADDITIONAL):
        if item.name not in referenced:
            bad.append(f"additional {item.name} {item.rdtype.name} is referenced by nothing")
        elif (bailiwick is not None and item.rdtype in _ADDRESS_TYPES
              and not item.name.is_subdomain(bailiwick)):
            bad.append(f"additional {item.name} {item.rdtype.name} outside {bailiwick}")
    return bad


def bailiwick_findings(summary: ResponseSummary) -> list[Finding]:
    """Findings for answer records off the chain and out-of-bailiwick authority/additional."""
    evidence = summary.evidence
    chain = chain_names(evidence)
    found = []
    off_chain = outside_chain(evidence, chain)
    refs = [*summary.query_refs, *summary.refs]
    common = {"server": summary.server, "client": summary.client,
              "qname": summary.qname_text, "qtype": summary.qtype_text}
    if off_chain:
        found.append(forgery_finding(
            "answer_outside_chain", {**common, "records": "; ".join(off_chain)},
            summary, ForgeryVerdict.SUSPICIOUS, refs,
            reasoning="every answer record must be owned by the question name or a name its "
            "CNAME/DNAME chain leads to (RFC 1034 4.3.2); extra owners are injected data",
        ))
    outside = out_of_bailiwick(evidence, chain)
    if outside:
        zone = _glue_bailiwick(evidence)
        found.append(forgery_finding(
            "out_of_bailiwick_data",
            {**common, "records": "; ".join(outside),
             "bailiwick": zone.to_text() if zone is not None else chain[-1].to_text()},
            summary, ForgeryVerdict.SUSPICIOUS, refs,
            reasoning="authority records must belong to a zone above the queried name and "
            "additional records must serve names the answer or authority mention, within the "
            "responding zone (RFC 2181 5.4.1, RFC 5452 6); others are a poisoning payload",
        ))
    return found
