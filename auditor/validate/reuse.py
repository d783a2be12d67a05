"""Judging each distinct answer once: a bounded cache of verdicts by response body."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import dns.flags
import dns.rcode

from auditor.evidence import ResponseEvidence
from auditor.findings.codes import ValidationCode
from auditor.validate.validator import Validator
from auditor.validate.verdict import Verdict

_NS = 1_000_000_000
_CD = int(dns.flags.CD)
ENTRY_OVERHEAD = 2_560
"""Accounted bytes per entry besides its key: the key tuple, the verdict and the rendering
the pipeline memoises for it (2.8 KB an entry in all, keys included, measured with
tracemalloc over the 5,006 entries of a 20,000-frame make_capture audit)."""

_BUDGET = ValidationCode.VALIDATION_BUDGET_EXCEEDED
_SERVFAIL = dns.rcode.SERVFAIL

VerdictKey = tuple[bytes, tuple[int, ...], bool | None, bool, int | None, int, int]


@dataclass(frozen=True, slots=True)
class _Entry:
    verdict: Verdict
    """The verdict as first judged (the one its rendering is memoised by)."""
    low_ns: int
    high_ns: int
    """Capture times (ns, inclusive) at which the same body gets the same verdict."""
    generation: int = 0
    """The key material's generation the verdict holds for (``untouched``: the key then
    leaves the generation out)."""


@dataclass(slots=True)
class VerdictCacheStats:
    """Counts for ``stats.json``."""

    hits: int = 0
    misses: int = 0
    outside_window: int = 0
    """Lookups that found the body judged, but for capture times that exclude this one."""
    not_reusable: int = 0
    """Verdicts that named no window (``Verdict.valid_ns`` None): never stored."""
    budget_shaped: int = 0
    """Verdicts a validation budget or a zone's rate cut short (``validation_budget_exceeded``):
    never stored, since the same body judged with budget to spare may get another verdict."""
    growing_material: int = 0
    """Live mode: verdicts that read material which changes without a new generation (signed
    copies: the unsigned cross-check, a SERVFAIL's claims): never stored."""
    material_changed: int = 0
    """Lookups (``untouched``) that found the body judged, but material about one of its
    zones arrived since."""
    evicted: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "hits": self.hits,
            "misses": self.misses,
            "outside_window": self.outside_window,
            "not_reusable": self.not_reusable,
            "budget_shaped": self.budget_shaped,
            "growing_material": self.growing_material,
            "material_changed": self.material_changed,
            "evicted": self.evicted,
        }


class VerdictCache:
    """Verdicts by everything a verdict depends on but time: the response body after its ID
    with TTLs masked (``messages.ttl_free``) plus the TTLs that exceed an RRSIG's Original
    TTL (the only way a TTL changes a verdict, RFC 4035 5.3.3), the DO and CD bits of the
    query, the trust-anchor epoch and the key material's generation. An entry is reused
    while the capture time stays inside the window its verdict relied on
    (``Verdict.valid_ns``), with the reference time set to the response's own.

    A verdict a budget shaped (``validation_budget_exceeded``: the per-response work budget,
    live mode's per-zone rate) is never stored: it says the work was cut short, not what the
    body proves. A hit costs no validation work, so it spends none of its zone's rate.

    ``growing_material`` (live mode: material keeps arriving while verdicts are reused) also
    keys on the delegations seen (``KeyMaterial.delegation_generation``: unsigned referral NS
    change no chain generation) and stores no verdict that read signed copies (their times
    move with every packet): one pinned to an instant (the unsigned cross-check) or a SERVFAIL
    (its claims are held against copies). With the whole capture's material gathered first
    (files) neither can change between two lookups. ``untouched(evidence, generation)`` (live
    mode) says whether no material that arrived after ``generation`` concerns a zone the
    response's verdict can depend on (``engine.judge.StreamingHold`` uses the same test before it
    judges a held response again); with it the key leaves the generation out and an entry of
    an older generation is reused when untouched, so material about other zones does not
    empty the cache.
    """

    def __init__(
        self,
        validator: Validator,
        judge: Callable[[ResponseEvidence], Verdict],
        *,
        max_entries: int = 50_000,
        max_bytes: int = 24 << 20,
        growing_material: bool = False,
        untouched: Callable[[ResponseEvidence, int], bool] | None = None,
    ) -> None:
        self._validator = validator
        self._growing = growing_material
        self._untouched = untouched
        self._judge = judge
        self._entries: OrderedDict[VerdictKey, _Entry] = OrderedDict()
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._bytes = 0
        self.stats = VerdictCacheStats()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def cached_bytes(self) -> int:
        """Accounted bytes held now."""
        return self._bytes

    def judge(self, evidence: ResponseEvidence) -> tuple[Verdict, Verdict]:
        """(this response's verdict, the stored verdict it was derived from: the same object
        when judged now)."""
        key = self._key(evidence)
        ts_ns = evidence.ts_ns
        entry = self._entries.get(key)
        if entry is not None:
            if entry.low_ns <= ts_ns <= entry.high_ns:
                if self._untouched is not None and not self._still_holds(key, entry, evidence):
                    self.stats.material_changed += 1
                else:
                    self.stats.hits += 1
                    self._entries.move_to_end(key)
                    return self._restamped(entry.verdict, evidence), entry.verdict
            else:
                self.stats.outside_window += 1
        else:
            self.stats.misses += 1
        verdict = self._judge(evidence)
        self._store(key, verdict, entry, evidence)
        return verdict, verdict

    def _still_holds(self, key: VerdictKey, entry: _Entry, evidence: ResponseEvidence) -> bool:
        """Whether no material about the response's zones arrived since ``entry`` was stored
        (then the entry is moved to the current generation)."""
        generation = self._validator.keys.generation
        if entry.generation == generation:
            return True
        assert self._untouched is not None
        if not self._untouched(evidence, entry.generation):
            return False
        self._entries[key] = _Entry(entry.verdict, entry.low_ns, entry.high_ns, generation)
        return True

    def verdict(self, evidence: ResponseEvidence) -> Verdict:
        """This response's verdict alone (``judge``'s first item)."""
        return self.judge(evidence)[0]

    def clear(self) -> None:
        """Forget every entry."""
        self._entries.clear()
        self._bytes = 0

    def _restamped(self, verdict: Verdict, evidence: ResponseEvidence) -> Verdict:
        at_ns = self._validator.at_ns
        reference_ns = at_ns if at_ns is not None else evidence.ts_ns
        if verdict.reference_time_ns == reference_ns:
            return verdict
        # dataclasses.replace, spelled out (it inspects the fields on every call).
        return Verdict(verdict.status, verdict.codes, verdict.zone, verdict.rrsets,
                       verdict.missing, reference_ns, verdict.detail, verdict.claims_status,
                       verdict.valid_ns)

    def _key(self, evidence: ResponseEvidence) -> VerdictKey:
        response = evidence.transaction.response
        query = evidence.transaction.query
        body = response.parsed.ttl_free_key(response.wire.wire)
        validator = self._validator
        at_ns = validator.at_ns if validator.at_ns is not None else evidence.ts_ns
        epoch = validator.keys.anchors.epoch_of(at_ns // _NS)
        query_cd = query is not None and bool(query.flags & _CD)
        return (
            body,
            _ttls_over_original(evidence),
            evidence.query_do,
            query_cd,
            epoch,
            validator.keys.generation if self._untouched is None else 0,
            validator.keys.material.delegation_generation if self._growing else 0,
        )

    def _store(self, key: VerdictKey, verdict: Verdict, replaced: _Entry | None,
               evidence: ResponseEvidence) -> None:
        if replaced is not None:
            del self._entries[key]
            self._bytes -= _cost(key)
        if verdict.valid_ns is None:
            self.stats.not_reusable += 1
            return
        if _BUDGET in verdict.codes:
            self.stats.budget_shaped += 1
            return
        low_ns, high_ns = verdict.valid_ns
        if self._growing and (low_ns == high_ns or evidence.rcode == _SERVFAIL):
            self.stats.growing_material += 1
            return
        self._entries[key] = _Entry(verdict, low_ns, high_ns, self._validator.keys.generation)
        self._bytes += _cost(key)
        while len(self._entries) > self._max_entries or (
            self._bytes > self._max_bytes and len(self._entries) > 1
        ):
            old_key, _ = self._entries.popitem(last=False)
            self._bytes -= _cost(old_key)
            self.stats.evicted += 1


def _ttls_over_original(evidence: ResponseEvidence) -> tuple[int, ...]:
    """Position and TTL of every signed RRset whose TTL exceeds one of its RRSIGs' Original
    TTL (a verdict notes it, with the TTL: RFC 4035 5.3.3), flat; usually empty."""
    over: list[int] = []
    for index, item in enumerate(evidence.rrsets):
        rrsigs = item.rrsigs
        if rrsigs is not None:
            ttl = item.rrset.ttl
            if any(ttl > sig.original_ttl for sig in rrsigs):
                over += (index, ttl)
    return tuple(over)


def _cost(key: VerdictKey) -> int:
    return len(key[0]) + ENTRY_OVERHEAD
