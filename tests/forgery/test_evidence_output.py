"""``audit --evidence``: the frames behind forgery findings as pcapng, inputs' SHA-256 cited."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import wrpcap

from auditor.capture.sources import CaptureSet
from auditor.cli import cli
from auditor.report.evidence_pcap import EvidencePcapng
from tests.forgery.builders import CLIENT, SERVER, answer, query

T0 = 1_700_000_000.0


def _packet(src: str, dst: str, sport: int, dport: int, payload: bytes, at: float) -> Ether:
    packet = (Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src=src, dst=dst)
              / UDP(sport=sport, dport=dport) / Raw(payload))
    packet.time = at
    return packet


def _race_capture(path: Path) -> None:
    """Frame 1 query, 2 forged answer, 3 genuine answer, 4 an unrelated clean exchange..."""
    q = query("www.example.", msg_id=7)
    other = query("ok.example.", msg_id=8)
    packets = [
        _packet(CLIENT, SERVER, 40000, 53, q.to_wire(), T0),
        _packet(SERVER, CLIENT, 53, 40000, answer(q, "www.example. A 6.6.6.6").to_wire(),
                T0 + 0.001),
        _packet(SERVER, CLIENT, 53, 40000, answer(q, "www.example. A 192.0.2.1").to_wire(),
                T0 + 0.020),
        _packet(CLIENT, SERVER, 40001, 53, other.to_wire(), T0 + 0.100),
        _packet(SERVER, CLIENT, 53, 40001, answer(other, "ok.example. A 192.0.2.2").to_wire(),
                T0 + 0.120),
    ]
    wrpcap(str(path), packets)


def _evidence_frames(path: Path) -> list[tuple[int, bytes]]:
    with CaptureSet([str(path)]) as frames:
        return [(frame.ts_ns, frame.data) for frame in frames]


def _source_frames(path: Path) -> dict[int, tuple[int, bytes]]:
    with CaptureSet([str(path)]) as frames:
        return {frame.number: (frame.ts_ns, frame.data) for frame in frames}


def test_evidence_pcapng_holds_exactly_the_cited_frames(tmp_path: Path) -> None:
    capture = tmp_path / "race.pcap"
    _race_capture(capture)
    out, evidence = tmp_path / "out", tmp_path / "evidence.pcapng"
    result = CliRunner().invoke(cli, ["audit", str(capture), "--out", str(out), "-q",
                                      "--evidence", str(evidence)])
    assert result.exit_code == 0, result.output
    findings = [json.loads(line) for line in (out / "findings.jsonl").read_text().splitlines()]
    race = next(f for f in findings if f["code"] == "response_race")
    assert race["verdict"] == "suspicious" and sorted(race["frames"]) == [1, 2, 3]
    source = _source_frames(capture)
    assert _evidence_frames(evidence) == [source[1], source[2], source[3]]
    stats = json.loads((out / "stats.json").read_text())
    assert stats["inputs"] == [{"capture": "race.pcap", "path": str(capture),
                                "sha256": hashlib.sha256(capture.read_bytes()).hexdigest()}]
    assert stats["evidence"]["sha256"] == hashlib.sha256(evidence.read_bytes()).hexdigest()
    assert stats["evidence"]["frames"] == 3 and stats["evidence"]["frames_missing"] == 0


def test_stdin_evidence_comes_from_the_recent_frame_ring(tmp_path: Path) -> None:
    capture = tmp_path / "race.pcap"
    _race_capture(capture)
    out, evidence = tmp_path / "out", tmp_path / "evidence.pcapng"
    done = subprocess.run(
        [sys.executable, "-m", "auditor", "audit", "-", "--out", str(out), "-q",
         "--evidence", str(evidence)],
        input=capture.read_bytes(), capture_output=True, check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    source = _source_frames(capture)
    assert _evidence_frames(evidence) == [source[1], source[2], source[3]]
    stats = json.loads((out / "stats.json").read_text())
    assert stats["inputs"][0]["sha256"] is None  # standard input cannot be hashed afterwards


def test_pcapng_writer_keeps_timestamps_link_types_and_lengths(tmp_path: Path) -> None:
    from auditor.capture.frame import Frame

    frames = [
        Frame("a.pcap", 3, 1_700_000_000_123_456_789, 1, b"\x02" * 61, 61),
        Frame("b.pcap", 9, 1_700_000_001_000_000_001, 101, b"\x45" + b"\x00" * 27, 1500),
    ]
    path = tmp_path / "e.pcapng"
    with open(path, "wb") as handle:
        writer = EvidencePcapng(handle, "test")
        for frame in frames:
            writer.write(frame)
    with CaptureSet([str(path)]) as read:
        back = list(read)
    assert [(f.ts_ns, f.linktype, f.data, f.wirelen) for f in back] == [
        (f.ts_ns, f.linktype, f.data, f.wirelen) for f in frames]
    assert b"a.pcap frame 3" in path.read_bytes()
