"""Orchestration: wires capture, decode, parsing, matching, evidence, validation and reports."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import dns.name

from auditor import __version__
from auditor.anomaly import Anomaly
from auditor.capture.bpf import FrameFilter
from auditor.capture.frame import Frame
from auditor.decode.transport import (
    DNS_PORTS,
)
from auditor.engine.build import (
    finding_sources,
    key_material,
)
from auditor.engine.caches import Caches
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
from auditor.engine.reporting import RecordHook, Reporting, facts_observer
from auditor.engine.stats import (
    finding_state,
    forgery_counters,
    memo_sizes,
    stats_document,
)
from auditor.engine.stream import DecodeChain as DecodeChain  # re-exported
from auditor.engine.stream import EvidenceStream
from auditor.evidence import ResponseEvidence
from auditor.findings.catalogue import Finding
from auditor.findings.codes import ValidationCode
from auditor.memo import collecting_rarely, release_heap
from auditor.messages import ObservedMessage, ParseCache, ParsedMessage
from auditor.report.anonymize import PrefixPreservingAnonymizer, RecordAnonymizer
from auditor.report.evidence_pcap import (
    EvidenceCollector,
    FrameRing,
    select_frames,
    sha256_file,
    write_evidence,
)
from auditor.report.records import anomaly_record, finding_record, iso_time
from auditor.resolution import ResolutionLinker
from auditor.trust import KeyCache, KeyMaterial, KeyView, TrustAnchor, TrustAnchors, load_anchors
from auditor.trust.cache import CacheUse
from auditor.validate import RFC8624, ValidationPolicy, Validator, Verdict

if TYPE_CHECKING:
    from auditor.report.run import OutputFormat

logger = logging.getLogger(__name__)

SIGNATURE_MEMO = FILE_LIMITS.signature_memo
"""Distinct RRSIG checks whose result an audit run memoises (``Limits.signature_memo``)."""


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
    caches: Caches | None = None,
    shard: Callable[[Frame], bool] | None = None,
) -> int:
    """First pass over files: gather every DNSKEY, DS and denial RRset the traffic carries
    (in the frames of ``shard`` only, when given); return how many distinct messages it
    parsed.

    The parse cache (and the run's ``caches``) are kept for the judging pass, so each distinct
    message is parsed once per run; checksums are counted by the judging pass only.
    """
    from auditor.capture.sources import CaptureSet

    with CaptureSet(list(captures)) as source:
        stream = EvidenceStream(ports=ports, verify_checksums=False, parse_cache=parse_cache,
                                frame_filter=frame_filter, limits=limits, caches=caches,
                                shard=shard)
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

    def outputs_closed(self) -> None:
        """``responses.jsonl`` and ``findings.jsonl`` are whole: what reads them back may
        start (elsewhere) while this process writes the rest."""
        ...

    @property
    def processes(self) -> dict[str, Any]:
        """``stats.json`` ``processes``: how the judging was split (shards, attempts)."""
        ...


@dataclass(slots=True)
class ReportContext:
    """What the reporting side of a file audit is built from: the run's setup once the key
    pass is done (``audit --jobs``: a reporting process builds its own, ``report_context``)."""

    options: AuditOptions
    started: float
    """``time.monotonic()`` when the run started."""
    anchors: TrustAnchors
    keys_path: Path
    validator: Validator
    """The run's validator (the zone inventory, the key cache counter and ``chains.json``
    ask it about zones' trust)."""
    caches: Caches
    material: KeyMaterial
    cache_use: CacheUse
    single_pass: bool
    render: bool
    """Whether the reporting side renders each response's capture-level fields (False: they
    come whole, rendered where the response was judged)."""
    ring: FrameRing | None = None
    """Recent frames for ``--evidence`` of standard input."""


@dataclass(frozen=True, slots=True)
class JudgingCounters:
    """What the judging side of a file audit counted, for ``stats.json``: handed to the
    reporting side at the end of the run (``audit --jobs``: across the pipe)."""

    stream: dict[str, Any]
    """``EvidenceStream.counters()``."""
    state_peaks: dict[str, int]
    verdict_cache: dict[str, int] | None
    parsed_before: int
    """Distinct messages the key pass parsed."""
    key_material: dict[str, int]
    """``KeyMaterial.sizes()``."""
    material_evicted: dict[str, int]
    memos: dict[str, int]
    """``memo_sizes`` of the judging side."""
    capture_problems: tuple[str, ...]
    cache_rows_written: int
    """Rows the key cache gained or changed."""
    processes: dict[str, Any] | None = None
    """``stats.json`` ``processes``: how the run was split (None: one process)."""


class ReportSide(Protocol):
    """Where the judging side of a file audit hands what it met, in capture order: the
    reporting side itself (``FileReports``) or a link to it in another process."""

    errors: Containment
    """Contains the judging side's own failures (its anomalies go to ``anomaly``)."""

    def query(self, message: ObservedMessage) -> None:
        """A decoded query (the forgery stage's and the linker's view)."""
        ...

    def anomaly(self, anomaly: Anomaly) -> None:
        """A traffic problem for ``findings.jsonl``."""
        ...

    def facts(self, evidence: ResponseEvidence, facts: Any) -> None:
        """What a worker's forgery stage derived from the response reported next."""
        ...

    def report_all(self, judged: Iterable[Rendered]) -> None:
        """Every judged response, in the order released."""
        ...

    def close(self) -> None:
        """End of input: the finding stages' pending findings; the JSON Lines closed."""
        ...

    def complete(self, judging: JudgingCounters) -> AuditOutcome:
        """``stats.json``, the evidence file and the end-of-run reports."""
        ...


class ProcessSplit(Protocol):
    """``audit --jobs``: a second process shares the key pass (each harvests a flow shard and
    both merge the two) and runs the reporting side."""

    @property
    def shard(self) -> Callable[[Frame], bool]:
        """The key pass's flow shard in this process."""
        ...

    def merged_material(self, material: KeyMaterial,
                        parse_cache: ParseCache) -> tuple[KeyMaterial, int]:
        """This process's key material merged with the other's, and the distinct messages
        the other's key pass parsed; the other's sightings added to ``parse_cache``."""
        ...

    def report_side(self, context: ReportContext) -> ReportSide:
        """The reporting side, once the other process has opened its outputs."""
        ...


@collecting_rarely
def run_audit(options: AuditOptions, elsewhere: JudgedElsewhere | None = None,
              split: ProcessSplit | None = None) -> AuditOutcome:
    """Read the captures, judge every response, write the reports and update the key cache
    (``elsewhere``: the judging is done by workers; this process merges and reports;
    ``split``: a second process shares the key pass and runs the reporting side)."""
    from auditor.capture.sources import CaptureSet

    started = time.monotonic()
    limits = options.limits
    caches = Caches(limits)
    anchors = load_anchors(list(options.trust_anchors))
    frame_filter = (FrameFilter(options.frame_filter).matches
                    if options.frame_filter is not None else None)
    source = CaptureSet(list(options.captures))
    options.out_dir.mkdir(parents=True, exist_ok=True)
    keys_path = options.keys_path or options.out_dir / "keys.sqlite"
    material = key_material(limits)
    single_pass = "-" in options.captures
    # Two passes over files: the key pass counts each message's sightings and the judging
    # pass drops a message from the cache at its last one (ParseCache).
    parse_cache = ParseCache(counting=elsewhere is None and not single_pass)
    parsed_before = 0
    if elsewhere is not None:
        material, parsed_before = elsewhere.key_material()
    elif not single_pass:
        parsed_before = _observe_keys(options.captures, options.ports, material, parse_cache,
                                      frame_filter, limits, caches,
                                      split.shard if split is not None else None)
    with KeyCache(str(keys_path)) as cache:
        if split is not None and not single_pass:
            # Once the key cache exists: the other process reads it next.
            material, parsed_elsewhere = split.merged_material(material, parse_cache)
            parsed_before += parsed_elsewhere
        parse_cache.start_replay()
        validator, cache_use = judging_setup(options, anchors, keys_path, material, cache,
                                             caches)
        verdicts = run_judge(validator, options.verdict_cache, limits, caches.times)
        ring = FrameRing() if single_pass and options.evidence_path is not None else None
        context = ReportContext(options, started, anchors, keys_path, validator, caches,
                                material, cache_use, single_pass, render=elsewhere is None,
                                ring=ring)
        side = split.report_side(context) if split is not None else FileReports(context)
        with source:
            stream = EvidenceStream(
                ports=options.ports,
                on_anomaly=side.anomaly,
                on_query=side.query,
                verify_checksums=options.verify_checksums,
                parse_cache=parse_cache,
                frame_filter=frame_filter,
                limits=limits,
                caches=caches,
                errors=side.errors,
            )
            if elsewhere is not None:
                stream.on_response_facts = side.facts
            frames = _with_progress(source, source, options.progress)
            if ring is not None:
                frames = ring.watch(frames)
            judged = (
                elsewhere.judged(source, stream, verdicts) if elsewhere is not None
                else _judged(stream, frames, ordered_judge(verdicts, material, limits)
                             if single_pass else two_pass_judge(verdicts))
            )
            side.report_all(judged)
            side.close()
            if elsewhere is not None:
                elsewhere.outputs_closed()
        cache_written = cache.apply(validator.cache_updates())
    judging = JudgingCounters(
        stream.counters(), dict(stream.state_peaks), verdicts.counters(), parsed_before,
        material.sizes(), dict(material.evicted), memo_sizes(caches, material),
        tuple(str(problem) for problem in source.problems), cache_written,
        elsewhere.processes if elsewhere is not None else getattr(side, "processes", None))
    # What judging kept (parsed messages, stored verdicts) goes before the reports are
    # rendered, so its memory is reused rather than added to.
    stream.on_query = stream.on_response_facts = None
    parse_cache.clear()
    verdicts.release()
    return side.complete(judging)


def judging_setup(options: AuditOptions, anchors: TrustAnchors, keys_path: Path,
                  material: KeyMaterial, cache: KeyCache,
                  caches: Caches) -> tuple[Validator, CacheUse]:
    """The run's validator over ``material`` and the key cache (read only when the user named
    it: see ``CacheUse``), and what the run does with that cache."""
    cache_use = CacheUse(str(keys_path), options.keys_path is not None, cache.state_counts())
    view = KeyView(anchors, material, cache if cache_use.read else None)
    cache_use.zones_loaded = len(view.cached_zones())
    cache_use.keys_loaded = sum(len(view.cached_keys(z)) for z in view.cached_zones())
    validator = Validator(view, options.policy, at_ns=options.at_ns,
                          signature_memo=options.limits.signature_memo,
                          name_text=caches.parse.name_text)
    return validator, cache_use


def report_context(options: AuditOptions, started: float,
                   material: KeyMaterial) -> ReportContext:
    """The setup of a reporting side in a process of its own (``audit --jobs``): the run's
    anchors, validator and key cache use, as ``run_audit`` builds them, with memos of its
    own."""
    caches = Caches(options.limits)
    anchors = load_anchors(list(options.trust_anchors))
    keys_path = options.keys_path or options.out_dir / "keys.sqlite"
    with KeyCache(str(keys_path)) as cache:
        validator, cache_use = judging_setup(options, anchors, keys_path, material, cache,
                                             caches)
    return ReportContext(options, started, anchors, keys_path, validator, caches, material,
                         cache_use, single_pass=False, render=True)


class FileReports:
    """The reporting side of a file audit (``ReportSide``): the finding stages, the resolution
    linker, ``responses.jsonl`` and ``findings.jsonl`` as responses come; then ``stats.json``,
    the evidence file, the key cache counts and the end-of-run reports."""

    def __init__(self, context: ReportContext, *, own_caches: bool = False,
                 tables_elsewhere: bool = False) -> None:
        """``own_caches``: this side runs in a process of its own, so its memos are counted
        besides the judging side's; ``tables_elsewhere``: the flow tables (Parquet, CSV) are
        written by another process once ``close`` has returned (``table_formats``)."""
        from auditor.report.files import JsonLinesWriter
        from auditor.report.records import ResponseRecords
        from auditor.report.run import RunReporter  # pandas/pyarrow: only when reporting

        options = context.options
        caches = context.caches
        self.context = context
        self._own_caches = own_caches
        self.paths = tuple(
            options.out_dir / name for name in ("responses.jsonl", "findings.jsonl", "stats.json")
        )
        formats = _formats(options.report_formats)
        self.reporter = RunReporter(options.out_dir,
                                    formats - table_formats(formats) if tables_elsewhere
                                    else formats)
        anonymizer = _record_anonymizer(options.anonymize_secret)
        self._outputs = ExitStack()
        self.responses = self._outputs.enter_context(JsonLinesWriter(
            self.paths[0], anonymizer.response if anonymizer else None, floats=False))
        self.found = self._outputs.enter_context(
            JsonLinesWriter(self.paths[1], anonymizer.finding if anonymizer else None))
        self.collector = EvidenceCollector(context.ring)
        self.errors = Containment(self.anomaly)
        self.records = ResponseRecords(name_text=caches.parse.name_text, times=caches.times)
        validator = context.validator
        self.reporting = Reporting(
            finding_sources(validator, options.limits, caches), ResolutionLinker(),
            write=self.responses.write, on_findings=self._note_findings, errors=self.errors,
            render=self.records.render if context.render else None,  # else rendered already
            on_record=_cache_use_counter(context.cache_use, validator))
        self._query = self.reporting.query_hook()
        self._prime = facts_observer(self.reporting.sources)

    def query(self, message: ObservedMessage) -> None:
        self._query(message)

    def anomaly(self, anomaly: Anomaly) -> None:
        self.found.write(anomaly_record(anomaly, self.context.caches.times))

    def facts(self, evidence: ResponseEvidence, facts: Any) -> None:
        if self._prime is not None:
            self._prime(evidence, facts)

    def _note_findings(self, findings: Iterable[Finding]) -> None:
        times = self.context.caches.times
        for finding in findings:
            self.found.write(finding_record(finding, times))
            self.reporter.note(finding)
            self.collector.note(finding)

    def report_all(self, judged: Iterable[Rendered], rendered: bool = False) -> None:
        self.reporting.report_all(judged, rendered)

    def close(self) -> None:
        try:
            self.reporting.flush()
        finally:
            self._outputs.close()

    def complete(self, judging: JudgingCounters) -> AuditOutcome:
        from auditor.findings.zones import ZoneHealth
        from auditor.report.files import write_json

        context = self.context
        options = context.options
        reporting = self.reporting
        sources = reporting.sources
        context.cache_use.rows_written = judging.cache_rows_written
        stats = stats_document(
            {"elapsed_s": round(time.monotonic() - context.started, 3),
             "captures": list(options.captures),
             "capture_problems": list(judging.capture_problems)},
            judging.stream,
            {"responses_written": self.responses.count, "findings_written": self.found.count},
            {
                "validation": self._validation(judging),
                "state": {"peak": dict(judging.state_peaks),
                          "key_material": dict(judging.key_material),
                          "memos": self._memos(judging), "findings": finding_state(sources)},
                "findings": self.reporter.stats(),
                "anonymized": options.anonymize_secret is not None,
                "inputs": _input_digests(options.captures),
                "forgery": forgery_counters(sources),
                "resolution": reporting.linker.stats.as_dict(),
            },
        )
        # Files: the key pass parsed the distinct messages the judging pass then finds cached.
        stats["messages"]["parsed_distinct"] += judging.parsed_before
        stats["evidence"] = _write_evidence(options, self.collector)
        stats["key_cache"] = context.cache_use.as_dict()
        if judging.processes is not None:
            stats["processes"] = judging.processes
        write_json(self.paths[2], stats)
        zone_rows = next((s.rows for s in sources if isinstance(s, ZoneHealth)), [])
        # The reports read the files back: what reporting kept (forgery tables, signed
        # copies, memos) goes first, so its memory is reused rather than added to. It is
        # freed as it is dropped: a full collection here found 40 objects in cycles at
        # 200,000 frames, took 0.5-1.7 s walking everything still alive, and lowered no
        # peak (350 MB either way on the names flood, 342 against 343-344 MB on the
        # standard capture; benchmarks/README.md, "session 13").
        reporting.release()
        self.records.clear()
        context.material.release_copies()
        context.material.digests.clear()
        context.caches.release()
        release_heap()
        reports = tuple(self.reporter.finish(context.validator, zone_rows))
        return AuditOutcome(stats, self.paths + reports, judging.capture_problems,
                            dict(stats["validation"]["verdicts"]))

    def _validation(self, judging: JudgingCounters) -> dict[str, Any]:
        context = self.context
        options = context.options
        tally = self.reporting.tally
        return {
            "mode": "single_pass" if context.single_pass else "two_pass",
            "reference_time": "fixed" if options.at_ns is not None else "capture_time",
            "at": iso_time(options.at_ns) if options.at_ns is not None else None,
            "policy": options.policy.name,
            "clock_skew_s": options.policy.clock_skew_s,
            "trust_anchors": [_anchor_text(anchor) for anchor in context.anchors],
            "key_cache": str(context.keys_path),
            "key_cache_rows_written": judging.cache_rows_written,
            "key_material_evicted": dict(judging.material_evicted),
            "verdicts": tally.statuses(),
            "codes": tally.code_counts(),
            "verdict_cache": judging.verdict_cache,
        }

    def _memos(self, judging: JudgingCounters) -> dict[str, int]:
        """The judging side's memo sizes; a reporting process's own added."""
        if not self._own_caches:
            return dict(judging.memos)
        own = memo_sizes(self.context.caches, self.context.material)
        return {name: judging.memos.get(name, 0) + own.get(name, 0)
                for name in {**judging.memos, **own}}


def _cache_use_counter(cache_use: CacheUse, validator: Validator) -> RecordHook | None:
    """Counts the verdicts that relied on the key cache (when it holds any key)."""
    if not cache_use.keys_loaded:
        return None

    def count(evidence: ResponseEvidence, verdict: Verdict, record: dict[str, Any]) -> None:
        if relies_on_cache(verdict, validator):
            cache_use.verdicts_using_cache += 1

    return count


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


def table_formats(formats: frozenset[OutputFormat]) -> frozenset[OutputFormat]:
    """The flow tables among ``formats`` (written from ``responses.jsonl`` alone)."""
    from auditor.report.run import OutputFormat

    return formats & {OutputFormat.PARQUET, OutputFormat.CSV}


def write_table_reports(options: AuditOptions) -> list[Path]:
    """The flow tables of a run whose ``responses.jsonl`` is written (``audit --jobs``: by
    the judging process while the reporting one writes the rest)."""
    from auditor.report.run import render_reports

    return render_reports(options.out_dir, table_formats(_formats(options.report_formats)))


def shared_flow_table(options: AuditOptions) -> bool:
    """Whether the run's flow table can be written in chunks by two processes at once: the
    Parquet dataset can (one file per chunk), the CSV cannot (one file, written in order)."""
    from auditor.report.run import OutputFormat

    return table_formats(_formats(options.report_formats)) == {OutputFormat.PARQUET}


def _record_anonymizer(secret: bytes | None) -> RecordAnonymizer | None:
    if secret is None:
        return None
    return RecordAnonymizer(PrefixPreservingAnonymizer(secret))
