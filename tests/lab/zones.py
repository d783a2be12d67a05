"""Describe, write and sign the lab's private DNS hierarchy (root, test., and leaf zones)."""

from __future__ import annotations

import enum
import logging
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.dsbase
import dns.rrset
import dns.zone

from tests.lab.keys import KeySpec, LabKey, corrupt_ds, make_ds, make_key
from tests.lab.tools import run

logger = logging.getLogger(__name__)

DAY = 86400


class Expectation(enum.StrEnum):
    """What a validating resolver must conclude for a zone's probe name (RFC 4035 4.3)."""

    SECURE = "secure"
    INSECURE = "insecure"
    BOGUS = "bogus"


class Validity(enum.StrEnum):
    """Where the signature validity window sits relative to the build time."""

    CURRENT = "current"
    EXPIRED = "expired"
    FUTURE = "future"


class DsMode(enum.StrEnum):
    """What the parent publishes as DS for a zone."""

    MATCHING = "matching"
    """DS over the zone's KSK(s)."""
    CORRUPT_DIGEST = "corrupt-digest"
    """Right key tag and algorithm, digest matching no key."""
    PHANTOM_KEY = "phantom-key"
    """DS over a key the child never publishes."""
    ABSENT = "absent"
    """No DS: the delegation is provably insecure."""


class Mutation(enum.StrEnum):
    """Damage done to the zone file after signing."""

    NONE = "none"
    STRIP_RRSIGS = "strip-rrsigs"
    ALTER_RDATA = "alter-rdata"
    DELETE_NAME = "delete-name"
    """Remove the probe name's node (its data, RRSIGs and NSEC): the NSEC chain still
    points at it, so its NXDOMAIN proof fails (RFC 4035 5.4)."""


class Role(enum.StrEnum):
    """Which authoritative address serves a zone."""

    ROOT = "root"
    TLD = "tld"
    LEAF = "leaf"


@dataclass(frozen=True, slots=True)
class Nsec3Spec:
    """NSEC3 parameters (RFC 5155 3.1; RFC 9276 recommends no salt, 0 iterations)."""

    salt: str = "-"
    """Hex salt, ``-`` for none."""
    iterations: int = 0
    """Additional hash iterations."""
    opt_out: bool = False
    """Set the opt-out flag so unsigned delegations are skipped."""


def _ksk_zsk(algorithm: str, bits: int | None = None) -> tuple[KeySpec, ...]:
    return (KeySpec(algorithm, bits, ksk=True), KeySpec(algorithm, bits, ksk=False))


DEFAULT_WWW: tuple[str, ...] = ("A 192.0.2.1", "AAAA 2001:db8::1")


@dataclass(frozen=True, slots=True)
class ZoneSpec:
    """Design of one lab zone."""

    name: str
    """Absolute zone name, e.g. ``sec.test.``."""
    keys: tuple[KeySpec, ...]
    """Keys published and used for signing; empty for an unsigned zone."""
    expectation: Expectation
    """Verdict a validator must reach for ``probe`` / ``probe_type``."""
    description: str
    """One line saying what the zone demonstrates."""
    role: Role = Role.LEAF
    """Which server address serves it."""
    ds_mode: DsMode = DsMode.MATCHING
    """What the parent publishes as DS."""
    ds_digest: int = 2
    """DS digest type (RFC 4509 SHA-256 = 2, RFC 6605 SHA-384 = 4)."""
    validity: Validity = Validity.CURRENT
    """Position of the signature validity window."""
    mutation: Mutation = Mutation.NONE
    """Damage done after signing."""
    nsec3: Nsec3Spec | None = None
    """NSEC3 parameters, ``None`` for NSEC."""
    www: tuple[str, ...] = DEFAULT_WWW
    """Records (``TYPE rdata``) at ``www.<zone>``."""
    extra: tuple[str, ...] = ()
    """Further zone-file lines, relative to the origin."""
    probe_type: str = "A"
    """Type queried at ``www.<zone>`` to check the expectation."""

    @property
    def probe(self) -> str:
        """Name whose answer carries the zone's expectation."""
        return f"www.{self.name}"

    @property
    def signed(self) -> bool:
        """Whether the zone is signed at all."""
        return bool(self.keys)


P256 = "ECDSAP256SHA256"

ROOT = ZoneSpec(
    ".", _ksk_zsk("RSASHA256", 2048), Expectation.SECURE, "private root", role=Role.ROOT
)
TLD = ZoneSpec("test.", _ksk_zsk(P256), Expectation.SECURE, "private TLD", role=Role.TLD)

LEAF_ZONES: tuple[ZoneSpec, ...] = (
    ZoneSpec(
        "sec.test.",
        _ksk_zsk("RSASHA256", 2048),
        Expectation.SECURE,
        "RSASHA256 (8), NSEC, wildcard *.wild.sec.test.",
        extra=("*.wild A 192.0.2.53", "mail MX 10 www"),
    ),
    ZoneSpec("ecdsa.test.", _ksk_zsk(P256), Expectation.SECURE, "ECDSAP256SHA256 (13)"),
    ZoneSpec("ed.test.", _ksk_zsk("ED25519"), Expectation.SECURE, "ED25519 (15)"),
    ZoneSpec("ed448.test.", _ksk_zsk("ED448"), Expectation.SECURE, "ED448 (16)"),
    ZoneSpec(
        "p384.test.",
        _ksk_zsk("ECDSAP384SHA384"),
        Expectation.SECURE,
        "ECDSAP384SHA384 (14), DS digest SHA-384 (4)",
        ds_digest=4,
    ),
    ZoneSpec(
        "expired.test.",
        _ksk_zsk(P256),
        Expectation.BOGUS,
        "all signatures expired 2 days before the build",
        validity=Validity.EXPIRED,
    ),
    ZoneSpec(
        "future.test.",
        _ksk_zsk(P256),
        Expectation.BOGUS,
        "all signatures incepted 2 days after the build",
        validity=Validity.FUTURE,
    ),
    ZoneSpec(
        "badds.test.",
        _ksk_zsk(P256),
        Expectation.BOGUS,
        "parent DS has the KSK's tag and algorithm but a wrong digest",
        ds_mode=DsMode.CORRUPT_DIGEST,
    ),
    ZoneSpec(
        "stripped.test.",
        _ksk_zsk(P256),
        Expectation.BOGUS,
        "signed, DS in parent, but every RRSIG removed from the served zone",
        mutation=Mutation.STRIP_RRSIGS,
    ),
    ZoneSpec(
        "altered.test.",
        _ksk_zsk(P256),
        Expectation.BOGUS,
        "www A rdata changed from 192.0.2.1 to 192.0.2.66 after signing",
        mutation=Mutation.ALTER_RDATA,
    ),
    ZoneSpec(
        "unsigned.test.",
        (),
        Expectation.BOGUS,
        "unsigned zone whose parent publishes a DS (over a key never published)",
        ds_mode=DsMode.PHANTOM_KEY,
    ),
    ZoneSpec(
        "insecure.test.",
        (),
        Expectation.INSECURE,
        "unsigned zone, no DS in parent (NSEC-proven insecure delegation)",
        ds_mode=DsMode.ABSENT,
    ),
    ZoneSpec(
        "cname.test.",
        _ksk_zsk(P256),
        Expectation.SECURE,
        "www.cname.test. CNAME www.sec.test.",
        www=("CNAME www.sec.test.",),
    ),
    ZoneSpec(
        "nsec3.test.",
        _ksk_zsk(P256),
        Expectation.SECURE,
        "NSEC3, salt ab12cd34, 0 iterations",
        nsec3=Nsec3Spec(salt="ab12cd34"),
        extra=("a TXT a", "b TXT b", "c TXT c"),
    ),
    ZoneSpec(
        "optout.test.",
        _ksk_zsk(P256),
        Expectation.SECURE,
        "NSEC3 opt-out, no salt, two unsigned delegations",
        nsec3=Nsec3Spec(opt_out=True),
        extra=(
            "deleg1 NS ns1.insecure.test.",
            "deleg2 NS ns1.insecure.test.",
        ),
    ),
    ZoneSpec(
        "child.optout.test.",
        (),
        Expectation.INSECURE,
        "unsigned zone delegated from optout.test. without DS, skipped by its opt-out "
        "NSEC3 chain (NSEC3-opt-out-proven insecure delegation); served from the TLD "
        "address so the leaf answers with a referral",
        role=Role.TLD,
        ds_mode=DsMode.ABSENT,
    ),
    ZoneSpec(
        "brokennsec.test.",
        _ksk_zsk(P256),
        Expectation.BOGUS,
        "NSEC zone whose www node was deleted after signing: the chain still names it, "
        "so the NXDOMAIN for www has no valid proof",
        mutation=Mutation.DELETE_NAME,
    ),
    ZoneSpec(
        "big.test.",
        (
            KeySpec("RSASHA256", 4096, ksk=True),
            KeySpec("RSASHA256", 4096, ksk=True),
            KeySpec("RSASHA256", 4096, ksk=False),
        ),
        Expectation.SECURE,
        "three 4096-bit RSA keys: signed DNSKEY answer over 3 KB (TC over UDP, then TCP)",
    ),
)
"""Every zone below ``test.``, each delegated from the deepest lab zone above it and served
from its role's address (the leaf address unless said otherwise)."""

ALL_ZONES: tuple[ZoneSpec, ...] = (ROOT, TLD, *LEAF_ZONES)


@dataclass(frozen=True, slots=True)
class SigningWindow:
    """RRSIG inception and expiration (RFC 4034 3.1.5), seconds since the epoch."""

    inception: int
    """Signature inception."""
    expiration: int
    """Signature expiration."""

    def contains(self, when: float) -> bool:
        """Whether *when* lies inside the window."""
        return self.inception <= when <= self.expiration


def signing_window(validity: Validity, now: int) -> SigningWindow:
    """Return the window a zone of the given validity gets when built at *now*."""
    match validity:
        case Validity.CURRENT:
            return SigningWindow(now - 3600, now + 30 * DAY)
        case Validity.EXPIRED:
            return SigningWindow(now - 30 * DAY, now - 2 * DAY)
        case Validity.FUTURE:
            return SigningWindow(now + 2 * DAY, now + 30 * DAY)


@dataclass(frozen=True, slots=True)
class BuiltZone:
    """A zone as written to disk for the servers."""

    spec: ZoneSpec
    """The design it was built from."""
    server: str
    """IPv4 address of the authoritative server for the zone."""
    zone_file: Path
    """File served by named (signed and possibly mutated)."""
    window: SigningWindow | None
    """Signature validity window, ``None`` if unsigned."""
    keys: tuple[LabKey, ...]
    """Keys published in the zone."""
    ds: tuple[str, ...]
    """DS records published by the parent, as zone-file text."""

    @property
    def name(self) -> str:
        """Absolute zone name."""
        return self.spec.name

    @property
    def key_tags(self) -> tuple[int, ...]:
        """Key tags of the published keys."""
        return tuple(key.key_tag for key in self.keys)


@dataclass(frozen=True, slots=True)
class ServerAddresses:
    """IPv4 addresses of the three authoritative roles."""

    root: str
    """Serves the root zone."""
    tld: str
    """Serves ``test.``."""
    leaf: str
    """Serves every leaf zone."""

    def for_role(self, role: Role) -> str:
        """Address serving zones of *role*."""
        match role:
            case Role.ROOT:
                return self.root
            case Role.TLD:
                return self.tld
            case Role.LEAF:
                return self.leaf


@dataclass(slots=True)
class _Material:
    keys: dict[str, list[LabKey]] = field(default_factory=dict)
    ds: dict[str, list[str]] = field(default_factory=dict)


def _generate_keys(
    specs: Sequence[ZoneSpec], keydir: Path, cache: Path | None
) -> dict[str, list[LabKey]]:
    jobs: list[tuple[str, KeySpec, int]] = []
    for spec in specs:
        jobs += [(spec.name, key, index) for index, key in enumerate(spec.keys)]
        if spec.ds_mode is DsMode.PHANTOM_KEY:
            jobs.append((spec.name, KeySpec(P256, ksk=True), 99))
    # Slow RSA-4096 generation first so the pool overlaps it with the rest.
    jobs.sort(key=lambda job: -(job[1].bits or 0))
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        made = list(
            pool.map(lambda job: make_key(job[0], job[1], keydir, index=job[2], cache=cache), jobs)
        )
    keys: dict[str, list[LabKey]] = {spec.name: [] for spec in specs}
    phantoms: dict[str, LabKey] = {}
    for (zone, _spec, index), key in zip(jobs, made, strict=True):
        if index == 99:
            phantoms[zone] = key
        else:
            keys[zone].append(key)
    for zone, key in phantoms.items():
        keys[f"phantom:{zone}"] = [key]
    return keys


def _ds_records(spec: ZoneSpec, keys: Mapping[str, list[LabKey]]) -> list[str]:
    match spec.ds_mode:
        case DsMode.ABSENT:
            return []
        case DsMode.PHANTOM_KEY:
            rdatas = [
                make_ds(spec.name, key, spec.ds_digest) for key in keys[f"phantom:{spec.name}"]
            ]
        case DsMode.CORRUPT_DIGEST:
            rdatas = [
                corrupt_ds(make_ds(spec.name, key, spec.ds_digest))
                for key in keys[spec.name]
                if key.ksk
            ]
        case DsMode.MATCHING:
            rdatas = [make_ds(spec.name, key, spec.ds_digest) for key in keys[spec.name] if key.ksk]
    return [f"{spec.name} 300 IN DS {rdata.to_text()}" for rdata in rdatas]


def _soa_and_ns(zone: str, ns_name: str, ttl: int) -> list[str]:
    return [
        f"$ORIGIN {zone}",
        f"$TTL {ttl}",
        f"@ IN SOA {ns_name} hostmaster.{zone if zone != '.' else ''} 1 3600 900 604800 300",
        f"@ IN NS {ns_name}",
    ]


def _root_text(addresses: ServerAddresses, test_ds: Sequence[str]) -> list[str]:
    return [
        *_soa_and_ns(".", "a.root.test.", 86400),
        "test. IN NS ns1.test.",
        *test_ds,
        f"a.root.test. IN A {addresses.root}",
        f"ns1.test. IN A {addresses.tld}",
    ]


def _delegation(child: ZoneSpec, addresses: ServerAddresses, ds_lines: Sequence[str]) -> list[str]:
    """NS, glue and DS for *child*, as written in its parent's zone file."""
    glue = addresses.for_role(child.role)
    return [f"{child.name} IN NS ns1.{child.name}", f"ns1.{child.name} IN A {glue}", *ds_lines]


def _tld_text(addresses: ServerAddresses, delegations: Sequence[str]) -> list[str]:
    return [
        *_soa_and_ns("test.", "ns1.test.", 3600),
        f"ns1 IN A {addresses.tld}",
        f"a.root IN A {addresses.root}",
        *delegations,
    ]


def _parent_of(spec: ZoneSpec, leaves: Sequence[ZoneSpec]) -> str:
    """Name of the deepest lab zone above *spec* (``test.`` unless a leaf encloses it)."""
    name = dns.name.from_text(spec.name)
    enclosing = [
        leaf.name
        for leaf in leaves
        if leaf.name != spec.name and name.is_subdomain(dns.name.from_text(leaf.name))
    ]
    return max(enclosing, key=lambda zone: len(dns.name.from_text(zone)), default=TLD.name)


def _zone_texts(
    leaves: Sequence[ZoneSpec], addresses: ServerAddresses, ds: Mapping[str, list[str]]
) -> dict[str, list[str]]:
    """Zone-file lines of every zone, each delegation written into its parent."""
    delegations: dict[str, list[str]] = {TLD.name: [], **{leaf.name: [] for leaf in leaves}}
    for leaf in leaves:
        delegations[_parent_of(leaf, leaves)] += _delegation(leaf, addresses, ds[leaf.name])
    return {
        ROOT.name: _root_text(addresses, ds[TLD.name]),
        TLD.name: _tld_text(addresses, delegations[TLD.name]),
        **{leaf.name: _leaf_text(leaf, addresses) + delegations[leaf.name] for leaf in leaves},
    }


def _leaf_text(spec: ZoneSpec, addresses: ServerAddresses) -> list[str]:
    return [
        *_soa_and_ns(spec.name, f"ns1.{spec.name}", 300),
        f"ns1 IN A {addresses.leaf}",
        f'@ IN TXT "{spec.description}"',
        *(f"www IN {record}" for record in spec.www),
        *spec.extra,
    ]


def _with_dnskeys(lines: list[str], spec: ZoneSpec, keys: Sequence[LabKey]) -> list[str]:
    return lines + [f"{spec.name} 300 IN DNSKEY {key.dnskey.to_text()}" for key in keys]


def _sign(spec: ZoneSpec, unsigned: Path, keys: Sequence[LabKey], window: SigningWindow) -> Path:
    signed = unsigned.with_suffix(".signed")
    argv = [
        "dnssec-signzone",
        "-q",
        "-o", spec.name,
        "-f", str(signed),
        "-s", str(window.inception),
        "-e", str(window.expiration),
        "-N", "keep",
        "-d", str(unsigned.parent),  # dsset-* files go here, not into the cwd
        "-n", "1",
    ]  # fmt: skip
    if spec.validity is not Validity.CURRENT:
        argv.append("-P")  # post-sign verification rejects out-of-window signatures
    if spec.nsec3 is not None:
        argv += ["-3", spec.nsec3.salt, "-H", str(spec.nsec3.iterations)]
        if spec.nsec3.opt_out:
            argv.append("-A")
    run([*argv, str(unsigned), *(str(key.base) for key in keys)], timeout=120)
    return signed


def _mutate(spec: ZoneSpec, signed: Path) -> Path:
    if spec.mutation is Mutation.NONE:
        return signed
    zone = dns.zone.from_file(str(signed), origin=spec.name, relativize=False)
    match spec.mutation:
        case Mutation.STRIP_RRSIGS:
            for node in zone.nodes.values():
                for rdataset in list(node.rdatasets):
                    if rdataset.rdtype == dns.rdatatype.RRSIG:
                        node.delete_rdataset(rdataset.rdclass, rdataset.rdtype, rdataset.covers)
        case Mutation.ALTER_RDATA:
            www = zone.find_rdataset(dns.name.from_text(spec.probe), dns.rdatatype.A)
            rdata = www[0]
            www.clear()
            www.add(rdata.replace(address="192.0.2.66"))
        case Mutation.DELETE_NAME:
            zone.delete_node(dns.name.from_text(spec.probe))
    mutated = signed.with_suffix(".mutated")
    zone.to_file(str(mutated), relativize=False)
    return mutated


def _build_one(
    spec: ZoneSpec,
    lines: list[str],
    material: _Material,
    zonedir: Path,
    addresses: ServerAddresses,
    now: int,
) -> BuiltZone:
    slug = spec.name.rstrip(".") or "root"
    keys = material.keys.get(spec.name, [])
    unsigned = zonedir / f"{slug}.db"
    unsigned.write_text("\n".join(_with_dnskeys(lines, spec, keys)) + "\n")
    window = signing_window(spec.validity, now) if spec.signed else None
    served = unsigned
    if window is not None:
        served = _mutate(spec, _sign(spec, unsigned, keys, window))
    return BuiltZone(
        spec=spec,
        server=addresses.for_role(spec.role),
        zone_file=served,
        window=window,
        keys=tuple(keys),
        ds=tuple(material.ds.get(spec.name, [])),
    )


def build_zones(
    workdir: Path,
    addresses: ServerAddresses,
    *,
    now: int,
    key_cache: Path | None = None,
    leaves: Sequence[ZoneSpec] = LEAF_ZONES,
) -> dict[str, BuiltZone]:
    """Generate keys, write and sign every zone under *workdir*; return them by name.

    Signature windows are placed relative to *now* (seconds since the epoch).
    """
    keydir = workdir / "keys"
    zonedir = workdir / "zones"
    keydir.mkdir(parents=True, exist_ok=True)
    zonedir.mkdir(parents=True, exist_ok=True)
    specs = (ROOT, TLD, *leaves)
    material = _Material(keys=_generate_keys(specs, keydir, key_cache))
    material.ds = {spec.name: _ds_records(spec, material.keys) for spec in specs}
    texts = _zone_texts(leaves, addresses, material.ds)
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        built = list(
            pool.map(
                lambda spec: _build_one(spec, texts[spec.name], material, zonedir, addresses, now),
                specs,
            )
        )
    return {zone.name: zone for zone in built}


def zone_for(name: str, zones: Mapping[str, BuiltZone]) -> BuiltZone:
    """Return the deepest lab zone that contains *name*."""
    qname = dns.name.from_text(name)
    best = max(
        (zone for zone in zones.values() if qname.is_subdomain(dns.name.from_text(zone.name))),
        key=lambda zone: len(dns.name.from_text(zone.name)),
    )
    return best


def ds_rdatas(zone: BuiltZone) -> list[dns.rdtypes.dsbase.DSBase]:
    """Parse the zone's parent-side DS records."""
    result: list[dns.rdtypes.dsbase.DSBase] = []
    for line in zone.ds:
        name, ttl, _cls, _type, rdata = line.split(None, 4)
        rrset = dns.rrset.from_text(name, int(ttl), "IN", "DS", rdata)
        result += [rd for rd in rrset if isinstance(rd, dns.rdtypes.dsbase.DSBase)]
    return result
