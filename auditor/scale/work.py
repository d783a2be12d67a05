"""The two tasks a worker runs over one flow shard of the captures: harvest its key material,
then judge its responses with the merged material. Pure functions of picklable values, so a
process pool and a Dask cluster run them alike."""

from __future__ import annotations

import io
import os
import pickle
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, BinaryIO

from auditor.anomaly import Anomaly
from auditor.capture.bpf import FrameFilter
from auditor.capture.frame import Frame
from auditor.engine.build import key_material, merged_key_material
from auditor.engine.caches import Caches
from auditor.engine.judge import observe_answer_keys, run_judge
from auditor.engine.stream import EvidenceStream
from auditor.errors import AuditorError
from auditor.evidence import ResponseEvidence
from auditor.forgery.detector import ForgeryDetector, ResponseFacts
from auditor.messages import ObservedMessage, ParseCache, Sightings
from auditor.pipeline import AuditOptions
from auditor.report.records import ResponseRecords
from auditor.scale.pickling import DataclassPickler
from auditor.scale.shard import FlowShard
from auditor.transactions import MatchStats
from auditor.trust import KeyCache, KeyView, load_anchors
from auditor.trust.material import MaterialSnapshot
from auditor.validate import Validator, Verdict
from auditor.validate.reuse import VerdictCacheStats

BATCH = 512
"""Items per pickled batch in a shard's spool."""
SHARED_BATCHES = 64
"""Batches pickled by one pickler before it forgets what it wrote: within them an object
the responses share (a repeated answer's parsed records) is written once and read back as one
object, so the identity memos of the merging process still hit; then the memo restarts, so
neither side keeps every object alive."""


@dataclass(frozen=True, slots=True)
class ShardSpec:
    """One worker's share of an audit."""

    options: AuditOptions
    """The run's options (captures, ports, anchors, policy, reference time, filter)."""
    index: int
    """This shard, 0-based."""
    count: int
    """Number of shards."""
    spool_dir: str | None = None
    """Where the judged items are written as they are made (a directory the merging process
    can read while the worker writes); None returns them in the result instead."""
    sightings: bool = False
    """Whether the harvest also counts each message's sightings for the judging process's
    parse cache (``ParseCache.add_sightings``; only a process forked from it can)."""
    run: str = ""
    """The run's identifier: when set, a harvest keeps what it parsed in its process for the
    same shard's judging task (``kept_key_pass``)."""

    def spool(self, attempt: str) -> str | None:
        """The spool file of one attempt at judging this shard in ``spool_dir``: a task the
        cluster starts again (its worker lost) writes a file of its own, never over the one
        the merging process may be half-way through (``attempts``)."""
        return None if self.spool_dir is None else os.path.join(
            self.spool_dir, f"{self._spool_prefix}{attempt}{SPOOL_SUFFIX}")

    def attempts(self) -> list[str]:
        """The spool files of every attempt at this shard so far, oldest first."""
        if self.spool_dir is None:
            return []
        try:
            names = [name for name in os.listdir(self.spool_dir)
                     if name.startswith(self._spool_prefix) and name.endswith(SPOOL_SUFFIX)]
        except FileNotFoundError:
            return []
        paths = [os.path.join(self.spool_dir, name) for name in names]
        return sorted(paths, key=_modified)

    @property
    def _spool_prefix(self) -> str:
        return f"shard-{self.index}."


SPOOL_SUFFIX = ".pkl"
"""A spool file's name ends so (``shard-N.<attempt>.pkl``)."""


def _modified(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except FileNotFoundError:
        return float("inf")


@dataclass(frozen=True, slots=True)
class Harvest:
    """Phase 1 result: one shard's key material."""

    material: MaterialSnapshot
    """What the shard's responses carried."""
    parsed: int
    """Distinct messages the shard parsed."""
    sightings: Sightings | None = None
    """Each message's sightings in the shard, when asked for (``ShardSpec.sightings``)."""
    frames: int = 0
    """Frames of the merged input, every shard's (each shard reads them all): what the
    merging process's progress bar counts to."""


class ItemKind(IntEnum):
    """What a judged item carries."""

    QUERY = 0
    """An ``ObservedMessage`` query (QR=0) the finding stages and the linker observe."""
    RESPONSE = 1
    """A judged response: ``(ResponseEvidence, Verdict, its responses.jsonl record but its
    resolution, ResponseFacts or None)``, the last what the forgery stage derives from the
    response alone (rendered and derived here, so the merging process does neither)."""
    ANOMALY = 2
    """An ``Anomaly`` (a traffic problem written to findings.jsonl)."""


OrderKey = tuple[int, int, int, int]
"""(frame position in the merged input, phase, shard, sequence in the shard): sorting every
shard's items by it gives the order one process meets them in. Phase 0: items a frame of
another shard released (reassembly state expired at that frame); 1: the frame's own items;
2: anomalies, drained after the frame's items (3: those of the frame's own shard).
Where one process would interleave several shards' items at one frame (reassembly state of
flows in different shards expiring at the same frame, and the final flush at the end of input,
which one process releases least recently active flow first) they come shard by shard: the
only case where the merged order can differ from one process's (the test captures come out
identical)."""
Item = tuple[OrderKey, ItemKind, Any]


@dataclass(slots=True)
class ShardCounters:
    """A shard's counters, merged by the driver into the reporting process's stages."""

    frames_read: int = 0
    settled: dict[str, int] = field(default_factory=dict)
    observed: dict[str, int] = field(default_factory=dict)
    parsed: int = 0
    parse_cache_hits: int = 0
    parse_cache_evicted: int = 0
    matching: MatchStats = field(default_factory=MatchStats)
    state_peaks: dict[str, int] = field(default_factory=dict)
    verdict_cache: VerdictCacheStats | None = None
    capture_problems: list[tuple[int, str, str, int | None]] = field(default_factory=list)
    """(reader index, source, problem, offset) of every non-fatal capture problem."""


@dataclass(frozen=True, slots=True)
class Judged:
    """Phase 2 result: one shard's judged items (spooled or inline) and its counters."""

    index: int
    """The shard."""
    counters: ShardCounters
    """Its counters."""
    spool: str | None
    """The spool file of pickled item batches, when written to one."""
    inline: bytes = b""
    """The pickled item batches, when not spooled."""

    def items(self) -> Iterator[Item]:
        """The shard's items in its own order (up to the spool's end mark)."""
        if self.spool is None:
            yield from _unpickled(io.BytesIO(self.inline))
            return
        with open(self.spool, "rb") as spool:
            yield from _unpickled(spool)

    def discard(self) -> None:
        """Remove the spool file."""
        if self.spool is not None and os.path.exists(self.spool):
            os.unlink(self.spool)


def _frame_filter(options: AuditOptions) -> FrameFilter | None:
    return FrameFilter(options.frame_filter) if options.frame_filter is not None else None


@dataclass(frozen=True, slots=True)
class KeyPass:
    """What a shard's harvest parsed: its parse cache, sightings counted, and the memos it
    filled (``Caches``), which one process keeps from its key pass for its judging pass."""

    parse_cache: ParseCache
    caches: Caches


_KEPT: dict[tuple[str, int], KeyPass] = {}
"""This process's harvests of the current run, by (run, shard), until the same shard's judging
task takes its own (``kept_key_pass``). Without them a worker parsed every message of its
shard twice, once per task, where one process parses it once (``run_audit``): 116,700
distinct messages parsed instead of 87,000 for 200,000 frames in 8 pieces on 2 workers, about
3 CPU s (benchmarks/README.md, "session 12"). The Dask
client asks for each judging task to run where its harvest did (``scale/dask.py``); where it
runs elsewhere it parses afresh, which changes no result."""


def kept_key_pass(spec: ShardSpec) -> KeyPass | None:
    """The harvest of ``spec``'s shard, if it ran in this process (then forgotten here)."""
    return _KEPT.pop((spec.run, spec.index), None) if spec.run else None


def forget_key_passes(but: str = "") -> int:
    """Drop the kept harvests of every run but ``but``; how many there were. A judging task
    that ran elsewhere leaves its harvest here: the client has them dropped when the run
    ends, and a worker's next run drops what another left (a worker serves one audit at a
    time; two at once on one cluster would only parse again)."""
    gone = [key for key in list(_KEPT) if key[0] != but]
    for key in gone:
        _KEPT.pop(key, None)
    return len(gone)


def harvest(spec: ShardSpec) -> Harvest:
    """Phase 1: gather the key material of the shard's responses (the key pass of one
    process, over this shard's flows); keep what it parsed for the judging task when the
    spec names its run."""
    from auditor.capture.sources import CaptureSet

    options = spec.options
    material = key_material(options.limits)
    found = _frame_filter(options)
    counted = ParseCache() if spec.sightings or spec.run else None
    caches = Caches(options.limits)
    with CaptureSet(list(options.captures)) as source:
        stream = EvidenceStream(ports=options.ports, verify_checksums=False,
                                parse_cache=counted, limits=options.limits, caches=caches,
                                frame_filter=found.matches if found else None,
                                shard=FlowShard(spec.index, spec.count))
        frames = _Positions(source)
        for evidence in stream.run(frames):
            observe_answer_keys(material, evidence)
    if spec.run and counted is not None:
        forget_key_passes(but=spec.run)
        _KEPT[(spec.run, spec.index)] = KeyPass(counted, caches)
    return Harvest(material.snapshot(), stream.chain.parser.parsed,
                   counted.sightings() if counted is not None and spec.sightings else None,
                   frames.position)


class _Positions:
    """Numbers the frames of the merged input as a stage pulls them."""

    def __init__(self, frames: Iterable[Frame]) -> None:
        self._frames = frames
        self.position = -1
        self.ended = False
        """End of input: what the final flush releases belongs to no frame."""

    def __iter__(self) -> Iterator[Frame]:
        for position, frame in enumerate(self._frames):
            self.position = position
            yield frame
        self.position += 1  # the final flush comes after every frame
        self.ended = True


def judge_shard(spec: ShardSpec, material: MaterialSnapshot) -> Judged:
    """Phase 2: decode and judge the shard's flows with the merged key material; return every
    query, judged response and anomaly with the key that orders it among all shards'."""
    from auditor.capture.sources import CaptureSet

    options = spec.options
    if spec.spool_dir is not None and not os.path.isdir(spec.spool_dir):
        raise AuditorError(f"the output directory's spool {spec.spool_dir} is not on this "
                           f"worker: the output directory must be on a store the client and "
                           f"every worker share (README, \"Several cores, a Dask cluster\")")
    kept = kept_key_pass(spec)
    caches = kept.caches if kept is not None else Caches(options.limits)
    parse_cache = kept.parse_cache if kept is not None else None
    if parse_cache is not None:
        parse_cache.start_replay()  # drops each message at its last sighting, as one process
    merged = merged_key_material(options.limits, (material,))
    anchors = load_anchors(list(options.trust_anchors))
    found = _frame_filter(options)
    shard = FlowShard(spec.index, spec.count)
    sink = _Sink(spec, uuid.uuid4().hex[:16])
    keys_path = options.keys_path
    if keys_path is not None and not os.path.exists(keys_path):
        # A worker on another host must see the cache the client reads (a shared store);
        # an empty one would silently change the verdicts that rely on it.
        raise AuditorError(f"key cache {keys_path} is not readable on this worker")
    cache = KeyCache(str(keys_path)) if keys_path is not None else None  # read only if named
    try:
        view = KeyView(anchors, merged, cache)
        validator = Validator(view, options.policy, at_ns=options.at_ns,
                              signature_memo=options.limits.signature_memo,
                              name_text=caches.parse.name_text)
        judge = run_judge(validator, options.verdict_cache, options.limits, caches.times)
        with CaptureSet(list(options.captures)) as source:
            frames = _Positions(source)

            def key(phase: int) -> OrderKey:
                sink.seq += 1
                own = shard.own and not frames.ended and frames.position >= 0
                return (frames.position, phase + own, spec.index, sink.seq)

            def on_query(message: ObservedMessage) -> None:
                sink.add((key(0), ItemKind.QUERY, message))

            def on_anomaly(anomaly: Anomaly) -> None:
                sink.add((key(2), ItemKind.ANOMALY, anomaly))

            stream = EvidenceStream(ports=options.ports, on_anomaly=on_anomaly,
                                    on_query=on_query, limits=options.limits, caches=caches,
                                    parse_cache=parse_cache,
                                    verify_checksums=options.verify_checksums,
                                    frame_filter=found.matches if found else None, shard=shard)
            # The forgery stage's per-response facts only (memoised per body).
            forgery = ForgeryDetector(names=caches.names, digests=merged.digests,
                                      name_text=caches.parse.name_text)
            records = ResponseRecords(name_text=caches.parse.name_text, times=caches.times)
            for evidence in stream.run(frames):
                try:
                    judged = _judged(judge.rendered, records, forgery, evidence)
                except Exception as exc:  # contained as one process would (engine.contain)
                    stream.errors.response_failed(evidence.transaction, exc)
                    continue
                sink.add((key(0), ItemKind.RESPONSE, judged))
            counters = _counters(stream, judge.counters(), source)
    finally:
        if cache is not None:
            cache.close()
    return sink.finish(counters)


def _judged(rendered: Any, records: ResponseRecords, forgery: ForgeryDetector,
            evidence: ResponseEvidence) -> tuple[ResponseEvidence, Verdict, dict[str, Any],
                                                 ResponseFacts | None]:
    verdict, fields = rendered(evidence)
    # The forgery stage sees what ``engine.reporting.stages_for`` hands it: no cut answer.
    facts = (None if evidence.transaction.response.wire.cut
             else forgery.facts(evidence, verdict))
    return evidence, verdict, {**records.render(evidence), **fields}, facts


def _counters(stream: EvidenceStream, verdict_cache: dict[str, int] | None,
              source: Any) -> ShardCounters:
    ledger = stream.ledger
    parser = stream.chain.parser
    problems = [(number, problem.source, problem.problem, problem.offset)
                for number, reader in enumerate(source.readers)
                for problem in reader.problems]
    return ShardCounters(
        frames_read=ledger.frames_read,
        settled={str(reason): count for reason, count in ledger.settled.items()},
        observed=dict(ledger.observed),
        parsed=parser.parsed,
        parse_cache_hits=parser.cache_hits,
        parse_cache_evicted=parser.evicted,
        matching=stream.matcher.stats,
        state_peaks=dict(stream.state_peaks),
        verdict_cache=None if verdict_cache is None else VerdictCacheStats(**verdict_cache),
        capture_problems=problems,
    )


_SEGMENT_END = None
"""Written after ``SHARED_BATCHES`` batches: the next batch is read with a fresh memo, as the
pickler that wrote it started one (memo indices restart from zero)."""
SPOOL_END = "end of spool"
"""Written after the last batch: the attempt that wrote this spool finished it, so a reader
knows the spool is whole without asking which attempt the task's result came from."""


def _unpickled(stream: BinaryIO) -> Iterator[Item]:
    """Every batch one ``_Sink`` pickled to ``stream``, with its shared objects, up to its end
    mark (or the end of the stream)."""
    unpickler = pickle.Unpickler(stream)
    while True:
        try:
            batch = unpickler.load()
        except EOFError:
            return
        if batch is _SEGMENT_END:
            unpickler = pickle.Unpickler(stream)
            continue
        if isinstance(batch, str) and batch == SPOOL_END:
            return
        yield from batch


def spooled_items(stream: BinaryIO) -> Iterator[Item]:
    """The items of a spool read through ``stream`` (which may block for more)."""
    return _unpickled(stream)


class _Sink:
    """Collects items into pickled batches, spooled to a file or kept in memory."""

    def __init__(self, spec: ShardSpec, attempt: str) -> None:
        self.spec = spec
        self.seq = 0
        self._batch: list[Item] = []
        self._written = 0
        self._path = spec.spool(attempt)
        self._file: BinaryIO = io.BytesIO() if self._path is None else open(self._path, "wb")
        self._pickler = DataclassPickler(self._file, protocol=pickle.HIGHEST_PROTOCOL)

    def add(self, item: Item) -> None:
        self._batch.append(item)
        if len(self._batch) >= BATCH:
            self._write()

    def _write(self) -> None:
        if not self._batch:
            return
        self._pickler.dump(self._batch)
        self._file.flush()  # the merging process reads the spool as it grows
        self._batch = []
        self._written += 1
        if self._written % SHARED_BATCHES == 0:
            self._pickler.dump(_SEGMENT_END)
            self._pickler = DataclassPickler(self._file, protocol=pickle.HIGHEST_PROTOCOL)

    def finish(self, counters: ShardCounters) -> Judged:
        self._write()
        self._pickler.dump(SPOOL_END)
        if isinstance(self._file, io.BytesIO):
            return Judged(self.spec.index, counters, None, self._file.getvalue())
        self._file.close()
        return Judged(self.spec.index, counters, self._path)
