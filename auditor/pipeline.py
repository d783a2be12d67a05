"""Orchestration: wires capture, decode, parsing, matching, evidence, validation and reports."""

from __future__ import annotations

import gc
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import dns.name
import dns.opcode

from auditor import __version__
from auditor.anomaly import Anomaly, AnomalyCode
from auditor.capture.bpf import FrameFilter
from auditor.capture.frame import Frame
from auditor.decode.cut import cut_udp_message
from auditor.decode.defrag import Defragmenter
from auditor.decode.dissect import dissect
from auditor.decode.fastpath import fast_udp_message
from auditor.decode.tcpstream import TCPReassembler
from auditor.decode.transport import (
    DNS_PORTS,
    TCPSegment,
    WireMessage,
    split_transport,
    udp_message,
)
from auditor.engine.build import (
    FindingSource,
    finding_sources,
    key_material,
    size_shared_memos,
)
from auditor.engine.contain import Containment
from auditor.engine.judge import (
    Judge,
    Rendered,
    RunJudge,
    observe_answer_keys,
    ordered_judge,
    run_judge,
    two_pass_judge,
)
from auditor.engine.judge import judge_response as judge_response  # re-exported
from auditor.engine.limits import FILE_LIMITS, Limits
from auditor.engine.stats import (
    VerdictTally,
    finding_state,
    forgery_counters,
    memo_sizes,
    stats_document,
)
from auditor.evidence import ResponseEvidence, build_evidence
from auditor.findings.codes import ValidationCode
from auditor.forgery import ForgeryDetector
from auditor.ledger import Ledger, Reason
from auditor.memo import release_heap
from auditor.messages import MessageParser, ObservedMessage, ParsedMessage
from auditor.report.anonymize import PrefixPreservingAnonymizer, RecordAnonymizer
from auditor.report.evidence_pcap import (
    EvidenceCollector,
    FrameRing,
    select_frames,
    sha256_file,
    write_evidence,
)
from auditor.report.records import iso_time
from auditor.report.resolution import resolution_record
from auditor.resolution import ResolutionLinker
from auditor.transactions import Matcher, Transaction
from auditor.trust import KeyCache, KeyMaterial, KeyView, TrustAnchor, load_anchors
from auditor.trust.cache import CacheUse
from auditor.validate import RFC8624, ValidationPolicy, Validator, Verdict

if TYPE_CHECKING:
    from auditor.report.run import OutputFormat

logger = logging.getLogger(__name__)

EXPIRE_INTERVAL_NS = 1_000_000_000
"""How often (in capture time) reassembly and matching state is expired."""
SIGNATURE_MEMO = FILE_LIMITS.signature_memo
"""Distinct RRSIG checks whose result an audit run memoises (``Limits.signature_memo``)."""


class _RateLimitedLog:
    """Logs the first few occurrences of a repetitive per-packet problem, then counts silently."""

    def __init__(self, limit: int = 5) -> None:
        self._limit = limit
        self._seen: Counter[str] = Counter()

    def warning(self, key: str, message: str, *args: object) -> None:
        self._seen[key] += 1
        if self._seen[key] <= self._limit:
            logger.warning(message, *args)
        elif self._seen[key] == self._limit + 1:
            logger.warning("further '%s' problems are counted in stats.json, not logged", key)


class DecodeChain:
    """Frames in, parsed DNS messages out: dissect, defragment, split, reassemble, parse."""

    def __init__(
        self,
        ledger: Ledger,
        ports: frozenset[int] = DNS_PORTS,
        *,
        verify_checksums: bool = True,
        parse_cache: OrderedDict[bytes, ParsedMessage] | None = None,
        frame_filter: Callable[[Frame], bool] | None = None,
        shard: Callable[[Frame], bool] | None = None,
        limits: Limits = FILE_LIMITS,
    ) -> None:
        """``frame_filter``: frames it rejects are settled as ``filtered_out`` undecoded.
        ``shard``: frames it rejects belong to another shard (``audit --jobs``): neither
        counted nor decoded here, their capture time only drives expiry (``pass_over``).
        ``limits``: the caps and timeouts of reassembly and the parse cache."""
        self.ledger = ledger
        self.ports = ports
        self.verify_checksums = verify_checksums
        self.frame_filter = frame_filter
        self.shard = shard
        self._owned = 1
        self.defragmenter = Defragmenter(
            ledger, timeout_ns=limits.fragment_timeout_ns, max_sets=limits.fragment_sets,
            max_bytes=limits.fragment_bytes)
        self.tcp = TCPReassembler(
            ledger, timeout_ns=limits.tcp_timeout_ns, max_flows=limits.tcp_flows,
            max_total_bytes=limits.tcp_bytes)
        self.parser = MessageParser(ledger, cache_size=limits.parse_cache, cache=parse_cache)
        self._next_expiry_ns: int | None = None
        self._errors = _RateLimitedLog()

    def feed(self, frame: Frame) -> list[ObservedMessage]:
        """Decode one frame; return the DNS messages it completes (usually zero or one)."""
        if self.shard is not None and not self.shard(frame):
            return self.pass_over(frame)
        ledger = self.ledger
        ledger.frames_read += 1  # Ledger.read(), without the call on the hot path
        if self.frame_filter is not None and not self.frame_filter(frame):
            ledger.settle(Reason.FILTERED_OUT)
            return []
        next_expiry_ns = self._next_expiry_ns
        if next_expiry_ns is not None and frame.ts_ns < next_expiry_ns:
            # Plain UDP datagrams skip the general stages: same outcome, fewer objects.
            try:
                found = fast_udp_message(frame, self.ports, ledger, self.verify_checksums)
            except Exception as exc:  # our own bug must not stop the run: count it
                ledger.settle(Reason.DECODER_ERROR)
                self._note_decoder_error(frame, exc)
                return []
            if isinstance(found, WireMessage):
                observed = self.parser.feed(found)
                return [] if observed is None else [observed]
            if found:
                return []
        return self._feed_general(frame)

    def pass_over(self, frame: Frame) -> list[ObservedMessage]:
        """A frame another shard decodes: expire reassembly state when one process would have
        at this frame (the first frame, of any flow, past the deadline), so each shard closes
        its flows at the same capture times as a single process."""
        if self.frame_filter is not None and not self.frame_filter(frame):
            return []
        return self._parse_all(self._expire_if_due(frame.ts_ns))

    def _feed_general(self, frame: Frame) -> list[ObservedMessage]:
        """Expire reassembly state when due, then decode the frame through every stage."""
        wires = self._expire_if_due(frame.ts_ns)
        self._owned = 1
        try:
            wires.extend(self._decode(frame))
        except Exception as exc:  # our own bug must not stop the run: count it with the frame
            # Settle every frame the failed unit owned (a reassembled datagram owns several).
            self.ledger.settle(Reason.DECODER_ERROR, self._owned)
            self._note_decoder_error(frame, exc)
        return self._parse_all(wires)

    def _decode(self, frame: Frame) -> list[WireMessage]:
        datagram = dissect(frame, self.ledger)
        if datagram is None:
            # A DNS answer the snapshot length cut is still listed (settled as cut above).
            cut = cut_udp_message(frame, self.ports) if frame.wirelen > len(frame.data) else None
            return [cut] if cut is not None else []
        if datagram.fragment is not None:
            datagram = self.defragmenter.feed(datagram)
            if datagram is None:
                return []
            self._owned = datagram.owned_frames
        # Checksums are verified and counted, never a reason to drop: captures taken on the
        # sending host (offload, loopback) carry invalid ones everywhere.
        unit = split_transport(
            datagram, self.ports, self.ledger, verify_checksums=self.verify_checksums
        )
        if unit is None:
            return []
        if isinstance(unit, TCPSegment):
            return self.tcp.feed(unit)
        return [udp_message(unit)]

    def _expire_if_due(self, now_ns: int) -> list[WireMessage]:
        if self._next_expiry_ns is None:
            self._next_expiry_ns = now_ns + EXPIRE_INTERVAL_NS
            return []
        if now_ns < self._next_expiry_ns:
            return []
        self._next_expiry_ns = now_ns + EXPIRE_INTERVAL_NS
        self.defragmenter.expire(now_ns)
        return self.tcp.expire(now_ns)

    def flush(self) -> list[ObservedMessage]:
        """End of input: flush reassembly state and parse what it completes."""
        self.defragmenter.flush()
        return self._parse_all(self.tcp.flush())

    def _parse_all(self, wires: list[WireMessage]) -> list[ObservedMessage]:
        messages = []
        for wire in wires:
            observed = self.parser.feed(wire)
            if observed is not None:
                messages.append(observed)
        return messages

    def _note_decoder_error(self, frame: Frame, exc: Exception) -> None:
        self._errors.warning(
            "decoder_error",
            "%s frame %d: internal decoder error %s: %s",
            frame.capture,
            frame.number,
            type(exc).__name__,
            exc,
        )
        self.ledger.note(
            Anomaly(
                code=AnomalyCode.DECODER_ERROR,
                capture=frame.capture,
                frames=(frame.number,),
                ts_ns=frame.ts_ns,
                detail=f"internal decoder error {type(exc).__name__}: {exc}",
            )
        )


@dataclass(slots=True)
class EvidenceStream:
    """Frames in, response evidence out, with every stage's counters kept for the report."""

    ledger: Ledger = field(default_factory=Ledger)
    ports: frozenset[int] = DNS_PORTS
    on_anomaly: Callable[[Anomaly], None] | None = None
    on_query: Callable[[ObservedMessage], None] | None = None
    """Called with every query (QR=0) as it is decoded (the forgery stage's query view)."""
    on_response_facts: Callable[[ResponseEvidence, Any], None] | None = None
    """Called (``audit --jobs``) with what a worker's forgery stage derived from a response
    alone, just before the response is handed on (the forgery stage's ``prime``)."""
    verify_checksums: bool = True
    """Verify (and count bad) UDP/TCP checksums; never a reason to drop a packet."""
    parse_cache: OrderedDict[bytes, ParsedMessage] | None = None
    """A parse cache shared with another stream over the same input (the key pass)."""
    frame_filter: Callable[[Frame], bool] | None = None
    """Frames it rejects are settled as ``filtered_out`` (``audit --filter``)."""
    shard: Callable[[Frame], bool] | None = None
    """Frames it rejects belong to another shard (``audit --jobs``): not counted here."""
    limits: Limits = FILE_LIMITS
    """Caps and timeouts of reassembly, the parse cache and matching."""
    errors: Containment = field(default_factory=Containment)
    """Contains our own failures per message and per response (by default its anomalies go
    to ``on_anomaly``)."""
    chain: DecodeChain = field(init=False)
    matcher: Matcher = field(init=False)
    state_peaks: dict[str, int] = field(default_factory=dict)
    """The largest size of each bounded table seen at an expiry tick (``stats.json``
    ``state``), to hold against its cap."""
    _last_expiry_ns: int = 0

    def __post_init__(self) -> None:
        self.chain = DecodeChain(
            self.ledger,
            self.ports,
            verify_checksums=self.verify_checksums,
            parse_cache=self.parse_cache,
            frame_filter=self.frame_filter,
            shard=self.shard,
            limits=self.limits,
        )
        self.matcher = Matcher(timeout_ns=self.limits.query_timeout_ns,
                               max_pending=self.limits.pending_queries)
        if self.errors.on_anomaly is None:
            self.errors.on_anomaly = self._anomaly

    def _anomaly(self, anomaly: Anomaly) -> None:
        if self.on_anomaly is not None:
            self.on_anomaly(anomaly)

    def run(self, frames: Iterable[Frame]) -> Iterator[ResponseEvidence]:
        """Yield the evidence of every response in capture order, then flush all state (a
        response whose evidence cannot be built is contained: ``errors``)."""
        for transaction in self.transactions(frames):
            try:
                evidence = build_evidence(transaction)
            except Exception as exc:  # our own bug must not stop the run
                self.errors.response_failed(transaction, exc)
                continue
            yield evidence

    def transactions(self, frames: Iterable[Frame]) -> Iterator[Transaction]:
        """The capture stage alone: every response matched to its query, in capture order
        (records are parsed only when evidence is built from them)."""
        # feed() with _match() inlined: this loop runs once per frame (about 5 % faster).
        feed_chain = self.chain.feed
        matcher = self.matcher
        ledger = self.ledger
        for frame in frames:
            for message in feed_chain(frame):
                try:
                    transaction = matcher.feed(message)
                    if transaction is None and self.on_query is not None and (
                            not message.is_response):
                        self.on_query(message)
                except Exception as exc:  # our own bug must not stop the run
                    self.errors.message_failed(message, exc)
                    continue
                if transaction is not None:
                    yield transaction
            now_ns = frame.ts_ns
            if now_ns - self._last_expiry_ns > EXPIRE_INTERVAL_NS:
                self._last_expiry_ns = now_ns
                self.note_state()
                matcher.expire(now_ns)
            if ledger.anomalies:
                self._drain_anomalies()
        yield from self.finish()

    def state_sizes(self) -> dict[str, int]:
        """Entries and accounted bytes held now by the decode, parse and matching stages."""
        chain = self.chain
        return {
            "pending_queries": self.matcher.pending,
            "pending_query_bytes": self.matcher.pending_bytes,
            "parsed_messages": chain.parser.cached,
            "parsed_message_bytes": chain.parser.cached_bytes,
            "fragment_frames_held": chain.defragmenter.held_frames,
            "fragment_bytes_held": chain.defragmenter.held_bytes,
            "tcp_flows": chain.tcp.flows,
            "tcp_bytes_held": chain.tcp.held_bytes,
        }

    def note_state(self) -> None:
        """Keep the peak of every ``state_sizes`` figure."""
        peaks = self.state_peaks
        for name, size in self.state_sizes().items():
            peaks[name] = max(size, peaks.get(name, 0))

    def feed(self, frame: Frame) -> list[Transaction]:
        """Push interface (live mode): one frame in, the transactions it completes out."""
        return list(self._match(self.chain.feed(frame), frame.ts_ns))

    def finish(self) -> list[Transaction]:
        """Push interface: end of input; flush reassembly and matching state."""
        try:
            done = list(self._match(self.chain.flush(), None))
            self.matcher.flush()
        except Exception as exc:  # our own bug must not stop the run
            self.errors.flush_failed(exc)
            done = []
        self._drain_anomalies()
        return done

    def _match(self, messages: list[ObservedMessage], now_ns: int | None) -> Iterator[
        Transaction
    ]:
        for message in messages:
            try:
                transaction = self.matcher.feed(message)
                if transaction is None and self.on_query is not None and (
                        not message.is_response):
                    self.on_query(message)
            except Exception as exc:  # our own bug must not stop the run
                self.errors.message_failed(message, exc)
                continue
            if transaction is not None:
                yield transaction
        if now_ns is not None and now_ns - self._last_expiry_ns > EXPIRE_INTERVAL_NS:
            self._last_expiry_ns = now_ns
            self.matcher.expire(now_ns)
        self._drain_anomalies()

    def _drain_anomalies(self) -> None:
        anomalies = self.ledger.take_anomalies()
        if self.on_anomaly is not None:
            for anomaly in anomalies:
                self.on_anomaly(anomaly)

    def counters(self) -> dict[str, Any]:
        """Every stage's counts, JSON-ready, for ``stats.json``."""
        return {
            "frames_read": self.ledger.frames_read,
            "frames": self.ledger.as_dict(),
            "frames_unsettled": self.ledger.pending,
            "observed": dict(self.ledger.observed),
            "messages": {
                "parsed_distinct": self.chain.parser.parsed,
                "parse_cache_hits": self.chain.parser.cache_hits,
                "parse_cache_evicted": self.chain.parser.evicted,
            },
            "matching": self.matcher.stats.as_dict(),
        }


def default_out_dir(captures: tuple[str, ...], base: Path = Path("reports")) -> Path:
    """``reports/<capture name>/`` for the first capture (``stdin`` for ``-``)."""
    first = captures[0]
    if first == "-":
        return base / "stdin"
    name = Path(first).name
    for suffix in (".gz", ".pcapng", ".pcap", ".cap"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return base / (name or "capture")


@dataclass(frozen=True, slots=True)
class AuditOptions:
    """Everything one ``audit`` run needs, as given on the command line."""

    captures: tuple[str, ...]
    """Capture files in the order given (``-`` for standard input)."""
    out_dir: Path
    """Where reports are written."""
    ports: frozenset[int] = DNS_PORTS
    """DNS port set."""
    verify_checksums: bool = True
    """Verify and count bad UDP/TCP checksums (``--no-checksums`` skips it, for speed)."""
    progress: bool = False
    """Show a progress bar by bytes read."""
    trust_anchors: tuple[str, ...] = ()
    """Trust anchor files (``--trust-anchor``); the IANA root anchors are added unless one of
    them anchors the root."""
    keys_path: Path | None = None
    """SQLite key cache (``--keys``); default ``keys.sqlite`` in the output directory."""
    at_ns: int | None = None
    """Fixed reference time for signature validity (``--at``); None judges every response at
    its own capture time."""
    policy: ValidationPolicy = RFC8624
    """Algorithm, digest and clock-skew policy."""
    limits: Limits = FILE_LIMITS
    """Caps and timeouts of every piece of state; ``hold_ns`` is how long, in capture time,
    an indeterminate response of single-pass input (standard input) waits for the keys it
    needs before it is written."""
    anonymize_secret: bytes | None = None
    """Secret for prefix-preserving anonymisation of client addresses in every output
    (``--anonymize``); None leaves addresses as captured."""
    report_formats: frozenset[str] = frozenset({"html", "md", "parquet"})
    """End-of-run reports besides the JSON Lines and zone tables (``html``, ``md``,
    ``parquet``, ``csv``)."""
    evidence_path: Path | None = None
    """Where to write the frames behind forged/suspicious findings as pcapng (``--evidence``);
    None writes no evidence file."""
    frame_filter: str | None = None
    """A BPF expression (tcpdump syntax, ``--filter``): only matching frames are audited; the
    others are counted as ``filtered_out`` with their frame numbers kept."""
    verdict_cache: bool = True
    """Judge each distinct answer once (``VerdictCache``); off, every response is judged
    afresh: the outputs are the same, only slower."""


@dataclass(frozen=True, slots=True)
class AuditOutcome:
    """What a run produced, for the CLI's summary and exit code."""

    stats: dict[str, Any]
    """The content of ``stats.json``."""
    files: tuple[Path, ...]
    """Every file written."""
    capture_problems: tuple[str, ...]
    """Non-fatal capture problems (a truncated last record, ...), one sentence each."""
    verdicts: dict[str, int]
    """Responses per verdict (``secure``, ``insecure``, ``bogus``, ``indeterminate``)."""


def _with_progress(frames: Iterable[Frame], source: Any, enabled: bool) -> Iterator[Frame]:
    """Yield frames, updating a tqdm bar by bytes read when enabled."""
    if not enabled:
        yield from frames
        return
    from tqdm import tqdm

    total = getattr(source, "total_bytes", None)
    with tqdm(total=total, unit="B", unit_scale=True, desc="reading", leave=False) as bar:
        shown = 0
        for count, frame in enumerate(frames):
            if count % 2048 == 0:
                done = int(getattr(source, "bytes_read", 0))
                bar.update(done - shown)
                shown = done
            yield frame
        bar.update(int(getattr(source, "bytes_read", shown)) - shown)


def stages_for(sources: list[FindingSource], evidence: ResponseEvidence) -> list[FindingSource]:
    """The finding stages that see a response: all of them for a query answer; for a NOTIFY
    or UPDATE answer only the forgery stage, which counts it (no validation or zone finding
    treats it as an answer); none for an answer the snapshot length cut (only its start
    was captured: no finding may rest on it)."""
    if evidence.transaction.response.wire.cut:
        return []
    if evidence.transaction.answers_query:
        return sources
    return [s for s in sources if isinstance(s, ForgeryDetector)]


def _query_observer(sources: list[FindingSource]) -> Callable[[ObservedMessage], None] | None:
    """The forgery stage's query hook, if that stage runs."""
    detector = next((s for s in sources if isinstance(s, ForgeryDetector)), None)
    return detector.observe_query if detector is not None else None


def _facts_observer(
    sources: list[FindingSource],
) -> Callable[[ResponseEvidence, Any], None] | None:
    """The forgery stage's hook for facts derived where a response was judged."""
    detector = next((s for s in sources if isinstance(s, ForgeryDetector)), None)
    return detector.prime if detector is not None else None


def both_hooks(first: Callable[[ObservedMessage], None] | None,
          second: Callable[[ObservedMessage], None]) -> Callable[[ObservedMessage], None]:
    """One query hook calling two (the forgery stage's and the resolution linker's)."""
    if first is None:
        return second

    def both(message: ObservedMessage) -> None:
        first(message)
        second(message)

    return both


def _input_digests(captures: tuple[str, ...]) -> list[dict[str, str | None]]:
    """SHA-256 of every input capture as stored, so evidence can be cited against it."""
    from auditor.capture.sources import STDIN, unique_names

    return [
        {"capture": name, "path": path,
         "sha256": None if path == STDIN else sha256_file(path)}
        for path, name in zip(captures, unique_names(captures), strict=True)
    ]


def _write_evidence(options: AuditOptions, collector: EvidenceCollector) -> dict[str, object]:
    """Write the cited frames to the evidence pcapng: files are read again; standard input
    (not re-readable) contributes the cited frames still held in the recent-frame ring."""
    from auditor.capture.sources import CaptureSet

    path = options.evidence_path
    if path is None:
        return {"path": None}
    application = f"dnssec-auditor {__version__} evidence"
    if collector.ring is not None:
        written, digest = write_evidence(path, collector.ring.frames(), application)
        missed = collector.ring.missed
    else:
        with CaptureSet(list(options.captures)) as again:
            written, digest = write_evidence(
                path, select_frames(again, collector.wanted), application
            )
        missed = len(collector.wanted) - written
    return {"path": str(path), "sha256": digest, "frames": written,
            "frames_cited": len(collector.wanted), "frames_missing": missed,
            "findings": collector.findings}


def _observe_keys(
    captures: tuple[str, ...],
    ports: frozenset[int],
    material: KeyMaterial,
    parse_cache: OrderedDict[bytes, ParsedMessage],
    frame_filter: Callable[[Frame], bool] | None = None,
    limits: Limits = FILE_LIMITS,
) -> int:
    """First pass over files: gather every DNSKEY, DS and denial RRset the traffic carries;
    return how many distinct messages it parsed.

    The parse cache is kept for the judging pass, so each distinct message is parsed once per
    run; checksums are counted by the judging pass only.
    """
    from auditor.capture.sources import CaptureSet

    with CaptureSet(list(captures)) as source:
        stream = EvidenceStream(ports=ports, verify_checksums=False, parse_cache=parse_cache,
                                frame_filter=frame_filter, limits=limits)
        for evidence in stream.run(source):
            observe_answer_keys(material, evidence)
    return stream.chain.parser.parsed


def _judged(stream: EvidenceStream, frames: Iterable[Frame], judge: Judge) -> Iterator[Rendered]:
    """Every response judged and released by ``judge``, in the order it releases them."""
    errors = stream.errors
    for evidence in stream.run(frames):
        try:
            ready = judge.feed(evidence)
        except Exception as exc:  # our own bug must not stop the run
            errors.response_failed(evidence.transaction, exc)
            continue
        yield from ready
    try:
        ready = judge.flush()
    except Exception as exc:  # our own bug must not stop the run
        errors.flush_failed(exc)
        ready = []
    yield from ready


def _anchor_text(anchor: TrustAnchor) -> str:
    kind = "DS" if anchor.ds is not None else "DNSKEY"
    unusable = f"; matches no key: {anchor.problem}" if anchor.problem else ""
    return (
        f"{anchor.zone.to_text()} {kind} key tag {anchor.key_tag} alg {anchor.algorithm} "
        f"({anchor.source}{unusable})"
    )


class JudgedElsewhere(Protocol):
    """Responses judged outside this process (``audit --jobs``, Dask: flow shards judged by
    workers), handed to this run's finding stages, reports and key cache in capture order."""

    def key_material(self) -> tuple[KeyMaterial, int]:
        """The key material of every capture, merged, and the distinct messages parsed for it."""
        ...

    def judged(self, source: Any, stream: EvidenceStream, judge: RunJudge) -> Iterator[Rendered]:
        """Every judged response in capture order, with its whole ``responses.jsonl`` record
        but its resolution (rendered where it was judged); queries go to ``stream.on_query`` and
        anomalies to ``stream.on_anomaly`` where one process would have met them; once done,
        the workers' counters are merged into ``stream``, ``judge`` and ``source``."""
        ...


def run_audit(options: AuditOptions,
              elsewhere: JudgedElsewhere | None = None) -> AuditOutcome:
    """Read the captures, judge every response, write the reports and update the key cache
    (``elsewhere``: the judging is done by workers; this process merges and reports)."""
    from auditor.capture.sources import CaptureSet
    from auditor.findings.zones import ZoneHealth
    from auditor.report.files import JsonLinesWriter, write_json
    from auditor.report.records import (
        ResponseRecords,
        anomaly_record,
        finding_record,
    )

    started = time.monotonic()
    limits = options.limits
    size_shared_memos(limits)
    anchors = load_anchors(list(options.trust_anchors))
    frame_filter = (FrameFilter(options.frame_filter).matches
                    if options.frame_filter is not None else None)
    source = CaptureSet(list(options.captures))
    options.out_dir.mkdir(parents=True, exist_ok=True)
    keys_path = options.keys_path or options.out_dir / "keys.sqlite"
    material = key_material(limits)
    single_pass = "-" in options.captures
    parse_cache: OrderedDict[bytes, ParsedMessage] = OrderedDict()
    parsed_before = 0
    if elsewhere is not None:
        material, parsed_before = elsewhere.key_material()
    elif not single_pass:
        parsed_before = _observe_keys(options.captures, options.ports, material, parse_cache,
                                      frame_filter, limits)
    with KeyCache(str(keys_path)) as cache:
        # Only a cache the user named is read: see CacheUse.
        cache_use = CacheUse(str(keys_path), options.keys_path is not None, cache.state_counts())
        view = KeyView(anchors, material, cache if cache_use.read else None)
        cache_use.zones_loaded = len(view.cached_zones())
        cache_use.keys_loaded = sum(len(view.cached_keys(z)) for z in view.cached_zones())
        validator = Validator(view, options.policy, at_ns=options.at_ns,
                              signature_memo=limits.signature_memo)
        verdicts = run_judge(validator, options.verdict_cache, limits)
        paths = tuple(
            options.out_dir / name for name in ("responses.jsonl", "findings.jsonl", "stats.json")
        )
        tally = VerdictTally()
        from auditor.report.run import RunReporter  # pandas/pyarrow: only when reporting

        reporter = RunReporter(options.out_dir, _formats(options.report_formats))
        anonymizer = _record_anonymizer(options.anonymize_secret)
        with (
            source,
            JsonLinesWriter(
                paths[0], anonymizer.response if anonymizer else None, floats=False
            ) as responses,
            JsonLinesWriter(paths[1], anonymizer.finding if anonymizer else None) as found,
        ):
            stream = EvidenceStream(
                ports=options.ports,
                on_anomaly=lambda anomaly: found.write(anomaly_record(anomaly)),
                verify_checksums=options.verify_checksums,
                parse_cache=parse_cache,
                frame_filter=frame_filter,
                limits=limits,
            )
            frames = _with_progress(source, source, options.progress)
            ring = FrameRing() if single_pass and options.evidence_path is not None else None
            if ring is not None:
                frames = ring.watch(frames)
            collector = EvidenceCollector(ring)
            judged = (
                elsewhere.judged(source, stream, verdicts) if elsewhere is not None
                else _judged(stream, frames, ordered_judge(verdicts, material, limits)
                             if single_pass else two_pass_judge(verdicts))
            )
            sources = finding_sources(validator, limits)
            linker = ResolutionLinker()
            stream.on_query = both_hooks(_query_observer(sources), linker.observe_query)
            stream.on_response_facts = _facts_observer(sources)
            records = ResponseRecords()
            errors = stream.errors
            for evidence, verdict, fields in judged:
                try:
                    linked = resolution_record(linker.feed(evidence, verdict))
                    if elsewhere is None:  # the workers render what they judged
                        fields = {**records.render(evidence), **fields}
                    responses.write({**fields, "resolution": linked})
                    tally.count(verdict)
                    if cache_use.keys_loaded and relies_on_cache(verdict, validator):
                        cache_use.verdicts_using_cache += 1
                    for source_stage in stages_for(sources, evidence):
                        for finding in source_stage.feed(evidence, verdict):
                            found.write(finding_record(finding))
                            reporter.note(finding)
                            collector.note(finding)
                except Exception as exc:  # our own bug must not stop the run
                    errors.response_failed(evidence.transaction, exc)
            for source_stage in sources:
                for finding in source_stage.flush():
                    found.write(finding_record(finding))
                    reporter.note(finding)
                    collector.note(finding)
        cache_written = cache.apply(validator.cache_updates())
        cache_use.rows_written = cache_written
    problems = tuple(str(problem) for problem in source.problems)
    stats = stats_document(
        {"elapsed_s": round(time.monotonic() - started, 3), "captures": list(options.captures),
         "capture_problems": list(problems)},
        stream.counters(),
        {"responses_written": responses.count, "findings_written": found.count},
        {
            "validation": {
                "mode": "single_pass" if single_pass else "two_pass",
                "reference_time": "fixed" if options.at_ns is not None else "capture_time",
                "at": iso_time(options.at_ns) if options.at_ns is not None else None,
                "policy": options.policy.name,
                "clock_skew_s": options.policy.clock_skew_s,
                "trust_anchors": [_anchor_text(anchor) for anchor in anchors],
                "key_cache": str(keys_path),
                "key_cache_rows_written": cache_written,
                "key_material_evicted": dict(material.evicted),
                "verdicts": tally.statuses(),
                "codes": tally.code_counts(),
                "verdict_cache": verdicts.counters(),
            },
            "state": {"peak": dict(stream.state_peaks), "key_material": material.sizes(),
                      "memos": memo_sizes(), "findings": finding_state(sources)},
            "findings": reporter.stats(),
            "anonymized": anonymizer is not None,
            "inputs": _input_digests(options.captures),
            "forgery": forgery_counters(sources),
            "resolution": linker.stats.as_dict(),
        },
    )
    # Files: the key pass parsed the distinct messages the judging pass then finds cached.
    stats["messages"]["parsed_distinct"] += parsed_before
    stats["evidence"] = _write_evidence(options, collector)
    stats["key_cache"] = cache_use.as_dict()
    write_json(paths[2], stats)
    zone_rows = next((s.rows for s in sources if isinstance(s, ZoneHealth)), [])
    # The reports read the files back: what judging kept (parsed messages, forgery tables,
    # signed copies, memos) goes first, so its memory is reused rather than added to.
    sources.clear()
    linker.flush()
    stream.on_query = stream.on_response_facts = None
    parse_cache.clear()
    verdicts.release()
    records.clear()
    material.release_copies()
    release_memos()
    gc.collect()
    release_heap()
    reports = tuple(reporter.finish(validator, zone_rows))
    return AuditOutcome(stats, paths + reports, problems, dict(stats["validation"]["verdicts"]))


def release_memos() -> None:
    """Empty the process-wide memos (values derived from parsed messages; recomputed on
    demand), e.g. between judging and report rendering."""
    from auditor import evidence, messages
    from auditor.decode import dissect
    from auditor.forgery import common
    from auditor.trust import material

    dissect.clear_address_memos()
    evidence.clear_facts_memo()
    messages.clear_record_caches()
    material.clear_memos()
    common.clear_memos()


def relies_on_cache(verdict: Verdict, validator: Validator) -> bool:
    """Whether a verdict depended on keys trusted from the key cache: it carries
    ``trust_from_cache``, or the trust of its zone or of a signer came from the cache (an
    unsigned answer judged against a zone the cache made secure)."""
    cached = ValidationCode.TRUST_FROM_CACHE
    if cached in verdict.codes or any(cached in r.codes for r in verdict.rrsets):
        return True
    zones = {verdict.zone, *(r.signer for r in verdict.rrsets)} - {None}
    return any(validator.zone_trust(dns.name.from_text(z)).from_cache for z in zones if z)


def _formats(names: frozenset[str]) -> frozenset[OutputFormat]:
    from auditor.report.run import OutputFormat

    return frozenset(OutputFormat(name) for name in names)


def _record_anonymizer(secret: bytes | None) -> RecordAnonymizer | None:
    if secret is None:
        return None
    return RecordAnonymizer(PrefixPreservingAnonymizer(secret))
