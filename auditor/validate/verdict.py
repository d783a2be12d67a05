"""Validation outcomes in RFC 4033/4035 terms: per-RRset and per-response verdicts."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from auditor.evidence import Section
from auditor.findings.codes import ValidationCode


class Status(StrEnum):
    """RFC 4033 section 5 / RFC 4035 section 4.3 security status."""

    SECURE = "secure"
    """An unbroken chain of signed DNSKEY and DS RRs from a trust anchor validates the data."""
    INSECURE = "insecure"
    """A validated proof shows that no chain exists (no DS at a delegation, or only
    unsupported algorithms/digests)."""
    BOGUS = "bogus"
    """A chain should exist but the proof failed."""
    INDETERMINATE = "indeterminate"
    """Material needed to decide (DNSKEY, DS, anchor) is neither in the capture nor the cache."""


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

    @property
    def status_for_claims(self) -> Status:
        """What the resolver could know when it answered: the capture-time status."""
        return self.claims_status if self.claims_status is not None else self.status
