"""The findings catalogue: one table of stable codes, severities, templates and RFC references.

Each family of findings (decode anomalies, validation, forgery, zone health) declares its
specs in its own tuple; ``CATALOGUE`` registers them all in one dict, so a code is defined
exactly once and every message is rendered from its template.

>>> spec = CATALOGUE["fragment_overlap_conflict"]
>>> spec.severity
<Severity.HIGH: 'high'>
>>> spec.render({"src": "192.0.2.1", "dst": "192.0.2.2", "ident": 7})
'IP fragments of datagram 7 from 192.0.2.1 to 192.0.2.2 overlap with different bytes'
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    """How urgent a finding is; filterable in every report."""

    CRITICAL = "critical"
    """Proven forgery or a bogus answer a client accepted."""
    HIGH = "high"
    """Bogus data, a strong forgery signal, or a broken chain of trust."""
    MEDIUM = "medium"
    """Suspicious traffic or a zone misconfiguration that will break validation soon."""
    LOW = "low"
    """Policy or hygiene problems (weak algorithms, NSEC3 parameters, decode damage)."""
    INFO = "info"
    """Facts worth recording (a key rollover in progress, a trust anchor used)."""


@dataclass(frozen=True, slots=True)
class FindingSpec:
    """The definition of one finding code."""

    code: str
    """Stable lowercase snake_case code: a public contract, never renamed."""
    severity: Severity
    """Default severity."""
    title: str
    """Short human title for report headings."""
    template: str
    """``str.format`` template of the message; every field is a required parameter."""
    rfcs: tuple[str, ...]
    """Section-level references, e.g. ``("RFC 4035 5.3.1",)``."""

    @property
    def params(self) -> frozenset[str]:
        """The parameters the template needs."""
        return frozenset(
            field for _, field, _, _ in string.Formatter().parse(self.template) if field
        )

    def render(self, params: Mapping[str, object]) -> str:
        """The message for ``params``; raises KeyError naming a missing parameter."""
        missing = self.params - set(params)
        if missing:
            raise KeyError(f"finding {self.code} needs parameters {sorted(missing)}")
        return self.template.format(**params)


DECODE_FINDINGS: tuple[FindingSpec, ...] = (
    FindingSpec(
        "unsupported_linktype",
        Severity.LOW,
        "Unsupported link type",
        "{capture}: link type {linktype} on {interface} is not decoded",
        (),
    ),
    FindingSpec(
        "fragment_overlap_conflict",
        Severity.HIGH,
        "Conflicting overlapping IP fragments",
        "IP fragments of datagram {ident} from {src} to {dst} overlap with different bytes",
        ("RFC 5722 3", "RFC 5452 4"),
    ),
)
"""Decode-level anomalies (``auditor.anomaly.AnomalyCode``) that deserve a catalogue entry."""


def _register(*families: tuple[FindingSpec, ...]) -> dict[str, FindingSpec]:
    table: dict[str, FindingSpec] = {}
    for family in families:
        for spec in family:
            if spec.code in table:
                raise ValueError(f"finding code {spec.code} is defined twice")
            table[spec.code] = spec
    return table


CATALOGUE: dict[str, FindingSpec] = _register(DECODE_FINDINGS)
"""Every finding code, registered once."""


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where a finding comes from, so anyone can find the packets again."""

    capture: str
    """Capture file name (or interface) of the deciding frame."""
    frames: tuple[int, ...]
    """Frame numbers involved, 1-based, as Wireshark counts."""
    ts_ns: int
    """Capture time of the deciding frame, nanoseconds since the epoch."""
    server: str | None = None
    """Server address (the response's source), when there is one."""
    client: str | None = None
    """Client address (the response's destination), when there is one."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One rendered finding: a catalogue code with its parameters and provenance."""

    code: str
    """Catalogue code."""
    severity: Severity
    """Severity (the catalogue default unless the emitter had reason to change it)."""
    message: str
    """The rendered template."""
    params: Mapping[str, object]
    """The template's parameters plus any extra machine-readable facts."""
    provenance: Provenance
    """Capture, frames, time, server and client."""
    verdict: str | None = None
    """For forgery findings: ``forged`` (proven) or ``suspicious`` (heuristics only)."""


def make_finding(
    code: str,
    params: Mapping[str, object],
    provenance: Provenance,
    *,
    severity: Severity | None = None,
    verdict: str | None = None,
) -> Finding:
    """Render ``code`` from the catalogue; raises KeyError for an unknown code or parameter."""
    spec = CATALOGUE[code]
    return Finding(
        code=code,
        severity=severity or spec.severity,
        message=spec.render(params),
        params=dict(params),
        provenance=provenance,
        verdict=verdict,
    )
