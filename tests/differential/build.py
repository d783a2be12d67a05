"""Write, sign and damage the zones of a batch of scenarios under one private root."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import dns.dnssec
import dns.dnssectypes
import dns.exception
import dns.name
import dns.rdata
import dns.rdtypes.dsbase
import dns.zone

from tests.differential import faults as fault_edits
from tests.differential.generator import TLD
from tests.differential.keypool import KeyPool, PoolKey, materialize, revoke
from tests.differential.model import Fault, FaultKind, Scenario, Signing, ZonePlan
from tests.lab.keys import LabKey
from tests.lab.tools import LabError, run
from tests.lab.zones import DAY, SigningWindow

logger = logging.getLogger(__name__)

UNKNOWN_DIGEST = 200
"""An unassigned DS digest type (IANA "Delegation Signer Digest Algorithms")."""


@dataclass(frozen=True, slots=True)
class Addresses:
    """The differential lab's addresses: one authoritative address per name depth."""

    prefix: str = "127.54.0"
    """First three octets (clear of the lab's 127.53.0.x)."""
    max_labels: int = 12
    """Deepest zone served (labels below the root)."""

    def server(self, labels: int) -> str:
        """Address serving every zone of *labels* labels (so each delegation is a referral)."""
        return f"{self.prefix}.{1 + labels}"

    @property
    def resolver(self) -> str:
        """Unbound listens and sends upstream from here."""
        return f"{self.prefix}.254"

    @property
    def client(self) -> str:
        """Source of the client questions."""
        return f"{self.prefix}.100"

    @property
    def network(self) -> str:
        """BPF net expression covering everything."""
        return f"{self.prefix}.0/24"

    def servers(self) -> list[str]:
        """Every authoritative address."""
        return [self.server(labels) for labels in range(self.max_labels + 1)]

    def all(self) -> list[str]:
        """Every address to configure on ``lo``."""
        return [*self.servers(), self.resolver, self.client]


@dataclass(slots=True)
class ZoneKeys:
    """The keys of one signed zone."""

    published: list[LabKey]
    """DNSKEYs in the zone text (and so in the first signing)."""
    signing: list[LabKey]
    """Keys handed to dnssec-signzone."""
    ds_keys: list[LabKey]
    """Keys the parent's DS records are made from."""
    apex_override: tuple[list[LabKey], list[LabKey]] | None = None
    """(published, signing) of a second signing whose DNSKEY RRset replaces the first's."""


@dataclass(frozen=True, slots=True)
class Job:
    """One zone to write and sign."""

    plan: ZonePlan
    lines: list[str]
    keys: ZoneKeys | None
    window: SigningWindow
    faults: tuple[Fault, ...]
    scenario: str


@dataclass(slots=True)
class Batch:
    """A batch built on disk."""

    workdir: Path
    zones: dict[str, Path] = field(default_factory=dict)
    """Zone name -> served file."""
    labels: dict[str, int] = field(default_factory=dict)
    """Zone name -> label count (selects the view)."""
    anchor: Path | None = None
    """Root DS file (Unbound trust-anchor-file, auditor --trust-anchor)."""
    failed: dict[str, str] = field(default_factory=dict)
    """Scenario id -> why its zones could not be built."""
    windows: dict[str, SigningWindow] = field(default_factory=dict)
    """Zone name -> signature window."""


def window_for(faults: Iterable[Fault], now: int) -> SigningWindow:
    """The zone's signature window: current, expired or not yet valid (RFC 4035 5.3.1)."""
    kinds = {fault.kind for fault in faults}
    if FaultKind.EXPIRED in kinds:
        return SigningWindow(now - 30 * DAY, now - 2 * DAY)
    if FaultKind.NOT_YET_VALID in kinds:
        return SigningWindow(now + 2 * DAY, now + 30 * DAY)
    return SigningWindow(now - 3600, now + 30 * DAY)


def _pool_key(pool: KeyPool, signing: Signing, ksk: bool, index: int) -> PoolKey:
    return pool.get(signing.algorithm, signing.bits, ksk, index)


def zone_keys(
    pool: KeyPool, plan: ZonePlan, faults: Sequence[Fault], index: int, keydir: Path
) -> ZoneKeys | None:
    """Materialize the zone's KSK and ZSK and shape them for its key faults."""
    if plan.signing is None:
        return None
    ksk = materialize(_pool_key(pool, plan.signing, True, index), plan.name, keydir)
    zsk = materialize(_pool_key(pool, plan.signing, False, index), plan.name, keydir)
    keys = ZoneKeys([ksk, zsk], [ksk, zsk], [ksk])
    # A revoked KSK first: a missing ZSK then leaves the revoked KSK alone in the RRset.
    for fault in sorted(faults, key=lambda fault: fault.kind is not FaultKind.KEY_REVOKED):
        if fault.kind is FaultKind.KEY_MISSING:
            keys.apex_override = ([keys.published[0]], [keys.published[0]])
        elif fault.kind is FaultKind.KEY_REVOKED and fault.variant == "zsk":
            keys.apex_override = (
                [
                    ksk,
                    revoke(
                        materialize(
                            _pool_key(pool, plan.signing, False, index),
                            plan.name,
                            keydir / "revoked",
                        )
                    ),
                ],
                [ksk],
            )
        elif fault.kind is FaultKind.KEY_REVOKED:
            revoked = revoke(ksk)
            keys = ZoneKeys([revoked, zsk], [revoked, zsk], [revoked])
    return keys


def make_ds(zone: str, key: LabKey, digest: int) -> dns.rdtypes.dsbase.DSBase:
    """DS over *key* with any digest type, SHA-1 included (dnspython's default policy denies)."""
    return dns.dnssec.make_ds(dns.name.from_text(zone), key.dnskey,
                              dns.dnssectypes.DSDigest(digest),
                              policy=dns.dnssec.allow_all_policy)  # fmt: skip


def corrupt_ds(ds: dns.rdtypes.dsbase.DSBase) -> dns.rdtypes.dsbase.DSBase:
    """Same key tag, algorithm and digest type; a digest (of the right length) matching no key."""
    wrong = ds.replace(digest=bytes(byte ^ 0x5A for byte in ds.digest))
    assert isinstance(wrong, dns.rdtypes.dsbase.DSBase)
    return wrong


def _ds_text(zone: str, rdata: dns.rdata.Rdata) -> str:
    return f"{zone} 300 IN DS {rdata.to_text()}"


def ds_lines(
    plan: ZonePlan, keys: ZoneKeys | None, faults: Sequence[Fault], phantom: LabKey
) -> list[str]:
    """The DS RRset the parent publishes for *plan* (RFC 4034 5), with its DS faults."""
    kinds = {fault.kind: fault for fault in faults}
    digests = plan.signing.ds_digests if plan.signing else (2,)
    if FaultKind.DS_MISSING in kinds or (keys is None and FaultKind.DS_WRONG not in kinds):
        return []
    wrong = kinds.get(FaultKind.DS_WRONG)
    if wrong is not None and (wrong.variant == "phantom" or keys is None):
        return [_ds_text(plan.name, make_ds(plan.name, phantom, 2))]
    assert keys is not None
    good = [make_ds(plan.name, key, digest) for key in keys.ds_keys for digest in digests]
    if wrong is not None:
        return [_ds_text(plan.name, corrupt_ds(ds)) for ds in good]
    unknown = kinds.get(FaultKind.DS_UNKNOWN_DIGEST)
    if unknown is not None:
        odd = good[0].replace(digest_type=UNKNOWN_DIGEST, digest=bytes(range(32)))
        good = [odd] if unknown.variant == "alone" else [odd, *good]
    return [_ds_text(plan.name, ds) for ds in good]


def header(zone: str, address: str, ttl: int = 300) -> list[str]:
    """$ORIGIN, SOA, NS and the name server's address."""
    apex_mail = f"hostmaster.{zone}" if zone != "." else "hostmaster."
    ns = "a.root.test." if zone == "." else f"ns.{zone}"
    lines = [f"$ORIGIN {zone}", f"$TTL {ttl}", f"@ SOA {ns} {apex_mail} 1 3600 900 604800 300"]
    lines.append(f"@ NS {ns}")
    lines.append(f"{ns} A {address}")
    return lines


def delegation(child: str, address: str, ds: Sequence[str]) -> list[str]:
    """NS, glue and DS of *child* in its parent."""
    return [f"{child} NS ns.{child}", f"ns.{child} A {address}", *ds]


def sign(
    job: Job,
    unsigned: Path,
    published: Sequence[LabKey],
    signing: Sequence[LabKey],
    *,
    suffix: str = ".signed",
    ksk_only: bool = False,
) -> Path:
    """dnssec-signzone *unsigned* with *signing* keys inside the job's window."""
    nsec3 = job.plan.signing.nsec3 if job.plan.signing else None
    signed = unsigned.with_suffix(suffix)
    argv = ["dnssec-signzone", "-q", "-P", "-o", job.plan.name, "-f", str(signed),
            "-s", str(job.window.inception), "-e", str(job.window.expiration),
            "-N", "keep", "-d", str(unsigned.parent), "-n", "1"]  # fmt: skip
    argv += ["-z"] if ksk_only else []
    if nsec3 is not None:
        argv += ["-3", nsec3.salt, "-H", str(nsec3.iterations)] + (["-A"] if nsec3.opt_out else [])
    run([*argv, str(unsigned), *(str(key.base) for key in signing)], timeout=120)
    return signed


def _with_keys(lines: Sequence[str], zone: str, keys: Iterable[LabKey]) -> str:
    dnskeys = [f"{zone} 300 IN DNSKEY {key.dnskey.to_text()}" for key in keys]
    return "\n".join([*lines, *dnskeys]) + "\n"


def build_zone(job: Job, zonedir: Path) -> Path:
    """Write, sign and damage one zone; return the file named serves."""
    slug = job.plan.name.rstrip(".") or "root"
    unsigned = zonedir / f"{slug}.db"
    keys = job.keys
    unsigned.write_text(_with_keys(job.lines, job.plan.name, keys.published if keys else ()))
    if keys is None:
        return unsigned
    signed = sign(job, unsigned, keys.published, keys.signing)
    zone = dns.zone.from_file(str(signed), origin=job.plan.name, relativize=False)
    if keys.apex_override is not None:
        published, signing = keys.apex_override
        donor_text = zonedir / f"{slug}.apex"
        donor_text.write_text(_with_keys(job.lines[:5], job.plan.name, published))
        donor_file = sign(job, donor_text, published, signing, suffix=".apex-signed", ksk_only=True)
        donor = dns.zone.from_file(str(donor_file), origin=job.plan.name, relativize=False)
        fault_edits.replace_apex_dnskeys(zone, donor)
    fault_edits.apply(zone, job.faults)
    served = unsigned.with_suffix(".served")
    zone.to_file(str(served), relativize=False)
    return served


def _scenario_jobs(
    scenario: Scenario,
    pool: KeyPool,
    keydir: Path,
    addresses: Addresses,
    now: int,
    phantom: LabKey,
) -> tuple[list[Job], list[str]]:
    """Jobs for the scenario's zones and the top zone's delegation lines for ``test.``."""
    keys = {
        plan.name: zone_keys(
            pool, plan, [f for f in scenario.faults if f.zone == plan.name], index, keydir
        )
        for index, plan in enumerate(scenario.zones)
    }
    ds = {plan.name: ds_lines(plan, keys[plan.name],
                              [f for f in scenario.faults if f.zone == plan.name], phantom)
          for plan in scenario.zones}  # fmt: skip
    children: dict[str, list[str]] = {plan.name: [] for plan in scenario.zones}
    children[TLD] = []
    for plan in scenario.zones:
        children[plan.parent] += delegation(plan.name, addresses.server(plan.labels), ds[plan.name])
    jobs = []
    for plan in scenario.zones:
        faults = tuple(f for f in scenario.faults if f.zone == plan.name)
        lines = [*header(plan.name, addresses.server(plan.labels)), *plan.records,
                 *children[plan.name]]  # fmt: skip
        jobs.append(Job(plan, lines, keys[plan.name], window_for(faults, now), faults, scenario.id))
    return jobs, children[TLD]


def _infrastructure(
    pool: KeyPool, keydir: Path, addresses: Addresses, now: int, tld_delegations: list[str]
) -> list[Job]:
    """The root and ``test.`` (signed, NSEC, ECDSA P-256) above every scenario."""
    signing = Signing(13, None, None)
    root_plan, tld_plan = ZonePlan(".", ".", signing), ZonePlan(TLD, ".", signing)
    root_keys = zone_keys(pool, root_plan, (), 5, keydir)
    tld_keys = zone_keys(pool, tld_plan, (), 4, keydir)
    window = window_for((), now)
    tld_ds = ds_lines(tld_plan, tld_keys, (), root_keys.ds_keys[0] if root_keys else None)  # type: ignore[arg-type]
    root_lines = [*header(".", addresses.server(0), 86400),
                  *delegation(TLD, addresses.server(1), tld_ds)]  # fmt: skip
    tld_lines = [*header(TLD, addresses.server(1), 3600), f"a.root A {addresses.server(0)}",
                 *tld_delegations]  # fmt: skip
    return [
        Job(root_plan, root_lines, root_keys, window, (), "infrastructure"),
        Job(tld_plan, tld_lines, tld_keys, window, (), "infrastructure"),
    ]


def build_batch(
    scenarios: Sequence[Scenario], workdir: Path, pool: KeyPool, addresses: Addresses, now: int
) -> Batch:
    """Keys, texts, signatures and faults for every zone of *scenarios* plus root and test."""
    keydir, zonedir = workdir / "keys", workdir / "zones"
    for directory in (keydir, keydir / "revoked", zonedir):
        directory.mkdir(parents=True, exist_ok=True)
    phantom = materialize(pool.get(13, None, True, 3), "phantom.", keydir)
    jobs: list[Job] = []
    tld_delegations: list[str] = []
    batch = Batch(workdir)
    for scenario in scenarios:
        try:
            scenario_jobs, lines = _scenario_jobs(scenario, pool, keydir, addresses, now, phantom)
        except (LabError, ValueError, dns.exception.DNSException, OSError) as exc:
            logger.exception("scenario %s not built", scenario.id)
            batch.failed[scenario.id] = f"keys or DS: {exc!r}"[:500]
            continue
        jobs += scenario_jobs
        tld_delegations += lines
    jobs = _infrastructure(pool, keydir, addresses, now, tld_delegations) + jobs
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as executor:
        served = list(executor.map(lambda job: _try_build(job, zonedir, batch), jobs))
    for job, path in zip(jobs, served, strict=True):
        batch.zones[job.plan.name] = path
        batch.labels[job.plan.name] = job.plan.labels if job.plan.name != "." else 0
        batch.windows[job.plan.name] = job.window
    root = jobs[0].keys
    assert root is not None
    batch.anchor = workdir / "root.ds"
    batch.anchor.write_text("\n".join(ds_lines(jobs[0].plan, root, (), phantom)) + "\n")
    return batch


def _try_build(job: Job, zonedir: Path, batch: Batch) -> Path:
    try:
        return build_zone(job, zonedir)
    except (LabError, dns.exception.DNSException, OSError) as exc:
        if job.scenario == "infrastructure":
            raise
        batch.failed[job.scenario] = f"{job.plan.name}: {exc}"[:500]
        slug = job.plan.name.rstrip(".")
        return zonedir / f"{slug}.db"
