"""Judges one response: per-RRset verdicts, the answer chain, negative answers, resolver claims."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

import dns.flags
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.RRSIG
import dns.rrset

from auditor.evidence import ResponseEvidence, RRsetEvidence, Section
from auditor.findings.codes import ValidationCode
from auditor.messages import NameTexts, name_texts
from auditor.trust.cache import CacheUpdate, KeyState
from auditor.trust.keyview import KeyView
from auditor.trust.material import SignedRRset
from auditor.validate.budget import WorkBudget, ZoneRate
from auditor.validate.chain import ChainResolver, ZoneTrust, signature_times, signed_entries
from auditor.validate.denial import Claim, DenialMemos, prove_denial
from auditor.validate.denial_response import (
    deepest_signer,
    denial_records,
    denied_name,
    dname_substitution,
    soa_zone,
    weigh,
    with_status,
)
from auditor.validate.policy import ValidationPolicy
from auditor.validate.signature import SignatureChecker, serial_to_epoch
from auditor.validate.verdict import RRsetVerdict, Status, TimeWindow, Verdict, worst

logger = logging.getLogger(__name__)

_NS = 1_000_000_000
_FAILURE_EDES = frozenset({6, 7, 8, 9, 10, 11, 12})
_GLUE_TYPES = frozenset({dns.rdatatype.A, dns.rdatatype.AAAA})


@dataclass(frozen=True, slots=True)
class _Judged:
    """An RRset verdict plus what the response-level logic needs."""

    verdict: RRsetVerdict
    missing: tuple[str, ...]
    wildcard_labels: int | None = None
    """RRSIG Labels of a validated wildcard expansion (RFC 4035 5.3.4), else None."""


class Validator:
    """Validates responses against a KeyView under a policy. Pure: the reference time is the
    response's capture time (or ``at_ns``); the clock is never read."""

    def __init__(
        self,
        keys: KeyView,
        policy: ValidationPolicy,
        *,
        at_ns: int | None = None,
        signature_memo: int = 100_000,
        zone_rate: ZoneRate | None = None,
        name_text: NameTexts | None = None,
    ) -> None:
        """``name_text``: the run's memo of name texts (its parse tables'; without it the
        validator has its own)."""
        self.keys = keys
        self.policy = policy
        self.at_ns = at_ns
        self.zone_rate = zone_rate
        """Live mode: validation work allowed per zone per second of capture time."""
        self.name_text = name_text if name_text is not None else name_texts()
        """``Name.to_text()``, memoised for the run."""
        self.checker = SignatureChecker(policy, memo_size=signature_memo,
                                        digests=keys.material.digests)
        self.denial = DenialMemos()
        """NSEC/NSEC3 type bitmaps and hashes memoised for this validator's run."""
        self.chain = ChainResolver(keys, policy, self.checker, denial=self.denial,
                                   at_s=None if at_ns is None else at_ns // _NS)
        self._capture_time: Validator | None = None

    def _verdict(self, section: Section, rrset: dns.rrset.RRset, status: Status,
                 rrsigs: Sequence[dns.rdtypes.ANY.RRSIG.RRSIG],
                 reference: dns.rdtypes.ANY.RRSIG.RRSIG | None,
                 codes: Sequence[ValidationCode], detail: Sequence[str], at_s: int
                 ) -> RRsetVerdict:
        """``_verdict`` with the run's memo of name texts."""
        return _verdict(self.name_text, section, rrset, status, rrsigs, reference, codes,
                        detail, at_s)

    # --- public ------------------------------------------------------------------------------

    def judge(self, evidence: ResponseEvidence) -> Verdict:
        """The verdict on one response, within the policy's validation budget."""
        reference_ns = self.at_ns if self.at_ns is not None else evidence.ts_ns
        at_s = reference_ns // _NS
        if evidence.qclass is not None and evidence.qclass != dns.rdataclass.IN:
            return _not_class_in(evidence.qclass, reference_ns)
        if evidence.qtype in _ZONE_TRANSFERS:
            return _zone_transfer(evidence.qtype, reference_ns)
        rate_zone = self._closest_zone(evidence) if self.zone_rate is not None else None
        if self.zone_rate is not None and rate_zone is not None:
            over = self.zone_rate.over(rate_zone, evidence.ts_ns)
            if over is not None:
                self.zone_rate.refused += 1
                return _over_rate(rate_zone, over, reference_ns)
        budget = WorkBudget(self.policy.budget)
        # The capture times this verdict holds for (a verdict cache reuses it within them).
        window = TimeWindow(at_s if self.at_ns is None else None)
        with self.checker.charged_to(budget), self.checker.windowed(window):
            judged = [self._judge_rrset(item, evidence, at_s) for item in evidence.rrsets]
            judged = self._prove_wildcards(evidence, judged)
            judged = self._check_dname_synthesis(evidence, judged)
            status, codes, zone, missing, detail = self._response_status(evidence, judged, at_s)
        if self.zone_rate is not None and rate_zone is not None:
            self.zone_rate.spend(rate_zone, evidence.ts_ns, budget)
        if budget.exhausted is not None:
            # KeyTrap (CVE-2023-50387) / NSEC3 (CVE-2023-50868): work was cut short, so the
            # answer is not proven; validators answer SERVFAIL, the auditor says bogus.
            status = Status.BOGUS
            for code in (ValidationCode.VALIDATION_BUDGET_EXCEEDED, ValidationCode.DNSSEC_BOGUS):
                _add(codes, code)
            detail.append(budget.detail("this response"))
        verdict = Verdict(
            status=status,
            codes=tuple(codes),
            zone=zone,
            rrsets=tuple(j.verdict for j in judged),
            missing=tuple(missing),
            reference_time_ns=reference_ns,
            detail=tuple(detail),
            valid_ns=window.bounds(),
        )
        if self.at_ns is not None and _makes_claims(evidence):
            at_capture = self._at_capture_time().judge(evidence)
            verdict = replace(_claims_at_capture_time(verdict, at_capture),
                              valid_ns=_overlap(window.bounds(), at_capture.valid_ns))
        return verdict

    def _at_capture_time(self) -> Validator:
        """A validator judging at each packet's own time: what the resolver itself could know
        (``--at`` moves only the time signatures are judged at, never the resolver's claims)."""
        if self._capture_time is None:
            self._capture_time = Validator(self.keys, self.policy, name_text=self.name_text)
        return self._capture_time

    def zone_trust(self, zone: dns.name.Name, at_s: int | None = None) -> ZoneTrust:
        """The chain-of-trust status of a zone's keys (for reports and the CLI), with the trust
        anchors in force at ``at_s`` (every anchor held when None)."""
        return self.chain.trust(zone, at_s)

    def _reference_s(self, evidence: ResponseEvidence) -> int:
        """The time a response is judged at: ``at_ns`` when fixed, else its capture time."""
        return (self.at_ns if self.at_ns is not None else evidence.ts_ns) // _NS

    def cache_updates(self) -> tuple[CacheUpdate, ...]:
        """What to persist into the KeyCache after the run: keys validated through the chain
        (trusted), keys seen revoked, and every other DNSKEY observed (seen)."""
        updates: dict[tuple[dns.name.Name, bytes], CacheUpdate] = {}
        for entry in self.keys.material.all_dnskey_rrsets():
            for key in entry.rrset:
                updates[(entry.rrset.name, key.to_digestable())] = CacheUpdate(
                    entry.rrset.name, key, KeyState.SEEN, None,
                    entry.first_seen_ns, entry.last_seen_ns)
        for zone in self.keys.material.known_zone_names():
            self.chain.trust(zone)
        for zone, trust in self.chain.memo().items():
            times = self._seen_times(zone)
            if trust.status is Status.SECURE and not trust.from_cache:
                for key in trust.keys:
                    updates[(zone, key.to_digestable())] = CacheUpdate(
                        zone, key, KeyState.TRUSTED, trust.validated_by, *times)
            for key in trust.revoked:
                updates[(zone, key.to_digestable())] = CacheUpdate(
                    zone, key, KeyState.REVOKED, "revoked (RFC 5011)", *times)
        return tuple(updates.values())

    def _seen_times(self, zone: dns.name.Name) -> tuple[int | None, int | None]:
        entries = self.keys.material.dnskey_rrsets(zone)
        if not entries:
            return None, None
        return min(e.first_seen_ns for e in entries), max(e.last_seen_ns for e in entries)

    # --- one RRset ---------------------------------------------------------------------------

    def _judge_rrset(self, item: RRsetEvidence, evidence: ResponseEvidence, at_s: int) -> _Judged:
        if item.rrsigs is None:
            return self._judge_unsigned(item, evidence, at_s)
        return self._judge_signed(item.section, item.rrset, list(item.rrsigs), (at_s,))

    def _judge_signed(
        self,
        section: Section,
        rrset: dns.rrset.RRset,
        rrsigs: Sequence[dns.rdtypes.ANY.RRSIG.RRSIG],
        times_s: Sequence[int],
    ) -> _Judged:
        codes: list[ValidationCode] = []
        detail: list[str] = []
        missing: list[str] = []
        statuses: list[Status] = []
        chosen: dns.rdtypes.ANY.RRSIG.RRSIG | None = None
        by_signer: dict[dns.name.Name, list[dns.rdtypes.ANY.RRSIG.RRSIG]] = {}
        for rrsig in rrsigs:
            by_signer.setdefault(rrsig.signer, []).append(rrsig)
        for signer, signatures in by_signer.items():
            status, sig = self._judge_by_signer(rrset, signer, signatures, times_s,
                                                codes, detail, missing)
            statuses.append(status)
            if status is Status.SECURE and chosen is None:
                chosen = sig
        # Any signer whose signature validates makes the RRset secure (RFC 4035 5.3.3).
        status = Status.SECURE if Status.SECURE in statuses else _least_bad(statuses)
        wildcard_labels = None
        if status is Status.SECURE:
            codes = [c for c in codes if _is_note(c)]
            if ValidationCode.WILDCARD_EXPANDED in codes and chosen is not None:
                # RFC 4035 5.3.4: secure only with the proof that no closer match exists;
                # judged per response by _prove_wildcards.
                wildcard_labels = int(chosen.labels)
        reference = chosen if chosen is not None else (rrsigs[0] if rrsigs else None)
        return _Judged(self._verdict(section, rrset, status, rrsigs, reference, codes, detail,
                                times_s[0]), tuple(missing), wildcard_labels)

    def _judge_by_signer(
        self,
        rrset: dns.rrset.RRset,
        signer: dns.name.Name,
        signatures: Sequence[dns.rdtypes.ANY.RRSIG.RRSIG],
        times_s: Sequence[int],
        codes: list[ValidationCode],
        detail: list[str],
        missing: list[str],
    ) -> tuple[Status, dns.rdtypes.ANY.RRSIG.RRSIG | None]:
        if not rrset.name.is_subdomain(signer):
            _add(codes, ValidationCode.SIGNER_NOT_ZONE)
            detail.append(f"signer {signer} is not an ancestor of {rrset.name}")
            return Status.BOGUS, None
        trust = self.chain.trust(signer, times_s[0])
        for code in trust.codes:
            _add(codes, code)
        if trust.status is not Status.SECURE:
            detail.extend(trust.detail)
            missing.extend(m for m in trust.missing if m not in missing)
            return trust.status, None
        unsupported = True
        key_unseen = True
        failures = 0
        limit = self.policy.budget.failures_per_rrset
        for rrsig in signatures:
            if failures >= limit:
                # KeyTrap (CVE-2023-50387): many RRSIGs, none valid; Unbound stops after
                # MAX_VALIDATE_RRSIGS (8) failures per RRset.
                self.checker.budget.note(f"{limit} failed signature checks on one RRset")
                _add(codes, ValidationCode.VALIDATION_BUDGET_EXCEEDED)
                _add(codes, ValidationCode.DNSSEC_BOGUS)
                detail.append(f"validation budget exceeded: {failures} signatures of "
                              f"{rrset.name} {rrset.rdtype.name} failed, "
                              f"{len(signatures)} offered")
                return Status.BOGUS, None
            result = self.checker.check(rrset, rrsig, signer, trust.keys, times_s)
            failures += result.failures
            for code in result.codes:
                _add(codes, code)
            detail.extend(result.detail)
            if result.budget_exceeded:
                _add(codes, ValidationCode.DNSSEC_BOGUS)
                return Status.BOGUS, None
            if result.valid:
                if result.wildcard:
                    _add(codes, ValidationCode.WILDCARD_EXPANDED)
                return Status.SECURE, rrsig
            unsupported = unsupported and result.unsupported
            key_unseen = key_unseen and ValidationCode.DNSKEY_MISSING in result.codes
        if unsupported:
            # Only algorithms the policy does not support signed it, but the zone's keys are
            # trusted through a supported algorithm (its DS or anchor names one): the
            # insecure rule of RFC 4035 5.2 / RFC 6840 5.2 is for a DS RRset naming no
            # supported algorithm, so this RRset has no valid signature: bogus, as Unbound
            # and BIND say. A zone whose DS names only unsupported algorithms never gets here
            # (ChainResolver calls it insecure).
            detail.append(f"{rrset.name} {rrset.rdtype.name} is signed only with algorithms "
                          f"policy {self.policy.name} does not validate, in zone {signer} "
                          f"whose keys are trusted through a supported algorithm")
            _add(codes, ValidationCode.DNSSEC_BOGUS)
            return Status.BOGUS, None
        seen = self.keys.material.dnskey_rrsets(signer)
        stripped = any(entry.stripped_with_do for entry in seen)
        if key_unseen and not signed_entries(seen) and not stripped:
            # RFC 4035 5.3.1: the signing key must come from the zone's DNSKEY RRset. Only
            # anchor or cached keys are known and that RRset has not been seen signed (a live
            # capture that started after the resolver fetched it, or a copy fetched with DO
            # clear, which proves nothing): unknown, not bogus.
            if seen:
                _add(codes, ValidationCode.DNSKEY_UNSIGNED_ONLY)
            how = "seen only without RRSIGs" if seen else "not seen"
            missing.extend(f"DNSKEY RRset of {signer} (key tag {int(rrsig.key_tag)}) {how}"
                           for rrsig in signatures)
            return Status.INDETERMINATE, None
        _add(codes, ValidationCode.DNSSEC_BOGUS)
        return Status.BOGUS, None

    def _judge_unsigned(
        self, item: RRsetEvidence, evidence: ResponseEvidence, at_s: int
    ) -> _Judged:
        rrset = item.rrset
        start = rrset.name.parent() if rrset.rdtype == dns.rdatatype.DS and len(
            rrset.name) > 1 else rrset.name
        zone = self._enclosing_zone(start)
        if zone is None:
            text = f"no trust anchor at or above {rrset.name}"
            return _Judged(self._verdict(item.section, rrset, Status.INDETERMINATE, (), None,
                                    [ValidationCode.NO_TRUST_ANCHOR], [text], at_s),
                           (f"trust anchor for {rrset.name} or an ancestor",))
        if self._is_referral_or_glue(item, evidence, zone):
            # Checked before the child's trust: delegation NS and glue are the parent's
            # unsigned data, whatever state the child zone is in.
            return _Judged(self._verdict(item.section, rrset, Status.INSECURE, (), None,
                                    [ValidationCode.UNSIGNED_REFERRAL],
                                    ["delegation NS and glue are not signed (RFC 4035 2.2)"],
                                    at_s), ())
        zone = _deeper_zone_named(evidence, start, zone)
        trust = self.chain.trust(zone, at_s)
        asked_dnssec = evidence.query_do if evidence.query_do is not None else evidence.do
        if trust.status is not Status.SECURE and trust.status is not Status.INSECURE and (
                not asked_dnssec):
            # RFC 4035 3.2.1: without DO no RRSIG is sent, so the missing signature is the
            # whole story; the zone's chain (unknown or broken) says nothing of this data.
            text = (f"no DNSSEC requested (DO=0): {rrset.name} {rrset.rdtype.name} carries no "
                    f"RRSIG and the keys of {zone} are not validated "
                    f"({trust.status.value}) to compare it with a signed copy")
            return _Judged(self._verdict(item.section, rrset, Status.INDETERMINATE, (), None,
                                    [ValidationCode.DNSSEC_NOT_REQUESTED],
                                    [text, *trust.detail[:2]], at_s), (text,))
        if trust.status is not Status.SECURE:
            return _Judged(self._verdict(item.section, rrset, trust.status, (), None,
                                    list(trust.codes), list(trust.detail), at_s), trust.missing)
        if item.section is Section.ADDITIONAL:
            # RFC 4035 3.1.1: RRSIGs for additional data are included only if space permits.
            return _Judged(self._verdict(item.section, rrset, Status.INDETERMINATE, (), None,
                                    [ValidationCode.UNSIGNED_ADDITIONAL],
                                    [f"{rrset.name} {rrset.rdtype.name} in the additional "
                                     "section is unsigned; not validated"], at_s), ())
        if evidence.flags & dns.flags.TC:
            # RFC 4035 3.1.1 / RFC 2181 9: RRSIGs that do not fit set TC and the client retries
            # over TCP; a truncated answer's missing signatures prove nothing either way.
            text = (f"{rrset.name} {rrset.rdtype.name} came in a truncated (TC) response "
                    f"without RRSIG")
            return _Judged(self._verdict(item.section, rrset, Status.INDETERMINATE, (), None,
                                    [ValidationCode.TRUNCATED], [text], at_s), (text,))
        if asked_dnssec:
            cut = self.chain.insecure_cut(rrset.name, zone, at_s)
            if cut is not None:
                # The name lies under a delegation the capture proves unsigned (a CNAME target
                # in an insecure child, an opt-out span): the child's data is insecure, not the
                # signed parent's data stripped of its signatures (RFC 4035 5.2).
                return _Judged(self._verdict(item.section, rrset, cut.status, (), None,
                                        list(cut.codes), list(cut.detail), at_s), ())
            # RFC 4035 5: data of a signed zone without RRSIG is bogus when DO was set.
            return _Judged(self._verdict(item.section, rrset, Status.BOGUS, (), None,
                                    [ValidationCode.RRSIGS_MISSING, ValidationCode.DNSSEC_BOGUS],
                                    [f"{rrset.name} {rrset.rdtype.name} of signed zone {zone} "
                                     f"has no RRSIG although DO was set"], at_s), ())
        return self._cross_check(item, at_s, evidence.ts_ns)

    def _cross_check(self, item: RRsetEvidence, at_s: int, seen_ns: int) -> _Judged:
        """Without DO an answer carries no RRSIG: compare with signed copies that validate
        and were current when this answer was captured (``seen_ns``, never ``--at``: the
        comparison is about what was true on the wire then)."""
        rrset = item.rrset
        if self.checker.window is not None:  # which copies are current depends on seen_ns
            self.checker.window.narrow_ns(seen_ns, seen_ns)
        digest = self.checker.digests.digest(rrset)
        differing = False
        for copy in self.keys.material.signed_copies(
            (rrset.name, int(rrset.rdtype), int(rrset.rdclass))
        ):
            current = _signatures_current_at(copy, seen_ns)
            if not current or not self._copy_secure(copy, only=current):
                continue
            if copy.digest == digest:
                return _Judged(self._verdict(item.section, rrset, Status.SECURE, (), None,
                                        [ValidationCode.UNSIGNED_CROSS_CHECKED],
                                        ["unsigned (query without DO); equal to a validated "
                                         "copy seen in the capture"], at_s), ())
            if set(copy.rrset) & set(rrset):
                # A rotating subset of a load-balanced or CDN RRset (or renumbering): it
                # neither proves nor contradicts anything.
                text = (f"unsigned (query without DO); shares records with a validated copy "
                        f"of {rrset.name} {rrset.rdtype.name} but differs (rotation?)")
                return _Judged(self._verdict(item.section, rrset, Status.INDETERMINATE, (), None,
                                        [ValidationCode.DNSSEC_NOT_REQUESTED,
                                         ValidationCode.UNSIGNED_NOT_CROSS_CHECKED], [text],
                                        at_s), (text,))
            differing = True
        if differing:
            return _Judged(self._verdict(item.section, rrset, Status.BOGUS, (), None,
                                    [ValidationCode.UNSIGNED_CONTRADICTS_VALIDATED,
                                     ValidationCode.DNSSEC_BOGUS],
                                    ["unsigned answer differs from every validated copy"],
                                    at_s), ())
        text = (f"no DNSSEC requested (DO=0) and no validated copy of {rrset.name} "
                f"{rrset.rdtype.name} seen to compare with")
        return _Judged(self._verdict(item.section, rrset, Status.INDETERMINATE, (), None,
                                [ValidationCode.DNSSEC_NOT_REQUESTED,
                                 ValidationCode.UNSIGNED_NOT_CROSS_CHECKED], [text], at_s),
                       (text,))

    def _copy_secure(
        self, copy: SignedRRset, at_s: int | None = None, only: frozenset[bytes] | None = None
    ) -> bool:
        """Whether one of the copy's signatures (those in ``only`` when given) validates."""
        for wire, seen in copy.signatures.items():
            if only is not None and wire not in only:
                continue
            times = (at_s,) if at_s is not None else signature_times(
                copy, wire, self.chain.at_s)
            judged = self._judge_signed(Section.ANSWER, copy.rrset, [seen.rrsig], times)
            # A wildcard expansion's proof travelled in its own response: not reusable here.
            if judged.verdict.status is Status.SECURE and judged.wildcard_labels is None:
                return True
        return False

    def _enclosing_zone(self, name: dns.name.Name) -> dns.name.Name | None:
        """The deepest zone we know of that contains ``name``."""
        view = self.keys
        signed_denial = view.material.signed_denial
        candidate = name
        while True:
            if (view.material.dnskey_rrsets(candidate) or view.anchors.for_zone(candidate)
                    or view.cached_keys(candidate) or signed_denial(candidate)
                    or view.material.ds_rrsets(candidate)
                    or view.material.is_delegation(candidate)):
                return candidate
            if candidate == dns.name.root:
                return None
            candidate = candidate.parent()

    @staticmethod
    def _is_referral_or_glue(
        item: RRsetEvidence, evidence: ResponseEvidence, zone: dns.name.Name
    ) -> bool:
        rrset = item.rrset
        if item.section is Section.AUTHORITY and rrset.rdtype == dns.rdatatype.NS:
            # RFC 4035 2.2: delegation NS are not signed. The owner of a delegation NS is the
            # child's apex, so "zone" found from it is the child: a non-authoritative answer
            # (AA clear, RFC 1034 4.3.1) carrying it is a referral from the parent.
            return rrset.name != zone or not evidence.flags & dns.flags.AA
        if item.section is Section.ADDITIONAL and rrset.rdtype in _GLUE_TYPES:
            delegations = [r.rrset.name for r in evidence.section(Section.AUTHORITY)
                           if r.rrset.rdtype == dns.rdatatype.NS and r.rrsigs is None]
            return any(rrset.name.is_subdomain(d) for d in delegations)
        return False

    # --- the response ------------------------------------------------------------------------

    def _response_status(
        self, evidence: ResponseEvidence, judged: list[_Judged], at_s: int
    ) -> tuple[Status, list[ValidationCode], str | None, list[str], list[str]]:
        codes: list[ValidationCode] = []
        missing: list[str] = []
        detail: list[str] = []
        answers = [(item, j) for item, j in zip(evidence.rrsets, judged, strict=True)
                   if item.section is Section.ANSWER]
        server_zone = _authoritative_zone(evidence, answers)
        if server_zone is not None:
            answers = self._drop_out_of_zone(answers, server_zone, codes, detail)
        chain, final, broken = self._answer_chain(evidence, answers)
        for _, j in chain:
            codes.extend(c for c in j.verdict.codes if c not in codes)
            missing.extend(m for m in j.missing if m not in missing)
        statuses = [j.verdict.status for _, j in chain]
        zone = final[1].verdict.signer if final is not None else None
        if broken:
            _add(codes, ValidationCode.CNAME_CHAIN_BROKEN)
            detail.append("answer records do not follow from the question's CNAME/DNAME chain")
        if evidence.rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            status = Status.INDETERMINATE
            rcode = dns.rcode.to_text(dns.rcode.Rcode.make(evidence.rcode))
            detail.append(f"rcode {rcode}: nothing to validate")
            self._servfail_claims(evidence, at_s, codes, detail)
        elif final is not None:
            status = worst(statuses)
        elif chain and (_leaves_zone(chain[-1][0], chain[-1][1])
                        or _target_outside(chain[-1][0], server_zone)) and not (
                            _carries_target_denial(evidence, chain)):
            # The last CNAME/DNAME points out of its zone: the rest is another zone's answer,
            # which the resolver fetches separately (RFC 1034 3.6.2). Judge the hops present.
            status = worst(statuses)
            detail.append("the CNAME chain leaves the zone; the target is answered elsewhere")
        elif _rrsig_only_answer(evidence):
            # The answer to a query for RRSIG (or any answer made only of RRSIG records): the
            # signatures are records, so this is no denial, but they cover no RRset here and an
            # RRSIG RRset is never signed itself (RFC 4035 2.2): nothing to validate.
            status = Status.INDETERMINATE
            _add(codes, ValidationCode.RRSIG_ONLY_ANSWER)
            detail.append("the answer holds only RRSIG records, covering no RRset of the "
                          "response: nothing to validate (RFC 4035 2.2)")
        elif evidence.flags & dns.flags.TC:
            # RFC 2181 9 / RFC 7766 5: a truncated response without the answer is no denial;
            # the client retries over TCP and that response is judged on its own.
            status = Status.INDETERMINATE
            detail.append("truncated (TC) response without the answer: not a denial")
        elif not chain and _is_referral(evidence):
            status, zone = self._referral(evidence, judged, codes, missing, detail)
        elif chain and (cut := _delegation_of_target(evidence, chain)) is not None:
            # RFC 1034 4.3.2 step 3b: the chain's target lies below a delegation of the
            # server's zone, so the server ends the answer with a referral to the child, which
            # answers the target (the resolver asks it next). The hops are this zone's; the
            # target is as secure as the delegation (RFC 4035 5.2): a DS, or a proof of none.
            status, zone = self._referral(evidence, judged, codes, missing, detail, child=cut)
            status = worst([*statuses, status])
            detail.append(f"the CNAME chain's target lies below the delegation to {cut}, "
                          "which answers it")
        else:
            status, zone = self._negative(evidence, judged, chain, statuses, codes, missing,
                                          detail)
        if any(ValidationCode.DNAME_SYNTHESIS_MISMATCH in j.verdict.codes for _, j in answers):
            # RFC 6672 3.1: a CNAME below a DNAME must be the DNAME's substitution.
            status = Status.BOGUS
            _add(codes, ValidationCode.DNAME_SYNTHESIS_MISMATCH)
            _add(codes, ValidationCode.DNSSEC_BOGUS)
        if evidence.flags & dns.flags.TC:
            _add(codes, ValidationCode.TRUNCATED)
        if evidence.flags & dns.flags.AD:
            if status is Status.BOGUS and ValidationCode.TRUST_ANCHOR_MISMATCH in codes:
                # The data fails only at our trust anchor: the resolver validated with another
                # one. A configuration difference, not a claim proven false.
                _add(codes, ValidationCode.AD_WITH_OTHER_ANCHOR)
            elif status is Status.BOGUS:
                _add(codes, ValidationCode.AD_ON_BOGUS)
            elif status is Status.INSECURE:
                _add(codes, ValidationCode.AD_ON_INSECURE)
        if not evidence.rrsets and not evidence.orphan_rrsigs:
            _add(codes, ValidationCode.NO_RECORDS)
            if not missing and status is Status.INDETERMINATE:
                missing.append("the response has no records to validate")
        if status is Status.INDETERMINATE:
            _add(codes, ValidationCode.DNSSEC_INDETERMINATE)
        return status, codes, zone or self._closest_zone(evidence), missing, detail

    def _closest_zone(self, evidence: ResponseEvidence) -> str | None:
        """The closest enclosing zone known for the question: the deepest RRSIG signer or
        authority SOA/NS owner above the name in the response, else the deepest zone the key
        material, anchors or cache know."""
        name = evidence.qname
        if name is None:
            return None
        signers = [sig.signer for item in evidence.rrsets if item.rrsigs is not None
                   for sig in item.rrsigs if name.is_subdomain(sig.signer)]
        enclosing = [*signers, *_authority_zones_above(evidence, name)]
        known = self._enclosing_zone(name)
        if known is not None:
            enclosing.append(known)
        if not enclosing:
            return None
        return self.name_text(max(enclosing, key=len))

    @staticmethod
    def _drop_out_of_zone(
        answers: list[tuple[RRsetEvidence, _Judged]],
        server_zone: dns.name.Name,
        codes: list[ValidationCode],
        detail: list[str],
    ) -> list[tuple[RRsetEvidence, _Judged]]:
        """An authoritative server speaks only for its zone: answer records outside it (a
        CNAME target in another zone, even signed) are discarded by a validating resolver,
        which asks for them again (Unbound's scrubber; RFC 2181 5.4.1, RFC 1034 4.3.2), so
        they neither prove nor break this answer."""
        kept = [(item, j) for item, j in answers if item.rrset.name.is_subdomain(server_zone)]
        if len(kept) != len(answers):
            _add(codes, ValidationCode.OUT_OF_ZONE_IGNORED)
            dropped = [f"{item.rrset.name} {item.rrset.rdtype.name}" for item, _ in answers
                       if not item.rrset.name.is_subdomain(server_zone)]
            detail.append(f"records outside {server_zone}, the zone the authoritative answer "
                          f"speaks for, are not judged with it: {', '.join(dropped)}")
        return kept

    def _answer_chain(
        self,
        evidence: ResponseEvidence,
        answers: list[tuple[RRsetEvidence, _Judged]],
    ) -> tuple[list[tuple[RRsetEvidence, _Judged]], tuple[RRsetEvidence, _Judged] | None, bool]:
        """Follow CNAME/DNAME from the question (RFC 1034 3.6.2, RFC 6672 3): the hops and the
        final RRset of the question's type; each hop was judged in its own zone."""
        if evidence.qname is None:
            return answers, (answers[-1] if answers else None), False
        name = evidence.qname
        qtype = evidence.qtype
        chain: list[tuple[RRsetEvidence, _Judged]] = []
        used: set[int] = set()
        for _ in range(len(answers) + 1):
            step = self._next_hop(name, qtype, answers, used)
            if step is None:
                break
            index, target = step
            used.add(index)
            chain.append(answers[index])
            if target is None:
                return chain, answers[index], len(used) != len(answers)
            name = target
        return chain, None, bool(chain) and len(used) != len(answers)

    def _next_hop(
        self,
        name: dns.name.Name,
        qtype: int | None,
        answers: list[tuple[RRsetEvidence, _Judged]],
        used: set[int],
    ) -> tuple[int, dns.name.Name | None] | None:
        for index, (item, _) in enumerate(answers):
            rrset = item.rrset
            if (index not in used and rrset.rdtype == dns.rdatatype.DNAME
                    and name.is_subdomain(rrset.name) and name != rrset.name):
                # RFC 6672 2.2/3.4: the DNAME is the authoritative data; the synthesised CNAME
                # follows it and is judged against it (_check_dname_synthesis).
                try:
                    target = dname_substitution(name, rrset)
                except dns.name.NameTooLong:
                    return None
                for other, (synth, _) in enumerate(answers):
                    if (synth.rrset.rdtype == dns.rdatatype.CNAME and synth.rrset.name == name
                            and synth.rrset[0].target == target):
                        used.add(other)
                return index, target
        for index, (item, _) in enumerate(answers):
            rrset = item.rrset
            if index in used or rrset.name != name:
                continue
            if rrset.rdtype == qtype or qtype == dns.rdatatype.ANY:
                return index, None
            if rrset.rdtype == dns.rdatatype.CNAME:
                return index, rrset[0].target
        return None

    # --- denial, wildcard and DNAME proofs ---------------------------------------------------

    def _prove_wildcards(
        self, evidence: ResponseEvidence, judged: list[_Judged]
    ) -> list[_Judged]:
        """RFC 4035 5.3.4 / RFC 5155 8.8: a validated wildcard expansion in the answer is
        secure only with the response's proof that the owner name does not exist."""
        verdicts = _verdicts_by_rrset(evidence, judged)
        out = list(judged)
        for index, (item, j) in enumerate(zip(evidence.rrsets, judged, strict=True)):
            if j.wildcard_labels is None or j.verdict.signer is None:
                continue
            if item.section is not Section.ANSWER:
                out[index] = replace(j, verdict=with_status(
                    j.verdict, Status.INDETERMINATE, [ValidationCode.WILDCARD_UNPROVEN],
                    ["wildcard expansion outside the answer: no proof expected"]))
                continue
            zone = dns.name.from_text(j.verdict.signer)
            result = prove_denial(Claim.WILDCARD_ANSWER, item.rrset.name, item.rrset.rdtype,
                                  zone, denial_records(evidence, zone), self.policy,
                                  wildcard_labels=j.wildcard_labels,
                                  budget=self.checker.budget, memos=self.denial)
            status, codes, detail = weigh(result, verdicts)
            if status is Status.BOGUS:
                codes = [ValidationCode.WILDCARD_UNPROVEN, *codes]
            out[index] = replace(j, verdict=with_status(j.verdict, status, codes, detail))
        return out

    def _check_dname_synthesis(
        self, evidence: ResponseEvidence, judged: list[_Judged]
    ) -> list[_Judged]:
        """RFC 6672 3.1/5.3.1: a CNAME below a DNAME of the answer must equal the DNAME
        substitution; then the unsigned synthesised CNAME takes the DNAME's status."""
        answers = [(i, item, j) for i, (item, j) in
                   enumerate(zip(evidence.rrsets, judged, strict=True))
                   if item.section is Section.ANSWER]
        dnames = [(item.rrset, j) for _, item, j in answers
                  if item.rrset.rdtype == dns.rdatatype.DNAME]
        out = list(judged)
        for index, item, j in answers:
            cname = item.rrset
            if cname.rdtype != dns.rdatatype.CNAME:
                continue
            for dname, dj in dnames:
                if not cname.name.is_subdomain(dname.name) or cname.name == dname.name:
                    continue
                try:
                    expected: dns.name.Name | None = dname_substitution(cname.name, dname)
                except dns.name.NameTooLong:
                    expected = None
                if expected is None or cname[0].target != expected:
                    out[index] = replace(j, verdict=with_status(
                        j.verdict, Status.BOGUS,
                        [ValidationCode.DNAME_SYNTHESIS_MISMATCH, ValidationCode.DNSSEC_BOGUS],
                        [f"CNAME {cname.name} -> {cname[0].target} is not the substitution "
                         f"{expected} of DNAME {dname.name}"]))
                elif item.rrsigs is None:
                    out[index] = replace(j, verdict=dataclasses.replace(
                        j.verdict, status=dj.verdict.status,
                        codes=(ValidationCode.CNAME_SYNTHESIZED,),
                        detail=(f"unsigned CNAME synthesised from DNAME {dname.name}",)))
                break
        return out

    def _negative(
        self,
        evidence: ResponseEvidence,
        judged: list[_Judged],
        chain: list[tuple[RRsetEvidence, _Judged]],
        statuses: list[Status],
        codes: list[ValidationCode],
        missing: list[str],
        detail: list[str],
    ) -> tuple[Status, str | None]:
        """NXDOMAIN / NODATA (RFC 4035 5.4, RFC 5155 8): the denied name's zone must be
        trusted and the response's NSEC/NSEC3 records must prove the claim."""
        name = (denied_name(evidence.qname, [item for item, _ in chain])
                if evidence.qname is not None else None)
        authority = [(item, j) for item, j in zip(evidence.rrsets, judged, strict=True)
                     if item.section is Section.AUTHORITY]
        records = denial_records(evidence)
        zone = None
        if name is not None:
            zone = soa_zone(evidence, name) or deepest_signer(records, name)
            zone = zone or _deepest_of(self._enclosing_zone(name), _chain_signer(chain, name))
        zone_text = str(zone) if zone is not None else None
        if Status.BOGUS in statuses or any(j.verdict.status is Status.BOGUS for _, j in authority):
            detail.append("negative answer with bogus records")
            for _, j in authority:
                codes.extend(c for c in j.verdict.codes if c not in codes)
            return Status.BOGUS, zone_text
        if name is None or zone is None:
            _add(codes, ValidationCode.DENIAL_NOT_CHECKED)
            detail.append("negative answer without question or known zone")
            return Status.INDETERMINATE, zone_text
        trust = self.chain.trust(zone, self._reference_s(evidence))
        if trust.status is not Status.SECURE:
            codes.extend(c for c in trust.codes if c not in codes)
            missing.extend(m for m in trust.missing if m not in missing)
            detail.append(f"negative answer from {trust.status} zone {zone}")
            return worst([*statuses, trust.status]), zone_text
        asked_dnssec = evidence.query_do if evidence.query_do is not None else evidence.do
        if not records and not asked_dnssec:
            _add(codes, ValidationCode.DENIAL_NOT_CHECKED)
            detail.append("negative answer to a query without DO: no proof was sent")
            return worst([*statuses, Status.INDETERMINATE]), zone_text
        claim = Claim.NXDOMAIN if evidence.rcode == dns.rcode.NXDOMAIN else Claim.NODATA
        result = prove_denial(claim, name, evidence.qtype or 0, zone,
                              denial_records(evidence, zone), self.policy,
                              budget=self.checker.budget, memos=self.denial)
        status, found, text = weigh(result, _verdicts_by_rrset(evidence, judged))
        codes.extend(c for c in found if c not in codes)
        detail.extend(text)
        return worst([*statuses, status]), zone_text

    def _referral_proof(
        self,
        evidence: ResponseEvidence,
        judged: list[_Judged],
        child: dns.name.Name,
        codes: list[ValidationCode],
        detail: list[str],
    ) -> Status | None:
        """A referral without DS from a signed parent must prove the DS absent (RFC 4035
        5.2, RFC 5155 8.9); None when the parent is not known to be secure."""
        records = denial_records(evidence)
        parent = deepest_signer(records, child, proper=True)
        if parent is None and len(child) > 1:
            parent = self._enclosing_zone(child.parent())
        at_s = self._reference_s(evidence)
        if parent is None or self.chain.trust(parent, at_s).status is not Status.SECURE:
            return None
        asked_dnssec = evidence.query_do if evidence.query_do is not None else evidence.do
        if not records and not asked_dnssec:
            return None
        result = prove_denial(Claim.REFERRAL, child, dns.rdatatype.DS, parent,
                              denial_records(evidence, parent), self.policy,
                              budget=self.checker.budget, memos=self.denial)
        status, found, text = weigh(result, _verdicts_by_rrset(evidence, judged))
        codes.extend(c for c in found if c not in codes)
        detail.extend(text)
        if status is Status.SECURE or status is Status.INSECURE:
            _add(codes, ValidationCode.INSECURE_DELEGATION)
            detail.append(f"referral to {child}: no DS exists, the delegation is insecure")
            return Status.INSECURE
        return status

    def _referral(
        self,
        evidence: ResponseEvidence,
        judged: list[_Judged],
        codes: list[ValidationCode],
        missing: list[str],
        detail: list[str],
        *,
        child: dns.name.Name | None = None,
    ) -> tuple[Status, str | None]:
        """A referral is as secure as its delegation: a validated DS RRset makes it secure, a
        validated proof of no DS insecure (RFC 4035 5.2); the NS and glue are never signed.
        ``child``: the delegation judged (default: the first NS owner of the authority)."""
        _add(codes, ValidationCode.REFERRAL)
        if child is None:
            child = next(item.rrset.name for item in evidence.section(Section.AUTHORITY)
                         if item.rrset.rdtype == dns.rdatatype.NS)
        ds = [(item, j) for item, j in zip(evidence.rrsets, judged, strict=True)
              if item.section is Section.AUTHORITY and item.rrset.rdtype == dns.rdatatype.DS
              and item.rrset.name == child]
        if ds:
            _, j = ds[0]
            codes.extend(c for c in j.verdict.codes if c not in codes)
            missing.extend(m for m in j.missing if m not in missing)
            detail.append(f"referral to {child} with a DS RRset")
            return j.verdict.status, j.verdict.signer
        signer = self.chain.validated_ds(child, self._reference_s(evidence))
        if signer is not None:
            # RFC 4035 5.2: the delegation is as secure as the child's DS RRset; the resolver
            # fetches it when the referral omits it, as this capture shows it did.
            detail.append(f"referral to {child} without DS; its DS RRset, signed by {signer}, "
                          "validates elsewhere in the capture")
            return Status.SECURE, signer
        proven = self._referral_proof(evidence, judged, child, codes, detail)
        if proven is not None:
            return proven, str(child.parent()) if len(child) > 1 else None
        trust = self.chain.trust(child, self._reference_s(evidence))
        if trust.status is Status.INSECURE:
            codes.extend(c for c in trust.codes if c not in codes)
            detail.append(f"referral to {child}: no DS exists, the delegation is insecure")
            return Status.INSECURE, str(child.parent()) if len(child) > 1 else None
        if trust.status is Status.BOGUS:
            codes.extend(c for c in trust.codes if c not in codes)
            detail.extend(trust.detail)
            return Status.BOGUS, None
        text = f"proof of DS or of no DS for {child}"
        if trust.status is Status.SECURE:
            detail.append(f"referral to {child} without DS; {child} is secure elsewhere")
            return Status.SECURE, str(child)
        missing.append(text)
        detail.append(f"referral to {child} carries neither a DS RRset nor a proof of none")
        return Status.INDETERMINATE, None

    def _servfail_claims(
        self,
        evidence: ResponseEvidence,
        at_s: int,
        codes: list[ValidationCode],
        detail: list[str],
    ) -> None:
        """A SERVFAIL blaming DNSSEC (EDE 6-12) while a copy of the same RRset validates at
        the response's time contradicts the evidence."""
        if evidence.rcode != dns.rcode.SERVFAIL or evidence.qname is None:
            return
        if evidence.qtype is None or not _FAILURE_EDES.intersection(evidence.ede):
            return
        key = (evidence.qname, evidence.qtype, evidence.qclass or 1)
        for copy in self.keys.material.signed_copies(key):
            if self._copy_secure(copy, at_s):
                _add(codes, ValidationCode.SERVFAIL_CONTRADICTS_EVIDENCE)
                detail.append(f"SERVFAIL with EDE {sorted(evidence.ede)} but a copy of "
                              f"{evidence.qname} validates at that time")
                return


_CLAIM_CODES = frozenset({ValidationCode.AD_ON_BOGUS, ValidationCode.AD_ON_INSECURE,
                          ValidationCode.AD_WITH_OTHER_ANCHOR,
                          ValidationCode.SERVFAIL_CONTRADICTS_EVIDENCE})
"""Codes about what the resolver claimed (AD, SERVFAIL): judged at capture time."""


_RACE_ALLOWANCE_NS = 5 * _NS
"""A validated copy counts from a little before it was seen: in a race the genuine answer
arrives after the forged one (``ForgeryConfig.crosscheck_defer_ns``)."""


def _signatures_current_at(copy: SignedRRset, seen_ns: int) -> frozenset[bytes]:
    """The copy's signatures under which it was current at ``seen_ns``: within the TTL from
    when it was last seen (the smaller of received TTL and Original TTL, RFC 4035 5.3.3) and
    within the signature's inception/expiration (RFC 4034 3.1.5). A copy from years earlier,
    or past its TTL, says nothing about what the zone served later."""
    seen_s = seen_ns // _NS
    current = []
    for wire, sig in copy.signatures.items():
        ttl_s = min(int(copy.rrset.ttl), int(sig.rrsig.original_ttl))
        starts = sig.first_seen_ns - _RACE_ALLOWANCE_NS
        ends = sig.last_seen_ns + (ttl_s + 1) * _NS
        inception = serial_to_epoch(sig.rrsig.inception, seen_s)
        expiration = serial_to_epoch(sig.rrsig.expiration, seen_s)
        if starts <= seen_ns <= ends and inception <= seen_s <= expiration:
            current.append(wire)
    return frozenset(current)


def _over_rate(zone: str, over: str, reference_ns: int) -> Verdict:
    """Live mode: a response of a zone that used up its validation work for this second is
    not validated (one attacker must not stall the tap): bogus, budget exceeded."""
    return Verdict(
        status=Status.BOGUS,
        codes=(ValidationCode.VALIDATION_BUDGET_EXCEEDED, ValidationCode.DNSSEC_BOGUS),
        zone=zone,
        rrsets=(),
        missing=(),
        reference_time_ns=reference_ns,
        detail=(f"validation budget exceeded: zone {zone} used its {over} of capture time; "
                f"not validated (KeyTrap CVE-2023-50387, NSEC3 CVE-2023-50868)",),
    )


_ZONE_TRANSFERS = frozenset({dns.rdatatype.AXFR, dns.rdatatype.IXFR})


def _zone_transfer(qtype: int, reference_ns: int) -> Verdict:
    """A zone transfer (RFC 5936, RFC 1995) moves a whole zone between servers; it answers no
    question a resolver validates, and its thousands of RRsets would only exhaust the
    validation budget: not validated, indeterminate."""
    name = dns.rdatatype.to_text(dns.rdatatype.RdataType.make(qtype))
    text = f"{name} zone transfer: not a resolver's answer; not validated"
    return Verdict(Status.INDETERMINATE,
                   (ValidationCode.ZONE_TRANSFER, ValidationCode.DNSSEC_INDETERMINATE), None, (),
                   (text,), reference_ns, (text,))


def _not_class_in(qclass: int, reference_ns: int) -> Verdict:
    """DNSSEC's trust anchors and chains exist for class IN only (the root's DNSKEY and every
    DS are IN data, RFC 4035 5): a CHAOS ``version.bind`` or any other class has nothing to
    validate, so it is indeterminate, never bogus for lacking RRSIGs."""
    name = dns.rdataclass.to_text(dns.rdataclass.RdataClass.make(qclass))
    text = f"class {name}: DNSSEC validates class IN only; nothing to validate"
    return Verdict(Status.INDETERMINATE,
                   (ValidationCode.NOT_CLASS_IN, ValidationCode.DNSSEC_INDETERMINATE), None, (),
                   (text,), reference_ns, (text,))


def _makes_claims(evidence: ResponseEvidence) -> bool:
    """A response with AD set or a SERVFAIL says something about validation itself."""
    return bool(evidence.flags & dns.flags.AD) or evidence.rcode == dns.rcode.SERVFAIL


def _overlap(window: tuple[int, int], other: tuple[int, int] | None) -> tuple[int, int] | None:
    """Capture times in both windows; None when ``other`` is unknown."""
    if other is None:
        return None
    return max(window[0], other[0]), min(window[1], other[1])


def _claims_at_capture_time(verdict: Verdict, at_capture: Verdict) -> Verdict:
    """``verdict`` (judged at ``--at``) with its claim codes replaced by those judged at the
    response's own capture time (RFC 4035 3.2.3: AD reflects validation when answering)."""
    codes = [c for c in verdict.codes if c not in _CLAIM_CODES]
    codes.extend(c for c in at_capture.codes if c in _CLAIM_CODES and c not in codes)
    return replace(verdict, codes=tuple(codes), claims_status=at_capture.status)


def _verdicts_by_rrset(
    evidence: ResponseEvidence, judged: list[_Judged]
) -> dict[int, RRsetVerdict]:
    """RRset verdicts keyed by the identity of the evidence RRset they judge."""
    return {id(item.rrset): j.verdict for item, j in zip(evidence.rrsets, judged, strict=True)}


def _leaves_zone(item: RRsetEvidence, judged: _Judged) -> bool:
    """Whether a CNAME/DNAME hop's target lies outside the zone that signed the hop."""
    rrset = item.rrset
    if rrset.rdtype not in (dns.rdatatype.CNAME, dns.rdatatype.DNAME):
        return False
    signer = judged.verdict.signer
    if signer is None:
        return False
    return not rrset[0].target.is_subdomain(dns.name.from_text(signer))


def _authoritative_zone(
    evidence: ResponseEvidence, answers: list[tuple[RRsetEvidence, _Judged]]
) -> dns.name.Name | None:
    """The zone an authoritative answer (AA, RFC 1035 4.1.1) speaks for: the signer of the
    records at the question name, else an authority SOA/NS owner above it; None for answers
    of a recursive resolver (AA clear), which legitimately carry a whole chain of zones."""
    qname = evidence.qname
    if not evidence.flags & dns.flags.AA or qname is None:
        return None
    for item, judged in answers:
        if item.rrset.name == qname and judged.verdict.signer is not None:
            signer = dns.name.from_text(judged.verdict.signer)
            return signer if qname.is_subdomain(signer) else None
    return max(_authority_zones_above(evidence, qname), key=len, default=None)


def _authority_zones_above(
    evidence: ResponseEvidence, name: dns.name.Name
) -> list[dns.name.Name]:
    """Owners of the authority section's SOA and NS RRsets at or above ``name``: the zones the
    response itself says it speaks for (an NS owner below ``name`` is a referral's child)."""
    return [item.rrset.name for item in evidence.section(Section.AUTHORITY)
            if item.rrset.rdtype in (dns.rdatatype.SOA, dns.rdatatype.NS)
            and name.is_subdomain(item.rrset.name)]


def _deeper_zone_named(
    evidence: ResponseEvidence, name: dns.name.Name, zone: dns.name.Name
) -> dns.name.Name:
    """The zone the response itself names for ``name`` (its authority SOA/NS owner above it)
    when deeper than the zone the key material knows: a server speaking for a child zone the
    capture has no DS, DNSKEY or proof for. Its unsigned data then belongs to that child, whose
    status is unknown, not to the signed parent (no "stripped" verdict without evidence)."""
    owners = [owner for owner in _authority_zones_above(evidence, name)
              if owner.is_subdomain(zone)]
    deepest = max(owners, key=len, default=zone)
    return deepest if len(deepest) > len(zone) else zone


def _carries_target_denial(
    evidence: ResponseEvidence, chain: list[tuple[RRsetEvidence, _Judged]]
) -> bool:
    """Whether a recursive answer (AA clear) also carries the negative answer for the chain's
    final target (an SOA of the target's zone in the authority section): then the chain does
    not end here, it ends in that denial, judged in the target's zone (RFC 1034 3.6.2)."""
    if evidence.flags & dns.flags.AA or evidence.qname is None:
        return False
    target = denied_name(evidence.qname, [item for item, _ in chain])
    return soa_zone(evidence, target) is not None


def _delegation_of_target(
    evidence: ResponseEvidence, chain: list[tuple[RRsetEvidence, _Judged]]
) -> dns.name.Name | None:
    """The delegation an answer refers its CNAME/DNAME chain's target to, if it ends so: a
    NOERROR with no SOA in the authority section and an NS RRset there owned by a proper
    subdomain of the zone that signed the last hop, at or above the target (RFC 1034 4.3.2
    step 3b: the chain led out of the server's authoritative data). An NS RRset at the
    zone's own apex is no delegation."""
    if evidence.rcode != dns.rcode.NOERROR or evidence.qname is None:
        return None
    signer = chain[-1][1].verdict.signer
    if signer is None:
        return None
    zone = dns.name.from_text(signer)
    authority = evidence.section(Section.AUTHORITY)
    if any(item.rrset.rdtype == dns.rdatatype.SOA for item in authority):
        return None
    target = denied_name(evidence.qname, [item for item, _ in chain])
    cuts = [item.rrset.name for item in authority
            if item.rrset.rdtype == dns.rdatatype.NS and item.rrset.name != zone
            and item.rrset.name.is_subdomain(zone) and target.is_subdomain(item.rrset.name)]
    return max(cuts, key=len) if cuts else None


def _rrsig_only_answer(evidence: ResponseEvidence) -> bool:
    """Whether the answer section holds RRSIG records and nothing else."""
    return (not evidence.section(Section.ANSWER)
            and any(item.section is Section.ANSWER for item in evidence.orphan_rrsigs))


def _target_outside(item: RRsetEvidence, zone: dns.name.Name | None) -> bool:
    """Whether a CNAME/DNAME hop points outside the authoritative server's zone."""
    rrset = item.rrset
    if zone is None or rrset.rdtype not in (dns.rdatatype.CNAME, dns.rdatatype.DNAME):
        return False
    return not rrset[0].target.is_subdomain(zone)


def _is_referral(evidence: ResponseEvidence) -> bool:
    """RFC 1034 4.3.1 / RFC 4035 3.1.4: a non-authoritative NOERROR answer with no answer
    records, an NS RRset in the authority section and no SOA there is a referral."""
    if evidence.rcode != dns.rcode.NOERROR or evidence.flags & dns.flags.AA:
        return False
    authority = evidence.section(Section.AUTHORITY)
    has_ns = any(item.rrset.rdtype == dns.rdatatype.NS for item in authority)
    has_soa = any(item.rrset.rdtype == dns.rdatatype.SOA for item in authority)
    return has_ns and not has_soa and not evidence.section(Section.ANSWER)


_NOTES = frozenset({ValidationCode.ORIGINAL_TTL_EXCEEDED, ValidationCode.WILDCARD_EXPANDED,
                    ValidationCode.TRUST_FROM_CACHE})


def _is_note(code: ValidationCode) -> bool:
    return code in _NOTES


def _least_bad(statuses: list[Status]) -> Status:
    """With several signers and none secure: insecure beats indeterminate beats bogus? No:
    report the worst, except that an insecure signer path is a legitimate outcome."""
    if Status.INSECURE in statuses and Status.BOGUS not in statuses:
        return Status.INSECURE
    return worst(statuses) if statuses else Status.BOGUS


def _add(codes: list[ValidationCode], code: ValidationCode) -> None:
    if code not in codes:
        codes.append(code)


def _verdict(
    name_text: NameTexts,
    section: Section,
    rrset: dns.rrset.RRset,
    status: Status,
    rrsigs: Sequence[dns.rdtypes.ANY.RRSIG.RRSIG],
    reference: dns.rdtypes.ANY.RRSIG.RRSIG | None,
    codes: Sequence[ValidationCode],
    detail: Sequence[str],
    at_s: int,
) -> RRsetVerdict:
    unique: list[ValidationCode] = []
    for code in codes:
        _add(unique, code)
    return RRsetVerdict(
        section=section,
        name=name_text(rrset.name),
        rdtype=dns.rdatatype.to_text(rrset.rdtype),
        status=status,
        signer=name_text(reference.signer) if reference is not None else None,
        key_tags=tuple(sorted({int(s.key_tag) for s in rrsigs})),
        algorithms=tuple(sorted({int(s.algorithm) for s in rrsigs})),
        codes=tuple(unique),
        inception=serial_to_epoch(reference.inception, at_s) if reference else None,
        expiration=serial_to_epoch(reference.expiration, at_s) if reference else None,
        detail=tuple(dict.fromkeys(detail)),
    )


def _chain_signer(chain: list[tuple[RRsetEvidence, _Judged]],
                  name: dns.name.Name) -> dns.name.Name | None:
    """The deepest signer of the chain's RRSIGs that encloses the denied ``name``: the
    response itself shows that zone (RFC 4034 3.1.7: the signer is the zone holding the
    RRset), even before the capture has shown any of its keys."""
    signers = [rdata.signer for item, _ in chain if item.rrsigs is not None
               for rdata in item.rrsigs  # type: ignore[attr-defined]
               if name.is_subdomain(rdata.signer)]  # type: ignore[attr-defined]
    return max(signers, key=len, default=None)


def _deepest_of(*zones: dns.name.Name | None) -> dns.name.Name | None:
    """The deepest of the zones given (all enclose the same name)."""
    return max((zone for zone in zones if zone is not None), key=len, default=None)
