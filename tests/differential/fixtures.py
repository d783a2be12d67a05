"""Write a disagreeing scenario as a small replayable fixture, and replay one."""

from __future__ import annotations

import json
import shutil
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.differential.build import Addresses
from tests.differential.compare import Asked, AuditIndex, Comparison, auditor_verdict
from tests.differential.model import Probe, ProbeKind, Scenario
from tests.integration.agreement import run_audit

_GLOBAL_HEADER = 24
_RECORD_HEADER = struct.Struct("<IIII")
INFRASTRUCTURE = frozenset({".", "test."})
"""Names whose key material every scenario of a batch shares (fetched once per batch)."""


def pcap_frames(path: Path) -> Iterable[tuple[int, float, bytes]]:
    """(1-based frame number, time, record bytes with header) of a little-endian pcap."""
    data = path.read_bytes()
    offset, number = _GLOBAL_HEADER, 0
    while offset + _RECORD_HEADER.size <= len(data):
        seconds, fraction, length, _ = _RECORD_HEADER.unpack_from(data, offset)
        end = offset + _RECORD_HEADER.size + length
        number += 1
        yield number, seconds + fraction / 1e6, data[offset:end]
        offset = end


def write_subset(
    source: Path, target: Path, keep_frames: set[int], windows: Sequence[tuple[float, float]]
) -> int:
    """Copy the frames numbered in *keep_frames* or captured inside a window; return the count."""
    kept = [
        record for number, ts, record in pcap_frames(source)
        if number in keep_frames or any(start - 0.01 <= ts <= end + 0.05 for start, end in windows)
    ]  # fmt: skip
    target.write_bytes(source.read_bytes()[:_GLOBAL_HEADER] + b"".join(kept))
    return len(kept)


def _infrastructure_frames(records: Iterable[dict[str, Any]]) -> set[int]:
    frames: set[int] = set()
    for record in records:
        if record["qname"] in INFRASTRUCTURE:
            frames.update(record["frames"])
            if record["query_frame"] is not None:
                frames.add(record["query_frame"])
    return frames


def _question(comparison: Comparison, asked: Asked, state: str) -> dict[str, Any]:
    return {"qname": comparison.probe.qname, "qtype": comparison.probe.qtype,
            "kind": comparison.probe.kind.value, "chain": comparison.probe.chain,
            "cd": comparison.cd, "rcode": asked.rcode, "ad": asked.ad,
            "unbound": comparison.unbound, "ede": list(comparison.ede),
            "auditor_when_written": comparison.auditor, "codes": list(comparison.codes),
            "faults": comparison.faults, "shapes": comparison.shapes, "state": state,
            "started": asked.started, "ended": asked.ended}  # fmt: skip


@dataclass(frozen=True, slots=True)
class FixtureSource:
    """What a fixture is cut from: the batch's files and audit."""

    pcap: Path
    anchor: Path
    zone_files: dict[str, Path]
    audit_records: Sequence[dict[str, Any]]


def write_fixture(
    directory: Path,
    scenario: Scenario,
    comparisons: Sequence[Comparison],
    asked: Sequence[Asked],
    states: Sequence[str],
    source: FixtureSource,
) -> Path:
    """Zone files, capture subset, root anchor, generator parameters and expected outcomes."""
    target = directory / f"seed{scenario.seed}-{scenario.id}"
    shutil.rmtree(target, ignore_errors=True)
    (target / "zones").mkdir(parents=True)
    for zone in scenario.zones:
        shutil.copyfile(source.zone_files[zone.name], target / "zones" / f"{zone.name}zone")
    shutil.copyfile(source.anchor, target / "root.ds")
    windows = [(one.started, one.ended) for one in asked]
    write_subset(
        source.pcap, target / "capture.pcap", _infrastructure_frames(source.audit_records), windows
    )
    (target / "scenario.json").write_text(json.dumps(scenario.to_json(), indent=1) + "\n")
    questions = [_question(c, a, s) for c, a, s in zip(comparisons, asked, states, strict=True)]
    (target / "expected.json").write_text(json.dumps(questions, indent=1) + "\n")
    return target


def replay(fixture: Path, workdir: Path) -> list[tuple[dict[str, Any], str]]:
    """Audit the fixture's capture again: (expected question, auditor verdict now) pairs."""
    audit = run_audit(fixture / "capture.pcap", workdir, fixture / "root.ds")
    index = AuditIndex.of(audit.records, Addresses())
    result = []
    for question in json.loads((fixture / "expected.json").read_text()):
        probe = Probe(question["qname"], question["qtype"], ProbeKind(question["kind"]),
                      question["chain"])  # fmt: skip
        asked = Asked(
            "",
            probe,
            question["cd"],
            question["rcode"],
            question["ad"],
            tuple(question["ede"]),
            question["started"],
            question["ended"],
        )
        verdict, _records = auditor_verdict(index, asked, question["unbound"])
        result.append((question, verdict))
    return result
