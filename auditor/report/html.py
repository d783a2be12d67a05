"""The self-contained HTML report (inline CSS and SVG, no script, nothing fetched)."""

from __future__ import annotations

import importlib.resources
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2

from auditor.findings.catalogue import CATALOGUE
from auditor.report.load import ReportData

logger = logging.getLogger(__name__)

TIMELINE_BINS = 60
"""Bars drawn in the timeline."""
_WIDTH, _HEIGHT, _LEFT, _BOTTOM = 900, 180, 40, 30


@dataclass(frozen=True, slots=True)
class TimelineBar:
    """One bin of the bogus/forged timeline, with its SVG geometry."""

    x: float
    """Left edge in SVG units."""
    width: float
    """Bar width."""
    bogus_height: float
    """Height of the bogus part."""
    forged_height: float
    """Height of the forged part (stacked on top)."""
    start: str
    """Bin start time, for the tooltip."""
    responses: int
    """Responses in the bin."""
    bogus: int
    """Bogus responses in the bin."""
    forged: int
    """Forged/suspicious findings in the bin."""


def _clock(ts_ns: int) -> str:
    """ISO 8601 UTC with milliseconds (``2026-11-25T03:37:33.482Z``)."""
    moment = datetime.fromtimestamp(ts_ns // 1_000_000_000, tz=UTC)
    millis = ts_ns // 1_000_000 % 1000
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{millis:03d}Z"


def timeline(data: ReportData, bins: int = TIMELINE_BINS) -> dict[str, Any]:
    """Bars (bogus stacked under forged per time bin) and axis labels for the SVG."""
    buckets = data.histogram.buckets
    if not buckets:
        return {"bars": [], "labels": [], "max": 0, "width": _WIDTH, "height": _HEIGHT}
    resolution = data.histogram.resolution_ns
    first, last = min(buckets), max(buckets)
    count = min(bins, last - first + 1)
    step = (last - first + 1) / count
    totals = [[0, 0, 0] for _ in range(count)]
    for bucket, values in buckets.items():
        index = min(int((bucket - first) / step), count - 1)
        for column in range(3):
            totals[index][column] += values[column]
    peak = max((b + f for _, b, f in totals), default=0) or 1
    plot_w, plot_h = _WIDTH - _LEFT - 10, _HEIGHT - _BOTTOM - 10
    bar_w = plot_w / count
    bars = [
        TimelineBar(
            x=_LEFT + i * bar_w, width=max(bar_w - 1, 1),
            bogus_height=plot_h * b / peak, forged_height=plot_h * f / peak,
            start=_clock(int((first + i * step) * resolution)), responses=r, bogus=b, forged=f,
        )
        for i, (r, b, f) in enumerate(totals)
    ]
    labels = [(_LEFT, _clock(first * resolution)), (_WIDTH - 10, _clock(last * resolution))]
    return {"bars": bars, "labels": labels, "max": peak, "width": _WIDTH, "height": _HEIGHT,
            "base": _HEIGHT - _BOTTOM, "plot_h": plot_h}


def _environment() -> jinja2.Environment:
    templates = importlib.resources.files("auditor.report") / "templates"
    source = (templates / "report.html.j2").read_text(encoding="utf-8")
    environment = jinja2.Environment(
        loader=jinja2.DictLoader({"report.html.j2": source}),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["duration"] = _duration
    return environment


def _duration(seconds: object) -> str:
    if seconds is None or seconds == "":
        return "-"
    value = int(seconds)  # type: ignore[call-overload]
    if abs(value) >= 86_400:
        return f"{value / 86_400:.1f} d"
    if abs(value) >= 3600:
        return f"{value / 3600:.1f} h"
    return f"{value} s"


def render_html(data: ReportData) -> str:
    """The report page for ``data``."""
    template = _environment().get_template("report.html.j2")
    return template.render(
        data=data,
        title=f"DNSSEC audit of {data.capture_name}",
        timeline=timeline(data),
        catalogue=CATALOGUE,
        groups=data.chain_groups(),
        validation=data.stats.get("validation") or {},
    )


def write_html(data: ReportData, path: Path) -> Path:
    """Write ``report.html``."""
    path.write_text(render_html(data), encoding="utf-8")
    return path
