"""Live mode judges through the verdict cache (issue 14) and that changes no output: the
responses, findings and alerts of a live run over a capture are the same with the cache on
and off (the run id apart; lines compared as sets, since the timer, driven by the wall clock,
may release held responses and merged findings in another order)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import dns.name
import dns.rrset
import pytest

from auditor.live import LiveOptions, LiveOutcome, ZoneChanges, run_live
from auditor.trust import KeyMaterial

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "captures" / "sample-dnssec.pcap"
FIXTURES = ROOT / "tests" / "differential" / "fixtures"
_RUN_ID = re.compile(r"/\d{8}T\d{6}Z/")
NS = 1_000_000_000


def _live(capture: Path, anchor: Path, out: Path, *, cache: bool) -> LiveOutcome:
    return run_live(LiveOptions(out_dir=out, read=str(capture), trust_anchors=(str(anchor),),
                                alerts_path=out / "alerts.jsonl", verdict_cache=cache))


def _lines(out: Path, pattern: str) -> list[str]:
    found = [line for path in sorted(out.glob(pattern)) for line in path.read_text().splitlines()]
    return sorted(_RUN_ID.sub("/RUN/", line) for line in found)


def _assert_same(capture: Path, anchor: Path, tmp_path: Path) -> dict[str, int]:
    on = _live(capture, anchor, tmp_path / "on", cache=True)
    off = _live(capture, anchor, tmp_path / "off", cache=False)
    for pattern in ("responses-*.jsonl", "findings-*.jsonl", "alerts.jsonl"):
        assert _lines(tmp_path / "on", pattern) == _lines(tmp_path / "off", pattern), pattern
    assert on.stats["validation"]["verdicts"] == off.stats["validation"]["verdicts"]
    assert off.stats["validation"]["verdict_cache"] is None
    counts: dict[str, int] = on.stats["validation"]["verdict_cache"]
    return counts


def test_sample_capture_live_identical_with_and_without_cache(tmp_path: Path) -> None:
    counts = _assert_same(SAMPLE, SAMPLE.with_suffix(".anchor"), tmp_path)
    assert counts["hits"] > 0


@pytest.mark.parametrize(
    "fixture", sorted(p.parent.name for p in FIXTURES.glob("*/capture.pcap"))
)
def test_lab_captures_live_identical_with_and_without_cache(
    fixture: str, tmp_path: Path
) -> None:
    directory = FIXTURES / fixture
    _assert_same(directory / "capture.pcap", directory / "root.ds", tmp_path)


@dataclass
class _Question:
    qname: dns.name.Name
    rrsets: tuple[object, ...] = ()


def _dnskey(zone: str) -> dns.rrset.RRset:
    return dns.rrset.from_text(zone, 300, "IN", "DNSKEY",
                               "257 3 13 mdsswUyr3DPW132mOi8V9xESWE8jTo0dxCjjnopKl+GqJxpVXckHAeF+"
                               "KkxLbxILfDLUT0rAK9iUzy1L53eKGQ==")


def test_zone_changes_tell_a_response_s_zones_from_others() -> None:
    material = KeyMaterial()
    changes = ZoneChanges(material, max_zones=10)
    question = _Question(dns.name.from_text("www.b.example."))
    before = material.generation
    material.add_rrset(_dnskey("a.example."), None, NS)
    assert changes.untouched(question, before)  # type: ignore[arg-type]
    material.add_rrset(_dnskey("B.example."), None, NS)  # case does not matter
    assert not changes.untouched(question, before)  # type: ignore[arg-type]
    assert changes.untouched(question, material.generation)  # type: ignore[arg-type]


def test_zone_changes_forget_conservatively() -> None:
    material = KeyMaterial()
    changes = ZoneChanges(material, max_zones=1)
    question = _Question(dns.name.from_text("www.b.example."))
    before = material.generation
    material.add_rrset(_dnskey("a.example."), None, NS)
    changes.untouched(question, before)  # type: ignore[arg-type]
    material.add_rrset(_dnskey("c.example."), None, NS)  # a.example. is forgotten
    assert not changes.untouched(question, before)  # type: ignore[arg-type]
