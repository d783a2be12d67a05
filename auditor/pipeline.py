"""Orchestration: wires capture, decode, parsing, matching, evidence, validation and reports."""

from __future__ import annotations

import gc
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import dns.name

from auditor import __version__
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
from auditor.memo import release_heap
from auditor.messages import ParseCache, ParsedMessage
from auditor.report.anonymize import PrefixPreservingAnonymizer, RecordAnonymizer
from auditor.report.evidence_pcap import (
    EvidenceCollector,
    FrameRing,
    select_frames,
    sha256_file,
    write_evidence,
)
from auditor.report.records import iso_time
from auditor.resolution import ResolutionLinker
from auditor.trust import KeyCache, KeyMaterial, KeyView, TrustAnchor, load_anchors
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
) -> int:
    """First pass over files: gather every DNSKEY, DS and denial RRset the traffic carries;
    return how many distinct messages it parsed.

    The parse cache (and the run's ``caches``) are kept for the judging pass, so each distinct
    message is parsed once per run; checksums are counted by the judging pass only.
    """
    from auditor.capture.sources import CaptureSet

    with CaptureSet(list(captures)) as source:
        stream = EvidenceStream(ports=ports, verify_checksums=False, parse_cache=parse_cache,
                                frame_filter=frame_filter, limits=limits, caches=caches)
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
                                      frame_filter, limits, caches)
        parse_cache.start_replay()
    with KeyCache(str(keys_path)) as cache:
        # Only a cache the user named is read: see CacheUse.
        cache_use = CacheUse(str(keys_path), options.keys_path is not None, cache.state_counts())
        view = KeyView(anchors, material, cache if cache_use.read else None)
        cache_use.zones_loaded = len(view.cached_zones())
        cache_use.keys_loaded = sum(len(view.cached_keys(z)) for z in view.cached_zones())
        validator = Validator(view, options.policy, at_ns=options.at_ns,
                              signature_memo=limits.signature_memo,
                              name_text=caches.parse.name_text)
        verdicts = run_judge(validator, options.verdict_cache, limits, caches.times)
        paths = tuple(
            options.out_dir / name for name in ("responses.jsonl", "findings.jsonl", "stats.json")
        )
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
                on_anomaly=lambda anomaly: found.write(anomaly_record(anomaly, caches.times)),
                verify_checksums=options.verify_checksums,
                parse_cache=parse_cache,
                frame_filter=frame_filter,
                limits=limits,
                caches=caches,
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
            def note_findings(findings: Iterable[Finding]) -> None:
                for finding in findings:
                    found.write(finding_record(finding, caches.times))
                    reporter.note(finding)
                    collector.note(finding)

            records = ResponseRecords(name_text=caches.parse.name_text, times=caches.times)
            reporting = Reporting(
                finding_sources(validator, limits, caches), ResolutionLinker(),
                write=responses.write, on_findings=note_findings, errors=stream.errors,
                render=records.render if elsewhere is None else None,  # workers render theirs
                on_record=_cache_use_counter(cache_use, validator))
            sources = reporting.sources
            stream.on_query = reporting.query_hook()
            stream.on_response_facts = facts_observer(sources)
            reporting.report_all(judged)
            reporting.flush()
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
                "verdicts": reporting.tally.statuses(),
                "codes": reporting.tally.code_counts(),
                "verdict_cache": verdicts.counters(),
            },
            "state": {"peak": dict(stream.state_peaks), "key_material": material.sizes(),
                      "memos": memo_sizes(caches, material), "findings": finding_state(sources)},
            "findings": reporter.stats(),
            "anonymized": anonymizer is not None,
            "inputs": _input_digests(options.captures),
            "forgery": forgery_counters(sources),
            "resolution": reporting.linker.stats.as_dict(),
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
    reporting.release()
    stream.on_query = stream.on_response_facts = None
    parse_cache.clear()
    verdicts.release()
    records.clear()
    material.release_copies()
    material.digests.clear()
    caches.release()
    gc.collect()
    release_heap()
    reports = tuple(reporter.finish(validator, zone_rows))
    return AuditOutcome(stats, paths + reports, problems, dict(stats["validation"]["verdicts"]))


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


def _record_anonymizer(secret: bytes | None) -> RecordAnonymizer | None:
    if secret is None:
        return None
    return RecordAnonymizer(PrefixPreservingAnonymizer(secret))
