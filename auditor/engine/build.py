"""The stages of a run built with its ``Limits`` and handed its memos (``engine/caches.py``):
key material, finding stages."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

from auditor.engine.caches import Caches
from auditor.engine.limits import Limits
from auditor.evidence import ResponseEvidence
from auditor.findings.catalogue import Finding
from auditor.forgery import ForgeryConfig, ForgeryDetector
from auditor.trust import KeyMaterial
from auditor.trust.material import MaterialSnapshot, RecordDigests
from auditor.validate import Validator, Verdict


def key_material(limits: Limits) -> KeyMaterial:
    """An empty key material collector capped by ``limits`` (its ``digests`` memos too)."""
    return KeyMaterial(max_signed_copies=limits.signed_copies, max_denial=limits.denial_records,
                       max_chain_rrsets=limits.chain_rrsets, digest_memo=limits.digest_memo)


def merged_key_material(limits: Limits, snapshots: Iterable[MaterialSnapshot]) -> KeyMaterial:
    """One collector holding the snapshots of several (``audit --jobs``, Dask), capped by
    ``limits`` as ``key_material`` caps one process's: over a cap the merge drops the least
    recently seen entries, keeping the tables one collector over every flow would keep, and
    counts each dropped entry once in ``evicted``, as observing does. The snapshots' own
    evictions are added: shards evict separately under pressure, so over a cap the total can
    differ from one process's (equal when no entry crosses shards)."""
    material = key_material(limits)
    material.merge(*snapshots)
    return material


class FindingSource(Protocol):
    """A stage that turns judged responses into findings (forgery signals, validation
    findings, zone health). It sees every response in capture order."""

    def feed(self, evidence: ResponseEvidence, verdict: Verdict) -> Iterable[Finding]:
        """Take one judged response; return findings it completes."""
        ...

    def flush(self) -> Iterable[Finding]:
        """End of input: return what is still pending."""
        ...


def finding_sources(validator: Validator | None, limits: Limits,
                    caches: Caches | None = None,
                    digests: RecordDigests | None = None) -> list[FindingSource]:
    """The finding stages of a run, in the order they see each response (``caches``: the
    run's memos; without them the stages have their own). The forgery stage shares the
    validator's RRset digests, else uses ``digests`` (a reporting process of its own)."""
    from auditor.findings.validation import ValidationFindings
    from auditor.findings.zones import ZoneHealth

    name_text = caches.parse.name_text if caches is not None else None
    forgery = ForgeryDetector(ForgeryConfig(max_entries=limits.forgery_entries,
                                            holdon_waiting=limits.holdon_waiting,
                                            burst_window_ns=limits.burst_window_ns),
                               caches.names if caches is not None else None,
                               validator.keys.material.digests if validator is not None
                               else digests,
                               name_text)
    return [forgery, ValidationFindings(),
            ZoneHealth(zone_trust_of(validator), max_zones=limits.zones, name_text=name_text)]


def zone_trust_of(validator: Validator | None) -> Callable[[Any], tuple[str, str]] | None:
    """Zone -> (chain status, explanation) for the zone inventory."""
    if validator is None:
        return None

    def trust(zone: Any) -> tuple[str, str]:
        found = validator.zone_trust(zone)
        return found.status.value, "; ".join((*found.missing, *found.detail)[:3])

    return trust

