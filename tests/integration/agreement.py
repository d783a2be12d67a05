"""Audit a lab capture and derive, per probe, the auditor's verdict to compare with Unbound's."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from auditor.cli import cli
from tests.lab import Lab, LabAddresses, QueryResult

Record = dict[str, Any]
"""One parsed line of ``responses.jsonl``."""

VERDICTS = ("secure", "insecure", "bogus", "indeterminate")
"""Every verdict the auditor may give (the ``verdict`` field)."""


@dataclass(frozen=True, slots=True)
class Probe:
    """One question asked of the validating resolver, and what its breakage must be called."""

    qname: str
    """Name asked."""
    qtype: str = "A"
    """Type asked."""
    codes: frozenset[str] = field(default_factory=frozenset)
    """For a bogus probe: the auditor must give at least one of these codes (the designed
    cause); for a secure/insecure probe: codes the auditor must give (all of them)."""

    def __str__(self) -> str:
        return f"{self.qname}/{self.qtype}"


@dataclass(frozen=True, slots=True)
class Audit:
    """What one auditor run over one capture produced."""

    records: tuple[Record, ...]
    """``responses.jsonl``, one dict per DNS response."""
    stats: dict[str, Any]
    """``stats.json``."""

    def for_question(self, qname: str, qtype: str) -> list[Record]:
        """Responses to *qname*/*qtype*, in capture order."""
        return [r for r in self.records if r["qname"] == qname and r["qtype"] == qtype]

    def verdict_counts(self) -> dict[str, int]:
        """Verdict -> number of responses, counted from ``responses.jsonl``."""
        counts = dict.fromkeys(VERDICTS, 0)
        for record in self.records:
            counts[record["verdict"]] += 1
        return counts


@dataclass(frozen=True, slots=True)
class Run:
    """Probes asked of Unbound under one capture, Unbound's answers and the audit."""

    pcap: Path
    """The capture."""
    results: dict[Probe, QueryResult]
    """Unbound's answer to each probe, as dig printed it."""
    audit: Audit
    """The auditor's reading of the capture."""


def run_audit(pcap: Path, out: Path, trust_anchor: Path | None) -> Audit:
    """Run ``dnssec-auditor audit`` in-process; fail loudly on any internal error."""
    argv = ["audit", str(pcap), "--out", str(out), "--quiet"]
    if trust_anchor is not None:
        argv += ["--trust-anchor", str(trust_anchor)]
    result = CliRunner().invoke(cli, argv, catch_exceptions=True)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"auditor raised on {pcap.name}: {result.exception!r}") from (
            result.exception
        )
    assert result.exit_code in (0, 1), (result.exit_code, result.output)
    stats = json.loads((out / "stats.json").read_text())
    lines = (out / "responses.jsonl").read_text().splitlines()
    return Audit(records=tuple(json.loads(line) for line in lines), stats=stats)


def resolver_class(result: QueryResult) -> str:
    """Unbound's conclusion in auditor words: AD -> secure, SERVFAIL -> bogus, else insecure."""
    if result.rcode == "SERVFAIL":
        return "bogus"  # RFC 4035 5.5: bogus data is answered with SERVFAIL
    if result.rcode in ("NOERROR", "NXDOMAIN"):
        return "secure" if result.ad else "insecure"  # RFC 4035 3.2.3
    return f"unexpected rcode {result.rcode}"


def client_answers(audit: Audit, addresses: LabAddresses, probe: Probe) -> list[Record]:
    """Unbound's complete (not truncated) responses to the lab client for *probe*."""
    return [
        r
        for r in audit.for_question(probe.qname, probe.qtype)
        if r["src"] == addresses.resolver
        and r["dst"] == addresses.client
        and "TC" not in r["flags"]
    ]


def upstream_answers(audit: Audit, addresses: LabAddresses, probe: Probe) -> list[Record]:
    """Authoritative responses Unbound received for *probe* (its own question upstream)."""
    servers = addresses.servers
    authoritative = {servers.root, servers.tld, servers.leaf}
    return [
        r
        for r in audit.for_question(probe.qname, probe.qtype)
        if r["src"] in authoritative and r["dst"] == addresses.resolver
    ]


def describe(records: Iterable[Record]) -> str:
    """Short diagnostic lines: frame, path, verdict, codes, per-RRset verdicts."""
    lines = []
    for r in records:
        rrsets = ", ".join(
            f"{s['section']}:{s['name']}/{s['type']}={s['verdict']}{s['codes']}"
            for s in r["rrsets"]
        )
        lines.append(
            f"  frame {r['frame']} {r['src']}->{r['dst']} {r['transport']} {r['rcode']} "
            f"{r['flags']} verdict={r['verdict']} codes={r['codes']} missing={r['missing']} "
            f"rrsets=[{rrsets}]"
        )
    return "\n".join(lines) or "  (none)"


@dataclass(frozen=True, slots=True)
class Judgement:
    """The auditor's verdict for one probe, derived as the comparison design says."""

    verdict: str
    """Single verdict, or a ``mixed:`` / ``none`` description when it cannot be one."""
    records: tuple[Record, ...]
    """The responses it was derived from."""
    codes: frozenset[str]
    """Codes common to every one of those responses."""


def judge(audit: Audit, addresses: LabAddresses, probe: Probe, answered: QueryResult) -> Judgement:
    """Answered with data: the verdict of Unbound's answer to the client (DO: RRSIGs included).

    SERVFAIL: the verdict of every authoritative answer Unbound got for the same question
    (Unbound retries other servers/queries on bogus data; each copy must be bogus).
    """
    if answered.rcode == "SERVFAIL":
        records = upstream_answers(audit, addresses, probe)
    else:
        records = client_answers(audit, addresses, probe)
    if not records:
        return Judgement("none", (), frozenset())
    verdicts = {r["verdict"] for r in records}
    verdict = verdicts.pop() if len(verdicts) == 1 else f"mixed:{sorted(verdicts)}"
    common = frozenset.intersection(*(frozenset(r["codes"]) for r in records))
    return Judgement(verdict, tuple(records), common)


def disagreement(
    audit: Audit,
    addresses: LabAddresses,
    probe: Probe,
    answered: QueryResult,
    expected: str | None = None,
) -> str | None:
    """Why the auditor and Unbound disagree on *probe* (or the code is wrong); None if agreed.

    *expected* is the lab's designed verdict; Unbound must reach it too, else the lab broke.
    """
    unbound = resolver_class(answered)
    if expected is not None and unbound != expected:
        return f"{probe}: lab broken, Unbound says {unbound}, design says {expected}"
    judgement = judge(audit, addresses, probe, answered)
    header = (
        f"{probe}: Unbound {answered.rcode} flags={sorted(answered.flags)} -> {unbound}; "
        f"auditor -> {judgement.verdict}"
    )
    if judgement.verdict != unbound:
        return f"{header}\n{describe(judgement.records)}"
    if unbound == "bogus" and probe.codes and not probe.codes & judgement.codes:
        return f"{header}, but no response has any of {sorted(probe.codes)}\n" + describe(
            judgement.records
        )
    if unbound != "bogus" and not probe.codes <= judgement.codes:
        return f"{header}, but codes lack {sorted(probe.codes - judgement.codes)}\n" + describe(
            judgement.records
        )
    return None


def ask_each_from_cold(lab: Lab, probes: Sequence[Probe], **options: Any) -> list[QueryResult]:
    """Flush Unbound before every probe so its whole upstream walk lands in the capture."""
    results = []
    for probe in probes:
        lab.flush_resolver()
        results.append(lab.query_resolver(probe.qname, probe.qtype, **options))
    return results


def capture_and_audit(
    lab: Lab, workdir: Path, name: str, probes: Sequence[Probe], **options: Any
) -> Run:
    """Capture *probes* asked from a cold cache, then audit with the lab's root anchor.

    A capture in which the kernel dropped packets cannot be compared (the auditor would lack
    what Unbound saw): it is taken again, once.
    """
    for attempt in range(2):
        with lab.capture(workdir / f"{name}-{attempt}.pcap") as pcap:
            results = ask_each_from_cold(lab, probes, **options)
        if not pcap.dropped:
            break
    assert not pcap.dropped, f"tcpdump lost {pcap.dropped} packets twice: the lab is overloaded"
    audit = run_audit(pcap.path, workdir / f"{name}-out", lab.trust_anchor_file)
    return Run(pcap.path, dict(zip(probes, results, strict=True)), audit)
