"""``live --at``: every signature judged at a fixed time (an incident replayed onto a tap);
without it each at its packet's capture time, which for ``--read`` is the stream's own."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from auditor.live import NS, LiveOptions, run_live

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "captures" / "sample-dnssec.pcap"
ANCHOR = REPO / "captures" / "sample-dnssec.anchor"
DESIGN = json.loads((REPO / "captures" / "sample-dnssec.json").read_text())


def _verdicts(tmp_path: Path, at_ns: int | None) -> tuple[dict[str, int], str]:
    outcome = run_live(LiveOptions(out_dir=tmp_path, read=str(SAMPLE),
                                   trust_anchors=(str(ANCHOR),), at_ns=at_ns,
                                   alerts_path=tmp_path / "alerts.jsonl"))
    validation = outcome.stats["validation"]
    return validation["verdicts"], validation["reference_time"]


def test_read_judges_an_old_stream_at_its_own_capture_time(tmp_path: Path) -> None:
    verdicts, reference = _verdicts(tmp_path, None)
    assert reference == "capture_time"
    assert verdicts["secure"] == 43 and verdicts["bogus"] == 13


def test_at_a_time_after_every_signature_expired_turns_secure_answers_bogus(
    tmp_path: Path
) -> None:
    late = int(datetime(2028, 1, 1, tzinfo=UTC).timestamp()) * NS  # RFC 1982: within 68 years
    verdicts, reference = _verdicts(tmp_path, late)
    assert reference == "2028-01-01T00:00:00Z"
    assert verdicts["secure"] == 0 and verdicts["bogus"] > 13
    alerts = [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert any("signature_expired" in alert["codes"] for alert in alerts)


def test_at_the_capture_time_itself_judges_as_without_at(tmp_path: Path) -> None:
    verdicts, _ = _verdicts(tmp_path, int(DESIGN["capture_started"] * NS))
    assert verdicts["secure"] == 43 and verdicts["bogus"] == 13
