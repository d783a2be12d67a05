"""Plain words for upstream failures and for the resolver's Extended DNS Errors (RFC 8914)."""

from __future__ import annotations

from datetime import UTC, datetime

from auditor.findings.codes import ValidationCode as C
from auditor.findings.words import plain
from auditor.resolution.model import Cause
from auditor.validate import RRsetVerdict, Status, Verdict

_GENERIC = frozenset({C.DNSSEC_BOGUS.value, C.DNSSEC_INDETERMINATE.value})

EDE_NAMES: dict[int, str] = {
    0: "Other Error", 1: "Unsupported DNSKEY Algorithm", 2: "Unsupported DS Digest Type",
    3: "Stale Answer", 4: "Forged Answer", 5: "DNSSEC Indeterminate", 6: "DNSSEC Bogus",
    7: "Signature Expired", 8: "Signature Not Yet Valid", 9: "DNSKEY Missing",
    10: "RRSIGs Missing", 11: "No Zone Key Bit Set", 12: "NSEC Missing", 13: "Cached Error",
    14: "Not Ready", 15: "Blocked", 16: "Censored", 17: "Filtered", 18: "Prohibited",
    19: "Stale NXDOMAIN Answer", 20: "Not Authoritative", 21: "Not Supported",
    22: "No Reachable Authority", 23: "Network Error", 24: "Invalid Data",
}
"""RFC 8914 section 4 info-code names (IANA "Extended DNS Error Codes")."""

_BOGUS = frozenset({Cause.BOGUS_UPSTREAM, Cause.DNSKEY_MISSING})
_UNREACHABLE = frozenset({Cause.UPSTREAM_TIMEOUT, Cause.UPSTREAM_ERROR})
_DS_KEYS = frozenset({C.DS_MISMATCH, C.DNSKEY_MISSING, C.NO_ZONE_KEY_BIT})

EDE_MEANS: dict[int, tuple[frozenset[Cause], frozenset[str]]] = {
    1: (_BOGUS, frozenset({C.UNSUPPORTED_DNSKEY_ALGORITHM})),  # RFC 8914 4.2
    2: (_BOGUS, frozenset({C.UNSUPPORTED_DS_DIGEST})),  # RFC 8914 4.3
    # RFC 8914 4.7: any validation failure (the resolver's, for an interoperability shape)
    6: (_BOGUS | {Cause.VALIDATOR_INTEROP}, frozenset()),
    7: (_BOGUS, frozenset({C.SIGNATURE_EXPIRED})),  # RFC 8914 4.8
    8: (_BOGUS, frozenset({C.SIGNATURE_NOT_YET_VALID})),  # RFC 8914 4.9
    # RFC 8914 4.10: no DNSKEY matching the DS (Unbound also sends it for a DS mismatch)
    9: (_BOGUS, _DS_KEYS),
    10: (_BOGUS, frozenset({C.RRSIGS_MISSING, C.DNSKEY_MISSING})),  # RFC 8914 4.11
    11: (_BOGUS, frozenset({C.NO_ZONE_KEY_BIT})),  # RFC 8914 4.12
    12: (_BOGUS, frozenset({C.NSEC_MISSING, C.DENIAL_NO_COVER, C.DENIAL_NAME_EXISTS,
                            C.DENIAL_NO_MATCH, C.DENIAL_NO_CLOSEST_ENCLOSER})),  # 4.13
    22: (_UNREACHABLE, frozenset()),  # RFC 8914 4.23
    23: (_UNREACHABLE, frozenset()),  # RFC 8914 4.24
}
"""EDE info code -> (causes it is consistent with, codes of which one must appear; empty:
any). Codes not listed (blocking, stale, ...) name policy, not the capture: not checked."""


CACHED_ERROR = 13
"""RFC 8914 4.14 Cached Error: checked against whether anything was sent upstream."""


def iso_seconds(seconds: int) -> str:
    """ISO 8601 UTC of a Unix second."""
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ede_text(codes: tuple[int, ...]) -> str:
    """``EDE 7 (Signature Expired)``, several joined with commas."""
    return ", ".join(f"EDE {c} ({EDE_NAMES.get(c, 'unassigned')})" for c in codes)


def _worst_rrset(verdict: Verdict) -> RRsetVerdict | None:
    bad = [r for r in verdict.rrsets if r.status is Status.BOGUS]
    answer = [r for r in bad if r.section.value == "answer"]
    chosen = answer or bad
    return chosen[0] if chosen else None


def failure_codes(verdict: Verdict) -> tuple[str, ...]:
    """The specific reasons of a failed verdict (response and RRset codes, generic ones last)."""
    found: list[str] = []
    rrset = _worst_rrset(verdict)
    for code in (*(rrset.codes if rrset else ()), *verdict.codes):
        if code.value not in found:
            found.append(code.value)
    specific = [c for c in found if c not in _GENERIC]
    return tuple(specific + [c for c in found if c in _GENERIC])


def _dated(code: str, rrset: RRsetVerdict | None) -> str:
    """A code's words, with the date a validity-period failure turns on (RFC 4034 3.1.5)."""
    if rrset is not None and code == C.SIGNATURE_EXPIRED and rrset.expiration is not None:
        return f"its signature expired at {iso_seconds(rrset.expiration)}"
    if rrset is not None and code == C.SIGNATURE_NOT_YET_VALID and rrset.inception is not None:
        return f"its signature is valid only from {iso_seconds(rrset.inception)}"
    return plain(code)


def failure_reason(verdict: Verdict) -> str:
    """What is wrong with a bogus upstream answer, in words, with the dates that matter."""
    codes = failure_codes(verdict)
    rrset = _worst_rrset(verdict)
    words = [_dated(c, rrset) for c in codes if c not in _GENERIC][:2] or ["validation failed"]
    text = " and ".join(words)
    if rrset is not None:
        text += f" on {rrset.name} {rrset.rdtype}"
    return text
