"""Bailiwick: records in a response that the question (and its CNAME/DNAME chain) cannot
justify, split into the ones a resolver would cache (a poisoning payload) and the ones it
discards anyway (RFC 2181 5.4.1).

What fires, and on what evidence:

- ``answer_outside_chain`` (suspicious, high): an answer record owned by neither the question
  name nor a name its CNAME/DNAME chain leads to, in a response that claims authority (AA).
  Without AA (a recursive resolver's answer to its client) the records are ``extraneous``.
- ``out_of_bailiwick_data`` (suspicious, high): an NS or DS RRset in the authority section for
  a zone that encloses no name of the chain: a delegation for an unrelated zone, the
  Kaminsky-style payload (RFC 5452 6).
- ``extraneous_records`` (low, no verdict): data every resolver discards (RFC 2181 5.4.1):
  additional records nothing in the response refers to, authority records of other types than
  zone-cut data, an SOA or NSEC/NSEC3 of an unrelated zone.

Normal behaviour that must not fire:

- Additional addresses of out-of-zone NS, MX, SRV... targets (RFC 1034 4.3.2 step 6, RFC
  2181 5.4.1: trusted less, not an attack), e.g. a .com server giving .net glue, an
  authoritative server adding its out-of-zone name servers' addresses. Such data is suspicious
  only when it contradicts a validated copy (``forgery.crosscheck``).
- A recursive resolver's authority NS and additional glue from any zone on its path.
- Messages that are not standard queries (UPDATE's "answer" section holds prerequisites,
  RFC 2136 2.2), and damaged messages: a resolver rejects those whole (FORMERR), and the lenient
  parse may have turned garbage into records.
- Records of another class than the question's (a resolver ignores them).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import dns.flags
import dns.name
import dns.opcode
import dns.rdatatype

from auditor.evidence import ResponseEvidence, RRsetEvidence, Section
from auditor.findings.catalogue import Finding
from auditor.findings.codes import FindingCode as F
from auditor.forgery.common import ForgeryVerdict, ResponseSummary, forgery_finding

_ZONE_CUT_TYPES = frozenset({dns.rdatatype.NS, dns.rdatatype.DS})
"""Authority data a resolver caches as a delegation: the poisoning payload."""
_AUTHORITY_TYPES = frozenset({dns.rdatatype.NS, dns.rdatatype.SOA, dns.rdatatype.DS,
                              dns.rdatatype.NSEC, dns.rdatatype.NSEC3})
_TARGET_FIELDS = ("target", "exchange", "mname", "hostname", "replacement")
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
        if item.rdtype == dns.rdatatype.CNAME and item.name == name and len(item.rrset):
            return item.rrset[0].target  # type: ignore[no-any-return]
    for item in answers:
        if (item.rdtype == dns.rdatatype.DNAME and name.is_subdomain(item.name)
                and name != item.name and len(item.rrset)):
            # RFC 6672 2.2: substitute the DNAME owner suffix with its target.
            try:
                return name.relativize(item.name).concatenate(item.rrset[0].target)
            except dns.name.NameTooLong:
                return None  # RFC 6672 2.2: YXDOMAIN, no further name
    return None


def audited(evidence: ResponseEvidence) -> bool:
    """Whether the response is a standard-query answer the bailiwick rules apply to."""
    return (evidence.qname is not None and not evidence.problems
            and dns.opcode.from_flags(evidence.flags) == dns.opcode.QUERY)


def _same_class(evidence: ResponseEvidence, item: RRsetEvidence) -> bool:
    return evidence.qclass is None or int(item.rrset.rdclass) == evidence.qclass


def outside_chain(evidence: ResponseEvidence, chain: list[dns.name.Name]) -> list[str]:
    """Answer RRsets whose owner is neither on the chain nor a DNAME above a chain name."""
    if not chain or evidence.qtype in (dns.rdatatype.ANY, dns.rdatatype.AXFR, dns.rdatatype.IXFR):
        return []
    bad = []
    for item in evidence.section(Section.ANSWER):
        if item.name in chain or not _same_class(evidence, item):
            continue
        if item.rdtype == dns.rdatatype.DNAME and any(n.is_subdomain(item.name) for n in chain):
            continue
        bad.append(f"{item.name} {item.rdtype.name}")
    return bad


def _is_ancestor_of_chain(name: dns.name.Name, chain: list[dns.name.Name]) -> bool:
    return any(n.is_subdomain(name) for n in chain)


def _referenced_names(evidence: ResponseEvidence) -> set[dns.name.Name]:
    """Names the answer and authority point at, for which additional data is expected
    (RFC 1034 4.3.2 step 6, RFC 2782 SRV, RFC 3403 NAPTR, RFC 9460 SVCB)."""
    names: set[dns.name.Name] = set()
    for item in (*evidence.section(Section.ANSWER), *evidence.section(Section.AUTHORITY)):
        names.add(item.name)
        for rdata in item.rrset:
            for attribute in _TARGET_FIELDS:
                value = getattr(rdata, attribute, None)
                if isinstance(value, dns.name.Name):
                    names.add(value)
    return names


def response_zone(evidence: ResponseEvidence) -> dns.name.Name | None:
    """The zone an authoritative-side response speaks for: the SOA owner, else the apex NS
    owner (AA set) or the delegating parent (a referral); None for a recursive answer."""
    if evidence.flags & dns.flags.RA and not evidence.flags & dns.flags.AA:
        return None
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


def unrelated_delegations(evidence: ResponseEvidence, chain: list[dns.name.Name]) -> list[str]:
    """Authority NS/DS RRsets for zones that enclose no name of the chain (RFC 5452 6)."""
    return [
        f"authority {item.name} {item.rdtype.name} is not above {chain[-1]}"
        for item in evidence.section(Section.AUTHORITY)
        if item.rdtype in _ZONE_CUT_TYPES and _same_class(evidence, item)
        and not _is_ancestor_of_chain(item.name, chain)
    ]


def extraneous(evidence: ResponseEvidence, chain: list[dns.name.Name]) -> list[str]:
    """Authority and additional records a resolver discards (RFC 2181 5.4.1)."""
    found: list[str] = []
    soa_owners = [i.name for i in evidence.section(Section.AUTHORITY)
                  if i.rdtype == dns.rdatatype.SOA]
    for item in evidence.section(Section.AUTHORITY):
        if not _same_class(evidence, item):
            continue
        if item.rdtype not in _AUTHORITY_TYPES:
            found.append(f"authority {item.name} {item.rdtype.name} (not a zone-cut type)")
        elif item.rdtype in (dns.rdatatype.NSEC, dns.rdatatype.NSEC3):
            if soa_owners and not item.name.is_subdomain(soa_owners[0]):
                found.append(f"authority {item.name} {item.rdtype.name} outside {soa_owners[0]}")
        elif item.rdtype == dns.rdatatype.SOA and not _is_ancestor_of_chain(item.name, chain):
            found.append(f"authority {item.name} SOA is not above {chain[-1]}")
    referenced = _referenced_names(evidence)
    found.extend(f"additional {item.name} {item.rdtype.name} is referenced by nothing"
                 for item in evidence.section(Section.ADDITIONAL)
                 if item.name not in referenced and _same_class(evidence, item))
    return found


@dataclass(frozen=True, slots=True)
class BailiwickFacts:
    """What the bailiwick rules find in a response body (the same for every repeat of it)."""

    chain: tuple[dns.name.Name, ...]
    """``chain_names``."""
    off_chain: tuple[str, ...]
    """``outside_chain``."""
    unrelated: tuple[str, ...]
    """``unrelated_delegations``."""
    zone: dns.name.Name | None
    """``response_zone`` when there are unrelated delegations (else None)."""
    extraneous: tuple[str, ...]
    """``extraneous``."""


def bailiwick_facts(evidence: ResponseEvidence) -> BailiwickFacts | None:
    """The bailiwick rules' view of one response body; None when they do not apply."""
    if not audited(evidence):
        return None
    chain = chain_names(evidence)
    unrelated = unrelated_delegations(evidence, chain)
    return BailiwickFacts(
        chain=tuple(chain),
        off_chain=tuple(outside_chain(evidence, chain)),
        unrelated=tuple(unrelated),
        zone=response_zone(evidence) if unrelated else None,
        extraneous=tuple(extraneous(evidence, chain)),
    )


def bailiwick_findings(summary: ResponseSummary) -> list[Finding]:
    """Findings for records the question cannot justify (see the module docstring)."""
    return findings_from(summary, bailiwick_facts(summary.evidence))


def findings_from(summary: ResponseSummary, facts: BailiwickFacts | None) -> list[Finding]:
    """``bailiwick_findings`` with the response's ``bailiwick_facts`` already known."""
    if facts is None:
        return []
    if not (facts.off_chain or facts.unrelated or facts.extraneous):
        return []
    evidence = summary.evidence
    chain = facts.chain
    refs = [*summary.query_refs, *summary.refs]
    common = {"server": summary.server, "client": summary.client,
              "qname": summary.qname_text, "qtype": summary.qtype_text}
    found = []
    discarded: list[str] = []
    off_chain = facts.off_chain
    if off_chain and evidence.flags & dns.flags.AA:
        found.append(forgery_finding(
            F.ANSWER_OUTSIDE_CHAIN, {**common, "records": "; ".join(off_chain)},
            summary, ForgeryVerdict.SUSPICIOUS, refs,
            reasoning="the response claims authority (AA) yet answers for owners that neither "
            "the question name nor its CNAME/DNAME chain lead to (RFC 1034 4.3.2); an "
            "authoritative server has no reason to, a spoofed answer carrying injected data does",
        ))
    else:
        discarded.extend(f"answer {record}" for record in off_chain)
    unrelated = facts.unrelated
    if unrelated:
        zone = facts.zone
        found.append(forgery_finding(
            F.OUT_OF_BAILIWICK_DATA,
            {**common, "records": "; ".join(unrelated),
             "bailiwick": zone.to_text() if zone is not None else chain[-1].to_text()},
            summary, ForgeryVerdict.SUSPICIOUS, refs,
            reasoning="a delegation (NS/DS) for a zone that holds none of the names asked "
            "about has no place in this response (RFC 2181 5.4.1, RFC 5452 6); it is the "
            "payload that poisons a resolver accepting it for an unrelated zone",
        ))
    discarded.extend(facts.extraneous)
    if discarded:
        noted = forgery_finding(
            F.EXTRANEOUS_RECORDS, {**common, "records": "; ".join(discarded)},
            summary, ForgeryVerdict.SUSPICIOUS, refs,
            reasoning="nothing in the response justifies these records; resolvers discard "
            "them (RFC 2181 5.4.1), so they cannot poison a cache: a sloppy server, not "
            "evidence of an attack",
        )
        found.append(dataclasses.replace(noted, verdict=None))  # hygiene, not an alarm
    return found
