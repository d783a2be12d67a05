"""Links each answer a resolver gave a client to the upstream exchanges it made meanwhile, and
names the upstream answer (or silence) that explains a failed one.

Sans-I/O: ``observe_query`` takes every query as decoded, ``feed`` every judged response in
capture order; nothing is read from the clock. What it must not take for a cause (the
normal behaviours next to the rule):
- other clients' resolutions running at the same time: only upstream questions for the
  client's name, its CNAME/DNAME targets, the zones above them (DS, DNSKEY, NS, minimised
  queries) and the nameserver names met on the way are linked;
- answers from cache: no upstream query at all is ``from_cache``, never "timeout";
- retransmitted queries: copies on one flow with one ID are one exchange;
- a one-sided capture: an address that never sent a query is not treated as a resolver.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import TypeVar

import dns.name
import dns.rcode
import dns.rdatatype

from auditor.evidence import ResponseEvidence, Section
from auditor.messages import ObservedMessage
from auditor.resolution.interop import wildcard_next_name
from auditor.resolution.model import Cause, EdeCheck, Resolution, UpstreamAnswer
from auditor.resolution.words import (
    CACHED_ERROR,
    EDE_MEANS,
    ede_text,
    failure_codes,
    failure_reason,
)
from auditor.validate import Status, Verdict

_NS = 1_000_000_000
_FlowKey = tuple[str, int, str, int, int, bytes | None]
"""(resolver address, its port, server, server port, DNS ID, question)."""
_ERROR_RCODES = frozenset({dns.rcode.SERVFAIL, dns.rcode.REFUSED, dns.rcode.NOTAUTH})
_MAX_GROUPS = 1_000
_TOP_CAUSES = 5
_NO_QUERY_WINDOW_NS = 5 * _NS
"""How far back a client answer whose query was not captured looks for upstream work."""


@dataclass(slots=True)
class _Exchange:
    """One upstream query of a resolver and, once seen, its answer."""

    query_frame: int
    query_ts_ns: int
    server: str
    qname: dns.name.Name
    qtype: int
    answer: UpstreamAnswer | None = None
    answer_ts_ns: int | None = None
    failure: Cause | None = None
    """BOGUS_UPSTREAM, DNSKEY_MISSING or UPSTREAM_ERROR when the answer shows one."""
    targets: tuple[dns.name.Name, ...] = ()
    """CNAME/DNAME targets and nameserver names the answer leads to."""

    def answered_by(self, ts_ns: int) -> bool:
        return self.answer_ts_ns is not None and self.answer_ts_ns <= ts_ns


_V = TypeVar("_V")
_MAX_NAMES = 10_000
"""Per resolver: CNAME owners and DS zones remembered (oldest forgotten first)."""


@dataclass(slots=True)
class _Resolver:
    exchanges: deque[_Exchange] = field(default_factory=deque)
    ds_zones: OrderedDict[dns.name.Name, None] = field(default_factory=OrderedDict)
    """Zones whose DS RRset an upstream answer or referral carried: signed zones (RFC 4035
    5.2), whose keys and signatures the resolver must find."""
    aliases: OrderedDict[dns.name.Name, tuple[dns.name.Name, ...]] = field(
        default_factory=OrderedDict)
    """CNAME owner -> targets from upstream answers: the path of an answer from cache."""

    def note(self, evidence: ResponseEvidence) -> None:
        """Remember the DS zones and CNAMEs an upstream answer carries."""
        for item in evidence.rrsets:
            rdtype = int(item.rrset.rdtype)
            if rdtype == dns.rdatatype.DS:
                _bounded_put(self.ds_zones, item.rrset.name, None)
            elif rdtype == dns.rdatatype.CNAME and item.section is Section.ANSWER:
                _bounded_put(self.aliases, item.rrset.name,
                             tuple(r.target for r in item.rrset))  # type: ignore[attr-defined]

    def signed_zone_of(self, name: dns.name.Name) -> dns.name.Name | None:
        """The deepest zone with a DS at or above ``name``."""
        for depth in range(len(name)):
            zone = name.split(len(name) - depth)[1] if depth else name
            if zone in self.ds_zones:
                return zone
        return None

    def path(self, names: set[dns.name.Name]) -> set[dns.name.Name]:
        """``names`` with the CNAME targets remembered for them, followed to the end."""
        todo = list(names)
        while todo:
            for target in self.aliases.get(todo.pop(), ()):
                if target not in names and len(names) < 32:
                    names.add(target)
                    todo.append(target)
        return names


def _bounded_put(table: OrderedDict[dns.name.Name, _V], key: dns.name.Name,
                 value: _V) -> None:
    table[key] = value
    table.move_to_end(key)
    while len(table) > _MAX_NAMES:
        table.popitem(last=False)


@dataclass(slots=True)
class LinkStats:
    """Counts for ``stats.json``."""

    client_answers: int = 0
    failed: int = 0
    explained: int = 0
    evicted: int = 0
    evicted_resolvers: int = 0
    """Query senders forgotten, least recently active first, over ``max_resolvers`` or when
    the exchanges held over all of them passed ``max_exchanges`` (their exchanges are counted
    in ``evicted``)."""
    by_cause: dict[str, int] = field(default_factory=dict)
    groups: dict[tuple[str, str, str], dict[str, object]] = field(default_factory=dict)
    """(cause, zone, reason) -> count, first client frame, an explanation (bounded)."""

    def note(self, resolution: Resolution, frame: int) -> None:
        """Count one failed client answer under its cause and upstream place."""
        assert resolution.cause is not None
        first = resolution.causing[0] if resolution.causing else None
        zone = (first.zone or first.qname) if first is not None else ""
        reason = first.reason if first is not None else ""
        if resolution.cause is Cause.UPSTREAM_TIMEOUT and first is not None:
            reason = f"no answer from {first.server}"
        key = (resolution.cause.value, zone, reason)
        group = self.groups.get(key)
        if group is None:
            if len(self.groups) >= _MAX_GROUPS:
                return
            group = self.groups[key] = {"cause": key[0], "zone": zone, "reason": reason,
                                        "count": 0, "first_frame": frame,
                                        "explanation": resolution.explanation}
        group["count"] = int(str(group["count"])) + 1

    def as_dict(self) -> dict[str, object]:
        """JSON-ready counts, with the most frequent causes."""
        top = sorted(self.groups.values(), key=lambda g: -int(str(g["count"])))[:_TOP_CAUSES]
        return {"client_answers": self.client_answers, "failed": self.failed,
                "explained": self.explained, "evicted_exchanges": self.evicted,
                "evicted_resolvers": self.evicted_resolvers,
                "by_cause": dict(self.by_cause), "top": top}


class ResolutionLinker:
    """Resolution reconstruction over one capture (or one live tap)."""

    def __init__(self, *, window_ns: int = 30 * _NS, max_exchanges: int = 20_000,
                 max_remembered: int = 10_000, max_resolvers: int = 5_000) -> None:
        """``max_exchanges`` bounds the exchanges held over all query senders (each about
        1 KB with its question name and flow key: 20 MB under a flood of distinct queries), and
        ``max_resolvers`` the senders (a flood of queries from ever new addresses would
        otherwise keep one ``_Resolver`` and its exchanges per address)."""
        self._window_ns = window_ns
        self._max_exchanges = max_exchanges
        self._max_remembered = max_remembered
        self._max_resolvers = max_resolvers
        self._resolvers: OrderedDict[str, _Resolver] = OrderedDict()
        """By address, least recently active first."""
        self._held = 0
        """Exchanges held over all senders."""
        self._pending: OrderedDict[_FlowKey, _Exchange] = OrderedDict()
        self._remembered: OrderedDict[tuple[str, str, int], Resolution] = OrderedDict()
        """(resolver, name, type) -> the last explained failure: what a cached answer
        repeats."""
        self.stats = LinkStats()

    # -- input -------------------------------------------------------------------------

    def observe_query(self, message: ObservedMessage) -> None:
        """One query as decoded: the sender becomes a known resolver (or stub)."""
        wire = message.wire
        if message.qname is None or message.qtype is None:
            return
        key = (wire.src, wire.sport, wire.dst, wire.dport, message.id, message.question_key)
        if key in self._pending:  # a retransmitted copy: the same exchange
            return
        resolver = self._active(wire.src)
        exchange = _Exchange(wire.frame, wire.ts_ns, wire.dst, message.qname, message.qtype)
        resolver.exchanges.append(exchange)
        self._held += 1
        self._pending[key] = exchange
        self._expire(resolver, wire.ts_ns)
        while (len(self._resolvers) > self._max_resolvers
               or (self._held > self._max_exchanges and len(self._resolvers) > 1)):
            self._forget_resolver()
        while len(self._pending) > self._max_exchanges:
            self._pending.popitem(last=False)
            self.stats.evicted += 1

    def feed(self, evidence: ResponseEvidence, verdict: Verdict) -> Resolution | None:
        """One judged response: note it as an upstream answer, and if it is a resolver's
        answer to a client, link it; None when it is not one."""
        self._note_answer(evidence, verdict)
        wire = evidence.transaction.response.wire
        resolver = self._resolvers.get(wire.src)
        if resolver is None or wire.dst == wire.src or evidence.qname is None:
            return None
        return self._link(resolver, evidence, verdict)

    def flush(self) -> None:
        """End of input: forget everything."""
        self._resolvers.clear()
        self._held = 0
        self._pending.clear()
        self._remembered.clear()

    # -- upstream answers --------------------------------------------------------------

    def _note_answer(self, evidence: ResponseEvidence, verdict: Verdict) -> None:
        response = evidence.transaction.response
        wire = response.wire
        key = (wire.dst, wire.dport, wire.src, wire.sport, response.id, response.question_key)
        exchange = self._pending.get(key)
        if exchange is None or exchange.answer is not None:
            return
        if response.flags & 0x0200:  # TC (RFC 1035 4.1.1): the retry over TCP answers
            return
        exchange.answer_ts_ns = wire.ts_ns
        exchange.targets = _targets(evidence)
        resolver = self._resolvers.get(wire.dst)
        if resolver is not None:
            resolver.note(evidence)
        exchange.failure = _failure(evidence, verdict, resolver)
        exchange.answer = _upstream_answer(exchange, evidence, verdict, resolver)

    # -- client answers ----------------------------------------------------------------

    def _link(self, resolver: _Resolver, evidence: ResponseEvidence,
              verdict: Verdict) -> Resolution:
        self.stats.client_answers += 1
        wire = evidence.transaction.response.wire
        query = evidence.transaction.query
        start = query.wire.ts_ns if query is not None else wire.ts_ns - _NO_QUERY_WINDOW_NS
        during = _between(resolver.exchanges, start, wire.ts_ns)
        assert evidence.qname is not None
        names = resolver.path({evidence.qname, *_targets(evidence)})
        linked = _on_path(during, names)
        frames = sorted({f for e in linked for f in _frames(e, wire.ts_ns)})
        failed = (evidence.rcode == dns.rcode.SERVFAIL or verdict.status is Status.BOGUS
                  or bool(evidence.ede))
        if not failed:
            return Resolution(wire.src, tuple(frames), not linked, False, None, (), None, None)
        self.stats.failed += 1
        cause, causing = _cause(linked, wire.ts_ns, names, evidence.qname)
        memory_key = (wire.src, evidence.qname.to_text().lower(), evidence.qtype or 0)
        if cause is None and not linked:
            return self._from_cache(evidence, frames, memory_key)
        cause = cause or Cause.UNEXPLAINED
        resolution = Resolution(
            wire.src, tuple(frames), False, True, cause, causing,
            explain(evidence, cause, causing, names),
            ede_check(evidence.ede, cause, causing, from_cache=False))
        self._count(cause)
        self.stats.note(resolution, wire.frame)
        if causing:
            self._remember(memory_key, resolution)
        return resolution

    def _from_cache(self, evidence: ResponseEvidence, frames: list[int],
                    memory_key: tuple[str, str, int]) -> Resolution:
        earlier = self._remembered.get(memory_key)
        cause = Cause.CACHED_FAILURE if earlier is not None else Cause.FROM_CACHE
        causing = earlier.causing if earlier is not None else ()
        head = _what(evidence)
        if earlier is not None and earlier.explanation is not None:
            first = causing[0].frame or causing[0].query_frame
            text = (f"{head}: answered from the resolver's cache (no upstream query); the "
                    f"cached failure was explained earlier (frame {first}): "
                    f"{earlier.explanation.split(': ', 1)[-1]}")
        else:
            text = (f"{head}: answered from the resolver's cache (no upstream query) and "
                    "no earlier failure for this question is in the capture")
        self._count(cause)
        underlying = earlier.cause if earlier is not None else cause
        wire = evidence.transaction.response.wire
        resolution = Resolution(wire.src, tuple(frames), True, True, cause, causing, text,
                                ede_check(evidence.ede, underlying, causing, from_cache=True))
        self.stats.note(resolution, wire.frame)
        return resolution

    def _remember(self, key: tuple[str, str, int], resolution: Resolution) -> None:
        self._remembered[key] = resolution
        self._remembered.move_to_end(key)
        while len(self._remembered) > self._max_remembered:
            self._remembered.popitem(last=False)

    def _count(self, cause: Cause) -> None:
        by_cause = self.stats.by_cause
        by_cause[cause.value] = by_cause.get(cause.value, 0) + 1
        if cause not in (Cause.UNEXPLAINED, Cause.FROM_CACHE):
            self.stats.explained += 1

    def _expire(self, resolver: _Resolver, now_ns: int) -> None:
        exchanges = resolver.exchanges
        while exchanges and (now_ns - exchanges[0].query_ts_ns > self._window_ns
                             or len(exchanges) > self._max_exchanges):
            exchanges.popleft()
            self._held -= 1

    def _active(self, address: str) -> _Resolver:
        resolver = self._resolvers.get(address)
        if resolver is None:
            resolver = self._resolvers[address] = _Resolver()
        else:
            self._resolvers.move_to_end(address)
        return resolver

    def _forget_resolver(self) -> None:
        _, resolver = self._resolvers.popitem(last=False)
        self._held -= len(resolver.exchanges)
        self.stats.evicted += len(resolver.exchanges)
        self.stats.evicted_resolvers += 1


def _frames(exchange: _Exchange, until_ns: int) -> tuple[int, ...]:
    if exchange.answer is not None and exchange.answered_by(until_ns):
        return (exchange.query_frame, exchange.answer.frame or exchange.query_frame)
    return (exchange.query_frame,)


def _between(exchanges: deque[_Exchange], start_ns: int, end_ns: int) -> list[_Exchange]:
    """The exchanges whose query was sent from ``start_ns`` to ``end_ns``, in order: read
    from the newest back (they are kept in capture order), so a client answer costs the
    exchanges made while it waited, not the whole window."""
    found: list[_Exchange] = []
    for exchange in reversed(exchanges):
        if exchange.query_ts_ns < start_ns:
            break
        if exchange.query_ts_ns <= end_ns:
            found.append(exchange)
    found.reverse()
    return found


def _on_path(exchanges: list[_Exchange], names: set[dns.name.Name]) -> list[_Exchange]:
    """The exchanges about the names (or the zones above them), growing the names with the
    CNAME/DNAME targets and nameserver names the linked answers lead to."""
    chosen = [False] * len(exchanges)
    for _ in range(2):  # a second pass catches exchanges made relevant by later targets
        for index, exchange in enumerate(exchanges):
            if not chosen[index] and any(name.is_subdomain(exchange.qname) for name in names):
                chosen[index] = True
                names.update(exchange.targets)
    return [e for e, on in zip(exchanges, chosen, strict=True) if on]


def _cause(linked: list[_Exchange], until_ns: int, names: set[dns.name.Name],
           client: dns.name.Name) -> tuple[Cause | None, tuple[UpstreamAnswer, ...]]:
    """The most telling failure among the linked exchanges: bad data first, then errors,
    then silence; answers about the data names before answers about zones above them."""
    answered = [e for e in linked if e.answered_by(until_ns) and not _followed(e, linked)]
    for cause in (Cause.BOGUS_UPSTREAM, Cause.DNSKEY_MISSING, Cause.UPSTREAM_ERROR,
                  Cause.VALIDATOR_INTEROP):
        found = [e for e in answered if e.failure is cause]
        if cause is Cause.VALIDATOR_INTEROP:  # only behind a CNAME (see interop.py)
            found = [e for e in found if e.qname != client or e.targets]
        if found:
            found.sort(key=lambda e: (e.qname not in names, e.query_ts_ns))
            return cause, tuple(e.answer for e in found[:3] if e.answer is not None)
    silent = [e for e in linked if not e.answered_by(until_ns)]
    if silent:
        return Cause.UPSTREAM_TIMEOUT, tuple(_no_answer(e) for e in silent[:5])
    return None, ()


def _followed(exchange: _Exchange, linked: list[_Exchange]) -> bool:
    """Whether the resolver went on to ask for a name the answer led to (its CNAME target or
    a nameserver of its referral, or a minimised query towards one): it accepted the answer,
    so that answer is not why it failed, whatever the auditor thinks of it."""
    done = exchange.answer_ts_ns
    if done is None or not exchange.targets:
        return False
    for later in linked:
        if later.query_ts_ns < done:
            continue
        for target in exchange.targets:
            if later.qname == target or (target.is_subdomain(later.qname)
                                         and not exchange.qname.is_subdomain(later.qname)):
                return True
    return False


def _no_answer(exchange: _Exchange) -> UpstreamAnswer:
    return UpstreamAnswer(
        frame=None, query_frame=exchange.query_frame, ts_ns=exchange.query_ts_ns,
        server=exchange.server, qname=exchange.qname.to_text(),
        qtype=dns.rdatatype.to_text(exchange.qtype),  # type: ignore[arg-type]
        zone=None, codes=("no_answer",), reason="no answer")


def _carries(evidence: ResponseEvidence, rdtype: int) -> bool:
    return any(int(r.rrset.rdtype) == rdtype for r in evidence.section(Section.ANSWER))


def _targets(evidence: ResponseEvidence) -> tuple[dns.name.Name, ...]:
    """CNAME/DNAME targets in the answer; nameserver names of a referral."""
    found: list[dns.name.Name] = []
    for item in evidence.rrsets:
        rdtype = int(item.rrset.rdtype)
        if rdtype in (dns.rdatatype.CNAME, dns.rdatatype.DNAME) and (
                item.section is Section.ANSWER):
            found.extend(r.target for r in item.rrset)  # type: ignore[attr-defined]
        elif rdtype == dns.rdatatype.NS and item.section is Section.AUTHORITY:
            found.extend(r.target for r in item.rrset)  # type: ignore[attr-defined]
    return tuple(found)


def _failure(evidence: ResponseEvidence, verdict: Verdict,
             resolver: _Resolver | None) -> Cause | None:
    if verdict.status is Status.BOGUS:
        return Cause.BOGUS_UPSTREAM
    if evidence.rcode in _ERROR_RCODES:
        return Cause.UPSTREAM_ERROR
    qname = evidence.qname
    if verdict.status is Status.SECURE and wildcard_next_name(evidence) is not None:
        return Cause.VALIDATOR_INTEROP
    if qname is None or resolver is None or verdict.status is Status.SECURE:
        return None
    if (evidence.qtype == dns.rdatatype.DNSKEY and qname in resolver.ds_zones
            and not _carries(evidence, dns.rdatatype.DNSKEY)):
        return Cause.DNSKEY_MISSING  # RFC 4035 5.2: a DS with no DNSKEY to match it
    if _unsigned_from_signed_zone(evidence, resolver) is not None:
        return Cause.BOGUS_UPSTREAM  # RFC 4035 3.1.1, 5.2: a signed zone's data carry RRSIGs
    return None


def _unsigned_from_signed_zone(evidence: ResponseEvidence,
                               resolver: _Resolver) -> dns.name.Name | None:
    """The signed zone (one with a DS) whose authoritative answer to a DO query carries
    records without any RRSIG; None when it is not such an answer."""
    if not evidence.do or not evidence.flags & 0x0400:  # DO (RFC 3225), AA
        return None
    answer = evidence.section(Section.ANSWER)
    if not answer or any(item.rrsigs for item in answer):
        return None
    assert evidence.qname is not None
    return resolver.signed_zone_of(evidence.qname)


def _upstream_answer(exchange: _Exchange, evidence: ResponseEvidence, verdict: Verdict,
                     exchange_resolver: _Resolver | None) -> UpstreamAnswer:
    wire = evidence.transaction.response.wire
    failure = exchange.failure
    resolver = exchange_resolver
    unsigned = (_unsigned_from_signed_zone(evidence, resolver)
                if resolver is not None and verdict.status is not Status.BOGUS else None)
    codes: tuple[str, ...]
    if unsigned is not None:
        codes = ("rrsigs_missing",)
        reason = (f"the answer carries no signatures although {unsigned} is signed (its "
                  "parent publishes a DS for it)")
    elif failure is Cause.BOGUS_UPSTREAM:
        codes, reason = failure_codes(verdict), failure_reason(verdict)
    elif failure is Cause.UPSTREAM_ERROR:
        rcode = dns.rcode.to_text(evidence.rcode)  # type: ignore[arg-type]
        codes, reason = (f"rcode_{rcode.lower()}",), f"the server answered {rcode}"
    elif failure is Cause.VALIDATOR_INTEROP and (
            shape := wildcard_next_name(evidence)) is not None:
        codes, reason = ("white_lie_wildcard_next_name",), shape.reason()
    elif failure is Cause.DNSKEY_MISSING:
        codes = ("dnskey_missing",)
        reason = (f"{exchange.qname} publishes no DNSKEY although its parent has a DS for "
                  "it")
    else:
        codes, reason = tuple(c.value for c in verdict.codes), verdict.status.value
    zone = verdict.zone
    if failure is Cause.DNSKEY_MISSING:
        zone = exchange.qname.to_text()
    elif unsigned is not None:
        zone = unsigned.to_text()
    elif zone is None:
        zone = next((r.signer for r in verdict.rrsets if r.signer), None)
    return UpstreamAnswer(
        frame=wire.frame, query_frame=exchange.query_frame, ts_ns=wire.ts_ns,
        server=wire.src, qname=exchange.qname.to_text(),
        qtype=dns.rdatatype.to_text(exchange.qtype),  # type: ignore[arg-type]
        zone=zone, codes=codes, reason=reason)


def _what(evidence: ResponseEvidence) -> str:
    qtype = dns.rdatatype.to_text(evidence.qtype or 0)  # type: ignore[arg-type]
    if evidence.rcode == dns.rcode.SERVFAIL:
        kind = "SERVFAIL"
    elif evidence.ede:
        kind = f"{dns.rcode.to_text(evidence.rcode)} with {ede_text(evidence.ede)}"  # type: ignore[arg-type]
    else:
        kind = "bogus answer"
    return f"{kind} for {evidence.qname} {qtype}"


def _relation(answer: UpstreamAnswer, client: dns.name.Name | None,
              names: set[dns.name.Name]) -> str:
    name = dns.name.from_text(answer.qname)
    if answer.qtype == "DNSKEY":
        return f"the keys (DNSKEY) of {answer.qname}"
    if answer.qtype == "DS":
        return f"the DS of {answer.qname}"
    if name == client:
        return f"the upstream answer for {answer.qname} {answer.qtype}"
    if name in names:
        return f"its CNAME target {answer.qname} ({answer.qtype})"
    return f"{answer.qname} {answer.qtype} on its resolution path"


def explain(evidence: ResponseEvidence, cause: Cause, causing: tuple[UpstreamAnswer, ...],
            names: set[dns.name.Name]) -> str:
    """The failure in one sentence, citing the upstream frames."""
    head = _what(evidence)
    if cause is Cause.UPSTREAM_TIMEOUT:
        asked = sorted({f"{a.qname} {a.qtype}" for a in causing})
        servers = sorted({a.server for a in causing})
        frames = ", ".join(str(a.query_frame) for a in causing)
        return (f"{head}: the resolver's queries for {', '.join(asked)} to "
                f"{', '.join(servers)} got no answer (timeout; query frames {frames})")
    if not causing:
        return f"{head}: the resolver's upstream answers in the capture do not explain it"
    first = causing[0]
    relation = _relation(first, evidence.qname, names)
    where = f"upstream answer frame {first.frame} from {first.server}"
    zone = f" in zone {first.zone}" if first.zone else ""
    again = "show the same shape" if cause is Cause.VALIDATOR_INTEROP else "fail too"
    more = f"; {len(causing) - 1} more upstream answer(s) {again}" if len(causing) > 1 else ""
    return f"{head}: {relation}{zone}: {first.reason} ({where}){more}"


def ede_check(ede: tuple[int, ...], cause: Cause | None,
              causing: tuple[UpstreamAnswer, ...], *, from_cache: bool) -> EdeCheck | None:
    """Whether the resolver's EDE (RFC 8914) names what the capture shows: ``cause`` is
    the upstream failure behind the answer (for a cached answer, the earlier one)."""
    if not ede:
        return None
    checked = [code for code in ede if code in EDE_MEANS]
    if not checked:
        return EdeCheck(ede, None, f"{ede_text(ede)} names no cause a capture can show")
    if from_cache and CACHED_ERROR in checked:  # RFC 8914 4.14
        return EdeCheck(ede, True, f"{ede_text((CACHED_ERROR,))} agrees: nothing was "
                        "sent upstream")
    if cause is None or cause in (Cause.UNEXPLAINED, Cause.FROM_CACHE):
        return EdeCheck(ede, None, f"the resolver said {ede_text(ede)}; the capture shows "
                        "no upstream failure to check it against")
    shown = {c for answer in causing for c in answer.codes}
    for code in checked:
        causes, codes = EDE_MEANS[code]
        if cause in causes and (not codes or shown & codes):
            return EdeCheck(ede, True, f"{ede_text((code,))} agrees with the capture")
    words = ", ".join(sorted(shown)) or cause.value
    return EdeCheck(ede, False, f"the resolver said {ede_text(tuple(checked))}, but the "
                    f"capture shows {cause.value.replace('_', ' ')} ({words})")
