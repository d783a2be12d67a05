"""``live --jobs 2`` (issue 15): the reporting side in a second process gives the responses,
findings and alerts of ``--jobs 1`` (lines compared sorted, the run id apart: the timer, driven
by the wall clock, may release held responses and merged findings in another order in any
two runs); SIGHUP, a full queue and a dead reporting process behave as documented."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from auditor.capture.frame import Frame
from auditor.capture.sources import CaptureReader
from auditor.live import AlertFormat, LiveOptions, LiveOutcome, run_live
from auditor.report.rolling import Rotation
from auditor.scale.pipe import ReporterFailed
from tests.forgery.test_evidence_output import _race_capture

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "captures" / "sample-dnssec.pcap"
ANCHOR = ROOT / "captures" / "sample-dnssec.anchor"
FIXTURES = ROOT / "tests" / "differential" / "fixtures"
_RUN_ID = re.compile(r"/\d{8}T\d{6}Z/")
OUTPUTS = ("responses-*.jsonl", "findings-*.jsonl", "alerts.jsonl*")


def _options(capture: Path, anchor: Path, out: Path, **extra: Any) -> LiveOptions:
    return LiveOptions(out_dir=out, read=str(capture), trust_anchors=(str(anchor),),
                       alerts_path=out / "alerts.jsonl", **extra)


def _lines(out: Path, pattern: str) -> list[str]:
    found = [line for path in sorted(out.glob(pattern)) for line in path.read_text().splitlines()]
    return sorted(_RUN_ID.sub("/RUN/", line) for line in found)


def _both(capture: Path, anchor: Path, tmp_path: Path,
          **extra: Any) -> tuple[LiveOutcome, LiveOutcome]:
    one = run_live(_options(capture, anchor, tmp_path / "one", **extra))
    two = run_live(_options(capture, anchor, tmp_path / "two", jobs=2, **extra))
    for pattern in OUTPUTS:
        assert _lines(tmp_path / "one", pattern) == _lines(tmp_path / "two", pattern), pattern
    for key in ("frames_read", "responses_written", "findings_written", "alerts",
                "alerts_by_code", "internal_drops"):
        if key == "internal_drops":
            assert two.stats[key].pop("reporter_queue_full") == 0
        assert one.stats[key] == two.stats[key], key
    assert one.stats["validation"]["verdicts"] == two.stats["validation"]["verdicts"]
    assert one.stats["validation"]["codes"] == two.stats["validation"]["codes"]
    assert "processes" not in one.stats
    assert two.stats["processes"]["jobs"] == 2
    assert two.stats["processes"]["capture"]["pid"] == os.getpid()
    assert two.stats["processes"]["reporter"]["pid"] != os.getpid()
    return one, two


def test_two_processes_equal_one_on_the_sample_capture(tmp_path: Path) -> None:
    one, two = _both(SAMPLE, ANCHOR, tmp_path)
    # A repeated message crosses as a reference to the reporting process's copy.
    assert two.stats["processes"]["messages"]["sent_again"] > 0
    assert two.stats["processes"]["messages"]["parsed_again"] == 0
    assert one.stats["alerts"] > 0 and one.stats["validation"]["verdicts"]["bogus"] > 0
    assert two.stats["processes"]["queue"]["dropped"] == {
        "responses": 0, "queries": 0, "anomalies": 0, "frames": 0, "unpicklable": 0}
    assert two.stats["processes"]["queue"]["full_policy"] == "wait"  # a stream never drops


def test_two_processes_equal_one_in_eve_form_with_evidence(tmp_path: Path) -> None:
    # A forged answer racing the genuine one: an alert, and its frames in the evidence pcapng
    # (the capturing process sends each frame on for the reporting side's ring).
    capture = tmp_path / "race.pcap"
    _race_capture(capture)
    one, two = _both(capture, ANCHOR, tmp_path, alert_format=AlertFormat.EVE, evidence=True)
    assert one.stats["alerts"] > 0
    kept = [[(frame.ts_ns, frame.data) for path in sorted(out.glob("evidence-*.pcapng"))
             for frame in CaptureReader(str(path))] for out in (tmp_path / "one", tmp_path / "two")]
    assert kept[0] == kept[1] != []


@pytest.mark.slow
@pytest.mark.parametrize(
    "fixture", sorted(p.parent.name for p in FIXTURES.glob("*/capture.pcap"))
)
def test_two_processes_equal_one_on_the_lab_captures(fixture: str, tmp_path: Path) -> None:
    directory = FIXTURES / fixture
    _both(directory / "capture.pcap", directory / "root.ds", tmp_path)


def _frames() -> list[Frame]:
    with CaptureReader(str(SAMPLE)) as reader:
        return list(reader)


class _Source:
    """A capture (not a stream): the sample's frames over several polls, renumbered so each
    poll is new traffic; ``at`` maps a poll number to something done before it."""

    def __init__(self, rounds: int, at: dict[int, Any] | None = None) -> None:
        self._frames = _frames()
        self._rounds = rounds
        self._at = at or {}
        self.polls = 0

    def poll(self, timeout_s: float) -> list[Frame]:
        self.polls += 1
        action = self._at.get(self.polls)
        if action is not None:
            action()
        if self.polls > self._rounds:
            return []
        step = (self.polls - 1) * len(self._frames)
        return [dataclasses.replace(f, number=f.number + step) for f in self._frames]

    @property
    def exhausted(self) -> bool:
        return self.polls > self._rounds

    def counters(self) -> dict[str, int]:
        sent = min(self.polls, self._rounds) * len(self._frames)
        return {"received": sent, "dropped": 0}

    def close(self) -> None:
        pass


def _reporter() -> multiprocessing.process.BaseProcess:
    [child] = [p for p in multiprocessing.active_children()
               if p.name == "dnssec-auditor-reporter"]
    return child


def _signal_reporter(signum: int) -> None:
    pid = _reporter().pid
    assert pid is not None
    os.kill(pid, signum)


def test_sighup_rotates_the_outputs_of_the_reporting_process(tmp_path: Path) -> None:
    options = _options(SAMPLE, ANCHOR, tmp_path / "out", jobs=2, rotation=Rotation(0, 0, 4))
    outcome = run_live(options, source=_Source(
        2, {2: lambda: signal.raise_signal(signal.SIGHUP)}))
    assert outcome.stats["alerts_rotations"] == 1
    assert len(list((tmp_path / "out").glob("responses-*.jsonl"))) == 2  # a piece per round
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["final"] and stats["responses_written"] == outcome.stats["responses_written"]


def test_a_full_queue_on_a_capture_drops_and_counts_never_silently(tmp_path: Path) -> None:
    # The reporting process is stopped while the capture goes on: the queue (a few bytes
    # here) and the pipe fill, and later batches lose their data events, counted by kind.
    rounds = 40
    one = run_live(_options(SAMPLE, ANCHOR, tmp_path / "one"), source=_Source(rounds))
    options = dataclasses.replace(_options(SAMPLE, ANCHOR, tmp_path / "two", jobs=2),
                                  read=None, queue_bytes=1)
    two = run_live(options, source=_Source(rounds, {
        1: lambda: _signal_reporter(signal.SIGSTOP),
        rounds: lambda: _signal_reporter(signal.SIGCONT)}))
    dropped = two.stats["processes"]["queue"]["dropped"]
    assert two.stats["processes"]["queue"]["full_policy"] == "drop"
    assert dropped["responses"] == two.stats["internal_drops"]["reporter_queue_full"] > 0
    assert dropped["queries"] > 0
    # every response judged is either written or counted as dropped
    assert (two.stats["responses_written"] + dropped["responses"]
            == one.stats["responses_written"])
    assert two.stats["frames_read"] == one.stats["frames_read"] == rounds * 155


def test_a_killed_reporting_process_is_reported_not_waited_for(tmp_path: Path) -> None:
    options = _options(SAMPLE, ANCHOR, tmp_path / "out", jobs=2)
    with pytest.raises(ReporterFailed,
                       match=r"^--jobs 2: the reporting process .*killed by signal 9"):
        run_live(options, source=_Source(1_000, {3: lambda: _signal_reporter(signal.SIGKILL)}))
    assert multiprocessing.active_children() == []


def test_an_unwritable_alerts_path_is_a_clear_error_from_either_process(
        tmp_path: Path) -> None:
    from click.testing import CliRunner

    from auditor.cli import cli

    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    target = blocker / "alerts.jsonl"
    result = CliRunner().invoke(cli, ["live", "--jobs", "2", "--read", str(SAMPLE), "--out",
                                      str(tmp_path / "out"), "--alerts", str(target)])
    assert result.exit_code == 3
    assert f"--alerts {target}: cannot open for writing" in result.output
    assert multiprocessing.active_children() == []


def _start(tmp_path: Path, port: int) -> subprocess.Popen[bytes]:
    """``live --jobs 2`` reading the sample from a pipe that stays open, with metrics."""
    process = subprocess.Popen(
        [sys.executable, "-m", "auditor", "live", "--jobs", "2", "--read", "-",
         "--trust-anchor", str(ANCHOR), "--out", str(tmp_path / "out"), "--alerts",
         str(tmp_path / "out" / "alerts.jsonl"), "--metrics-port", str(port)],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
    assert process.stdin is not None
    process.stdin.write(SAMPLE.read_bytes())
    process.stdin.flush()  # the pipe stays open: the run goes on
    return process


def _wait_for_responses(port: int, count: int) -> None:
    """Until the metrics (served by the reporting process) count ``count`` responses."""
    url = f"http://127.0.0.1:{port}/metrics"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                text = response.read().decode()
        except OSError:
            text = ""
        total = sum(float(line.split()[-1]) for line in text.splitlines()
                    if line.startswith("dnssec_auditor_responses_total{"))
        if total >= count:
            return
        time.sleep(0.2)
    raise AssertionError(f"the metrics never counted {count} responses")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _children(pid: int) -> list[int]:
    return [int(n) for n in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
def test_sigterm_drains_both_processes_and_loses_nothing(tmp_path: Path) -> None:
    port = _free_port()
    process = _start(tmp_path, port)
    try:
        _wait_for_responses(port, 63)  # every response of the sample, held ones released
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["final"] and stats["frames_read"] == 155
    assert stats["responses_written"] == 63 and stats["alerts"] == 2
    assert len((tmp_path / "out" / "alerts.jsonl").read_text().splitlines()) == 2
    assert stats["processes"]["jobs"] == 2 and stats["internal_drops"]["reporter_queue_full"] == 0
    assert process.stderr is not None
    assert "stopping on SIGTERM" in process.stderr.read().decode()


@pytest.mark.slow
def test_the_reporting_process_closes_its_outputs_when_the_capturing_one_dies(
        tmp_path: Path) -> None:
    port = _free_port()
    process = _start(tmp_path, port)
    try:
        _wait_for_responses(port, 63)
        [reporter] = _children(process.pid)
    finally:
        process.kill()
        process.wait(30)
    deadline = time.monotonic() + 30
    while _running(reporter) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _running(reporter), "the reporting process outlived the capturing one"
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["final"] and stats["responses_written"] == 63
    assert process.stderr is not None
    assert "ended without finishing the run" in process.stderr.read().decode()


def test_an_event_that_cannot_cross_is_dropped_and_counted_not_fatal(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from auditor.scale.live import ReporterLink

    query = ReporterLink.query
    calls = []

    def one_broken(link: ReporterLink, message: Any) -> None:
        calls.append(message)
        query(link, (lambda: None) if len(calls) == 1 else message)  # a lambda: no pickle

    monkeypatch.setattr(ReporterLink, "query", one_broken)
    outcome = run_live(_options(SAMPLE, ANCHOR, tmp_path / "out", jobs=2))
    assert outcome.stats["processes"]["queue"]["dropped"]["unpicklable"] == 1
    assert outcome.stats["responses_written"] == 63
    # The failed attempt had put its messages in the window's mirror; both windows started
    # again, so none crossed as a reference to a message the other side never got.
    messages = outcome.stats["processes"]["messages"]
    assert messages["parsed_again"] == 0
    assert messages["sent_whole"] > 0 and messages["sent_again"] > 0
