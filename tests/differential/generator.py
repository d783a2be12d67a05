"""Generate seeded, reproducible scenarios: random zone trees, records, probes and faults."""

from __future__ import annotations

import random
from collections.abc import Sequence

import dns.name

from tests.differential.design import Design, empty_non_terminals, owners, resolve
from tests.differential.model import (
    DS_FAULTS,
    EXOTIC_FAULTS,
    KEY_FAULTS,
    Fault,
    FaultKind,
    Nsec3,
    OnlineMode,
    Probe,
    ProbeKind,
    Scenario,
    Signing,
    ZonePlan,
)

TLD = "test."
"""Every scenario's top zone is delegated from this shared, signed zone."""

CHILD_LABELS = ("sub", "k", "zone2", "dept.corp", "inner", "x9")
HOSTS = ("www", "mail", "ftp", "a", "b", "host1", "deep.er", "x.y", "m.n.o")
DATA_TYPES = ("A", "AAAA", "TXT", "MX")
MAX_ZONES = 7

ALGORITHMS: dict[int, float] = {8: 22, 10: 12, 13: 25, 14: 12, 15: 14, 16: 10, 5: 2.5, 7: 2.5}
"""Algorithm -> weight (RSASHA1 and NSEC3RSASHA1 now and then)."""
RSA_ALGORITHMS = frozenset({5, 7, 8, 10})
NSEC3_CAPABLE = frozenset(ALGORITHMS) - {5}  # RFC 5155 2: algorithm 5 predates NSEC3
WINDOW_FAULTS = frozenset({FaultKind.EXPIRED, FaultKind.NOT_YET_VALID})
BASE_FAULTS = tuple(kind for kind in FaultKind if kind not in EXOTIC_FAULTS)
"""Faults any signed zone may draw (in the enum's order: the draws stay reproducible)."""
LOCAL_FAULTS = frozenset(BASE_FAULTS) - DS_FAULTS
"""Faults in the zone's own data, which an online-signed zone does not take."""

POLICY_SHAPES: dict[tuple[int, int | None], float] = {
    (8, 512): 25, (8, 768): 10, (5, 512): 10,
    (3, None): 25, (6, None): 15, (1, 1024): 15,
}  # fmt: skip
"""Class 5 shapes signed with dnspython -> weight: weak RSA keys (validated like any other),
DSA (RFC 8624 3.1: MUST NOT validate) and RSAMD5 (likewise): a zone all of whose keys are
outside the policy."""
MIXED_SHARE = 0.25
"""Share of the class 5 zones signed with ECDSA P-256 and DSA (the DS names both)."""
ONLINE_MODES = {OnlineMode.BLACK_LIES: 35, OnlineMode.NXDOMAIN: 20, OnlineMode.WHITE_LIES: 25,
                OnlineMode.KNOT: 20}  # fmt: skip
EXOTIC_SHARE = (0.12, 0.15, 0.05)
"""Share of scenarios with a class 5 zone, an online-signed zone, a misfit or wrong anchor."""


def _rdata(rng: random.Random, rdtype: str, host: str) -> str:
    match rdtype:
        case "A":
            return f"192.0.2.{rng.randint(1, 254)}"
        case "AAAA":
            return f"2001:db8::{rng.randint(1, 0xFFFF):x}"
        case "TXT":
            return f'"t{rng.randint(0, 9999)}"'
        case _:
            return f"10 {host}"


def _tree(rng: random.Random, top: str) -> list[tuple[str, str]]:
    """(zone, parent) pairs, parents first; depth 1 to 4 zones below ``test.``."""
    levels = rng.choices((1, 2, 3, 4), weights=(25, 35, 25, 15))[0]
    zones, frontier = [(top, TLD)], [top]
    for _ in range(levels - 1):
        grown: list[str] = []
        for parent in frontier:
            for label in rng.sample(CHILD_LABELS, rng.choice((1, 1, 2))):
                if len(zones) < MAX_ZONES:
                    zones.append((f"{label}.{parent}", parent))
                    grown.append(f"{label}.{parent}")
        frontier = grown
    return zones


def _signing(rng: random.Random) -> Signing | None:
    if rng.random() < 0.2:
        return None
    algorithm = rng.choices(list(ALGORITHMS), weights=list(ALGORITHMS.values()))[0]
    bits = rng.choice((1024, 2048)) if algorithm in RSA_ALGORITHMS else None
    nsec3 = None
    if algorithm in NSEC3_CAPABLE and rng.random() < 0.5:
        iterations = rng.choice((0, 0, 0, 1, 10, rng.randint(0, 150), 150))
        salt = "-" if rng.random() < 0.5 else rng.randbytes(rng.randint(1, 8)).hex()
        nsec3 = Nsec3(iterations, salt, rng.random() < 0.3)
    digests = rng.choices(((2,), (4,), (1,), (1, 2)), weights=(75, 10, 5, 10))[0]
    return Signing(algorithm, bits, nsec3, digests)


def _host_records(rng: random.Random) -> list[str]:
    records = [
        f"{host} {rdtype} {_rdata(rng, rdtype, host)}"
        for host in rng.sample(HOSTS, rng.randint(2, 5))
        for rdtype in rng.sample(DATA_TYPES, rng.randint(1, 2))
    ]
    if rng.random() < 0.35:
        wildcard = rng.choice(("*", "*.wild"))
        rdtype = rng.choice(("A", "TXT"))
        records.append(f"{wildcard} {rdtype} {_rdata(rng, rdtype, 'www')}")
    return records


def _alias_target(
    rng: random.Random, design: Design, zones: Sequence[str], cnames: list[str]
) -> str:
    zone = rng.choice(zones)
    plan = design.zones[dns.name.from_text(zone)]
    hosts = [owner for owner, _ in owners(design, plan) if "*" not in owner]
    choice = rng.choices(("host", "nx", "chain", "wild", "apex"), weights=(5, 1, 2, 1, 1))[0]
    if choice == "host" and hosts:
        return rng.choice(hosts)
    if choice == "chain" and cnames:
        return rng.choice(cnames)  # only earlier CNAMEs: no loops
    if choice == "wild":
        return f"w{rng.randint(0, 99)}.wild.{zone}"
    if choice == "apex":
        return zone
    return f"nx{rng.randint(0, 99)}.{zone}"


def _add_aliases(rng: random.Random, plans: list[ZonePlan]) -> list[ZonePlan]:
    """CNAMEs (chains allowed, no loops) and DNAMEs into any zone of the tree."""
    names = [plan.name for plan in plans]
    cnames: list[str] = []
    result = []
    for plan in plans:
        design = Design.of(plans)
        extra = []
        for index in range(rng.choice((0, 0, 1, 2, 3))):
            extra.append(f"cn{index} CNAME {_alias_target(rng, design, names, cnames)}")
            cnames.append(f"cn{index}.{plan.name}")
        if rng.random() < 0.25:
            extra.append(f"dn DNAME {rng.choice(names)}")
        result.append(ZonePlan(plan.name, plan.parent, plan.signing, plan.records + tuple(extra)))
    return result


def _candidates(rng: random.Random, design: Design, plan: ZonePlan) -> list[tuple[str, str]]:
    zone = plan.name
    found = [(zone, "SOA"), (zone, "DNSKEY"), (zone, "DS"), (f"nx{rng.randint(0, 99)}.{zone}", "A")]
    for owner, rdtype in owners(design, plan):
        if "*" in owner:
            found += [(f"w{rng.randint(0, 99)}.{owner[2:]}", rdtype), (f"q.{owner[2:]}", "MX")]
        elif rdtype == "DNAME":
            found.append((f"{rng.choice(('www', 'a', 'nope'))}.{owner}", "A"))
        elif rdtype == "CNAME":
            found += [(owner, rng.choice(("A", "AAAA", "TXT"))), (owner, "A")]
        else:
            found += [(owner, rdtype), (owner, rng.choice(("A", "AAAA", "TXT", "SRV")))]
            found.append((f"nope.{owner}", "A"))
    found += [(ent, "A") for ent in empty_non_terminals(design, plan)]
    return found


def _probes(rng: random.Random, design: Design) -> tuple[list[Probe], dict[str, tuple[str, ...]]]:
    pool = sorted({c for plan in design.zones.values() for c in _candidates(rng, design, plan)})
    chosen = rng.sample(pool, min(len(pool), rng.randint(4, 8)))
    probes, paths = [], {}
    for qname, qtype in chosen:
        resolution = resolve(design, qname, qtype)
        kind = resolution.kinds[0] if resolution.kinds else ProbeKind.NXDOMAIN
        probe = Probe(qname, qtype, kind, resolution.chain, cd=rng.random() < 0.15)
        probes.append(probe)
        paths[str(probe)] = resolution.zones
    return probes, paths


def _target(
    rng: random.Random, kind: FaultKind, plan: ZonePlan, design: Design, probes: Sequence[Probe]
) -> str:
    zone = dns.name.from_text(plan.name)
    mine = [p for p in probes if design.zone_of(dns.name.from_text(p.qname)) == zone]
    if kind is FaultKind.RRSIG_REMOVED or kind is FaultKind.RDATA_ALTERED:
        types = ("A", "AAAA", "TXT", "MX") if kind is FaultKind.RDATA_ALTERED else ()
        sets = [f"{o} {t}" for o, t in owners(design, plan, types) if "*" not in o]
        probed = [f"{p.qname} {p.qtype}" for p in mine if f"{p.qname} {p.qtype}" in sets]
        if kind is FaultKind.RRSIG_REMOVED:
            sets += [f"{plan.name} DNSKEY", f"{plan.name} SOA"]
        return rng.choice(probed if probed and rng.random() < 0.7 else sets)
    if kind is FaultKind.NSEC_STRIPPED:
        denied = [
            p.qname
            for p in mine
            if p.kind in (ProbeKind.NXDOMAIN, ProbeKind.NODATA, ProbeKind.WILDCARD, ProbeKind.ENT)
        ]
        return rng.choice(denied) if denied else f"nx{rng.randint(0, 99)}.{plan.name}"
    if kind is FaultKind.CHAIN_BROKEN:
        hosts = sorted({o for o, _ in owners(design, plan) if "*" not in o})
        probed = [p.qname for p in mine if p.qname in hosts]
        return rng.choice(probed or hosts)
    return ""


def _variant(rng: random.Random, kind: FaultKind) -> str:
    match kind:
        case FaultKind.DS_WRONG:
            return rng.choice(("digest", "phantom"))
        case FaultKind.DS_UNKNOWN_DIGEST:
            return rng.choice(("alone", "beside-good"))
        case FaultKind.KEY_REVOKED:
            return rng.choice(("ksk", "zsk"))
        case _:
            return ""


def _compatible(kind: FaultKind, zone: str, faults: Sequence[Fault]) -> bool:
    same = [fault.kind for fault in faults if fault.zone == zone]
    if kind in same:
        return False
    if kind in WINDOW_FAULTS and WINDOW_FAULTS & set(same):
        return False
    return not (kind in DS_FAULTS and DS_FAULTS & set(same))


def _faults(rng: random.Random, design: Design, probes: Sequence[Probe]) -> list[Fault]:
    faults: list[Fault] = []
    plans = list(design.zones.values())
    for _ in range(rng.choices((0, 1, 2), weights=(20, 50, 30))[0]):
        plan = rng.choice(plans)
        kinds = list(BASE_FAULTS) if plan.signing else [FaultKind.DS_WRONG]
        if plan.signing and plan.signing.nsec3 is None:
            kinds.remove(FaultKind.NSEC_STRIPPED) if rng.random() < 0.3 else None
        kinds = [k for k in kinds if _compatible(k, plan.name, faults)]
        if not kinds:
            continue
        kind = rng.choice(kinds)
        variant = (
            "phantom" if kind is FaultKind.DS_WRONG and not plan.signing else _variant(rng, kind)
        )
        faults.append(Fault(kind, plan.name, _target(rng, kind, plan, design, probes), variant))
    return faults


def _replace_signing(plans: list[ZonePlan], name: str, signing: Signing) -> list[ZonePlan]:
    return [
        ZonePlan(plan.name, plan.parent, signing, plan.records) if plan.name == name else plan
        for plan in plans
    ]


def _policy_zone(
    rng: random.Random, design: Design, probes: Sequence[Probe], faults: list[Fault]
) -> tuple[list[ZonePlan], list[Fault]]:
    """One signed zone re-signed with dnspython in a class 5 shape (NSEC; no key faults): a
    weak or unsupported algorithm, or now and then ECDSA plus DSA, one RRset signed by DSA
    alone in half of those."""
    plans = list(design.zones.values())
    keyed = {fault.zone for fault in faults if fault.kind in KEY_FAULTS}
    eligible = [plan for plan in plans if plan.signing and plan.name not in keyed]
    if not eligible:
        return plans, faults
    plan = rng.choice(eligible)
    assert plan.signing is not None
    algorithm, bits = rng.choices(list(POLICY_SHAPES), weights=list(POLICY_SHAPES.values()))[0]
    signing = Signing(algorithm, bits, None, plan.signing.ds_digests)
    if rng.random() < MIXED_SHARE:
        signing = Signing(13, None, None, plan.signing.ds_digests, extra_algorithm=3)
        if rng.random() < 0.5:
            target = _target(rng, FaultKind.RDATA_ALTERED, plan, design, probes)
            faults = [*faults, Fault(FaultKind.UNSUPPORTED_ONLY, plan.name, target)]
    return _replace_signing(plans, plan.name, signing), faults


def _online_eligible(plan: ZonePlan, plans: list[ZonePlan]) -> bool:
    """A signed leaf zone without DNAMEs (the online signer makes none; it expands
    wildcards)."""
    leaf = not any(other.parent == plan.name for other in plans)
    plain = not any(" DNAME " in line for line in plan.records)
    signed = plan.signing is not None and not plan.signing.python_signed
    return signed and leaf and plain


def _online_zone(
    rng: random.Random, plans: list[ZonePlan], faults: list[Fault]
) -> tuple[list[ZonePlan], list[Fault]]:
    """One leaf zone served by the online signer (class 6), its broken twin now and then; the
    faults of its own data are dropped (the parent's DS faults stay)."""
    eligible = [plan for plan in plans if _online_eligible(plan, plans)]
    if not eligible:
        return plans, faults
    plan = rng.choice(eligible)
    assert plan.signing is not None
    faults = [f for f in faults if f.zone != plan.name or f.kind not in LOCAL_FAULTS]
    nsec3 = Nsec3(0, "-", False) if plan.signing.nsec3 and rng.random() < 0.5 else None
    mode = (OnlineMode.WHITE_LIES if nsec3 else
            rng.choices(list(ONLINE_MODES), weights=list(ONLINE_MODES.values()))[0])  # fmt: skip
    signing = Signing(13, None, nsec3, plan.signing.ds_digests, online=mode)
    if mode.broken and rng.random() < 0.4:
        faults = [*faults, Fault(FaultKind.ONLINE_BROKEN, plan.name, variant=mode.broken)]
    return _replace_signing(plans, plan.name, signing), faults


def _anchor_fault(rng: random.Random, plans: list[ZonePlan]) -> Fault:
    """A misfit or wrong trust anchor for one zone of the tree (class 7)."""
    kind = rng.choice((FaultKind.ANCHOR_MISFIT, FaultKind.ANCHOR_WRONG))
    return Fault(kind, rng.choice(plans).name)


def _exotic(
    seed: int, index: int, design: Design, probes: Sequence[Probe], faults: list[Fault]
) -> tuple[list[ZonePlan], list[Fault]]:
    """Class 5, 6 and 7 shapes, drawn from a generator of their own so every other draw of
    the scenario stays as it was before they existed."""
    rng = random.Random(f"differential-exotic:{seed}:{index}")
    policy, online, anchor = (rng.random() < share for share in EXOTIC_SHARE)
    plans = list(design.zones.values())
    if policy:
        plans, faults = _policy_zone(rng, design, probes, faults)
    if online:
        plans, faults = _online_zone(rng, plans, faults)
    if anchor:
        faults = [*faults, _anchor_fault(rng, plans)]
    return plans, faults


def generate(seed: int, index: int) -> Scenario:
    """Scenario *index* of the run seeded *seed* (independent of every other index)."""
    rng = random.Random(f"differential:{seed}:{index}")
    top = f"s{index:05d}.{TLD}"
    plans = [
        ZonePlan(zone, parent, _signing(rng), tuple(_host_records(rng)))
        for zone, parent in _tree(rng, top)
    ]
    plans = _add_aliases(rng, plans)
    design = Design.of(plans)
    probes, paths = _probes(rng, design)
    faults = _faults(rng, design, probes)
    plans, faults = _exotic(seed, index, design, probes, faults)
    return Scenario(seed, index, tuple(plans), tuple(faults), tuple(probes), paths)
