"""Validation findings: turns verdicts into catalogue findings merged per (code, zone, server)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable

import dns.rdatatype

from auditor.evidence import ResponseEvidence
from auditor.findings.catalogue import Finding, Provenance
from auditor.findings.codes import FindingCode as F
from auditor.findings.codes import ValidationCode as C
from auditor.findings.merge import FindingMerger
from auditor.findings.words import plain
from auditor.validate.chain import MISMATCH_PREFIX
from auditor.validate.verdict import RRsetVerdict, Status, Verdict

logger = logging.getLogger(__name__)

_UMBRELLA = frozenset({C.DNSSEC_BOGUS, C.DNSSEC_INDETERMINATE})
_SIGNATURE_CODES: tuple[tuple[C, F], ...] = (
    (C.SIGNATURE_EXPIRED, F.SIGNATURE_EXPIRED),
    (C.SIGNATURE_NOT_YET_VALID, F.SIGNATURE_NOT_YET_VALID),
    (C.BAD_SIGNATURE, F.BAD_SIGNATURE),
)
"""RRset validation code -> the finding that reports it per zone and server."""


def provenance_of(evidence: ResponseEvidence) -> Provenance:
    """Capture, frames, time, server (response source) and client (its destination)."""
    wire = evidence.transaction.response.wire
    return Provenance(wire.capture, tuple(wire.frames), wire.ts_ns, wire.src, wire.dst)


def question_text(evidence: ResponseEvidence) -> str:
    """``qname QTYPE`` of a response, ``(no question)`` without one."""
    if evidence.qname is None:
        return "(no question)"
    qtype = "?" if evidence.qtype is None else dns.rdatatype.to_text(evidence.qtype)  # type: ignore[arg-type]
    return f"{evidence.qname.to_text()} {qtype}"


UNKNOWN_ZONE = "(unknown: the answer carries no records)"
"""Zone text of indeterminate answers whose zone nothing in them names."""


def verdict_zone(verdict: Verdict, evidence: ResponseEvidence) -> str:
    """The zone a verdict is about: its own, else the first signer, else the question name."""
    if verdict.zone:
        return verdict.zone
    for rrset in verdict.rrsets:
        if rrset.signer:
            return rrset.signer
    return evidence.qname.to_text() if evidence.qname is not None else "-"


def _budget_exceeded(verdict: Verdict) -> bool:
    return C.VALIDATION_BUDGET_EXCEEDED in verdict.codes or any(
        C.VALIDATION_BUDGET_EXCEEDED in rrset.codes for rrset in verdict.rrsets)


def _details(verdict: Verdict) -> list[str]:
    texts = list(verdict.detail)
    for rrset in verdict.rrsets:
        texts.extend(rrset.detail)
    return texts


def _reasons(codes: Iterable[str]) -> list[str]:
    return [plain(code) for code in codes if code not in _UMBRELLA]


class ValidationFindings:
    """FindingSource: bogus answers, AD on bogus/insecure data, signature and DS problems, and
    indeterminate answers summarised per zone; merged findings are emitted at ``flush``.

    Memory is bounded by the number and accounted bytes of distinct (code, zone, server)
    keys (``FindingMerger``).
    """

    def __init__(self, max_keys: int = 100_000) -> None:
        self._merger = FindingMerger(max_keys)

    def counters(self) -> dict[str, int]:
        """JSON-ready counts for ``stats.json``: the merger's peak accounted bytes and the
        occurrences it did not merge over its caps."""
        return {"merge_peak_bytes": self._merger.peak_bytes,
                "findings_not_merged": self._merger.dropped}

    def feed(self, evidence: ResponseEvidence, verdict: Verdict) -> Iterable[Finding]:
        """Record what the verdict says; findings are only emitted at ``flush``."""
        status = verdict.status
        codes = set(verdict.codes)
        if _budget_exceeded(verdict):
            self._budget_exceeded(evidence, verdict)
        if status is Status.BOGUS:
            self._bogus(evidence, verdict)
        elif status is Status.INDETERMINATE:
            self._indeterminate(evidence, verdict)
        if C.AD_ON_INSECURE in codes:
            self._add_response(F.AD_ON_INSECURE, evidence, verdict)
        if C.OUT_OF_ZONE_IGNORED in codes:
            self._add_response(F.OUT_OF_ZONE_ANSWER_RECORDS, evidence, verdict)
        if C.SERVFAIL_CONTRADICTS_EVIDENCE in codes:
            self._add_response(F.SERVFAIL_CONTRADICTS_EVIDENCE, evidence, verdict)
        return ()

    def flush(self) -> Iterable[Finding]:
        """Every merged finding, with count and first/last seen."""
        if self._merger.dropped:
            logger.warning("%d validation findings not merged: too many distinct zones/servers",
                           self._merger.dropped)
        # Exceeding the budget is a heuristic sign of an attack, not proof of forgery.
        return [dataclasses.replace(found, verdict="suspicious")
                if found.code is F.VALIDATION_BUDGET_EXCEEDED else found
                for found in self._merger.flush()]

    def _budget_exceeded(self, evidence: ResponseEvidence, verdict: Verdict) -> None:
        """KeyTrap / NSEC3 hash attack evidence: the zone, the server, the frames, and which
        limits ran out."""
        limits = [text.split("(", 1)[1].split(")", 1)[0] if "budget of" in text else
                  text.removeprefix("validation budget exceeded: ")
                  for text in _details(verdict) if "budget" in text]
        zone = next((r.signer for r in verdict.rrsets
                     if C.VALIDATION_BUDGET_EXCEEDED in r.codes and r.signer), None)
        zone = zone or verdict_zone(verdict, evidence)
        where = provenance_of(evidence)
        self._merger.add(F.VALIDATION_BUDGET_EXCEEDED, (zone, where.server),
                         {"zone": zone, "server": where.server}, where,
                         lists={"limits": limits or ["validation budget"],
                                "answers": [question_text(evidence)]})

    def _add_response(
        self,
        code: F,
        evidence: ResponseEvidence,
        verdict: Verdict,
        lists: dict[str, list[str]] | None = None,
    ) -> None:
        where = provenance_of(evidence)
        zone = verdict_zone(verdict, evidence)
        self._merger.add(code, (zone, where.server), {"zone": zone, "server": where.server},
                         where, lists={"answers": [question_text(evidence)], **(lists or {})})

    def _bogus(self, evidence: ResponseEvidence, verdict: Verdict) -> None:
        if C.TRUST_ANCHOR_MISMATCH in verdict.codes:
            self._anchor_mismatch(evidence, verdict)
            return
        all_codes = [c.value for c in verdict.codes]
        for rrset in verdict.rrsets:
            all_codes.extend(c.value for c in rrset.codes if c.value not in all_codes)
        reasons = {"reasons": _reasons(dict.fromkeys(all_codes))}
        self._add_response(F.BOGUS_ANSWER, evidence, verdict, reasons)
        if C.AD_ON_BOGUS in verdict.codes:
            self._add_response(F.AD_ON_BOGUS, evidence, verdict, reasons)
        for rrset in verdict.rrsets:
            self._signature_problems(evidence, verdict, rrset)
        if any(C.DS_MISMATCH in r.codes for r in verdict.rrsets) or C.DS_MISMATCH in verdict.codes:
            zone = verdict_zone(verdict, evidence)
            self._merger.add(F.DS_MISMATCH, (zone,), {"zone": zone}, provenance_of(evidence),
                             lists={"answers": [question_text(evidence)]})

    def _anchor_mismatch(self, evidence: ResponseEvidence, verdict: Verdict) -> None:
        """Bogus only because the chain ends at keys no anchor in force names (a private root,
        a lab, another anchor): one configuration finding per anchored zone, never forgery."""
        texts = [text for rrset in verdict.rrsets for text in rrset.detail
                 if text.startswith(MISMATCH_PREFIX)] or [
                     text for text in verdict.detail if text.startswith(MISMATCH_PREFIX)]
        detail = texts[0] if texts else "the chain ends at keys no trust anchor names"
        anchored = detail.split(" of ", 1)[1].split(" ", 1)[0] if " of " in detail else "."
        zone = verdict_zone(verdict, evidence)
        where = provenance_of(evidence)
        self._merger.add(F.TRUST_ANCHOR_MISMATCH, (anchored,),
                         {"zone": zone, "anchored": anchored, "detail": detail}, where,
                         lists={"answers": [question_text(evidence)]})
        if C.AD_WITH_OTHER_ANCHOR in verdict.codes:
            self._add_response(F.RESOLVER_OTHER_TRUST_ANCHOR, evidence, verdict)

    def _signature_problems(
        self, evidence: ResponseEvidence, verdict: Verdict, rrset: RRsetVerdict
    ) -> None:
        for code, finding_code in _SIGNATURE_CODES:
            if code not in rrset.codes:
                continue
            where = provenance_of(evidence)
            zone = rrset.signer or verdict_zone(verdict, evidence)
            self._merger.add(finding_code, (zone, where.server),
                             {"zone": zone, "server": where.server}, where,
                             lists={"rrsets": [f"{rrset.name} {rrset.rdtype}"],
                                    "answers": [question_text(evidence)]})

    def _indeterminate(self, evidence: ResponseEvidence, verdict: Verdict) -> None:
        # Without a zone or signer (SERVFAIL, a truncated answer: no records at all) the
        # question name is not a zone: such answers are summarised together, names listed.
        known = verdict.zone or any(rrset.signer for rrset in verdict.rrsets)
        zone = verdict_zone(verdict, evidence) if known else UNKNOWN_ZONE
        reasons = [*verdict.missing, *_reasons(c.value for c in verdict.codes)] or [
            plain(C.DNSSEC_INDETERMINATE)]
        self._merger.add(F.INDETERMINATE_ANSWERS, (zone,), {"zone": zone},
                         provenance_of(evidence),
                         lists={"reasons": reasons, "answers": [question_text(evidence)]})
