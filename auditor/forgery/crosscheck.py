"""Cross-checks: answers, denials and out-of-bailiwick additional addresses against RRsets
validated elsewhere in the same capture, while the validated copy was still valid.

A validated copy stands for the zone's data only while a resolver could have used it: from
when it was seen (``defer_ns`` earlier: the genuine answer of a race arrives after the forged
one) until its TTL ran out (the smaller of the received TTL and the RRSIG's original TTL,
RFC 4035 5.3.3), and never outside its signature's inception/expiration window. A claim is
judged at the capture time of the response that made it, not over its own TTL: the zone may
change its data after an unsigned answer was given, and a copy from years earlier proves
nothing about today's answer. Truncated answers (TC=1) assert nothing (RFC 2181 9)."""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass

import dns.flags
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset

from auditor.evidence import RRsetEvidence, Section
from auditor.findings.catalogue import Finding
from auditor.findings.codes import FindingCode as F
from auditor.findings.codes import ValidationCode
from auditor.forgery.bailiwick import audited, response_zone
from auditor.forgery.common import (
    NOTE_COST,
    NS_PER_S,
    ForgeryVerdict,
    FrameRef,
    NameMemos,
    ResponseNote,
    ResponseSummary,
    forgery_finding,
    paired_verdicts,
    rcode_text,
)
from auditor.memo import IdentityMemo
from auditor.messages import NameTexts, name_texts
from auditor.trust.material import RecordDigests
from auditor.validate.verdict import RRsetVerdict, Status

_Key = tuple[dns.name.Name, int, int]
"""(canonical owner, type, class)."""
_MAX_COPIES = 8
_ADDRESS_TYPES = frozenset({dns.rdatatype.A, dns.rdatatype.AAAA})
_RECORD_SET_MEMO = 2_000
"""RRsets whose record sets are kept (the recent ones: popular answers repeat)."""


def _digestable(name: dns.name.Name) -> bytes:
    return name.to_digestable()


@dataclass(frozen=True, slots=True)
class _Validated:
    """One validated RRset copy and the time window its TTL covers."""

    digest: bytes
    start_ns: int
    end_ns: int
    refs: tuple[FrameRef, ...]
    frame: int
    text: str
    rdatas: frozenset[object]
    """The records themselves (compared by value: address overlap of additional data)."""

    def valid_at(self, at_ns: int) -> bool:
        """Whether the copy was within its TTL and signature window at ``at_ns``."""
        return self.start_ns <= at_ns <= self.end_ns


@dataclass(frozen=True, slots=True, eq=False)
class _Claim:
    """A non-validated answer or denial waiting for validated data to compare with
    (compared by identity)."""

    summary: ResponseNote
    """What the finding cites of the response (not its evidence: a flood of distinct
    unvalidated answers would keep every parsed message alive)."""
    key: _Key
    digest: bytes | None
    """Answer digest, or None for a denial."""
    rrset_text: str
    at_ns: int
    """Capture time of the response: the time the claim is judged at."""
    rdatas: frozenset[object] = frozenset()
    bailiwick: dns.name.Name | None = None
    """For an additional-section claim: the zone the response speaks for (else None)."""


def _validity(item: RRsetEvidence, verdict: RRsetVerdict, seen_ns: int, before_ns: int,
              slack_ns: int) -> tuple[int, int]:
    """The window in which a copy validated at ``seen_ns`` stands for the zone's data."""
    ttl = int(item.rrset.ttl)
    for rrsig in item.rrsigs or ():
        if verdict.expiration is None or int(rrsig.expiration) == verdict.expiration:
            ttl = min(ttl, int(rrsig.original_ttl))  # RFC 4035 5.3.3
            break
    start, end = seen_ns - before_ns, seen_ns + ttl * NS_PER_S + slack_ns
    # RFC 4034 3.1.5: the signature proves nothing outside inception..expiration.
    if verdict.inception is not None:
        start = max(start, verdict.inception * NS_PER_S - slack_ns)
    if verdict.expiration is not None:
        end = min(end, verdict.expiration * NS_PER_S + slack_ns)
    return start, end


class CrossChecker:
    """Indexes validated RRsets (and, by RFC 8020, the existence of their owners' ancestors)
    and judges unvalidated answers and denials against them; claims with nothing to compare
    yet wait ``defer_ns`` for validated data arriving later (the genuine answer of a race)."""

    def __init__(self, *, defer_ns: int, slack_ns: int, max_keys: int, max_claims: int,
                 max_claim_bytes: int = 24 << 20, names: NameMemos | None = None,
                 digests: RecordDigests | None = None,
                 name_text: NameTexts | None = None) -> None:
        """``max_claims`` and ``max_claim_bytes`` (``claim_cost``: a waiting claim keeps its
        whole response evidence alive) bound the claims waiting; over either the oldest is
        dropped unjudged (``dropped_claims``). ``names``, ``digests``: the run's name memos
        and RRset digests, ``name_text`` its memo of name texts (without them the checker has
        its own)."""
        self._name_text = name_text if name_text is not None else name_texts()
        self._names = names if names is not None else NameMemos()
        self._digest = (digests if digests is not None else RecordDigests()).digest
        self._defer_ns = defer_ns
        self._slack_ns = slack_ns
        self._max_keys = max_keys
        self._max_claims = max_claims
        self._max_claim_bytes = max_claim_bytes
        self._claim_bytes = 0
        self._copies: OrderedDict[_Key, list[_Validated]] = OrderedDict()
        self._existing: OrderedDict[bytes, _Validated] = OrderedDict()
        """Names known to exist, by canonical wire form (``_ancestry``): a bytes key keeps its
        hash, a ``dns.name.Name`` computes it on every lookup."""
        self._claims: deque[_Claim] = deque()
        self._waiting: dict[_Key, list[_Claim]] = {}
        self._reported: set[tuple[FrameRef, str]] = set()
        self._record_sets: IdentityMemo[dns.rrset.RRset, frozenset[object]] = IdentityMemo(
            frozenset, _RECORD_SET_MEMO)
        """The records of an RRset as a set (hashing a record renders it), per shared RRset."""
        self._name_wire: IdentityMemo[dns.name.Name, bytes] = IdentityMemo(
            _digestable, _RECORD_SET_MEMO)
        self._ancestry: IdentityMemo[dns.name.Name, tuple[bytes, ...]] = IdentityMemo(
            self._ancestry_of, _RECORD_SET_MEMO)
        self.dropped_claims = 0

    def _ancestry_of(self, owner: dns.name.Name) -> tuple[bytes, ...]:
        """Canonical wire form of the lineage of ``owner`` (equal exactly when the names are
        equal)."""
        return tuple(name.to_digestable() for name in self._names.lineage(owner))

    def feed(self, summary: ResponseSummary) -> list[Finding]:
        """Index what validates in this response, then judge what does not."""
        found: list[Finding] = []
        for item, verdict in paired_verdicts(summary.evidence, summary.verdict):
            if _validated_here(item, verdict):
                assert verdict is not None
                wildcard = ValidationCode.WILDCARD_EXPANDED in verdict.codes
                found.extend(self._add_validated(item, verdict, summary, wildcard))
        for claim in self._claims_of(summary):
            finding = self._judge(claim)
            if finding is not None:
                found.append(finding)
            elif not self._has_any_copy(claim):
                self._wait(claim)
        return found

    # --- validated data ----------------------------------------------------------------------

    def _add_validated(self, item: RRsetEvidence, verdict: RRsetVerdict,
                       summary: ResponseSummary, wildcard: bool) -> list[Finding]:
        rrset = item.rrset
        key = (self._names.key(rrset.name), int(rrset.rdtype), int(rrset.rdclass))
        start, end = _validity(item, verdict, summary.ts_ns,
                               max(self._defer_ns, self._slack_ns), self._slack_ns)
        copy = _Validated(self._digest(rrset), start, end, summary.refs, summary.frame,
                          f"{self._name_text(rrset.name)} {rrset.rdtype.name}",
                          self._record_sets(rrset) if rrset.rdtype in _ADDRESS_TYPES
                          else frozenset())
        copies = self._copies.setdefault(key, [])
        self._copies.move_to_end(key)
        copies.append(copy)
        del copies[:-_MAX_COPIES]
        if len(self._copies) > self._max_keys:
            self._copies.popitem(last=False)
        if not wildcard:
            self._add_existing(rrset.name, copy)
        return self._release(key) + self._release_denials(rrset.name)

    def _add_existing(self, owner: dns.name.Name, copy: _Validated) -> None:
        # RFC 8020 2: a name that owns data exists, and so does every ancestor of it.
        existing = self._existing
        for key in self._ancestry(owner):
            existing[key] = copy
            existing.move_to_end(key)
        while len(self._existing) > self._max_keys:
            self._existing.popitem(last=False)

    # --- claims ------------------------------------------------------------------------------

    def _claims_of(self, summary: ResponseSummary) -> list[_Claim]:
        evidence = summary.evidence
        if (evidence.qname is None or evidence.qtype is None or summary.status is Status.SECURE
                or evidence.flags & dns.flags.TC):
            return []  # a truncated answer (RFC 2181 9) asserts nothing about what is missing
        claims = []
        zone = response_zone(evidence) if audited(evidence) else None
        note = ResponseNote.of(summary)
        for item, verdict in paired_verdicts(evidence, summary.verdict):
            if verdict is not None and verdict.status is Status.SECURE:
                continue
            rrset = item.rrset
            key = (self._names.key(rrset.name), int(rrset.rdtype), int(rrset.rdclass))
            text = f"{rrset.name} {rrset.rdtype.name}"
            if item.section is Section.ANSWER:
                claims.append(_Claim(note, key, self._digest(rrset), text, summary.ts_ns,
                                     self._record_sets(rrset)))
            elif (item.section is Section.ADDITIONAL and zone is not None
                  and rrset.rdtype in _ADDRESS_TYPES and not rrset.name.is_subdomain(zone)):
                # RFC 2181 5.4.1: out-of-zone additional data is normal; only a contradiction
                # with validated data makes it suspicious.
                claims.append(_Claim(note, key, self._digest(rrset), text,
                                     summary.ts_ns, self._record_sets(rrset), zone))
        if not evidence.section(Section.ANSWER) and _is_denial(summary):
            key = (self._names.key(evidence.qname), evidence.qtype, evidence.qclass or 1)
            claims.append(_Claim(note, key, None, "", summary.ts_ns))
        return claims

    def _judge(self, claim: _Claim) -> Finding | None:
        if claim.digest is None:
            return self._judge_denial(claim)
        copies = self._copies.get(claim.key, [])
        if any(c.digest == claim.digest for c in copies):
            return None  # equal to some validated copy: a legitimate (older or other) answer
        valid = [c for c in copies if c.valid_at(claim.at_ns)]
        if not valid:
            return None
        if any(c.rdatas & claim.rdatas for c in valid):
            # Shares a record with a validated copy: a load balancer's or CDN's rotating subset
            # (or renumbering), not injection; a forged answer replaces the data.
            return None
        if claim.bailiwick is not None:
            return self._report(claim, valid[-1], F.ADDITIONAL_CONTRADICTS_VALIDATED, {
                "rrset": claim.rrset_text, "bailiwick": self._name_text(claim.bailiwick)})
        return self._report(claim, valid[-1], F.CONTRADICTS_VALIDATED, {
            "rrset": claim.rrset_text})

    def _judge_denial(self, claim: _Claim) -> Finding | None:
        summary = claim.summary
        nxdomain = summary.rcode == dns.rcode.NXDOMAIN
        if nxdomain:
            copy = self._existing.get(self._name_wire(claim.key[0]))
        else:
            copies = self._copies.get(claim.key, [])
            copy = copies[-1] if copies else None
        if copy is None or not copy.valid_at(claim.at_ns):
            return None
        return self._report(claim, copy, F.DENIAL_CONTRADICTS_VALIDATED, {
            "rcode": rcode_text(summary.rcode), "rrset": copy.text})

    def _report(self, claim: _Claim, copy: _Validated, code: F,
                extra: dict[str, object]) -> Finding | None:
        summary = claim.summary
        marker = (summary.refs[-1], code + claim.rrset_text)
        if marker in self._reported:
            return None
        self._reported.add(marker)
        params = {
            "client": summary.client, "server": summary.server,
            "qname": summary.qname_text, "qtype": summary.qtype_text,
            "validated_frame": copy.frame, **extra,
        }
        refs = [*summary.query_refs, *summary.refs, *copy.refs]
        if claim.bailiwick is not None:
            return forgery_finding(
                code, params, summary, ForgeryVerdict.SUSPICIOUS, refs,
                reasoning=f"additional addresses from outside the responding zone "
                f"{self._name_text(claim.bailiwick)} share none of the addresses that validated in "
                f"frame {copy.frame}, which was within its TTL and signature window at the "
                "time: injected glue, or stale data the server should not be handing out "
                "(RFC 2181 5.4.1)",
            )
        what = "answer" if claim.digest is not None else "denial"
        return forgery_finding(
            code, params, summary, ForgeryVerdict.FORGED, refs,
            reasoning=f"this {what} is not validated and differs from data that validated in "
            f"frame {copy.frame}, which was within its TTL and signature window when this "
            f"{what} was given; a zone cannot sign both, so the unvalidated one is forged "
            "(no DNSSEC needed on the client's side)",
        )

    # --- waiting -----------------------------------------------------------------------------

    def _has_any_copy(self, claim: _Claim) -> bool:
        if claim.digest is None and claim.summary.rcode == dns.rcode.NXDOMAIN:
            return False
        return claim.key in self._copies

    @staticmethod
    def _wait_key(claim: _Claim) -> _Key:
        if claim.digest is None and claim.summary.rcode == dns.rcode.NXDOMAIN:
            return claim.key[0], -1, -1  # an NXDOMAIN waits for any data at or below its name
        return claim.key

    @property
    def claim_bytes(self) -> int:
        """Accounted bytes of the claims waiting now."""
        return self._claim_bytes

    def _wait(self, claim: _Claim) -> None:
        self._claims.append(claim)
        self._claim_bytes += claim_cost(claim)
        self._waiting.setdefault(self._wait_key(claim), []).append(claim)
        while len(self._claims) > 1 and (len(self._claims) > self._max_claims
                                         or self._claim_bytes > self._max_claim_bytes):
            self.dropped_claims += 1
            self._drop(self._claims.popleft())

    def _release(self, key: _Key) -> list[Finding]:
        found = []
        for claim in self._waiting.get(key, []):
            finding = self._judge(claim)
            if finding is not None:
                found.append(finding)
        return found

    def _release_denials(self, owner: dns.name.Name) -> list[Finding]:
        found: list[Finding] = []
        if not self._waiting:
            return found
        for name in self._names.lineage(owner):
            for claim in self._waiting.get((name, -1, -1), []):
                finding = self._judge(claim)
                if finding is not None:
                    found.append(finding)
        return found

    def _drop(self, claim: _Claim) -> None:
        self._claim_bytes -= claim_cost(claim)
        key = self._wait_key(claim)
        claims = self._waiting.get(key, [])
        if claim in claims:
            claims.remove(claim)
        if not claims:
            self._waiting.pop(key, None)

    def expire(self, now_ns: int) -> None:
        """Stop waiting for claims older than the deferral time."""
        while self._claims and now_ns - self._claims[0].summary.ts_ns > self._defer_ns:
            self._drop(self._claims.popleft())
        if len(self._reported) > self._max_claims:
            self._reported.clear()

    def flush(self) -> None:
        """End of input."""
        self._claims.clear()
        self._waiting.clear()
        self._claim_bytes = 0



CLAIM_RDATA_COST = 160
"""Accounted bytes of one record a claim keeps (its ``rdatas``) once its message is gone."""


def claim_cost(claim: _Claim) -> int:
    """Accounted bytes of one waiting claim: its response's note, its RRset text and the
    records it compares (each claim of a response counts the shared note again)."""
    return NOTE_COST + len(claim.rrset_text) + CLAIM_RDATA_COST * len(claim.rdatas)


def _validated_here(item: RRsetEvidence, verdict: RRsetVerdict | None) -> bool:
    """An answer RRset validated by its own signatures (not merely equal to another copy)."""
    return (verdict is not None and item.section is Section.ANSWER
            and verdict.status is Status.SECURE
            and ValidationCode.UNSIGNED_CROSS_CHECKED not in verdict.codes)


def _is_denial(summary: ResponseSummary) -> bool:
    evidence = summary.evidence
    if evidence.rcode == dns.rcode.NXDOMAIN:
        return True
    if evidence.rcode != dns.rcode.NOERROR:
        return False
    authority = evidence.section(Section.AUTHORITY)
    referral = any(i.rdtype == dns.rdatatype.NS for i in authority) and not any(
        i.rdtype == dns.rdatatype.SOA for i in authority)
    return not referral

