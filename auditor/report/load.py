"""Reading a saved output directory back into what the HTML and Markdown reports show,
streaming ``responses.jsonl`` so memory does not grow with the capture."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from auditor.errors import ReportInputError
from auditor.findings.catalogue import CATALOGUE, Severity
from auditor.findings.words import plain
from auditor.report.resolution import WhyClientsFailed

MAX_ANSWER_ROWS = 500
"""Bogus/forged answer rows listed (retries folded into their first row); the rest are
counted."""
MAX_FRAMES_LISTED = 10
"""Frames listed on one answer row."""
MAX_CHAIN_GROUPS = 60
"""Distinct (zone, signature) chains drawn."""
SEVERITY_ORDER = tuple(s.value for s in Severity)
FORGED_VERDICTS = frozenset({"forged", "suspicious"})
_NS = 1_000_000_000


def parse_time_ns(text: str) -> int:
    """ISO 8601 (``Z`` suffix) to nanoseconds since the epoch."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(moment.timestamp()) * _NS + moment.microsecond * 1000


class TimeHistogram:
    """Counts per time bucket in bounded memory: buckets start at 1 ms and grow tenfold
    whenever more than ``max_buckets`` are in use."""

    def __init__(self, max_buckets: int = 20_000) -> None:
        self.resolution_ns = 1_000_000
        self.buckets: dict[int, list[int]] = {}
        self._max = max_buckets

    def add(self, ts_ns: int, column: int) -> None:
        """Count one event of ``column`` (0 responses, 1 bogus, 2 forged) at ``ts_ns``."""
        self.buckets.setdefault(ts_ns // self.resolution_ns, [0, 0, 0])[column] += 1
        if len(self.buckets) > self._max:
            self._coarsen()

    def _coarsen(self) -> None:
        coarse: dict[int, list[int]] = {}
        for bucket, counts in self.buckets.items():
            merged = coarse.setdefault(bucket // 10, [0, 0, 0])
            for column in range(3):
                merged[column] += counts[column]
        self.buckets = coarse
        self.resolution_ns *= 10


@dataclass(slots=True)
class ReportData:
    """Everything the human-readable reports show, loaded from an output directory."""

    out_dir: Path
    """The directory read."""
    stats: dict[str, Any]
    """``stats.json``."""
    verdicts: dict[str, int]
    """Responses per verdict."""
    responses: int
    """Responses read."""
    answers: list[dict[str, Any]] = field(default_factory=list)
    """Bogus and forged/suspicious answers (at most ``MAX_ANSWER_ROWS``), in capture order."""
    answers_total: int = 0
    """All bogus and forged/suspicious answers, listed or not."""
    answer_rows: dict[tuple[Any, ...], int] = field(default_factory=dict)
    """(client, server, question, verdict, codes) -> index of its row in ``answers``."""
    forged: int = 0
    """Findings with verdict ``forged``."""
    suspicious: int = 0
    """Findings with verdict ``suspicious``."""
    findings: list[dict[str, Any]] = field(default_factory=list)
    """Catalogue findings, most severe first."""
    anomalies: dict[str, int] = field(default_factory=dict)
    """Decode anomalies per code."""
    severities: dict[str, int] = field(default_factory=dict)
    """Findings per severity (merged findings counted once)."""
    histogram: TimeHistogram = field(default_factory=lambda: TimeHistogram())
    """Responses, bogus and forged per time bucket."""
    zones: list[dict[str, Any]] = field(default_factory=list)
    """The zone inventory."""
    chains: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Zone -> drawn chain links."""
    why: WhyClientsFailed = field(default_factory=WhyClientsFailed)
    """Failed client answers grouped by the upstream cause (resolution reconstruction)."""

    @property
    def capture_name(self) -> str:
        """The first capture's name, for titles."""
        captures = self.stats.get("captures") or [self.out_dir.name]
        return str(captures[0])

    def chain_groups(self) -> list[dict[str, Any]]:
        """Answers grouped by (zone, signature link) with their drawn chain."""
        groups: dict[tuple[str, str], dict[str, Any]] = {}
        for answer in self.answers:
            zone = answer.get("zone") or ""
            signature = answer.get("signature")
            key = (zone, json.dumps(signature, sort_keys=True))
            group = groups.get(key)
            if group is None:
                if len(groups) >= MAX_CHAIN_GROUPS:
                    continue
                group = {"zone": zone, "links": list(self.chains.get(zone, [])),
                         "signature": signature, "answers": []}
                groups[key] = group
            group["answers"].append(answer)
        return list(groups.values())


def _signature_link(record: dict[str, Any]) -> dict[str, Any] | None:
    """The RRSIG box of a bogus answer: the first bogus (else signed) RRset."""
    rrsets = record.get("rrsets") or []
    chosen = next((r for r in rrsets if r.get("verdict") == "bogus"), None) or next(
        (r for r in rrsets if r.get("signer")), None)
    if chosen is None:
        return None
    tags = ", ".join(str(t) for t in chosen.get("key_tags", [])) or "none"
    return {
        "zone": chosen.get("signer") or record.get("zone") or "",
        "kind": "RRSIG",
        "status": chosen.get("verdict"),
        "text": f"RRSIG over {chosen['name']} {chosen['type']} by {chosen.get('signer') or '?'}"
                f" key {tags}, valid {chosen.get('inception') or '?'} to "
                f"{chosen.get('expiration') or '?'}",
        "detail": [*(plain(c) for c in chosen.get("codes", [])),
                   *(iso_epochs(d) for d in chosen.get("detail", []))],
    }


def _answer_row(record: dict[str, Any]) -> dict[str, Any]:
    codes = [c for c in record.get("codes", []) if c != "dnssec_bogus"]
    for rrset in record.get("rrsets") or []:
        codes.extend(c for c in rrset.get("codes", []) if c not in codes and c != "dnssec_bogus")
    return {
        "ts": record["ts"], "capture": record["capture"], "frames": record["frames"],
        "client": record["dst"], "server": record["src"],
        "question": f"{record.get('qname') or '-'} {record.get('qtype') or ''}".strip(),
        "verdict": record["verdict"], "codes": codes, "reasons": [plain(c) for c in codes],
        "zone": record.get("zone") or next(
            (r["signer"] for r in record.get("rrsets") or [] if r.get("signer")), ""),
        "signature": _signature_link(record), "ad": "AD" in record.get("flags", []),
    }


def _forged_row(record: dict[str, Any]) -> dict[str, Any]:
    params = record.get("params") or {}
    question = " ".join(str(params[k]) for k in ("qname", "qtype") if params.get(k)) or "-"
    return {
        "ts": record["ts"], "capture": record["capture"], "frames": record["frames"],
        "client": record.get("client"), "server": record.get("server"), "question": question,
        "verdict": record.get("verdict"), "codes": [record["code"]],
        "reasons": [record["message"]],
        "zone": str(params.get("zone") or params.get("qname") or ""),
        "signature": None, "ad": False,
    }


def _bump(data: ReportData, ts: str, column: int) -> None:
    data.histogram.add(parse_time_ns(ts), column)


def _add_answer(data: ReportData, row: dict[str, Any]) -> None:
    """List a bogus/forged answer; a retry of one question to one server with the same
    verdict and reasons is counted on the row of its first copy (count, first, last)."""
    data.answers_total += 1
    key = (row["client"], row["server"], row["question"], row["verdict"], tuple(row["codes"]))
    index = data.answer_rows.get(key)
    if index is not None:
        seen = data.answers[index]
        seen["count"] += 1
        seen["first"], seen["last"] = min(seen["first"], row["ts"]), max(seen["last"], row["ts"])
        if len(seen["frames"]) < MAX_FRAMES_LISTED:
            seen["frames"] = [*seen["frames"], *row["frames"]][:MAX_FRAMES_LISTED]
        return
    if len(data.answers) < MAX_ANSWER_ROWS:
        data.answer_rows[key] = len(data.answers)
        data.answers.append({**row, "count": 1, "first": row["ts"], "last": row["ts"]})


_EPOCH_AFTER_WORD = re.compile(r"\b(at|from|until|before|after|expired|expires|incepted) "
                               r"(\d{9,10})\b")


def iso_epochs(text: str) -> str:
    """``RRSIG expired at 1795405049`` -> ``RRSIG expired at 2026-11-23T03:37:29Z``: Unix
    seconds in explanation texts shown as ISO 8601.

    >>> iso_epochs("RRSIG expired at 1795405049, judged at 1795577853")
    'RRSIG expired at 2026-11-23T03:37:29Z, judged at 2026-11-25T03:37:33Z'
    """
    return _EPOCH_AFTER_WORD.sub(
        lambda m: f"{m.group(1)} "
                  f"{datetime.fromtimestamp(int(m.group(2)), tz=UTC):%Y-%m-%dT%H:%M:%SZ}", text)


def _read_responses(data: ReportData, path: Path) -> None:
    from auditor.report.tables import RECORD_ERRORS, numbered_jsonl, record_problem

    counts: Counter[str] = Counter()
    for number, record in numbered_jsonl(path, "responses"):
        try:
            verdict = str(record.get("verdict") or "unjudged")
            _bump(data, record["ts"], 0)
            data.why.add(record)
            if verdict == "bogus":
                _bump(data, record["ts"], 1)
                _add_answer(data, _answer_row(record))
        except RECORD_ERRORS as exc:
            raise record_problem(path, number, exc) from exc
        counts[verdict] += 1
        data.responses += 1
    if not data.verdicts:
        data.verdicts = dict(counts)


def _severity_rank(record: dict[str, Any]) -> tuple[int, int]:
    severity = record.get("severity", "info")
    rank = SEVERITY_ORDER.index(severity) if severity in SEVERITY_ORDER else len(SEVERITY_ORDER)
    return rank, -int(record.get("count", 1))


def _read_findings(data: ReportData, path: Path) -> None:
    from auditor.report.tables import RECORD_ERRORS, numbered_jsonl, record_problem

    anomalies: Counter[str] = Counter()
    severities: Counter[str] = Counter()
    for number, record in numbered_jsonl(path, "findings"):
        try:
            _read_finding(data, record, anomalies, severities)
        except RECORD_ERRORS as exc:
            raise record_problem(path, number, exc) from exc
    data.findings.sort(key=_severity_rank)
    data.anomalies = dict(anomalies.most_common())
    data.severities = {s: severities[s] for s in SEVERITY_ORDER if severities[s]}


def _read_finding(data: ReportData, record: dict[str, Any], anomalies: Counter[str],
                  severities: Counter[str]) -> None:
    for name, kind in (("code", str), ("ts", str), ("severity", str), ("count", int)):
        if name in record and not isinstance(record[name], kind):
            raise TypeError(f"field {name!r} is not a {kind.__name__}")
    if record.get("kind") == "anomaly":
        anomalies[record["code"]] += 1
        return
    spec = CATALOGUE.get(record["code"])
    record.setdefault("title", spec.title if spec is not None else record["code"])
    params = record.get("params")
    record.setdefault("remediation", spec.render_remediation(
        params if isinstance(params, dict) else {}) if spec else "")
    severities[record.get("severity", "info")] += 1
    if isinstance(record.get("message"), str):
        record["message"] = iso_epochs(record["message"])
    data.findings.append(record)
    if record.get("verdict") in FORGED_VERDICTS:
        data.forged += record["verdict"] == "forged"
        data.suspicious += record["verdict"] == "suspicious"
        _bump(data, record["ts"], 2)
        _add_answer(data, _forged_row(record))


def load_report_data(out_dir: Path) -> ReportData:
    """Read ``stats.json``, ``responses.jsonl``, ``findings.jsonl``, the zone table and
    ``chains.json`` from ``out_dir`` (missing files give empty sections)."""
    stats_path = out_dir / "stats.json"
    stats = _checked_stats(stats_path, _json_object(stats_path) if stats_path.exists() else {})
    try:
        verdicts = {str(k): int(v) for k, v in
                    dict((stats.get("validation") or {}).get("verdicts") or {}).items()}
    except (TypeError, ValueError, AttributeError) as exc:
        raise ReportInputError(str(stats_path), f"validation.verdicts is not a table of "
                               f"counts: {exc}") from exc
    data = ReportData(out_dir, stats, verdicts, 0)
    if (out_dir / "responses.jsonl").exists():
        _read_responses(data, out_dir / "responses.jsonl")
    if (out_dir / "findings.jsonl").exists():
        _read_findings(data, out_dir / "findings.jsonl")
    data.answers.sort(key=lambda row: row["ts"])
    from auditor.report.tables import read_zone_table  # pandas/pyarrow: only when reporting

    data.zones = read_zone_table(out_dir)
    chains_path = out_dir / "chains.json"
    if chains_path.exists():
        chains = _json_object(chains_path).get("zones", {})
        if not isinstance(chains, dict) or not all(isinstance(v, list)
                                                   for v in chains.values()):
            raise ReportInputError(str(chains_path), "zones is not a table of chain links")
        data.chains = {zone: [_iso_link(link) for link in links]
                       for zone, links in chains.items()}
    return data


def _iso_link(link: Any) -> Any:
    """A drawn chain link with Unix seconds in its texts shown as ISO 8601."""
    if not isinstance(link, dict):
        return link
    detail = link.get("detail")
    return {**link, "text": iso_epochs(str(link.get("text", ""))),
            "detail": [iso_epochs(str(d)) for d in detail] if isinstance(detail, list)
            else detail}


def _checked_stats(path: Path, stats: dict[str, Any]) -> dict[str, Any]:
    """``stats.json`` with the parts the reports show checked for shape (a missing file reads
    as empty)."""
    stats.setdefault("captures", [])
    stats.setdefault("tool", "dnssec-auditor")
    stats.setdefault("version", "?")
    validation = stats.get("validation")
    shapes = (("captures", stats["captures"], list), ("validation", validation, dict | None))
    for name, value, kind in shapes:
        if not isinstance(value, kind):
            raise ReportInputError(str(path), f"{name} is a {type(value).__name__}, not a "
                                   f"{'list' if kind is list else 'table'}")
    validation = stats["validation"] = {"policy": None, "at": None, "trust_anchors": [],
                                        **(validation or {})}
    fields: tuple[tuple[str, type], ...] = (("trust_anchors", list), ("policy", str),
                                             ("at", str))
    for name, field_type in fields:
        value = validation[name]
        if value is not None and not isinstance(value, field_type):
            raise ReportInputError(str(path), f"validation.{name} is a {type(value).__name__}")
    return stats


def _json_object(path: Path) -> dict[str, Any]:
    """A JSON file holding one object, or ``ReportInputError`` naming the file."""
    try:
        value = json.loads(path.read_bytes().decode("utf-8"))
    except OSError as exc:
        raise ReportInputError(str(path), f"cannot be read: {exc.strerror or exc}") from exc
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
        raise ReportInputError(str(path), f"not JSON (damaged or cut short): {exc}") from exc
    if not isinstance(value, dict):
        raise ReportInputError(str(path), f"a JSON {type(value).__name__}, not an object")
    return value
