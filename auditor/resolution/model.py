"""The data the resolution stage hands on: one client answer linked to the upstream exchanges
its resolver made while answering it, and why it failed."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Cause(StrEnum):
    """Why a resolver's answer to a client failed, as far as the capture shows."""

    BOGUS_UPSTREAM = "bogus_upstream"
    """An upstream answer on the resolution path failed validation (RFC 4035 5.5)."""
    DNSKEY_MISSING = "dnskey_missing"
    """A zone on the path answered its DNSKEY query without keys although its parent
    publishes a DS (RFC 4035 5.2)."""
    UPSTREAM_ERROR = "upstream_error"
    """An authoritative server on the path answered SERVFAIL, REFUSED or NOTAUTH."""
    VALIDATOR_INTEROP = "validator_interop"
    """An upstream answer on the path is valid, but has a shape a validating resolver is
    known to reject (the reason names the shape and the resolver), e.g. the RFC 4470
    white lie covering a wildcard behind a CNAME that Unbound refuses."""
    UPSTREAM_TIMEOUT = "upstream_timeout"
    """Queries on the path got no answer before the resolver gave up."""
    CACHED_FAILURE = "cached_failure"
    """Nothing was sent upstream: the resolver answered from cache, and an earlier failure
    on the path explains the cached result."""
    FROM_CACHE = "from_cache"
    """Nothing was sent upstream and no earlier failure on the path is in the capture."""
    UNEXPLAINED = "unexplained"
    """Upstream exchanges were seen but none of them explains the failure."""


@dataclass(frozen=True, slots=True)
class UpstreamAnswer:
    """One upstream exchange named as (part of) the cause of a client's failure."""

    frame: int | None
    """Frame of the upstream answer; None for a query that got no answer."""
    query_frame: int
    """Frame of the resolver's query."""
    ts_ns: int
    """Capture time of the answer (of the query when unanswered)."""
    server: str
    """The authoritative server asked."""
    qname: str
    """The name asked."""
    qtype: str
    """The type asked."""
    zone: str | None
    """The zone at fault, when known."""
    codes: tuple[str, ...]
    """Validation codes of the answer (``no_answer`` for a timeout)."""
    reason: str
    """What is wrong with it, in plain words."""


@dataclass(frozen=True, slots=True)
class EdeCheck:
    """The resolver's Extended DNS Error codes (RFC 8914) held against the capture."""

    ede: tuple[int, ...]
    """The info codes the resolver sent."""
    agrees: bool | None
    """Whether they name what the capture shows; None when the capture shows no cause."""
    text: str
    """The comparison in words."""


@dataclass(frozen=True, slots=True)
class Resolution:
    """A client answer linked to the resolver's upstream exchanges."""

    resolver: str
    """The resolver's address."""
    upstream_frames: tuple[int, ...]
    """Frames of the upstream exchanges made while answering (answers, and queries that got
    none), in capture order."""
    from_cache: bool
    """No upstream query was sent while answering."""
    failed: bool
    """The client answer is a SERVFAIL, bogus, or carries EDE."""
    cause: Cause | None
    """Why it failed; None when it did not."""
    causing: tuple[UpstreamAnswer, ...]
    """The upstream exchanges that explain the failure, most telling first."""
    explanation: str | None
    """The failure in one sentence; None when it did not fail."""
    ede_check: EdeCheck | None
    """The resolver's EDE against the capture; None without EDE."""
