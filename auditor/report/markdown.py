"""``summary.md``: a short Markdown summary of a run, for pasting into a ticket."""

from __future__ import annotations

from pathlib import Path

from auditor.report.load import ReportData

MAX_ROWS = 20
"""Rows per table before the summary says 'and N more'."""


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _headline(data: ReportData) -> list[str]:
    verdicts = ", ".join(f"{name} **{data.verdicts.get(name, 0)}**"
                         for name in ("secure", "insecure", "bogus", "indeterminate"))
    severities = ", ".join(f"{name} {count}" for name, count in data.severities.items()) or "none"
    validation = data.stats.get("validation") or {}
    return [
        f"# DNSSEC audit of {data.capture_name}",
        "",
        f"- Responses: **{data.responses}** ({verdicts}); forged **{data.forged}**"
        + (f", suspicious {data.suspicious}" if data.suspicious else ""),
        f"- Findings: {severities}",
        f"- Policy {validation.get('policy', '-')}; signatures judged at "
        + (f"fixed time {validation['at']}" if validation.get("at") else "capture time"),
        "",
    ]


def _row(values: tuple[object, ...]) -> str:
    return "| " + " | ".join(_cell(v) for v in values) + " |"


def _answers(data: ReportData) -> list[str]:
    if not data.answers:
        return ["No bogus or forged answers.", ""]
    lines = [f"## Bogus and forged answers ({data.answers_total})", "",
             "| first seen (UTC) | last seen (UTC) | times | client | server | question "
             "| verdict | why | frames |",
             "|---|---|---|---|---|---|---|---|---|"]
    lines.extend(_row((a["first"], a["last"] if a["count"] > 1 else "", a["count"],
                       a["client"] or "-", a["server"] or "-", a["question"],
                       a["verdict"], "; ".join(a["reasons"]),
                       ", ".join(str(f) for f in a["frames"])))
                 for a in data.answers[:MAX_ROWS])
    listed = sum(a["count"] for a in data.answers[:MAX_ROWS])
    if data.answers_total > listed:
        lines.append(f"\n…and {data.answers_total - listed} more (see report.html).")
    return [*lines, ""]


def _why(data: ReportData) -> list[str]:
    groups = data.why.ordered()
    if not groups:
        return []
    lines = [f"## Why clients failed ({data.why.failed})", "",
             "| cause | zone | what is wrong | client answers | first | last | upstream frames |",
             "|---|---|---|---|---|---|---|"]
    lines.extend(_row((g.title, g.zone or "-", g.reason or "-", g.count, g.first_ts, g.last_ts,
                       ", ".join(str(f) for f in g.upstream_frames) or "-"))
                 for g in groups[:MAX_ROWS])
    lines.append("")
    lines.extend(f"- {g.examples[0]['explanation']}" for g in groups[:MAX_ROWS]
                 if g.examples and g.examples[0].get("explanation"))
    return [*lines, ""]


def _findings(data: ReportData) -> list[str]:
    if not data.findings:
        return []
    lines = ["## Findings", "",
             "| severity | finding | what to do | times | RFC sections | first frames |",
             "|---|---|---|---|---|---|"]
    lines.extend(_row((f["severity"], f["message"], f.get("remediation") or "-",
                       f.get("count", 1), ", ".join(f.get("rfcs", [])),
                       ", ".join(str(n) for n in f.get("frames", [])[:5])))
                 for f in data.findings[:MAX_ROWS])
    if len(data.findings) > MAX_ROWS:
        lines.append(f"\n…and {len(data.findings) - MAX_ROWS} more (see report.html).")
    return [*lines, ""]


def render_markdown(data: ReportData) -> str:
    """The Markdown summary of ``data``."""
    return "\n".join([*_headline(data), *_why(data), *_answers(data),
                      *_findings(data)]).rstrip() + "\n"


def write_markdown(data: ReportData, path: Path) -> Path:
    """Write ``summary.md``."""
    path.write_text(render_markdown(data), encoding="utf-8")
    return path
