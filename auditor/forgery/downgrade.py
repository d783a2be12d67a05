"""DNSSEC downgrade: RRSIGs, OPT or DNSKEY/DS stripped, AD set on data that does not validate,
AD cleared by a validating resolver, compared with the resolver's own upstream view."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import dns.flags
import dns.rdatatype

from auditor.evidence import Section
from auditor.findings.catalogue import Finding
from auditor.findings.codes import FindingCode as F
from auditor.findings.codes import ValidationCode
from auditor.forgery.common import (
    ForgeryVerdict,
    FrameRef,
    ResponseSummary,
    forgery_finding,
    paired_verdicts,
)
from auditor.validate.verdict import Status

_KEY_TYPES = frozenset({dns.rdatatype.DNSKEY, dns.rdatatype.DS})


@dataclass(frozen=True, slots=True)
class _Upstream:
    """What a resolver itself received for a question."""

    status: Status
    signed: bool
    refs: tuple[FrameRef, ...]
    ts_ns: int


class DowngradeTracker:
    """Stripping and AD-bit checks, plus each resolver's upstream view for comparison."""

    def __init__(self, *, keep_ns: int, max_entries: int) -> None:
        self._keep_ns = keep_ns
        self._max = max_entries
        self._upstream: OrderedDict[tuple[str, bytes | None], _Upstream] = OrderedDict()
        self._validating: OrderedDict[str, None] = OrderedDict()

    def feed(self, summary: ResponseSummary) -> list[Finding]:
        """Take one response; return the downgrade findings it shows."""
        self._remember_upstream(summary)
        found = self._stripped(summary)
        found.extend(self._ad_findings(summary))
        if (summary.flags & dns.flags.AD and summary.recursive
                and summary.verdict.status_for_claims is Status.SECURE):
            self._validating[summary.server] = None
            self._validating.move_to_end(summary.server)
            if len(self._validating) > self._max:
                self._validating.popitem(last=False)
        return found

    def _remember_upstream(self, summary: ResponseSummary) -> None:
        if summary.recursive or summary.status is Status.INDETERMINATE:
            return
        signed = any(item.rrsigs is not None for item in summary.evidence.rrsets)
        key = (summary.client, summary.question_key)
        self._upstream[key] = _Upstream(summary.status, signed, summary.refs, summary.ts_ns)
        self._upstream.move_to_end(key)
        if len(self._upstream) > self._max:
            self._upstream.popitem(last=False)

    def _upstream_of(self, summary: ResponseSummary) -> _Upstream | None:
        view = self._upstream.get((summary.server, summary.question_key))
        if view is None or summary.ts_ns - view.ts_ns > self._keep_ns:
            return None
        return view

    def _stripped(self, summary: ResponseSummary) -> list[Finding]:
        missing = [
            item for item, verdict in paired_verdicts(summary.evidence, summary.verdict)
            if item.section is not Section.ADDITIONAL and verdict is not None
            and ValidationCode.RRSIGS_MISSING in verdict.codes
        ]
        if not missing:
            return []
        evidence = summary.evidence
        zone = summary.verdict.zone or next(
            (v.signer for v in summary.verdict.rrsets if v.signer), None) or _zone_of(summary)
        upstream = self._upstream_of(summary) if summary.recursive else None
        refs = [*summary.query_refs, *summary.refs, *(upstream.refs if upstream else ())]
        common = {"server": summary.server, "client": summary.client,
                  "qname": summary.qname_text, "qtype": summary.qtype_text, "zone": zone,
                  "upstream_frames": [r[1] for r in upstream.refs] if upstream else []}
        seen_upstream = (" The resolver itself received it signed (frames "
                         f"{', '.join(str(r[1]) for r in upstream.refs)})."
                         if upstream is not None and upstream.signed else "")
        why = ("the zone's chain of trust is validated in this capture, so its data must carry "
               "RRSIGs when DO is set (RFC 4035 3.1.1); the answer arrived without them."
               + seen_upstream)
        if evidence.qtype in _KEY_TYPES:
            return [forgery_finding(
                F.KEY_MATERIAL_STRIPPED, {**common, "how": "RRSIGs removed"}, summary,
                ForgeryVerdict.FORGED, refs, reasoning=why)]
        if not evidence.edns:
            return [forgery_finding(
                F.OPT_STRIPPED, common, summary, ForgeryVerdict.FORGED, refs,
                reasoning="the query set DO but the response has no OPT record at all; " + why)]
        rrsets = ", ".join(f"{i.name} {i.rdtype.name}" for i in missing)
        return [forgery_finding(
            F.RRSIGS_STRIPPED, {**common, "rrsets": rrsets}, summary, ForgeryVerdict.FORGED,
            refs, reasoning=why)]

    def _ad_findings(self, summary: ResponseSummary) -> list[Finding]:
        evidence = summary.evidence
        common: dict[str, object] = {"server": summary.server, "client": summary.client,
                                     "qname": summary.qname_text, "qtype": summary.qtype_text}
        refs = [*summary.query_refs, *summary.refs]
        # The resolver answered at capture time: its AD bit is judged by what was true then,
        # whatever --at says (the signatures' time moves, the resolver's knowledge does not).
        status = summary.verdict.status_for_claims
        if evidence.flags & dns.flags.AD:
            if (status is Status.BOGUS
                    and ValidationCode.TRUST_ANCHOR_MISMATCH not in summary.verdict.codes):
                # Forgery only when the data itself is proven bad (a failing signature, a
                # contradiction); a chain that ends at an anchor we do not hold proves nothing
                # about the resolver: that is resolver_other_trust_anchor, a configuration note.
                return [forgery_finding(
                    F.AD_ON_UNVALIDATED,
                    {**common, "status": "bogus",
                     "reasons": ", ".join(c.value for c in summary.verdict.codes)},
                    summary, ForgeryVerdict.FORGED, refs,
                    reasoning="AD claims every RRset validated (RFC 4035 3.2.3), but this data "
                    "fails validation: a validating resolver would have answered SERVFAIL",
                )]
            if status is Status.INSECURE and _has_data(summary):
                return [forgery_finding(
                    F.AD_ON_UNVALIDATED,
                    {**common, "status": "insecure (unsigned)",
                     "reasons": ", ".join(c.value for c in summary.verdict.codes)},
                    summary, ForgeryVerdict.SUSPICIOUS, refs,
                    reasoning="AD claims the data is authentic, but it comes from a provably "
                    "unsigned zone; resolvers must not set AD on it (RFC 4035 3.2.3)",
                )]
            return []
        return self._ad_cleared(summary, common, refs)

    def _ad_cleared(self, summary: ResponseSummary, common: dict[str, object],
                    refs: list[FrameRef]) -> list[Finding]:
        query = summary.evidence.transaction.query
        # The query's records are parsed (query.message) only when everything else holds.
        if (query is None or summary.verdict.status_for_claims is not Status.SECURE
                or not summary.recursive or summary.server not in self._validating
                or query.message is None):
            return []
        flags = int(query.message.flags)
        asked_do = bool(summary.evidence.query_do)
        if flags & dns.flags.CD or not (asked_do or flags & dns.flags.AD):
            return []
        upstream = self._upstream_of(summary)
        asked = "DO" if asked_do else "AD"
        return [forgery_finding(
            F.AD_CLEARED, {**common, "asked": asked}, summary, ForgeryVerdict.SUSPICIOUS,
            [*refs, *(upstream.refs if upstream else ())],
            reasoning=f"{summary.server} sets AD on validated answers elsewhere in this capture "
            f"and the query asked for it ({asked}, CD clear, RFC 6840 5.7), yet this answer, "
            "which validates, came without AD: the bit was cleared on the way",
        )]


def _has_data(summary: ResponseSummary) -> bool:
    return bool(summary.evidence.section(Section.ANSWER))


def _zone_of(summary: ResponseSummary) -> str:
    """The zone a response speaks for: its authority SOA or NS owner, else the question."""
    for item in summary.evidence.section(Section.AUTHORITY):
        if item.rdtype in (dns.rdatatype.SOA, dns.rdatatype.NS):
            return item.name.to_text()
    return summary.qname_text
