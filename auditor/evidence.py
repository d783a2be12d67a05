"""RRset and RRSIG pairing per response section: the evidence validation judges."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from auditor.memo import IdentityMemo
from auditor.transactions import Transaction


class Section(StrEnum):
    """Message sections that carry resource records (RFC 1035 4.1)."""

    ANSWER = "answer"
    AUTHORITY = "authority"
    ADDITIONAL = "additional"


@dataclass(frozen=True, slots=True)
class RRsetEvidence:
    """One RRset as received, with the RRSIGs that cover it in the same section."""

    section: Section
    """Where the RRset was found."""
    rrset: dns.rrset.RRset
    """The records exactly as parsed from the wire (owner, class, type, TTL, rdata)."""
    rrsigs: dns.rrset.RRset | None
    """The RRSIG records with the same owner and class whose Type Covered is this type
    (RFC 4034 3.1.1), or None when the RRset arrived unsigned."""

    @property
    def name(self) -> dns.name.Name:
        """The owner name."""
        return self.rrset.name

    @property
    def rdtype(self) -> dns.rdatatype.RdataType:
        """The RR type."""
        return self.rrset.rdtype


@dataclass(frozen=True, slots=True)
class ResponseEvidence:
    """Everything one response offers to the validator, with its transaction for provenance."""

    transaction: Transaction
    """The response and its matched query (for addresses, ports, frames and the DO bit asked)."""
    qname: dns.name.Name | None
    """The question name (None for a response without question)."""
    qtype: int | None
    """The question type."""
    qclass: int | None
    """The question class."""
    rcode: int
    """The full response code, including the EDNS extended bits."""
    flags: int
    """The header flags (``dns.flags`` bits)."""
    do: bool
    """The EDNS DO bit of the response (RFC 3225)."""
    query_do: bool | None
    """The DO bit of the matched query; None when the query was not captured."""
    edns: bool
    """Whether the response carried an OPT record."""
    ede: tuple[int, ...]
    """RFC 8914 Extended DNS Error info codes carried in the response's OPT record."""
    rrsets: tuple[RRsetEvidence, ...]
    """Every non-RRSIG RRset of the three sections, paired with its covering RRSIGs."""
    orphan_rrsigs: tuple[RRsetEvidence, ...]
    """RRSIG RRsets covering a type that is absent from their section (section, RRSIG set);
    their ``rrsigs`` field holds the RRSIG records and ``rrset`` the same records."""
    problems: tuple[str, ...]
    """Parse problems of the response (records dnspython had to skip)."""

    @property
    def ts_ns(self) -> int:
        """Capture time of the response."""
        return self.transaction.response.wire.ts_ns

    def section(self, section: Section) -> tuple[RRsetEvidence, ...]:
        """The RRsets of one section, in message order."""
        return tuple(r for r in self.rrsets if r.section is section)


def _pair_section(
    section: Section, rrsets: list[dns.rrset.RRset]
) -> tuple[list[RRsetEvidence], list[RRsetEvidence]]:
    """Pair each RRset with the RRSIGs covering it in the same section (RFC 4035 3.1.1)."""
    signatures: dict[tuple[dns.name.Name, int, int], dns.rrset.RRset] = {}
    plain: list[dns.rrset.RRset] = []
    for rrset in rrsets:
        if rrset.rdtype == dns.rdatatype.RRSIG:
            key = (rrset.name, int(rrset.rdclass), int(rrset.covers))
            if key in signatures:
                # A copy: the parsed message is shared by every repeat and must stay intact.
                merged = signatures[key].copy()
                merged.union_update(rrset)
                signatures[key] = merged
            else:
                signatures[key] = rrset
        else:
            plain.append(rrset)
    paired = [
        RRsetEvidence(
            section,
            rrset,
            signatures.pop((rrset.name, int(rrset.rdclass), int(rrset.rdtype)), None),
        )
        for rrset in plain
    ]
    orphans = [RRsetEvidence(section, sigs, sigs) for sigs in signatures.values()]
    return paired, orphans


@dataclass(frozen=True, slots=True)
class MessageFacts:
    """The RRsets of a parsed message paired with their RRSIGs, shared by its repeats.
    (Header, question and EDNS facts come from the parse stage's ``Summary``.)"""

    rrsets: tuple[RRsetEvidence, ...]
    orphans: tuple[RRsetEvidence, ...]


def _message_facts(message: dns.message.Message) -> MessageFacts:
    rrsets: list[RRsetEvidence] = []
    orphans: list[RRsetEvidence] = []
    for section, records in (
        (Section.ANSWER, message.answer),
        (Section.AUTHORITY, message.authority),
        (Section.ADDITIONAL, message.additional),
    ):
        paired, unpaired = _pair_section(section, list(records))
        rrsets.extend(paired)
        orphans.extend(unpaired)
    return MessageFacts(rrsets=tuple(rrsets), orphans=tuple(orphans))


FactsMemo = IdentityMemo[dns.message.Message, MessageFacts]
"""Message facts by the identity of the shared parsed message (the parse stage hands the same
``Message`` object to every repeat of a message)."""


def facts_memo(size: int) -> FactsMemo:
    """An empty memo of message facts keeping at most ``size`` messages' (a run's caches
    hold one: ``engine/caches.py``)."""
    return IdentityMemo(_message_facts, size)


_NO_RECORDS = MessageFacts((), ())


def build_evidence(transaction: Transaction, memo: FactsMemo | None = None) -> ResponseEvidence:
    """Collect the RRsets and RRSIGs of a response into evidence.

    Header, EDNS and the query's DO bit come from the parse stage's summaries (read once per
    distinct message); only the records need the full parse, memoised per shared message in
    ``memo`` (without one they are paired afresh).
    """
    return evidence_from_facts(transaction, message_facts(transaction.response.message, memo))


def message_facts(message: dns.message.Message | None,
                  memo: FactsMemo | None = None) -> MessageFacts:
    """The paired records of ``message`` (none if it could not be parsed), through ``memo``
    when given."""
    if message is None:
        return _NO_RECORDS
    return memo(message) if memo is not None else _message_facts(message)


def evidence_from_facts(transaction: Transaction, facts: MessageFacts) -> ResponseEvidence:
    """The evidence of a response whose records ``facts`` paired (``build_evidence``; the
    reporting process of ``audit --jobs 2`` gets them with the message: ``scale/carry.py``)."""
    response = transaction.response
    summary = response.summary
    query = transaction.query
    return ResponseEvidence(
        transaction=transaction,
        qname=response.qname,
        qtype=response.qtype,
        qclass=response.qclass,
        rcode=summary.rcode,
        flags=response.flags,
        do=summary.do,
        query_do=query.summary.do if query is not None else None,
        edns=summary.edns,
        ede=summary.ede,
        rrsets=facts.rrsets,
        orphan_rrsigs=facts.orphans,
        problems=response.problems,
    )
