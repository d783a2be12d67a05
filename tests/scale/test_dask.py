"""``audit --scheduler local:2``: a LocalCluster of two worker processes over eight rotated
pieces of a lab capture judges as one process over the whole capture (issue 15)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import duckdb
import pytest
from click.testing import CliRunner

from auditor.cli import cli
from auditor.pipeline import AuditOptions, run_audit
from tests.scale.helpers import lines

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "captures" / "sample-dnssec.pcap"
ANCHOR = ROOT / "captures" / "sample-dnssec.anchor"
FRAME_NUMBERS = {"frame", "frames", "query_frame", "capture", "upstream_frames"}
"""Fields that number frames within each piece (or name the piece): they differ from the
whole capture's by construction."""
FRAME_IN_TEXT = re.compile(r"frames? [0-9][0-9, -]*")


def _without_frame_numbers(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_frame_numbers(v) for k, v in value.items()
                if k not in FRAME_NUMBERS}
    if isinstance(value, list):
        return [_without_frame_numbers(v) for v in value]
    if isinstance(value, str):
        return FRAME_IN_TEXT.sub("frame N", value)  # explanations cite frames too
    return value


def _rotated(pieces: Path, frames: int) -> Path:
    """The sample cut into pieces of ``frames`` frames in ``pieces`` (as a tap rotates)."""
    pieces.mkdir()
    subprocess.run(["editcap", "-c", str(frames), str(SAMPLE), str(pieces / "sample.pcap")],
                   check=True)
    return pieces


@pytest.mark.slow
def test_local_cluster_over_rotated_pieces_equals_one_process(tmp_path: Path) -> None:
    # 155 frames in 8 pieces of 20: queries and their answers, TCP streams cut at boundaries.
    pieces = _rotated(tmp_path / "pieces", 20)
    assert len(list(pieces.glob("*.pcap"))) == 8
    run_audit(AuditOptions(captures=(str(SAMPLE),), out_dir=tmp_path / "one",
                           trust_anchors=(str(ANCHOR),), report_formats=frozenset()))
    result = CliRunner().invoke(cli, [
        "audit", str(pieces / "*.pcap"), "--scheduler", "local:2", "--trust-anchor",
        str(ANCHOR), "--out", str(tmp_path / "cluster"), "-q"])
    assert result.exit_code == 0, result.output
    for name in ("responses.jsonl", "findings.jsonl"):
        one = lines(tmp_path / "one" / name)
        cluster = lines(tmp_path / "cluster" / name)
        assert [_without_frame_numbers(r) for r in cluster] == [
            _without_frame_numbers(r) for r in one], name
    verdicts = [r["verdict"] for r in lines(tmp_path / "one" / "responses.jsonl")]
    assert {"secure", "bogus", "indeterminate"} <= set(verdicts)
    # One table over every partition (capture date and piece), as DuckDB reads it.
    dataset = tmp_path / "cluster" / "dataset" / "responses"
    assert len(list(dataset.glob("date=*/capture=*/*.parquet"))) == 8
    table = duckdb.sql(
        f"SELECT verdict, count(*) AS n, count(DISTINCT capture) AS pieces FROM read_parquet("
        f"'{dataset}/*/*/*.parquet', hive_partitioning = true) GROUP BY verdict").fetchall()
    assert sum(n for _, n, _ in table) == len(verdicts)
    assert {verdict for verdict, _, _ in table} == set(verdicts)
    assert len(list(dataset.glob("date=*/capture=*/responses.jsonl"))) == 8


def test_a_worker_tunes_its_collector_before_its_first_task(tmp_path: Path) -> None:
    # distributed starts workers with CPython's collector thresholds; the first task of a run
    # sets the command line's (``memo.GC_THRESHOLDS``), once.
    import gc

    from auditor.memo import GC_THRESHOLDS
    from auditor.scale.dask import _on_worker
    from auditor.scale.work import ShardSpec

    before = gc.get_threshold()
    spec = ShardSpec(AuditOptions(captures=(str(SAMPLE),), out_dir=tmp_path), 0, 2)
    try:
        gc.set_threshold(700, 10, 10)
        seen = _on_worker(lambda given: (given is spec, gc.get_threshold()), "run")(spec)
        assert seen == (True, GC_THRESHOLDS)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


@pytest.mark.slow
def test_captures_behind_an_fsspec_url_are_fetched_under_their_names(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A filesystem other than the local one (fsspec's in-memory one standing in for s3:// or
    # gs://): the glob is expanded on it, the client and each worker fetch the pieces into
    # their caches under their base names, and the audit equals one over the local pieces.
    # The cluster's workers are threads of this process, so they see the same memory.
    import tempfile

    import fsspec
    from distributed import Client, LocalCluster

    from auditor.scale import dask as on_dask
    from auditor.scale.dask import WORKER_CACHE, expand_captures, run_on_dask

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the workers' $TMPDIR
    fetched: list[str] = []
    fetch = on_dask._fetched

    def noting(url: str, cache_dir: str) -> str:
        local = fetch(url, cache_dir)
        fetched.append(local)
        return local

    monkeypatch.setattr(on_dask, "_fetched", noting)

    pieces = _rotated(tmp_path / "pieces", 40)
    memory = fsspec.filesystem("memory")
    for piece in sorted(pieces.glob("*.pcap")):
        memory.pipe(f"/taps/{piece.name}", piece.read_bytes())
    try:
        found = expand_captures(["memory://taps/*.pcap"])
        assert [url.rsplit("/", 1)[1] for url in found] == sorted(
            p.name for p in pieces.glob("*.pcap"))
        assert all(url.startswith("memory://") for url in found)
        options = AuditOptions(captures=("memory://taps/*.pcap",), out_dir=tmp_path / "remote",
                               trust_anchors=(str(ANCHOR),), report_formats=frozenset())
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                          dashboard_address=None) as cluster, Client(cluster):
            run_on_dask(options, cluster.scheduler_address)
    finally:
        memory.rm("/taps", recursive=True)
    local = tuple(str(p) for p in sorted(pieces.glob("*.pcap")))
    run_audit(AuditOptions(captures=local, out_dir=tmp_path / "local",
                           trust_anchors=(str(ANCHOR),), report_formats=frozenset()))
    for name in ("responses.jsonl", "findings.jsonl"):
        assert lines(tmp_path / "remote" / name) == lines(tmp_path / "local" / name), name
    captures = {r["capture"] for r in lines(tmp_path / "remote" / "responses.jsonl")}
    assert captures == {p.name for p in pieces.glob("*.pcap")}
    # The workers fetched every piece into their cache, which the run then removed (a week of
    # rotated captures would otherwise stay on every worker's disk).
    workers = tmp_path / WORKER_CACHE
    assert sum(path.startswith(str(workers)) for path in fetched) >= len(captures)
    assert workers.is_dir() and not any(workers.iterdir())


def test_remote_captures_with_one_base_name_or_rewritten_are_never_confused(
        tmp_path: Path) -> None:
    # Two taps' ``dns.pcap`` are two captures; a capture rewritten under its URL (rotation
    # reusing names) is fetched again: a worker's cache never serves another file's bytes.
    import fsspec

    from auditor.scale.dask import localised

    memory = fsspec.filesystem("memory")
    cache = str(tmp_path / "cache")
    try:
        memory.pipe("/tap1/dns.pcap", b"first tap")
        memory.pipe("/tap2/dns.pcap", b"second tap")
        first, second = localised(["memory://tap1/dns.pcap", "memory://tap2/dns.pcap"], cache)
        assert Path(first).name == Path(second).name == "dns.pcap"  # the name reports cite
        assert (Path(first).read_bytes(), Path(second).read_bytes()) == (b"first tap",
                                                                        b"second tap")
        assert localised(["memory://tap1/dns.pcap"], cache) == (first,)  # fetched once
        memory.rm("/tap1/dns.pcap")
        memory.pipe("/tap1/dns.pcap", b"the next day, longer")
        (again,) = localised(["memory://tap1/dns.pcap"], cache)
        assert Path(again).read_bytes() == b"the next day, longer"
        assert Path(first).read_bytes() == b"first tap"
    finally:
        memory.rm("/tap1", recursive=True)
        memory.rm("/tap2", recursive=True)


def test_a_copy_cut_short_is_refused_and_not_kept(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import fsspec
    from fsspec.implementations.memory import MemoryFileSystem

    from auditor.errors import CaptureError
    from auditor.scale.dask import localised

    def cut_short(self: Any, rpath: str, lpath: str, **kwargs: Any) -> None:
        Path(lpath).write_bytes(self.cat_file(rpath)[:3])

    memory = fsspec.filesystem("memory")
    cache = tmp_path / "cache"
    try:
        memory.pipe("/tap/dns.pcap", b"a whole capture")
        monkeypatch.setattr(MemoryFileSystem, "get_file", cut_short)
        with pytest.raises(CaptureError, match="fetched 3 bytes where the store announced 15"):
            localised(["memory://tap/dns.pcap"], str(cache))
        # No copy, whole or cut (the host's empty lock file stays with the run's cache).
        assert not [p for p in cache.rglob("*") if p.is_file() and p.name != ".lock"]
        monkeypatch.undo()
        (whole,) = localised(["memory://tap/dns.pcap"], str(cache))
        assert Path(whole).read_bytes() == b"a whole capture"
    finally:
        memory.rm("/tap", recursive=True)


@pytest.mark.parametrize("scheduler", ["local:abc", "local:0", "local:-2"])
def test_a_local_cluster_without_a_worker_count_is_a_usage_error(
        tmp_path: Path, scheduler: str) -> None:
    from click.testing import CliRunner

    from auditor.cli import cli

    result = CliRunner().invoke(cli, ["audit", str(SAMPLE), "--scheduler", scheduler,
                                      "--out", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert f"{scheduler}: local:N needs a number of worker processes" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("address", ["nonsense::", "tcp://127.0.0.1:9"])
def test_a_scheduler_that_cannot_be_reached_is_said_so(tmp_path: Path, address: str) -> None:
    # Not "cannot write OUT" (what an OSError from the run used to say), not a traceback.
    import dask

    from auditor.errors import ConfigError
    from auditor.scale.dask import run_on_dask

    options = AuditOptions(captures=(str(SAMPLE),), out_dir=tmp_path,
                           report_formats=frozenset())
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}), pytest.raises(
            ConfigError, match=f"--scheduler {address}: no Dask scheduler reached there"):
        run_on_dask(options, address)


def test_a_task_whose_workers_kept_dying_is_exit_70_saying_the_outputs_are_incomplete(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # distributed gives up on a task after its workers died allowed-failures + 1 times and
    # raises KilledWorker in the client: that was "internal error" and a traceback.
    from types import SimpleNamespace

    from distributed import KilledWorker

    from auditor.scale import dask as on_dask

    def dies(*args: object) -> None:
        raise KilledWorker("run_task-1", SimpleNamespace(address="tcp://127.0.0.1:4711"), 3)

    monkeypatch.setattr(on_dask, "run_audit", dies)
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["audit", str(SAMPLE), "--scheduler", "local:1",
                                      "--out", str(out)])
    assert result.exit_code == 70, result.output
    assert ("the cluster gave up on a task after the workers running it died 4 times (the "
            "last: tcp://127.0.0.1:4711") in result.output
    assert f"the outputs in {out} are incomplete" in result.output
    assert "Traceback" not in result.output


def _fetch_in_a_child(url: str, cache_dir: str) -> None:
    from auditor.scale.dask import _fetched

    _fetched(url, cache_dir)


def test_the_worker_processes_of_one_host_fetch_a_capture_once(tmp_path: Path) -> None:
    # Three worker processes of one host ask for the same capture at once, through a
    # filesystem that counts its downloads and makes them meet at a barrier first: without a
    # lock between processes all three reach it and download.
    import multiprocessing
    import threading

    import fsspec
    from fsspec.implementations.local import LocalFileSystem

    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(3)
    counter = tmp_path / "downloads"

    class CountingFileSystem(LocalFileSystem):
        protocol = "countingtest"

        @classmethod
        def _strip_protocol(cls, path: Any) -> Any:
            return super()._strip_protocol(str(path).removeprefix("countingtest://"))

        def get_file(self, rpath: Any, lpath: Any, **kwargs: Any) -> Any:
            with counter.open("a") as count:
                count.write("download\n")
            try:  # all three meet here unless a lock lets one in at a time
                barrier.wait(timeout=2)
            except threading.BrokenBarrierError:
                pass
            return super().get_file(rpath, lpath, **kwargs)

    fsspec.register_implementation("countingtest", CountingFileSystem, clobber=True)
    url = f"countingtest://{SAMPLE}"
    cache = tmp_path / "cache"
    children = [context.Process(target=_fetch_in_a_child, args=(url, str(cache)))
                for _ in range(3)]
    for child in children:
        child.start()
    for child in children:
        child.join(30)
    assert [child.exitcode for child in children] == [0, 0, 0]
    assert counter.read_text().splitlines() == ["download"]
    copies = [p for p in cache.rglob("*") if p.is_file() and p.name != ".lock"]
    assert [p.name for p in copies] == [SAMPLE.name]
    assert copies[0].read_bytes() == SAMPLE.read_bytes()


def test_a_local_capture_a_worker_cannot_see_is_named_with_its_host(tmp_path: Path) -> None:
    # The client read it; a worker on another host has no such path: say where the problem
    # is (the worker's host, the shared store), not just "no such file".
    import socket

    from auditor.errors import CaptureError
    from auditor.scale.dask import _on_worker
    from auditor.scale.work import ShardSpec

    missing = str(tmp_path / "on-the-client-only.pcap")
    spec = ShardSpec(AuditOptions(captures=(str(SAMPLE), missing), out_dir=tmp_path), 0, 2)
    with pytest.raises(CaptureError) as raised:
        _on_worker(lambda given: pytest.fail("the task ran"), "run")(spec)
    assert str(raised.value).startswith(
        f"{missing}: not on worker host {socket.gethostname()}: local captures must be on a "
        f"store every worker reaches")
