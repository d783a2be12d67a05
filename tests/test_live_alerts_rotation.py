"""The ``--alerts`` file rotates like the other outputs but by renaming: the given path is always
the file being written, numbered pieces are bounded, and no alert line is lost or split."""

from __future__ import annotations

import io
import json
import os
import signal
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditor.capture.frame import Frame
from auditor.capture.sources import CaptureSet
from auditor.live import AlertSink, LiveAuditor, LiveOptions, run_live
from auditor.report.rolling import NumberedJsonLines, Rotation
from auditor.trust import KeyCache

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "captures" / "sample-dnssec.pcap"
ANCHOR = REPO / "captures" / "sample-dnssec.anchor"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def _pieces(path: Path) -> list[Path]:
    """The numbered pieces on disk, oldest (highest number) first."""
    prefix = path.name + "."
    suffixes = [p.name.removeprefix(prefix) for p in path.parent.iterdir()
                if p.name.startswith(prefix)]
    numbers = sorted((int(s) for s in suffixes if s.isdigit()), reverse=True)
    return [path.with_name(f"{path.name}.{n}") for n in numbers]


def _all_lines(path: Path) -> list[str]:
    """Every line of the numbered pieces (oldest first) and then of the current file."""
    files = [*_pieces(path), path]
    text = "".join(p.read_text(encoding="utf-8") for p in files if p.exists())
    assert text == "" or text.endswith("\n")
    return text.splitlines()


def _record(n: int, pad: str = "") -> dict[str, Any]:
    return {"code": "bogus_answer", "n": n, "pad": pad}


def test_size_cap_makes_numbered_pieces_and_loses_no_line(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    alerts = NumberedJsonLines(path, Rotation(0, max_bytes=300, keep=0))
    sink = AlertSink(alerts)
    for n in range(200):
        sink.send(_record(n, "x" * (n % 37)))
        assert path.exists()  # tailers always find the current file
    alerts.close()
    pieces = _pieces(path)
    assert len(pieces) > 10 and alerts.rotations == len(pieces)
    longest = max(len(line) + 1 for line in _all_lines(path))
    for piece in pieces:
        size = piece.stat().st_size
        assert 300 <= size < 300 + longest
    assert [json.loads(line)["n"] for line in _all_lines(path)] == list(range(200))


def test_keep_bounds_the_numbered_pieces_and_keeps_the_newest_lines(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    alerts = NumberedJsonLines(path, Rotation(0, max_bytes=200, keep=3))
    for n in range(300):
        alerts.write(_record(n))
        assert len(_pieces(path)) <= 3
    alerts.close()
    assert [p.name for p in _pieces(path)] == [
        "alerts.jsonl.3", "alerts.jsonl.2", "alerts.jsonl.1"]
    kept = [json.loads(line)["n"] for line in _all_lines(path)]
    assert kept == list(range(300 - len(kept), 300))  # the newest, in order
    assert alerts.deleted == alerts.rotations - 3 > 0
    assert list(alerts.pieces) == [*_pieces(path), path]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pads=st.lists(st.text(max_size=80), min_size=1, max_size=60),
    cap=st.integers(min_value=1, max_value=400),
    events=st.lists(st.sampled_from(["send", "send", "send", "tick", "hup"]), max_size=120),
)
def test_no_line_is_lost_split_or_reordered_whatever_the_sizes(
    pads: list[str], cap: int, events: list[str]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "alerts.jsonl"
        alerts = NumberedJsonLines(path, Rotation(0, max_bytes=cap, keep=0))
        sink = AlertSink(alerts)
        sent = 0
        for n, pad in enumerate(pads):
            sink.send(_record(n, pad))
            sent += 1
            for event in events[n * 2:n * 2 + 2]:
                if event == "tick":
                    sink.maybe_rotate()
                elif event == "hup":
                    sink.rotate()
        alerts.close()
        lines = _all_lines(path)
        assert [json.loads(line) for line in lines] == [_record(n, p) for n, p in
                                                         enumerate(pads)]
        assert sink.count == sent and sink.failed == 0
        for piece in _pieces(path):
            piece_lines = piece.read_text(encoding="utf-8").splitlines(keepends=True)
            assert piece_lines, "an empty file is never rotated"
            assert sum(len(line) for line in piece_lines[:-1]) < cap  # over by one line at most


def test_age_rotates_from_the_first_line_and_never_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    clock = FakeClock()
    alerts = NumberedJsonLines(path, Rotation(60, 0, keep=5), clock)
    clock.now += 600
    assert not alerts.due()
    alerts.maybe_rotate()
    assert alerts.rotations == 0 and path.read_text() == ""  # nothing to rotate yet
    alerts.write(_record(1))  # age counts from here, not from the open
    clock.now += 59
    alerts.maybe_rotate()
    assert alerts.rotations == 0
    clock.now += 1
    alerts.maybe_rotate()
    assert alerts.rotations == 1
    assert path.read_text() == "" and json.loads(_pieces(path)[0].read_text())["n"] == 1
    alerts.write(_record(2))
    clock.now += 30
    alerts.write(_record(3))
    clock.now += 30
    alerts.write(_record(4))  # due before this line: it opens the next piece
    alerts.close()
    assert [[json.loads(line)["n"] for line in p.read_text().splitlines()]
            for p in [*_pieces(path), path]] == [[1], [2, 3], [4]]


def test_rotation_renames_the_file_and_creates_a_new_one_at_the_path(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    alerts = NumberedJsonLines(path, Rotation(0, 0, keep=2))
    alerts.write(_record(1))
    inode = path.stat().st_ino
    alerts.rotate()
    assert (tmp_path / "alerts.jsonl.1").stat().st_ino == inode  # renamed, not copied
    assert path.exists() and path.stat().st_ino != inode and path.read_text() == ""
    alerts.write(_record(2))
    assert json.loads(path.read_text())["n"] == 2  # flushed at once, before any close
    alerts.close()


def test_a_file_moved_away_by_another_tool_is_recreated_not_renamed(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    alerts = NumberedJsonLines(path, Rotation(0, 0, keep=2))
    alerts.write(_record(1))
    path.rename(tmp_path / "moved.jsonl")
    path.write_text("")  # e.g. logrotate's 'create'
    alerts.rotate()
    alerts.write(_record(2))
    alerts.close()
    assert alerts.rotations == 0 and _pieces(path) == []
    assert json.loads((tmp_path / "moved.jsonl").read_text())["n"] == 1
    assert json.loads(path.read_text())["n"] == 2


def test_a_failed_rename_is_counted_and_alerts_go_on_in_the_current_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "alerts.jsonl"
    alerts = NumberedJsonLines(path, Rotation(0, max_bytes=10, keep=2))
    sink = AlertSink(alerts)
    sink.send(_record(1))

    def refuse(*args: object) -> None:
        raise PermissionError("read-only directory")

    monkeypatch.setattr(os, "rename", refuse)
    sink.send(_record(2))
    sink.maybe_rotate()
    monkeypatch.undo()
    assert alerts.failures >= 1 and alerts.rotations == 0 and sink.failed == 0
    assert [json.loads(line)["n"] for line in path.read_text().splitlines()] == [1, 2]
    sink.send(_record(3))  # the rename works again: the full file is rotated first
    alerts.close()
    assert alerts.rotations == 1
    assert [json.loads(line)["n"] for line in _all_lines(path)] == [1, 2, 3]


def test_an_existing_file_is_appended_to_then_rotated_by_size(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    earlier = [json.dumps(_record(n, "earlier")) for n in range(5)]
    path.write_text("".join(line + "\n" for line in earlier))
    size = path.stat().st_size
    alerts = NumberedJsonLines(path, Rotation(0, max_bytes=size + 10, keep=3))
    assert alerts.piece_bytes == size
    alerts.write(_record(5))  # below the cap before this line: appended
    assert path.read_text().splitlines()[:5] == earlier
    alerts.write(_record(6))  # the cap is reached: the earlier run's file becomes .1
    alerts.close()
    assert _pieces(path)[0].read_text().splitlines()[:5] == earlier
    assert [json.loads(line)["n"] for line in _all_lines(path)] == list(range(7))


def test_pieces_of_an_earlier_run_are_shifted_and_bounded(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    for n in range(1, 6):
        path.with_name(f"alerts.jsonl.{n}").write_text(json.dumps(_record(-n)) + "\n")
    (tmp_path / "alerts.jsonl.notes").write_text("not a piece")
    alerts = NumberedJsonLines(path, Rotation(0, 0, keep=2))
    alerts.write(_record(0))
    alerts.rotate()
    alerts.close()
    assert [p.name for p in _pieces(path)] == ["alerts.jsonl.2", "alerts.jsonl.1"]
    assert [json.loads(line)["n"] for line in _all_lines(path)] == [-1, 0]
    assert (tmp_path / "alerts.jsonl.notes").exists() and alerts.deleted == 4


def test_a_stream_is_never_rotated(tmp_path: Path) -> None:
    stream = io.StringIO()
    sink = AlertSink(stream)
    sink.send(_record(1))
    sink.rotate()
    sink.maybe_rotate()
    sink.send(_record(2))
    assert [json.loads(line)["n"] for line in stream.getvalue().splitlines()] == [1, 2]
    assert sink.rotations == 0 and list(tmp_path.iterdir()) == []


def _sample_frames() -> list[Frame]:
    with CaptureSet([str(SAMPLE)]) as frames:
        return list(frames)


def _options(tmp_path: Path, **changes: object) -> LiveOptions:
    changes.setdefault("rotation", Rotation(0, 0, 0))
    return LiveOptions(out_dir=tmp_path / "out", trust_anchors=(str(ANCHOR),),
                       **changes)  # type: ignore[arg-type]


def test_live_auditor_rotate_and_tick_rotate_the_alerts_file(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    clock = FakeClock()
    alerts = NumberedJsonLines(path, Rotation(60, 0, keep=10), clock)
    frames = _sample_frames()
    with KeyCache(str(tmp_path / "k.sqlite")) as cache:
        auditor = LiveAuditor(_options(tmp_path), cache, AlertSink(alerts))
        fed = 0
        while auditor.alerts.count == 0:
            auditor.feed(frames[fed])
            fed += 1
        auditor.rotate()  # what SIGHUP does
        assert _pieces(path) == [tmp_path / "alerts.jsonl.1"] and path.read_text() == ""
        auditor.rotate()  # an empty file is not rotated again
        for frame in frames[fed:]:
            auditor.feed(frame)
        clock.now += 60
        auditor.tick(mono_ns=0)  # the alerts file is 60 s old by its own clock
        outcome = auditor.finish()
    alerts.close()
    assert outcome.stats["alerts_rotations"] == alerts.rotations == 2
    lines = _all_lines(path)
    assert len(lines) == outcome.stats["alerts"] > 1
    assert all(json.loads(line)["code"] for line in lines)


class _SighupSource:
    """All sample frames at the first poll; the second poll raises SIGHUP; then the end."""

    def __init__(self, frames: list[Frame]) -> None:
        self._polls = 0
        self._frames = frames

    def poll(self, timeout_s: float) -> list[Frame]:
        self._polls += 1
        if self._polls == 1:
            return self._frames
        if self._polls == 2:
            signal.raise_signal(signal.SIGHUP)
        return []

    @property
    def exhausted(self) -> bool:
        return self._polls >= 3

    def counters(self) -> dict[str, int]:
        return {"received": len(self._frames), "dropped": 0}

    def close(self) -> None:
        pass


def test_sighup_in_run_live_rotates_an_appended_alerts_file(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    earlier = json.dumps(_record(-1, "an earlier run"))
    path.write_text(earlier + "\n")
    outcome = run_live(_options(tmp_path, alerts_path=path, rotation=Rotation(0, 0, 4)),
                       source=_SighupSource(_sample_frames()))
    assert outcome.stats["alerts_rotations"] == 1
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["alerts_rotations"] == 1 and stats["final"]
    [piece] = _pieces(path)
    lines = _all_lines(path)
    assert lines[0] == earlier and piece.read_text().splitlines()[0] == earlier
    assert len(lines) == 1 + outcome.stats["alerts"] and outcome.stats["alerts"] > 0
    assert all(json.loads(line)["code"] for line in lines)


SAMPLE = Path(__file__).resolve().parent.parent / "captures" / "sample-dnssec.pcap"


def test_an_unwritable_alerts_path_is_a_clear_error_naming_it(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from auditor.cli import cli

    assert SAMPLE.exists()
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    target = blocker / "alerts.jsonl"
    result = CliRunner().invoke(cli, ["live", "--read", str(SAMPLE), "--out", str(tmp_path / "out"),
                                      "--alerts", str(target)])
    assert result.exit_code == 3  # EXIT_INPUT, as for other unusable inputs
    assert f"--alerts {target}: cannot open for writing" in result.output
