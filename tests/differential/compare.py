"""Set Unbound's outcome for every client question against the auditor's verdict."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence
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


@dataclass(slots=True)
class AuditIndex:
    """The audit's responses, indexed for the comparison."""

    addresses: Addresses
    client: dict[tuple[str, str, bool], list[Record]] = field(default_factory=dict)
    """(qname, qtype, cd) -> Unbound's complete answers to the client."""
    upstream: list[tuple[float, Record]] = field(default_factory=list)
    """(capture time, record) of every authoritative answer to Unbound, in time order."""
    upstream_by_question: dict[tuple[str, str], list[Record]] = field(default_factory=dict)

    @classmethod
    def of(cls, records: Iterable[Record], addresses: Addresses) -> AuditIndex:
        """Index *records* (``responses.jsonl``)."""
        index = cls(addresses)
        servers = set(addresses.servers())
        for record in records:
            question = (record["qname"], record["qtype"])
            if record["src"] == addresses.resolver and record["dst"] == addresses.client:
                if "TC" not in record["flags"]:
                    key = (*question, "CD" in record["flags"])
                    index.client.setdefault(key, []).append(record)
            elif record["src"] in servers and record["dst"] == addresses.resolver:
                index.upstream.append((_epoch(record["ts"]), record))
                index.upstream_by_question.setdefault(question, []).append(record)
        index.upstream.sort(key=lambda entry: entry[0])
        return index

    def window(self, started: float, ended: float) -> list[Record]:
        """Upstream answers captured while Unbound worked on one client question."""
        return [record for ts, record in self.upstream if started - 0.01 <= ts <= ended + 0.01]


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
    """Some upstream answer in the question's window was judged bogus."""

    @property
    def agrees(self) -> bool:
        """Same verdict."""
        return self.unbound == self.auditor

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


def auditor_verdict(index: AuditIndex, asked: Asked, outcome: str) -> tuple[str, list[Record]]:
    """Unbound answered: the verdict of that answer to the client (RRSIGs and proofs in it).

    SERVFAIL: bogus if any authoritative answer Unbound received while working on the
    question is bogus (else those answers' verdicts); without upstream traffic (the failure
    came from its cache) every upstream answer to the same question in the capture.
    """
    if outcome == "bogus" and not asked.cd:
        records = index.window(asked.started, asked.ended)
        if not any(record["verdict"] == "bogus" for record in records):
            question = (asked.probe.qname, asked.probe.qtype)
            records = records + index.upstream_by_question.get(question, [])
        return _verdict_of(records), records
    records = index.client.get((asked.probe.qname, asked.probe.qtype, asked.cd), [])
    return _verdict_of(records[-1:]), records[-1:]


def _path_text(scenario: Scenario, probe: Probe) -> tuple[str, str]:
    faults = sorted({fault.kind.value for fault in scenario.faults_on_path(probe)})
    shapes = [scenario.zone(zone).shape() for zone in scenario.path_zones.get(str(probe), ())]
    return ",".join(faults) or "none", ";".join(shapes)


def compare(scenario: Scenario, asked: Sequence[Asked], index: AuditIndex) -> list[Comparison]:
    """Compare every question of *scenario* (a CD question takes the plain one's outcome)."""
    plain: dict[str, str] = {}
    result = []
    for one in asked:
        outcome = plain.get(str(one.probe)) if one.cd else unbound_class(one)
        outcome = outcome or unbound_class(one)
        if not one.cd:
            plain[str(one.probe)] = outcome
        verdict, records = auditor_verdict(index, one, outcome)
        codes = sorted(set().union(*(set(r["codes"]) for r in records))) if records else []
        window = index.window(one.started, one.ended)
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
                any(r["verdict"] == "bogus" for r in window),
            )
        )
    return result
