"""An answer the capture's snapshot length cut is listed in responses.jsonl (header and
question as captured, verdict indeterminate, code truncated_capture), still counted as
truncated_snaplen in stats.json, and no finding rests on it."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from click.testing import CliRunner

from auditor.cli import cli

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "captures" / "sample-dnssec.pcap"
ANCHOR = REPO / "captures" / "sample-dnssec.anchor"
SNAPLEN = 120


def _cut(source: Path, target: Path, snaplen: int) -> set[int]:
    """Rewrite a classic pcap as if captured with ``snaplen``; return the frames it cut."""
    data = source.read_bytes()
    endian = "<" if data[:4] == b"\xd4\xc3\xb2\xa1" else ">"
    out, offset, number, cut = bytearray(data[:24]), 24, 0, set()
    out[16:20] = struct.pack(endian + "I", snaplen)
    while offset < len(data):
        seconds, fraction, captured, original = struct.unpack_from(endian + "IIII", data, offset)
        body = data[offset + 16:offset + 16 + captured]
        number += 1
        if len(body) > snaplen:
            cut.add(number)
            body = body[:snaplen]
        out += struct.pack(endian + "IIII", seconds, fraction, len(body), original) + body
        offset += 16 + captured
    target.write_bytes(bytes(out))
    return cut


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, set[int]]:
    directory = tmp_path_factory.mktemp("cut")
    capture = directory / "cut.pcap"
    cut = _cut(SAMPLE, capture, SNAPLEN)
    result = CliRunner().invoke(cli, ["audit", str(capture), "--trust-anchor", str(ANCHOR),
                                      "--out", str(directory / "out"), "-q"])
    assert result.exit_code == 0, result.output
    return directory / "out", cut


def _records(path: Path) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_cut_answers_are_listed_not_judged(audited: tuple[Path, set[int]]) -> None:
    out, cut = audited
    responses = _records(out / "responses.jsonl")
    listed = [r for r in responses if "truncated_capture" in r["codes"]]
    assert len(listed) > 40
    for record in listed:
        assert record["frame"] in cut
        assert (record["verdict"], record["codes"], record["rrsets"]) == (
            "indeterminate", ["truncated_capture"], [])
        assert record["qname"] and record["qtype"] and record["query_frame"]
        assert record["size"] in (SNAPLEN - 42, SNAPLEN - 62)  # Ethernet, IPv4 or IPv6, UDP


def test_cut_frames_stay_counted_as_cut(audited: tuple[Path, set[int]]) -> None:
    out, cut = audited
    stats = json.loads((out / "stats.json").read_text())
    assert stats["frames"]["truncated_snaplen"] == len(cut)
    assert stats["frames_unsettled"] == 0
    assert stats["frames_read"] == sum(stats["frames"].values())


def test_no_finding_rests_on_a_cut_answer(audited: tuple[Path, set[int]]) -> None:
    out, _ = audited
    listed = {r["frame"] for r in _records(out / "responses.jsonl")
              if "truncated_capture" in r["codes"]}
    for finding in _records(out / "findings.jsonl"):
        if finding.get("kind") == "finding":
            assert not listed & set(finding["frames"]), finding
