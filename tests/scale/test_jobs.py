"""``audit --jobs 2`` gives the outputs of ``--jobs 1``, in the same order (issue 15)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from auditor.capture.sources import CaptureSet
from auditor.cli import cli
from auditor.engine.limits import Limits
from auditor.pipeline import AuditOptions, run_audit
from auditor.scale.jobs import run_jobs
from auditor.scale.shard import shard_of
from tests.scale.helpers import assert_same_outputs, bailiwick_traffic, lines, write_pcap

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "captures" / "sample-dnssec.pcap"
ANCHOR = ROOT / "captures" / "sample-dnssec.anchor"
FIXTURES = ROOT / "tests" / "differential" / "fixtures"


def _both(capture: Path, anchor: Path, tmp_path: Path, jobs: int = 2,
          **extra: object) -> tuple[Path, Path]:
    """Outputs of one process and of ``jobs`` over ``capture``."""
    options = AuditOptions(captures=(str(capture),), out_dir=tmp_path / "one",
                           trust_anchors=(str(anchor),), report_formats=frozenset(),
                           **extra)  # type: ignore[arg-type]
    run_audit(options)
    run_jobs(dataclasses.replace(options, out_dir=tmp_path / "two"), jobs)
    return tmp_path / "one", tmp_path / "two"


@pytest.mark.parametrize("jobs", [2, 3, 4])
def test_two_jobs_equal_one_on_the_sample_capture(tmp_path: Path, jobs: int) -> None:
    # 3 or more: the key pass is split over that many processes, the rest runs on 2.
    one, two = _both(SAMPLE, ANCHOR, tmp_path, jobs)
    assert_same_outputs(one, two)
    assert {r["verdict"] for r in lines(one / "responses.jsonl")} >= {"secure", "bogus"}
    key_pass = json.loads((two / "stats.json").read_text())["processes"]["key_pass"]
    assert key_pass["processes"] == jobs and len(key_pass["harvesters"]) == jobs - 2


def test_two_jobs_equal_one_with_a_filter_and_fixed_time(tmp_path: Path) -> None:
    one, two = _both(SAMPLE, ANCHOR, tmp_path, frame_filter="not host 127.53.0.1",
                     at_ns=1_764_041_853_000_000_000)
    assert_same_outputs(one, two)


def test_two_jobs_keep_the_runs_key_material_budget(tmp_path: Path) -> None:
    # The merged key material is capped by the run's Limits, not by KeyMaterial's defaults:
    # with a budget the lab capture exceeds, both runs hold the same tables at the caps and
    # judge alike. Evictions are counted in the same tables, but shards evict separately
    # under pressure (an entry two shards saw may be pushed out by each): not compared.
    small = Limits.file(chain_rrsets=3, denial_records=2, signed_copies=4)
    lab = FIXTURES / "seed1-s00033"
    one, two = _both(lab / "capture.pcap", lab / "root.ds", tmp_path, limits=small)
    for name in ("responses.jsonl", "findings.jsonl"):
        assert lines(one / name) == lines(two / name), name
    stats = [json.loads((out / "stats.json").read_text()) for out in (one, two)]
    held = [found["state"]["key_material"] for found in stats]
    assert held[0] == held[1]
    assert (held[1]["chain_rrsets"], held[1]["denial_records"], held[1]["signed_copies"]) == (
        3, 2, 4)
    evicted = [found["validation"]["key_material_evicted"] for found in stats]
    assert set(evicted[0]) == set(evicted[1]) >= {"chain_rrsets", "denial_records",
                                                  "signed_copies"}


@pytest.mark.parametrize("jobs", [2, 4])
@pytest.mark.parametrize("fixture", ["seed1-s00033", "seed1-s01258"])
def test_two_jobs_equal_one_on_lab_resolver_captures(tmp_path: Path, fixture: str,
                                                     jobs: int) -> None:
    one, two = _both(FIXTURES / fixture / "capture.pcap", FIXTURES / fixture / "root.ds",
                     tmp_path, jobs)
    assert_same_outputs(one, two)


def test_two_jobs_equal_one_over_several_captures(tmp_path: Path) -> None:
    """Two captures read as one stream merged by timestamp."""
    lab = FIXTURES / "seed1-s00033"
    options = AuditOptions(captures=(str(lab / "capture.pcap"), str(SAMPLE)),
                           out_dir=tmp_path / "one", trust_anchors=(str(lab / "root.ds"),),
                           report_formats=frozenset())
    run_audit(options)
    run_jobs(dataclasses.replace(options, out_dir=tmp_path / "two"), 2)
    assert_same_outputs(tmp_path / "one", tmp_path / "two")


def test_two_jobs_equal_one_with_a_key_cache(tmp_path: Path) -> None:
    """The root server's traffic filtered out: the chain comes from the key cache."""
    first = tmp_path / "first"
    run_audit(AuditOptions(captures=(str(SAMPLE),), out_dir=first,
                           trust_anchors=(str(ANCHOR),), report_formats=frozenset()))
    outputs = []
    for label, jobs in (("one", 1), ("two", 2)):
        keys = tmp_path / f"{label}.sqlite"
        keys.write_bytes((first / "keys.sqlite").read_bytes())
        run_jobs(AuditOptions(captures=(str(SAMPLE),), out_dir=tmp_path / label,
                              keys_path=keys, trust_anchors=(str(ANCHOR),),
                              frame_filter="not host 127.53.0.1",
                              report_formats=frozenset()), jobs)
        outputs.append(tmp_path / label)
    assert_same_outputs(*outputs)
    stats = json.loads((outputs[1] / "stats.json").read_text())
    assert stats["key_cache"]["verdicts_using_cache"] > 0


@pytest.mark.parametrize("jobs", [2, 4])
def test_keys_in_another_shard_and_after_the_answers(tmp_path: Path, jobs: int) -> None:
    """Every DNSKEY answer moved after the last frame: the resolver's answers to the client
    (one address pair) are judged by one worker, the keys (other pairs) harvested by
    another, later in the capture (with 4, in a key pass split over 4 processes)."""
    one = tmp_path / "sample"
    run_audit(AuditOptions(captures=(str(SAMPLE),), out_dir=one,
                           trust_anchors=(str(ANCHOR),), report_formats=frozenset()))
    key_answers = [r for r in lines(one / "responses.jsonl") if r["qtype"] == "DNSKEY"]
    key_frames = {frame for r in key_answers for frame in r["frames"]}
    with CaptureSet([str(SAMPLE)]) as source:
        frames = list(source)
    shards = {f.number: shard_of(f, jobs) for f in frames}  # the pair decides: any numbering
    last = frames[-1].ts_ns
    moved = [dataclasses.replace(f, ts_ns=last + n * 1_000_000)
             for n, f in enumerate((f for f in frames if f.number in key_frames), 1)]
    built = write_pcap(tmp_path / "keys-last.pcap",
                       [f for f in frames if f.number not in key_frames] + moved)
    one, two = _both(built, ANCHOR, tmp_path, jobs)
    assert_same_outputs(one, two)
    key_shards: dict[str, set[int]] = {}
    for answer in key_answers:
        key_shards.setdefault(answer["qname"], set()).update(
            shards[frame] for frame in answer["frames"])
    with CaptureSet([str(built)]) as source:
        built_shards = {f.number: shard_of(f, jobs) for f in source}
    elsewhere = [r for r in lines(two / "responses.jsonl")
                 if r["verdict"] == "secure" and r["qtype"] != "DNSKEY"
                 and built_shards[r["frames"][0]] not in key_shards.get(r["zone"], set())]
    assert elsewhere  # secure answers whose zone's keys another worker harvested, later
    assert lines(two / "responses.jsonl")[-1]["qtype"] == "DNSKEY"  # the keys come last


def test_cli_jobs(tmp_path: Path) -> None:
    runner = CliRunner()
    for jobs in ("1", "2", "0"):
        result = runner.invoke(cli, ["audit", str(SAMPLE), "--trust-anchor", str(ANCHOR),
                                     "--jobs", jobs, "--out", str(tmp_path / jobs), "-q"])
        assert result.exit_code == 0, result.output
    assert_same_outputs(tmp_path / "1", tmp_path / "2")
    assert_same_outputs(tmp_path / "1", tmp_path / "0")  # every core
    stdin = runner.invoke(cli, ["audit", "-", "--jobs", "2", "--out", str(tmp_path / "in"),
                                "-q"], input=SAMPLE.read_bytes())
    assert stdin.exit_code == 0, stdin.output
    stats = json.loads((tmp_path / "in" / "stats.json").read_text())
    assert stats["validation"]["mode"] == "single_pass"  # standard input: one process


class _Done:
    """A task run in this process, already ended."""

    def __init__(self, value: object) -> None:
        self.value = value

    def result(self) -> object:
        return self.value

    def done(self) -> bool:
        return True


def test_spools_of_many_small_segments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches of 4 items, a fresh pickler memo every 2 batches: what is read back is what
    was written (shared objects within a segment, none across)."""
    from auditor.scale import work
    from auditor.scale.jobs import ShardedJudging

    monkeypatch.setattr(work, "BATCH", 4)
    monkeypatch.setattr(work, "SHARED_BATCHES", 2)
    options = AuditOptions(captures=(str(SAMPLE),), out_dir=tmp_path / "one",
                           trust_anchors=(str(ANCHOR),), report_formats=frozenset())
    run_audit(options)
    for label, spool in (("spooled", tmp_path), ("inline", None)):
        many = dataclasses.replace(options, out_dir=tmp_path / label)
        run_audit(many, ShardedJudging(many, 3, lambda task, spec: _Done(task(spec)),
                                       None if spool is None else str(spool)))
        assert_same_outputs(tmp_path / "one", tmp_path / label)


def test_bailiwick_findings_derived_by_the_workers(tmp_path: Path) -> None:
    """The forgery stage's per-response facts (body facts, bailiwick findings) are derived by
    the workers and handed to the merging process's stage: the same findings in the same
    places, from clients and servers of both shards."""
    frames = bailiwick_traffic()
    assert {shard_of(f, 2) for f in frames} == {0, 1}
    one, two = _both(write_pcap(tmp_path / "bailiwick.pcap", frames), ANCHOR, tmp_path)
    assert_same_outputs(one, two)
    found = {r["code"] for r in lines(two / "findings.jsonl")}
    assert {"answer_outside_chain", "out_of_bailiwick_data", "extraneous_records"} <= found


def test_a_shards_judging_task_takes_what_its_harvest_parsed(tmp_path: Path) -> None:
    """With the run named (as the Dask client names it), each shard's judging task takes the
    parse cache and memos its harvest left in this process, and parses almost nothing
    again; the outputs stay those of one process, and nothing is left behind."""
    from auditor.scale import work
    from auditor.scale.jobs import ShardedJudging

    options = AuditOptions(captures=(str(SAMPLE),), out_dir=tmp_path / "one",
                           trust_anchors=(str(ANCHOR),), report_formats=frozenset())
    run_audit(options)
    parsed: dict[str, int] = {}
    for label, run in (("fresh", ""), ("kept", "run-1")):
        out = dataclasses.replace(options, out_dir=tmp_path / label)
        judged: list[int] = []

        def submit(task: Any, spec: work.ShardSpec, judged: list[int] = judged) -> _Done:
            result = task(spec)
            if isinstance(result, work.Judged):
                judged.append(result.counters.parsed)
            return _Done(result)

        run_audit(out, ShardedJudging(out, 2, submit, None, run))
        assert_same_outputs(tmp_path / "one", tmp_path / label)
        parsed[label] = sum(judged)
        stats = json.loads((tmp_path / label / "stats.json").read_text())
        assert stats["processes"] == {"shards": 2, "attempts_restarted": 0,
                                      "shards_restarted": []}
    assert work._KEPT == {}
    assert parsed["fresh"] > 20 and parsed["kept"] <= parsed["fresh"] // 10, parsed


def test_kept_key_passes_of_another_run_are_dropped() -> None:
    from auditor.engine.caches import Caches
    from auditor.messages import ParseCache
    from auditor.scale import work

    options = AuditOptions(captures=(str(SAMPLE),), out_dir=Path("unused"))
    spec = work.ShardSpec(options, 0, 2, run="new")
    left = work.KeyPass(ParseCache(), Caches(options.limits))
    work._KEPT[("old", 1)] = left
    try:
        work.harvest(spec)
        assert set(work._KEPT) == {("new", 0)}  # the old run's leftover went
        assert work.kept_key_pass(dataclasses.replace(spec, run="other")) is None
        assert work.kept_key_pass(spec) is not None and work._KEPT == {}
        work._KEPT[("old", 1)] = left
        assert work.forget_key_passes() == 1 and work._KEPT == {}
    finally:
        work._KEPT.clear()


class _Running:
    """A task the cluster still runs (its result never asked for here)."""

    def result(self) -> object:
        raise AssertionError("not done")

    def done(self) -> bool:
        return False


def _attempts_of_shard_0(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any, Any]:
    """Shard 0 of 2 judged twice into one spool directory, the first attempt with the
    harvest its process kept, the second afresh (as on another worker): different bytes,
    the same items."""
    from auditor.engine.build import merged_key_material
    from auditor.scale import work

    monkeypatch.setattr(work, "BATCH", 4)
    options = AuditOptions(captures=(str(SAMPLE),), out_dir=tmp_path / "out",
                           trust_anchors=(str(ANCHOR),))
    specs = [work.ShardSpec(options, index, 2, str(tmp_path), run="run-1") for index in (0, 1)]
    material = merged_key_material(
        options.limits, [work.harvest(spec).material for spec in specs]).snapshot()
    first = work.judge_shard(specs[0], material)
    second = work.judge_shard(specs[0], material)
    work.forget_key_passes()
    assert first.spool != second.spool
    assert Path(first.spool).read_bytes() != Path(second.spool).read_bytes()
    return specs, first, second


def _readable(judged: Any) -> int:
    """How many items a cut spool still gives."""
    import pickle

    count = 0
    try:
        for _ in judged.items():
            count += 1
    except pickle.UnpicklingError:
        pass
    return count


def test_a_lost_attempts_spool_is_left_for_the_new_attempts_past_what_was_merged(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker judging a shard died half-way through its spool (cut mid-batch) and the
    cluster started the task again elsewhere: the merge reads the first spool as far as it
    goes, then the new attempt's past the items it already has."""
    import os

    from auditor.scale.jobs import _following

    specs, first, second = _attempts_of_shard_0(tmp_path, monkeypatch)
    whole = [(key, kind) for key, kind, _ in second.items()]
    assert len(whole) > 20
    cut = Path(first.spool)
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size * 3 // 5])
    os.utime(second.spool, (1, 1))  # the lost attempt's spool is the one read first
    assert 0 < _readable(first) < len(whole)
    restarted: list[int] = []
    got = [(key, kind) for key, kind, _ in _following(specs[0], _Running(), restarted.append)]
    assert got == whole
    assert restarted == [0]  # stats.json processes.attempts_restarted counts it


def test_a_new_attempt_that_gives_other_items_stops_the_merge(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from auditor.errors import AuditorError
    from auditor.scale.jobs import _following
    from auditor.scale.pickling import DataclassPickler
    from auditor.scale.work import SPOOL_END

    specs, first, second = _attempts_of_shard_0(tmp_path, monkeypatch)
    cut = Path(first.spool)
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size * 3 // 5])
    os.utime(second.spool, (1, 1))
    other = Path(second.spool)
    items = list(second.items())
    with other.open("wb") as spool:  # the same items, each a frame later
        pickler = DataclassPickler(spool)
        pickler.dump([((k[0] + 1, *k[1:]), kind, payload) for k, kind, payload in items])
        pickler.dump(SPOOL_END)
    os.utime(other, (1, 1))
    with pytest.raises(AuditorError, match="gave other items than the first attempt"):
        list(_following(specs[0], _Running()))


def test_an_output_directory_the_workers_do_not_share_is_said_so(tmp_path: Path) -> None:
    """A cluster whose workers cannot see the client's output directory: the shard's items
    used to be silently missing from the outputs (the spool never appeared here, the task
    ended, the reader took that for an empty shard)."""
    from auditor.errors import AuditorError
    from auditor.scale.jobs import _following
    from auditor.scale.work import Judged, ShardCounters, ShardSpec, judge_shard

    options = AuditOptions(captures=(str(SAMPLE),), out_dir=tmp_path / "out")
    elsewhere = ShardSpec(options, 0, 2, str(tmp_path / "on-another-host"))
    with pytest.raises(AuditorError, match="is not on this worker: the output directory "
                                           "must be on a store the client and every worker"):
        judge_shard(elsewhere, None)  # type: ignore[arg-type]  # refused before any use
    here = ShardSpec(options, 0, 2, str(tmp_path))
    written = Judged(0, ShardCounters(), str(tmp_path / "on-another-disk" / "shard-0.a.pkl"))
    with pytest.raises(AuditorError, match="which this process cannot see"):
        list(_following(here, _Done(written)))


def test_a_sharded_run_shows_its_progress_when_asked(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Phase 1 counts shards harvested, phase 2 frames merged out of the input's (counted by
    the harvests): a cluster run used to say nothing for hours. Outputs unchanged."""
    from auditor.scale import jobs
    from auditor.scale.jobs import ShardedJudging

    options = AuditOptions(captures=(str(SAMPLE),), out_dir=tmp_path / "one",
                           trust_anchors=(str(ANCHOR),), report_formats=frozenset())
    run_audit(options)
    bars: list[Any] = []
    make = jobs._bar

    def kept(*args: Any) -> Any:
        bars.append(make(*args))
        return bars[-1]

    monkeypatch.setattr(jobs, "_bar", kept)
    monkeypatch.setattr(jobs, "PROGRESS_EVERY", 4)
    shown = dataclasses.replace(options, out_dir=tmp_path / "shown", progress=True)
    capsys.readouterr()
    run_audit(shown, ShardedJudging(shown, 3, lambda task, spec: _Done(task(spec)),
                                    str(tmp_path)))
    err = capsys.readouterr().err
    with CaptureSet([str(SAMPLE)]) as source:
        frames = sum(1 for _ in source)
    assert "harvesting" in err and "judging" in err and f"/{frames} " in err
    harvesting, judging = bars
    assert (harvesting.n, harvesting.total) == (3, 3)
    assert (judging.n, judging.total) == (frames, frames)
    assert_same_outputs(tmp_path / "one", tmp_path / "shown")


def test_anonymised_runs_equal_one_process(tmp_path: Path) -> None:
    """With ``--anonymize`` the pipelined run (every record rendered in the judging process,
    rewritten in the reporting one) and the flow shards write what one process writes."""
    from auditor.scale import reporting
    from auditor.scale.jobs import ShardedJudging

    options = AuditOptions(captures=(str(SAMPLE),), out_dir=tmp_path / "one",
                           trust_anchors=(str(ANCHOR),), report_formats=frozenset(),
                           anonymize_secret=b"k" * 16)
    run_audit(options)
    assert "127.53.0.100" not in (tmp_path / "one" / "responses.jsonl").read_text()
    pipelined = dataclasses.replace(options, out_dir=tmp_path / "two")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(reporting, "IDLE_BYTES", 0)  # the judging process renders them all
        run_jobs(pipelined, 2)
    assert_same_outputs(tmp_path / "one", tmp_path / "two")
    sharded = dataclasses.replace(options, out_dir=tmp_path / "shards")
    run_audit(sharded, ShardedJudging(sharded, 2, lambda task, spec: _Done(task(spec)), None,
                                      ""))
    assert_same_outputs(tmp_path / "one", tmp_path / "shards")
