"""The merge step: every shard's items in the order one process meets them, and the shards'
counters folded into the reporting process's stages."""

from __future__ import annotations

import dataclasses
import heapq
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from auditor.engine.judge import Rendered, RunJudge
from auditor.engine.stream import EvidenceStream
from auditor.errors import CaptureError
from auditor.ledger import Reason
from auditor.scale.work import Item, ItemKind, Judged, ShardCounters


def merged_items(streams: Sequence[Iterable[Item]]) -> Iterator[tuple[ItemKind, Any]]:
    """Every shard's items sorted by their order keys (each shard's are already sorted)."""
    for _, kind, payload in heapq.merge(*streams, key=lambda item: item[0]):
        yield kind, payload


def replay(streams: Sequence[Iterable[Item]], finished: Callable[[], Sequence[Judged]],
           source: Any, stream: EvidenceStream, judge: RunJudge) -> Iterator[Rendered]:
    """Hand the shards' items to the run as its own stream would have: queries to
    ``stream.on_query``, anomalies to ``stream.on_anomaly``, judged responses yielded (what
    the workers' forgery stages derived from each to ``stream.on_response_facts`` first);
    then fold the counters of the ``finished`` shards in."""
    primed = stream.on_response_facts
    for kind, payload in merged_items(streams):
        if kind is ItemKind.RESPONSE:
            evidence, verdict, fields, facts = payload
            if facts is not None and primed is not None:
                primed(evidence, facts)
            yield evidence, verdict, fields
        elif kind is ItemKind.QUERY:
            if stream.on_query is not None:
                stream.on_query(payload)
        elif stream.on_anomaly is not None:
            stream.on_anomaly(payload)
    results = finished()
    for result in results:
        merge_counters(result.counters, stream, judge)
    if results:  # every shard read every frame: the capture problems are the same in each
        for number, name, problem, offset in results[0].counters.capture_problems:
            source.readers[number].problems.append(CaptureError(name, problem, offset))


def merge_counters(counters: ShardCounters, stream: EvidenceStream, judge: RunJudge) -> None:
    """Add one shard's counts to the run's (``stats.json`` reads them from there).

    ``state_peaks`` add up: the sum of the shards' peaks bounds what one process would have
    held (the shards peak at different times)."""
    ledger = stream.ledger
    ledger.frames_read += counters.frames_read
    for reason, count in counters.settled.items():
        ledger.settled[Reason(reason)] += count
    ledger.observed.update(counters.observed)
    parser = stream.chain.parser
    parser.parsed += counters.parsed
    parser.cache_hits += counters.parse_cache_hits
    parser.evicted += counters.parse_cache_evicted
    _add_fields(stream.matcher.stats, counters.matching)
    for name, peak in counters.state_peaks.items():
        stream.state_peaks[name] = stream.state_peaks.get(name, 0) + peak
    if judge.cache is not None and counters.verdict_cache is not None:
        _add_fields(judge.cache.stats, counters.verdict_cache)


def _add_fields(total: Any, part: Any) -> None:
    """Add every int field (and dict of ints) of dataclass ``part`` to ``total``."""
    for item in dataclasses.fields(part):
        mine, theirs = getattr(total, item.name), getattr(part, item.name)
        if isinstance(theirs, dict):
            for key, count in theirs.items():
                mine[key] = mine.get(key, 0) + count
        else:
            setattr(total, item.name, mine + theirs)
