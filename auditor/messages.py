"""DNS parsing of wire messages: header, question and EDNS at once, records lazily, each
distinct message (ignoring its ID) parsed once and shared."""

from __future__ import annotations

import logging
import re
import struct
from array import array
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.wire

from auditor.anomaly import Anomaly, AnomalyCode
from auditor.decode.transport import WireMessage
from auditor.ledger import Ledger, Reason
from auditor.memo import IdentityMemo

logger = logging.getLogger(__name__)

_HEADER = struct.Struct("!HHHHHH")
_ID_FLAGS = struct.Struct("!HH")
_QUESTION_TAIL = struct.Struct("!HH")
_RR_TAIL = struct.Struct("!HHIH")
QR = 0x8000
_OPT = 41
_EDE_OPTION = 15
_MAX_LABELS = 128
_DNS_MESSAGE = Reason.DNS_MESSAGE
_PARSE_ERRORS = (dns.exception.DNSException, ValueError, IndexError, struct.error, KeyError)


@dataclass(frozen=True, slots=True)
class Summary:
    """What the capture stage reads of every message: header, first question and EDNS."""

    qname: dns.name.Name | None
    """The first question's name, when there is one."""
    qtype: int | None
    """The first question's type."""
    qclass: int | None
    """The first question's class."""
    question_key: bytes | None
    """The first question in canonical wire form (lower-cased name, type, class): what
    query/response matching compares (RFC 5452 9.1); None without a question."""
    rcode: int
    """The full response code: header RCODE plus the OPT record's extended bits (RFC 6891)."""
    edns: bool
    """Whether an OPT record was found."""
    do: bool
    """The EDNS DO bit (RFC 3225)."""
    ede: tuple[int, ...]
    """RFC 8914 Extended DNS Error info codes in the OPT record."""
    problem: str | None
    """Why the header/question could not be read (the message is then a parse error), or
    why the records after the question could not be walked (the summary is then partial)."""
    readable: bool
    """False when not even the header and question could be read."""


class MessageLeftBehind(RuntimeError):
    """Our own bug: a stage read the dnspython message of a response that another process
    parsed (``ParsedMessage.__getstate__`` leaves it there)."""


class ParsedMessage:
    """The full dnspython parse of one distinct message, done on first use and shared."""

    __slots__ = ("_done", "_left_behind", "_message", "_problems", "_tables", "_ttl_free",
                 "_wire", "paired", "summary")

    def __init__(self, wire: bytes, summary: Summary | None = None,
                 tables: ParseTables | None = None) -> None:
        """``tables``: the run's parse tables, shared with other messages (kept until the
        records are read)."""
        self._wire = wire
        self._ttl_free: bytes | None = None
        self._tables = tables
        self.summary = summary if summary is not None else summarise(wire, tables)
        """The message's header, question and EDNS summary (``summarise``)."""
        self._message: dns.message.Message | None = None
        self._problems: tuple[str, ...] = ()
        self._done = False
        self._left_behind = False
        """The parsed response stayed in the process that parsed it (``__getstate__``)."""
        self.paired: Any = None
        """Its records paired with their RRSIGs (``evidence.MessageFacts``) where they came
        from another process that paired them (``from_carried``), else None."""

    def __getstate__(self) -> dict[str, object]:
        """Pickled (``audit --jobs``, Dask spools, ``live --jobs 2``) without the run's
        tables: another process reads the records, if ever, with its own. A parsed
        response's dnspython message stays behind too: the stages after the verdict read a
        response's records from its evidence, never from the message (about a tenth of what
        crossed, measured on the benchmark capture's batches); reading it there raises.
        A query's crosses (the forgery stage reads a query's header from it)."""
        state = {name: getattr(self, name) for name in self.__slots__
                 if name not in ("_tables", "paired")}
        message = self._message
        if message is not None and message.flags & dns.flags.QR:
            state["_message"] = None
            state["_left_behind"] = True
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self._left_behind = False  # unless the state says otherwise
        self.paired = None
        for name, value in state.items():
            object.__setattr__(self, name, value)
        self._tables = None

    @property
    def records_read(self) -> bool:
        """Whether the records were read (``message``), whatever came of it."""
        return self._done

    def carried(self, *, records: bool = True) -> tuple[object, ...]:
        """This message for another process to use as its own (``audit --jobs 2``:
        ``scale/carry.py``; ``from_carried`` makes it there), without its records read
        unless ``records`` (reading them there then raises ``MessageLeftBehind``)."""
        left_behind = self._done and not records
        return (self._wire, self._ttl_free, self.summary,
                None if left_behind else self._message, self._problems, self._done,
                left_behind)

    @classmethod
    def from_carried(cls, carried: tuple[Any, ...], tables: ParseTables | None,
                     paired: Any = None) -> ParsedMessage:
        """The message ``carried`` gave, reading its records (if not yet read) with
        ``tables``; ``paired``: its records paired where they were read."""
        parsed = cls.__new__(cls)
        (parsed._wire, parsed._ttl_free, parsed.summary, parsed._message, parsed._problems,
         parsed._done, parsed._left_behind) = carried
        parsed._tables = None if parsed._done else tables
        parsed.paired = paired
        return parsed

    def _parse(self) -> None:
        # The record walker first (records shared with earlier messages cost a lookup); any
        # message it declines goes to dnspython's lenient parse (continue_on_error): a bad
        # record is reported, the rest is kept.
        fast = read_records(self._wire, self._tables)
        self._tables = None
        if fast is not None:
            self._message = fast
            self._wire = b""
            self._done = True
            return
        try:
            message = dns.message.from_wire(
                self._wire, continue_on_error=True, ignore_trailing=True
            )
        except _PARSE_ERRORS as exc:
            self._problems = (f"{type(exc).__name__}: {exc}",)
        else:
            self._message = message
            # dnspython may record one failure twice (the section, then the message): the
            # same text is reported once.
            self._problems = tuple(dict.fromkeys(
                f"{type(err.exception).__name__} at offset {err.offset}: {err.exception}"
                for err in getattr(message, "errors", ())
            ))
        self._wire = b""
        self._done = True

    @property
    def message(self) -> dns.message.Message | None:
        """The parsed message (read-only: it is shared), or None if dnspython gave up."""
        if not self._done:
            self._parse()
        if self._left_behind:
            raise MessageLeftBehind("a parsed response's message is not sent to another "
                                    "process; read its records from the evidence")
        return self._message

    @property
    def problems(self) -> tuple[str, ...]:
        """Problems dnspython reported while parsing leniently."""
        if not self._done:
            self._parse()
        return self._problems

    def ttl_free_key(self, wire: bytes) -> bytes:
        """``ttl_free(wire)`` of this message (``wire``: any copy of it, ID included),
        computed once and shared by every repeat."""
        if self._ttl_free is None:
            self._ttl_free = ttl_free(wire)
        return self._ttl_free


@dataclass(frozen=True, slots=True)
class ObservedMessage:
    """One DNS message as seen on the wire."""

    wire: WireMessage
    """The bytes and their provenance (addresses, ports, frames, time)."""
    id: int
    """The DNS message ID from the header."""
    is_response: bool
    """The QR bit."""
    flags: int
    """The header flags word (QR, opcode, AA, TC, RD, RA, Z, AD, CD, RCODE)."""
    summary: Summary
    """Header, question and EDNS facts, shared between identical messages."""
    parsed: ParsedMessage
    """The lazily parsed full message, shared between identical messages."""

    @property
    def message(self) -> dns.message.Message | None:
        """The parsed message (shared: treat as read-only); None if it could not be parsed.
        Its ``id`` is that of the first copy seen; use ``ObservedMessage.id``."""
        return self.parsed.message

    @property
    def problems(self) -> tuple[str, ...]:
        """Parse problems, from the summary and from dnspython's lenient parse."""
        problem = self.summary.problem
        return ((problem,) if problem else ()) + self.parsed.problems

    @property
    def qname(self) -> dns.name.Name | None:
        """The first question's name."""
        return self.summary.qname

    @property
    def qtype(self) -> int | None:
        """The first question's type."""
        return self.summary.qtype

    @property
    def qclass(self) -> int | None:
        """The first question's class."""
        return self.summary.qclass

    @property
    def question_key(self) -> bytes | None:
        """The first question in canonical wire form."""
        return self.summary.question_key


def _skip_name(wire: bytes, offset: int) -> int:
    """Offset just past the (possibly compressed) name at ``offset`` (RFC 1035 4.1.4)."""
    for _ in range(_MAX_LABELS):
        length = wire[offset]
        if length >= 0xC0:
            if offset + 1 >= len(wire):
                raise IndexError("compression pointer cut short")
            return offset + 2
        if length > 63:
            raise ValueError(f"bad label type 0x{length:02x}")
        offset += 1 + length
        if length == 0:
            return offset
    raise ValueError("name with too many labels")


def ttl_free(wire: bytes) -> bytes:
    """The message after its ID with the TTL of every record zeroed (RFC 1035 4.1.3), the
    OPT record's excepted (its TTL field holds the extended RCODE and the DO bit, RFC 6891
    6.1.3): copies of one answer that differ only in how long a cache had held them give
    the same key. A message whose records cannot be walked is returned whole (after the ID):
    it then only equals itself."""
    try:
        return _ttl_free(wire)
    except (IndexError, ValueError, struct.error):
        return wire[2:]


def _ttl_free(wire: bytes) -> bytes:
    qdcount, ancount, nscount, arcount = struct.unpack_from("!HHHH", wire, 4)
    offset = _HEADER.size
    for _ in range(qdcount):
        offset = _skip_name(wire, offset) + _QUESTION_TAIL.size
    masked = bytearray(wire)
    for _ in range(ancount + nscount + arcount):
        offset = _skip_name(wire, offset)
        rdtype, _, _, rdlength = _RR_TAIL.unpack_from(wire, offset)
        if rdtype != _OPT:
            masked[offset + 4 : offset + 8] = b"\0\0\0\0"
        offset += _RR_TAIL.size + rdlength
    if offset > len(wire):
        raise IndexError("record data cut short")
    return bytes(masked[2:])


def _ede_codes(options: bytes) -> tuple[int, ...]:
    """INFO-CODEs of the RFC 8914 options among OPT ``options`` (RFC 6891 6.1.2 layout)."""
    codes = []
    offset = 0
    while offset + 4 <= len(options):
        code, length = struct.unpack_from("!HH", options, offset)
        offset += 4
        if code == _EDE_OPTION and length >= 2:
            codes.append(int.from_bytes(options[offset : offset + 2], "big"))
        offset += length
    return tuple(codes)


RECORD_CACHE_SIZE = 10_000
"""Default bound of each shared table of the parse stage (the file preset's
``record_cache``)."""

NameTexts = IdentityMemo[dns.name.Name, str]
"""``Name.to_text()`` memoised per name object (``ParseTables.name_text``)."""


def name_texts(size: int = RECORD_CACHE_SIZE) -> NameTexts:
    """An empty memo of ``Name.to_text()`` keeping at most ``size`` names' texts."""
    return IdentityMemo(dns.name.Name.to_text, size)


class ParseTables:
    """The parse stage's tables shared between the messages of one run (``engine/caches.py``;
    none is shared between runs or processes), each capped at ``size`` entries: a full table
    is emptied and refilled (the RRsets: least recently used first). ``Name``, ``Rdata`` and
    parsed RRsets are never mutated after parsing, so sharing them is safe."""

    __slots__ = ("name_text", "opt_rrsets", "owner_names", "question_names", "rdatas",
                 "rrset_templates", "rrsets", "size", "summaries")

    def __init__(self, size: int = RECORD_CACHE_SIZE) -> None:
        self.size = max(1, size)
        """Cap of each table."""
        self.name_text: NameTexts = name_texts(size)
        """``Name.to_text()`` memoised per name object: parsed names are shared by every
        repeat of a message, and every stage downstream writes names as text."""
        self.question_names: dict[bytes, tuple[dns.name.Name, bytes]] = {}
        """Uncompressed question name wire form (case kept) -> (name, canonical wire form):
        distinct messages mostly ask about a smaller set of names, and building a ``Name``
        costs more than parsing the rest of the summary."""
        self.summaries: dict[tuple[object, ...], Summary] = {}
        """Equal summaries: distinct messages (other answers, TTLs, queries and their
        responses) mostly share one, and fewer long-lived objects keep the collector's work
        small."""
        self.owner_names: dict[bytes, dns.name.Name] = {}
        """Owner names by their uncompressed wire form (case kept)."""
        self.rdatas: dict[tuple[int, bytes], dns.rdata.Rdata] = {}
        """Records whose data needs no message context (no compression pointer), by (type,
        bytes)."""
        self.rrsets: OrderedDict[tuple[object, ...], dns.rrset.RRset] = OrderedDict()
        """Whole RRsets by (TTL, (owner, type, covers, record bytes in order)); class is
        IN."""
        self.rrset_templates: dict[tuple[object, ...], dns.rrset.RRset] = {}
        """RRsets by (owner, type, covers, record bytes in order), whatever their TTL: copied
        when a repeat differs only in its TTL."""
        self.opt_rrsets: dict[tuple[int, int, bytes], dns.rrset.RRset] = {}
        """OPT pseudo-RRsets by (payload size, TTL field, options)."""

    def clear(self) -> None:
        """Empty every table (the caps stay); later messages rebuild them."""
        self.name_text.clear()
        for table in (self.owner_names, self.rdatas, self.opt_rrsets, self.question_names,
                      self.summaries, self.rrset_templates, self.rrsets):
            table.clear()


class HashedName(dns.name.Name):
    """A ``dns.name.Name`` that computes its hash once: dnspython's ``__hash__`` walks every
    byte in Python, and the names the record walker makes are looked up again and again
    (tables keyed by owner name, RRset keys, the key-material merge). The value is the one
    ``dns.name.Name`` computes, so it equals any equal name's and compares, sorts, prints and
    pickles as one (the cache is not pickled)."""

    __slots__ = ("_hash",)
    _hash: int

    def __reduce__(self) -> tuple[Any, tuple[tuple[bytes, ...]]]:
        # Its labels alone, checked when it was made: loading skips dnspython's
        # ``__setstate__`` (a context variable set and reset, the labels checked again).
        return _hashed_name, (self.labels,)

    def __hash__(self) -> int:
        try:
            return self._hash
        except AttributeError:
            value = super().__hash__()
            object.__setattr__(self, "_hash", value)
            return value


def _hashed_name(labels: tuple[bytes, ...]) -> HashedName:
    """A pickled ``HashedName`` back (``HashedName.__reduce__``)."""
    name = object.__new__(HashedName)
    object.__setattr__(name, "labels", labels)
    return name


def _name_from_wire(raw: bytes, tables: ParseTables) -> tuple[dns.name.Name, bytes]:
    """(name, canonical wire form) of an uncompressed, well-formed wire name, memoised."""
    labels: list[bytes] = []
    offset = 0
    while True:
        length = raw[offset]
        labels.append(raw[offset + 1 : offset + 1 + length])
        if length == 0:
            break
        offset += 1 + length
    names = tables.question_names
    if len(names) >= tables.size:
        names.clear()
    found = names[raw] = (HashedName(labels), raw.lower())
    return found


def _question_name(wire: bytes, tables: ParseTables) -> tuple[dns.name.Name, bytes, int]:
    """The first question's name, its canonical (lower-cased) wire form and where it ends.

    Question names are almost never compressed; those are read label by label here, and a
    compressed one is left to dnspython (RFC 1035 4.1.4).
    """
    start = offset = _HEADER.size
    for _ in range(_MAX_LABELS):
        length = wire[offset]
        if length == 0:
            end = offset + 1
            raw = wire[start:end]
            name, canonical = (tables.question_names.get(raw)
                               or _name_from_wire(raw, tables))
            return name, canonical, end
        if length > 63:
            compressed, used = dns.name.from_wire(wire, _HEADER.size)
            key = compressed.canonicalize().to_wire()
            assert key is not None  # to_wire() without a file returns the bytes
            return compressed, key, _HEADER.size + used
        offset += 1 + length
        if offset > len(wire):
            raise IndexError("question name cut short")
    raise ValueError("question name with too many labels")


def _question(
    wire: bytes, count: int, tables: ParseTables
) -> tuple[dns.name.Name | None, bytes | None, int | None, int | None, int]:
    if not count:
        return None, None, None, None, _HEADER.size
    name, canonical, offset = _question_name(wire, tables)
    qtype, qclass = _QUESTION_TAIL.unpack_from(wire, offset)
    key = canonical + wire[offset : offset + 4]
    offset += 4
    for _ in range(count - 1):
        offset = _skip_name(wire, offset) + 4
    return name, key, qtype, qclass, offset


def _edns(
    wire: bytes, offset: int, records: int, additional: int
) -> tuple[bool, int, bool, tuple[int, ...]]:
    """Find the OPT record by walking past every record before it; (edns, ext rcode, do, ede)."""
    for index in range(records + additional):
        name_end = _skip_name(wire, offset)
        rtype, _, ttl, rdlength = _RR_TAIL.unpack_from(wire, name_end)
        start = name_end + _RR_TAIL.size
        offset = start + rdlength
        if offset > len(wire):
            raise IndexError("record data runs past the end of the message")
        if rtype == _OPT and index >= records:
            return True, ttl >> 24, bool(ttl & 0x8000), _ede_codes(wire[start:offset])
    return False, 0, False, ()


def summarise(wire: bytes, tables: ParseTables | None = None) -> Summary:
    """Read the header, the first question and the OPT record of ``wire``; never raises
    (``tables``: the run's, shared with other messages; without them a fresh set)."""
    if tables is None:
        tables = ParseTables()
    if len(wire) < _HEADER.size:
        return _unreadable(f"message of {len(wire)} bytes is shorter than a header")
    _, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(wire)
    try:
        qname, key, qtype, qclass, offset = _question(wire, qdcount, tables)
    except _PARSE_ERRORS as exc:
        return _unreadable(f"question unreadable: {type(exc).__name__}: {exc}")
    problem = None
    try:
        edns, extended, do, ede = _edns(wire, offset, ancount + nscount, arcount)
    except _PARSE_ERRORS as exc:
        edns, extended, do, ede = False, 0, False, ()
        problem = f"records after the question unreadable: {type(exc).__name__}: {exc}"
    rcode = (extended << 4) | (flags & 0xF)
    # The key holds id(qname), not the Name (whose hash ignores case): the memoised Summary
    # keeps that Name alive, so the id cannot be reused while the entry exists.
    memo_key = (id(qname), key, rcode, edns, do, ede, problem)
    summaries = tables.summaries
    summary = summaries.get(memo_key)
    if summary is None:
        if len(summaries) >= tables.size:
            summaries.clear()
        summary = summaries[memo_key] = Summary(
            qname, qtype, qclass, key, rcode, edns, do, ede, problem, True
        )
    return summary


def _unreadable(problem: str) -> Summary:
    return Summary(None, None, None, None, 0, False, False, (), problem, False)


# --- records: a walker that shares parsed records between messages ----------------------------

_MAX_POINTER_HOPS = 16  # as dnspython's MAX_COMPRESSION_POINTER_CHAIN
_MAX_TTL = 0x7FFFFFFF  # RFC 2181 8: a TTL above 2^31 - 1 is taken as 0 (as dnspython does)
_OPCODE_QUERY = 0
_IN = 1
_TSIG = 250
class _Declined(Exception):
    """The walker leaves this message to dnspython (unusual or damaged)."""


def _read_name(wire: bytes, offset: int, tables: ParseTables
               ) -> tuple[dns.name.Name, bytes, int]:
    """The possibly compressed name at ``offset``, its uncompressed wire form (case kept) and
    the offset after it, under dnspython's rules (RFC 1035 4.1.4; pointers go strictly
    backwards, at most 16 of them, and a target may not run into the name pointing at it)."""
    labels = bytearray()
    biggest = start = position = offset
    end = len(wire)
    after = -1
    hops = 0
    while True:
        if position >= end:
            raise _Declined("name runs past its bounds")
        count = wire[position]
        position += 1
        if count == 0:
            break
        if count < 64:
            if position + count > end:
                raise _Declined("label runs past its bounds")
            labels.append(count)
            labels += wire[position : position + count]
            position += count
        elif count >= 192:
            if position >= end:
                raise _Declined("pointer cut short")
            target = (count & 0x3F) * 256 + wire[position]
            position += 1
            if target >= biggest:
                raise _Declined("compression pointer does not point backwards")
            biggest = target
            hops += 1
            if hops > _MAX_POINTER_HOPS:
                raise _Declined("compression pointer chain too long")
            if after < 0:
                after = position
            end = start  # the target may not run into this name
            if target > end:
                raise _Declined("compression target overlaps the name")
            position = start = target
        else:
            raise _Declined("bad label type")
    labels.append(0)
    raw = bytes(labels)
    name = tables.owner_names.get(raw)
    if name is None:
        name = _name_of(raw, tables)
    return name, raw, (position if after < 0 else after)


def _name_of(raw: bytes, tables: ParseTables) -> dns.name.Name:
    parts = []
    offset = 0
    while raw[offset]:
        parts.append(raw[offset + 1 : offset + 1 + raw[offset]])
        offset += 1 + raw[offset]
    parts.append(b"")
    try:
        name = HashedName(parts)
    except dns.exception.DNSException as exc:  # e.g. longer than 255 octets
        raise _Declined(str(exc)) from exc
    names = tables.owner_names
    if len(names) >= tables.size:
        names.clear()
    names[raw] = name
    return name


_RDATATYPES: dict[int, dns.rdatatype.RdataType] = {}
"""``RdataType.make`` by value: a constant table filled on demand, kept module-level because
it is a pure function of a 16-bit field (at most 65,536 entries, each the same in every run
and process), not state of a run."""


def _rdatatype(value: int) -> dns.rdatatype.RdataType:
    """``dns.rdatatype.RdataType.make(value)``, memoised: its range check costs more than the
    rest of an RRset's header."""
    found = _RDATATYPES.get(value)
    if found is None:
        found = _RDATATYPES[value] = dns.rdatatype.RdataType.make(value)
    return found


_NAME_FREE_TYPES = frozenset({1, 28, 16, 43, 48, 50, 51, 59, 60, 52, 44})
"""Types whose data holds no domain name (A, AAAA, TXT, DS, DNSKEY, NSEC3, NSEC3PARAM, CDS,
CDNSKEY, TLSA, SSHFP): dnspython reads their bytes without context, so equal bytes are an
equal record wherever they appear."""

_NAMES_IN_DATA: dict[int, tuple[int, int]] = {
    2: (0, 1), 5: (0, 1), 12: (0, 1), 39: (0, 1),  # NS, CNAME, PTR, DNAME: one name
    15: (2, 1),  # MX: preference, exchange
    6: (0, 2),  # SOA: MNAME, RNAME, then five numbers
    46: (18, 1),  # RRSIG: signer after 18 octets of fixed fields, then the signature
    47: (0, 1),  # NSEC: next owner name, then the type bitmap
}
"""Where the names in a type's data start and how many follow one another, for the types
whose names may be compressed on the wire (RFC 3597 4; dnspython follows pointers in all of
them)."""


def _context_free(rdtype: int, raw: bytes) -> bool:
    """Whether record data ``raw`` can be read without the message around it: no domain name
    in it, or every name written out in full (no compression pointer, RFC 1035 4.1.4). Other
    types, and anything odd, are left to the render-back test."""
    if rdtype in _NAME_FREE_TYPES:
        return True
    layout = _NAMES_IN_DATA.get(rdtype)
    if layout is None:
        return False
    offset, names = layout
    size = len(raw)
    for _ in range(names):
        while True:
            if offset >= size:
                return False
            count = raw[offset]
            if count == 0:
                offset += 1
                break
            if count >= 64:  # a pointer (or a bad label type): needs the message
                return False
            offset += 1 + count
    return True


def _read_rdata(wire: bytes, rdtype: int, start: int, length: int,
                tables: ParseTables) -> tuple[dns.rdata.Rdata, bytes | tuple[bytes]]:
    """One record's data and bytes that identify it anywhere: shared when its received bytes
    stand alone; parsed in context (and identified by its uncompressed form) when they hold a
    compression pointer."""
    raw = wire[start : start + length]
    rdatas = tables.rdatas
    cached = rdatas.get((rdtype, raw))
    if cached is not None:
        return cached, raw
    parser = dns.wire.Parser(wire, start)
    try:
        with parser.restrict_to(length):
            rdata = dns.rdata.from_wire_parser(dns.rdataclass.IN, _rdatatype(rdtype), parser)
    except Exception as exc:  # noqa: BLE001 - dnspython's lenient parse reports it instead
        raise _Declined(str(exc)) from exc
    # Only data read without following a compression pointer is context-free, so equal bytes
    # elsewhere mean an equal record. Where the bytes alone cannot tell, data that renders
    # back to its own bytes followed none.
    if not _context_free(rdtype, raw):
        rendered = rdata.to_wire() or b""
        if rendered != raw:
            return rdata, (rendered,)  # a tuple: never equal to the received bytes of a record
    if len(rdatas) >= tables.size:
        rdatas.clear()
    rdatas[(rdtype, raw)] = rdata
    return rdata, raw


class _Pending:
    """The records of one RRset of a section, in the order they appeared."""

    __slots__ = ("covers", "name", "raw_name", "raws", "rdatas", "rdtype", "ttl")

    def __init__(self, name: dns.name.Name, raw_name: bytes, rdtype: int, covers: int) -> None:
        self.name = name
        self.raw_name = raw_name
        self.rdtype = rdtype
        self.covers = covers
        self.ttl = _MAX_TTL + 1
        self.raws: list[bytes | tuple[bytes]] = []
        self.rdatas: list[dns.rdata.Rdata] = []


def _read_section(wire: bytes, offset: int, count: int, additional: bool, tables: ParseTables
                  ) -> tuple[list[dns.rrset.RRset], dns.rrset.RRset | None, int]:
    """(RRsets, OPT RRset, offset after) for ``count`` records, grouped as dnspython groups
    them: by owner (case-insensitive), class, type and covered type, first appearance first."""
    pending: dict[tuple[bytes, int, int], _Pending] = {}
    opt = None
    size = len(wire)
    for _ in range(count):
        name, raw_name, offset = _read_name(wire, offset, tables)
        if offset + 10 > size:
            raise _Declined("record header cut short")
        rdtype, rdclass, ttl, length = _RR_TAIL.unpack_from(wire, offset)
        offset += 10
        if offset + length > size:
            raise _Declined("record data runs past the end")
        if rdtype == _OPT:
            if not additional or opt is not None or len(name) != 1:
                raise _Declined("misplaced OPT record")
            opt = _opt_rrset(wire, rdclass, ttl, offset, length, tables)
            offset += length
            continue
        if rdclass != _IN or rdtype == _TSIG:
            raise _Declined("class other than IN, or TSIG")
        rdata, identity = _read_rdata(wire, rdtype, offset, length, tables)
        covers = int(rdata.covers())
        key = (raw_name.lower(), rdtype, covers)  # owner names compare case-insensitively
        group = pending.get(key)
        if group is None:
            group = pending[key] = _Pending(name, raw_name, rdtype, covers)
        group.raws.append(identity)
        group.rdatas.append(rdata)
        group.ttl = min(group.ttl, 0 if ttl > _MAX_TTL else ttl)
        offset += length
    return [_rrset_of(group, tables) for group in pending.values()], opt, offset


def _opt_rrset(wire: bytes, payload: int, ttl: int, start: int, length: int,
               tables: ParseTables) -> dns.rrset.RRset:
    """The OPT pseudo-RRset (RFC 6891 6.1.2: class is the payload size, TTL the extended
    RCODE, version and flags), shared by messages with the same one."""
    key = (payload, ttl, wire[start : start + length])
    opts = tables.opt_rrsets
    opt = opts.get(key)
    if opt is None:
        rdata = dns.rdata.from_wire(dns.rdataclass.RdataClass.make(payload), dns.rdatatype.OPT,
                                    wire, start, length)
        opt = dns.rrset.from_rdata(dns.name.root, ttl, rdata)
        if len(opts) >= tables.size:
            opts.clear()
        opts[key] = opt
    return opt


def _rrset_of(group: _Pending, tables: ParseTables) -> dns.rrset.RRset:
    """The RRset of one group: the very object an earlier message had if it was identical
    (owner text, TTL and every record's bytes in order); a copy of one that differed only in
    its TTL (a resolver counts TTLs down as it serves from its cache); else built as dnspython
    builds it."""
    shape = (group.raw_name, group.rdtype, group.covers, *group.raws)
    key = (group.ttl, shape)
    rrsets = tables.rrsets
    rrset = rrsets.get(key)
    if rrset is not None:
        rrsets.move_to_end(key)
        return rrset
    templates = tables.rrset_templates
    template = templates.get(shape)
    if template is not None:
        rrset = template.copy()  # the same record objects, no rehashing
        rrset.ttl = group.ttl
    else:
        rrset = dns.rrset.RRset(group.name, dns.rdataclass.IN, _rdatatype(group.rdtype),
                                _rdatatype(group.covers))
        for rdata in group.rdatas:
            rrset.add(rdata, group.ttl)  # dnspython's own duplicate rule (RFC 2181 5)
        if len(templates) >= tables.size:
            templates.clear()
        templates[shape] = rrset
    rrsets[key] = rrset
    if len(rrsets) > tables.size:
        rrsets.popitem(last=False)
    return rrset


def read_records(wire: bytes, tables: ParseTables | None = None) -> dns.message.Message | None:
    """The message's records as dnspython would parse them, with RRsets and records shared
    with earlier messages through ``tables`` (the run's; without them a fresh set); None when
    the walker declines (another opcode or class, TSIG, a misplaced OPT, any damage):
    dnspython's lenient parse then reports the problems."""
    try:
        return _walk(wire, tables if tables is not None else ParseTables())
    except (_Declined, *_PARSE_ERRORS):
        return None


def _walk(wire: bytes, tables: ParseTables) -> dns.message.Message | None:
    if len(wire) < _HEADER.size:
        return None
    msg_id, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(wire)
    if (flags >> 11) & 0xF != _OPCODE_QUERY or qdcount > 1:
        return None
    message = dns.message.QueryMessage(id=msg_id)
    message.flags = dns.flags.Flag(flags)
    message.index = None  # type: ignore[assignment]  # sections filled directly: find_rrset scans
    offset = _HEADER.size
    if qdcount:
        qname, _, offset = _read_name(wire, offset, tables)
        qtype, qclass = _QUESTION_TAIL.unpack_from(wire, offset)
        offset += 4
        if qclass != _IN:
            return None
        message.question = [dns.rrset.RRset(qname, dns.rdataclass.IN, _rdatatype(qtype))]
    message.answer, _, offset = _read_section(wire, offset, ancount, False, tables)
    message.authority, _, offset = _read_section(wire, offset, nscount, False, tables)
    message.additional, opt, offset = _read_section(wire, offset, arcount, True, tables)
    message.opt = opt
    return message


PARSED_OVERHEAD = 2_048
"""Bytes a cached message costs besides three times its length (its bytes held twice, as key
and wire, then its parsed records; the entry, summary and question name), as measured with
tracemalloc under a flood of distinct answers."""


def parsed_cost(key: bytes) -> int:
    """Accounted bytes of one parse-cache entry, by its key (the message after the ID)."""
    return 3 * len(key) + PARSED_OVERHEAD


Sightings = tuple["array[int]", bytes]
"""A key pass's nonzero sighting counters (``ParseCache.sightings``): their slots, their
counts."""
_NONZERO = re.compile(rb"[^\x00]")


class ParseCache(OrderedDict[bytes, "ParsedMessage"]):
    """The parse cache of a file's two passes: distinct messages by their bytes after the ID,
    least recently seen first, plus how often each is seen in the file.

    The key pass counts every message's sightings (``count``); the judging pass, which sees
    the same messages in the same order, counts them down (``replay``) and drops a message
    at its last sighting: it will not be asked for again, and its room goes to the messages
    still to come. Without this, a second sequential scan of a file with more distinct
    messages than the cache holds finds none of them (LRU evicts each pass-1 entry before
    pass 2 reaches it), so every distinct answer was parsed twice.

    The counts live in a fixed table of saturating one-octet counters indexed by the key's
    hash (``_COUNTER_BITS``), not per key: keys that share a counter are only dropped once all
    of their sightings have passed, and a saturated counter (255) never drops, so a message
    is never dropped while it is still to be seen; at worst it stays until LRU evicts it.
    Dropping early would only cost a second parse, never a different result."""

    _COUNTER_BITS = 22  # 4 MiB of counters

    def __init__(self, counting: bool = True) -> None:
        """``counting``: whether the key pass will count sightings (off for one pass)."""
        super().__init__()
        self.counting = counting
        self._counts: bytearray | None = None
        self._mask = (1 << self._COUNTER_BITS) - 1
        self.replaying = False
        self.dropped_after_last_use = 0

    def count(self, key: bytes) -> None:
        """One more sighting of ``key`` in the key pass."""
        counts = self._counts
        if counts is None:
            counts = self._counts = bytearray(1 << self._COUNTER_BITS)
        slot = hash(key) & self._mask
        if counts[slot] < 255:
            counts[slot] += 1

    def sightings(self) -> Sightings | None:
        """The counters this key pass set (None if it counted nothing), for another process's
        parse cache to add (``add_sightings``): the slots and their counts."""
        counts = self._counts
        if counts is None:
            return None
        slots = array("I", (found.start() for found in _NONZERO.finditer(counts)))
        return slots, bytes(counts[slot] for slot in slots)

    def add_sightings(self, sightings: Sightings | None) -> None:
        """Add the sightings another process's key pass counted in its share of the same
        input (``audit --jobs``: a flow shard), saturating as ``count`` does, so the judging
        pass drops those messages at their last sighting too. The slots are the same only in a
        process forked from this one (``hash`` of bytes is seeded per interpreter)."""
        if sightings is None:
            return
        counts = self._counts
        if counts is None:
            counts = self._counts = bytearray(1 << self._COUNTER_BITS)
        for slot, seen in zip(*sightings, strict=True):
            counts[slot] = min(255, counts[slot] + seen)

    def start_replay(self) -> None:
        """The judging pass begins: from now on sightings count down."""
        self.replaying = self._counts is not None

    def seen_for_the_last_time(self, key: bytes) -> bool:
        """Count one sighting of ``key`` down in the judging pass; True at its last one."""
        counts = self._counts
        assert counts is not None
        slot = hash(key) & self._mask
        left = counts[slot]
        if left == 255 or left == 0:  # saturated (popular), or a message the key pass missed
            return False
        counts[slot] = left - 1
        return left == 1

    def release(self) -> None:
        """Forget every message and the counts."""
        self.clear()
        self._counts = None
        self.replaying = False


PARSE_CACHE_BYTES = 32 << 20
"""Accounted bytes (``parsed_cost``) a parse cache holds at most."""


class MessageParser:
    """Summarises wire messages, caching by the bytes after the ID so repeats cost a lookup."""

    def __init__(
        self,
        ledger: Ledger,
        *,
        cache_size: int = 50_000,
        cache_bytes: int = PARSE_CACHE_BYTES,
        cache: OrderedDict[bytes, ParsedMessage] | None = None,
        tables: ParseTables | None = None,
    ) -> None:
        """``cache_size`` entries and ``cache_bytes`` (``parsed_cost``) bound the cache; over
        either, the least recently seen message is dropped (``evicted``). ``tables``: the
        run's parse tables (``engine/caches.py``; without them the parser has its own)."""
        self._ledger = ledger
        self.tables = tables if tables is not None else ParseTables()
        """Names, records, RRsets and summaries shared between the messages parsed."""
        self._cache: OrderedDict[bytes, ParsedMessage] = OrderedDict() if cache is None else cache
        """Distinct messages by their bytes after the ID, least recently seen first; each
        entry is one object (it carries its summary) to keep the collector's work small. A
        cache passed in is shared, e.g. between the key pass and the judging pass of a file."""
        self._counted = cache if isinstance(cache, ParseCache) and cache.counting else None
        """The file's two-pass cache, which counts sightings (``ParseCache``); else None."""
        self._cache_size = cache_size
        self._cache_bytes = cache_bytes
        self._bytes = sum(parsed_cost(key) for key in self._cache)
        self.parsed = 0
        self.cache_hits = 0
        self.evicted = 0
        """Cached messages dropped to stay within the caps."""

    @property
    def cached_bytes(self) -> int:
        """Accounted bytes of the cached messages now."""
        return self._bytes

    @property
    def cached(self) -> int:
        """Distinct parsed messages kept now."""
        return len(self._cache)

    def feed(self, wire: WireMessage) -> ObservedMessage | None:
        """Read one message and settle its frames; None only if shorter than a DNS header."""
        data = wire.wire
        if len(data) < _HEADER.size:
            self._ledger.settle(Reason.DNS_PARSE_ERROR, wire.owned_frames)
            self._note_parse_error(wire, f"message of {len(data)} bytes is shorter than a header")
            return None
        msg_id, flags = _ID_FLAGS.unpack_from(data)
        key = data[2:]
        cache = self._cache
        parsed = cache.get(key)
        if parsed is None:
            parsed = ParsedMessage(data, None, self.tables)
            self.parsed += 1
            cache[key] = parsed
            self._bytes += parsed_cost(key)
            while len(cache) > self._cache_size or (self._bytes > self._cache_bytes
                                                   and len(cache) > 1):
                self._bytes -= parsed_cost(cache.popitem(last=False)[0])
                self.evicted += 1
        else:
            self.cache_hits += 1
            cache.move_to_end(key)
        if self._counted is not None:
            if not self._counted.replaying:
                self._counted.count(key)
            elif self._counted.seen_for_the_last_time(key) and key in cache:
                del cache[key]
                self._bytes -= parsed_cost(key)
                self._counted.dropped_after_last_use += 1
        summary = parsed.summary
        if summary.readable:
            self._ledger.settle(_DNS_MESSAGE, wire.owned_frames)
        else:
            self._ledger.settle(Reason.DNS_PARSE_ERROR, wire.owned_frames)
            self._note_parse_error(wire, summary.problem or "unreadable")
        return ObservedMessage(wire, msg_id, flags & QR != 0, flags, summary, parsed)

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
