"""Resolution reconstruction in the reports: the ``resolution`` field of ``responses.jsonl``
and the "Why clients failed" section, grouped by cause."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from auditor.report.records import iso_time
from auditor.resolution import Resolution, UpstreamAnswer

MAX_EXAMPLES = 5
"""Client answers listed per cause group (the rest are counted)."""
MAX_GROUPS = 200
"""Distinct causes shown."""

CAUSE_TITLES: dict[str, str] = {
    "bogus_upstream": "An upstream answer failed validation",
    "dnskey_missing": "A zone has a DS but publishes no DNSKEY",
    "upstream_error": "An authoritative server answered with an error",
    "validator_interop": "A valid upstream answer of a shape the resolver rejects",
    "upstream_timeout": "Upstream queries got no answer (timeout)",
    "cached_failure": "Answered from cache: an earlier failure was repeated",
    "from_cache": "Answered from cache, no earlier failure in the capture",
    "unexplained": "Not explained by the captured upstream traffic",
}
"""Cause code -> heading in the report."""


def _answer(answer: UpstreamAnswer) -> dict[str, Any]:
    return {"frame": answer.frame, "query_frame": answer.query_frame, "ts": iso_time(answer.ts_ns),
            "server": answer.server, "qname": answer.qname, "qtype": answer.qtype,
            "zone": answer.zone, "codes": list(answer.codes), "reason": answer.reason}


def resolution_record(resolution: Resolution | None) -> dict[str, Any] | None:
    """The ``resolution`` field of a response record (None: not a resolver's client answer)."""
    if resolution is None:
        return None
    check = resolution.ede_check
    return {
        "resolver": resolution.resolver,
        "upstream_frames": list(resolution.upstream_frames),
        "from_cache": resolution.from_cache,
        "failed": resolution.failed,
        "cause": resolution.cause.value if resolution.cause is not None else None,
        "causing": [_answer(a) for a in resolution.causing],
        "explanation": resolution.explanation,
        "ede_check": None if check is None else {
            "ede": list(check.ede), "agrees": check.agrees, "text": check.text},
    }


@dataclass(slots=True)
class FailureGroup:
    """Client failures with one cause at one upstream place (zone, reason)."""

    cause: str
    zone: str
    reason: str
    count: int = 0
    first_ts: str = ""
    last_ts: str = ""
    upstream_frames: list[int] = field(default_factory=list)
    examples: list[dict[str, Any]] = field(default_factory=list)
    ede_disagreements: int = 0

    @property
    def title(self) -> str:
        """The cause in words."""
        return CAUSE_TITLES.get(self.cause, self.cause.replace("_", " "))


class WhyClientsFailed:
    """Folds the failed client answers of ``responses.jsonl`` into groups by cause."""

    def __init__(self) -> None:
        self.groups: dict[tuple[str, str, str], FailureGroup] = {}
        self.failed = 0

    def add(self, record: dict[str, Any]) -> None:
        """Take one response record (those without a failed resolution are skipped)."""
        resolution = record.get("resolution")
        if not isinstance(resolution, dict) or not resolution.get("failed"):
            return
        self.failed += 1
        causing = resolution.get("causing") or []
        first = causing[0] if causing else {}
        cause = str(resolution.get("cause") or "unexplained")
        zone = str(first.get("zone") or first.get("qname") or "")
        reason = str(first.get("reason") or "")
        if cause == "upstream_timeout":
            reason = f"no answer from {first.get('server', '?')}"
        key = (cause, zone, reason)
        group = self.groups.get(key)
        if group is None:
            if len(self.groups) >= MAX_GROUPS:
                return
            group = self.groups[key] = FailureGroup(cause, zone, reason, first_ts=record["ts"])
        group.count += 1
        group.last_ts = record["ts"]
        for answer in causing:
            frame = answer.get("frame") or answer.get("query_frame")
            if frame is not None and frame not in group.upstream_frames and len(
                    group.upstream_frames) < 10:
                group.upstream_frames.append(frame)
        check = resolution.get("ede_check") or {}
        group.ede_disagreements += check.get("agrees") is False
        if len(group.examples) < MAX_EXAMPLES:
            group.examples.append({
                "ts": record["ts"], "frame": record["frame"], "client": record["dst"],
                "resolver": record["src"],
                "question": f"{record.get('qname') or '-'} {record.get('qtype') or ''}".strip(),
                "rcode": record.get("rcode"), "explanation": resolution.get("explanation"),
                "ede": check.get("text")})

    def ordered(self) -> list[FailureGroup]:
        """Groups, largest first."""
        return sorted(self.groups.values(), key=lambda g: (-g.count, g.cause, g.zone))
