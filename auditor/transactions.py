"""Query/response matching on (client, server, ports, ID, question), tolerant of one-sided taps."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import dns.opcode

from auditor.messages import ObservedMessage

_FlowId = tuple[str, int, str, int, int]
"""(client address, client port, server address, server port, DNS ID)."""

PENDING_OVERHEAD = 1_024
"""Bytes a pending query costs besides its message bytes (the message, its wire provenance,
its summary and name, the table entry), as measured with tracemalloc under a query flood."""


@dataclass(frozen=True, slots=True)
class Transaction:
    """One DNS response with the query it answers, when that query was captured."""

    response: ObservedMessage
    """The response (QR=1)."""
    query: ObservedMessage | None
    """The matching query, or None for an unsolicited response (or a one-sided capture)."""
    response_index: int
    """0 for the first response to this query; 1, 2, ... for later ones (retransmissions or
    races); 0 when there is no query."""
    query_copies: int = 1
    """Copies of the query (same addresses, ports, ID and question) seen up to this response:
    2 or more when the client retried or re-asked; each copy may get its own answer."""
    question_mismatch: bool = False
    """No query matched, but one with these addresses, ports and ID asks another question
    (RFC 5452 9.1: not an answer to it; a broken server or middlebox, not a spoofer's guess)."""

    @property
    def opcode(self) -> int:
        """The response's opcode (RFC 1035 4.1.1; NOTIFY 4, RFC 1996; UPDATE 5, RFC 2136)."""
        return (self.response.flags >> 11) & 0xF

    @property
    def answers_query(self) -> bool:
        """Whether the response answers a question (opcode QUERY). NOTIFY and UPDATE responses
        acknowledge a message whose sections mean something else (RFC 1996 3.7, RFC 2136 2):
        they are neither validated as answers nor judged by the forgery heuristics."""
        return self.opcode == dns.opcode.QUERY


@dataclass(slots=True)
class _Pending:
    """A query waiting for (more) responses."""

    query: ObservedMessage
    """The first copy of the query (the exchange's identity and provenance)."""
    responses: int = 0
    last_ts_ns: int = 0
    copies: int = 1
    """Copies of the query seen: retransmissions before an answer and re-asks after one."""

    def limit_ns(self, timeout_ns: int, linger_ns: int) -> int:
        """How long after ``last_ts_ns`` the query is kept: the query timeout while a copy
        still waits for its answer, the linger time once every copy had one."""
        return linger_ns if self.responses >= self.copies else timeout_ns


@dataclass(slots=True)
class MatchStats:
    """Counts kept by the matcher; they go into ``stats.json``."""

    queries: int = 0
    responses: int = 0
    matched: int = 0
    unsolicited: int = 0
    unanswered: int = 0
    duplicate_queries: int = 0
    extra_responses: int = 0
    evicted_queries: int = 0
    evicted_query_bytes: int = 0
    question_mismatch: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, int]:
        """JSON-ready counts."""
        return {
            "queries": self.queries,
            "responses": self.responses,
            "matched_responses": self.matched,
            "unsolicited_responses": self.unsolicited,
            "unanswered_queries": self.unanswered,
            "duplicate_queries": self.duplicate_queries,
            "extra_responses": self.extra_responses,
            "evicted_queries": self.evicted_queries,
            "evicted_query_bytes": self.evicted_query_bytes,
            "question_mismatch": self.question_mismatch,
        }


class Matcher:
    """Sans-I/O matcher: ``feed`` messages in capture order, get a Transaction per response.

    A matched query is kept for ``linger_ns`` after its last response so that later responses
    to it (retransmitted or raced, RFC 5452 section 9.1) are matched to it too.

    A query repeated on the same flow with the same ID and question, before or after an answer
    (a stub's retry, a client re-asking), is another copy of the same exchange, not a new one:
    the response is matched to that exchange and ``Transaction.query_copies`` says how many
    copies were sent, so two answers to two copies are not mistaken for a race.
    """

    def __init__(
        self,
        *,
        timeout_ns: int = 30_000_000_000,
        linger_ns: int = 10_000_000_000,
        max_pending: int = 200_000,
        max_pending_bytes: int = 32 << 20,
    ) -> None:
        """``max_pending`` and ``max_pending_bytes`` (message bytes plus
        ``PENDING_OVERHEAD`` per query) bound the queries held; over either, the least
        recently active flow's queries are evicted (``evicted_queries``)."""
        self._timeout_ns = timeout_ns
        self._linger_ns = linger_ns
        self._max_pending = max_pending
        self._max_bytes = max_pending_bytes
        self._pending: OrderedDict[_FlowId, list[_Pending]] = OrderedDict()
        self._count = 0
        self._bytes = 0
        self.stats = MatchStats()

    @property
    def pending_bytes(self) -> int:
        """Accounted bytes of the queries held now."""
        return self._bytes

    @property
    def pending(self) -> int:
        """Queries waiting for (or lingering after) their response now."""
        return self._count

    def feed(self, message: ObservedMessage) -> Transaction | None:
        """Take one message; return a Transaction if it is a response."""
        if message.is_response:
            return self._answer(message)
        self._ask(message)
        return None

    def _ask(self, query: ObservedMessage) -> None:
        self.stats.queries += 1
        wire = query.wire
        key = (wire.src, wire.sport, wire.dst, wire.dport, query.id)
        waiting = self._pending.get(key)
        if waiting is None:
            waiting = []
            self._pending[key] = waiting
        else:
            self._pending.move_to_end(key)
        question = query.summary.question_key
        for pending in waiting:
            if pending.query.summary.question_key == question:
                # The same query again (a retry before the answer, or a re-ask after it): one
                # more copy of the same exchange. Keep the first copy as its identity.
                self.stats.duplicate_queries += 1
                pending.copies += 1
                pending.last_ts_ns = wire.ts_ns
                return
        waiting.append(_Pending(query, 0, wire.ts_ns))
        self._count += 1
        self._bytes += _cost(query)
        while self._pending and (self._count > self._max_pending
                                 or self._bytes > self._max_bytes):
            self._evict_oldest()

    def _answer(self, response: ObservedMessage) -> Transaction:
        self.stats.responses += 1
        wire = response.wire
        key = (wire.dst, wire.dport, wire.src, wire.sport, response.id)
        pending = self._find(key, response)
        if pending is None:
            self.stats.unsolicited += 1
            mismatch = bool(self._pending.get(key)) and response.summary.qname is not None
            return Transaction(response, None, 0, question_mismatch=mismatch)
        index = pending.responses
        pending.responses += 1
        pending.last_ts_ns = wire.ts_ns
        self._pending.move_to_end(key)  # keep the dict ordered by last activity for expire()
        self.stats.matched += 1
        if index:
            self.stats.extra_responses += 1
        return Transaction(response, pending.query, index, pending.copies)

    def _find(self, key: _FlowId, response: ObservedMessage) -> _Pending | None:
        waiting = self._pending.get(key)
        if not waiting:
            return None
        summary = response.summary
        if summary.qname is None:
            # RFC 1035 4.1.2 allows a response without question (FORMERR, NOTIMP): match on ID.
            return waiting[0]
        question = summary.question_key
        for pending in waiting:
            if pending.query.summary.question_key == question:
                return pending
        for pending in waiting:
            if pending.query.summary.qname is None:
                # The query's question could not be read (a damaged or hostile name, e.g. a
                # forward compression pointer): nothing to compare, match on flow and ID.
                return pending
        # RFC 5452 section 9.1: a response whose question differs is not an answer to the query.
        self.stats.question_mismatch += 1
        return None

    def expire(self, now_ns: int) -> None:
        """Forget queries that timed out (unanswered) or lingered long enough after an answer.

        The pending dict is ordered by last activity, so only its stale front is visited:
        the first flow with a live query ends the sweep (later flows are more recent).
        """
        pending_flows = self._pending
        linger_ns, timeout_ns = self._linger_ns, self._timeout_ns
        while pending_flows:
            key, waiting = next(iter(pending_flows.items()))
            if len(waiting) == 1:  # the usual flow: one query, decided without a new list
                only = waiting[0]
                if now_ns - only.last_ts_ns <= only.limit_ns(timeout_ns, linger_ns):
                    return
                self._count -= 1
                self._bytes -= _cost(only.query)
                if not only.responses:
                    self.stats.unanswered += 1
                del pending_flows[key]
                continue
            kept = [p for p in waiting if not self._is_stale(p, now_ns)]
            self._forget(len(waiting) - len(kept), waiting, kept)
            if kept:
                waiting[:] = kept
                return
            del self._pending[key]

    def _is_stale(self, pending: _Pending, now_ns: int) -> bool:
        return now_ns - pending.last_ts_ns > pending.limit_ns(self._timeout_ns, self._linger_ns)

    def _forget(self, dropped: int, before: list[_Pending], after: list[_Pending]) -> None:
        if not dropped:
            return
        kept_ids = {id(p) for p in after}
        gone = [p for p in before if id(p) not in kept_ids]
        self.stats.unanswered += sum(1 for p in gone if p.responses == 0)
        self._bytes -= sum(_cost(p.query) for p in gone)
        self._count -= dropped

    def _evict_oldest(self) -> None:
        key, waiting = next(iter(self._pending.items()))
        del self._pending[key]
        self._count -= len(waiting)
        cost = sum(_cost(p.query) for p in waiting)
        self._bytes -= cost
        self.stats.evicted_queries += len(waiting)
        self.stats.evicted_query_bytes += cost
        self.stats.unanswered += sum(1 for p in waiting if p.responses == 0)

    def flush(self) -> None:
        """End of input: every query never answered counts as unanswered."""
        for waiting in self._pending.values():
            self.stats.unanswered += sum(1 for p in waiting if p.responses == 0)
        self._pending.clear()
        self._count = 0
        self._bytes = 0


def _cost(query: ObservedMessage) -> int:
    return len(query.wire.wire) + PENDING_OVERHEAD
