"""Races: several responses to one query whose answers (or only whose DNSSEC bits) differ.

Rule: responses on one flow (addresses, ports) with one ID and question, within the linger time
of the exchange, that carry more distinct answers than the client sent copies of the query.
Answers are compared by rcode and record data, independent of order and TTL.

Normal behaviours it must not fire on (each has a test in ``tests/forgery/test_races.py``):

* server retransmissions and duplicated packets: identical answers (order, TTL decay) are
  retransmissions, counted;
* a client that retries or re-asks with the same ID and port (stub resolvers do): each copy
  may be answered on its own, and a load-balanced or CDN name legitimately gets another
  answer each time; so *k* copies allow *k* distinct answers (``race_retry_answers``). A
  bogus answer among them is still reported by validation, only not as a race;
* a truncated (TC) answer followed by the full one is incomplete, not different.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import dns.flags

from auditor.findings.catalogue import Finding
from auditor.findings.codes import FindingCode as F
from auditor.forgery.common import (
    NOTE_COST,
    ForgeryVerdict,
    FrameRef,
    ResponseNote,
    ResponseSummary,
    forgery_finding,
)
from auditor.validate.verdict import Status

_RaceKey = tuple[str, int, str, int, int, bytes | None, tuple[FrameRef, ...]]
"""(client, client port, server, server port, ID, question, query frames)."""

_BITS = (("AD", dns.flags.AD), ("CD", dns.flags.CD), ("RD", dns.flags.RD), ("AA", dns.flags.AA))


@dataclass(slots=True)
class _Variant:
    """One distinct answer given to a query."""

    first: ResponseNote
    """The first response carrying it (what the findings cite of it)."""
    bits: set[tuple[int, bool]] = field(default_factory=set)
    """Every (DNSSEC-relevant flag bits, DO) combination seen with this answer."""


@dataclass(slots=True)
class _Query:
    """The responses seen so far for one query."""

    variants: list[_Variant]
    last_ts_ns: int
    cost: int = 0
    """Accounted bytes of the kept responses (``NOTE_COST`` each)."""


_MASK = dns.flags.AD | dns.flags.CD | dns.flags.RD | dns.flags.AA


def _bits(note: ResponseNote) -> tuple[int, bool]:
    return note.flags & _MASK, note.do


def _summary_bits(summary: ResponseSummary) -> tuple[int, bool]:
    return summary.flags & _MASK, summary.evidence.do


def _key(summary: ResponseSummary) -> _RaceKey:
    return (summary.client, summary.cport, summary.server, summary.sport, summary.msg_id,
            summary.question_key, summary.query_refs)


class RaceTracker:
    """Keeps, per answered query and for ``linger_ns`` of capture time, the distinct answers
    given to it; identical repeats are retransmissions (RFC 5452 9.1 keeps listening)."""

    def __init__(self, *, linger_ns: int, max_queries: int, max_bytes: int = 32 << 20) -> None:
        """``max_queries`` and ``max_bytes`` (``NOTE_COST`` per kept response: a note, not
        its evidence) bound the queries remembered; over either the least recently answered
        goes."""
        self._linger_ns = linger_ns
        self._max = max_queries
        self._max_bytes = max_bytes
        self._bytes = 0
        self._queries: OrderedDict[_RaceKey, _Query] = OrderedDict()
        self.retransmissions = 0
        self.races = 0
        self.retry_answers = 0
        """Different answers explained by the client having sent the query several times."""
        self.retry_bits = 0
        """Same answers with other header bits, explained likewise by the query's copies."""
        self.evicted = 0

    def feed(self, summary: ResponseSummary) -> list[Finding]:
        """Take one matched response; return a race or bit-alteration finding if it makes one."""
        if not summary.matched:
            return []
        key = _key(summary)
        entry = self._queries.get(key)
        if entry is None:
            note = ResponseNote.of(summary)
            self._remember(key, _Query([_Variant(note, {_bits(note)})], summary.ts_ns,
                                       NOTE_COST))
            return []
        self._queries.move_to_end(key)
        entry.last_ts_ns = summary.ts_ns
        if summary.flags & dns.flags.TC or any(v.first.flags & dns.flags.TC
                                               for v in entry.variants):
            return []  # a truncated answer is incomplete, not a different one (RFC 2181 9)
        for variant in entry.variants:
            if variant.first.answer_digest == summary.answer_digest:
                return self._same_answer(variant, summary)
        note = ResponseNote.of(summary)
        entry.variants.append(_Variant(note, {_bits(note)}))
        entry.cost += NOTE_COST
        self._bytes += NOTE_COST
        if len(entry.variants) <= summary.query_copies:
            # Each copy of a retried query may get its own answer: not a race (RFC 5452 9.1
            # is about answers to one query; the client asked k times).
            self.retry_answers += 1
            return []
        self.races += 1
        return [_race_finding(entry.variants, summary)]

    def _same_answer(self, variant: _Variant, summary: ResponseSummary) -> list[Finding]:
        bits = _summary_bits(summary)
        if bits in variant.bits:
            self.retransmissions += 1
            return []
        before = next(iter(variant.bits))
        variant.bits.add(bits)
        if len(variant.bits) <= summary.query_copies:
            # The client sent the query k times: each copy may be answered on its own (two
            # anycast instances, one answer while validating and one from the cache), so up
            # to k bit patterns are not one answer rewritten in transit.
            self.retry_bits += 1
            return []
        return [_bits_finding(variant.first, summary, before, bits)]

    def _remember(self, key: _RaceKey, entry: _Query) -> None:
        self._queries[key] = entry
        self._bytes += entry.cost
        while len(self._queries) > 1 and (len(self._queries) > self._max
                                          or self._bytes > self._max_bytes):
            self._bytes -= self._queries.popitem(last=False)[1].cost
            self.evicted += 1

    @property
    def held_bytes(self) -> int:
        """Accounted bytes of the responses kept now."""
        return self._bytes

    def expire(self, now_ns: int) -> None:
        """Forget queries whose last response is older than the linger time."""
        while self._queries:
            key, entry = next(iter(self._queries.items()))
            if now_ns - entry.last_ts_ns <= self._linger_ns:
                break
            del self._queries[key]
            self._bytes -= entry.cost

    def flush(self) -> None:
        """End of input."""
        self._queries.clear()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._queries)


def _race_finding(variants: list[_Variant], latest: ResponseSummary) -> Finding:
    firsts = [v.first for v in variants]
    secure = [s for s in firsts if s.status is Status.SECURE]
    bogus = [s for s in firsts if s.status is Status.BOGUS]
    if secure and len(secure) < len(firsts):
        verdict, suspects = ForgeryVerdict.FORGED, [s for s in firsts if s not in secure]
        why = ("one answer validates and the other(s) do not: the non-validating answers "
               "cannot come from the signed zone")
    elif bogus:
        verdict, suspects = ForgeryVerdict.FORGED, bogus
        why = "the answers differ and the bogus one(s) fail validation"
    else:
        verdict, suspects = ForgeryVerdict.SUSPICIOUS, []
        why = ("the answers differ but none validates (unsigned or undecided zone): the race "
               "shows that one of them is forged, not which")
    arrival = sorted(firsts, key=lambda s: (s.ts_ns, s.frame))
    first = arrival[0]
    others = [s for s in arrival if s not in suspects]
    refs = [r for s in suspects for r in s.refs] + [r for s in others for r in s.refs]
    params = {
        "count": len(firsts),
        "qname": latest.qname_text,
        "qtype": latest.qtype_text,
        "client": latest.client,
        "cport": latest.cport,
        "server": latest.server,
        "id": latest.msg_id,
        "first_frame": first.frame,
        "validating": ", ".join(f"frame {s.frame}" for s in secure) or "none",
        "responses": [
            {"frame": s.frame, "ts_ns": s.ts_ns, "verdict": s.status.value,
             "rcode": s.rcode, "hop_limit": s.hop_limit,
             "suspect": s in suspects}
            for s in arrival
        ],
        "suspect_frames": [s.frame for s in suspects],
        "conflicting_frames": [s.frame for s in arrival],
    }
    params["query_copies"] = latest.query_copies
    asked = ("once" if latest.query_copies == 1
             else f"{latest.query_copies} times, fewer than the answers")
    return forgery_finding(
        F.RESPONSE_RACE, params, latest, verdict, [*latest.query_refs, *refs],
        reasoning=f"{len(firsts)} responses on the same flow, ID and question carry different "
        f"answers (identical repeats would be retransmissions) and the query was sent "
        f"{asked}; {why}",
    )


def _bits_finding(
    first: ResponseNote, later: ResponseSummary, before: tuple[int, bool],
    after: tuple[int, bool],
) -> Finding:
    changes = [f"{name} {'set' if before[0] & bit else 'clear'} -> "
               f"{'set' if after[0] & bit else 'clear'}"
               for name, bit in _BITS if (before[0] ^ after[0]) & bit]
    if before[1] != after[1]:
        changes.append(f"DO {'set' if before[1] else 'clear'} -> {'set' if after[1] else 'clear'}")
    params = {
        "kind": "response",
        "qname": later.qname_text,
        "qtype": later.qtype_text,
        "client": later.client,
        "cport": later.cport,
        "server": later.server,
        "id": later.msg_id,
        "changes": ", ".join(changes),
        "frames_compared": [first.frame, later.frame],
    }
    return forgery_finding(
        F.FLAGS_ALTERED, params, later, ForgeryVerdict.SUSPICIOUS,
        [*later.query_refs, *later.refs, *first.refs],
        reasoning="the same answer to the same query arrived twice with different header/EDNS "
        "bits; a retransmission repeats the bits, a middlebox or injector rewrites them",
    )
