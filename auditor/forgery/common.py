"""The per-response summary every forgery signal reads, and how a signal becomes a Finding."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

import dns.flags
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset

from auditor.evidence import ResponseEvidence, RRsetEvidence, Section
from auditor.findings.catalogue import Finding, Provenance, make_finding
from auditor.findings.codes import FindingCode as F
from auditor.memo import IdentityMemo
from auditor.messages import HashedName
from auditor.trust.material import rdata_set_digest
from auditor.validate.verdict import RRsetVerdict, Status, Verdict

FrameRef = tuple[str, int]
"""(capture name, 1-based frame number)."""

NS_PER_S = 1_000_000_000
MAX_CITED_FRAMES = 256
"""A finding cites at most this many frames (a flood is summarised, not listed)."""


class ForgeryVerdict(StrEnum):
    """How strong a forgery finding is (the ``verdict`` of the finding)."""

    FORGED = "forged"
    """Proven: bogus, stripped, or contradicting data validated in the same capture."""
    SUSPICIOUS = "suspicious"
    """Heuristics only: timing, hop count, ID/port patterns, bailiwick."""


@dataclass(frozen=True, slots=True)
class ResponseSummary:
    """What the forgery signals need from one judged response, computed once."""

    evidence: ResponseEvidence
    """The response evidence (records, flags, transaction)."""
    verdict: Verdict
    """The validator's judgement of it."""
    capture: str
    """Capture of the frame that completed the response."""
    refs: tuple[FrameRef, ...]
    """Frames of the response itself."""
    query_refs: tuple[FrameRef, ...]
    """Frames of the matched query (empty when unmatched)."""
    ts_ns: int
    """Capture time of the response."""
    query_ts_ns: int | None
    """Capture time of the matched query."""
    server: str
    """Source address of the response."""
    sport: int
    """Source port."""
    client: str
    """Destination address."""
    cport: int
    """Destination port."""
    msg_id: int
    """DNS ID."""
    question_key: bytes | None
    """Canonical question (name, type, class) wire form."""
    qname_text: str
    """Question name for messages (``-`` when absent)."""
    qtype_text: str
    """Question type mnemonic (``-`` when absent)."""
    answer_digest: bytes
    """Order- and TTL-independent digest of the rcode and the answer (or, for an empty
    answer, the authority SOA/NS owners): equal digests mean the same answer."""
    matched: bool
    """Whether a query was matched to this response."""
    response_index: int
    """0 for the first response to the query, 1, 2... for later ones."""
    query_copies: int
    """Copies of the matched query sent so far (retries, re-asks); 1 when unmatched."""
    question_mismatch: bool
    """Unmatched because the query on this flow and ID asks another question."""
    transport: str
    """``udp`` or ``tcp``."""

    @property
    def flags(self) -> int:
        """Header flags of the response."""
        return self.evidence.flags

    @property
    def status(self) -> Status:
        """Response-level validation status."""
        return self.verdict.status

    @property
    def hop_limit(self) -> int:
        """IP TTL / hop limit of the packet that completed the response."""
        return self.evidence.transaction.response.wire.hop_limit

    @property
    def rtt_ns(self) -> int | None:
        """Response time after the matched query, when there is one."""
        return None if self.query_ts_ns is None else self.ts_ns - self.query_ts_ns

    @property
    def all_refs(self) -> tuple[FrameRef, ...]:
        """Query and response frames."""
        return self.query_refs + self.refs

    @property
    def frame(self) -> int:
        """Number of the frame that completed the response."""
        return self.evidence.transaction.response.wire.frame

    @property
    def recursive(self) -> bool:
        """RA set: the answer comes from a recursive resolver."""
        return bool(self.flags & dns.flags.RA)


Facts = TypeVar("Facts")


def body_key(evidence: ResponseEvidence) -> bytes:
    """The response after its ID with TTLs masked (the verdict cache's body key): equal keys
    mean equal header, question and records, whatever the ID, addresses, time or TTLs."""
    response = evidence.transaction.response
    return response.parsed.ttl_free_key(response.wire.wire)


class BodyMemo(Generic[Facts]):
    """Values derived from a response's body alone (no TTL, address, time or verdict),
    computed once per distinct body (``body_key``), most recently used kept."""

    __slots__ = ("_compute", "_entries", "_size")

    def __init__(self, compute: Callable[[ResponseEvidence], Facts], size: int) -> None:
        self._compute = compute
        self._entries: OrderedDict[bytes, Facts] = OrderedDict()
        self._size = max(1, size)

    def __call__(self, evidence: ResponseEvidence) -> Facts:
        key = body_key(evidence)
        entries = self._entries
        if key in entries:
            entries.move_to_end(key)
            return entries[key]
        facts = entries[key] = self._compute(evidence)
        if len(entries) > self._size:
            entries.popitem(last=False)
        return facts

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Forget every entry."""
        self._entries.clear()


@dataclass(frozen=True, slots=True)
class BodyFacts:
    """The summary fields that depend on the response body alone."""

    qname_text: str
    qtype_text: str
    answer_digest: bytes


def body_facts(evidence: ResponseEvidence,
               rrset_digest: Callable[[dns.rrset.RRset], bytes] = rdata_set_digest,
               name_text: Callable[[dns.name.Name], str] = dns.name.Name.to_text,
               ) -> BodyFacts:
    """``BodyFacts`` of one response (``rrset_digest``: ``rdata_set_digest``, ``name_text``:
    ``Name.to_text``, each maybe memoised)."""
    return BodyFacts(
        qname_text=name_text(evidence.qname) if evidence.qname is not None else "-",
        qtype_text=type_text(evidence.qtype),
        answer_digest=answer_digest(evidence, rrset_digest),
    )


BODY_MEMO_SIZE = 4_000
"""Distinct bodies whose forgery facts are kept (like the message facts memo)."""


def summarize(evidence: ResponseEvidence, verdict: Verdict,
              facts: BodyFacts | None = None) -> ResponseSummary:
    """Build the summary of one judged response (``facts``: its ``body_facts``, if known)."""
    if facts is None:
        facts = body_facts(evidence)
    transaction = evidence.transaction
    wire = transaction.response.wire
    query = transaction.query
    return ResponseSummary(
        evidence=evidence,
        verdict=verdict,
        capture=wire.capture,
        refs=tuple((wire.capture, frame) for frame in wire.frames),
        query_refs=tuple((query.wire.capture, f) for f in query.wire.frames) if query else (),
        ts_ns=wire.ts_ns,
        query_ts_ns=query.wire.ts_ns if query is not None else None,
        server=wire.src,
        sport=wire.sport,
        client=wire.dst,
        cport=wire.dport,
        msg_id=transaction.response.id,
        question_key=transaction.response.question_key,
        qname_text=facts.qname_text,
        qtype_text=facts.qtype_text,
        answer_digest=facts.answer_digest,
        matched=query is not None,
        response_index=transaction.response_index,
        query_copies=transaction.query_copies,
        question_mismatch=transaction.question_mismatch,
        transport=str(wire.transport),
    )


def answer_digest(evidence: ResponseEvidence,
                  rrset_digest: Callable[[dns.rrset.RRset], bytes] = rdata_set_digest) -> bytes:
    """Digest of what the response asserts: rcode plus answer RRsets (order and TTL
    independent), or the authority SOA/NS owners when the answer is empty (``rrset_digest``:
    ``rdata_set_digest``, maybe memoised)."""
    answers = sorted(rrset_digest(item.rrset) for item in evidence.section(Section.ANSWER))
    if not answers:
        answers = sorted(
            item.rrset.name.to_digestable() + int(item.rdtype).to_bytes(2, "big")
            for item in evidence.section(Section.AUTHORITY)
            if item.rdtype in (dns.rdatatype.SOA, dns.rdatatype.NS)
        )
    digest = hashlib.sha256(evidence.rcode.to_bytes(2, "big"))
    for part in answers:
        digest.update(part)
    return digest.digest()


def paired_verdicts(
    evidence: ResponseEvidence, verdict: Verdict
) -> list[tuple[RRsetEvidence, RRsetVerdict | None]]:
    """Each RRset of the response with its verdict (the validator keeps message order)."""
    if len(verdict.rrsets) == len(evidence.rrsets):
        return list(zip(evidence.rrsets, verdict.rrsets, strict=True))
    by_key = {(v.section, v.name, v.rdtype): v for v in verdict.rrsets}
    return [
        (item, by_key.get((item.section, item.name.to_text(), item.rdtype.name)))
        for item in evidence.rrsets
    ]


def rcode_text(rcode: int) -> str:
    """Response code mnemonic."""
    try:
        return dns.rcode.to_text(dns.rcode.Rcode.make(rcode))
    except ValueError:
        return f"RCODE{rcode}"


def _canonical(name: dns.name.Name) -> dns.name.Name:
    # A dictionary key, hashed at every lookup: computed once (HashedName).
    return HashedName(name.canonicalize().labels)



@dataclass(frozen=True, slots=True)
class ResponseNote:
    """What a table that compares later responses with an earlier one keeps of it: the fields
    its findings cite, without the evidence (which keeps the parsed message, its records and
    the wire alive: several KB per distinct answer under a flood of distinct names)."""

    capture: str
    """Capture of the frame that completed the response."""
    refs: tuple[FrameRef, ...]
    """Frames of the response itself."""
    query_refs: tuple[FrameRef, ...]
    """Frames of the matched query (empty when unmatched)."""
    ts_ns: int
    """Capture time of the response."""
    frame: int
    """Number of the frame that completed the response."""
    server: str
    """Source address of the response."""
    client: str
    """Destination address."""
    qname_text: str
    """Question name (``-`` when absent)."""
    qtype_text: str
    """Question type mnemonic (``-`` when absent)."""
    flags: int
    """Header flags."""
    do: bool
    """EDNS DO bit of the response."""
    rcode: int
    """Response code (extended rcode included)."""
    answer_digest: bytes
    """``ResponseSummary.answer_digest``."""
    status: Status
    """Response-level validation status."""
    hop_limit: int
    """IP TTL / hop limit of the packet that completed the response."""

    @classmethod
    def of(cls, summary: ResponseSummary) -> ResponseNote:
        """The note of a judged response."""
        evidence = summary.evidence
        return cls(summary.capture, summary.refs, summary.query_refs, summary.ts_ns,
                   summary.frame, summary.server, summary.client, summary.qname_text,
                   summary.qtype_text, evidence.flags, evidence.do, evidence.rcode,
                   summary.answer_digest, summary.status, summary.hop_limit)


NOTE_COST = 1_024
"""Accounted bytes of a kept ``ResponseNote`` and its table entry (measured with ``gc`` under
the distinct-names flood: about 700 bytes for the note, its frame references and texts, plus
the entry that holds it)."""

NAME_KEY_MEMO_SIZE = 10_000
"""Names whose case-insensitive key a run memoises (``NameMemos.key``)."""


def _lineage(name: dns.name.Name) -> tuple[dns.name.Name, ...]:
    labels = name.canonicalize().labels
    return tuple(HashedName(labels[start:]) for start in range(len(labels) - 1))


class NameMemos:
    """The forgery stage's memos of names, one set per run (``engine/caches.py``; the live
    judge's ``StreamingHold`` and ``ZoneChanges`` share them), memoised per name object
    (parsed names are shared by every repeat of a message)."""

    __slots__ = ("key", "lineage")

    def __init__(self, lineage_size: int = 10_000) -> None:
        self.key: IdentityMemo[dns.name.Name, dns.name.Name] = IdentityMemo(
            _canonical, NAME_KEY_MEMO_SIZE)
        """Case-insensitive dictionary key of a name (its canonical form)."""
        self.lineage: IdentityMemo[dns.name.Name, tuple[dns.name.Name, ...]] = IdentityMemo(
            _lineage, lineage_size)
        """``key`` of a name and of each of its ancestors below the root, nearest first."""

    def clear(self) -> None:
        """Forget every memoised name (the caps stay)."""
        self.key.clear()
        self.lineage.clear()


def cite(refs: Iterable[FrameRef]) -> list[list[object]]:
    """Frame references, de-duplicated in order and capped, as JSON-ready pairs."""
    seen: dict[FrameRef, None] = {}
    for ref in refs:
        seen.setdefault(ref, None)
        if len(seen) >= MAX_CITED_FRAMES:
            break
    return [[capture, frame] for capture, frame in seen]


def type_text(rdtype: int | None) -> str:
    """RR type mnemonic, ``-`` when absent."""
    return "-" if rdtype is None else dns.rdatatype.to_text(dns.rdatatype.RdataType.make(rdtype))


def forgery_finding(
    code: F,
    params: Mapping[str, object],
    deciding: ResponseSummary | ResponseNote,
    verdict: ForgeryVerdict,
    refs: Iterable[FrameRef],
    *,
    reasoning: str,
) -> Finding:
    """A catalogue finding with provenance, the cited frames and the reasoning."""
    cited = cite(refs)
    frames = tuple(frame for capture, frame in dict.fromkeys(refs) if capture == deciding.capture)
    full = {
        **params,
        "reasoning": reasoning,
        "evidence_frames": cited,
    }
    provenance = Provenance(
        capture=deciding.capture,
        frames=frames,
        ts_ns=deciding.ts_ns,
        server=deciding.server,
        client=deciding.client,
    )
    return make_finding(code, full, provenance, verdict=verdict.value)
