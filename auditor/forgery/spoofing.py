"""Blind spoofing: wrong-ID bursts, unsolicited answers, answers from unqueried addresses,
Kaminsky-style patterns, and queries whose DNSSEC bits change between two copies."""

from __future__ import annotations

import hashlib
import ipaddress
from collections import Counter, OrderedDict
from dataclasses import dataclass, field

import dns.flags
import dns.name
import dns.rdatatype

from auditor.evidence import Section
from auditor.findings.catalogue import Finding, Provenance, make_finding
from auditor.findings.codes import FindingCode as F
from auditor.forgery.common import (
    ForgeryVerdict,
    FrameRef,
    NameMemos,
    ResponseSummary,
    cite,
    forgery_finding,
    type_text,
)
from auditor.messages import ObservedMessage

_QueryKey = tuple[str, int, int, bytes | None]
"""(client, client port, ID, question)."""
_PortKey = tuple[str, int, bytes | None]
"""(client, client port, question): a question asked from one port, any ID."""
_AnswerKey = tuple[str, int, bytes | None, str]
"""(client, client port, question, server)."""

MAX_CAPTURES = 1_000
"""Capture start times remembered (one per capture file or interface)."""


@dataclass(slots=True)
class _Asked:
    """A query as sent, possibly to several servers."""

    servers: dict[str, FrameRef]
    """Server address -> frame of the query sent to it."""
    bits: tuple[int, bool]
    """Header bits (RD, CD, AD) and DO of the first copy."""
    first: FrameRef
    ts_ns: int


@dataclass(slots=True)
class _Genuine:
    """The answers a client accepted (matched to its query) for one question on one port."""

    digests: set[bytes]
    ts_ns: int
    ref: FrameRef
    """The first accepted answer's frame."""


class QueryIndex:
    """Recent queries by (client, port, ID, question) and by (client, port, question), the
    answers clients accepted, which clients the capture sees asking at all, and when each
    capture started: what the unsolicited-response rules weigh a response against."""

    def __init__(self, *, keep_ns: int, max_queries: int, max_clients: int,
                 retry_gap_ns: int = 50_000_000) -> None:
        """``retry_gap_ns``: copies of one query further apart than this are the client's
        own retries (``retried_with_other_bits``), not a copy rewritten in transit."""
        self._keep_ns = keep_ns
        self._max = max_queries
        self._max_clients = max_clients
        self._retry_gap_ns = retry_gap_ns
        self.retried_with_other_bits = 0
        """Query copies whose bits differ from the first one but that came a retry timeout
        later: the client changed its own query (EDNS fallback, RFC 6891 6.2.2)."""
        self._queries: OrderedDict[_QueryKey, _Asked] = OrderedDict()
        self._ports: OrderedDict[_PortKey, dict[str, int]] = OrderedDict()
        self._answers: OrderedDict[_AnswerKey, _Genuine] = OrderedDict()
        self._clients: OrderedDict[str, int] = OrderedDict()
        self._starts: OrderedDict[str, int] = OrderedDict()

    def observe(self, query: ObservedMessage) -> tuple[_Asked, tuple[int, bool]] | None:
        """Record a query; return (earlier copy, new bits) when the same query to the same
        server was seen before with different DNSSEC bits."""
        wire = query.wire
        self.note_time(wire.capture, wire.ts_ns)
        self._clients[wire.src] = wire.ts_ns
        self._clients.move_to_end(wire.src)
        if len(self._clients) > self._max_clients:
            self._clients.popitem(last=False)
        port_key = (wire.src, wire.sport, query.question_key)
        servers = self._ports.get(port_key)
        if servers is None:
            servers = self._ports[port_key] = {}
            if len(self._ports) > self._max:
                self._ports.popitem(last=False)
        else:
            self._ports.move_to_end(port_key)
        servers[wire.dst] = wire.ts_ns
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
        if altered and wire.ts_ns - asked.ts_ns > self._retry_gap_ns:
            # A copy rewritten by a middlebox on the tap's path follows the original within
            # milliseconds; one a retry timeout later is the client asking again with other
            # bits (EDNS/DO fallback after a timeout, RFC 6891 6.2.2; CD after a SERVFAIL).
            self.retried_with_other_bits += 1
            return None
        return (asked, bits) if altered else None

    def note_time(self, capture: str, ts_ns: int) -> None:
        """Remember when ``capture`` started (its first DNS message)."""
        if capture not in self._starts:
            self._starts[capture] = ts_ns
            if len(self._starts) > MAX_CAPTURES:
                self._starts.popitem(last=False)

    def capture_age(self, capture: str, ts_ns: int) -> int | None:
        """How long ``capture`` had been running at ``ts_ns``."""
        start = self._starts.get(capture)
        return None if start is None else ts_ns - start

    def note_answer(self, summary: ResponseSummary) -> None:
        """Record an answer the client accepted (a response matched to its query)."""
        key = (summary.client, summary.cport, summary.question_key, summary.server)
        genuine = self._answers.get(key)
        if genuine is None:
            self._answers[key] = _Genuine({summary.answer_digest}, summary.ts_ns,
                                          summary.refs[-1])
            if len(self._answers) > self._max:
                self._answers.popitem(last=False)
            return
        self._answers.move_to_end(key)
        genuine.digests.add(summary.answer_digest)
        genuine.ts_ns = summary.ts_ns

    def lookup(self, client: str, cport: int, msg_id: int, question: bytes | None) -> _Asked | None:
        """The query this response claims to answer, if it was seen."""
        return self._queries.get((client, cport, msg_id, question))

    def asked_from_port(self, client: str, cport: int, question: bytes | None,
                        server: str) -> bool:
        """Whether the client asked this question from this port to this server (any ID)."""
        servers = self._ports.get((client, cport, question))
        return servers is not None and server in servers

    def genuine(self, client: str, cport: int, question: bytes | None,
                server: str) -> _Genuine | None:
        """The answers the client accepted for this question on this port from this server."""
        return self._answers.get((client, cport, question, server))

    def knows_client(self, address: str) -> bool:
        """Whether the capture has shown this address sending queries."""
        return address in self._clients

    def expire(self, now_ns: int) -> None:
        """Forget queries and accepted answers older than the keep time."""
        keep = self._keep_ns
        while self._queries:
            key, asked = next(iter(self._queries.items()))
            if now_ns - asked.ts_ns <= keep:
                break
            del self._queries[key]
        while self._ports:
            port_key, servers = next(iter(self._ports.items()))
            if now_ns - max(servers.values()) <= keep:
                break
            del self._ports[port_key]
        while self._answers:
            answer_key, genuine = next(iter(self._answers.items()))
            if now_ns - genuine.ts_ns <= keep:
                break
            del self._answers[answer_key]


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
    return make_finding(F.FLAGS_ALTERED, {**params, "evidence_frames": cited}, provenance,
                        verdict=ForgeryVerdict.SUSPICIOUS.value)


@dataclass(slots=True)
class _Burst:
    """Unsolicited responses to one client port within one window."""

    start_ns: int
    items: list[tuple[ResponseSummary, str, _Asked | None]] = field(default_factory=list)


_MDNS_PORTS = frozenset({5353, 5355})
"""mDNS (RFC 6762) and LLMNR (RFC 4795): answers are announced, multicast or unsolicited."""

CAPTURE_LOSS_REASONS = ("tcp_capture_loss", "multicast", "question_mismatch", "one_sided",
                        "capture_start", "not_targeted", "same_answer", "no_genuine_answer",
                        "unqueried_server_alone", "unqueried_same_answer")
"""Why an unmatched response raised no finding (``stats.json`` forgery.unsolicited_by_reason;
the other reasons there, ``reported``, ``burst`` and ``unqueried_server``, raised one)."""


class UnsolicitedTracker:
    """Responses that match no captured query: capture loss unless the capture proves
    otherwise.

    Most unmatched responses answer a query the capture did not record: the capture started
    after the query, the tap sees one direction only, a TCP stream has a gap, or packets were
    dropped. A blind spoofer's guesses (RFC 5452 4.3) differ from those in what they aim at:
    they answer a question the client is asking *from that very port* to that server, with
    another ID, and carry another answer than the one the client accepts. So:

    * excluded outright, counted under a reason: TCP (a blind spoofer cannot inject into a
      connection; an unmatched TCP answer means the query's bytes were lost,
      ``tcp_capture_loss``), mDNS/LLMNR and multicast (``multicast``), a query on the same
      flow and ID with another question (``question_mismatch``: a broken server or
      middlebox, a spoofer copies the question), a client never seen asking (``one_sided``),
      and the first ``warmup_ns`` of a capture, when the query may predate it, unless the
      client's query for that question from that port to that server is in the capture
      (``capture_start``);
    * at the end of a ``window_ns`` window per client port, a response is a candidate only if
      the client asked the same question from the same port to the same server
      (``not_targeted`` otherwise) and its answer is not one the client accepted
      (``same_answer``: a late answer to a lost copy repeats the accepted data);
    * ``burst_ids`` distinct IDs among the candidates of one window make one
      ``wrong_id_burst``; fewer are reported one by one as ``unsolicited_response`` only when
      they contradict an accepted answer (``no_genuine_answer`` otherwise: nothing to
      contradict). A response with the query's own port, ID and question from another
      address than the query went to is ``response_from_unqueried_server`` when the asked
      server's own answer is captured and says otherwise (``unqueried_server_alone`` and
      ``unqueried_same_answer`` otherwise).
    """

    def __init__(self, index: QueryIndex, *, window_ns: int, burst_ids: int,
                 max_ports: int, warmup_ns: int = 10_000_000_000) -> None:
        self._index = index
        self._window_ns = window_ns
        self._burst_ids = burst_ids
        self._max_ports = max_ports
        self._warmup_ns = warmup_ns
        self._bursts: OrderedDict[tuple[str, int], _Burst] = OrderedDict()
        self.one_sided = 0
        self.by_reason: Counter[str] = Counter()
        """Unmatched responses by what was made of them (``CAPTURE_LOSS_REASONS`` raised
        nothing; ``reported``, ``burst`` and ``unqueried_server`` raised a finding)."""

    def _excluded(self, summary: ResponseSummary) -> str | None:
        """The capture-loss reason that rules out an unmatched response at once, if any."""
        if summary.transport == "tcp":
            return "tcp_capture_loss"
        if (summary.sport in _MDNS_PORTS or summary.cport in _MDNS_PORTS
                or _is_multicast(summary.client)):
            return "multicast"
        if summary.question_mismatch:
            return "question_mismatch"
        if not self._index.knows_client(summary.client):
            return "one_sided"
        age = self._index.capture_age(summary.capture, summary.ts_ns)
        if (age is None or age < self._warmup_ns) and not self._index.asked_from_port(
                summary.client, summary.cport, summary.question_key, summary.server):
            # Early in a capture a response may answer a query sent before it started; not
            # when the client's own query for it, from that port to that server, is captured.
            return "capture_start"
        return None

    def is_candidate(self, summary: ResponseSummary) -> bool:
        """Whether an unmatched response could be a spoofer's guess: not excluded, and
        aimed at a question the client asked from that port to that server."""
        if summary.matched or self._excluded(summary) is not None:
            return False
        return self._index.asked_from_port(summary.client, summary.cport,
                                           summary.question_key, summary.server)

    def feed(self, summary: ResponseSummary) -> list[Finding]:
        """Take one response without matched query; findings come when its window closes."""
        if summary.matched:
            return []
        asked = self._index.lookup(summary.client, summary.cport, summary.msg_id,
                                   summary.question_key)
        if asked is not None and summary.server not in asked.servers:
            reason = "unqueried_server"
        else:
            excluded = self._excluded(summary)
            if excluded is not None:
                self.by_reason[excluded] += 1
                self.one_sided += excluded == "one_sided"
                return []
            reason = "no_query"
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
        candidates: list[tuple[ResponseSummary, str, _Asked | None, _Genuine | None]] = []
        for summary, reason, asked in burst.items:
            genuine = self._index.genuine(summary.client, summary.cport, summary.question_key,
                                          summary.server)
            if reason == "unqueried_server" and asked is not None:
                skipped = self._unqueried_explained(summary, asked)
                if skipped is not None:
                    self.by_reason[skipped] += 1
                    continue
            if reason == "no_query":
                if not self._index.asked_from_port(summary.client, summary.cport,
                                                   summary.question_key, summary.server):
                    self.by_reason["not_targeted"] += 1
                    continue
                if genuine is not None and summary.answer_digest in genuine.digests:
                    self.by_reason["same_answer"] += 1
                    continue
            candidates.append((summary, reason, asked, genuine))
        ids = {s.msg_id for s, _, _, _ in candidates}
        if len(ids) >= self._burst_ids:
            self.by_reason["burst"] += len(candidates)
            return [self._burst_finding(key, [s for s, _, _, _ in candidates], len(ids))]
        found: list[Finding] = []
        for summary, reason, asked, genuine in candidates:
            if reason == "unqueried_server" and asked is not None:
                self.by_reason["unqueried_server"] += 1
                found.append(_unqueried_finding(summary, asked))
            elif genuine is not None:
                self.by_reason["reported"] += 1
                found.append(_unsolicited_finding(summary, genuine))
            else:
                self.by_reason["no_genuine_answer"] += 1
        return found

    def _unqueried_explained(self, summary: ResponseSummary, asked: _Asked) -> str | None:
        """Why an answer from an address the query was not sent to proves nothing, if so.

        The client drops it (RFC 5452 9.1), so it matters only as an attempt beside the real
        answer. Alone, it is a multi-homed server replying from another address, or a NAT or
        load balancer on the tap's side (``unqueried_server_alone``); with the data the asked
        server gave, it is the same answer by another path (``unqueried_same_answer``)."""
        accepted = [genuine for server in asked.servers
                    if (genuine := self._index.genuine(summary.client, summary.cport,
                                                       summary.question_key, server))]
        if not accepted:
            return "unqueried_server_alone"
        if any(summary.answer_digest in genuine.digests for genuine in accepted):
            return "unqueried_same_answer"
        return None

    def _burst_finding(self, key: tuple[str, int], items: list[ResponseSummary],
                       distinct: int) -> Finding:
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
            F.WRONG_ID_BURST, params, last, ForgeryVerdict.SUSPICIOUS,
            [ref for s in items for ref in s.refs],
            reasoning=f"{len(items)} responses with {distinct} different IDs matched no query "
            f"from {key[0]}#{key[1]} within {span} ms, each answering a question that client "
            "asked from that very port with another ID and carrying another answer than the "
            "one it accepted, after the capture had covered the flow for a while: a blind "
            "attacker guessing the ID sends many (RFC 5452 4.3); genuine servers answer the "
            "ID they were asked",
        )


def _is_multicast(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_multicast
    except ValueError:
        return False


def _common(summary: ResponseSummary) -> dict[str, object]:
    return {
        "client": summary.client,
        "cport": summary.cport,
        "server": summary.server,
        "id": summary.msg_id,
        "qname": summary.qname_text,
        "qtype": summary.qtype_text,
    }


def _unqueried_finding(summary: ResponseSummary, asked: _Asked) -> Finding:
    return forgery_finding(
        F.RESPONSE_FROM_UNQUERIED_SERVER,
        {**_common(summary), "asked": ", ".join(sorted(asked.servers))},
        summary, ForgeryVerdict.SUSPICIOUS,
        [*asked.servers.values(), *summary.refs],
        reasoning="the client sent this query (same port, ID and question) only to "
        "other addresses; a genuine answer comes from the address asked (RFC 5452 9.1)",
    )


def _unsolicited_finding(summary: ResponseSummary, genuine: _Genuine) -> Finding:
    return forgery_finding(
        F.UNSOLICITED_RESPONSE,
        {**_common(summary),
         "reason": "wrong ID for a question the client asked from this port, with another "
         f"answer than the one it accepted (frame {genuine.ref[1]})",
         "accepted_frame": genuine.ref[1]},
        summary, ForgeryVerdict.SUSPICIOUS, [*summary.refs, genuine.ref],
        reasoning="the capture had covered this client for a while and shows it asking this "
        "question from this port and accepting another answer; this response carries an ID "
        "no captured query used and contradicts that answer, as a blind spoofer's guess "
        "does (RFC 5452 9.1); a late answer to a lost copy would repeat the accepted data",
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

    def __init__(self, *, window_ns: int, min_names: int, max_patterns: int,
                 names: NameMemos | None = None) -> None:
        """``names``: the run's name memos (without them the tracker has its own)."""
        self._names = names if names is not None else NameMemos()
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
        key = (summary.client, self._names.key(qname.parent()), payload)
        pattern = self._patterns.get(key)
        if pattern is None or summary.ts_ns - pattern.start_ns > self._window_ns:
            pattern = self._patterns[key] = _Pattern(summary.ts_ns)
            if len(self._patterns) > self._max:
                self._patterns.popitem(last=False)
        pattern.names.add(self._names.key(qname))
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
            F.KAMINSKY_PATTERN, params, summary, ForgeryVerdict.SUSPICIOUS,
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
