"""Live findings and alerts as a SIEM reads them: each finding merged per key with a rising count,
written as it is made, alerted at most once per key and interval, with the flow in Zeek's terms
and its Community ID."""

from __future__ import annotations

import dataclasses
import hashlib
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import communityid

from auditor.findings.catalogue import Finding, Severity
from auditor.findings.codes import FindingCode
from auditor.report.records import finding_record

LIVE_FINDINGS_SCHEMA = "dnssec-auditor/findings/2"
"""Schema of live ``findings-*.jsonl`` records and alerts: every field of ``findings/1`` plus
the flow, the response, the merge key and the delivery (``schemas/findings-2.json``)."""

_COMMUNITY_ID = communityid.CommunityID(seed=0)
_VALIDATION_ALERTS = frozenset({FindingCode.BOGUS_ANSWER, FindingCode.AD_ON_BOGUS})
"""Validation findings that raise an alert (forged/suspicious forgery findings always do)."""
_ALERT_VERDICTS = frozenset({"forged", "suspicious"})


@dataclass(frozen=True, slots=True)
class ResponseFacts:
    """What an alert says about the response behind a finding."""

    capture: str
    """Capture (interface or stream) the response was read from."""
    frame: int
    """Frame number of the response's deciding frame."""
    transport: str
    """``udp`` or ``tcp``."""
    server: str
    """The responder's address (the response's source)."""
    sport: int
    """The responder's port."""
    client: str
    """The asker's address (the response's destination)."""
    cport: int
    """The asker's port."""
    msg_id: int
    """DNS message ID."""
    qname: str | None
    """Question name, None without a question."""
    qtype: str | None
    """Question type mnemonic."""
    rcode: str
    """Response code mnemonic."""
    verdict: str
    """The response's validation status."""
    codes: tuple[str, ...]
    """The verdict's codes."""
    to_client: bool
    """The answer came from a recursive resolver (RA set, AA clear): it reached a client."""
    cause: str | None = None
    """Why the client's answer failed, from resolution reconstruction (the upstream answer
    or silence behind it); None when it did not fail or nothing explains it."""


def response_facts(record: Mapping[str, Any]) -> ResponseFacts:
    """The facts an alert cites about one judged response, from its ``responses.jsonl``
    record (already rendered: nothing is computed twice per response)."""
    flags = record["flags"]
    return ResponseFacts(
        capture=record["capture"], frame=record["frame"], transport=record["transport"],
        server=record["src"], sport=record["sport"], client=record["dst"],
        cport=record["dport"], msg_id=record["id"], qname=record["qname"],
        qtype=record["qtype"], rcode=record["rcode"], verdict=record["verdict"],
        codes=tuple(record["codes"]), to_client="RA" in flags and "AA" not in flags,
        cause=_cause(record.get("resolution")),
    )


def _cause(resolution: object) -> str | None:
    """The explanation of a failed client answer in a record's ``resolution`` field."""
    if not isinstance(resolution, dict) or not resolution.get("failed"):
        return None
    if resolution.get("cause") in (None, "unexplained", "from_cache"):
        return None
    explanation = resolution.get("explanation")
    return explanation if isinstance(explanation, str) else None


def community_id(facts: ResponseFacts) -> str | None:
    """The Community ID v1 (seed 0) of the response's flow, as Zeek and Suricata compute it."""
    make = (communityid.FlowTuple.make_udp if facts.transport == "udp"
            else communityid.FlowTuple.make_tcp)
    try:
        return str(_COMMUNITY_ID.calc(make(facts.client, facts.server, facts.cport,
                                           facts.sport)))
    except (ValueError, TypeError, OSError):
        return None


def finding_key(finding: Finding) -> str:
    """The merge key of a finding as text: code, zone (or question), server, and for a forgery
    finding the client too (offline mode merges validation findings per code, zone, server)."""
    params = finding.params
    where = finding.provenance
    subject = params.get("zone") or params.get("qname") or "-"
    client = (where.client or "-") if finding.verdict else "-"
    return f"{finding.code}|{subject}|{where.server or '-'}|{client}"


def raises_alert(finding: Finding) -> bool:
    """Forged and suspicious findings, and bogus answers (``bogus_answer``, ``ad_on_bogus``)."""
    return finding.verdict in _ALERT_VERDICTS or finding.code in _VALIDATION_ALERTS


def delivery(facts: ResponseFacts | None) -> str | None:
    """``client``: a recursive resolver's answer to its client; ``upstream``: an authoritative
    answer to a resolver, which a validating resolver checks (and rejects) itself."""
    if facts is None:
        return None
    return "client" if facts.to_client else "upstream"


def live_severity(finding: Finding, facts: ResponseFacts | None) -> Severity:
    """A bogus answer that reached a client is critical (what the catalogue calls "a bogus
    answer a client accepted"); one a resolver received upstream is medium: a validating
    resolver rejects it itself. Other findings keep their catalogue severity."""
    if finding.code != FindingCode.BOGUS_ANSWER or facts is None:
        return finding.severity
    return Severity.CRITICAL if facts.to_client else Severity.MEDIUM


def frame_ref(capture: str, run_id: str, frame: int) -> str:
    """A frame reference stable across rotations and restarts: capture, run start, number."""
    return f"{capture}/{run_id}/{frame}"


def live_record(finding: Finding, facts: ResponseFacts | None, *, run_id: str,
                key: str) -> dict[str, Any]:
    """A ``findings/2`` record: the ``findings/1`` fields (``verdict`` filled with the
    response's status when the finding has none) plus the flow in Zeek's ``id.*`` terms, the
    Community ID, the response's question, ID and codes, the delivery and the merge key."""
    record = finding_record(finding)
    record["schema"] = LIVE_FINDINGS_SCHEMA
    record["severity"] = live_severity(finding, facts).value
    where = finding.provenance
    record["key"] = key
    record["key_id"] = hashlib.sha1(key.encode(), usedforsecurity=False).hexdigest()[:16]
    record["frame_refs"] = [frame_ref(where.capture, run_id, n) for n in where.frames]
    record["delivery"] = delivery(facts)
    if facts is None:
        record.update(dict.fromkeys(("id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p",
                                     "proto", "community_id", "rcode"), None))
        record.update({"qname": finding.params.get("qname"),
                       "qtype": finding.params.get("qtype"), "id": finding.params.get("id"),
                       "codes": [], "cause": None})
        return record
    if record["verdict"] is None:
        record["verdict"] = facts.verdict
    record.update({
        "id.orig_h": facts.client, "id.orig_p": facts.cport,
        "id.resp_h": facts.server, "id.resp_p": facts.sport, "proto": facts.transport,
        "community_id": community_id(facts), "qname": facts.qname, "qtype": facts.qtype,
        "id": facts.msg_id, "rcode": facts.rcode, "codes": list(facts.codes),
        "cause": facts.cause,
    })
    return record


class _Entry:
    """One merge key: its first finding and facts, the occurrences, what was last reported."""

    __slots__ = ("count", "facts", "finding", "last_ns", "reported_count", "reported_ns")

    def __init__(self, finding: Finding, facts: ResponseFacts | None) -> None:
        self.finding = finding
        self.facts = facts
        self.count = 0
        self.last_ns = finding.last_seen_ns
        self.reported_count = 0
        self.reported_ns: int | None = None


Emit = Callable[[dict[str, Any]], None]


class FindingLog:
    """Findings as they are made, merged per ``finding_key`` with a rising count.

    The first occurrence of a key is written (and alerted, if it raises one) at once; later
    occurrences raise the count and are reported again at most once per ``interval_ns`` of
    capture time, by the occurrence that crosses it or by ``tick`` when no more come, so a
    flood of one finding costs one line per interval. At most ``max_keys`` keys are held; the
    least recently seen is reported (if it has unreported occurrences) and forgotten.
    """

    def __init__(self, *, write: Emit, alert: Emit, run_id: str, interval_ns: int,
                 max_keys: int) -> None:
        self._write = write
        self._alert = alert
        self._run_id = run_id
        self._interval_ns = interval_ns
        self._max_keys = max_keys
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._pending: set[str] = set()
        self.suppressed = 0
        """Occurrences merged into an earlier report instead of written/alerted at once."""
        self.evicted = 0
        """Keys forgotten because ``max_keys`` were held."""

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, finding: Finding, facts: ResponseFacts | None) -> None:
        """Count one occurrence; report it now unless its key was reported within the
        interval."""
        key = finding_key(finding)
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry(finding, facts)
            self._evict_over_cap()
        else:
            self._entries.move_to_end(key)
        entry.count += finding.count
        entry.last_ns = max(entry.last_ns, finding.last_seen_ns)
        due = entry.reported_ns is None or (
            finding.last_seen_ns - entry.reported_ns >= self._interval_ns)
        if due:
            self._report(key, entry, finding.last_seen_ns)
        else:
            self.suppressed += 1
            self._pending.add(key)

    def tick(self, now_ns: int) -> None:
        """Report the keys with new occurrences whose interval has passed by ``now_ns``."""
        for key in list(self._pending):
            entry = self._entries[key]
            if entry.reported_ns is None or now_ns - entry.reported_ns >= self._interval_ns:
                self._report(key, entry, now_ns)

    def flush(self) -> None:
        """End of run: write the final count of every key with unreported occurrences (no
        alert: their first occurrence was alerted)."""
        for key in list(self._pending):
            self._report(key, self._entries[key], None)

    def _report(self, key: str, entry: _Entry, now_ns: int | None) -> None:
        self._pending.discard(key)
        first = entry.reported_count == 0
        entry.reported_count = entry.count
        if now_ns is not None:
            entry.reported_ns = now_ns
        merged = dataclasses.replace(entry.finding, count=entry.count, last_ts_ns=entry.last_ns)
        record = live_record(merged, entry.facts, run_id=self._run_id, key=key)
        self._write(record)
        if now_ns is not None and raises_alert(merged):
            self._alert({**record, "repeat": not first})

    def _evict_over_cap(self) -> None:
        while len(self._entries) > self._max_keys:
            key, entry = self._entries.popitem(last=False)
            self.evicted += 1
            if key in self._pending:
                self._report(key, entry, None)
