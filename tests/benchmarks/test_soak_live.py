"""The pure parts of the live soak benchmark's tshark reference: dumpcap's pcapng counters,
tshark's stderr summary and field rows, the process tree, and the sweep's stopping rule."""

from __future__ import annotations

import argparse
import importlib.util
import os
import struct
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditor.capture.live import RCVBUF_BYTES, default_filter

_SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "soak_live.py"


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


soak = _load("bench_soak_live", _SCRIPT)


def _block(order: str, kind: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    length = len(body) + 12
    return struct.pack(order + "II", kind, length) + body + struct.pack(order + "I", length)


def _option(order: str, code: int, value: bytes) -> bytes:
    return struct.pack(order + "HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def _pcapng(order: str, frames: int, simple: int, isb: tuple[int, int] | None,
            comment: bytes) -> bytes:
    """A pcapng as dumpcap writes it: section, interface, packets, then the statistics."""
    out = _block(order, 0x0A0D0D0A,
                 struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1))
    out += _block(order, 1, struct.pack(order + "HHI", 1, 0, 262_144))
    for number in range(frames):
        data = bytes([number % 256]) * (60 + number % 7)
        out += _block(order, 6, struct.pack(order + "IIIII", 0, 0, number, len(data),
                                            len(data)) + data)
    for _ in range(simple):
        out += _block(order, 3, struct.pack(order + "I", 60) + b"\0" * 60)
    if isb is not None:
        options = _option(order, 1, comment)
        options += _option(order, 2, struct.pack(order + "II", 1, 2))  # isb_starttime
        options += _option(order, 4, struct.pack(order + "Q", isb[0]))
        options += _option(order, 5, struct.pack(order + "Q", isb[1]))
        options += _option(order, 0, b"")
        out += _block(order, 5, struct.pack(order + "III", 0, 1, 2) + options)
    return out


@settings(max_examples=40, deadline=None)
@given(order=st.sampled_from(["<", ">"]), frames=st.integers(0, 40), simple=st.integers(0, 3),
       received=st.integers(0, 2**40), dropped=st.integers(0, 2**40),
       comment=st.binary(max_size=37))
def test_pcapng_counts_frames_and_the_statistics_block(
        tmp_path_factory: pytest.TempPathFactory, order: str, frames: int, simple: int,
        received: int, dropped: int, comment: bytes) -> None:
    path = tmp_path_factory.mktemp("pcapng") / "dumpcap.pcapng"
    path.write_bytes(_pcapng(order, frames, simple, (received, dropped), comment))
    assert soak.read_pcapng_counts(path) == {
        "frames": frames + simple, "received": received, "dropped": dropped}


def test_pcapng_without_statistics_has_no_kernel_counts(tmp_path: Path) -> None:
    path = tmp_path / "cut.pcapng"
    path.write_bytes(_pcapng("<", 5, 0, None, b""))
    assert soak.read_pcapng_counts(path) == {"frames": 5, "received": None, "dropped": None}


def test_tshark_stderr_counts_as_tshark_4_prints_them() -> None:
    # Source: tshark 4.0.17 stopped with SIGINT on a veth pair, dumpcap stopped meanwhile.
    stderr = ('Running as user "root" and group "root". This could be dangerous.\n'
              "Capturing on 'soak-cap0'\n"
              " ** (tshark:7098) 06:56:56.719793 [Main MESSAGE] -- Capture started.\n"
              "4250 packets dropped from soak-cap0\n"
              "tshark: \n"
              "1444 packets captured\n")
    assert soak.tshark_reported(stderr) == {"reported_captured": 1444, "reported_dropped": 4250}


def test_tshark_stderr_without_drops_or_counts() -> None:
    assert soak.tshark_reported("1 packet captured\n") == {
        "reported_captured": 1, "reported_dropped": 0}
    assert soak.tshark_reported("tshark: killed\n") == {
        "reported_captured": None, "reported_dropped": 0}


def test_rows_count_frames_responses_and_the_last_frame(tmp_path: Path) -> None:
    rows = tmp_path / "rows.tsv"
    rows.write_bytes(b"1\t0xd730\tstatic4.media15.example\t\t0\n"
                     b"2\t0xd730\tstatic4.media15.example\t0\t1\n"
                     b"9\t0x0001,0x0002\ta.example,b.example\t0,3\t1,1\n"
                     b"12\t0x0003\tc.example\t\tTrue\n")
    assert soak.count_rows(rows) == {"rows": 4, "responses": 3, "last_frame_number": 12}


def test_tshark_asks_our_filter_and_our_buffer_in_mib() -> None:
    command = soak.tshark_command()
    assert command[command.index("-f") + 1] == default_filter()
    assert int(command[command.index("-B") + 1]) << 20 == RCVBUF_BYTES
    assert command[command.index("-Y") + 1] == "dns"


def test_process_tree_holds_children() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        tree = soak.process_tree(os.getpid())
        assert tree[0] == os.getpid()
        assert child.pid in tree
        assert soak.tree_rss(os.getpid()) > soak.rss_of(os.getpid())
    finally:
        child.kill()
        child.wait()


def _args(**overrides: Any) -> argparse.Namespace:
    values = {"rates": [1000, 2000, 3000, 4000], "seconds": 2.0, "hold": 3.0,
              "reference_only": False, "no_reference": False} | overrides
    return argparse.Namespace(**values)


def _fake_tools(monkeypatch: pytest.MonkeyPatch, ours_limit: int,
                tshark_limit: int) -> list[tuple[str, int]]:
    """Our tool clean up to ``ours_limit`` pps, tshark up to ``tshark_limit``; the calls."""
    calls: list[tuple[str, int]] = []

    def ours(capture: Path, rate: int, seconds: float, hold: float, anchors: Path | None
             ) -> dict:
        calls.append(("ours", rate))
        clean = rate <= ours_limit
        return {"rate_pps": rate, "kernel_dropped": 0 if clean else 5, "frames_read": 10,
                "kernel_received": 10 if clean else 15, "exit_code": 0, "drain_s": 1.7}

    def tshark(capture: Path, rate: int, seconds: float) -> dict:
        calls.append(("tshark", rate))
        return {"zero_drop": rate <= tshark_limit, "rss_mib_over_time": [(1.0, 2.0)]}

    monkeypatch.setattr(soak, "one_rate", ours)
    monkeypatch.setattr(soak, "reference_rate", tshark)
    return calls


def test_sweep_runs_each_tool_up_to_its_first_failure(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    calls = _fake_tools(monkeypatch, ours_limit=1000, tshark_limit=3000)
    results, best, tshark_best = soak.sweep(Path("x.pcap"), _args(), None)
    assert (best, tshark_best) == (1000, 3000)
    assert calls == [("ours", 1000), ("tshark", 1000), ("ours", 2000), ("tshark", 2000),
                     ("tshark", 3000), ("tshark", 4000)]
    assert [row["zero_drop"] for row in results] == [True, False, None, None]
    assert results[2]["skipped"] == soak.FAILED_BELOW
    assert "rss_mib_over_time" not in capsys.readouterr().out


def test_sweep_without_reference_keeps_the_old_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _fake_tools(monkeypatch, ours_limit=2000, tshark_limit=0)
    results, best, tshark_best = soak.sweep(Path("x.pcap"), _args(no_reference=True), None)
    assert (best, tshark_best) == (2000, None)
    assert calls == [("ours", 1000), ("ours", 2000), ("ours", 3000)]
    assert all("tshark" not in row for row in results)


def test_sweep_reference_only(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _fake_tools(monkeypatch, ours_limit=10**6, tshark_limit=2000)
    results, best, tshark_best = soak.sweep(Path("x.pcap"), _args(reference_only=True), None)
    assert (best, tshark_best) == (None, 2000)
    assert calls == [("tshark", 1000), ("tshark", 2000), ("tshark", 3000)]
    assert all(row["zero_drop"] is None for row in results)
    assert results[-1]["tshark"]["zero_drop"] is False


def test_jobs_comparison_alternates_and_stops_each_value_at_its_first_failure(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, tuple[str, ...]]] = []

    def ours(capture: Path, rate: int, seconds: float, hold: float, anchors: Path | None,
             *, live_args: tuple[str, ...] = ()) -> dict:
        calls.append((rate, live_args))
        clean = rate <= (2000 if live_args[1] == "1" else 3000)
        return {"rate_pps": rate, "kernel_dropped": 0, "frames_read": 10,
                "kernel_received": 10 if clean else 15, "exit_code": 0, "drain_s": 1.7}

    monkeypatch.setattr(soak, "one_rate", ours)
    report = soak.compare_jobs(Path("x.pcap"), _args(jobs=[1, 2], live_arg=["-v"]), None)
    assert report["best_zero_drop_pps_by_jobs"] == {"1": 2000, "2": 3000}
    assert calls == [(1000, ("--jobs", "1", "-v")), (1000, ("--jobs", "2", "-v")),
                     (2000, ("--jobs", "1", "-v")), (2000, ("--jobs", "2", "-v")),
                     (3000, ("--jobs", "1", "-v")), (3000, ("--jobs", "2", "-v")),
                     (4000, ("--jobs", "2", "-v"))]


def test_a_response_lost_between_the_two_processes_is_not_zero_drop() -> None:
    row = {"kernel_dropped": 0, "frames_read": 10, "kernel_received": 10, "exit_code": 0,
           "drain_s": 1.7, "internal_drops": {"reporter_queue_full": 0}}
    assert soak.ours_clean(row)
    assert not soak.ours_clean(row | {"internal_drops": {"reporter_queue_full": 3}})
