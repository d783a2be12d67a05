"""Set Unbound's outcome for every client question against the auditor's verdict."""

from __future__ import annotations

import bisect
import datetime
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.differential.build import Addresses
from tests.differential.model import Probe, Scenario

Record = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Asked:
    """One client question to Unbound and its answer."""

    scenario: str
    """Scenario id."""
    probe: Probe
    """What was asked."""
    cd: bool
    """Whether CD was set."""
    rcode: str | None
    """Response code, ``None`` on timeout."""
    ad: bool
    """AD flag of the answer."""
    ede: tuple[int, ...]
    """RFC 8914 extended error codes of the answer."""
    started: float
    """Wall-clock second before sending."""
    ended: float
    """Wall-clock second after the answer."""


def unbound_class(asked: Asked) -> str:
    """AD -> secure, NOERROR/NXDOMAIN without AD -> insecure, SERVFAIL -> bogus (RFC 4035 5.5)."""
    if asked.rcode is None:
        return "timeout"
    if asked.rcode == "SERVFAIL":
        return "bogus"
    if asked.rcode in ("NOERROR", "NXDOMAIN"):
        return "secure" if asked.ad else "insecure"
    return f"rcode-{asked.rcode}"


def _epoch(ts: str) -> float:
    return datetime.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


SERVER_FAILURE = "server-failure"
"""Auditor verdict of a SERVFAIL whose resolution met an authoritative SERVFAIL or REFUSED
and nothing bogus: the upstream had nothing to validate (paired with Unbound's SERVFAIL)."""
CAPTURE_LOST = "capture-lost"
"""Auditor verdict when the capture cannot be trusted for the question: tcpdump reported
packets dropped by the kernel, or Unbound's answer to the client is not in the capture."""
_FAILING = frozenset({"SERVFAIL", "REFUSED"})
_ZONE_DATA = frozenset({"DNSKEY", "DS", "NS"})


def _frame(record: Record, key: str = "frame") -> int:
    value = record.get(key)
    return int(value if value is not None else record["frame"])


def _ancestors(name: str) -> Iterator[str]:
    """*name* (absolute) and every name above it, up to the root."""
    name = name.lower()
    while True:
        yield name
        if name == ".":
            return
        name = name.split(".", 1)[1] or "."


def _answer_names(record: Record) -> set[str]:
    return {rrset["name"].lower() for rrset in record.get("rrsets", ())
            if rrset.get("section") == "answer"}  # fmt: skip


@dataclass(slots=True)
class AuditIndex:
    """The audit's responses, indexed for the comparison."""

    addresses: Addresses
    client: dict[tuple[str, str, bool], list[Record]] = field(default_factory=dict)
    """(qname, qtype, cd) -> Unbound's complete answers to the client."""
    upstream: list[Record] = field(default_factory=list)
    """Every authoritative answer to Unbound, in order of Unbound's query frame."""
    upstream_by_name: dict[str, list[Record]] = field(default_factory=dict)
    """Lower-cased qname -> its authoritative answers, in answer-frame order."""
    _starts: list[int] = field(default_factory=list)

    @classmethod
    def of(cls, records: Iterable[Record], addresses: Addresses) -> AuditIndex:
        """Index *records* (``responses.jsonl``)."""
        index = cls(addresses)
        servers = set(addresses.servers())
        for record in records:
            if record["src"] == addresses.resolver and record["dst"] == addresses.client:
                if "TC" not in record["flags"]:
                    key = (record["qname"], record["qtype"], "CD" in record["flags"])
                    index.client.setdefault(key, []).append(record)
            elif record["src"] in servers and record["dst"] == addresses.resolver:
                index.upstream.append(record)
                index.upstream_by_name.setdefault(record["qname"].lower(), []).append(record)
        index.upstream.sort(key=lambda record: _frame(record, "query_frame"))
        index._starts = [_frame(record, "query_frame") for record in index.upstream]
        for answers in index.upstream_by_name.values():
            answers.sort(key=_frame)
        return index

    def answer_to(self, asked: Asked) -> Record | None:
        """Unbound's answer to *asked* in the capture (``None``: not captured)."""
        candidates = self.client.get((asked.probe.qname, asked.probe.qtype, asked.cd), [])
        timed = [(_epoch(record["ts"]), record) for record in candidates]
        inside = [(ts, record) for ts, record in timed
                  if asked.started - 0.005 <= ts <= asked.ended + 0.005]  # fmt: skip
        return max(inside, key=lambda entry: entry[0])[1] if inside else None

    def exchanges(self, answer: Record) -> list[Record]:
        """Upstream exchanges Unbound made between the client's question and its answer.

        The client asks one question at a time, so they are Unbound's work on that question.
        """
        first, last = _frame(answer, "query_frame"), _frame(answer)
        start = bisect.bisect_right(self._starts, first)
        return [record for record in self.upstream[start:bisect.bisect_left(self._starts, last)]
                if _frame(record) < last]  # fmt: skip

    def latest(self, name: str, before: int) -> list[Record]:
        """The most recent authoritative answer per type for *name* before frame *before*."""
        newest: dict[str, Record] = {}
        for record in self.upstream_by_name.get(name, ()):
            if _frame(record) < before:
                newest[record["qtype"]] = record
        return list(newest.values())


def designed_chain(scenario: Scenario, probe: Probe, limit: int = 16) -> tuple[str, ...]:
    """The CNAME/DNAME targets the design leads *probe*'s qname through (lower-cased)."""
    cnames: dict[str, str] = {}
    dnames: dict[str, str] = {}
    for zone in scenario.zones:
        for line in zone.records:
            tokens = line.split()
            for kind, table in (("CNAME", cnames), ("DNAME", dnames)):
                if kind in tokens[1:-1] and tokens[-1].endswith("."):
                    owner = tokens[0]
                    owner = zone.name if owner == "@" else (
                        owner if owner.endswith(".") else f"{owner}.{zone.name}")
                    table[owner.lower()] = tokens[-1].lower()
    name, result = probe.qname.lower(), []
    for _ in range(limit):
        if name in cnames:
            name = cnames[name]
        else:
            owner = next((a for a in _ancestors(name) if a != name and a in dnames), None)
            if owner is None:
                break
            name = name[: len(name) - len(owner)] + dnames[owner]
        if name in result:
            break
        result.append(name)
    return tuple(result)


def resolution(index: AuditIndex, answer: Record, probe: Probe,
               zones: Sequence[str] = (), aliases: Sequence[str] = ()) -> list[Record]:  # fmt: skip
    """The upstream answers that belong to the resolution Unbound answered with *answer*.

    Its exchanges between the client's question and the answer, restricted to names on the
    question's path: the qname and the CNAME/DNAME targets its answers led to (any type),
    and the names above them and above the path's *zones* (their NS, DS and DNSKEY, and the
    minimised queries Unbound made meanwhile). A name of the path Unbound did not ask about
    meanwhile came from its cache: the most recent answers for it before the client's answer
    count instead (of the question's type on the chain, NS/DS/DNSKEY above it).

    The answers carry no rdata, so the CNAME/DNAME targets come from the design (*aliases*,
    `designed_chain`) as well as from the answers' owner names; inside the exchanges, any
    name at or under a zone of the path counts too (the targets the design names in them).
    """
    window = index.exchanges(answer)
    before = _frame(answer)
    asked = {record["qname"].lower() for record in window}

    def cached(name: str, types: frozenset[str]) -> list[Record]:
        if name in asked:
            return []
        return [r for r in index.latest(name, before) if r["qtype"] in types]

    chain_types = frozenset({probe.qtype})
    chain = {probe.qname.lower(), *(name.lower() for name in aliases)}
    pool = window + [record for name in sorted(chain) for record in cached(name, chain_types)]
    inside = {zone.lower() for zone in zones}
    exchanged = {id(record) for record in window}
    while True:
        grown = chain.union(*(_answer_names(r) for r in pool if r["qname"].lower() in chain))
        if grown == chain:
            break
        pool += [record for name in grown - chain for record in cached(name, chain_types)]
        chain = grown
    above = {a for name in [*chain, *zones] for a in _ancestors(name.lower())} - chain
    pool += [record for name in sorted(above) for record in cached(name, _ZONE_DATA)]
    seen: set[int] = set()
    result = []
    for record in pool:
        name = record["qname"].lower()
        in_zone = id(record) in exchanged and any(a in inside for a in _ancestors(name))
        if (name in chain or name in above or in_zone) and id(record) not in seen:
            seen.add(id(record))
            result.append(record)
    return result


@dataclass(frozen=True, slots=True)
class Comparison:
    """One client question: Unbound's outcome and the auditor's verdict."""

    scenario: str
    probe: Probe
    cd: bool
    unbound: str
    """secure / insecure / bogus (a CD answer takes the plain question's outcome)."""
    ede: tuple[int, ...]
    auditor: str
    """Verdict derived from the audit (see `auditor_verdict`)."""
    codes: tuple[str, ...]
    """Codes of the records the verdict came from."""
    faults: str
    """Faults on the probe's path (``none`` if none)."""
    shapes: str
    """Shapes (signing) of the zones on the path."""
    records: tuple[Record, ...]
    """The responses the verdict came from."""
    upstream_bogus: bool
    """Some upstream answer of the question's resolution was judged bogus."""

    @property
    def agrees(self) -> bool:
        """Same verdict; Unbound's SERVFAIL also pairs with an upstream server failure."""
        return self.unbound == self.auditor or (
            self.unbound == "bogus" and self.auditor == SERVER_FAILURE
        )

    def fields(self) -> dict[str, str]:
        """The fields policy and known-disagreement patterns match on."""
        return {"unbound": self.unbound, "auditor": self.auditor, "chain": self.probe.chain,
                "faults": self.faults, "cd": "cd" if self.cd else "", "shapes": self.shapes,
                "ede": ",".join(map(str, self.ede)), "codes": ",".join(self.codes)}  # fmt: skip


def _verdict_of(records: Sequence[Record]) -> str:
    verdicts = sorted({record["verdict"] for record in records})
    if not verdicts:
        return "none"
    if "bogus" in verdicts:
        return "bogus"
    return verdicts[0] if len(verdicts) == 1 else "mixed:" + "+".join(verdicts)


def auditor_verdict(
    index: AuditIndex,
    asked: Asked,
    outcome: str,
    zones: Sequence[str] = (),
    aliases: Sequence[str] = (),
) -> tuple[str, list[Record]]:
    """Unbound answered: the verdict of that answer to the client (RRSIGs and proofs in it).

    SERVFAIL: bogus if an authoritative answer of the question's resolution (`resolution`)
    is bogus; else `SERVER_FAILURE` if an authoritative server answered it SERVFAIL or
    REFUSED; else those answers' verdicts (``none`` without any). `CAPTURE_LOST` when
    Unbound's answer is not in the capture.
    """
    answer = index.answer_to(asked)
    if answer is None:
        return CAPTURE_LOST, []
    if outcome == "bogus" and not asked.cd:
        records = resolution(index, answer, asked.probe, zones, aliases)
        verdict = _verdict_of(records)
        if verdict != "bogus" and any(record["rcode"] in _FAILING for record in records):
            verdict = SERVER_FAILURE
        return verdict, records
    return _verdict_of([answer]), [answer]


def _path_text(scenario: Scenario, probe: Probe) -> tuple[str, str]:
    faults = sorted({fault.kind.value for fault in scenario.faults_on_path(probe)})
    shapes = [scenario.zone(zone).shape() for zone in scenario.path_zones.get(str(probe), ())]
    return ",".join(faults) or "none", ";".join(shapes)


def compare(
    scenario: Scenario, asked: Sequence[Asked], index: AuditIndex, *, lost: bool = False
) -> list[Comparison]:
    """Compare every question of *scenario* (a CD question takes the plain one's outcome).

    *lost*: the batch's capture dropped packets; every answered question is `CAPTURE_LOST`.
    """
    plain: dict[str, str] = {}
    result = []
    for one in asked:
        outcome = plain.get(str(one.probe)) if one.cd else unbound_class(one)
        outcome = outcome or unbound_class(one)
        if not one.cd:
            plain[str(one.probe)] = outcome
        zones = scenario.path_zones.get(str(one.probe), ())
        if lost:
            verdict, records = CAPTURE_LOST, []
        else:
            aliases = designed_chain(scenario, one.probe)
            verdict, records = auditor_verdict(index, one, outcome, zones, aliases)
        codes = sorted(set().union(*(set(r["codes"]) for r in records))) if records else []
        faults, shapes = _path_text(scenario, one.probe)
        result.append(
            Comparison(
                scenario.id,
                one.probe,
                one.cd,
                outcome,
                one.ede,
                verdict,
                tuple(codes),
                faults,
                shapes,
                tuple(records),
                outcome == "bogus" and any(r["verdict"] == "bogus" for r in records),
            )
        )
    return result
