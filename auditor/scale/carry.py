"""How ``audit --jobs 2``'s judging process sends judged responses to the reporting process
(``scale/reporting.py``) so that the reporting side works on objects of its own, as one
process would, at the least cost to both.

A response's evidence crosses as its transaction only. Each distinct message crosses whole
the first time, a response with its records already paired with their RRSIGs as its evidence
has them (``ParsedMessage.paired``; its dnspython message stays behind), and afterwards as a
reference to the reporting process's copy: the two processes keep the same window of recent
distinct messages (``MessageWindow``), the judging one of their keys alone, both fed the same
keys in the same order (the order of the pickle stream), so the judging process knows what the
other holds. The reporting process then makes the evidence from the paired records
(``evidence_from_facts``). Why not pickle the evidence whole, as before: each response then
carried its names, records and RRsets again (about 45 µs to pickle and 35 to load on the
benchmark capture), and the loaded objects were new to the reporting side's identity memos (a
repeated answer is the same objects in one process), which computed again what they had. Why
not parse there: parsing a distinct message costs about 100 µs, ten times loading it
(benchmarks/README.md, "session 10").
"""
from __future__ import annotations

import pickle
from collections import OrderedDict
from typing import Any, Generic, TypeVar

from auditor.decode.transport import WireMessage
from auditor.engine.caches import Caches
from auditor.engine.limits import Limits
from auditor.evidence import (
    FactsMemo,
    MessageFacts,
    ResponseEvidence,
    build_evidence,
    evidence_from_facts,
    message_facts,
)
from auditor.messages import PARSE_CACHE_BYTES, ObservedMessage, ParsedMessage, parsed_cost
from auditor.scale.pickling import DataclassPickler
from auditor.scale.pipe import _RESTART, _SHARED, _Feed
from auditor.transactions import Transaction

V = TypeVar("V")

WINDOW_BYTES = 4 * PARSE_CACHE_BYTES
"""Accounted bytes (``parsed_cost``) of the messages the reporting process keeps at most.
Unlike the judging process's parse cache, which drops a message at its last sighting in the
file (``ParseCache``), the window only ages messages out, so it needs more room for the same
hits. Measured on the benchmark capture at 1,000,000 frames: the reporting process's peak
RSS 468-481 MB against 451 before the window; with the parse cache's 32 MB instead, 217,563
messages crossed whole instead of 84,869 and the run took 137.7 s against 129.7. Where nothing
repeats (a flood of ever new names, 150,000 frames) the window is all cost: peak RSS 475 MB
against 423 without it, 43.4 s against 42.0; the churn capture (200,000 frames) 474 MB
against 409 (benchmarks/README.md, "session 10")."""


class MessageWindow(Generic[V]):
    """Recent distinct messages by their bytes after the ID, least recently used out past
    ``entries`` or ``max_bytes`` accounted bytes. The reporting process's holds the messages;
    the judging process's mirrors it with keys alone."""

    def __init__(self, entries: int, max_bytes: int = WINDOW_BYTES) -> None:
        self._items: OrderedDict[bytes, V] = OrderedDict()
        self._entries = entries
        self._max_bytes = max_bytes
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        """Forget every message."""
        self._items.clear()
        self._bytes = 0

    def get(self, key: bytes) -> V | None:
        """The message kept under ``key`` (now the most recent), or None."""
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def peek(self, key: bytes) -> V | None:
        """The message kept under ``key``, its age unchanged (or None)."""
        return self._items.get(key)

    def put(self, key: bytes, value: V) -> None:
        """Keep ``value`` under ``key``; age out the oldest past the caps."""
        items = self._items
        if key in items:
            items.move_to_end(key)
        else:
            self._bytes += parsed_cost(key)
        items[key] = value
        while len(items) > self._entries or (self._bytes > self._max_bytes and len(items) > 1):
            self._bytes -= parsed_cost(items.popitem(last=False)[0])


def _evidence_of(transaction: Transaction) -> ResponseEvidence:
    """Stands in ``CarryingPickler``'s pickles for ``Rebuilder.evidence``, which
    ``CarriedUnpickler.find_class`` puts in its place."""
    raise AssertionError("made only by the reporting process's unpickler")


def _observed_again(wire: WireMessage, msg_id: int, is_response: bool,
                    flags: int) -> ObservedMessage:
    """Stands in for ``Rebuilder.observed_again``, as ``_evidence_of`` does."""
    raise AssertionError("made only by the reporting process's unpickler")


def _observed_first(wire: WireMessage, msg_id: int, is_response: bool, flags: int,
                    carried: tuple[Any, ...], facts: MessageFacts | None) -> ObservedMessage:
    """Stands in for ``Rebuilder.observed_first``, as ``_evidence_of`` does."""
    raise AssertionError("made only by the reporting process's unpickler")


_STAND_INS = {"_evidence_of": "evidence", "_observed_again": "observed_again",
              "_observed_first": "observed_first"}
"""Each stand-in's ``Rebuilder`` method."""


class CarryingPickler(DataclassPickler):
    """The judging process's pickler: evidence as its transaction, a message whole the first
    time (``ParsedMessage.carried``) and by reference while the reporting process keeps it."""

    def __init__(self, file: Any, limits: Limits) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.mirror: MessageWindow[bool] = MessageWindow(limits.parse_cache)
        """The keys of the reporting process's window."""
        self.facts: FactsMemo | None = None
        """The judging side's memo of paired records (``build_evidence``'s), once set: a
        response goes with its records paired, as its evidence has them."""
        self.sent_whole = 0
        self.sent_again = 0

    def restart(self) -> None:
        """Forget what the reporting process holds: a batch failed to pickle half-way, so the
        keys it put or refreshed may never reach that process; the next batch tells it to
        empty its window too (``pipe._RESTART``)."""
        self.mirror.clear()

    def reducer_override(self, obj: Any) -> Any:
        cls = type(obj)
        if cls is ResponseEvidence:
            return _evidence_of, (obj.transaction,)
        if cls is ObservedMessage:
            key = obj.wire.wire[2:]
            header = (obj.wire, obj.id, obj.is_response, obj.flags)
            if self.mirror.get(key):
                self.sent_again += 1
                return _observed_again, header
            self.mirror.put(key, True)
            self.sent_whole += 1
            return _observed_first, (*header, *self._carried(obj))
        return super().reducer_override(obj)

    def _carried(self, message: ObservedMessage) -> tuple[tuple[Any, ...], MessageFacts | None]:
        """A response whose records were read: its state without them, and them paired (the
        reporting side reads a response's records from its evidence only, as
        ``ParsedMessage.__getstate__`` says); a query, or a response not read: its state
        whole (the forgery stage reads a query's header from its message)."""
        parsed = message.parsed
        if self.facts is None or not message.is_response or not parsed.records_read:
            return parsed.carried(), None
        return parsed.carried(records=False), message_facts(parsed.message, self.facts)


class Rebuilder:
    """The reporting process's end: its window of messages, each with its records paired
    where they were read (``ParsedMessage.paired``), so a repeated answer is the same
    objects, as in one process."""

    def __init__(self, limits: Limits, caches: Caches) -> None:
        self._tables = caches.parse
        self._facts = caches.facts
        self.window: MessageWindow[ParsedMessage] = MessageWindow(limits.parse_cache)
        self.parsed_again = 0
        """References to a message the window no longer held (parsed here from its bytes):
        our own bug, the two windows out of step; counted, never a different result."""

    def restart(self) -> None:
        """Empty the window, as the judging side did (``CarryingPickler.restart``)."""
        self.window.clear()

    def observed_first(self, wire: WireMessage, msg_id: int, is_response: bool, flags: int,
                       carried: tuple[Any, ...], facts: MessageFacts | None) -> ObservedMessage:
        parsed = ParsedMessage.from_carried(carried, self._tables, facts)
        self.window.put(wire.wire[2:], parsed)
        return ObservedMessage(wire, msg_id, is_response, flags, parsed.summary, parsed)

    def observed_again(self, wire: WireMessage, msg_id: int, is_response: bool,
                       flags: int) -> ObservedMessage:
        key = wire.wire[2:]
        parsed = self.window.get(key)
        if parsed is None:
            self.parsed_again += 1
            parsed = ParsedMessage(wire.wire, None, self._tables)
            self.window.put(key, parsed)
        return ObservedMessage(wire, msg_id, is_response, flags, parsed.summary, parsed)

    def evidence(self, transaction: Transaction) -> ResponseEvidence:
        paired = transaction.response.parsed.paired
        if paired is not None:
            return evidence_from_facts(transaction, paired)
        return build_evidence(transaction, self._facts)  # records read here


class CarriedUnpickler(pickle.Unpickler):
    """Loads ``CarryingPickler``'s batches through ``rebuilder``."""

    def __init__(self, file: Any, rebuilder: Rebuilder) -> None:
        super().__init__(file)
        self._rebuilder = rebuilder

    def find_class(self, module: str, name: str) -> Any:
        if module == __name__ and name in _STAND_INS:
            return getattr(self._rebuilder, _STAND_INS[name])
        return super().find_class(module, name)


def next_unpickler(flag: bytes, unpickler: CarriedUnpickler, feed: _Feed,
                   rebuilder: Rebuilder) -> CarriedUnpickler:
    """The unpickler of a message whose first byte is ``flag`` (``scale/pipe.py``): the last
    one while the memo is shared, else a new one; after ``_RESTART`` with the window emptied."""
    if flag == _SHARED:
        return unpickler
    if flag == _RESTART:
        rebuilder.restart()
    return CarriedUnpickler(feed, rebuilder)
