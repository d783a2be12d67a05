"""Blind spoofing: wrong-ID bursts, unsolicited answers, answers from unqueried addresses,
Kaminsky-style patterns, and queries whose DNSSEC bits change between two copies."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field

import dns.flags
import dns.name
import dns.rdatatype

from auditor.evidence import Section
from auditor.findings.catalogue import Finding, Provenance, make_finding
from auditor.forgery.common import (
    ForgeryVerdict,
    FrameRef,
    ResponseSummary,
    cite,
    forgery_finding,
    name_key,
    type_text,
)
from auditor.messages import ObservedMessage

_QueryKey = tuple[str, int, int, bytes | None]
"""(client, client port, ID, question)."""


@dataclass(slots=True)
class _Asked:
    """A query as sent, possibly to several servers."""

    servers: dict[str, FrameRef]
    """Server address -> frame of the query sent to it."""
    bits: tuple[int, bool]
    """Header bits (RD, CD, AD) and DO of the first copy."""
    first: FrameRef
    ts_ns: int


class QueryIndex:
    """Recent queries by (client, port, ID, question), and which clients the capture sees
    asking at all (an unsolicited response is only meaningful for those)."""

    def __init__(self, *, keep_ns: int, max_queries: int, max_clients: int) -> None:
        self._keep_ns = keep_ns
        self._max = max_queries
        self._max_clients = max_clients
        self._queries: OrderedDict[_QueryKey, _Asked] = OrderedDict()
        self._clients: OrderedDict[str, int] = OrderedDict()

    def observe(self, query: ObservedMessage) -> tuple[_Asked, tuple[int, bool]] | None:
        """Record a query; return (earlier copy, new bits) when the same query to the same
        server was seen before with different DNSSEC bits."""
        wire = query.wire
        self._clients[wire.src] = wire.ts_ns
        self._clients.move_to_end(wire.src)
        if len(self._clients) > self._max_clients:
            self._clients.popitem(last=False)
        key = (wire.src, wire.sport, query.id, query.question_key)
        bits = _query_bits(query)
        asked = self._queries.get(key)
        if asked is None:
            self._queries[key] = _Asked({wire.dst: (wire.capture, wire.frame)}, bits,
                                        (wire.capture, wire.frame), wire.ts_ns)
            if len(self._queries) > self._max:
                self._queries.popitem(last=False)
            return None
        altered = wire.dst in asked.servers and bits != asked.bits
        asked.servers.setdefault(wire.dst, (wire.capture, wire.frame))
        return (asked, bits) if altered else None

    def lookup(self, client: str, cport: int, msg_id: int, question: bytes | None) -> _Asked | None:
        """The query this response claims to answer, if it was seen."""
        return self._queries.get((client, cport, msg_id, question))

    def knows_client(self, address: str) -> bool:
        """Whether the capture has shown this address sending queries."""
        return address in self._clients

    def expire(self, now_ns: int) -> None:
        """Forget queries older than the keep time."""
        while self._queries:
            key, asked = next(iter(self._queries.items()))
            if now_ns - asked.ts_ns <= self._keep_ns:
                break
            del self._queries[key]


_QUERY_BITS = int(dns.flags.RD | dns.flags.CD | dns.flags.AD)


def _query_bits(query: ObservedMessage) -> tuple[int, bool]:
    """RD/CD/AD and DO from the header and the parse stage's summary (no full parse)."""
    return query.flags & _QUERY_BITS, query.summary.do


def query_bits_finding(query: ObservedMessage, asked: _Asked, bits: tuple[int, bool]) -> Finding:
    """``flags_altered`` for two copies of one query whose RD/CD/AD/DO bits differ."""
    changes = [
        f"{name} {'set' if asked.bits[0] & bit else 'clear'} -> "
        f"{'set' if bits[0] & bit else 'clear'}"
        for name, bit in (("RD", dns.flags.RD), ("CD", dns.flags.CD), ("AD", dns.flags.AD))
        if (asked.bits[0] ^ bits[0]) & bit
    ]
    if asked.bits[1] != bits[1]:
        changes.append(f"DO {'set' if asked.bits[1] else 'clear'} -> "
                       f"{'set' if bits[1] else 'clear'}")
    wire = query.wire
    params = {
        "kind": "query",
        "qname": query.qname.to_text() if query.qname is not None else "-",
        "qtype": type_text(query.qtype),
        "client": wire.src,
        "cport": wire.sport,
        "server": wire.dst,
        "id": query.id,
        "changes": ", ".join(changes),
        "frames_compared": [asked.first[1], wire.frame],
        "reasoning": "the same query (addresses, ports, ID, question) was seen twice with "
        "different RD/CD/AD/DO bits; a retransmission repeats them, a middlebox rewrites them",
    }
    refs = [asked.first, *((wire.capture, f) for f in wire.frames)]
    cited = cite(refs)
    provenance = Provenance(
        capture=wire.capture,
        frames=tuple(f for c, f in dict.fromkeys(refs) if c == wire.capture),
        ts_ns=wire.ts_ns,
        server=wire.dst,
        client=wire.src,
    )
    return make_finding("flags_altered", {**params, "evidence_frames": cited}, provenance,
                        verdict=ForgeryVerdict.SUSPICIOUS.value)


@dataclass(slots=True)
class _Burst:
    """Unsolicited responses to one client port within one window."""

    start_ns: int
    items: list[tuple[ResponseSummary, str, _Asked | None]] = field(default_factory=list)


class UnsolicitedTracker:
    """Groups unsolicited responses per client port over ``window_ns``: many distinct IDs make
    one brute-force finding (RFC 5452 4.3), a few are reported one by one."""

    def __init__(self, index: QueryIndex, *, window_ns: int, burst_ids: int,
                 max_ports: int) -> None:
        self._index = index
        self._window_ns = window_ns
        self._burst_ids = burst_ids
        self._max_ports = max_ports
        self._bursts: OrderedDict[tuple[str, int], _Burst] = OrderedDict()
        self.one_sided = 0

    def feed(self, summary: ResponseSummary) -> list[Finding]:
        """Take one response without matched query; findings come when its window closes."""
        if summary.matched:
            return []
        asked = self._index.lookup(summary.client, summary.cport, summary.msg_id,
                                   summary.question_key)
        if asked is not None and summary.server not in asked.servers:
            reason = "unqueried_server"
        elif self._index.knows_client(summary.client):
            reason = "no_query"
        else:
            self.one_sided += 1  # the capture never shows this client asking: one-sided tap
            return []
        key = (summary.client, summary.cport)
        burst = self._bursts.get(key)
        if burst is None:
            burst = self._bursts[key] = _Burst(summary.ts_ns)
        burst.items.append((summary, reason, asked))
        found: list[Finding] = []
        if len(self._bursts) > self._max_ports:
            found.extend(self._close(*self._bursts.popitem(last=False)))
        return found

    def expire(self, now_ns: int) -> list[Finding]:
        """Close the windows that ended before ``now_ns``."""
        found: list[Finding] = []
        while self._bursts:
            key, burst = next(iter(self._bursts.items()))
            if now_ns - burst.start_ns <= self._window_ns:
                break
            del self._bursts[key]
            found.extend(self._close(key, burst))
        return found

    def flush(self) -> list[Finding]:
        """End of input: close every window."""
        found: list[Finding] = []
        while self._bursts:
            found.extend(self._close(*self._bursts.popitem(last=False)))
        return found

    def _close(self, key: tuple[str, int], burst: _Burst) -> list[Finding]:
        ids = {s.msg_id for s, _, _ in burst.items}
        if len(ids) >= self._burst_ids:
            return [self._burst_finding(key, burst, len(ids))]
        return [self._single(summary, reason, asked) for summary, reason, asked in burst.items]

    def _burst_finding(self, key: tuple[str, int], burst: _Burst, distinct: int) -> Finding:
        items = [s for s, _, _ in burst.items]
        last = items[-1]
        span = (last.ts_ns - items[0].ts_ns) // 1_000_000
        params = {
            "client": key[0],
            "cport": key[1],
            "count": len(items),
            "distinct_ids": distinct,
            "span_ms": span,
            "servers": sorted({s.server for s in items}),
            "questions": sorted({f"{s.qname_text} {s.qtype_text}" for s in items})[:20],
        }
        return forgery_finding(
            "wrong_id_burst", params, last, ForgeryVerdict.SUSPICIOUS,
            [ref for s in items for ref in s.refs],
            reasoning=f"{len(items)} responses with {distinct} different IDs matched no query "
            f"from {key[0]}#{key[1]} within {span} ms: a blind attacker guessing the ID sends "
            "many (RFC 5452 4.3); genuine servers answer the ID they were asked",
        )

    @staticmethod
    def _single(summary: ResponseSummary, reason: str, asked: _Asked | None) -> Finding:
        common = {
            "client": summary.client,
            "cport": summary.cport,
            "server": summary.server,
            "id": summary.msg_id,
            "qname": summary.qname_text,
            "qtype": summary.qtype_text,
        }
        if reason == "unqueried_server" and asked is not None:
            return forgery_finding(
                "response_from_unqueried_server",
                {**common, "asked": ", ".join(sorted(asked.servers))},
                summary, ForgeryVerdict.SUSPICIOUS,
                [*asked.servers.values(), *summary.refs],
                reasoning="the client sent this query (same port, ID and question) only to "
                "other addresses; a genuine answer comes from the address asked (RFC 5452 9.1)",
            )
        return forgery_finding(
            "unsolicited_response",
            {**common, "reason": "no query with this port, ID and question was seen from a "
             "client whose queries are captured"},
            summary, ForgeryVerdict.SUSPICIOUS, summary.refs,
            reasoning="the capture shows this client's queries, but none that this response "
            "answers (same addresses, ports, ID and question, RFC 5452 9.1)",
        )


@dataclass(slots=True)
class _Pattern:
    """Responses to one client for names under one zone with one authority payload."""

    start_ns: int
    names: set[dns.name.Name] = field(default_factory=set)
    spoofed: list[ResponseSummary] = field(default_factory=list)
    reported: bool = False


class KaminskyTracker:
    """Many different names under one zone, answered to one client with the same NS-bearing
    authority/additional data, several of them by unsolicited or raced responses."""

    def __init__(self, *, window_ns: int, min_names: int, max_patterns: int) -> None:
        self._window_ns = window_ns
        self._min_names = min_names
        self._max = max_patterns
        self._patterns: OrderedDict[tuple[str, dns.name.Name, bytes], _Pattern] = OrderedDict()

    def feed(self, summary: ResponseSummary, spoof_signs: bool) -> list[Finding]:
        """Take one response (``spoof_signs``: unsolicited, raced or from the wrong server)."""
        evidence = summary.evidence
        qname = evidence.qname
        if qname is None or len(qname) < 3:
            return []
        payload = _ns_payload(summary)
        if payload is None:
            return []
        key = (summary.client, name_key(qname.parent()), payload)
        pattern = self._patterns.get(key)
        if pattern is None or summary.ts_ns - pattern.start_ns > self._window_ns:
            pattern = self._patterns[key] = _Pattern(summary.ts_ns)
            if len(self._patterns) > self._max:
                self._patterns.popitem(last=False)
        pattern.names.add(name_key(qname))
        if spoof_signs:
            pattern.spoofed.append(summary)
        if (pattern.reported or len(pattern.names) < self._min_names
                or len(pattern.spoofed) < self._min_names):
            return []
        pattern.reported = True
        return [self._finding(key[1], pattern, summary)]

    def expire(self, now_ns: int) -> None:
        """Forget patterns older than the window."""
        while self._patterns:
            key, pattern = next(iter(self._patterns.items()))
            if now_ns - pattern.start_ns <= self._window_ns:
                break
            del self._patterns[key]

    @staticmethod
    def _finding(zone: dns.name.Name, pattern: _Pattern, summary: ResponseSummary) -> Finding:
        ns = sorted({
            f"{item.rrset.name} NS {rdata.target}"
            for item in summary.evidence.section(Section.AUTHORITY)
            if item.rdtype == dns.rdatatype.NS for rdata in item.rrset
        })
        params = {
            "client": summary.client,
            "zone": zone.to_text(),
            "names": len(pattern.names),
            "spoofed": len(pattern.spoofed),
            "payload": "; ".join(ns),
            "ports": sorted({s.cport for s in pattern.spoofed}),
        }
        return forgery_finding(
            "kaminsky_pattern", params, summary, ForgeryVerdict.SUSPICIOUS,
            [ref for s in pattern.spoofed for ref in s.refs],
            reasoning="a Kaminsky attack asks for many fresh names under one zone and floods "
            "spoofed answers that all carry the same NS/glue payload, hoping one ID matches",
        )


def _ns_payload(summary: ResponseSummary) -> bytes | None:
    """Digest of the authority NS and additional records, when the authority has NS."""
    evidence = summary.evidence
    authority = evidence.section(Section.AUTHORITY)
    if not any(item.rdtype == dns.rdatatype.NS for item in authority):
        return None
    digest = hashlib.sha256()
    for item in sorted((*authority, *evidence.section(Section.ADDITIONAL)),
                       key=lambda i: (i.rrset.name.to_digestable(), int(i.rdtype))):
        digest.update(item.rrset.name.to_digestable())
        digest.update(int(item.rdtype).to_bytes(2, "big"))
        for rdata in sorted(r.to_digestable() for r in item.rrset):
            digest.update(rdata)
    return digest.digest()
