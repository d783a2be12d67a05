"""Live orchestration: judge responses as frames arrive, alert at once, roll the output files,
keep every piece of state bounded, and shut down without losing anything judged."""

from __future__ import annotations

import logging
import logging.handlers
import os
import resource
import signal
import sys
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import FrameType
from typing import Any, Protocol, TextIO

from auditor import __version__
from auditor.anomaly import Anomaly
from auditor.capture.frame import Frame
from auditor.capture.live import FrameSource, LiveCapture, StreamCapture, default_filter
from auditor.decode.transport import DNS_PORTS
from auditor.engine.build import (
    FindingSource,
    finding_sources,
    key_material,
)
from auditor.engine.caches import Caches
from auditor.engine.contain import Containment
from auditor.engine.judge import Rendered, ZoneChanges, streaming_judge
from auditor.engine.limits import Limits
from auditor.engine.reporting import Reporting
from auditor.engine.stats import evictions, stats_document
from auditor.engine.stream import EvidenceStream
from auditor.errors import ConfigError
from auditor.evidence import ResponseEvidence, build_evidence
from auditor.findings.catalogue import Finding
from auditor.findings.validation import ValidationFindings
from auditor.findings.zones import ZoneHealth
from auditor.forgery import evidence_refs
from auditor.memo import collecting_rarely
from auditor.messages import ObservedMessage
from auditor.report.alerts import FindingLog, ResponseFacts, live_severity, response_facts
from auditor.report.eve import eve_alert, eve_dns
from auditor.report.evidence_pcap import FrameRing
from auditor.report.files import json_text, write_json
from auditor.report.metrics import MetricsServer, MetricsSnapshot
from auditor.report.records import (
    anomaly_record,
    response_record,
)
from auditor.report.rolling import (
    NumberedJsonLines,
    RollingJsonLines,
    RollingParquet,
    RollingPcapng,
    Rotation,
)
from auditor.resolution import ResolutionLinker
from auditor.transactions import Transaction
from auditor.trust import KeyCache, KeyView, load_anchors
from auditor.validate import RFC8624, ValidationPolicy, Validator, Verdict
from auditor.validate.budget import ZoneRate
from auditor.validate.reuse import VerdictCache

logger = logging.getLogger(__name__)

NS = 1_000_000_000


LiveLimits = Limits
"""The live preset's caps (``Limits``: its field defaults are the live preset); ``live
--limit NAME=N`` and the cap options override it field by field."""


class AlertFormat(StrEnum):
    """The form of the alert output."""

    JSON = "json"
    """One ``dnssec-auditor/findings/2`` record per line."""
    EVE = "eve"
    """Suricata EVE events: ``alert`` per alert, ``dns`` per judged response."""


@dataclass(frozen=True, slots=True)
class LiveOptions:
    """Everything one ``live`` run needs, as given on the command line."""

    out_dir: Path
    """Directory of the rolling outputs, ``stats.json`` and the key cache."""
    interfaces: tuple[str, ...] = ()
    """Interfaces to capture on (empty when ``read`` is given)."""
    read: str | None = None
    """A pcap/pcapng stream to read instead (``-`` is standard input)."""
    bpf: str | None = None
    """Capture filter; None uses ``default_filter(ports)``."""
    ports: frozenset[int] = DNS_PORTS
    """DNS port set."""
    trust_anchors: tuple[str, ...] = ()
    """Trust anchor files."""
    keys_path: Path | None = None
    """SQLite key cache; default ``keys.sqlite`` in ``out_dir``."""
    policy: ValidationPolicy = RFC8624
    """Algorithm, digest and clock-skew policy."""
    alerts_path: Path | None = None
    """Where alerts go; None writes them to standard output. An existing file is appended to.
    This path is always the file being written: it is rotated with ``rotation`` (and on
    SIGHUP) by renaming, as logrotate and Python's ``RotatingFileHandler`` do: ``<path>``
    becomes ``<path>.1``, ``<path>.1`` becomes ``<path>.2`` and so on, a new ``<path>`` is
    created at once, and at most ``rotation.keep`` numbered pieces are kept (0: all)."""
    syslog_socket: str | None = None
    """Also send every alert to syslog through this unix socket (e.g. ``/dev/log``)."""
    rotation: Rotation = field(default_factory=Rotation)
    """Rotation and retention of the output pieces."""
    evidence: bool = False
    """Keep rolling pcapng pieces of the frames behind forged/suspicious findings."""
    stats_interval_s: float = 10.0
    """Seconds (wall clock) between stats lines on standard error and ``stats.json`` updates."""
    cache_interval_s: float = 30.0
    """Seconds between writes of learned keys to the key cache."""
    parquet_flush_s: float = 5.0
    """Seconds between Parquet row-group writes."""
    tick_s: float = 0.1
    """Longest wait for frames before the loop runs its timer work."""
    limits: LiveLimits = field(default_factory=LiveLimits)
    """State caps."""
    at_ns: int | None = None
    """Judge every signature at this time (replaying an incident onto a tap); None judges
    each at its packet's capture time (for ``read``, the stream's own timestamps)."""
    metrics_port: int | None = None
    """Serve Prometheus metrics on this TCP port (0: any free port); None serves none."""
    metrics_address: str = "127.0.0.1"
    """Address the metrics endpoint listens on (loopback unless the operator opens it)."""
    alert_format: AlertFormat = AlertFormat.JSON
    """How alerts are written: our records, or Suricata EVE events (with a ``dns`` event for
    every judged response)."""
    verdict_cache: bool = True
    """Judge each distinct answer once while its verdict holds (``VerdictCache``); off,
    every response is judged afresh (as before issue 14)."""
    jobs: int = 1
    """Processes: 1 captures, judges and reports in one; 2 reports (finding stages, outputs,
    alerts, stats, metrics) in a second process fed by the capturing and judging one
    (``auditor/scale/live.py``)."""
    queue_bytes: int = 32 << 20
    """With ``jobs`` 2: pickled batches waiting for the reporting process, at most. Full,
    a stream (``read``) waits; a capture on interfaces drops the batch's responses, queries
    and anomalies, counted (``internal_drops.reporter_queue_full``), so capture goes on."""


@dataclass(frozen=True, slots=True)
class LiveOutcome:
    """What a live run ended with."""

    stats: dict[str, Any]
    """The final ``stats.json``."""
    files: tuple[Path, ...]
    """Every output piece still on disk, plus ``stats.json``."""


PERSIST_SHARE_FACTOR = 10
"""The key cache is written at most once per this many times the last write took."""


class CaptureClock:
    """Capture time as of now: the last frame's timestamp advanced by the wall time since it
    arrived. Used only to decide *when* held state is released, never inside validation."""

    def __init__(self) -> None:
        self._last_ts_ns: int | None = None
        self._last_mono_ns = 0

    def saw(self, ts_ns: int, mono_ns: int) -> None:
        """A frame with capture time ``ts_ns`` arrived at monotonic time ``mono_ns``."""
        if self._last_ts_ns is None or ts_ns >= self._last_ts_ns:
            self._last_ts_ns = ts_ns
            self._last_mono_ns = mono_ns

    def now_ns(self, mono_ns: int) -> int | None:
        """Capture time now, None before the first frame."""
        if self._last_ts_ns is None:
            return None
        return self._last_ts_ns + max(0, mono_ns - self._last_mono_ns)


class AlertSink:
    """One JSON object per line, flushed at once, to a stream or to a file rotated like the
    other outputs (``NumberedJsonLines``); optionally mirrored to syslog."""

    def __init__(self, stream: TextIO | NumberedJsonLines,
                 syslog_socket: str | None = None) -> None:
        self._stream = stream
        self.count = 0
        self.events = 0
        """Lines written: alerts plus, in EVE form, ``dns`` events."""
        self.failed = 0
        """Alerts that could not be written to the stream (closed pipe, full disk)."""
        self._syslog: logging.Logger | None = None
        if syslog_socket is not None:
            handler = logging.handlers.SysLogHandler(
                address=syslog_socket, facility=logging.handlers.SysLogHandler.LOG_DAEMON
            )
            handler.setFormatter(logging.Formatter("dnssec-auditor: %(message)s"))
            self._syslog = logging.getLogger(f"{__name__}.syslog")
            self._syslog.handlers[:] = [handler]
            self._syslog.setLevel(logging.INFO)
            self._syslog.propagate = False

    def send(self, record: dict[str, Any], *, alert: bool = True) -> None:
        """Write one alert (or, ``alert=False``, another event of the alert stream) now."""
        line = json_text(record, default=str)
        self.count += alert
        self.events += 1
        try:
            self._write(line)
        except (OSError, ValueError) as exc:  # a closed pipe must not stop the audit
            self.failed += 1
            if self.failed == 1:
                logger.error("cannot write alerts (%s); they are still in findings files", exc)
        if self._syslog is not None and alert:
            self._syslog.warning("%s", line)

    def _write(self, line: str) -> None:
        if isinstance(self._stream, NumberedJsonLines):
            self._stream.write_line(line)  # rotates between lines, flushes each
        else:
            self._stream.write(line + "\n")
            self._stream.flush()

    @property
    def rotations(self) -> int:
        """Times the alerts file was rotated (0 on a stream)."""
        return self._stream.rotations if isinstance(self._stream, NumberedJsonLines) else 0

    @property
    def rotation_failures(self) -> int:
        """Renames or reopens of the alerts file that failed (0 on a stream)."""
        return self._stream.failures if isinstance(self._stream, NumberedJsonLines) else 0

    def maybe_rotate(self) -> None:
        """Rotate the alerts file if it reached its age or size limit (never raises)."""
        if isinstance(self._stream, NumberedJsonLines):
            self._stream.maybe_rotate()

    def rotate(self) -> None:
        """Rotate the alerts file now unless it is empty (never raises); a stream stays."""
        if isinstance(self._stream, NumberedJsonLines):
            self._stream.rotate()

    def close(self) -> None:
        """Close the syslog handler (the stream or file belongs to the caller)."""
        if self._syslog is not None:
            for handler in self._syslog.handlers:
                handler.close()
            self._syslog.handlers[:] = []


def memory_bytes() -> int:
    """Resident set size of this process now."""
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _cpu_s() -> float:
    """CPU seconds (user and system) this process has used."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class ReportSide(Protocol):
    """Where the capturing side of a live run hands what it decoded and judged, in the order it
    happened: a ``LiveReporter`` in the same process (``--jobs 1``), or a link to one in a
    process of its own (``--jobs 2``, ``auditor/scale/live.py``)."""

    def watch(self, frame: Frame) -> None:
        """A frame was captured (kept in the evidence ring with ``--evidence``)."""
        ...

    def query(self, message: ObservedMessage) -> None:
        """A query was decoded (the forgery stage's and the linker's view of queries)."""
        ...

    def anomaly(self, anomaly: Anomaly) -> None:
        """A traffic anomaly or a contained internal error, for the findings output."""
        ...

    def judged(self, judged: list[Rendered]) -> None:
        """Responses the judge released, with their verdicts."""
        ...

    def expire(self, now_ns: int, mono_s: float) -> None:
        """Capture time is ``now_ns`` (monotonic time ``mono_s``): close the finding stages'
        windows, send due repeats."""
        ...

    def timers(self, front: Callable[[], FrontCounters], mono_s: float) -> None:
        """Wall-clock work after each batch of frames (files, stats, metrics) at monotonic
        time ``mono_s``; ``front`` gives the capturing side's counters as of now."""
        ...

    def rotate(self) -> None:
        """SIGHUP: start new output pieces and rotate the alerts file."""
        ...

    def finish(self, front: FrontCounters) -> LiveOutcome:
        """End of the run: flush every finding stage and output, write the final stats."""
        ...


FrontCounters = dict[str, Any]
"""The capturing side's counters (``LiveAuditor.front_counters``), JSON-ready."""


class LiveReporter:
    """The reporting side of a live run: judged responses in, ``responses.jsonl``, the flow
    table, findings, alerts, the evidence pcapng, ``stats.json`` and metrics out.

    Runs in the capturing process (``--jobs 1``) or in a process of its own fed the same calls
    in the same order (``--jobs 2``); ``caches``: the run's memos (its own in another process).
    """

    def __init__(self, options: LiveOptions, alerts: AlertSink, stats_stream: TextIO | None,
                 caches: Caches, sources: list[FindingSource]) -> None:
        self.options = options
        self.alerts = alerts
        self.stats_stream = stats_stream
        self.caches = caches
        self.parsed_again: Callable[[], int] | None = None
        """In a process of its own: how many messages it had to parse again
        (``scale/carry.Rebuilder.parsed_again``, 0 unless the two processes fell out of
        step; ``stats.json`` ``processes.messages``)."""
        limits = options.limits
        out = options.out_dir
        out.mkdir(parents=True, exist_ok=True)
        rotation = options.rotation
        # pandas/pyarrow (about 85 MB) only when a live run starts, not for every command.
        from auditor.report.tables import FLOW_SCHEMA, flow_row

        self._flow_row = flow_row
        self.responses = RollingJsonLines(out, "responses", rotation)
        self.table = RollingParquet(out, "responses", rotation, FLOW_SCHEMA)
        self.findings = RollingJsonLines(out, "findings", rotation)
        self.evidence = (RollingPcapng(out, "evidence", rotation,
                                       f"dnssec-auditor {__version__} live evidence")
                         if options.evidence else None)
        self.ring = FrameRing(max_frames=50_000, max_bytes=64 << 20) if options.evidence else None
        self._evidence_written: OrderedDict[tuple[str, int], None] = OrderedDict()
        self.errors = Containment(self.anomaly)
        """Our own failures while reporting a response, contained to it (``Containment``)."""
        self.sources: list[FindingSource] = sources
        self.reporting = Reporting(
            sources, ResolutionLinker(), write=self.responses.write, on_findings=self._findings,
            errors=self.errors, render=self._response_record, on_record=self._live_record,
            # Stages that merge until flush are flushed after every response, so their
            # findings are written as they are made (FindingLog merges them per key).
            merged_per_response=tuple(s for s in sources if isinstance(s, ValidationFindings)))
        self.linker = self.reporting.linker
        """Links each resolver's answer to a client to its upstream exchanges (bounded)."""
        self.query: Callable[[ObservedMessage], None] = self.reporting.query_hook()
        """Every decoded query: the forgery stage's view, then the linker's."""
        self.tally = self.reporting.tally
        """Responses written per verdict status and code."""
        self.alert_codes: Counter[str] = Counter()
        self.started_wall = time.time()
        self.started_mono = time.monotonic()
        self.run_id = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self.started_wall))
        """Names this run in frame references (frame numbers restart with each run)."""
        self.log = FindingLog(write=self.findings.write, alert=self._alert, run_id=self.run_id,
                              interval_ns=limits.alert_interval_ns,
                              max_keys=limits.finding_keys)
        self._facts: OrderedDict[tuple[str, int], ResponseFacts] = OrderedDict()
        self.finding_counts: Counter[tuple[str, str]] = Counter()
        """Finding occurrences by (code, severity as reported)."""
        self.metrics: MetricsServer | None = None
        """The Prometheus endpoint, fed a snapshot once a second by ``timers``."""
        self._next_metrics = 0.0
        self._next_log = 0.0
        self.peak_memory = 0
        self.memory_samples: deque[tuple[float, int]] = deque(maxlen=720)
        self._next_stats = self.started_mono + options.stats_interval_s
        self._next_parquet = self.started_mono + options.parquet_flush_s
        self._dirty = False

    # --- what the capturing side hands on ------------------------------------------------

    def watch(self, frame: Frame) -> None:
        """Keep the frame in the evidence ring (``--evidence``)."""
        if self.ring is not None:
            for _ in self.ring.watch((frame,)):
                pass

    def anomaly(self, anomaly: Anomaly) -> None:
        """Write an anomaly (or a contained internal error) to the findings output."""
        self.findings.write(anomaly_record(anomaly, self.caches.times))

    def judged(self, judged: list[Rendered]) -> None:
        """Report judged responses: records, finding stages, alerts."""
        self.reporting.report_all(judged)

    def expire(self, now_ns: int, mono_s: float) -> None:
        """Close the forgery stage's windows as of ``now_ns``; send the findings log's due
        repeats (at most once a second of monotonic time: they are due once a minute)."""
        self.reporting.expire(now_ns)
        if mono_s >= self._next_log:
            self._next_log = mono_s + 1.0  # repeats are due once a minute: a second is plenty
            self.log.tick(now_ns)

    def _response_record(self, evidence: ResponseEvidence) -> dict[str, Any]:
        """``response_record`` with the run's memos of name and time texts."""
        return response_record(evidence, self.caches.parse.name_text, self.caches.times)

    def _live_record(self, evidence: ResponseEvidence, verdict: Verdict,
                     record: dict[str, Any]) -> None:
        """What live mode does with each response record besides writing it: the flow
        table, the facts later findings cite, and (EVE form) a ``dns`` event."""
        self.table.write(self._flow_row(record))
        self._dirty = True
        facts = response_facts(record)
        self._remember(facts, evidence)
        if self.options.alert_format is AlertFormat.EVE:
            self.alerts.send(eve_dns(evidence, verdict, facts), alert=False)

    def _remember(self, facts: ResponseFacts, evidence: ResponseEvidence) -> None:
        """Keep the facts of a response for the findings that cite its frames (bounded)."""
        for number in evidence.transaction.response.wire.frames:
            self._facts[(facts.capture, number)] = facts
        while len(self._facts) > self.options.limits.alert_facts:
            self._facts.popitem(last=False)

    def _facts_of(self, finding: Finding) -> ResponseFacts | None:
        where = finding.provenance
        for number in reversed(where.frames):
            facts = self._facts.get((where.capture, number))
            if facts is not None:
                return facts
        return None

    def _findings(self, found: Iterable[Finding]) -> None:
        for finding in found:
            facts = self._facts_of(finding)
            self.finding_counts[(finding.code, live_severity(finding, facts).value)] += 1
            self.log.add(finding, facts)
            self._keep_evidence(finding)

    def _alert(self, record: dict[str, Any]) -> None:
        self.alerts.send(eve_alert(record) if self.options.alert_format is AlertFormat.EVE
                         else record)
        self.alert_codes[str(record["code"])] += 1

    def _keep_evidence(self, finding: Finding) -> None:
        if self.ring is None or self.evidence is None:
            return
        refs = [ref for ref in evidence_refs(finding) if ref not in self._evidence_written]
        self.ring.keep(refs)
        frames = [self.ring.kept.pop(ref) for ref in refs if ref in self.ring.kept]
        frames.sort(key=lambda f: (f.ts_ns, f.capture, f.number))
        self.evidence.write_frames(frames)
        for frame in frames:
            self._evidence_written[(frame.capture, frame.number)] = None
        while len(self._evidence_written) > 100_000:
            self._evidence_written.popitem(last=False)

    # --- timer ---------------------------------------------------------------------------

    def timers(self, front: Callable[[], FrontCounters], mono_s: float) -> None:
        """Flush, rotate, write Parquet row groups, print stats and feed the metrics when
        each is due at monotonic time ``mono_s`` (``front``: the capturing side's counters)."""
        mono = mono_s
        if self._dirty:
            self.responses.flush()
            self.findings.flush()
            self._dirty = False
        for output in self._outputs():
            output.maybe_rotate()
        self.alerts.maybe_rotate()
        if mono >= self._next_parquet:
            self._next_parquet = mono + self.options.parquet_flush_s
            self.table.flush()
        if mono >= self._next_stats:
            self._next_stats = mono + self.options.stats_interval_s
            self.write_stats(front(), final=False)
        if self.metrics is not None and mono >= self._next_metrics:
            self._next_metrics = mono + 1.0
            self.metrics.collector.update(self.metrics_snapshot(front()))

    def metrics_snapshot(self, front: FrontCounters) -> MetricsSnapshot:
        """The counters the metrics endpoint serves, as of now."""
        return MetricsSnapshot(
            frames_read=int(front["stream"]["frames_read"]), kernel=dict(front["capture"]),
            internal_drops=self._internal_drops(front), verdicts=dict(self.tally.verdicts),
            findings=dict(self.finding_counts), alerts=self.alerts.count,
            held=front["held"], state=self._state_sizes(front),
            evictions=self._evictions(front), lag_s=front["lag_s"],
            rss_bytes=self._memory(front)[0], started_s=self.started_wall)

    def _outputs(self) -> list[RollingJsonLines | RollingParquet | RollingPcapng]:
        outputs: list[RollingJsonLines | RollingParquet | RollingPcapng] = [
            self.responses, self.table, self.findings]
        if self.evidence is not None:
            outputs.append(self.evidence)
        return outputs

    def rotate(self) -> None:
        """SIGHUP: close every current piece (the next records open new ones) and rename the
        alerts file to ``<path>.1``, creating a new one."""
        for output in self._outputs():
            output.rotate()
        self.alerts.rotate()
        logger.info("output files rotated")

    # --- end -----------------------------------------------------------------------------

    def finish(self, front: FrontCounters) -> LiveOutcome:
        """Flush every finding stage and file, write the summary (everything judged was
        handed in before)."""
        self.reporting.flush()
        self.log.flush()
        for output in self._outputs():
            output.close()
        stats = self.write_stats(front, final=True)
        self.alerts.close()
        files = [path for output in self._outputs() for path in output.pieces if path.exists()]
        if self.metrics is not None:
            self.metrics.collector.update(self.metrics_snapshot(front))
        return LiveOutcome(stats, (*files, self.options.out_dir / "stats.json"))

    # --- stats ---------------------------------------------------------------------------

    def _memory(self, front: FrontCounters) -> tuple[int, int]:
        """Resident bytes now and the largest so far (``ru_maxrss``) of the run: this
        process, plus the capturing one when that is another."""
        memory = memory_bytes()
        largest = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        if front["pid"] != os.getpid():
            memory += front["rss_bytes"]
            largest += front["max_rss_bytes"]
        return memory, largest

    def stats(self, front: FrontCounters, *, final: bool) -> dict[str, Any]:
        """The ``stats.json`` document as of now (``front``: the capturing side's counters)."""
        memory, largest = self._memory(front)
        self.peak_memory = max(self.peak_memory, memory)
        self.memory_samples.append((round(time.monotonic() - self.started_mono, 1), memory))
        head = {
            "mode": "live",
            "final": final,
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started_wall)),
            "elapsed_s": round(time.monotonic() - self.started_mono, 3),
            "interfaces": list(self.options.interfaces),
            "read": self.options.read,
            "capture": dict(front["capture"]),
        }
        written = {"responses_written": self.responses.count,
                   "findings_written": self.findings.count}
        sections: dict[str, Any] = {
            "alerts": self.alerts.count,
            "alerts_rotations": self.alerts.rotations,
            "alerts_rotation_failures": self.alerts.rotation_failures,
            "alerts_by_code": dict(self.alert_codes.most_common()),
            "alert_format": self.options.alert_format.value,
            "findings_merged": {"keys": len(self.log), "repeats_deferred": self.log.suppressed,
                                "keys_evicted": self.log.evicted},
            "internal_drops": self._internal_drops(front),
            "evictions": self._evictions(front),
            "state": self._state_sizes(front),
            "validation": {
                "mode": "streaming",
                "reference_time": _reference_text(self.options.at_ns),
                "policy": self.options.policy.name,
                "key_cache": str(self.options.keys_path or
                                 self.options.out_dir / "keys.sqlite"),
                "key_cache_rows_written": front["key_cache_rows_written"],
                "key_cache_persist_s": round(front["key_cache_persist_s"], 3),
                "verdicts": self.tally.statuses(),
                "codes": self.tally.code_counts(),
                "judge": front["judge"],
                "verdict_cache": front["verdict_cache"],
            },
            "memory": {"rss_bytes": memory, "peak_rss_bytes": self.peak_memory,
                       "max_rss_bytes": largest},
            "outputs": {
                output.stem + output.suffix: {
                    "records": output.count, "pieces": len(output.pieces),
                    "deleted": output.deleted,
                    "current": str(output.current) if output.current else None}
                for output in self._outputs()
            },
        }
        if front.get("processes") is not None:
            sections["processes"] = {
                **front["processes"],
                "messages": {**front["processes"]["messages"],
                             "parsed_again": (self.parsed_again() if self.parsed_again
                                              is not None else 0)},
                "capture": {**front["processes"]["capture"], "rss_bytes": front["rss_bytes"],
                            "cpu_s": front["cpu_s"]},
                "reporter": {"pid": os.getpid(), "rss_bytes": memory - front["rss_bytes"],
                             "cpu_s": round(_cpu_s(), 3)}}
        return stats_document(head, front["stream"], written, sections)

    def _internal_drops(self, front: FrontCounters) -> dict[str, int]:
        drops = dict(front["internal_drops"])
        drops["internal_errors"] += self.errors.count
        return drops

    def _evictions(self, front: FrontCounters) -> dict[str, int]:
        return evictions(front["material_evicted"], self.sources, front["verdict_cache_evicted"])

    def _state_sizes(self, front: FrontCounters) -> dict[str, int]:
        return {
            **front["state"],
            "zones": sum(len(s) for s in self.sources if isinstance(s, ZoneHealth)),
            "finding_keys": len(self.log),
            "alert_facts": len(self._facts),
            **front["state_tail"],
        }

    def write_stats(self, front: FrontCounters, *, final: bool) -> dict[str, Any]:
        """Write ``stats.json`` atomically and print the one-line summary."""
        stats = self.stats(front, final=final)
        write_json(self.options.out_dir / "stats.json", stats)
        if self.stats_stream is not None:
            self.stats_stream.write(stats_line(stats) + "\n")
            self.stats_stream.flush()
        return stats


class LiveAuditor:
    """Sans-capture core of a live run: ``feed`` frames, call ``tick`` often, ``finish`` once.

    Owns the decode/matching stream, the key material and the judge; what they release goes
    to ``reporter`` (``ReportSide``): by default a ``LiveReporter`` in this process, which owns
    the finding stages and the rolling outputs. ``wall`` (monotonic) is passed in so tests can
    drive it.
    """

    def __init__(self, options: LiveOptions, cache: KeyCache, alerts: AlertSink | None,
                 stats_stream: TextIO | None = None,
                 reporter: Callable[[LiveAuditor], ReportSide] | None = None) -> None:
        """``reporter``: builds the reporting side from this auditor (None: a
        ``LiveReporter`` here, writing alerts to ``alerts``)."""
        self.options = options
        self.cache = cache
        self.stats_stream = stats_stream
        limits = options.limits
        options.out_dir.mkdir(parents=True, exist_ok=True)
        self.anchors = load_anchors(list(options.trust_anchors))
        self.caches = Caches(limits)
        """The run's memos, handed to the stages that use them."""
        self.material = key_material(limits)
        # KeyTrap / NSEC3 (CVE-2023-50387, CVE-2023-50868): besides the per-response budget,
        # a zone gets a bounded amount of validation work per second of capture time.
        self.validator = Validator(KeyView(self.anchors, self.material, cache), options.policy,
                                   at_ns=options.at_ns, signature_memo=limits.signature_memo,
                                   name_text=self.caches.parse.name_text,
                                   zone_rate=ZoneRate(options.policy.budget,
                                                      max_zones=limits.zones))
        # A hit costs no validation work, so it spends none of its zone's rate; verdicts the
        # rate or a budget cut short are never stored (VerdictCache).
        self.verdict_cache = (
            VerdictCache(self.validator, self.validator.judge, max_entries=limits.verdict_cache,
                         max_bytes=limits.verdict_cache_bytes, growing_material=True,
                         untouched=ZoneChanges(self.material, limits.zones,
                                               self.caches.names).untouched)
            if options.verdict_cache else None)
        self.judge = streaming_judge(self.material, self.validator, limits, self.verdict_cache,
                                     self.caches.names, self.caches.times)
        self.link_counters: Callable[[], dict[str, Any]] | None = None
        """With the reporting side in another process: the counters of both processes and
        the queue between them (``stats.json`` ``processes``)."""
        self.metrics_url: str | None = None
        """The metrics endpoint served by the reporting side in another process."""
        if reporter is None:
            assert alerts is not None, "a reporter in this process writes alerts"
            self.local: LiveReporter | None = LiveReporter(
                options, alerts, stats_stream, self.caches,
                finding_sources(self.validator, limits, self.caches))
            self.reporter: ReportSide = self.local
        else:
            self.local = None
            self.reporter = reporter(self)
        self.stream = EvidenceStream(
            ports=options.ports,
            on_anomaly=self.reporter.anomaly,
            limits=limits,
            caches=self.caches,
        )
        self.stream.on_query = self.reporter.query
        self.errors = self.stream.errors
        """Internal errors contained per message and per response (``Containment``)."""
        self.clock = CaptureClock()
        self.source_counters: dict[str, int] = {"received": 0, "dropped": 0}
        self.started_mono = time.monotonic()
        self.lag_s = 0.0
        """Wall time minus the capture time of the last frame judged, when it was judged."""
        self.cache_rows_written = 0
        self._next_cache = self.started_mono + options.cache_interval_s
        self.cache_persist_s = 0.0
        """Seconds the last write of learned keys to the key cache took."""

    # --- the reporting side, when it runs here ---------------------------------------------

    def _here(self) -> LiveReporter:
        assert self.local is not None, "the reporting side runs in another process"
        return self.local

    @property
    def alerts(self) -> AlertSink:
        """The alert output (reporting side in this process)."""
        return self._here().alerts

    @property
    def sources(self) -> list[FindingSource]:
        """The finding stages (reporting side in this process)."""
        return self._here().sources

    @property
    def metrics(self) -> MetricsServer | None:
        """The Prometheus endpoint (reporting side in this process)."""
        return self.local.metrics if self.local is not None else None

    @metrics.setter
    def metrics(self, server: MetricsServer | None) -> None:
        self._here().metrics = server

    def stats(self, *, final: bool) -> dict[str, Any]:
        """The ``stats.json`` document as of now (reporting side in this process)."""
        return self._here().stats(self.front_counters(), final=final)

    def write_stats(self, *, final: bool) -> dict[str, Any]:
        """Write ``stats.json`` and the summary line (reporting side in this process)."""
        return self._here().write_stats(self.front_counters(), final=final)

    def metrics_snapshot(self) -> MetricsSnapshot:
        """The metrics as of now (reporting side in this process)."""
        return self._here().metrics_snapshot(self.front_counters())

    def _state_sizes(self) -> dict[str, int]:
        """Every capped table's size now (reporting side in this process)."""
        return self._here()._state_sizes(self.front_counters())

    # --- frames --------------------------------------------------------------------------

    def feed(self, frame: Frame, mono_ns: int | None = None) -> None:
        """Take one frame; judge and report every response it completes. Never raises for
        a problem with this frame: it is counted and logged with the frame."""
        self.clock.saw(frame.ts_ns, time.monotonic_ns() if mono_ns is None else mono_ns)
        if self.options.evidence:
            self.reporter.watch(frame)
        try:
            transactions = self.stream.feed(frame)
        except Exception as exc:  # messages are contained by the stream; this is a backstop
            self.errors.frame_failed(frame, exc)
            return
        for transaction in transactions:
            self._judge_new(transaction)

    def _judge_new(self, transaction: Transaction) -> None:
        """Build a response's evidence, judge it and report what the judge releases."""
        try:
            judged = self.judge.feed(build_evidence(transaction, self.caches.facts))
        except Exception as exc:  # our own bug must not stop the run
            self.errors.response_failed(transaction, exc)
            return
        if judged:
            self.reporter.judged(judged)

    # --- timer ---------------------------------------------------------------------------

    def tick(self, mono_ns: int | None = None) -> None:
        """Timer work: release held responses, flush, rotate, persist keys, print stats."""
        mono_ns = time.monotonic_ns() if mono_ns is None else mono_ns
        now_ns = self.clock.now_ns(mono_ns)
        if now_ns is not None:
            released = self.judge.tick(now_ns)
            if released:
                self.reporter.judged(released)
            self.reporter.expire(now_ns, mono_ns / NS)
        mono = mono_ns / NS
        if mono >= self._next_cache:
            took_s = self._timed_persist()
            # Persisting recomputes every known zone's trust: with tens of thousands of zones
            # it takes seconds, so it never gets more than a tenth of the time.
            self._next_cache = mono + max(self.options.cache_interval_s,
                                          PERSIST_SHARE_FACTOR * took_s)
        self.reporter.timers(self.front_counters, mono)

    def describe(self) -> str:
        """The run's set-up in one line: what is captured, how it is judged, where it goes."""
        options = self.options
        source = (f"capturing on {', '.join(options.interfaces)} (filter "
                  f"{options.bpf or default_filter(options.ports)!r})" if options.interfaces
                  else f"capturing on stream {options.read}")
        anchors = ", ".join(options.trust_anchors) or "IANA root (built in)"
        alerts = str(options.alerts_path) if options.alerts_path else "standard output"
        metrics_url = self.metrics.url if self.metrics is not None else self.metrics_url
        jobs = f"; {options.jobs} processes" if options.jobs > 1 else ""
        return (f"{source}; trust anchors {anchors}; key cache "
                f"{options.keys_path or options.out_dir / 'keys.sqlite'}; reference time "
                f"{_reference_text(options.at_ns).replace('_', ' ')}; policy "
                f"{options.policy.name}; hold {options.limits.hold_ns / NS:g}s; outputs "
                f"{options.out_dir}/; alerts {alerts} ({options.alert_format.value}); "
                f"metrics {metrics_url or 'off'}{jobs}")

    def announce(self, event: str) -> None:
        """Say what the run is doing and its set-up (start, SIGHUP, stop) on the stats stream
        (standard error from the command line), as tcpdump's "listening on" line."""
        line = f"dnssec-auditor: {event}: {self.describe()}"
        if self.stats_stream is not None:
            self.stats_stream.write(line + "\n")
            self.stats_stream.flush()
        else:
            logger.info("%s", line)

    def rotate(self) -> None:
        """SIGHUP: the reporting side starts new output pieces and rotates the alerts file."""
        self.reporter.rotate()

    def persist_keys(self) -> None:
        """Write learned keys to the key cache, so a restarted auditor validates at once."""
        self.cache_rows_written = self.cache.apply(self.validator.cache_updates())

    def _timed_persist(self) -> float:
        started = time.monotonic()
        self.persist_keys()
        took_s = time.monotonic() - started
        self.cache_persist_s = took_s
        return took_s

    def set_source_counters(self, counters: dict[str, int]) -> None:
        """The capture's own counts (kernel received/dropped) for the stats."""
        self.source_counters = dict(counters)

    # --- end -----------------------------------------------------------------------------

    def finish(self) -> LiveOutcome:
        """Judge everything pending, flush every finding stage and file, write the summary."""
        for transaction in self.stream.finish():
            self._judge_new(transaction)
        released = self.judge.flush()
        if released:
            self.reporter.judged(released)
        self.persist_keys()
        return self.reporter.finish(self.front_counters())

    # --- the capturing side's counters ---------------------------------------------------

    def front_counters(self) -> FrontCounters:
        """Decode, matching, judging and key material counters, for the reporting side's
        ``stats.json`` and metrics (JSON-ready: they may cross to another process)."""
        counters = self.stream.counters()
        frames = counters["frames"]
        chain = self.stream.chain
        cache = self.verdict_cache
        drops = {
            "fragment_evicted": frames.get("fragment_evicted", 0),
            "fragment_incomplete": frames.get("fragment_incomplete", 0),
            "tcp_evicted": frames.get("tcp_evicted", 0),
            "queries_evicted": counters["matching"].get("evicted_queries", 0),
            "held_responses_evicted": self.judge.counters()["evicted"],
            "internal_errors": self.errors.count,
        }
        processes = self.link_counters() if self.link_counters is not None else None
        if processes is not None:
            drops["reporter_queue_full"] = processes["queue"]["dropped"]["responses"]
        return {
            "pid": os.getpid(),
            "cpu_s": round(_cpu_s(), 3),
            "rss_bytes": memory_bytes(),
            "max_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "stream": counters,
            "capture": dict(self.source_counters),
            "internal_drops": drops,
            "material_evicted": dict(self.material.evicted),
            "verdict_cache_evicted": None if cache is None else cache.stats.evicted,
            "state": {
                "fragment_frames_held": chain.defragmenter.held_frames,
                "fragment_bytes_held": chain.defragmenter.held_bytes,
                "tcp_flows": chain.tcp.flows,
                "tcp_bytes_held": chain.tcp.held_bytes,
                "held_responses": self.judge.held,
                "held_response_bytes": self.judge.held_bytes,
                "pending_queries": self.stream.matcher.pending,
                "parsed_messages": chain.parser.cached if chain.parser else 0,
            },
            "state_tail": {
                "verdict_cache": len(cache) if cache is not None else 0,
                "verdict_cache_bytes": cache.cached_bytes if cache is not None else 0,
                **{f"key_material_{name}": size for name, size in self.material.sizes().items()},
            },
            "judge": self.judge.counters(),
            "verdict_cache": None if cache is None else cache.stats.as_dict(),
            "key_cache_rows_written": self.cache_rows_written,
            "key_cache_persist_s": self.cache_persist_s,
            "held": self.judge.held,
            "lag_s": self.lag_s,
            "processes": processes,
        }


def _reference_text(at_ns: int | None) -> str:
    """``capture_time``, or the fixed ``--at`` time in ISO 8601."""
    return "capture_time" if at_ns is None else time.strftime(
        "%Y-%m-%dT%H:%M:%SZ", time.gmtime(at_ns // NS))


def stats_line(stats: dict[str, Any]) -> str:
    """One human line: packets, DNS messages, verdicts, drops, memory."""
    verdicts = stats["validation"]["verdicts"]
    drops = stats["internal_drops"]
    capture = stats["capture"]
    internal = sum(drops.values())
    return (
        f"dnssec-auditor: {'final' if stats['final'] else 'stats'}: "
        f"packets {stats['frames_read']} (kernel received {capture.get('received', 0)}, "
        f"dropped {capture.get('dropped', 0)}), DNS messages {stats['frames']['dns_message']}, "
        f"responses {stats['responses_written']} ("
        + ", ".join(f"{name} {count}" for name, count in verdicts.items())
        + f"), alerts {stats['alerts']}, internal drops {internal}, "
        f"memory {stats['memory']['rss_bytes'] / 2**20:.1f} MiB"
    )


class _Signals:
    """SIGINT/SIGTERM ask the loop to stop; SIGHUP asks it to rotate the outputs."""

    def __init__(self) -> None:
        self.stop = False
        self.rotate = False
        self.stop_signal: str | None = None
        """Name of the signal that asked to stop (None: the stream ended)."""

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stop = True
        self.stop_signal = signal.Signals(signum).name

    def _on_hup(self, signum: int, frame: FrameType | None) -> None:
        self.rotate = True

    @contextmanager
    def installed(self) -> Iterator[_Signals]:
        handlers = {signal.SIGINT: self._on_stop, signal.SIGTERM: self._on_stop,
                    signal.SIGHUP: self._on_hup}
        previous = {signum: signal.signal(signum, handler) for signum, handler in
                    handlers.items()}
        try:
            yield self
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


def open_source(options: LiveOptions) -> FrameSource:
    """The capture of a run: the interfaces, or the stream ``options.read``."""
    if options.read is not None:
        return StreamCapture(options.read)
    return LiveCapture(options.interfaces, options.bpf or default_filter(options.ports))


def _open_metrics(options: LiveOptions) -> MetricsServer | None:
    if options.metrics_port is None:
        return None
    try:
        return MetricsServer(options.metrics_port, options.metrics_address)
    except OSError as exc:
        raise ConfigError(f"--metrics-port {options.metrics_port}: cannot listen on "
                          f"{options.metrics_address} ({exc.strerror or exc})") from exc


def _open_alerts(path: Path, rotation: Rotation) -> NumberedJsonLines:
    try:
        return NumberedJsonLines(path, rotation)
    except OSError as exc:
        raise ConfigError(f"--alerts {path}: cannot open for writing "
                          f"({exc.strerror or exc})") from exc


@collecting_rarely
def run_live(options: LiveOptions, source: FrameSource | None = None,
             stats_stream: TextIO | None = None) -> LiveOutcome:
    """Capture until SIGINT/SIGTERM (or the end of a stream), then finish and summarise
    (``options.jobs`` 2: reporting in a second process, ``auditor/scale/live.py``)."""
    if options.jobs > 1:
        from auditor.scale.live import run_live_jobs  # that driver builds on this module

        return run_live_jobs(options, source, stats_stream)
    capture = source if source is not None else open_source(options)
    keys_path = options.keys_path or options.out_dir / "keys.sqlite"
    options.out_dir.mkdir(parents=True, exist_ok=True)
    alert_stream: TextIO | NumberedJsonLines = (
        _open_alerts(options.alerts_path, options.rotation)
        if options.alerts_path is not None else sys.stdout)
    try:
        with KeyCache(str(keys_path)) as cache, _Signals().installed() as signals:
            auditor = LiveAuditor(options, cache, AlertSink(alert_stream, options.syslog_socket),
                                  stats_stream)
            metrics = auditor.metrics = _open_metrics(options)
            outcome = run_until_stopped(auditor, capture, signals)
            if metrics is not None:
                metrics.close()
            return outcome
    finally:
        capture.close()
        if alert_stream is not sys.stdout:
            alert_stream.close()


def run_until_stopped(auditor: LiveAuditor, capture: FrameSource,
                      signals: _Signals) -> LiveOutcome:
    """Judge frames until a stop signal or the end of the stream, then what the kernel had
    already captured, and finish the run (one process or the capturing one of two)."""
    auditor.announce("started")
    _loop(auditor, capture, signals)
    auditor.announce(f"stopping on {signals.stop_signal}" if signals.stop_signal
                     else "end of stream, stopping")
    _drain(auditor, capture)
    auditor.set_source_counters(capture.counters())
    capture.close()
    return auditor.finish()


def _drain(auditor: LiveAuditor, capture: FrameSource, budget_s: float = 10.0) -> None:
    """After a stop: judge the frames the kernel had already captured (bounded in time)."""
    deadline = time.monotonic() + budget_s
    while time.monotonic() < deadline and not capture.exhausted:
        frames = capture.poll(0)
        if not frames:
            return
        for frame in frames:
            auditor.feed(frame)


def _loop(auditor: LiveAuditor, capture: FrameSource, signals: _Signals) -> None:
    tick_s = auditor.options.tick_s
    next_counters = 0.0
    while not signals.stop and not capture.exhausted:
        frames = capture.poll(tick_s)
        for frame in frames:
            auditor.feed(frame)
        if frames:
            auditor.lag_s = time.time() - frames[-1].ts_ns / NS
        if signals.rotate:
            signals.rotate = False
            auditor.rotate()
            auditor.announce("SIGHUP, outputs rotated")
        now = time.monotonic()
        if now >= next_counters:
            next_counters = now + 1.0
            auditor.set_source_counters(capture.counters())
        auditor.tick()
