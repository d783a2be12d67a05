"""Validation outcomes in RFC 4033/4035 terms: per-RRset and per-response verdicts."""

from __future__ import annotations

from dataclasses import dataclass, field

from auditor.evidence import Section
from auditor.findings.codes import Status, ValidationCode

_RANK = {Status.BOGUS: 3, Status.INDETERMINATE: 2, Status.INSECURE: 1, Status.SECURE: 0}


def worst(statuses: list[Status] | tuple[Status, ...]) -> Status:
    """The least secure of ``statuses`` (bogus > indeterminate > insecure > secure)."""
    return max(statuses, key=_RANK.__getitem__, default=Status.SECURE)


@dataclass(frozen=True, slots=True)
class RRsetVerdict:
    """The judgement of one RRset of a response."""

    section: Section
    """Section the RRset was found in."""
    name: str
    """Owner name in presentation format."""
    rdtype: str
    """RR type mnemonic."""
    status: Status
    """Security status of this RRset."""
    signer: str | None
    """Signer (zone) name of the RRSIGs, or None when unsigned."""
    key_tags: tuple[int, ...]
    """Key tags of the RRSIGs present, sorted, de-duplicated."""
    algorithms: tuple[int, ...]
    """Algorithms of the RRSIGs present, sorted, de-duplicated."""
    codes: tuple[ValidationCode, ...]
    """Every reason found, in the order found, de-duplicated."""
    inception: int | None
    """Inception (seconds since the epoch) of the RRSIG that validated, else of the first."""
    expiration: int | None
    """Expiration (seconds since the epoch) of the RRSIG that validated, else of the first."""
    detail: tuple[str, ...]
    """Human-readable explanations, one per problem or fact."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """The judgement of one response."""

    status: Status
    """Status of what the response relies on: the answer chain (CNAME/DNAME hops and the
    final RRset), or for a negative answer its denial."""
    codes: tuple[ValidationCode, ...]
    """Reasons for the status plus response-level observations (AD, SERVFAIL, cache)."""
    zone: str | None
    """Zone (signer) of the final answer RRset, when known."""
    rrsets: tuple[RRsetVerdict, ...]
    """Per-RRset verdicts of all three sections, in message order."""
    missing: tuple[str, ...]
    """Exactly which material was missing, e.g. 'DS for sec.test. not seen'."""
    reference_time_ns: int
    """The time signatures were judged at (capture time of the response or a fixed time)."""
    detail: tuple[str, ...]
    """Human-readable explanations of the response-level status."""
    claims_status: Status | None = None
    """The status at the response's capture time, by which the resolver's own claims (its AD
    bit, its SERVFAIL) are judged when ``--at`` moves the reference time; None: ``status``."""
    valid_ns: tuple[int, int] | None = field(default=None, compare=False, repr=False)
    """The capture times (ns, both ends included) at which the same evidence with the same
    key material gets this verdict again, but for ``reference_time_ns``: the intersection
    of the validity periods of every signature judged at the response's own time
    (``TimeWindow``); ALWAYS when nothing depended on it; None when unknown (never reuse)."""

    @property
    def status_for_claims(self) -> Status:
        """What the resolver could know when it answered: the capture-time status."""
        return self.claims_status if self.claims_status is not None else self.status


_NS = 1_000_000_000
_SERIAL = 1 << 32
_HALF = 1 << 31
_SERIAL_REACH_S = 1 << 30
"""How far from the reference time a window may reach: 32-bit RRSIG times are read as the
absolute time nearest the reference (RFC 4034 3.1.5, RFC 1982), which stays the same reading
within this distance."""
ALWAYS = (-(1 << 63), (1 << 63) - 1)
"""A verdict that depends on no time (``Verdict.valid_ns``)."""


class TimeWindow:
    """Narrowed, while one response is judged, to the capture times that give every check of
    a signature's validity period (RFC 4035 5.3.1) the result it had at ``at_s``."""

    __slots__ = ("at_s", "high_ns", "low_ns")

    def __init__(self, at_s: int | None) -> None:
        self.at_s = at_s
        """The response's capture time (seconds) when it is the reference time; None when a
        fixed time (``--at``) is, so that no validity-period check depends on capture time."""
        self.low_ns, self.high_ns = ALWAYS
        if at_s is not None:
            self.narrow_ns((at_s - _SERIAL_REACH_S) * _NS, (at_s + _SERIAL_REACH_S) * _NS)

    def note_period(self, start: int, end: int, times_s: tuple[int, ...] | list[int],
                    valid: bool) -> None:
        """One check of a validity period: serial times ``start``..``end`` (skew applied),
        at ``times_s``. Only a check at the reference time depends on it; a failed one
        gives a verdict whose text names that second, so it holds for that second alone."""
        at_s = self.at_s
        if at_s is None or at_s not in times_s:
            return
        if not valid:
            self.narrow_ns(at_s * _NS, at_s * _NS + _NS - 1)
            return
        self.narrow_ns(_near(start, at_s) * _NS, _near(end, at_s) * _NS + _NS - 1)

    def narrow_ns(self, low_ns: int, high_ns: int) -> None:
        """Keep only capture times within ``low_ns``..``high_ns``."""
        self.low_ns = max(self.low_ns, low_ns)
        self.high_ns = min(self.high_ns, high_ns)

    def bounds(self) -> tuple[int, int]:
        """(first, last) capture time in ns; first > last when none is left."""
        return self.low_ns, self.high_ns


def _near(serial: int, near_s: int) -> int:
    """The absolute time of 32-bit serial time ``serial`` nearest ``near_s``."""
    return near_s + ((serial - near_s + _HALF) % _SERIAL) - _HALF
