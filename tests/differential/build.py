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
from tests.differential.keypool import KeyPool, PoolKey, load_private, materialize, revoke
from tests.differential.model import (
    ANCHOR_FAULTS,
    Fault,
    FaultKind,
    OnlineMode,
    Scenario,
    Signing,
    ZonePlan,
)
from tests.lab.keys import LabKey
from tests.lab.online_signer import OnlineZone
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
    def online(self) -> str:
        """The online signer's address (every online-signed zone of a batch)."""
        return f"{self.prefix}.200"

    @property
    def knot(self) -> str:
        """knotd's address (every zone of a batch signed by Knot's mod-onlinesign)."""
        return f"{self.prefix}.201"

    def serving(self, plan: ZonePlan) -> str:
        """Address of the server of *plan*: knotd's, the online signer's, or its depth's."""
        online = plan.signing.online if plan.signing is not None else None
        if online is None:
            return self.server(plan.labels)
        return self.knot if online is OnlineMode.KNOT else self.online

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

    def depths(self) -> list[str]:
        """named's addresses, one per depth."""
        return [self.server(labels) for labels in range(self.max_labels + 1)]

    def servers(self) -> list[str]:
        """Every authoritative address (named's, the online signer's and knotd's)."""
        return [*self.depths(), self.online, self.knot]

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


@dataclass(frozen=True, slots=True)
class KnotZone:
    """A zone knotd signs on the fly (mod-onlinesign) with keys imported from the pool."""

    name: str
    lines: tuple[str, ...]
    """The unsigned zone text (no DNSKEY: Knot adds its keys)."""
    keys: tuple[LabKey, ...]
    """KSK and ZSK, imported with ``keymgr import-bind``."""


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
    online: list[OnlineZone] = field(default_factory=list)
    """Zones the online signer serves (a text of each in ``zones``, none in ``labels``)."""
    knot: list[KnotZone] = field(default_factory=list)
    """Zones knotd serves (their unsigned files in ``zones``, none in ``labels``)."""


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
    if plan.signing.python_signed:  # no key faults here (the generator's choice)
        ksk = pool.python(plan.signing.algorithm, plan.signing.bits, True, index)
        zsk = pool.python(plan.signing.algorithm, plan.signing.bits, False, index)
        if plan.signing.extra_algorithm is None:
            return ZoneKeys([ksk, zsk], [ksk, zsk], [ksk])
        extra = pool.python(plan.signing.extra_algorithm, None, False, index)  # a second ZSK
        return ZoneKeys([ksk, zsk, extra], [ksk, zsk, extra], [ksk, extra])
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


def sign_python(job: Job, keys: ZoneKeys) -> dns.zone.Zone:
    """Sign the job's zone with dnspython (NSEC; the KSK signs the DNSKEY RRset, the ZSK the
    rest): RSAMD5, DSA and short RSA keys, for which BIND 9.18 makes no keys."""
    zone = dns.zone.from_text("\n".join(job.lines) + "\n", origin=job.plan.name,
                              relativize=False)  # fmt: skip
    pairs = [(load_private(key.base), key.dnskey) for key in keys.signing]
    with zone.writer() as txn:
        dns.dnssec.sign_zone(zone, txn, keys=pairs, dnskey_ttl=300,
                             inception=job.window.inception, expiration=job.window.expiration,
                             policy=dns.dnssec.allow_all_policy)  # fmt: skip
    return zone


def build_zone(job: Job, zonedir: Path) -> Path:
    """Write, sign and damage one zone; return the file named serves."""
    slug = job.plan.name.rstrip(".") or "root"
    unsigned = zonedir / f"{slug}.db"
    keys = job.keys
    unsigned.write_text(_with_keys(job.lines, job.plan.name, keys.published if keys else ()))
    if keys is None:
        return unsigned
    if job.plan.signing is not None and job.plan.signing.python_signed:
        zone = sign_python(job, keys)
        fault_edits.apply(zone, job.faults)
        served = unsigned.with_suffix(".served")
        zone.to_file(str(served), relativize=False)
        return served
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


@dataclass(slots=True)
class ScenarioParts:
    """What one scenario adds to a batch."""

    jobs: list[Job] = field(default_factory=list)
    """Zones named serves."""
    tld_lines: list[str] = field(default_factory=list)
    """The top zone's delegation in ``test.``."""
    online: list[OnlineZone] = field(default_factory=list)
    """Zones the online signer serves."""
    knot: list[KnotZone] = field(default_factory=list)
    """Zones knotd serves."""
    anchors: list[str] = field(default_factory=list)
    """Trust anchor lines besides the root's (anchor faults)."""


def online_zone(plan: ZonePlan, faults: Sequence[Fault], address: str) -> OnlineZone:
    """The online signer's zone for *plan*: its records, its mode or the mode's broken twin."""
    assert plan.signing is not None and plan.signing.online is not None
    broken = any(fault.kind is FaultKind.ONLINE_BROKEN for fault in faults)
    mode = plan.signing.online.broken if broken else plan.signing.online.value
    return OnlineZone(dns.name.from_text(plan.name), address, nsec3=plan.signing.nsec3 is not None,
                      records=plan.records, mode=mode)  # fmt: skip


def online_key(zone: OnlineZone, keydir: Path) -> LabKey:
    """The online zone's CSK as the DS source (no key files: the signer holds the key)."""
    return LabKey(base=keydir / f"online-{zone.origin}", dnskey=zone.dnskey, ksk=True)


def anchor_lines(plan: ZonePlan, keys: ZoneKeys | None, faults: Sequence[Fault],
                 phantom: LabKey) -> list[str]:  # fmt: skip
    """A SHA-256 DS anchor for *plan* over its KSK (the phantom key when unsigned): cut to 20
    bytes (misfit: the length of no SHA-256 digest) or of the right length matching nothing."""
    kinds = {fault.kind for fault in faults} & ANCHOR_FAULTS
    if not kinds:
        return []
    good = make_ds(plan.name, keys.ds_keys[0] if keys else phantom, 2)
    if FaultKind.ANCHOR_MISFIT in kinds:  # as text: dnspython refuses to build it
        cut = good.digest[:20].hex()
        return [f"{plan.name} 300 IN DS {good.key_tag} {good.algorithm} 2 {cut}"]
    return [_ds_text(plan.name, corrupt_ds(good))]


def _scenario_jobs(
    scenario: Scenario,
    pool: KeyPool,
    keydir: Path,
    addresses: Addresses,
    now: int,
    phantom: LabKey,
) -> ScenarioParts:
    """Jobs and online zones for the scenario's zones, its delegation and its anchors."""
    parts = ScenarioParts()
    faults = {plan.name: tuple(f for f in scenario.faults if f.zone == plan.name)
              for plan in scenario.zones}  # fmt: skip
    keys: dict[str, ZoneKeys | None] = {}
    for index, plan in enumerate(scenario.zones):
        online = plan.signing.online if plan.signing is not None else None
        if online is OnlineMode.KNOT:
            knot_keys = zone_keys(pool, plan, (), index, keydir)
            assert knot_keys is not None
            keys[plan.name] = knot_keys
            text = (*header(plan.name, addresses.knot), *plan.records)
            parts.knot.append(KnotZone(plan.name, text, tuple(knot_keys.published)))
        elif online is not None:
            zone = online_zone(plan, faults[plan.name], addresses.online)
            parts.online.append(zone)
            key = online_key(zone, keydir)
            keys[plan.name] = ZoneKeys([key], [], [key])
        else:
            keys[plan.name] = zone_keys(pool, plan, faults[plan.name], index, keydir)
        parts.anchors += anchor_lines(plan, keys[plan.name], faults[plan.name], phantom)
    children: dict[str, list[str]] = {plan.name: [] for plan in scenario.zones}
    children[TLD] = []
    for plan in scenario.zones:
        ds = ds_lines(plan, keys[plan.name], faults[plan.name], phantom)
        children[plan.parent] += delegation(plan.name, addresses.serving(plan), ds)
    for plan in scenario.zones:
        if plan.signing is not None and plan.signing.online is not None:
            continue
        lines = [*header(plan.name, addresses.server(plan.labels)), *plan.records,
                 *children[plan.name]]  # fmt: skip
        window = window_for(faults[plan.name], now)
        parts.jobs.append(Job(plan, lines, keys[plan.name], window, faults[plan.name], scenario.id))
    parts.tld_lines = children[TLD]
    return parts


def _online_text(zone: OnlineZone, zonedir: Path) -> Path:
    """A record of what the online signer serves for *zone* (for fixtures; named ignores it)."""
    path = zonedir / f"{str(zone.origin).rstrip('.')}.online"
    denial = "nsec3" if zone.nsec3 else "nsec"
    records = "\n".join(rrset.to_text() for rrset in zone.data.values())
    path.write_text(f"; online-signed ({denial}, mode {zone.mode}) at {zone.address}\n{records}\n")
    return path


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
    anchors: list[str] = []
    batch = Batch(workdir)
    for scenario in scenarios:
        try:
            parts = _scenario_jobs(scenario, pool, keydir, addresses, now, phantom)
        except (LabError, ValueError, dns.exception.DNSException, OSError) as exc:
            logger.exception("scenario %s not built", scenario.id)
            batch.failed[scenario.id] = f"keys or DS: {exc!r}"[:500]
            continue
        jobs += parts.jobs
        tld_delegations += parts.tld_lines
        anchors += parts.anchors
        batch.online += parts.online
        batch.knot += parts.knot
    jobs = _infrastructure(pool, keydir, addresses, now, tld_delegations) + jobs
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as executor:
        served = list(executor.map(lambda job: _try_build(job, zonedir, batch), jobs))
    for job, path in zip(jobs, served, strict=True):
        batch.zones[job.plan.name] = path
        batch.labels[job.plan.name] = job.plan.labels if job.plan.name != "." else 0
        batch.windows[job.plan.name] = job.window
    root = jobs[0].keys
    assert root is not None
    for zone in batch.online:
        batch.zones[str(zone.origin)] = _online_text(zone, zonedir)
    for knot in batch.knot:
        batch.zones[knot.name] = zonedir / f"{knot.name.rstrip('.')}.knot"
        batch.zones[knot.name].write_text("\n".join(knot.lines) + "\n")
    batch.anchor = workdir / "root.ds"
    root_ds = ds_lines(jobs[0].plan, root, (), phantom)
    batch.anchor.write_text("\n".join([*root_ds, *anchors]) + "\n")
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
