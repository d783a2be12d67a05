"""Run N scenarios of a seed in batches, tally against the expectations, write fixtures."""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.differential.classify import Expectations, Tally, tally
from tests.differential.compare import CAPTURE_LOST, Comparison
from tests.differential.fixtures import FixtureSource, write_fixture
from tests.differential.run import DEFAULT_KEY_CACHE, BatchResult, run_batch, scenarios_for

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class RunSummary:
    """Everything a run produced."""

    comparisons: list[Comparison] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    fixtures: list[Path] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    scenarios: int = 0
    dropped: dict[int, list[int]] = field(default_factory=dict)
    """First index of a batch whose capture dropped packets -> drops per attempt."""


def _state(comparison: Comparison, result: Tally) -> str:
    if comparison.agrees:
        return "agrees"
    if comparison.auditor == CAPTURE_LOST:
        return CAPTURE_LOST
    for entry_id, members in [*result.policy.items(), *result.known.items()]:
        if any(member is comparison for member in members):
            return entry_id
    return "new"


def _write_fixtures(batch: BatchResult, expectations: Expectations, directory: Path) -> list[Path]:
    assert batch.batch is not None and batch.pcap is not None and batch.batch.anchor is not None
    source = FixtureSource(batch.pcap, batch.batch.anchor, batch.batch.zones, batch.audit_records)
    result = tally(batch.comparisons, expectations)
    written = []
    for scenario in batch.scenarios:
        mine = [c for c in batch.comparisons if c.scenario == scenario.id]
        states = [_state(c, result) for c in mine]
        if all(state in ("agrees", CAPTURE_LOST) or state in result.policy for state in states):
            continue
        asked = batch.asked[scenario.id]
        written.append(write_fixture(directory, scenario, mine, asked, states, source))
    return written


def run(
    seed: int,
    count: int,
    *,
    batch_size: int = 250,
    start: int = 0,
    fixtures: Path | None = None,
    keep: Path | None = None,
    expectations: Expectations | None = None,
) -> RunSummary:
    """Run scenarios ``start .. start+count-1`` of *seed* in batches of *batch_size*."""
    expectations = expectations or Expectations.load()
    summary = RunSummary(scenarios=count)
    for first in range(start, start + count, batch_size):
        size = min(batch_size, start + count - first)
        workdir = Path(tempfile.mkdtemp(prefix=f"differential-{seed}-{first}-"))
        try:
            batch = run_batch(list(scenarios_for(seed, size, first)), workdir,
                              key_cache=DEFAULT_KEY_CACHE)  # fmt: skip
            summary.comparisons += batch.comparisons
            summary.skipped.update(batch.skipped)
            if any(batch.dropped):
                summary.dropped[first] = batch.dropped
            for name, seconds in batch.timings.items():
                summary.timings[name] = summary.timings.get(name, 0.0) + seconds
            if fixtures is not None:
                summary.fixtures += _write_fixtures(batch, expectations, fixtures)
            logger.info("batch %d..%d: %s", first, first + size - 1, batch.timings)
        finally:
            if keep is not None:
                shutil.copytree(workdir, keep / workdir.name, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("*.ctl"))  # a socket
            shutil.rmtree(workdir, ignore_errors=True)
    return summary


def summarize(
    summary: RunSummary,
    expectations: Expectations,
    wall: float,
    seed: int,
    argv: Sequence[str] = (),
) -> str:
    """Report text: agreement, classes, timings."""
    from tests.differential.classify import report

    result = tally(summary.comparisons, expectations)
    timing = ", ".join(f"{name} {seconds:.0f}s" for name, seconds in summary.timings.items())
    lines = [f"seed {seed}: {summary.scenarios} scenarios "
             f"({len(summary.skipped)} not built/loaded), wall time {wall:.0f}s ({timing})",
             report(result, expectations)]  # fmt: skip
    if summary.skipped:
        lines.append(
            "skipped: "
            + "; ".join(f"{k}: {v[:120]}" for k, v in sorted(summary.skipped.items())[:10])
        )
    if summary.dropped:
        lines.append("capture drops (batch start: packets dropped per attempt): " + "; ".join(
            f"{first}: {drops}" for first, drops in sorted(summary.dropped.items())))
    if summary.fixtures:
        lines.append(
            f"fixtures written: {len(summary.fixtures)} under {summary.fixtures[0].parent}"
        )
    return "\n".join(lines)


def timed_run(seed: int, count: int, **options: object) -> tuple[RunSummary, float]:
    """`run` and its wall time."""
    clock = time.monotonic()
    summary = run(seed, count, **options)  # type: ignore[arg-type]
    return summary, time.monotonic() - clock
