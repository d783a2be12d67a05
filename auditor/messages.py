"""DNS parsing of wire messages with dnspython, leniently, each distinct message parsed once."""

from __future__ import annotations

import logging
import struct
from collections import OrderedDict
from dataclasses import dataclass

import dns.exception
import dns.message
import dns.name

from auditor.anomaly import Anomaly, AnomalyCode
from auditor.decode.transport import WireMessage
from auditor.ledger import Ledger, Reason

logger = logging.getLogger(__name__)

_HEADER = struct.Struct("!HHHHHH")
QR = 0x8000


@dataclass(frozen=True, slots=True)
class ObservedMessage:
    """One DNS message as seen on the wire, parsed as far as possible."""

    wire: WireMessage
    """The bytes and their provenance (addresses, ports, frames, time)."""
    id: int
    """The DNS message ID from the header."""
    is_response: bool
    """The QR bit."""
    message: dns.message.Message | None
    """The parsed message, shared between identical messages: treat it as read-only. None when
    not even the question could be parsed."""
    problems: tuple[str, ...]
    """Parse problems dnspython reported while parsing leniently (empty for a clean parse)."""
    qname: dns.name.Name | None
    """The first question's name, when there is one."""
    qtype: int | None
    """The first question's type."""
    qclass: int | None
    """The first question's class."""


@dataclass(frozen=True, slots=True)
class _Parsed:
    """A parse result cached by message bytes without the ID."""

    message: dns.message.Message | None
    problems: tuple[str, ...]
    qname: dns.name.Name | None
    qtype: int | None
    qclass: int | None


def _parse(wire: bytes) -> _Parsed:
    """Parse ``wire`` with dnspython, never raising on malformed input."""
    try:
        message = dns.message.from_wire(wire, continue_on_error=True, ignore_trailing=True)
    except (dns.exception.DNSException, ValueError, IndexError, struct.error) as exc:
        return _Parsed(None, (f"{type(exc).__name__}: {exc}",), None, None, None)
    problems = tuple(
        f"{type(err.exception).__name__} at offset {err.offset}: {err.exception}"
        for err in getattr(message, "errors", ())
    )
    question = message.question[0] if message.question else None
    return _Parsed(
        message,
        problems,
        question.name if question is not None else None,
        int(question.rdtype) if question is not None else None,
        int(question.rdclass) if question is not None else None,
    )


class MessageParser:
    """Parses wire messages, caching by the bytes after the ID so repeats cost a dict lookup."""

    def __init__(self, ledger: Ledger, *, cache_size: int = 50_000) -> None:
        self._ledger = ledger
        self._cache: OrderedDict[bytes, _Parsed] = OrderedDict()
        self._cache_size = cache_size
        self.parsed = 0
        self.cache_hits = 0

    def feed(self, wire: WireMessage) -> ObservedMessage | None:
        """Parse one message; settle its frames; return None only if it is not DNS at all."""
        data = wire.wire
        if len(data) < _HEADER.size:
            self._ledger.settle(Reason.DNS_PARSE_ERROR, wire.owned_frames)
            self._note_parse_error(wire, f"message of {len(data)} bytes is shorter than a header")
            return None
        msg_id, flags = struct.unpack_from("!HH", data)
        parsed = self._lookup(data[2:])
        if parsed is None:
            parsed = _parse(data)
            self._remember(data[2:], parsed)
        if parsed.message is None:
            self._ledger.settle(Reason.DNS_PARSE_ERROR, wire.owned_frames)
            self._note_parse_error(wire, parsed.problems[0])
        else:
            self._ledger.settle(Reason.DNS_MESSAGE, wire.owned_frames)
        return ObservedMessage(
            wire=wire,
            id=msg_id,
            is_response=bool(flags & QR),
            message=parsed.message,
            problems=parsed.problems,
            qname=parsed.qname,
            qtype=parsed.qtype,
            qclass=parsed.qclass,
        )

    def _lookup(self, key: bytes) -> _Parsed | None:
        parsed = self._cache.get(key)
        if parsed is not None:
            self.cache_hits += 1
            self._cache.move_to_end(key)
        return parsed

    def _remember(self, key: bytes, parsed: _Parsed) -> None:
        self.parsed += 1
        self._cache[key] = parsed
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def _note_parse_error(self, wire: WireMessage, problem: str) -> None:
        self._ledger.note(
            Anomaly(
                code=AnomalyCode.DNS_PARSE_ERROR,
                capture=wire.capture,
                frames=wire.frames,
                ts_ns=wire.ts_ns,
                detail=f"DNS message {wire.src}#{wire.sport} -> {wire.dst}#{wire.dport} "
                f"could not be parsed: {problem}",
                src=wire.src,
                dst=wire.dst,
            )
        )

