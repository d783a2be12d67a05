"""Run batches of scenarios: build, serve, resolve through Unbound, capture, audit, compare."""

from __future__ import annotations

import fcntl
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode

from tests.differential.build import Addresses, Batch, build_batch
from tests.differential.compare import Asked, AuditIndex, Comparison, compare
from tests.differential.generator import generate
from tests.differential.keypool import KeyPool
from tests.differential.model import Probe, Scenario
from tests.differential.servers import LOCK, running
from tests.integration.agreement import run_audit

logger = logging.getLogger(__name__)

DEFAULT_KEY_CACHE = Path("/tmp/dnssec-differential-keys")


def ask(addresses: Addresses, scenario: str, probe: Probe, cd: bool) -> Asked:
    """One question to Unbound with DO (and CD if asked); TCP after a truncated answer."""
    query = dns.message.make_query(probe.qname, probe.qtype, want_dnssec=True, payload=1232)
    if cd:
        query.flags |= dns.flags.CD
    started = time.time()
    try:
        response = dns.query.udp(query, addresses.resolver, timeout=8, source=addresses.client)
        if response.flags & dns.flags.TC:
            response = dns.query.tcp(query, addresses.resolver, timeout=8,
                                     source=addresses.client)  # fmt: skip
    except (dns.exception.DNSException, OSError):
        return Asked(scenario, probe, cd, None, False, (), started, time.time())
    ede = tuple(int(option.code) for option in response.options
                if isinstance(option, dns.edns.EDEOption))  # fmt: skip
    rcode = dns.rcode.to_text(response.rcode())
    ad = bool(response.flags & dns.flags.AD)
    return Asked(scenario, probe, cd, rcode, ad, ede, started, time.time())


def ask_all(addresses: Addresses, scenario: Scenario) -> list[Asked]:
    """Every probe, plain; the CD ones then again with CD."""
    asked = []
    for probe in scenario.probes:
        asked.append(ask(addresses, scenario.id, probe, False))
        if probe.cd:
            asked.append(ask(addresses, scenario.id, probe, True))
    return asked


@dataclass(slots=True)
class BatchResult:
    """What one batch produced."""

    scenarios: list[Scenario]
    comparisons: list[Comparison] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    """Scenario id -> why it was not compared (build failure, zone not loaded)."""
    batch: Batch | None = None
    pcap: Path | None = None
    asked: dict[str, list[Asked]] = field(default_factory=dict)
    audit_records: list[dict[str, object]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    dropped: list[int] = field(default_factory=list)
    """Packets tcpdump reported dropped by the kernel, per attempt (re-run once on a loss)."""

    @property
    def lost(self) -> bool:
        """The last attempt's capture dropped packets: its comparisons are capture-lost."""
        return bool(self.dropped and self.dropped[-1])


def _skipped(batch: Batch, scenario: Scenario, not_loaded: frozenset[str]) -> str | None:
    if scenario.id in batch.failed:
        return batch.failed[scenario.id]
    broken = [zone.name for zone in scenario.zones if zone.name in not_loaded]
    return f"named did not load {', '.join(broken)}" if broken else None


def run_batch(
    scenarios: Sequence[Scenario],
    workdir: Path,
    *,
    key_cache: Path = DEFAULT_KEY_CACHE,
    addresses: Addresses | None = None,
    attempts: int = 2,
) -> BatchResult:
    """Build *scenarios* into one named, resolve every probe, audit the capture, compare.

    A capture that dropped packets (tcpdump's "N packets dropped by kernel") is made again
    with fresh servers, up to *attempts* times; if the last one still lost packets, every
    question of the batch is compared as capture-lost (counted apart).
    """
    addresses = addresses or Addresses()
    result = BatchResult(list(scenarios))
    clock = time.monotonic()
    batch = build_batch(scenarios, workdir, KeyPool(key_cache), addresses, int(time.time()))
    result.batch, result.pcap = batch, workdir / "batch.pcap"
    result.timings["build"] = time.monotonic() - clock
    with LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for attempt in range(attempts):
            result.asked, result.skipped = {}, {}
            clock = time.monotonic()
            with running(batch, addresses, result.pcap) as (servers, capture):
                result.timings["start"] = time.monotonic() - clock
                clock = time.monotonic()
                for scenario in scenarios:
                    reason = _skipped(batch, scenario, servers.not_loaded)
                    if reason is not None:
                        result.skipped[scenario.id] = reason
                        continue
                    result.asked[scenario.id] = ask_all(addresses, scenario)
                result.timings["resolve"] = time.monotonic() - clock
            result.dropped.append(capture.dropped or 0)  # set when tcpdump stopped
            if not result.lost:
                break
            logger.warning("batch of %s: tcpdump dropped %d packets (attempt %d of %d)",
                           scenarios[0].id, capture.dropped, attempt + 1, attempts)  # fmt: skip
    clock = time.monotonic()
    audit = run_audit(result.pcap, workdir / "audit", batch.anchor)
    result.timings["audit"] = time.monotonic() - clock
    result.audit_records = list(audit.records)
    index = AuditIndex.of(audit.records, addresses)
    for scenario in scenarios:
        if scenario.id in result.asked:
            result.comparisons += compare(scenario, result.asked[scenario.id], index,
                                          lost=result.lost)
    return result


def scenarios_for(seed: int, count: int, start: int = 0) -> Iterator[Scenario]:
    """Scenarios ``start`` .. ``start + count - 1`` of the run seeded *seed*."""
    for index in range(start, start + count):
        yield generate(seed, index)
