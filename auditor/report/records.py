"""Turning evidence and verdicts into the JSON-ready records of ``responses.jsonl``."""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import dns.flags
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype

from auditor.anomaly import Anomaly
from auditor.evidence import ResponseEvidence, Section
from auditor.findings.catalogue import CATALOGUE, Finding
from auditor.messages import NameTexts, name_texts
from auditor.validate.verdict import Verdict

RESPONSES_SCHEMA = "dnssec-auditor/responses/2"
"""Schema identifier written in every ``responses.jsonl`` record; bumped when fields are added
(2: ``resolution``) or changed."""
FINDINGS_SCHEMA = "dnssec-auditor/findings/1"
"""Schema identifier written in every ``findings.jsonl`` record."""
STATS_SCHEMA = "dnssec-auditor/stats/1"
"""Schema identifier of ``stats.json``."""

_FLAG_ORDER: tuple[tuple[str, int], ...] = (
    ("QR", dns.flags.QR),
    ("AA", dns.flags.AA),
    ("TC", dns.flags.TC),
    ("RD", dns.flags.RD),
    ("RA", dns.flags.RA),
    ("AD", dns.flags.AD),
    ("CD", dns.flags.CD),
)


def second_text(seconds: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS`` of a Unix second (not memoised: a run's records use its
    ``TimeTexts``)."""
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")


def iso_time(ts_ns: int, seconds_text: Callable[[int], str] = second_text) -> str:
    """ISO 8601 UTC with microseconds and a ``Z`` suffix (``seconds_text``: ``second_text``,
    maybe memoised)."""
    seconds, nanos = divmod(ts_ns, 1_000_000_000)
    return f"{seconds_text(seconds)}.{nanos // 1000:06d}Z"


SECOND_MEMO_SIZE = 4096
"""Seconds whose text a run's ``TimeTexts`` keeps."""


class TimeTexts:
    """``iso_time`` with the text of each second memoised for one run (``engine/caches.py``):
    the records of one second share it."""

    __slots__ = ("_seconds",)

    def __init__(self, size: int = SECOND_MEMO_SIZE) -> None:
        self._seconds = functools.lru_cache(maxsize=size)(second_text)

    def __call__(self, ts_ns: int) -> str:
        seconds, nanos = divmod(ts_ns, 1_000_000_000)  # iso_time, inlined: once per record
        return f"{self._seconds(seconds)}.{nanos // 1000:06d}Z"

    def clear(self) -> None:
        """Forget every memoised second (the cap stays)."""
        self._seconds.cache_clear()


_FLAG_MASK = sum(bit for _, bit in _FLAG_ORDER)
_FLAG_NAMES: dict[int, tuple[str, ...]] = {
    bits: tuple(name for name, bit in _FLAG_ORDER if bits & bit)
    for bits in (sum(bit for place, (_, bit) in enumerate(_FLAG_ORDER) if index >> place & 1)
                 for index in range(1 << len(_FLAG_ORDER)))
}
"""Mnemonics of every combination of the header flags we name (a constant table of 128)."""


def flag_names(flags: int) -> list[str]:
    """Header flags as mnemonics in header order, e.g. ``["QR", "RD", "RA"]``."""
    return list(_FLAG_NAMES[flags & _FLAG_MASK])


def rcode_text(rcode: int) -> str:
    """Response code mnemonic (``NOERROR``, ``NXDOMAIN``, ``RCODE4000`` for unknown ones)."""
    try:
        return dns.rcode.to_text(dns.rcode.Rcode.make(rcode))
    except ValueError:
        return f"RCODE{rcode}"


def type_text(rdtype: int | None) -> str | None:
    """RR type mnemonic, ``TYPE65280`` style for unknown ones."""
    return None if rdtype is None else dns.rdatatype.to_text(rdtype)  # type: ignore[arg-type]


def class_text(rdclass: int | None) -> str | None:
    """RR class mnemonic."""
    return None if rdclass is None else dns.rdataclass.to_text(rdclass)  # type: ignore[arg-type]


def response_record(evidence: ResponseEvidence,
                    name_text: Callable[[dns.name.Name], str] = dns.name.Name.to_text,
                    time_text: Callable[[int], str] = iso_time) -> dict[str, Any]:
    """The capture-level fields of one response (issue #2 contract), without the verdict
    (``name_text``: ``Name.to_text``, ``time_text``: ``iso_time``, maybe the run's memos)."""
    return _assemble(evidence, *body_fields(evidence, name_text), time_text)


def body_fields(evidence: ResponseEvidence,
                name_text: Callable[[dns.name.Name], str] = dns.name.Name.to_text
                ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The fields of a response record that depend only on the message body: those before
    and those after the per-packet ``query_frame``/``response_index``/``hop_limit``
    (``name_text``: ``Name.to_text``, maybe the run's memo)."""
    head = {
        "qname": name_text(evidence.qname) if evidence.qname is not None else None,
        "qtype": type_text(evidence.qtype),
        "qclass": class_text(evidence.qclass),
        "rcode": rcode_text(evidence.rcode),
        "flags": flag_names(evidence.flags),
        "do": evidence.do,
        "ede": list(evidence.ede),
    }
    tail = {
        "size": len(evidence.transaction.response.wire.wire),
        "answer_count": answer_count(evidence),
        "problems": list(evidence.problems),
    }
    return head, tail


def _assemble(evidence: ResponseEvidence, head: dict[str, Any], tail: dict[str, Any],
              time_text: Callable[[int], str]) -> dict[str, Any]:
    """A response record: the per-packet fields around the body's ``head`` and ``tail``."""
    response = evidence.transaction.response
    query = evidence.transaction.query
    wire = response.wire
    return {
        "schema": RESPONSES_SCHEMA,
        "ts": time_text(wire.ts_ns),
        "capture": wire.capture,
        "frame": wire.frame,
        "frames": list(wire.frames),
        "transport": wire.transport.value,
        "src": wire.src,
        "sport": wire.sport,
        "dst": wire.dst,
        "dport": wire.dport,
        "id": response.id,
        **head,
        "query_frame": query.wire.frame if query is not None else None,
        "response_index": evidence.transaction.response_index,
        "hop_limit": wire.hop_limit,
        **tail,
    }


class ResponseRecords:
    """``response_record`` with the fields that depend only on the message body (question,
    rcode, flags, EDNS, size, counts, problems) rendered once per distinct parsed message
    and shared by its repeats (read-only lists); the per-packet fields are filled in."""

    def __init__(self, size: int = 4_096, name_text: NameTexts | None = None,
                 times: TimeTexts | None = None) -> None:
        """``name_text``, ``times``: the run's memos of name and time texts (without them the
        renderer has its own)."""
        self._times = times if times is not None else TimeTexts()
        self._bodies: OrderedDict[int, tuple[object, dict[str, Any], dict[str, Any]]] = (
            OrderedDict())
        self._size = max(1, size)
        self._name_text = name_text if name_text is not None else name_texts()

    def render(self, evidence: ResponseEvidence) -> dict[str, Any]:
        """The same record as ``response_record(evidence)``, key order included."""
        return _assemble(evidence, *self._body(evidence), self._times)

    def clear(self) -> None:
        """Forget every rendered body."""
        self._bodies.clear()

    def _body(self, evidence: ResponseEvidence) -> tuple[dict[str, Any], dict[str, Any]]:
        parsed = evidence.transaction.response.parsed
        entry = self._bodies.get(id(parsed))
        if entry is not None and entry[0] is parsed:
            return entry[1], entry[2]
        head, tail = body_fields(evidence, self._name_text)
        self._bodies[id(parsed)] = (parsed, head, tail)
        if len(self._bodies) > self._size:
            self._bodies.popitem(last=False)
        return head, tail


def answer_count(evidence: ResponseEvidence) -> int:
    """Every record of the answer section, RRSIGs included, as tshark's ``dns.count.answers``:
    the header's ANCOUNT (RFC 1035 4.1.1) when the message parsed whole (it also counts
    duplicate records, which the parser merges); otherwise the records actually read, each
    RRSIG included (those covering an RRset of the section and those covering none)."""
    wire = evidence.transaction.response.wire.wire
    if not evidence.problems and len(wire) >= 8:
        return int.from_bytes(wire[6:8], "big")
    paired = sum(len(r.rrset) + (len(r.rrsigs) if r.rrsigs is not None else 0)
                 for r in evidence.section(Section.ANSWER))
    return paired + sum(len(r.rrset) for r in evidence.orphan_rrsigs
                        if r.section is Section.ANSWER)


def anomaly_record(anomaly: Anomaly, time_text: Callable[[int], str] = iso_time
                   ) -> dict[str, Any]:
    """One decode-level anomaly as a ``findings.jsonl`` record (``time_text``: ``iso_time``,
    maybe the run's memo)."""
    return {
        "schema": FINDINGS_SCHEMA,
        "kind": "anomaly",
        "code": anomaly.code.value,
        "ts": time_text(anomaly.ts_ns),
        "capture": anomaly.capture,
        "frames": list(anomaly.frames),
        "src": anomaly.src,
        "dst": anomaly.dst,
        "detail": anomaly.detail,
        "params": dict(anomaly.params),
    }


def verdict_fields(verdict: Verdict, time_text: Callable[[int], str] = iso_time
                   ) -> dict[str, Any]:
    """The validation fields of a ``responses.jsonl`` record (issue #3 contract;
    ``time_text``: ``iso_time``, maybe the run's memo)."""
    return {
        "verdict": verdict.status.value,
        "codes": [code.value for code in verdict.codes],
        "zone": verdict.zone,
        "missing": list(verdict.missing),
        "reference_time": time_text(verdict.reference_time_ns),
        "detail": list(verdict.detail),
        "rrsets": [
            {
                "section": rrset.section.value,
                "name": rrset.name,
                "type": rrset.rdtype,
                "verdict": rrset.status.value,
                "signer": rrset.signer,
                "key_tags": list(rrset.key_tags),
                "algorithms": list(rrset.algorithms),
                "codes": [code.value for code in rrset.codes],
                "inception": _epoch_text(rrset.inception, time_text),
                "expiration": _epoch_text(rrset.expiration, time_text),
                "detail": list(rrset.detail),
            }
            for rrset in verdict.rrsets
        ],
    }


def _epoch_text(seconds: int | None, time_text: Callable[[int], str]) -> str | None:
    return None if seconds is None else time_text(seconds * 1_000_000_000)


def finding_record(finding: Finding, time_text: Callable[[int], str] = iso_time
                   ) -> dict[str, Any]:
    """One catalogue finding as a ``findings.jsonl`` record (``time_text``: ``iso_time``,
    maybe the run's memo)."""
    spec = CATALOGUE.get(finding.code)
    where = finding.provenance
    return {
        "schema": FINDINGS_SCHEMA,
        "kind": "finding",
        "code": finding.code,
        "severity": finding.severity.value,
        "verdict": finding.verdict,
        "message": finding.message,
        "rfcs": list(spec.rfcs) if spec is not None else [],
        "ts": time_text(where.ts_ns),
        "capture": where.capture,
        "frames": list(where.frames),
        "server": where.server,
        "client": where.client,
        "params": dict(finding.params),
        "title": spec.title if spec is not None else finding.code,
        "count": finding.count,
        "first_seen": time_text(finding.first_seen_ns),
        "last_seen": time_text(finding.last_seen_ns),
    }

