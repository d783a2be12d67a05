"""The ``stats.json`` document of a run, built the same way for every driver from the counters
of its stages."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from auditor import __version__
from auditor.engine.build import FindingSource
from auditor.engine.caches import Caches
from auditor.findings.zones import ZoneHealth
from auditor.forgery import ForgeryDetector
from auditor.report.records import STATS_SCHEMA
from auditor.trust import KeyMaterial
from auditor.validate import Status, Verdict


class VerdictTally:
    """Responses written, per verdict status and per verdict code."""

    __slots__ = ("codes", "verdicts")

    def __init__(self) -> None:
        self.verdicts: Counter[str] = Counter()
        self.codes: Counter[str] = Counter()

    def count(self, verdict: Verdict) -> None:
        """One more response written with ``verdict``."""
        self.verdicts[verdict.status.value] += 1
        self.codes.update(code.value for code in verdict.codes)

    def statuses(self) -> dict[str, int]:
        """Responses per status, every status listed (RFC 4033 5)."""
        return {status.value: self.verdicts.get(status.value, 0) for status in Status}

    def code_counts(self) -> dict[str, int]:
        """Verdicts per code, most frequent first."""
        return dict(self.codes.most_common())


def stats_document(head: Mapping[str, Any], stream_counters: Mapping[str, Any],
                   written: Mapping[str, Any], sections: Mapping[str, Any]) -> dict[str, Any]:
    """``stats.json``: schema, tool and version; the driver's ``head`` (run, time, inputs);
    every decode, parse and matching stage's counters; what was written; then the driver's
    ``sections`` in their order."""
    return {"schema": STATS_SCHEMA, "tool": "dnssec-auditor", "version": __version__,
            **head, **stream_counters, **written, **sections}


def forgery_counters(sources: list[FindingSource]) -> dict[str, object]:
    """The forgery stage's counters (empty when it does not run)."""
    detector = next((s for s in sources if isinstance(s, ForgeryDetector)), None)
    return detector.counters() if detector is not None else {}


def finding_state(sources: list[FindingSource]) -> dict[str, dict[str, int]]:
    """Sizes and evictions of the zone inventory and the findings mergers."""
    found: dict[str, dict[str, int]] = {}
    for source in sources:
        counters = getattr(source, "counters", None)
        if counters is not None and not isinstance(source, ForgeryDetector):
            found[type(source).__name__] = counters()
    return found


def memo_sizes(caches: Caches, material: KeyMaterial) -> dict[str, int]:
    """Entries in the run's memos now (``caches``, the key material's record wire forms; each
    capped)."""
    return {**caches.sizes(), "record_wires": len(material.digests.wire)}


def evictions(material_evicted: Mapping[str, int], sources: list[FindingSource],
              verdict_cache_evicted: int | None) -> dict[str, int]:
    """Entries dropped from the capped tables of the key material (``KeyMaterial.evicted``),
    the forgery stage, the zone inventory and the verdict cache (None: no cache), oldest (or
    least recently seen) first."""
    counts = {f"key_material_{kind}": count for kind, count in material_evicted.items()}
    for source in sources:
        if isinstance(source, ForgeryDetector):
            forgery = source.counters()
            counts.update({key: int(forgery[key]) for key in (  # type: ignore[call-overload]
                "race_state_evicted", "crosscheck_claims_dropped",
                "holdon_servers_evicted", "holdon_waiting_evicted")})
        if isinstance(source, ZoneHealth):
            counts["zones_evicted"] = source.evicted
    if verdict_cache_evicted is not None:
        counts["verdict_cache_evicted"] = verdict_cache_evicted
    return counts
