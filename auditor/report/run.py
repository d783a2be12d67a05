"""End-of-run reporting: zone tables, chains, the flow table, HTML and Markdown, and the
re-rendering of a saved output directory (``dnssec-auditor report DIR``)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from enum import StrEnum
from pathlib import Path
from typing import assert_never

from auditor.findings.catalogue import CATALOGUE, Finding, Severity
from auditor.findings.codes import FindingCode
from auditor.findings.zones import ZoneHealthRow
from auditor.report.chains import chains_document
from auditor.report.files import write_json
from auditor.report.html import write_html
from auditor.report.load import FORGED_VERDICTS, ReportData, load_report_data
from auditor.report.markdown import write_markdown
from auditor.validate.validator import Validator

logger = logging.getLogger(__name__)

_CHAIN_CODES = frozenset({FindingCode.BOGUS_ANSWER, FindingCode.AD_ON_BOGUS,
                          FindingCode.DS_MISMATCH})
_MAX_CHAIN_ZONES = 1000
TOP_PROBLEMS = 10
"""Findings listed as the run's top problems (``stats.json`` ``findings.top``)."""


class OutputFormat(StrEnum):
    """Outputs ``report`` can (re)build; ``audit`` always writes JSONL, zones and these."""

    HTML = "html"
    MARKDOWN = "md"
    PARQUET = "parquet"
    CSV = "csv"


DEFAULT_FORMATS = frozenset({OutputFormat.HTML, OutputFormat.MARKDOWN, OutputFormat.PARQUET})
"""What an audit run writes unless told otherwise (CSV is on request)."""


def render_reports(out_dir: Path, formats: Iterable[OutputFormat]) -> list[Path]:
    """Build the requested outputs from the saved files of ``out_dir``; no capture is read."""
    from auditor.report.tables import write_flow_tables  # pandas/pyarrow: only when writing

    wanted = set(formats)
    written: list[Path] = []
    tables = {OutputFormat.PARQUET, OutputFormat.CSV} & wanted
    responses = out_dir / "responses.jsonl"
    if tables and responses.exists():
        written.extend(write_flow_tables(responses, out_dir,
                                         parquet=OutputFormat.PARQUET in tables,
                                         csv=OutputFormat.CSV in tables))
    data: ReportData | None = None
    for output in sorted(wanted - tables):
        data = data or load_report_data(out_dir)
        written.append(_render_one(output, data, out_dir))
    return written


def _render_one(output: OutputFormat, data: ReportData, out_dir: Path) -> Path:
    if output is OutputFormat.HTML:
        return write_html(data, out_dir / "report.html")
    if output is OutputFormat.MARKDOWN:
        return write_markdown(data, out_dir / "summary.md")
    if output is OutputFormat.PARQUET or output is OutputFormat.CSV:
        raise ValueError(f"{output} is a table, not a page")
    assert_never(output)


class RunReporter:
    """Follows the findings of an audit run; at the end writes zones, chains and the
    requested reports. Memory: severity counts and at most ``_MAX_CHAIN_ZONES`` zone names."""

    def __init__(self, out_dir: Path, formats: Iterable[OutputFormat] = DEFAULT_FORMATS) -> None:
        self.out_dir = out_dir
        self.formats = frozenset(formats)
        self.severities: Counter[str] = Counter()
        self.verdicts: Counter[str] = Counter()
        self._anchor_mismatches: list[dict[str, object]] = []
        self._top: list[tuple[int, int, int, dict[str, object]]] = []
        """The most severe, most frequent findings: (severity rank, -count, order, row)."""
        self._chain_zones: dict[str, int] = {}
        """Zone -> capture time (s) of the first finding naming it: its chain is drawn with
        the trust anchors in force then."""

    def note(self, finding: Finding) -> None:
        """Count one finding written to ``findings.jsonl``."""
        self.severities[finding.severity.value] += 1
        self._note_top(finding)
        if finding.code == FindingCode.TRUST_ANCHOR_MISMATCH:
            self._anchor_mismatches.append({"anchored": finding.params.get("anchored"),
                                            "answers": finding.count,
                                            "detail": finding.params.get("detail")})
        if finding.verdict in FORGED_VERDICTS:
            self.verdicts[finding.verdict] += 1
        chained = finding.code in _CHAIN_CODES or finding.verdict in FORGED_VERDICTS
        zone = finding.params.get("zone") or finding.params.get("qname")
        if (chained and isinstance(zone, str) and zone not in self._chain_zones
                and len(self._chain_zones) < _MAX_CHAIN_ZONES):
            self._chain_zones[zone] = finding.first_seen_ns // 1_000_000_000

    def _note_top(self, finding: Finding) -> None:
        """Keep the finding among the top problems if it is severe enough (bounded)."""
        rank = list(Severity).index(finding.severity)
        if finding.severity in (Severity.LOW, Severity.INFO):
            return
        spec = CATALOGUE.get(finding.code)
        where = finding.provenance
        zone = finding.params.get("zone") or finding.params.get("qname")
        row: dict[str, object] = {
            "severity": finding.severity.value, "code": finding.code,
            "message": finding.message, "count": finding.count,
            "zone": zone if isinstance(zone, str) else None,
            "first_frame": where.frames[0] if where.frames else None, "capture": where.capture,
            "remediation": spec.render_remediation(finding.params) if spec else ""}
        self._top.append((rank, -finding.count, len(self._top), row))
        if len(self._top) > 4 * TOP_PROBLEMS:
            self._top.sort(key=lambda item: item[:3])
            del self._top[TOP_PROBLEMS:]

    def top_problems(self) -> list[dict[str, object]]:
        """The ``TOP_PROBLEMS`` most severe findings, most answers first within a severity."""
        return [row for *_, row in sorted(self._top, key=lambda item: item[:3])[:TOP_PROBLEMS]]

    def stats(self) -> dict[str, object]:
        """The ``findings`` block of ``stats.json``."""
        ordered = {s.value: self.severities[s.value] for s in Severity if self.severities[s.value]}
        found: dict[str, object] = {"by_severity": ordered,
                                    "forged": self.verdicts.get("forged", 0),
                                    "suspicious": self.verdicts.get("suspicious", 0)}
        if self._anchor_mismatches:
            found["trust_anchor_mismatch"] = self._anchor_mismatches
        found["top"] = self.top_problems()
        return found

    def finish(
        self, validator: Validator | None, zone_rows: Sequence[ZoneHealthRow]
    ) -> list[Path]:
        """Write ``zones.csv``/``zones.parquet``, ``chains.json`` and the requested reports
        (``stats.json``, ``responses.jsonl`` and ``findings.jsonl`` must be written)."""
        import pyarrow

        from auditor.report.tables import write_zone_tables  # pandas/pyarrow: only now

        # Arrow's buffers from the C heap the judging state freed: its default allocator
        # (mimalloc) maps memory of its own, on top (100,000-frame names flood: 299 -> 274 MB).
        pyarrow.set_memory_pool(pyarrow.system_memory_pool())
        written = write_zone_tables(zone_rows, self.out_dir)
        chains = self.out_dir / "chains.json"
        write_json(chains, chains_document(validator, self._chain_zones))
        written.append(chains)
        written.extend(render_reports(self.out_dir, self.formats))
        return written
