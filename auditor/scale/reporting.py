"""``audit --jobs N``: the file audit as a pipeline of two processes. This one reads, decodes,
matches and judges (the key pass over flow shard 0 of 2, then the judging pass) and renders
each record's capture-level fields; a forked reporting process harvests shard 1's key material
(both processes merge the two halves alike), then runs the reporting side
(``pipeline.FileReports``: finding stages, resolution linker, ``responses.jsonl``,
``findings.jsonl``, then ``stats.json``, the evidence file and the reports but the flow
tables, which this process writes meanwhile; the Parquet flow table's chunks are claimed by
both processes once the reporting one is done), fed the same calls in the same order as
pickled batches through a bounded queue, so the outputs are those of one process, byte for
byte.

Why not flow shards (the design before, kept for Dask in ``scale/jobs.py``): the stages that
compare flows, the linker and the reports were a serial merge of 60 % of a one-process audit
(benchmarks/README.md, "Several processes and a Dask cluster"). Here each process does part of
the work once; measured figures in benchmarks/README.md ("``--jobs 2`` as a pipeline").

A reporting process that dies is reported (``ReporterFailed``), never waited for in silence;
if this process fails, the reporting one sees the pipe close, closes its outputs with what it
received and exits 1.
"""

from __future__ import annotations

import dataclasses
import importlib
import io
import logging
import multiprocessing
import multiprocessing.connection
import os
import pickle
import resource
import signal
import sys
import time
import traceback
from collections.abc import Iterable
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from auditor.anomaly import Anomaly
from auditor.engine.build import merged_key_material
from auditor.engine.contain import Containment
from auditor.engine.judge import Rendered
from auditor.errors import AuditorError, ReportInputError
from auditor.evidence import ResponseEvidence
from auditor.forgery import ForgeryDetector
from auditor.memo import collecting_rarely
from auditor.messages import ObservedMessage, ParseCache
from auditor.pipeline import (
    AuditOptions,
    AuditOutcome,
    FileReports,
    JudgingCounters,
    ReportContext,
    report_context,
    run_audit,
    shared_flow_table,
    write_table_reports,
)
from auditor.report.records import ResponseRecords
from auditor.scale.carry import CarriedUnpickler, CarryingPickler, Rebuilder, next_unpickler
from auditor.scale.pipe import (
    POLL_S,
    EventLink,
    _Feed,
    fork_second,
    how_it_ended,
)
from auditor.scale.shard import FlowShard
from auditor.scale.work import (
    Harvest,
    ShardSpec,
    harvest,
)
from auditor.trust import KeyMaterial

if TYPE_CHECKING:
    from auditor.report.tables import ChunkClaim

logger = logging.getLogger(__name__)

Connection = multiprocessing.connection.Connection

BATCH_EVENTS = 512
"""Events per pickled batch."""
KEY_PASS_MAX = 8
"""Processes the key pass is split over at most (``--jobs N``): this one, the reporting one
and up to 6 more that only harvest and exit. Each reads every frame (passing over another
shard's costs a few µs), so beyond a few the reading dominates; and each holds its own
caches while it runs."""
QUEUE_BYTES = 32 << 20
"""Pickled batches waiting for the reporting process at most; then the judging side waits."""
IDLE_BYTES = 1
"""Queued bytes below which the reporting process counts as waiting for work (it has read
every batch): the judging process then leaves the next record's rendering to it."""
BEHIND_BYTES = 1 << 20
"""Queued bytes from which the reporting process counts as behind: the judging process then
derives the forgery stage's per-response facts itself (``ForgeryDetector.facts``, handed over
with the response and primed there), work the reporting process would otherwise do.

Either way the outputs are the same (the reporting side renders and derives exactly what one
process would); only which process spends the CPU changes, so each run balances itself to its
capture (benchmarks/README.md, "an adaptive split"). 1 MiB rather than 4: whatever is queued
when the judging pass ends, the judging process waits for before it can write the flow table
(timeline at 1,000,000 frames: 3.6 s with 4 MiB, 0.4 s with 1 MiB; whole runs within this
machine's spread, benchmarks/README.md, "session 10")."""


def placement(queued: int) -> tuple[bool, bool]:
    """Whether the judging process renders the next record, and whether it derives its
    forgery facts, with ``queued`` bytes waiting for the reporting process."""
    return queued >= IDLE_BYTES, queued >= BEHIND_BYTES


class Event(IntEnum):
    """What one event carries to the reporting process (a ``ReportSide`` call)."""

    QUERY = 0
    """A decoded query (``ObservedMessage``)."""
    ANOMALY = 1
    """An ``Anomaly`` for ``findings.jsonl``."""
    FACTS = 2
    """(evidence, facts) derived where a response was judged, just before its ``JUDGED``."""
    JUDGED = 3
    """One judged response (``Rendered``), its ``responses.jsonl`` fields whole."""
    UNRENDERED = 4
    """One judged response (``Rendered``) whose capture-level fields the reporting process
    renders (and contains a failure of, as one process would): it had nothing queued, or
    they failed to render here."""
    FINISH = 5
    """End of input, with the judging side's ``JudgingCounters``."""


class ReportLink(EventLink[Event]):
    """``ReportSide`` of the judging process: every call becomes an event; events go in
    pickled batches through ``_Outbox`` to the reporting process, which makes the same calls
    on its ``FileReports`` in the same order."""

    batch_events = BATCH_EVENTS
    _carrier: CarryingPickler
    """The batches' pickler (``_new_pickler``, called as the link is made)."""

    def __init__(self, options: AuditOptions, process: multiprocessing.process.BaseProcess,
                 events: Connection, results: Connection, claim: ChunkClaim | None,
                 harvesters: list[_Harvester]) -> None:
        self._options = options
        super().__init__(process, events, results, QUEUE_BYTES)
        self._harvesters = harvesters
        """The processes harvesting key-pass shards 2 and up (``--jobs`` 3 or more)."""
        self._claim = claim
        """Hands out the flow table's chunks to this process and the reporting one (None:
        this process writes the whole table, ``_shared_counter``)."""
        self.shard = FlowShard(0, 2 + len(harvesters))
        """This process's key pass harvests shard 0; the reporting process shard 1; the
        harvesters the others."""
        self.errors = Containment()
        """The judging side's failures (their anomalies go to ``anomaly``, as events)."""
        self._records: ResponseRecords | None = None
        """Renders the responses' capture-level fields (once the run's memos exist)."""
        self._forgery: ForgeryDetector | None = None
        """Derives the forgery stage's per-response facts while the reporting process is
        behind (``BEHIND_BYTES``); its windows and tables stay unused."""
        self.balance = {"facts_here": 0, "rendered_there": 0}
        """Responses whose facts this process derived; whose records the other rendered."""

    def _new_pickler(self, buffer: io.BytesIO) -> pickle.Pickler:
        """Messages by reference to the reporting process's window (``scale/carry.py``)."""
        self._carrier = CarryingPickler(buffer, self._options.limits)
        return self._carrier

    # --- ProcessSplit --------------------------------------------------------------------

    def merged_material(self, material: KeyMaterial,
                        parse_cache: ParseCache) -> tuple[KeyMaterial, int]:
        """Exchange the key-pass shards' snapshots: this process sends its own and the
        harvesters' to the reporting process; both merge them alike, in shard order. Sent
        before that process's own is awaited, so the two snapshots are pickled and loaded at
        the same time rather than one after the other."""
        others = [harvester.result() for harvester in self._harvesters]
        snapshots = (material.snapshot(), *(found.material for found in others))
        self._outbox.put(pickle.dumps(snapshots, protocol=pickle.HIGHEST_PROTOCOL), wait=True,
                         alive=self._alive)
        kind, payload = self._receive()
        if kind != "harvest":
            raise self._failed(str(payload))
        assert isinstance(payload, Harvest)
        self.check()
        # The other shards' sightings too: the judging pass then drops every message from
        # the parse cache at its last sighting, as one process does, not only this shard's.
        for found in (payload, *others):
            parse_cache.add_sightings(found.sightings)
        merged = merged_key_material(self._options.limits,
                                     (snapshots[0], payload.material, *snapshots[1:]))
        return merged, payload.parsed + sum(found.parsed for found in others)

    def report_side(self, context: ReportContext) -> ReportLink:
        """This link, once the reporting process has opened its outputs (or its error)."""
        kind, payload = self._receive()
        if kind == "error":
            raise AuditorError(str(payload))
        if kind != "ready":
            raise self._failed(str(payload))
        caches = context.caches
        self._records = ResponseRecords(name_text=caches.parse.name_text, times=caches.times)
        self._forgery = ForgeryDetector(names=caches.names, digests=context.material.digests,
                                        name_text=caches.parse.name_text)
        self._carrier.facts = caches.facts
        return self

    # --- ReportSide ----------------------------------------------------------------------

    def query(self, message: ObservedMessage) -> None:
        self._add(Event.QUERY, message)

    def anomaly(self, anomaly: Anomaly) -> None:
        self._add(Event.ANOMALY, anomaly)

    def facts(self, evidence: ResponseEvidence, facts: Any) -> None:
        self._add(Event.FACTS, (evidence, facts))

    def report_all(self, judged: Iterable[Rendered]) -> None:
        """Each response, its record rendered here unless the reporting process waits for
        work, its forgery facts derived here while that process is behind
        (``BEHIND_BYTES``)."""
        add = self._add  # the judged iterator itself adds queries and anomalies
        assert self._records is not None and self._forgery is not None, "report_side() first"
        render, facts_of, outbox = self._records.render, self._forgery.facts, self._outbox
        balance = self.balance
        for evidence, verdict, fields in judged:
            render_here, facts_here = placement(outbox.queued_bytes)
            if not render_here:
                balance["rendered_there"] += 1
                add(Event.UNRENDERED, (evidence, verdict, fields))
                continue
            try:
                whole = {**render(evidence), **fields}
            except Exception:  # contained where one process contains it: reporting
                add(Event.UNRENDERED, (evidence, verdict, fields))
                continue
            if facts_here and not evidence.transaction.response.wire.cut:
                # The forgery stage never sees a cut answer (``engine.reporting.stages_for``).
                try:
                    facts = facts_of(evidence, verdict)
                except Exception:  # the reporting process derives them and contains it
                    facts = None
                if facts is not None:
                    balance["facts_here"] += 1
                    add(Event.FACTS, (evidence, facts))
            add(Event.JUDGED, (evidence, verdict, whole))

    def close(self) -> None:
        """Send what is batched (the reporting process flushes when ``complete`` says so)."""
        self.send()

    def complete(self, judging: JudgingCounters) -> AuditOutcome:
        """Send ``FINISH`` with the counters; once the reporting process has closed the JSON
        Lines, write the flow tables here while it writes the rest (a Parquet table alone is
        shared: that process claims chunks too once its reports are written,
        ``shared_flow_table``); its outcome with them."""
        from auditor.report.tables import clear_flow_dataset, write_flow_tables  # pandas

        options = self._options
        shared = self._claim is not None and shared_flow_table(options)
        if shared:  # before FINISH: the reporting process writes chunks only after it
            clear_flow_dataset(options.out_dir)
        self._add(Event.FINISH, judging)
        self.send()
        self._outbox.close(self._alive)
        kind, payload = self._receive()  # a dead process's last word, or ReporterFailed
        tables: list[Path] = []
        if kind == "closed":
            tables = (write_flow_tables(options.out_dir / "responses.jsonl", options.out_dir,
                                        claim=self._claim)
                      if shared else write_table_reports(options))
            kind, payload = self._receive()
        self._process.join()
        if kind == "tables_failed":
            raise ReportInputError(*payload)
        if kind != "done":
            raise self._failed(str(payload))
        assert isinstance(payload, AuditOutcome)
        return _with_tables(payload, tables)

    @property
    def processes(self) -> dict[str, Any]:
        """``stats.json`` ``processes``: the split and the queue between the processes."""
        return {
            "jobs": 2,
            "key_pass": {"processes": 2 + len(self._harvesters),
                         "harvesters": [h.pid for h in self._harvesters]},
            "judging": {"pid": os.getpid(), "cpu_s": _cpu_s()},
            "reporting": {"pid": self._process.pid},
            "queue": {"max_bytes": self._outbox.max_bytes, "peak_bytes": self._outbox.peak_bytes,
                      "batches": self.batches, "bytes": self.bytes_sent,
                      "waited_s": round(self.waited_s, 3)},
            "balance": dict(self.balance),
            "messages": self._messages(),
        }

    def _messages(self) -> dict[str, int]:
        """How the messages crossed (``scale/carry.py``): whole, or as a reference to the
        reporting process's window."""
        return {"sent_whole": self._carrier.sent_whole, "sent_again": self._carrier.sent_again}

    # --- sending -------------------------------------------------------------------------

    def send(self) -> None:
        """Pickle the batch and queue it, waiting while the queue is full."""
        if not self._batch:
            return
        batch, self._batch = self._batch, []
        data = self._pickle_once(batch)
        self.waited_s += self._outbox.put(data, wait=True, alive=self._alive)
        self.batches += 1
        self.bytes_sent += len(data)
        self.check()

    # --- failures ------------------------------------------------------------------------

    def check(self) -> None:
        """Raise ``ReporterFailed`` if the reporting process is gone."""
        if self._outbox.error is None and self._alive():
            return
        said = None
        if self._results.poll(0):
            kind, payload = self._receive()
            said = str(payload) if kind == "failed" else None
        raise self._failed(said)

    def _failure_text(self, pid: int | None, how: str, detail: str) -> str:
        return (f"--jobs: the reporting process (pid {pid}) ended before the audit finished "
                f"({how}){detail}; its outputs are incomplete")

    def abort(self) -> None:
        """This process failed: end the harvesters still running, then the reporting
        process as ``EventLink.abort`` does."""
        for harvester in self._harvesters:
            harvester.stop()
        super().abort()



# --- the reporting process -------------------------------------------------------------


def _reporting_process(options: AuditOptions, started: float, claim: ChunkClaim | None,
                       shards: int, events: Connection, results: Connection,
                       parents: tuple[Connection, ...]) -> None:
    """Harvest shard 1's key material and exchange it for the other shards'; open the
    outputs and answer ``ready``; apply the batches until ``FINISH``; write the flow table's
    chunks it claims (``shared_flow_table``); answer ``done`` with the outcome
    (``tables_failed`` with the ``ReportInputError``'s arguments, ``failed`` with a traceback
    on a crash, with the message alone for an input problem)."""
    for conn in parents:  # the judging process's ends: its exit must close the pipe here
        conn.close()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the judging process decides when to stop
    try:
        context = _exchanged(options, started, shards, events, results)
        if context is None:
            sys.exit(1)  # the judging process ended first (it reports why)
        try:
            side = FileReports(context, own_caches=True, tables_elsewhere=True)
        except (AuditorError, OSError) as exc:
            _answer(results, ("error", str(exc)))
            return
        _answer(results, ("ready", None))
        outcome = _serve(side, events, results, Rebuilder(options.limits, context.caches))
        if outcome is None:
            logger.error("the judging process ended before the audit finished; outputs closed "
                         "with what it had sent")
            side.close()
            sys.exit(1)
        if claim is not None and shared_flow_table(options):
            from auditor.report.tables import write_flow_tables  # imported while shard 0 ended

            try:
                write_flow_tables(options.out_dir / "responses.jsonl", options.out_dir,
                                  claim=claim)
            except ReportInputError as exc:
                _answer(results, ("tables_failed", (exc.source, exc.problem, exc.line)))
                return
        _answer(results, ("done", outcome))
    except AuditorError as exc:
        # The input's fault (a capture that cannot be read): the judging process meets it
        # too and says it; a traceback from here would only bury that line.
        _answer(results, ("failed", str(exc)))
        sys.exit(1)
    except Exception:
        _answer(results, ("failed", traceback.format_exc()))
        raise


def _exchanged(options: AuditOptions, started: float, shards: int, events: Connection,
               results: Connection) -> ReportContext | None:
    """The key pass of shard 1 (of ``shards``), sent; the others' received and merged alike,
    in shard order: the reporting side's setup (None if the judging process is gone)."""
    found = harvest(ShardSpec(options, 1, shards, sightings=True))
    _answer(results, ("harvest", found))
    importlib.import_module("auditor.report.tables")  # pandas, pyarrow: while shard 0 ends
    try:
        first, *rest = pickle.loads(events.recv_bytes())
    except EOFError:
        return None
    material = merged_key_material(options.limits, (first, found.material, *rest))
    return report_context(options, started, material)


def _answer(results: Connection, answer: tuple[str, Any]) -> None:
    """Answer the judging process, unless it is gone (then nobody is waiting)."""
    try:
        results.send(answer)
    except OSError:
        logger.debug("the judging process is gone; answer %r not sent", answer[0])


def _serve(side: FileReports, events: Connection, results: Connection,
           rebuilder: Rebuilder) -> AuditOutcome | None:
    """Apply batches until ``FINISH`` (the outcome; ``closed`` is answered once the JSON
    Lines are) or a closed pipe (None); messages and evidence are made again through
    ``rebuilder`` (``scale/carry.py``)."""
    feed = _Feed()
    unpickler = CarriedUnpickler(feed, rebuilder)
    query, anomaly, facts, report = side.query, side.anomaly, side.facts, side.report_all
    while True:
        try:
            message = events.recv_bytes()
        except EOFError:
            return None
        unpickler = next_unpickler(message[:1], unpickler, feed, rebuilder)
        feed.set(memoryview(message)[1:])
        judged: list[Rendered] = []
        for kind, payload in unpickler.load():
            if kind is Event.JUDGED:
                judged.append(payload)
                continue
            if judged:
                report(judged, True)
                judged = []
            if kind is Event.QUERY:
                query(payload)
            elif kind is Event.ANOMALY:
                anomaly(payload)
            elif kind is Event.FACTS:
                facts(*payload)
            elif kind is Event.UNRENDERED:
                report([payload])
            else:
                assert kind is Event.FINISH, kind
                side.close()
                _answer(results, ("closed", None))  # the flow tables can be written
                judging = _with_reporting(payload, rebuilder)
                # What only the stream needed goes before the reports allocate theirs, as one
                # process's judging state does: the last segment's unpickler memo and the
                # window of messages.
                del unpickler
                rebuilder.window.clear()
                return side.complete(judging)
        if judged:
            report(judged, True)


def _with_tables(outcome: AuditOutcome, tables: list[Path]) -> AuditOutcome:
    """The outcome with the flow tables written by the judging process, listed where one
    process lists them (after ``chains.json``)."""
    files = list(outcome.files)
    at = next((n + 1 for n, path in enumerate(files) if path.name == "chains.json"),
              len(files))
    files[at:at] = tables
    return dataclasses.replace(outcome, files=tuple(files))


def _with_reporting(judging: JudgingCounters, rebuilder: Rebuilder) -> JudgingCounters:
    """The judging side's counters with this process's CPU time added to ``processes``, and
    the messages it had to parse again (``Rebuilder.parsed_again``: 0 unless the two
    windows fell out of step)."""
    if judging.processes is None:
        return judging
    judging.processes["reporting"]["cpu_s_before_reports"] = _cpu_s()
    judging.processes["messages"]["parsed_again"] = rebuilder.parsed_again
    return judging


def _cpu_s() -> float:
    """CPU seconds this process has used so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return round(usage.ru_utime + usage.ru_stime, 3)


# --- the judging process ---------------------------------------------------------------


def key_pass_processes(jobs: int) -> int:
    """Processes the key pass of ``--jobs jobs`` runs on: 2 up to ``KEY_PASS_MAX``."""
    return max(2, min(jobs, KEY_PASS_MAX))


def _start_reporting(options: AuditOptions, started: float, jobs: int) -> ReportLink:
    """Fork the reporting process before the key pass (it harvests a shard of it), and with
    ``jobs`` above 2 the harvesters of the other shards (at most ``KEY_PASS_MAX`` in all)."""
    shards = key_pass_processes(jobs)
    claim = _shared_counter()
    process, events_write, results_read = fork_second(
        _reporting_process, "dnssec-auditor-reporting", options, started, claim, shards)
    harvesters = [_Harvester(options, index, shards, (events_write, results_read))
                  for index in range(2, shards)]
    return ReportLink(options, process, events_write, results_read, claim, harvesters)


class _Harvester:
    """A forked process that harvests one key-pass shard, sends it here and exits
    (``audit --jobs`` 3 or more: the key pass is the part of the audit that splits by
    flow with nothing to merge but the key material)."""

    def __init__(self, options: AuditOptions, index: int, shards: int,
                 link: tuple[Connection, ...]) -> None:
        context = multiprocessing.get_context("fork")
        self._conn, sending = context.Pipe(duplex=False)
        self._process = context.Process(
            target=_harvest_shard, name=f"dnssec-auditor-keys-{index}",
            args=(ShardSpec(options, index, shards, sightings=True), sending,
                  (self._conn, *link)))
        self._process.start()
        sending.close()
        self.index = index

    @property
    def pid(self) -> int | None:
        """The process's id."""
        return self._process.pid

    def result(self) -> Harvest:
        """The shard's harvest, once sent; ``AuditorError`` if the process ended without."""
        try:
            found = pickle.loads(self._conn.recv_bytes())
        except (EOFError, OSError):
            found = None
        self._process.join()
        self._conn.close()
        if not isinstance(found, Harvest):
            how = how_it_ended(self._process.exitcode)
            raise AuditorError(f"--jobs: the key-pass process for shard {self.index} "
                               f"(pid {self._process.pid}) ended without its key material "
                               f"({how}){f': {found}' if isinstance(found, str) else ''}")
        return found

    def stop(self) -> None:
        """End the process if it still runs (the audit failed)."""
        if self._process.is_alive():
            self._process.terminate()
        self._process.join(POLL_S)


def _harvest_shard(spec: ShardSpec, sending: Connection, inherited: tuple[Connection, ...],
                   ) -> None:
    """A harvester's process: its shard's key material to ``sending`` (or why not, as
    text), then exit."""
    for conn in inherited:  # the judging process's ends: its exit must close them
        conn.close()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the judging process decides when to stop
    try:
        found: Harvest | str = harvest(spec)
    except Exception:  # noqa: BLE001 - said to the judging process, which raises it
        found = traceback.format_exc().strip().splitlines()[-1]
    try:
        sending.send_bytes(pickle.dumps(found, protocol=pickle.HIGHEST_PROTOCOL))
    except OSError:
        logger.debug("the judging process is gone; shard %d's key material not sent",
                     spec.index)


def _shared_counter() -> ChunkClaim | None:
    """0, 1, 2, ... across this process and the ones it forks after (each number once); None
    where the platform has no working POSIX semaphores (some sandboxes): the pipeline itself
    needs only pipes, so it runs, and the judging process writes the whole flow table."""
    try:
        counter = multiprocessing.get_context("fork").Value("q", 0)
    except (ImportError, OSError) as exc:  # multiprocessing.synchronize: no sem_open
        logger.debug("no shared counter (%s): the flow table is written by one process", exc)
        return None

    def claim() -> int:
        with counter.get_lock():
            number: int = counter.value
            counter.value = number + 1
        return number

    return claim


@collecting_rarely
def run_pipelined(options: AuditOptions, jobs: int = 2) -> AuditOutcome:
    """The file audit on two processes: key pass shared (with ``jobs`` above 2, over up to
    ``KEY_PASS_MAX`` processes), judging here, reporting in a forked process."""
    link = _start_reporting(options, time.monotonic(), jobs)
    try:
        return run_audit(options, split=link)
    except BaseException:
        link.abort()
        raise
