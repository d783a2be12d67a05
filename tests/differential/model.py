"""The vocabulary of a generated scenario: zones, signing, faults and probes (plain data)."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any

import dns.name


class FaultKind(enum.StrEnum):
    """Damage done to one zone of a scenario (issue 12, "What to build")."""

    EXPIRED = "expired"
    """Every signature of the zone expired two days before the build (RFC 4035 5.3.1)."""
    NOT_YET_VALID = "not-yet-valid"
    """Every signature of the zone incepts two days after the build (RFC 4035 5.3.1)."""
    RRSIG_REMOVED = "rrsig-removed"
    """The RRSIGs over one RRset (``target``) removed from the signed zone."""
    RDATA_ALTERED = "rdata-altered"
    """One RRset's rdata (``target``) changed after signing."""
    DS_MISSING = "ds-missing"
    """The parent publishes no DS for the (signed) zone: an insecure delegation."""
    DS_WRONG = "ds-wrong"
    """The parent's DS matches no key of the zone (``variant``: digest or phantom key)."""
    DS_UNKNOWN_DIGEST = "ds-unknown-digest"
    """A DS with an unassigned digest type (``variant``: alone or beside a good DS)."""
    KEY_REVOKED = "key-revoked"
    """A key carries the REVOKE flag (RFC 5011 2.1) (``variant``: ksk or zsk)."""
    KEY_MISSING = "key-missing"
    """The ZSK is absent from the DNSKEY RRset (which the KSK still signs)."""
    NSEC_STRIPPED = "nsec-stripped"
    """The NSEC/NSEC3 covering a name (``target``) removed with its RRSIG."""
    CHAIN_BROKEN = "chain-broken"
    """A name (``target``) deleted after signing: the NSEC/NSEC3 chain still names it."""
    ONLINE_BROKEN = "online-broken"
    """An online-signed zone answers non-existent names with the broken twin of its mode
    (``variant``): a compact NSEC listing the type asked, a white lie missing the name."""
    ANCHOR_MISFIT = "anchor-misfit"
    """The resolver and the auditor hold a trust anchor for the zone besides the root's: a
    SHA-256 DS whose digest is 20 bytes long (issue 12 class 7; it matches no key)."""
    ANCHOR_WRONG = "anchor-wrong"
    """Likewise, a DS of the right length that matches no key of the zone."""
    UNSUPPORTED_ONLY = "unsupported-only"
    """In a zone signed with a second, unsupported algorithm (``Signing.extra_algorithm``),
    one RRset (``target``) keeps only that algorithm's RRSIG: no signature a validator may use,
    while the DS RRset names a supported algorithm (RFC 4035 5.2, RFC 6840 5.11)."""


DS_FAULTS = frozenset({FaultKind.DS_MISSING, FaultKind.DS_WRONG, FaultKind.DS_UNKNOWN_DIGEST})
"""Faults done in the parent zone (its DS RRset for the child)."""
ANCHOR_FAULTS = frozenset({FaultKind.ANCHOR_MISFIT, FaultKind.ANCHOR_WRONG})
"""Faults done in the trust anchor file."""
EXOTIC_FAULTS = ANCHOR_FAULTS | {FaultKind.ONLINE_BROKEN, FaultKind.UNSUPPORTED_ONLY}
"""Faults of the class 5-7 shapes, drawn by their own generator (never by the base draws)."""
KEY_FAULTS = frozenset({FaultKind.KEY_REVOKED, FaultKind.KEY_MISSING})
"""Faults made while signing with BIND's tools (a second signing of the DNSKEY RRset)."""

PYTHON_ALGORITHMS = frozenset({1, 3, 6})
"""RSAMD5 and DSA: BIND 9.18 makes no such keys ("unsupported algorithm"); dnspython signs."""
WEAK_RSA_BITS = 1024
"""RSA moduli below this size are signed with dnspython (dnssec-keygen refuses them)."""


class OnlineMode(enum.StrEnum):
    """How an online-signed zone denies a name (the online signer's shape prefixes)."""

    BLACK_LIES = "bl"
    """RFC 9824 3: NOERROR, NSEC owned by the name, next ``\\000.name``, NXNAME."""
    NXDOMAIN = "nx"
    """RFC 9824 4: the same compact NSEC under NXDOMAIN (as restored for a CO client)."""
    WHITE_LIES = "wl"
    """RFC 4470 minimally covering NSEC records (and RFC 5155 7.2.2 NSEC3 ones)."""
    KNOT = "knot"
    """Knot's mod-onlinesign (3.2): NOERROR, NSEC at the name, next ``\\000.name``, a bitmap of
    every type but the one asked (no NXNAME); served by knotd, NSEC only, no broken twin."""

    @property
    def broken(self) -> str:
        """The online signer's shape of this mode's broken twin (empty: none)."""
        return {"bl": "blbad", "nx": "nxbad", "wl": "wlbad"}.get(self.value, "")


@dataclass(frozen=True, slots=True)
class Fault:
    """One fault applied to one zone."""

    kind: FaultKind
    """What is done."""
    zone: str
    """Absolute name of the damaged zone."""
    target: str = ""
    """``owner TYPE`` of the damaged RRset or the name concerned, when the kind needs one."""
    variant: str = ""
    """Kind-specific detail (see `FaultKind`)."""

    def __str__(self) -> str:
        detail = ",".join(part for part in (self.variant, self.target) if part)
        return f"{self.kind.value}({detail})" if detail else self.kind.value


@dataclass(frozen=True, slots=True)
class Nsec3:
    """NSEC3 parameters (RFC 5155 3.1)."""

    iterations: int
    """Additional hash iterations."""
    salt: str
    """Hex salt, ``-`` for none."""
    opt_out: bool
    """Opt-out flag on every NSEC3 (RFC 5155 6)."""

    def __str__(self) -> str:
        return f"nsec3(it={self.iterations},salt={self.salt}{',optout' if self.opt_out else ''})"


@dataclass(frozen=True, slots=True)
class Signing:
    """How a signed zone is signed."""

    algorithm: int
    """DNSSEC algorithm number (IANA registry)."""
    bits: int | None
    """RSA modulus size; ``None`` for fixed-size algorithms."""
    nsec3: Nsec3 | None
    """NSEC3 parameters, ``None`` for NSEC."""
    ds_digests: tuple[int, ...] = (2,)
    """Digest types of the DS records the parent publishes for the KSK."""
    online: OnlineMode | None = None
    """Served by the online signer (one ECDSA P-256 CSK) in this mode instead of by named."""
    extra_algorithm: int | None = None
    """A second key of this (unsupported) algorithm, named by a DS too, signs every RRset but
    the DNSKEY RRset beside the zone's own ZSK (class 5: not all keys outside the policy)."""

    @property
    def python_signed(self) -> bool:
        """Signed with dnspython (RSAMD5, DSA, RSA under 1024 bits, two algorithms), NSEC."""
        weak = self.bits is not None and self.bits < WEAK_RSA_BITS
        odd = self.algorithm in PYTHON_ALGORITHMS or self.extra_algorithm is not None
        return self.online is None and (odd or weak)

    def __str__(self) -> str:
        denial = str(self.nsec3) if self.nsec3 else "nsec"
        weak = f"-{self.bits}" if self.bits is not None and self.bits < WEAK_RSA_BITS else ""
        extra = f"+{self.extra_algorithm}" if self.extra_algorithm is not None else ""
        online = f"online-{self.online.value}/" if self.online else ""
        return f"{online}alg{self.algorithm}{weak}{extra}/{denial}"


@dataclass(frozen=True, slots=True)
class ZonePlan:
    """One zone of a scenario tree."""

    name: str
    """Absolute zone name."""
    parent: str
    """Absolute name of the zone it is delegated from."""
    signing: Signing | None
    """``None`` for an unsigned zone."""
    records: tuple[str, ...] = ()
    """Zone-file lines ``owner TYPE rdata``, owners relative to the origin."""

    @property
    def labels(self) -> int:
        """Label count without the root label (selects the serving address)."""
        return len(dns.name.from_text(self.name)) - 1

    def shape(self) -> str:
        """Short text: unsigned, or algorithm and denial."""
        return str(self.signing) if self.signing else "unsigned"


class ProbeKind(enum.StrEnum):
    """What a probe's answer is designed to exercise."""

    POSITIVE = "positive"
    NODATA = "nodata"
    NXDOMAIN = "nxdomain"
    WILDCARD = "wildcard"
    WILDCARD_NODATA = "wildcard-nodata"
    ENT = "ent"
    CNAME = "cname"
    DNAME = "dname"
    DNSKEY = "dnskey"
    DS = "ds"
    SOA = "soa"


@dataclass(frozen=True, slots=True)
class Probe:
    """One question the client asks of Unbound."""

    qname: str
    """Absolute name asked."""
    qtype: str
    """Type asked."""
    kind: ProbeKind
    """Shape of the answer."""
    chain: str = ""
    """Kinds of every step of the design's resolution, ``>``-joined (``cname>nodata``)."""
    cd: bool = False
    """Also ask with CD set (after the plain question), to judge the data Unbound passes on."""

    def __str__(self) -> str:
        return f"{self.qname}/{self.qtype}"


@dataclass(frozen=True, slots=True)
class Scenario:
    """One generated zone tree with its faults and the probes asked of it."""

    seed: int
    """Run seed."""
    index: int
    """Scenario number within the run (the generator is seeded with ``seed`` and ``index``)."""
    zones: tuple[ZonePlan, ...]
    """Zones, parents before children; the first is the scenario's top zone."""
    faults: tuple[Fault, ...]
    """Faults applied after signing."""
    probes: tuple[Probe, ...]
    """Questions asked."""
    path_zones: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Probe text -> zones its resolution touches (qname's zone, CNAME/DNAME targets' zones
    and their ancestors inside the scenario), derived from the design."""

    @property
    def id(self) -> str:
        """Scenario label, also the top zone's first label."""
        return f"s{self.index:05d}"

    @property
    def top(self) -> str:
        """The scenario's top zone (delegated from ``test.``)."""
        return self.zones[0].name

    def zone(self, name: str) -> ZonePlan:
        """The plan of zone *name*."""
        return next(zone for zone in self.zones if zone.name == name)

    def faults_on_path(self, probe: Probe) -> tuple[Fault, ...]:
        """Faults in zones the probe's resolution touches."""
        path = set(self.path_zones.get(str(probe), ()))
        return tuple(fault for fault in self.faults if fault.zone in path)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form (the generator parameters of a fixture)."""
        return asdict(self)
