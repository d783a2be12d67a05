"""Rolling outputs rotate by age and size, keep a bounded number of pieces, lose no record."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from auditor.capture.frame import Frame
from auditor.capture.sources import CaptureSet
from auditor.report.rolling import RollingJsonLines, RollingParquet, RollingPcapng, Rotation


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def _lines(directory: Path, pattern: str) -> list[dict]:
    return [json.loads(line) for path in sorted(directory.glob(pattern))
            for line in path.read_text().splitlines()]


def test_jsonl_rotates_by_size_and_loses_nothing(tmp_path: Path) -> None:
    writer = RollingJsonLines(tmp_path, "responses", Rotation(0, max_bytes=1000, keep=0))
    for n in range(200):
        writer.write({"n": n, "pad": "x" * 20})
    writer.close()
    pieces = sorted(tmp_path.glob("responses-*.jsonl"))
    assert len(pieces) > 5
    assert all(path.stat().st_size < 1000 + 60 for path in pieces)
    assert [r["n"] for r in _lines(tmp_path, "responses-*.jsonl")] == list(range(200))


def test_jsonl_rotates_by_age_and_retention_deletes_the_oldest(tmp_path: Path) -> None:
    clock = FakeClock()
    writer = RollingJsonLines(tmp_path, "findings", Rotation(60, 0, keep=3), clock)
    for n in range(10):
        writer.write({"n": n})
        clock.now += 30
    writer.close()
    assert len(writer.pieces) == 3 and writer.deleted == 2
    assert [r["n"] for r in _lines(tmp_path, "findings-*.jsonl")] == [4, 5, 6, 7, 8, 9]


def test_rotate_closes_the_piece_and_the_next_write_opens_another(tmp_path: Path) -> None:
    writer = RollingJsonLines(tmp_path, "responses", Rotation(0, 0, 0))
    writer.write({"n": 1})
    writer.rotate()
    assert writer.current is None
    writer.write({"n": 2})
    writer.close()
    assert len(list(tmp_path.glob("responses-*.jsonl"))) == 2


def test_parquet_pieces_are_readable_and_hold_every_row(tmp_path: Path) -> None:
    schema = pa.schema([("n", pa.int64()), ("name", pa.string())])
    clock = FakeClock()
    table = RollingParquet(tmp_path, "responses", Rotation(10, 0, 0), schema, batch_rows=7,
                           clock=clock)
    for n in range(100):
        table.write({"n": n, "name": f"q{n}"})
        if n % 25 == 24:
            table.flush()
            clock.now += 11
    table.close()
    pieces = sorted(tmp_path.glob("responses-*.parquet"))
    assert len(pieces) >= 3
    rows = [n for piece in pieces for n in pq.read_table(piece).column("n").to_pylist()]
    assert rows == list(range(100))


def test_pcapng_pieces_read_back_frame_for_frame(tmp_path: Path) -> None:
    frames = [Frame("eth0", n, 1_700_000_000 * 10**9 + n, 1, bytes(range(60)) + bytes([n]), 61)
              for n in range(1, 30)]
    evidence = RollingPcapng(tmp_path, "evidence", Rotation(0, 1000, 0), "test")
    for chunk in (frames[:10], frames[10:20], frames[20:]):
        evidence.write_frames(chunk)
    evidence.close()
    pieces = sorted(tmp_path.glob("evidence-*.pcapng"))
    assert len(pieces) >= 2
    with CaptureSet([str(p) for p in pieces]) as read:
        back = list(read)
    assert [f.data for f in back] == [f.data for f in frames]
    assert [f.ts_ns for f in back] == [f.ts_ns for f in frames]
