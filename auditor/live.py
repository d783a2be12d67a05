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
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from auditor import __version__
from auditor.capture.frame import Frame
from auditor.capture.live import FrameSource, LiveCapture, StreamCapture, default_filter
from auditor.decode.transport import DNS_PORTS
from auditor.engine.build import (
    FindingSource,
    finding_sources,
    key_material,
)
from auditor.engine.caches import Caches
from auditor.engine.judge import ZoneChanges, streaming_judge
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


class LiveAuditor:
    """Sans-capture core of a live run: ``feed`` frames, call ``tick`` often, ``finish`` once.

    Owns the decode/matching stream, the key material, the judge, the finding stages and the
    rolling outputs; ``wall`` (monotonic, seconds) is passed in so tests can drive it.
    """

    def __init__(self, options: LiveOptions, cache: KeyCache, alerts: AlertSink,
                 stats_stream: TextIO | None = None) -> None:
        self.options = options
        self.cache = cache
        self.alerts = alerts
        self.stats_stream = stats_stream
        limits = options.limits
        out = options.out_dir
        out.mkdir(parents=True, exist_ok=True)
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
        self.stream = EvidenceStream(
            ports=options.ports,
            on_anomaly=lambda anomaly: self.findings.write(
                anomaly_record(anomaly, self.caches.times)),
            limits=limits,
            caches=self.caches,
        )
        self.errors = self.stream.errors
        """Internal errors contained per message and per response (``Containment``)."""
        sources = finding_sources(self.validator, limits, self.caches)
        self.reporting = Reporting(
            sources, ResolutionLinker(), write=self.responses.write, on_findings=self._findings,
            errors=self.errors, render=self._response_record, on_record=self._live_record,
            # Stages that merge until flush are flushed after every response, so their
            # findings are written as they are made (FindingLog merges them per key).
            merged_per_response=tuple(s for s in sources if isinstance(s, ValidationFindings)))
        self.sources: list[FindingSource] = sources
        self.linker = self.reporting.linker
        """Links each resolver's answer to a client to its upstream exchanges (bounded)."""
        self.stream.on_query = self.reporting.query_hook()
        self.tally = self.reporting.tally
        """Responses written per verdict status and code."""
        self.clock = CaptureClock()
        self.alert_codes: Counter[str] = Counter()
        self.source_counters: dict[str, int] = {"received": 0, "dropped": 0}
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
        """The Prometheus endpoint, fed a snapshot once a second by ``tick``."""
        self.lag_s = 0.0
        """Wall time minus the capture time of the last frame judged, when it was judged."""
        self._next_metrics = 0.0
        self._next_log = 0.0
        self.peak_memory = 0
        self.memory_samples: deque[tuple[float, int]] = deque(maxlen=720)
        self.cache_rows_written = 0
        self._next_stats = self.started_mono + options.stats_interval_s
        self._next_cache = self.started_mono + options.cache_interval_s
        self.cache_persist_s = 0.0
        """Seconds the last write of learned keys to the key cache took."""
        self._next_parquet = self.started_mono + options.parquet_flush_s
        self._dirty = False

    # --- frames --------------------------------------------------------------------------

    def feed(self, frame: Frame, mono_ns: int | None = None) -> None:
        """Take one frame; judge and report every response it completes. Never raises for
        a problem with this frame: it is counted and logged with the frame."""
        self.clock.saw(frame.ts_ns, time.monotonic_ns() if mono_ns is None else mono_ns)
        if self.ring is not None:
            for _ in self.ring.watch((frame,)):
                pass
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
        self.reporting.report_all(judged)

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

    def tick(self, mono_ns: int | None = None) -> None:
        """Timer work: release held responses, flush, rotate, persist keys, print stats."""
        mono_ns = time.monotonic_ns() if mono_ns is None else mono_ns
        now_ns = self.clock.now_ns(mono_ns)
        if now_ns is not None:
            self.reporting.report_all(self.judge.tick(now_ns))
            self.reporting.expire(now_ns)
        mono = mono_ns / NS
        if now_ns is not None and mono >= self._next_log:
            self._next_log = mono + 1.0  # repeats are due once a minute: a second is plenty
            self.log.tick(now_ns)
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
        if mono >= self._next_cache:
            took_s = self._timed_persist()
            # Persisting recomputes every known zone's trust: with tens of thousands of zones
            # it takes seconds, so it never gets more than a tenth of the time.
            self._next_cache = mono + max(self.options.cache_interval_s,
                                          PERSIST_SHARE_FACTOR * took_s)
        if mono >= self._next_stats:
            self._next_stats = mono + self.options.stats_interval_s
            self.write_stats(final=False)
        if self.metrics is not None and mono >= self._next_metrics:
            self._next_metrics = mono + 1.0
            self.metrics.collector.update(self.metrics_snapshot())

    def metrics_snapshot(self) -> MetricsSnapshot:
        """The counters the metrics endpoint serves, as of now."""
        counters = self.stream.counters()
        return MetricsSnapshot(
            frames_read=int(counters["frames_read"]), kernel=dict(self.source_counters),
            internal_drops=self._internal_drops(counters), verdicts=dict(self.tally.verdicts),
            findings=dict(self.finding_counts), alerts=self.alerts.count,
            held=self.judge.held, state=self._state_sizes(), evictions=self._evictions(),
            lag_s=self.lag_s, rss_bytes=memory_bytes(), started_s=self.started_wall)

    def describe(self) -> str:
        """The run's set-up in one line: what is captured, how it is judged, where it goes."""
        options = self.options
        source = (f"capturing on {', '.join(options.interfaces)} (filter "
                  f"{options.bpf or default_filter(options.ports)!r})" if options.interfaces
                  else f"capturing on stream {options.read}")
        anchors = ", ".join(options.trust_anchors) or "IANA root (built in)"
        alerts = str(options.alerts_path) if options.alerts_path else "standard output"
        return (f"{source}; trust anchors {anchors}; key cache "
                f"{options.keys_path or options.out_dir / 'keys.sqlite'}; reference time "
                f"{_reference_text(options.at_ns).replace('_', ' ')}; policy "
                f"{options.policy.name}; hold {options.limits.hold_ns / NS:g}s; outputs "
                f"{options.out_dir}/; alerts {alerts} ({options.alert_format.value}); "
                f"metrics {self.metrics.url if self.metrics is not None else 'off'}")

    def announce(self, event: str) -> None:
        """Say what the run is doing and its set-up (start, SIGHUP, stop) on the stats stream
        (standard error from the command line), as tcpdump's "listening on" line."""
        line = f"dnssec-auditor: {event}: {self.describe()}"
        if self.stats_stream is not None:
            self.stats_stream.write(line + "\n")
            self.stats_stream.flush()
        else:
            logger.info("%s", line)

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
        self.reporting.report_all(self.judge.flush())
        self.reporting.flush()
        self.log.flush()
        self.persist_keys()
        for output in self._outputs():
            output.close()
        stats = self.write_stats(final=True)
        self.alerts.close()
        files = [path for output in self._outputs() for path in output.pieces if path.exists()]
        return LiveOutcome(stats, (*files, self.options.out_dir / "stats.json"))

    # --- stats ---------------------------------------------------------------------------

    def stats(self, *, final: bool) -> dict[str, Any]:
        """The ``stats.json`` document as of now."""
        memory = memory_bytes()
        self.peak_memory = max(self.peak_memory, memory)
        self.memory_samples.append((round(time.monotonic() - self.started_mono, 1), memory))
        counters = self.stream.counters()
        internal_drops = self._internal_drops(counters)
        head = {
            "mode": "live",
            "final": final,
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started_wall)),
            "elapsed_s": round(time.monotonic() - self.started_mono, 3),
            "interfaces": list(self.options.interfaces),
            "read": self.options.read,
            "capture": dict(self.source_counters),
        }
        written = {"responses_written": self.responses.count,
                   "findings_written": self.findings.count}
        return stats_document(head, counters, written, {
            "alerts": self.alerts.count,
            "alerts_rotations": self.alerts.rotations,
            "alerts_rotation_failures": self.alerts.rotation_failures,
            "alerts_by_code": dict(self.alert_codes.most_common()),
            "alert_format": self.options.alert_format.value,
            "findings_merged": {"keys": len(self.log), "repeats_deferred": self.log.suppressed,
                                "keys_evicted": self.log.evicted},
            "internal_drops": internal_drops,
            "evictions": self._evictions(),
            "state": self._state_sizes(),
            "validation": {
                "mode": "streaming",
                "reference_time": _reference_text(self.options.at_ns),
                "policy": self.options.policy.name,
                "key_cache": str(self.options.keys_path or
                                 self.options.out_dir / "keys.sqlite"),
                "key_cache_rows_written": self.cache_rows_written,
                "key_cache_persist_s": round(self.cache_persist_s, 3),
                "verdicts": self.tally.statuses(),
                "codes": self.tally.code_counts(),
                "judge": self.judge.counters(),
                "verdict_cache": (None if self.verdict_cache is None
                                  else self.verdict_cache.stats.as_dict()),
            },
            "memory": {"rss_bytes": memory, "peak_rss_bytes": self.peak_memory,
                       "max_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                       * 1024},
            "outputs": {
                output.stem + output.suffix: {
                    "records": output.count, "pieces": len(output.pieces),
                    "deleted": output.deleted,
                    "current": str(output.current) if output.current else None}
                for output in self._outputs()
            },
        })

    def _internal_drops(self, counters: dict[str, Any]) -> dict[str, int]:
        frames = counters["frames"]
        return {
            "fragment_evicted": frames.get("fragment_evicted", 0),
            "fragment_incomplete": frames.get("fragment_incomplete", 0),
            "tcp_evicted": frames.get("tcp_evicted", 0),
            "queries_evicted": counters["matching"].get("evicted_queries", 0),
            "held_responses_evicted": self.judge.counters()["evicted"],
            "internal_errors": self.errors.count,
        }

    def _evictions(self) -> dict[str, int]:
        return evictions(self.material, self.sources, self.verdict_cache)

    def _state_sizes(self) -> dict[str, int]:
        chain = self.stream.chain
        return {
            "fragment_frames_held": chain.defragmenter.held_frames,
            "fragment_bytes_held": chain.defragmenter.held_bytes,
            "tcp_flows": chain.tcp.flows,
            "tcp_bytes_held": chain.tcp.held_bytes,
            "held_responses": self.judge.held,
            "held_response_bytes": self.judge.held_bytes,
            "pending_queries": self.stream.matcher.pending,
            "parsed_messages": self.stream.chain.parser.cached if self.stream.chain.parser
            else 0,
            "zones": sum(len(s) for s in self.sources if isinstance(s, ZoneHealth)),
            "finding_keys": len(self.log),
            "alert_facts": len(self._facts),
            "verdict_cache": len(self.verdict_cache) if self.verdict_cache is not None else 0,
            "verdict_cache_bytes": (self.verdict_cache.cached_bytes
                                    if self.verdict_cache is not None else 0),
            **{f"key_material_{name}": size for name, size in self.material.sizes().items()},
        }

    def write_stats(self, *, final: bool) -> dict[str, Any]:
        """Write ``stats.json`` atomically and print the one-line summary."""
        stats = self.stats(final=final)
        write_json(self.options.out_dir / "stats.json", stats)
        if self.stats_stream is not None:
            self.stats_stream.write(stats_line(stats) + "\n")
            self.stats_stream.flush()
        return stats


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


def run_live(options: LiveOptions, source: FrameSource | None = None,
             stats_stream: TextIO | None = None) -> LiveOutcome:
    """Capture until SIGINT/SIGTERM (or the end of a stream), then finish and summarise."""
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
            auditor.announce("started")
            _loop(auditor, capture, signals)
            auditor.announce(f"stopping on {signals.stop_signal}" if signals.stop_signal
                             else "end of stream, stopping")
            _drain(auditor, capture)
            auditor.set_source_counters(capture.counters())
            capture.close()
            outcome = auditor.finish()
            if metrics is not None:
                metrics.collector.update(auditor.metrics_snapshot())
                metrics.close()
            return outcome
    finally:
        capture.close()
        if alert_stream is not sys.stdout:
            alert_stream.close()


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
