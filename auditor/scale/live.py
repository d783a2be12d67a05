"""``live --jobs 2``: capture, decode, matching and judging in this process; the reporting side
(finding stages, resolution linker, records, alerts, rolling outputs, ``stats.json``, metrics)
in a second one, fed the same calls in the same order as batches of pickled events.

Why this split (benchmarks/README.md, "Live on two cores"): profiled on one core, decode and
matching are a tenth of a live frame's cost, evidence and judging about half, the reporting
side the rest; flow shards cannot judge alone (key material crosses flows) and the reporting
side's stages compare flows, so it stays one process that sees everything in order.

Shutdown loses nothing judged: the capturing process judges what is pending, sends it, then
``FINISH``; the reporting process flushes and answers with the run's outcome. A reporting
process that dies is reported (``ReporterFailed``), never waited for in silence; if the
capturing process dies, the reporting one sees the pipe close, closes its outputs with what it
received and exits 1.
"""

from __future__ import annotations

import io
import logging
import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable
from enum import IntEnum
from typing import Any, TextIO

from auditor.anomaly import Anomaly
from auditor.capture.frame import Frame
from auditor.capture.live import FrameSource
from auditor.engine.build import finding_sources
from auditor.engine.caches import Caches
from auditor.engine.judge import Rendered
from auditor.errors import AuditorError, ConfigError
from auditor.live import (
    AlertSink,
    FrontCounters,
    LiveAuditor,
    LiveOptions,
    LiveOutcome,
    LiveReporter,
    _open_alerts,
    _open_metrics,
    _Signals,
    open_source,
    run_until_stopped,
)
from auditor.messages import ObservedMessage
from auditor.report.rolling import NumberedJsonLines
from auditor.scale.carry import CarriedUnpickler, CarryingPickler, Rebuilder, next_unpickler
from auditor.scale.pickling import DataclassPickler
from auditor.scale.pipe import (
    POLL_S,
    Connection,
    EventLink,
    ReporterFailed,
    _Feed,
    fork_second,
)
from auditor.trust import KeyCache
from auditor.trust.material import RecordDigests

logger = logging.getLogger(__name__)


BATCH_EVENTS = 1_024
"""Events per pickled batch at most; a batch is also sent after every loop of the capture
(at most ``capture.live.BATCH_FRAMES`` frames), so alerts wait no longer than with one
process."""
COUNTERS_INTERVAL_S = 0.25
"""Seconds between the capturing side's counters sent for ``stats.json`` and metrics (so
they lag the capture by at most this plus the queue)."""


class Event(IntEnum):
    """What one event of a batch carries to the reporting process (``ReportSide`` calls)."""

    WATCH = 0
    """A ``Frame`` for the evidence ring (``--evidence``)."""
    QUERY = 1
    """A decoded query (``ObservedMessage``)."""
    ANOMALY = 2
    """An ``Anomaly`` for the findings output."""
    JUDGED = 3
    """Judged responses (a list of ``Rendered``)."""
    EXPIRE = 4
    """(capture time ns, monotonic s): close the finding stages' windows."""
    ROTATE = 5
    """SIGHUP: rotate the outputs."""
    COUNTERS = 6
    """The capturing side's counters (``FrontCounters``)."""
    FINISH = 7
    """End of the run, with the final counters."""


DATA_EVENTS = {Event.WATCH: "frames", Event.QUERY: "queries", Event.ANOMALY: "anomalies",
               Event.JUDGED: "responses"}
"""Events a full queue drops on a capture (by the name they are counted under); the others
always go through."""


class ReporterLink(EventLink[Event]):
    """``ReportSide`` for the capturing process: every call becomes an event, events go in
    batches through ``_Outbox`` to the reporting process, which makes the same calls on its
    ``LiveReporter`` in the same order."""

    batch_events = BATCH_EVENTS
    _carrier: CarryingPickler
    """The batches' pickler (``_new_pickler``, called as the link is made)."""

    def __init__(self, options: LiveOptions, process: multiprocessing.process.BaseProcess,
                 events: Connection, results: Connection) -> None:
        self._process, self._results = process, results  # for the handshake
        self._limits = options.limits
        metrics_url = self._handshake()
        super().__init__(process, events, results, options.queue_bytes)
        self.metrics_url = metrics_url
        self._wait = options.read is not None
        """A stream waits for room (it never drops); a capture drops data events."""
        self._next_counters = 0.0
        self.dropped: Counter[str] = Counter()

    def _handshake(self) -> str | None:
        """Wait for the reporting process to open its outputs: its metrics URL, or raise."""
        kind, payload = self._receive()
        if kind == "error":
            raise ConfigError(str(payload))
        if kind != "ready":
            raise self._failed(f"unexpected answer {kind!r}")
        return None if payload is None else str(payload)

    def _new_pickler(self, buffer: io.BytesIO) -> pickle.Pickler:
        """Messages by reference to the reporting process's window (``scale/carry.py``). A
        capture's full queue drops events before they are pickled, so the window only ever
        sees what crosses and both sides stay in step."""
        self._carrier = CarryingPickler(buffer, self._limits)
        return self._carrier

    def bind(self, auditor: LiveAuditor) -> ReporterLink:
        """The ``LiveAuditor`` reporter factory: hand it the link's counters and URL, and the
        pickler its memo of paired records (responses cross with them)."""
        auditor.metrics_url = self.metrics_url
        auditor.link_counters = self.counters
        self._carrier.facts = auditor.caches.facts
        return self

    # --- ReportSide ----------------------------------------------------------------------

    def watch(self, frame: Frame) -> None:
        self._add(Event.WATCH, frame)

    def query(self, message: ObservedMessage) -> None:
        self._add(Event.QUERY, message)

    def anomaly(self, anomaly: Anomaly) -> None:
        self._add(Event.ANOMALY, anomaly)

    def judged(self, judged: list[Rendered]) -> None:
        self._add(Event.JUDGED, judged)

    def expire(self, now_ns: int, mono_s: float) -> None:
        self._add(Event.EXPIRE, (now_ns, mono_s))

    def rotate(self) -> None:
        self._add(Event.ROTATE, None)
        self.send()

    def timers(self, front: Callable[[], FrontCounters], mono_s: float) -> None:
        """Send the batch (and, once a second, the counters); raise if the reporting process
        is gone."""
        self.check()
        if mono_s >= self._next_counters:
            self._next_counters = mono_s + COUNTERS_INTERVAL_S
            self._add(Event.COUNTERS, front())
        self.send()

    def finish(self, front: FrontCounters) -> LiveOutcome:
        """Send everything and ``FINISH``; wait for the reporting process's outcome."""
        self._add(Event.FINISH, front)
        self.send(force=True)
        self._outbox.close(self._alive)
        self.check()
        kind, payload = self._receive()
        self._process.join()
        if kind != "done":
            raise self._failed(str(payload))
        assert isinstance(payload, LiveOutcome)
        return payload

    # --- sending -------------------------------------------------------------------------

    def send(self, *, force: bool = False) -> None:
        """Pickle the batch and queue it. Queue full: a stream waits; a capture drops the
        batch's data events (counted) and sends its control events."""
        if not self._batch:
            return
        batch, self._batch = self._batch, []
        wait = self._wait or force
        if self._outbox.full and not wait:
            batch = self._drop_data(batch)
            if not batch:
                return
        data = self._pickle(batch)
        self.waited_s += self._outbox.put(data, wait=wait, alive=self._alive)
        self.batches += 1
        self.bytes_sent += len(data)
        self.check()

    def _pickle(self, batch: list[tuple[Event, Any]]) -> bytes:
        """One message: the memo flag, then the batch pickled with the shared memo. An event
        that cannot be pickled (our bug, never the traffic's) is dropped and counted, and the
        batch goes again with a fresh memo (the failed attempt left the memo unusable)."""
        carrier = self._carrier
        counts = carrier.sent_whole, carrier.sent_again
        try:
            return self._pickle_once(batch)
        except Exception as exc:  # noqa: BLE001 - the run must go on without that event
            self._segment = self._segment_bytes = 0
            carrier.sent_whole, carrier.sent_again = counts
            carrier.restart()
            self._restart = True
            kept = [event for event in batch if self._picklable(event, exc)]
            return self._pickle_once(kept)

    def _picklable(self, event: tuple[Event, Any], batch_error: Exception) -> bool:
        try:
            DataclassPickler(io.BytesIO(), protocol=pickle.HIGHEST_PROTOCOL).dump(event)
        except Exception as exc:  # noqa: BLE001 - counted and logged below
            self.dropped["unpicklable"] += 1
            if self.dropped["unpicklable"] <= 5:
                logger.error("cannot hand a %s event to the reporting process (%s: %s); it "
                             "is dropped and counted (stats.json processes.queue.dropped)",
                             event[0].name.lower(), type(exc).__name__, exc)
            return False
        return True

    def _drop_data(self, batch: list[tuple[Event, Any]]) -> list[tuple[Event, Any]]:
        kept = []
        for kind, payload in batch:
            name = DATA_EVENTS.get(kind)
            if name is None:
                kept.append((kind, payload))
            else:
                self.dropped[name] += len(payload) if kind is Event.JUDGED else 1
        return kept

    def counters(self) -> dict[str, Any]:
        """``stats.json`` ``processes``: both processes and the queue between them."""
        return {
            "jobs": 2,
            "capture": {"pid": os.getpid()},
            "queue": {
                "max_bytes": self._outbox.max_bytes,
                "queued_bytes": self._outbox.queued_bytes,
                "peak_bytes": self._outbox.peak_bytes,
                "batches": self.batches,
                "bytes": self.bytes_sent,
                "full_policy": "wait" if self._wait else "drop",
                "waited_s": round(self.waited_s, 3),
                "dropped": {name: self.dropped.get(name, 0)
                            for name in ("responses", "queries", "anomalies", "frames",
                                         "unpicklable")},
            },
            "messages": {"sent_whole": self._carrier.sent_whole,
                         "sent_again": self._carrier.sent_again},
        }

    # --- failures ------------------------------------------------------------------------

    def check(self) -> None:
        """Raise ``ReporterFailed`` if the reporting process is gone."""
        if self._outbox.error is not None or not self._alive():
            if self._results.poll(0):
                kind, payload = self._receive()
                if kind == "failed":
                    raise self._failed(str(payload))
                if kind == "done":
                    return
            raise self._failed(None)

    def _failure_text(self, pid: int | None, how: str, detail: str) -> str:
        return (f"--jobs 2: the reporting process (pid {pid}) ended before the run finished "
                f"({how}){detail}; responses judged since its last stats.json update may be "
                "missing from the outputs")



# --- the reporting process -------------------------------------------------------------


def _reporter_process(options: LiveOptions, stats_stream: TextIO | None, events: Connection,
                      results: Connection, parents: tuple[Connection, ...]) -> None:
    """The reporting process: open the outputs, answer ``ready``, apply event batches until
    ``FINISH``, answer ``done`` with the outcome (``failed`` with a traceback on a crash)."""
    for conn in parents:  # the capturing process's ends: its exit must close the pipe here
        conn.close()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)  # the capturing process decides when to stop
    try:
        reporter, alert_stream = _open_reporter(options, stats_stream)
    except AuditorError as exc:
        _answer(results, ("error", str(exc)))
        return
    try:
        _answer(results, ("ready", reporter.metrics.url if reporter.metrics is not None
                          else None))
        outcome, finished = _serve(reporter, events)
        if not finished:
            logger.error("the capturing process ended without finishing the run; outputs "
                         "closed with what it had sent")
        _answer(results, ("done", outcome))
        if not finished:
            sys.exit(1)
    except AuditorError as exc:
        # The capturing process ended before it started (an unreadable input, which it
        # says itself): a traceback from here would only bury that line.
        _answer(results, ("failed", str(exc)))
        sys.exit(1)
    except Exception:
        _answer(results, ("failed", traceback.format_exc()))
        raise
    finally:
        if reporter.metrics is not None:
            reporter.metrics.close()
        if alert_stream is not None:
            alert_stream.close()


def _answer(results: Connection, answer: tuple[str, Any]) -> None:
    """Answer the capturing process, unless it is gone (then nobody is waiting)."""
    try:
        results.send(answer)
    except OSError:
        logger.debug("the capturing process is gone; answer %r not sent", answer[0])


def _open_reporter(options: LiveOptions, stats_stream: TextIO | None) -> tuple[
        LiveReporter, NumberedJsonLines | None]:
    limits = options.limits
    alert_file = (_open_alerts(options.alerts_path, options.rotation)
                  if options.alerts_path is not None else None)
    metrics = _open_metrics(options)
    caches = Caches(limits)
    sources = finding_sources(None, limits, caches, RecordDigests(limits.digest_memo))
    sink = AlertSink(alert_file if alert_file is not None else sys.stdout,
                     options.syslog_socket)
    reporter = LiveReporter(options, sink, stats_stream, caches, sources)
    reporter.metrics = metrics
    return reporter, alert_file


def _serve(reporter: LiveReporter, events: Connection) -> tuple[LiveOutcome, bool]:
    """Apply batches until ``FINISH`` (True) or a closed pipe (False); the outcome."""
    front: FrontCounters | None = None
    tick_s = reporter.options.tick_s
    feed = _Feed()
    rebuilder = Rebuilder(reporter.options.limits, reporter.caches)
    reporter.parsed_again = lambda: rebuilder.parsed_again
    unpickler = CarriedUnpickler(feed, rebuilder)
    while True:
        if events.poll(tick_s):
            try:
                message = events.recv_bytes()
            except EOFError:
                break
            unpickler = next_unpickler(message[:1], unpickler, feed, rebuilder)
            feed.set(memoryview(message)[1:])
            batch = unpickler.load()
            for kind, payload in batch:
                if kind is Event.FINISH:
                    return reporter.finish(payload), True
                if kind is Event.COUNTERS:
                    front = payload
                else:
                    _apply(reporter, kind, payload)
        if front is not None:
            reporter.timers(_latest(front), time.monotonic())
    if front is None:
        raise AuditorError("--jobs 2: the capturing process ended before it started")
    return reporter.finish(front), False


def _latest(front: FrontCounters) -> Callable[[], FrontCounters]:
    return lambda: front


def _apply(reporter: LiveReporter, kind: Event, payload: Any) -> None:
    if kind is Event.JUDGED:
        reporter.judged(payload)
    elif kind is Event.QUERY:
        reporter.query(payload)
    elif kind is Event.ANOMALY:
        reporter.anomaly(payload)
    elif kind is Event.EXPIRE:
        reporter.expire(*payload)
    elif kind is Event.WATCH:
        reporter.watch(payload)
    elif kind is Event.ROTATE:
        reporter.rotate()
    else:
        raise AssertionError(f"unexpected event {kind!r}")


# --- the capturing process -------------------------------------------------------------


def _start_reporter(options: LiveOptions, stats_stream: TextIO | None) -> ReporterLink:
    """Fork the reporting process (before any capture thread or key cache is opened here) and
    wait until its outputs are open."""
    process, events_write, results_read = fork_second(
        _reporter_process, "dnssec-auditor-reporter", options, stats_stream)
    try:
        return ReporterLink(options, process, events_write, results_read)
    except BaseException:  # it could not open its outputs: it has ended, or is told to
        events_write.close()
        process.join(POLL_S * 20)
        if process.is_alive():
            process.terminate()
            process.join()
        raise


def run_live_jobs(options: LiveOptions, source: FrameSource | None = None,
                  stats_stream: TextIO | None = None) -> LiveOutcome:
    """``run_live`` on two processes: this one captures, decodes, matches and judges; the
    reporting process writes every output. Same signals, options and outputs."""
    options.out_dir.mkdir(parents=True, exist_ok=True)
    keys_path = options.keys_path or options.out_dir / "keys.sqlite"
    link = _start_reporter(options, stats_stream)
    capture: FrameSource | None = source
    try:
        capture = capture if capture is not None else open_source(options)
        with KeyCache(str(keys_path)) as cache, _Signals().installed() as signals:
            auditor = LiveAuditor(options, cache, None, stats_stream, reporter=link.bind)
            try:
                return run_until_stopped(auditor, capture, signals)
            except ReporterFailed:
                auditor.persist_keys()  # what was learned still helps the next run
                raise
    except BaseException:
        link.abort()
        raise
    finally:
        if capture is not None:
            capture.close()
