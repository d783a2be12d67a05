"""Resolve a name inside a scenario's design (before faults): answer shape and zones touched."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import dns.name

from tests.differential.model import ProbeKind, ZonePlan

_MAX_STEPS = 10


def _absolute(owner: str, zone: str) -> dns.name.Name:
    return dns.name.from_text(owner, origin=dns.name.from_text(zone))


@dataclass(slots=True)
class Design:
    """The records of every zone of one scenario, by absolute owner name."""

    zones: dict[dns.name.Name, ZonePlan]
    nodes: dict[dns.name.Name, dict[str, str]] = field(default_factory=dict)
    """Owner -> type -> first rdata text."""

    @classmethod
    def of(cls, plans: Iterable[ZonePlan]) -> Design:
        """Index *plans* (delegations themselves are not records here)."""
        design = cls({dns.name.from_text(plan.name): plan for plan in plans})
        for plan in design.zones.values():
            for line in plan.records:
                owner, rdtype, rdata = line.split(None, 2)
                node = design.nodes.setdefault(_absolute(owner, plan.name), {})
                node.setdefault(rdtype, rdata)
        return design

    def zone_of(self, name: dns.name.Name) -> dns.name.Name | None:
        """Deepest scenario zone containing *name*, ``None`` outside the tree."""
        found = [zone for zone in self.zones if name.is_subdomain(zone)]
        return max(found, key=len, default=None)

    def ancestors(self, zone: dns.name.Name) -> list[dns.name.Name]:
        """*zone* and every scenario zone above it."""
        return [other for other in self.zones if zone.is_subdomain(other)]

    def exists(self, name: dns.name.Name) -> bool:
        """A node with data, or an empty non-terminal above one (or a zone apex)."""
        return name in self.zones or any(owner.is_subdomain(name) for owner in self.nodes)

    def _dname_above(self, name: dns.name.Name, zone: dns.name.Name) -> dns.name.Name | None:
        for owner, node in self.nodes.items():
            if "DNAME" in node and name.is_subdomain(owner) and name != owner:
                if owner.is_subdomain(zone):
                    return owner
        return None

    def _closest_encloser(self, name: dns.name.Name, zone: dns.name.Name) -> dns.name.Name:
        candidate = name.parent()
        while candidate != zone and not self.exists(candidate):
            candidate = candidate.parent()
        return candidate


@dataclass(frozen=True, slots=True)
class Resolution:
    """What the design says a question resolves to."""

    kinds: tuple[ProbeKind, ...]
    """Kind of every step (a CNAME or DNAME step, then the final answer)."""
    zones: tuple[str, ...]
    """Every scenario zone the resolution touches, ancestors included."""

    @property
    def chain(self) -> str:
        """``>``-joined kinds."""
        return ">".join(kind.value for kind in self.kinds)


def _step(
    design: Design, name: dns.name.Name, qtype: str, zone: dns.name.Name
) -> tuple[ProbeKind, dns.name.Name | None]:
    """One lookup: the kind of answer, and the next name when it is a CNAME or DNAME step."""
    dname = design._dname_above(name, zone)
    if dname is not None:
        target = dns.name.from_text(design.nodes[dname]["DNAME"])
        return ProbeKind.DNAME, name.relativize(dname).derelativize(target)
    node = design.nodes.get(name)
    if node is not None:
        if "CNAME" in node and qtype != "CNAME":
            return ProbeKind.CNAME, dns.name.from_text(node["CNAME"])
        return (ProbeKind.POSITIVE if qtype in node else ProbeKind.NODATA), None
    if design.exists(name):
        return ProbeKind.ENT, None
    wildcard = dns.name.from_text("*", origin=design._closest_encloser(name, zone))
    wild_node = design.nodes.get(wildcard)
    if wild_node is None:
        return ProbeKind.NXDOMAIN, None
    if "CNAME" in wild_node and qtype != "CNAME":
        return ProbeKind.CNAME, dns.name.from_text(wild_node["CNAME"])
    return (ProbeKind.WILDCARD if qtype in wild_node else ProbeKind.WILDCARD_NODATA), None


def resolve(design: Design, qname: str, qtype: str) -> Resolution:
    """Follow *qname*/*qtype* through the design (CNAME and DNAME steps included)."""
    name: dns.name.Name | None = dns.name.from_text(qname)
    kinds: list[ProbeKind] = []
    touched: list[dns.name.Name] = []
    while name is not None and len(kinds) < _MAX_STEPS:
        zone = design.zone_of(name)
        if zone is None:
            break
        if qtype == "DS" and name in design.zones:
            touched.append(name)  # RFC 4034 5: DS lives in the parent; faults sit on the child
            zone = design.zone_of(name.parent()) or zone
        touched += design.ancestors(zone)
        if qtype in ("DS", "DNSKEY", "SOA") and name in design.zones:
            kinds.append(ProbeKind(qtype.lower()))
            break
        kind, name = _step(design, name, qtype, zone)
        kinds.append(kind)
    return Resolution(tuple(kinds), tuple(dict.fromkeys(z.to_text() for z in touched)))


def empty_non_terminals(design: Design, zone: ZonePlan) -> list[str]:
    """Names in *zone* with no data but data below them (RFC 5155 7.1 ENTs)."""
    origin = dns.name.from_text(zone.name)
    found: set[dns.name.Name] = set()
    for owner in design.nodes:
        if design.zone_of(owner) != origin:
            continue
        candidate = owner.parent()
        while candidate != origin and candidate.is_subdomain(origin):
            if candidate not in design.nodes and "*" not in candidate.labels[0].decode():
                found.add(candidate)
            candidate = candidate.parent()
    return sorted(name.to_text() for name in found)


def owners(design: Design, zone: ZonePlan, types: Sequence[str] = ()) -> list[tuple[str, str]]:
    """(owner, type) pairs of *zone*'s records, optionally restricted to *types*."""
    origin = dns.name.from_text(zone.name)
    return [
        (owner.to_text(), rdtype)
        for owner, node in design.nodes.items()
        if design.zone_of(owner) == origin
        for rdtype in node
        if not types or rdtype in types
    ]
