"""``audit --jobs 2`` as a pipeline of two processes (``auditor/scale/reporting.py``): failures
of either process are reported, never waited for; errors in a record are contained as with
``--jobs 1``. (Equal outputs: ``test_jobs.py``.)"""

from __future__ import annotations

import dataclasses
import gc
import json
import multiprocessing
import os
import select
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from auditor import pipeline
from auditor.cli import cli
from auditor.engine.judge import Rendered
from auditor.errors import AuditorError
from auditor.evidence import ResponseEvidence
from auditor.findings.validation import ValidationFindings
from auditor.pipeline import AuditOptions, FileReports, run_audit
from auditor.report.records import ResponseRecords
from auditor.scale import reporting
from auditor.scale.jobs import run_jobs
from auditor.scale.pipe import ReporterFailed
from auditor.scale.work import ShardSpec, harvest
from auditor.validate import Verdict
from tests.scale.helpers import assert_same_outputs, bailiwick_traffic, lines, write_pcap

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "captures" / "sample-dnssec.pcap"
ANCHOR = ROOT / "captures" / "sample-dnssec.anchor"


def _options(out: Path) -> AuditOptions:
    return AuditOptions(captures=(str(SAMPLE),), out_dir=out, trust_anchors=(str(ANCHOR),),
                        report_formats=frozenset())


def test_the_key_pass_is_shared_and_the_split_recorded(tmp_path: Path) -> None:
    run_jobs(_options(tmp_path / "two"), 2)
    stats = json.loads((tmp_path / "two" / "stats.json").read_text())
    processes = stats["processes"]
    assert processes["jobs"] == 2
    assert processes["judging"]["pid"] == os.getpid()
    assert processes["reporting"]["pid"] != os.getpid()
    assert processes["queue"]["batches"] > 0
    assert multiprocessing.active_children() == []


def test_a_killed_reporting_process_is_reported_not_waited_for(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def killed(self: FileReports, *args: Any) -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    monkeypatch.setattr(FileReports, "report_all", killed)  # in the forked process
    with pytest.raises(ReporterFailed, match="killed by signal 9"):
        run_jobs(_options(tmp_path / "two"), 2)
    assert multiprocessing.active_children() == []


def test_a_reporting_process_failing_in_its_key_pass_says_why(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(spec: Any) -> Any:
        raise RuntimeError("harvest broke")

    monkeypatch.setattr(reporting, "harvest", broken)
    with pytest.raises(ReporterFailed, match="harvest broke"):
        run_jobs(_options(tmp_path / "two"), 2)
    assert multiprocessing.active_children() == []


@pytest.mark.parametrize("jobs", ["2", "4"])
def test_a_missing_capture_is_one_line_from_every_process(tmp_path: Path, jobs: str) -> None:
    # Every process meets the missing file; only the judging one says it, without a
    # traceback from the others (a process of its own: the forked ones write to its stderr).
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "auditor", "audit", str(tmp_path / "nope.pcap"),
                           "--jobs", jobs, "--out", str(tmp_path / "out"), "-q"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)
    assert done.returncode == 3, done.stderr
    said = f"dnssec-auditor: error: {tmp_path / 'nope.pcap'}: no such file"
    assert said in done.stderr.splitlines()
    assert "Traceback" not in done.stderr and "Process dnssec-auditor" not in done.stderr


def test_live_on_two_processes_says_a_missing_capture_in_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "auditor", "live", "--read",
                           str(tmp_path / "nope.pcap"), "--jobs", "2",
                           "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)
    assert done.returncode == 3, done.stderr
    assert f"dnssec-auditor: error: {tmp_path / 'nope.pcap'}: no such file" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_key_pass_process_failing_says_why_and_stops_the_others(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # --jobs 4: shards 2 and 3 of the key pass are harvested by processes of their own.
    real = reporting.harvest

    def broken_from_shard_2(spec: Any) -> Any:
        if spec.index >= 2:
            raise RuntimeError(f"shard {spec.index} broke")
        return real(spec)

    monkeypatch.setattr(reporting, "harvest", broken_from_shard_2)
    with pytest.raises(AuditorError, match=r"key-pass process for shard 2 \(pid [0-9]+\) "
                                           r"ended without its key material .*shard 2 broke"):
        run_jobs(_options(tmp_path / "two"), 4)
    assert multiprocessing.active_children() == []


def test_a_killed_key_pass_process_is_reported(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = reporting.harvest

    def killed_in_shard_2(spec: Any) -> Any:
        if spec.index == 2:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(spec)

    monkeypatch.setattr(reporting, "harvest", killed_in_shard_2)
    with pytest.raises(AuditorError, match=r"shard 2 .*\(killed by signal 9\)"):
        run_jobs(_options(tmp_path / "two"), 3)
    assert multiprocessing.active_children() == []


def test_the_command_line_exits_70_when_the_reporting_process_dies(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def killed(self: FileReports, *args: Any) -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    monkeypatch.setattr(FileReports, "report_all", killed)
    result = CliRunner().invoke(cli, ["audit", str(SAMPLE), "--trust-anchor", str(ANCHOR),
                                      "--jobs", "2", "--out", str(tmp_path / "out"), "-q"])
    assert result.exit_code == 70, result.output
    assert "the reporting process" in result.output and "killed by signal 9" in result.output


@pytest.mark.parametrize(("jobs", "warned"), [("3", True), ("2", False), ("0", False)])
def test_more_jobs_than_the_pipeline_uses_is_said_when_asked_for(
        tmp_path: Path, jobs: str, warned: bool) -> None:
    # --jobs 8 on a large machine runs 2 processes: a user who asked for 8 is told so; the
    # default (0, every core) is not a request for more.
    result = CliRunner().invoke(cli, ["audit", str(SAMPLE), "--trust-anchor", str(ANCHOR),
                                      "--jobs", jobs, "--out", str(tmp_path / "out")])
    assert result.exit_code in (0, 1), result.output
    said = f"--jobs {jobs}: the key pass runs on {jobs} processes, the rest of the audit on 2"
    assert (said in result.output) is warned, result.output


def test_a_failing_judging_process_ends_the_reporting_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = pipeline._judged

    def failing(*args: Any) -> Iterator[Rendered]:
        for count, item in enumerate(real(*args)):
            if count == 20:
                raise KeyboardInterrupt  # not contained: the run ends
            yield item

    monkeypatch.setattr(pipeline, "_judged", failing)
    with pytest.raises(KeyboardInterrupt):
        run_jobs(_options(tmp_path / "two"), 2)
    assert multiprocessing.active_children() == []
    # the reporting process closed its outputs with what it had received (batches not yet
    # sent are dropped: the run failed and says so)
    assert len(lines(tmp_path / "two" / "responses.jsonl")) <= 20
    assert not (tmp_path / "two" / "stats.json").exists()


def test_errors_in_a_record_are_contained_as_with_one_process(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = ValidationFindings.feed

    def fragile(self: ValidationFindings, evidence: ResponseEvidence,
                verdict: Verdict) -> Any:
        if evidence.transaction.response.wire.frame % 7 == 0:
            raise ValueError("a bug of ours")
        return real(self, evidence, verdict)

    monkeypatch.setattr(ValidationFindings, "feed", fragile)
    options = _options(tmp_path / "one")
    run_audit(options)
    run_jobs(dataclasses.replace(options, out_dir=tmp_path / "two"), 2)
    assert_same_outputs(tmp_path / "one", tmp_path / "two")
    errors = [r for r in lines(tmp_path / "two" / "findings.jsonl")
              if r.get("code") == "decoder_error"]
    assert errors and all("a bug of ours" in r["detail"] for r in errors)


def test_the_judging_process_writes_the_flow_tables_listed_as_one_process_lists_them(
        tmp_path: Path) -> None:
    import pyarrow.parquet

    options = dataclasses.replace(_options(tmp_path / "one"), report_formats=frozenset(
        {"html", "md", "parquet", "csv"}))
    one = run_audit(options)
    two = run_jobs(dataclasses.replace(options, out_dir=tmp_path / "two"), 2)
    assert [p.name for p in two.files] == [p.name for p in one.files]
    assert {"responses.parquet", "responses.csv", "report.html"} <= {p.name for p in two.files}
    tables = [pyarrow.parquet.read_table(tmp_path / out / "responses.parquet")
              for out in ("one", "two")]
    assert tables[0].equals(tables[1])
    assert (tmp_path / "one" / "responses.csv").read_bytes() == (
        tmp_path / "two" / "responses.csv").read_bytes()


def _parquet_only(out: Path) -> AuditOptions:
    return dataclasses.replace(_options(out), report_formats=frozenset({"parquet"}))


def _dataset(out: Path) -> dict[str, bytes]:
    dataset = out / "responses.parquet"
    return {str(path.relative_to(dataset)): path.read_bytes()
            for path in sorted(dataset.rglob("*")) if path.is_file()}


Write = Callable[[list[dict[str, Any]], Path, int], None]


def _taking_turns(writers: Path, judging: int, write: Write) -> Write:
    """``tables._write_partitions`` noting which process writes each chunk; this (the
    judging) process waits for the reporting one's first chunk before writing its own, so
    both write some whatever the machine's speed: the reporting process (forked after this
    is made) signals each of its chunks on a pipe this one blocks on once."""
    signals, signal_chunk = os.pipe()
    waited = False

    def noting(rows: list[dict[str, Any]], dataset: Path, number: int) -> None:
        nonlocal waited
        with writers.open("a") as note:
            note.write(f"{os.getpid()}\n")
        if os.getpid() != judging:
            os.write(signal_chunk, b".")
        elif not waited:
            ready, _, _ = select.select([signals], [], [], 60)
            assert ready, "the reporting process wrote no chunk"
            waited = True
        write(rows, dataset, number)

    return noting


def test_both_processes_write_parquet_chunks_and_the_dataset_is_one_process_s(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Once the reporting process has written its reports it claims flow-table chunks too;
    # the part files are those one process writes, byte for byte.
    from auditor.report import tables

    monkeypatch.setattr(tables, "CHUNK_ROWS", 2)  # many chunks from the sample
    run_audit(_parquet_only(tmp_path / "one"))
    writers = tmp_path / "writers"
    monkeypatch.setattr(tables, "_write_partitions",
                        _taking_turns(writers, os.getpid(), tables._write_partitions))
    stale = tmp_path / "two" / "responses.parquet" / "date=1999-01-01"
    stale.mkdir(parents=True)
    (stale / "part-00000.parquet").write_bytes(b"an earlier run's")
    run_jobs(_parquet_only(tmp_path / "two"), 2)
    assert _dataset(tmp_path / "two") == _dataset(tmp_path / "one")
    assert len(_dataset(tmp_path / "one")) > 4
    assert len(set(writers.read_text().split())) == 2, "both processes wrote chunks"


def test_without_posix_semaphores_the_judging_process_writes_the_whole_table(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Some sandboxes have no sem_open (multiprocessing.synchronize will not import): the
    # pipeline needs only pipes, so it still runs, and one process writes the flow table.
    from multiprocessing.context import BaseContext

    from auditor.report import tables

    def no_semaphores(*args: Any, **kwargs: Any) -> Any:
        raise ImportError("This platform lacks a functioning sem_open implementation")

    monkeypatch.setattr(tables, "CHUNK_ROWS", 2)
    run_audit(_parquet_only(tmp_path / "one"))
    monkeypatch.setattr(BaseContext, "Value", no_semaphores)
    writers = tmp_path / "writers"
    write = tables._write_partitions

    def noting(rows: list[dict[str, Any]], dataset: Path, number: int) -> None:
        with writers.open("a") as note:
            note.write(f"{os.getpid()}\n")
        write(rows, dataset, number)

    monkeypatch.setattr(tables, "_write_partitions", noting)
    run_jobs(_parquet_only(tmp_path / "two"), 2)
    assert _dataset(tmp_path / "two") == _dataset(tmp_path / "one")
    assert set(writers.read_text().split()) == {str(os.getpid())}


def test_a_chunk_the_reporting_process_cannot_write_fails_the_run_naming_the_record(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from auditor.errors import ReportInputError
    from auditor.report import tables

    monkeypatch.setattr(tables, "CHUNK_ROWS", 1)
    judging = os.getpid()
    write = tables._write_partitions

    def refused_there(rows: list[dict[str, Any]], dataset: Path, number: int) -> None:
        if os.getpid() != judging:
            raise ReportInputError("responses.jsonl", "records do not fit", number + 1)
        write(rows, dataset, number)

    monkeypatch.setattr(tables, "_write_partitions",
                        _taking_turns(tmp_path / "writers", judging, refused_there))
    with pytest.raises(ReportInputError, match="responses.jsonl:[0-9]+: records do not fit"):
        run_jobs(_parquet_only(tmp_path / "two"), 2)


def test_a_record_that_fails_to_render_is_contained_as_with_one_process(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The judging process renders records; one it cannot render goes to the reporting
    # process unrendered, which contains the failure where one process does.
    real = ResponseRecords.render

    def fragile(self: ResponseRecords, evidence: ResponseEvidence) -> Any:
        if evidence.transaction.response.wire.frame % 5 == 0:
            raise ValueError("a rendering bug")
        return real(self, evidence)

    monkeypatch.setattr(ResponseRecords, "render", fragile)
    options = _options(tmp_path / "one")
    run_audit(options)
    run_jobs(dataclasses.replace(options, out_dir=tmp_path / "two"), 2)
    assert_same_outputs(tmp_path / "one", tmp_path / "two")
    assert any("a rendering bug" in r.get("detail", "")
               for r in lines(tmp_path / "two" / "findings.jsonl"))


@pytest.mark.parametrize(("idle", "behind", "rendered_there", "facts_here"), [
    (1 << 40, 1 << 40, True, False),  # the reporting process always waits: it renders all
    (0, 0, False, True),  # always behind: the judging process renders and derives facts
])
def test_either_placement_of_the_balanced_work_gives_the_outputs_of_one_process(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, idle: int, behind: int,
        rendered_there: bool, facts_here: bool) -> None:
    # Which process renders a record and derives a response's forgery facts follows the
    # queue between them (``reporting.placement``); here forced each way, over answers that
    # make bailiwick findings (the facts) and the sample's secure and bogus answers.
    monkeypatch.setattr(reporting, "IDLE_BYTES", idle)
    monkeypatch.setattr(reporting, "BEHIND_BYTES", behind)
    capture = write_pcap(tmp_path / "bailiwick.pcap", bailiwick_traffic())
    for name, options in (("bailiwick", dataclasses.replace(
            _options(tmp_path / "x"), captures=(str(capture),))), ("sample", _options(
                tmp_path / "x"))):
        one, two = tmp_path / name / "one", tmp_path / name / "two"
        run_audit(dataclasses.replace(options, out_dir=one))
        run_jobs(dataclasses.replace(options, out_dir=two), 2)
        assert_same_outputs(one, two)
        balance = json.loads((two / "stats.json").read_text())["processes"]["balance"]
        responses = len(lines(two / "responses.jsonl"))
        assert balance == {"rendered_there": responses if rendered_there else 0,
                           "facts_here": responses if facts_here else 0}, name
    found = {r["code"] for r in lines(tmp_path / "bailiwick" / "two" / "findings.jsonl")}
    assert {"answer_outside_chain", "out_of_bailiwick_data", "extraneous_records"} <= found


def test_the_split_follows_the_queue() -> None:
    assert reporting.placement(0) == (False, False)
    assert reporting.placement(1) == (True, False)
    assert reporting.placement(reporting.BEHIND_BYTES - 1) == (True, False)
    assert reporting.placement(reporting.BEHIND_BYTES) == (True, True)


def test_a_finished_key_pass_leaves_nothing_for_the_collector(tmp_path: Path) -> None:
    # audit --jobs 2's reporting process harvests a key-pass shard, then serves for the rest
    # of the run: a reference cycle through its stream (its error containment's callback)
    # or its key material's digest memo kept the whole pass (parse cache, memos, about
    # 200,000 objects per 200,000 frames) alive until the collector ran mid-run. Freed by
    # reference counting, nothing of it is left for the collector.
    options = AuditOptions(captures=(str(SAMPLE),), out_dir=tmp_path,
                           trust_anchors=(str(ANCHOR),))
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        found = harvest(ShardSpec(options, 0, 1))
        del found
        gc.collect()
        left = {type(thing).__name__ for thing in gc.garbage}
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert not left & {"EvidenceStream", "ParsedMessage", "RecordDigests", "IdentityMemo",
                       "KeyMaterial", "Caches", "Containment"}
