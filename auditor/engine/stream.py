"""The decode spine of every driver: frames in, DNS messages parsed, queries matched to their
responses, response evidence out, with every stage's counters kept for ``stats.json``."""

from __future__ import annotations

import logging
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from auditor.anomaly import Anomaly, AnomalyCode
from auditor.capture.frame import Frame
from auditor.decode.cut import cut_udp_message
from auditor.decode.defrag import Defragmenter
from auditor.decode.dissect import AddressMemos, dissect
from auditor.decode.fastpath import fast_udp_message
from auditor.decode.tcpstream import TCPReassembler
from auditor.decode.transport import (
    DNS_PORTS,
    TCPSegment,
    WireMessage,
    split_transport,
    udp_message,
)
from auditor.engine.caches import Caches
from auditor.engine.contain import Containment
from auditor.engine.limits import FILE_LIMITS, Limits
from auditor.evidence import ResponseEvidence, build_evidence
from auditor.ledger import Ledger, Reason
from auditor.messages import MessageParser, ObservedMessage, ParsedMessage, ParseTables
from auditor.transactions import Matcher, Transaction

logger = logging.getLogger(__name__)

EXPIRE_INTERVAL_NS = 1_000_000_000
"""How often (in capture time) reassembly and matching state is expired."""
class _RateLimitedLog:
    """Logs the first few occurrences of a repetitive per-packet problem, then counts silently."""

    def __init__(self, limit: int = 5) -> None:
        self._limit = limit
        self._seen: Counter[str] = Counter()

    def warning(self, key: str, message: str, *args: object) -> None:
        self._seen[key] += 1
        if self._seen[key] <= self._limit:
            logger.warning(message, *args)
        elif self._seen[key] == self._limit + 1:
            logger.warning("further '%s' problems are counted in stats.json, not logged", key)


class DecodeChain:
    """Frames in, parsed DNS messages out: dissect, defragment, split, reassemble, parse."""

    def __init__(
        self,
        ledger: Ledger,
        ports: frozenset[int] = DNS_PORTS,
        *,
        verify_checksums: bool = True,
        parse_cache: OrderedDict[bytes, ParsedMessage] | None = None,
        frame_filter: Callable[[Frame], bool] | None = None,
        shard: Callable[[Frame], bool] | None = None,
        limits: Limits = FILE_LIMITS,
        address_memos: AddressMemos | None = None,
        parse_tables: ParseTables | None = None,
    ) -> None:
        """``frame_filter``: frames it rejects are settled as ``filtered_out`` undecoded.
        ``shard``: frames it rejects belong to another shard (``audit --jobs``): neither
        counted nor decoded here, their capture time only drives expiry (``pass_over``).
        ``limits``: the caps and timeouts of reassembly and the parse cache.
        ``address_memos``, ``parse_tables``: the run's (``Caches``); without them the chain
        makes its own, capped by ``limits``."""
        self.ledger = ledger
        self.ports = ports
        self.verify_checksums = verify_checksums
        self.frame_filter = frame_filter
        self.shard = shard
        self.addresses = (address_memos if address_memos is not None
                          else AddressMemos(limits.address_memo))
        """Address texts and values memoised by the decode stage."""
        self._owned = 1
        self.defragmenter = Defragmenter(
            ledger, timeout_ns=limits.fragment_timeout_ns, max_sets=limits.fragment_sets,
            max_bytes=limits.fragment_bytes)
        self.tcp = TCPReassembler(
            ledger, timeout_ns=limits.tcp_timeout_ns, max_flows=limits.tcp_flows,
            max_total_bytes=limits.tcp_bytes)
        self.parser = MessageParser(
            ledger, cache_size=limits.parse_cache, cache=parse_cache,
            tables=parse_tables if parse_tables is not None else ParseTables(limits.record_cache))
        self._next_expiry_ns: int | None = None
        self._errors = _RateLimitedLog()

    def feed(self, frame: Frame) -> list[ObservedMessage]:
        """Decode one frame; return the DNS messages it completes (usually zero or one)."""
        if self.shard is not None and not self.shard(frame):
            return self.pass_over(frame)
        ledger = self.ledger
        ledger.frames_read += 1  # Ledger.read(), without the call on the hot path
        if self.frame_filter is not None and not self.frame_filter(frame):
            ledger.settle(Reason.FILTERED_OUT)
            return []
        next_expiry_ns = self._next_expiry_ns
        if next_expiry_ns is not None and frame.ts_ns < next_expiry_ns:
            # Plain UDP datagrams skip the general stages: same outcome, fewer objects.
            try:
                found = fast_udp_message(frame, self.ports, ledger, self.verify_checksums,
                                         self.addresses)
            except Exception as exc:  # our own bug must not stop the run: count it
                ledger.settle(Reason.DECODER_ERROR)
                self._note_decoder_error(frame, exc)
                return []
            if isinstance(found, WireMessage):
                observed = self.parser.feed(found)
                return [] if observed is None else [observed]
            if found:
                return []
        return self._feed_general(frame)

    def pass_over(self, frame: Frame) -> list[ObservedMessage]:
        """A frame another shard decodes: expire reassembly state when one process would have
        at this frame (the first frame, of any flow, past the deadline), so each shard closes
        its flows at the same capture times as a single process."""
        if self.frame_filter is not None and not self.frame_filter(frame):
            return []
        return self._parse_all(self._expire_if_due(frame.ts_ns))

    def _feed_general(self, frame: Frame) -> list[ObservedMessage]:
        """Expire reassembly state when due, then decode the frame through every stage."""
        wires = self._expire_if_due(frame.ts_ns)
        self._owned = 1
        try:
            wires.extend(self._decode(frame))
        except Exception as exc:  # our own bug must not stop the run: count it with the frame
            # Settle every frame the failed unit owned (a reassembled datagram owns several).
            self.ledger.settle(Reason.DECODER_ERROR, self._owned)
            self._note_decoder_error(frame, exc)
        return self._parse_all(wires)

    def _decode(self, frame: Frame) -> list[WireMessage]:
        addresses = self.addresses
        datagram = dissect(frame, self.ledger, addresses)
        if datagram is None:
            # A DNS answer the snapshot length cut is still listed (settled as cut above).
            cut = (cut_udp_message(frame, self.ports, addresses)
                   if frame.wirelen > len(frame.data) else None)
            return [cut] if cut is not None else []
        if datagram.fragment is not None:
            datagram = self.defragmenter.feed(datagram)
            if datagram is None:
                return []
            self._owned = datagram.owned_frames
        # Checksums are verified and counted, never a reason to drop: captures taken on the
        # sending host (offload, loopback) carry invalid ones everywhere.
        unit = split_transport(
            datagram, self.ports, self.ledger, verify_checksums=self.verify_checksums,
            memos=addresses,
        )
        if unit is None:
            return []
        if isinstance(unit, TCPSegment):
            return self.tcp.feed(unit)
        return [udp_message(unit)]

    def _expire_if_due(self, now_ns: int) -> list[WireMessage]:
        if self._next_expiry_ns is None:
            self._next_expiry_ns = now_ns + EXPIRE_INTERVAL_NS
            return []
        if now_ns < self._next_expiry_ns:
            return []
        self._next_expiry_ns = now_ns + EXPIRE_INTERVAL_NS
        self.defragmenter.expire(now_ns)
        return self.tcp.expire(now_ns)

    def flush(self) -> list[ObservedMessage]:
        """End of input: flush reassembly state and parse what it completes."""
        self.defragmenter.flush()
        return self._parse_all(self.tcp.flush())

    def _parse_all(self, wires: list[WireMessage]) -> list[ObservedMessage]:
        messages = []
        for wire in wires:
            observed = self.parser.feed(wire)
            if observed is not None:
                messages.append(observed)
        return messages

    def _note_decoder_error(self, frame: Frame, exc: Exception) -> None:
        self._errors.warning(
            "decoder_error",
            "%s frame %d: internal decoder error %s: %s",
            frame.capture,
            frame.number,
            type(exc).__name__,
            exc,
        )
        self.ledger.note(
            Anomaly(
                code=AnomalyCode.DECODER_ERROR,
                capture=frame.capture,
                frames=(frame.number,),
                ts_ns=frame.ts_ns,
                detail=f"internal decoder error {type(exc).__name__}: {exc}",
            )
        )


@dataclass(slots=True)
class EvidenceStream:
    """Frames in, response evidence out, with every stage's counters kept for the report."""

    ledger: Ledger = field(default_factory=Ledger)
    ports: frozenset[int] = DNS_PORTS
    on_anomaly: Callable[[Anomaly], None] | None = None
    on_query: Callable[[ObservedMessage], None] | None = None
    """Called with every query (QR=0) as it is decoded (the forgery stage's query view)."""
    on_response_facts: Callable[[ResponseEvidence, Any], None] | None = None
    """Called (``audit --jobs``) with what a worker's forgery stage derived from a response
    alone, just before the response is handed on (the forgery stage's ``prime``)."""
    verify_checksums: bool = True
    """Verify (and count bad) UDP/TCP checksums; never a reason to drop a packet."""
    parse_cache: OrderedDict[bytes, ParsedMessage] | None = None
    """A parse cache shared with another stream over the same input (the key pass)."""
    frame_filter: Callable[[Frame], bool] | None = None
    """Frames it rejects are settled as ``filtered_out`` (``audit --filter``)."""
    shard: Callable[[Frame], bool] | None = None
    """Frames it rejects belong to another shard (``audit --jobs``): not counted here."""
    limits: Limits = FILE_LIMITS
    """Caps and timeouts of reassembly, the parse cache and matching."""
    errors: Containment = field(default_factory=Containment)
    """Contains our own failures per message and per response (by default its anomalies go
    to ``on_anomaly``)."""
    caches: Caches | None = None
    """The run's memos (``Caches``), shared by its streams; without them the stream makes
    its own from ``limits``."""
    chain: DecodeChain = field(init=False)
    matcher: Matcher = field(init=False)
    state_peaks: dict[str, int] = field(default_factory=dict)
    """The largest size of each bounded table seen at an expiry tick (``stats.json``
    ``state``), to hold against its cap."""
    _last_expiry_ns: int = 0

    def __post_init__(self) -> None:
        if self.caches is None:
            self.caches = Caches(self.limits)
        self.chain = DecodeChain(
            self.ledger,
            self.ports,
            verify_checksums=self.verify_checksums,
            parse_cache=self.parse_cache,
            frame_filter=self.frame_filter,
            shard=self.shard,
            limits=self.limits,
            address_memos=self.caches.addresses,
            parse_tables=self.caches.parse,
        )
        self.matcher = Matcher(timeout_ns=self.limits.query_timeout_ns,
                               max_pending=self.limits.pending_queries)
        if self.errors.on_anomaly is None:
            # The callback itself, not a method of this stream: that reference cycle kept a
            # finished stream, its parse cache and memos alive until the collector's next
            # full run (the key pass of audit --jobs 2: about 200,000 objects per 200,000
            # frames, collected mid-run in 2.3 s at 1,000,000 frames).
            self.errors.on_anomaly = self.on_anomaly

    def run(self, frames: Iterable[Frame]) -> Iterator[ResponseEvidence]:
        """Yield the evidence of every response in capture order, then flush all state (a
        response whose evidence cannot be built is contained: ``errors``)."""
        facts = self.caches.facts if self.caches is not None else None
        for transaction in self.transactions(frames):
            try:
                evidence = build_evidence(transaction, facts)
            except Exception as exc:  # our own bug must not stop the run
                self.errors.response_failed(transaction, exc)
                continue
            yield evidence

    def transactions(self, frames: Iterable[Frame]) -> Iterator[Transaction]:
        """The capture stage alone: every response matched to its query, in capture order
        (records are parsed only when evidence is built from them)."""
        # feed() with _match()'s loop inlined: it runs once per frame (no generator per frame).
        feed_chain = self.chain.feed
        match_one = self._match_one
        matcher = self.matcher
        ledger = self.ledger
        for frame in frames:
            for message in feed_chain(frame):
                transaction = match_one(message)
                if transaction is not None:
                    yield transaction
            now_ns = frame.ts_ns
            if now_ns - self._last_expiry_ns > EXPIRE_INTERVAL_NS:
                self._last_expiry_ns = now_ns
                self.note_state()
                matcher.expire(now_ns)
            if ledger.anomalies:
                self._drain_anomalies()
        yield from self.finish()

    def state_sizes(self) -> dict[str, int]:
        """Entries and accounted bytes held now by the decode, parse and matching stages."""
        chain = self.chain
        return {
            "pending_queries": self.matcher.pending,
            "pending_query_bytes": self.matcher.pending_bytes,
            "parsed_messages": chain.parser.cached,
            "parsed_message_bytes": chain.parser.cached_bytes,
            "fragment_frames_held": chain.defragmenter.held_frames,
            "fragment_bytes_held": chain.defragmenter.held_bytes,
            "tcp_flows": chain.tcp.flows,
            "tcp_bytes_held": chain.tcp.held_bytes,
        }

    def note_state(self) -> None:
        """Keep the peak of every ``state_sizes`` figure."""
        peaks = self.state_peaks
        for name, size in self.state_sizes().items():
            peaks[name] = max(size, peaks.get(name, 0))

    def feed(self, frame: Frame) -> list[Transaction]:
        """Push interface (live mode): one frame in, the transactions it completes out."""
        return list(self._match(self.chain.feed(frame), frame.ts_ns))

    def finish(self) -> list[Transaction]:
        """Push interface: end of input; flush reassembly and matching state."""
        try:
            done = list(self._match(self.chain.flush(), None))
            self.matcher.flush()
        except Exception as exc:  # our own bug must not stop the run
            self.errors.flush_failed(exc)
            done = []
        self._drain_anomalies()
        return done

    def _match_one(self, message: ObservedMessage) -> Transaction | None:
        """Match one message (a query goes to ``on_query`` while it waits); a failure of ours
        is contained to the message and counted."""
        try:
            transaction = self.matcher.feed(message)
            if transaction is None and self.on_query is not None and not message.is_response:
                self.on_query(message)
        except Exception as exc:  # our own bug must not stop the run
            self.errors.message_failed(message, exc)
            return None
        return transaction

    def _match(self, messages: list[ObservedMessage], now_ns: int | None) -> Iterator[
        Transaction
    ]:
        for message in messages:
            transaction = self._match_one(message)
            if transaction is not None:
                yield transaction
        if now_ns is not None and now_ns - self._last_expiry_ns > EXPIRE_INTERVAL_NS:
            self._last_expiry_ns = now_ns
            self.matcher.expire(now_ns)
        self._drain_anomalies()

    def _drain_anomalies(self) -> None:
        anomalies = self.ledger.take_anomalies()
        if self.on_anomaly is not None:
            for anomaly in anomalies:
                self.on_anomaly(anomaly)

    def counters(self) -> dict[str, Any]:
        """Every stage's counts, JSON-ready, for ``stats.json``."""
        return {
            "frames_read": self.ledger.frames_read,
            "frames": self.ledger.as_dict(),
            "frames_unsettled": self.ledger.pending,
            "observed": dict(self.ledger.observed),
            "messages": {
                "parsed_distinct": self.chain.parser.parsed,
                "parse_cache_hits": self.chain.parser.cache_hits,
                "parse_cache_evicted": self.chain.parser.evicted,
            },
            "matching": self.matcher.stats.as_dict(),
        }
