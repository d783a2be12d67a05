"""Judging: gather each answer's key material, judge it (through the verdict cache), and let a
hold policy decide when its verdict is final, since keys often arrive after the data they
sign (a resolver asks for DNSKEY after the answer).

One ``Judge``, three hold policies, one per way the input arrives:
- ``NoHold``: files, two passes; a first pass gathered every key, nothing waits.
- ``OrderedHold``: standard input, one pass; capture order is kept, so an indeterminate
  response and everything after it wait up to ``hold_ns`` of capture time.
- ``StreamingHold``: live; nothing waits behind a held response (alerts must not queue), a
  held one is re-judged when material about its zones arrives, and the timer releases it.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any, Protocol

import dns.name
import dns.opcode
import dns.rcode

from auditor.engine.limits import Limits
from auditor.evidence import ResponseEvidence
from auditor.findings.codes import ValidationCode
from auditor.forgery.common import NameMemos
from auditor.memo import IdentityMemo
from auditor.report.records import TimeTexts, verdict_fields
from auditor.trust import KeyMaterial
from auditor.validate import Status, Validator, Verdict
from auditor.validate.reuse import VerdictCache
from auditor.validate.verdict import ALWAYS

Rendered = tuple[ResponseEvidence, Verdict, dict[str, Any]]
"""A judged response with the ``responses.jsonl`` fields of its verdict."""

_VALIDATED_RCODES = frozenset({dns.rcode.NOERROR, dns.rcode.NXDOMAIN})
"""Response codes whose data a validator judges (RFC 4035 5); any other answer carries none."""


def judge_response(validator: Validator, evidence: ResponseEvidence) -> Verdict:
    """The validator's verdict on a query answer; for a response with another opcode (NOTIFY,
    UPDATE: RFC 1996, RFC 2136) an indeterminate verdict saying it answers no question, and
    for an answer the capture's snapshot length cut one saying so (``truncated_capture``)."""
    if evidence.transaction.response.wire.cut:
        return _cut_verdict(validator, evidence)
    if evidence.transaction.answers_query:
        return validator.judge(evidence)
    opcode = evidence.transaction.opcode
    try:
        name = dns.opcode.to_text(dns.opcode.Opcode(opcode))
    except ValueError:
        name = f"OPCODE{opcode}"
    return _not_validated(validator, evidence, ValidationCode.NOT_A_QUERY_ANSWER,
                          f"opcode {name}: not an answer to a query, not validated")


def _cut_verdict(validator: Validator, evidence: ResponseEvidence) -> Verdict:
    """Indeterminate: the capture holds only the start of the answer."""
    captured = len(evidence.transaction.response.wire.wire)
    return _not_validated(validator, evidence, ValidationCode.TRUNCATED_CAPTURE,
                          f"the capture's snapshot length cut the answer after {captured} "
                          "bytes of DNS message: not validated")


def _not_validated(validator: Validator, evidence: ResponseEvidence, code: ValidationCode,
                   detail: str) -> Verdict:
    """An indeterminate verdict for a response the validator is not asked to judge."""
    return Verdict(
        status=Status.INDETERMINATE,
        codes=(code,),
        zone=None,
        rrsets=(),
        missing=(),
        reference_time_ns=validator.at_ns if validator.at_ns is not None else evidence.ts_ns,
        detail=(detail,),
        valid_ns=ALWAYS,
    )


def observe_answer_keys(material: KeyMaterial, evidence: ResponseEvidence) -> None:
    """Gather the key material of a query answer (NOTIFY/UPDATE sections are not answers, a
    cut answer's records are incomplete)."""
    if evidence.transaction.answers_query and not evidence.transaction.response.wire.cut:
        material.observe(evidence)


class RunJudge:
    """A run's verdicts: through the verdict cache when it has one, rendering the fields of
    each stored verdict once (a hit only gets its reference time stamped)."""

    def __init__(self, validator: Validator, cache: VerdictCache | None,
                 rendered: int = 4_096, times: TimeTexts | None = None) -> None:
        """``times``: the run's memo of time texts (without it the judge has its own)."""
        self.validator = validator
        self.cache = cache
        self._times = times = times if times is not None else TimeTexts()
        self._fields: IdentityMemo[Verdict, dict[str, Any]] = IdentityMemo(
            lambda verdict: verdict_fields(verdict, times), rendered)

    def judge(self, evidence: ResponseEvidence) -> Verdict:
        """The verdict alone."""
        if self.cache is None:
            return judge_response(self.validator, evidence)
        return self.cache.judge(evidence)[0]

    def rendered(self, evidence: ResponseEvidence) -> tuple[Verdict, dict[str, Any]]:
        """The verdict and its ``responses.jsonl`` fields (shared: read-only)."""
        if self.cache is None:
            verdict = judge_response(self.validator, evidence)
            return verdict, verdict_fields(verdict, self._times)
        verdict, stored = self.cache.judge(evidence)
        fields = self._fields(stored)
        if verdict is not stored:
            fields = {**fields, "reference_time": self._times(verdict.reference_time_ns)}
        return verdict, fields

    def uncached(self, evidence: ResponseEvidence) -> tuple[Verdict, dict[str, Any]]:
        """The verdict of a response with nothing to validate or cache, and its fields."""
        verdict = judge_response(self.validator, evidence)
        return verdict, verdict_fields(verdict, self._times)

    def counters(self) -> dict[str, int] | None:
        """The cache's counts for ``stats.json`` (None when off)."""
        return None if self.cache is None else self.cache.stats.as_dict()

    def release(self) -> None:
        """Forget stored verdicts and renderings (before the reports are rendered)."""
        self._fields.clear()
        if self.cache is not None:
            self.cache.clear()


def run_judge(validator: Validator, enabled: bool, limits: Limits,
              times: TimeTexts | None = None) -> RunJudge:
    """The verdicts of a file audit, with a verdict cache unless ``enabled`` is False
    (``times``: the run's memo of time texts)."""
    cache = (VerdictCache(validator, lambda evidence: judge_response(validator, evidence),
                          max_entries=limits.verdict_cache, max_bytes=limits.verdict_cache_bytes)
             if enabled else None)
    return RunJudge(validator, cache, times=times)


class Held:
    """A judged response, its latest verdict and fields, and the generation of the key
    material it was judged with."""

    __slots__ = ("_ancestry", "evidence", "fields", "seen", "size", "verdict")

    def __init__(self, evidence: ResponseEvidence, verdict: Verdict, fields: dict[str, Any],
                 seen: int) -> None:
        self.evidence = evidence
        self.verdict = verdict
        self.fields = fields
        self.seen = seen
        self.size = len(evidence.transaction.response.wire.wire)
        self._ancestry: frozenset[dns.name.Name] | None = None

    def ancestry(self, names: NameMemos) -> frozenset[dns.name.Name]:
        """Canonical names of every zone its verdict can depend on (``ancestry``), computed
        once with the run's ``names``."""
        if self._ancestry is None:
            self._ancestry = ancestry(self.evidence, names)
        return self._ancestry

    def rendered(self) -> Rendered:
        return self.evidence, self.verdict, self.fields


def ancestry(evidence: ResponseEvidence, names: NameMemos) -> frozenset[dns.name.Name]:
    """The question, every owner and signer in the response and all their ancestors up to the
    root, canonical: the zones whose keys, DS or denial records can change its verdict
    (``names``: the run's memos of name lineages)."""
    lineage = names.lineage
    found = {dns.name.root}
    for item in evidence.rrsets:
        found.update(lineage(item.rrset.name))
        for rrsig in item.rrsigs or ():
            found.update(lineage(rrsig.signer))
    if evidence.qname is not None:
        found.update(lineage(evidence.qname))
    return frozenset(found)


class Rejudge(Protocol):
    """Judges a held response again with the key material as it is now."""

    def __call__(self, held: Held) -> None: ...


class HoldPolicy(Protocol):
    """When a judged response is released: at once, or after waiting for late keys."""

    def admit(self, held: Held) -> list[Rendered]:
        """A response judged now; return the responses released (it, earlier ones, none)."""
        ...

    def tick(self, now_ns: int, budget: int | None = None) -> list[Rendered]:
        """Capture time is ``now_ns``: release what waited long enough."""
        ...

    def flush(self) -> list[Rendered]:
        """End of input: judge what still waits once more and release it all."""
        ...

    @property
    def held(self) -> int:
        """Responses waiting now."""
        ...

    @property
    def held_bytes(self) -> int:
        """Wire bytes of the responses waiting now."""
        ...

    def counters(self) -> dict[str, int]:
        """JSON-ready counts."""
        ...


class Judge:
    """Gathers each query answer's key material, judges every response and hands it to the
    hold policy, which releases judged responses with their ``responses.jsonl`` fields."""

    def __init__(self, verdicts: RunJudge, material: KeyMaterial | None,
                 hold: Callable[[KeyMaterial | None, Rejudge], HoldPolicy]) -> None:
        """``material``: None when a first pass gathered every key (nothing is observed);
        ``hold``: builds the hold policy from the material and the re-judging callback."""
        self.verdicts = verdicts
        self._material = material
        self.hold = hold(material, self._rejudge)

    @property
    def held(self) -> int:
        """Responses waiting now."""
        return self.hold.held

    @property
    def held_bytes(self) -> int:
        """Wire bytes of the responses waiting now."""
        return self.hold.held_bytes

    def feed(self, evidence: ResponseEvidence) -> list[Rendered]:
        """Observe and judge one response; return the responses now released."""
        transaction = evidence.transaction
        material = self._material
        if transaction.answers_query and not transaction.response.wire.cut:
            if material is not None:
                material.observe(evidence)
            verdict, fields = self.verdicts.rendered(evidence)
        else:  # NOTIFY, UPDATE (RFC 1996, RFC 2136), a cut answer: no material, no reuse
            verdict, fields = self.verdicts.uncached(evidence)
        generation = material.generation if material is not None else 0
        return self.hold.admit(Held(evidence, verdict, fields, generation))

    def tick(self, now_ns: int, budget: int | None = None) -> list[Rendered]:
        """Timer (live): release what waited long enough or was resolved by new keys."""
        return self.hold.tick(now_ns, budget)

    def flush(self) -> list[Rendered]:
        """End of input: judge every held response once more and release them all."""
        return self.hold.flush()

    def counters(self) -> dict[str, int]:
        """The hold policy's counts."""
        return self.hold.counters()

    def _rejudge(self, held: Held) -> None:
        transaction = held.evidence.transaction
        if transaction.answers_query and not transaction.response.wire.cut:
            held.verdict, held.fields = self.verdicts.rendered(held.evidence)
        else:
            held.verdict, held.fields = self.verdicts.uncached(held.evidence)
        if self._material is not None:
            held.seen = self._material.generation


class NoHold:
    """Two passes over files: every key was gathered first, every verdict is final."""

    held = 0
    held_bytes = 0

    def __init__(self, material: KeyMaterial | None, rejudge: Rejudge) -> None:
        pass

    def admit(self, held: Held) -> list[Rendered]:
        return [held.rendered()]

    def tick(self, now_ns: int, budget: int | None = None) -> list[Rendered]:
        return []

    def flush(self) -> list[Rendered]:
        return []

    def counters(self) -> dict[str, int]:
        return {}


class OrderedHold:
    """One pass in capture order: a response judged ``indeterminate`` is held (with everything
    after it, to keep capture order) for up to ``hold_ns`` of capture time or ``max_held``
    responses; if new key material arrived meanwhile it is judged again before release."""

    def __init__(self, material: KeyMaterial | None, rejudge: Rejudge, *, hold_ns: int,
                 max_held: int) -> None:
        assert material is not None, "one pass gathers key material as it goes"
        self._material = material
        self._rejudge = rejudge
        self._hold_ns = hold_ns
        self._max_held = max_held
        self._held: deque[Held] = deque()

    @property
    def held(self) -> int:
        return len(self._held)

    @property
    def held_bytes(self) -> int:
        return sum(item.size for item in self._held)

    def admit(self, held: Held) -> list[Rendered]:
        self._held.append(held)
        return self.tick(held.evidence.ts_ns)

    def tick(self, now_ns: int, budget: int | None = None) -> list[Rendered]:
        ready: list[Rendered] = []
        queue = self._held
        while queue:
            first = queue[0]
            waiting = first.verdict.status is Status.INDETERMINATE
            if waiting and now_ns - first.evidence.ts_ns < self._hold_ns:
                if len(queue) <= self._max_held:
                    break
            ready.append(self._final(queue.popleft()))
        return ready

    def flush(self) -> list[Rendered]:
        ready = []
        while self._held:
            ready.append(self._final(self._held.popleft()))
        return ready

    def _final(self, held: Held) -> Rendered:
        if held.verdict.status is Status.INDETERMINATE and (
                held.seen != self._material.generation):
            self._rejudge(held)
        return held.rendered()

    def counters(self) -> dict[str, int]:
        return {"held": self.held}


class StreamingHold:
    """Live: each response is released as soon as it is judged, but an ``indeterminate``
    answer with data to validate waits up to ``hold_ns`` (capture time) for new key material
    and is re-judged when material arrived for a zone at or above one of its names
    (``KeyMaterial.changed_zones_since``): keys of other zones cannot change its verdict.

    Nothing waits behind a held response, so responses come out in judgement order. The held
    responses are capped in number and wire bytes; over a cap the oldest is released as it
    stands and counted in ``evicted``.
    """

    def __init__(self, material: KeyMaterial | None, rejudge: Rejudge,
                 limits: Limits, names: NameMemos | None = None) -> None:
        """``names``: the run's name memos (without them the policy has its own)."""
        assert material is not None, "a stream gathers key material as it goes"
        self._names = names if names is not None else NameMemos(limits.forgery_entries)
        self._material = material
        self._rejudge = rejudge
        self._limits = limits
        self._held: deque[Held] = deque()
        self._held_bytes = 0
        self._scanned_generation = material.generation
        self.rejudged = 0
        """Held responses judged again after new keys arrived."""
        self.resolved = 0
        """Held responses that became secure/insecure/bogus with late keys."""
        self.skipped = 0
        """Re-judgements saved because the new material was about unrelated zones."""
        self.expired = 0
        """Held responses released indeterminate after ``hold_ns``."""
        self.evicted = 0
        """Held responses released early because a cap was hit."""
        self.not_held = 0
        """Indeterminate responses released at once: an rcode with nothing to validate."""

    @property
    def held(self) -> int:
        return len(self._held)

    @property
    def held_bytes(self) -> int:
        return self._held_bytes

    def admit(self, held: Held) -> list[Rendered]:
        evidence = held.evidence
        transaction = evidence.transaction
        if not transaction.answers_query or transaction.response.wire.cut:
            return [held.rendered()]  # NOTIFY, UPDATE, a cut answer: nothing to wait for
        if held.verdict.status is not Status.INDETERMINATE:
            return [held.rendered()]
        if evidence.rcode not in _VALIDATED_RCODES:
            # SERVFAIL, REFUSED...: no data to validate, so no key can change the verdict
            self.not_held += 1
            return [held.rendered()]
        self._held.append(held)
        self._held_bytes += held.size
        return self._evict_over_caps()

    def tick(self, now_ns: int, budget: int | None = None) -> list[Rendered]:
        """Re-judge held responses if keys arrived (at most ``budget`` of them, oldest first;
        the rest on later ticks), release the resolved and the expired ones."""
        ready: list[Rendered] = []
        if self._material.generation != self._scanned_generation:
            ready.extend(self._rescan(budget if budget is not None else
                                      self._limits.rejudge_per_tick))
        while self._held and now_ns - self._held[0].evidence.ts_ns >= self._limits.hold_ns:
            ready.append(self._release_oldest())
            self.expired += 1
        return ready

    def flush(self) -> list[Rendered]:
        ready = self._rescan() if self._material.generation != self._scanned_generation else []
        while self._held:
            ready.append(self._release_oldest())
        return ready

    def _rescan(self, budget: int | None = None) -> list[Rendered]:
        generation = self._material.generation
        ready: list[Rendered] = []
        kept: deque[Held] = deque()
        left = len(self._held) if budget is None else budget
        finished = True
        changes: dict[int, frozenset[dns.name.Name] | None] = {}
        for held in self._held:
            if held.seen == generation:
                kept.append(held)
                continue
            if left <= 0:
                finished = False
                kept.append(held)
                continue
            if not self._concerned(held, changes):
                self.skipped += 1
            else:
                left -= 1
                self._rejudge(held)
                self.rejudged += 1
                if held.verdict.status is not Status.INDETERMINATE:
                    self.resolved += 1
                    self._held_bytes -= held.size
                    ready.append(held.rendered())
                    continue
            held.seen = generation
            kept.append(held)
        self._held = kept
        if finished:
            self._scanned_generation = generation
        return ready

    def _concerned(self, held: Held,
                   changes: dict[int, frozenset[dns.name.Name] | None] | None = None) -> bool:
        """Whether material that arrived after the held response was last judged is about a
        zone at or above its question or any owner or signer in it (the only zones whose keys,
        DS or denial records its verdict depends on). ``changes`` memoises the changed zones
        per generation within one scan."""
        memo = {} if changes is None else changes
        if held.seen not in memo:
            changed = self._material.changed_zones_since(held.seen)
            memo[held.seen] = (None if changed is None
                               else frozenset(map(self._names.key, changed)))
        zones = memo[held.seen]
        return zones is None or not zones.isdisjoint(held.ancestry(self._names))

    def _evict_over_caps(self) -> list[Rendered]:
        ready: list[Rendered] = []
        limits = self._limits
        while self._held and (
            len(self._held) > limits.held_responses or self._held_bytes > limits.held_bytes
        ):
            ready.append(self._release_oldest())
            self.evicted += 1
        return ready

    def _release_oldest(self) -> Rendered:
        held = self._held.popleft()
        self._held_bytes -= held.size
        if held.seen != self._material.generation and self._concerned(held):
            self._rejudge(held)
            self.rejudged += 1
            if held.verdict.status is not Status.INDETERMINATE:
                self.resolved += 1
        return held.rendered()

    def counters(self) -> dict[str, int]:
        """JSON-ready counts."""
        return {"held": self.held, "held_bytes": self.held_bytes, "rejudged": self.rejudged,
                "rejudge_skipped": self.skipped, "resolved_late": self.resolved,
                "expired_indeterminate": self.expired, "evicted": self.evicted,
                "not_held": self.not_held}


class ZoneChanges:
    """The key material's generation at which each zone's chain material last changed (from
    ``KeyMaterial.changed_zones_since``, canonical names), so the verdict cache can ask
    whether a response's zones are untouched since a generation in a few lookups. Bounded:
    over ``max_zones`` the least recently changed zone is forgotten, and from then on a
    generation older than its change is answered "touched" (never a wrong reuse)."""

    def __init__(self, material: KeyMaterial, max_zones: int,
                 names: NameMemos | None = None) -> None:
        """``names``: the run's name memos (without them its own)."""
        self._names = names if names is not None else NameMemos()
        self._material = material
        self._max_zones = max_zones
        self._read = material.generation
        self._floor = material.generation
        """Generations below this cannot be answered (forgotten zones, a lost change log)."""
        self._changed: OrderedDict[dns.name.Name, int] = OrderedDict()

    def _catch_up(self) -> None:
        generation = self._material.generation
        if generation == self._read:
            return
        changed = self._material.changed_zones_since(self._read)
        self._read = generation
        if changed is None:  # the change log no longer reaches back: anything may have changed
            self._changed.clear()
            self._floor = generation
            return
        table = self._changed
        name_key = self._names.key
        for zone in changed:  # stamped with the newest generation: never earlier than true
            key = name_key(zone)
            table[key] = generation
            table.move_to_end(key)
        while len(table) > self._max_zones:
            self._floor = max(self._floor, table.popitem(last=False)[1])

    def untouched(self, evidence: ResponseEvidence, generation: int) -> bool:
        """Whether no material that arrived after ``generation`` is about a zone at or above
        the response's question or any owner or signer in it (``ancestry``): then its verdict
        is still the one judged then (``StreamingHold._concerned``'s test)."""
        self._catch_up()
        if generation < self._floor:
            return False
        changed = self._changed
        return all(changed.get(zone, -1) <= generation
                   for zone in ancestry(evidence, self._names))


def two_pass_judge(verdicts: RunJudge) -> Judge:
    """Files: a first pass gathered every key; each response is final when judged."""
    return Judge(verdicts, None, NoHold)


def ordered_judge(verdicts: RunJudge, material: KeyMaterial, limits: Limits) -> Judge:
    """Standard input: one pass in capture order, indeterminate responses wait ``hold_ns``."""
    return Judge(verdicts, material, lambda m, rejudge: OrderedHold(
        m, rejudge, hold_ns=limits.hold_ns, max_held=limits.held_responses))


def streaming_judge(material: KeyMaterial, validator: Validator, limits: Limits,
                    cache: VerdictCache | None = None, names: NameMemos | None = None,
                    times: TimeTexts | None = None) -> Judge:
    """Live: ``cache`` judges each distinct answer once while the key material's generation
    and the verdict's window hold (None: every response afresh); indeterminate answers wait
    for late keys without holding anything else back (``names``, ``times``: the run's name
    memos and time texts)."""
    return Judge(RunJudge(validator, cache, times=times), material,
                 lambda m, rejudge: StreamingHold(m, rejudge, limits, names))
