"""Chain of trust: which DNSKEYs of a zone are trusted, from anchors down through validated DS
RRsets (RFC 4035 5.2), with DS-absence proofs and key-cache fallback; memoised per zone
until the key material changes."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import cast

import dns.dnssec
import dns.name
import dns.rdtypes.ANY.DNSKEY
import dns.rdtypes.ANY.DS
from dns.rdtypes.dnskeybase import Flag

from auditor.findings.codes import ValidationCode
from auditor.trust.anchors import TrustAnchor
from auditor.trust.keyview import KeyView
from auditor.trust.material import SignedRRset
from auditor.validate.budget import WorkBudget
from auditor.validate.denial import DenialMemos, ProofKind, prove_no_ds
from auditor.validate.ds import ds_digest, ds_names_any
from auditor.validate.policy import ValidationPolicy
from auditor.validate.signature import SignatureChecker
from auditor.validate.verdict import Status

logger = logging.getLogger(__name__)

DNSKEY = dns.rdtypes.ANY.DNSKEY.DNSKEY
DS = dns.rdtypes.ANY.DS.DS
MISMATCH_PREFIX = "trust anchor mismatch:"
"""How the detail naming a trust anchor mismatch starts (findings quote it)."""
_MemoKey = tuple[dns.name.Name, int | None]
"""(zone, trust anchor epoch): results differ only between anchor validity periods."""


@dataclass(frozen=True, slots=True)
class ZoneTrust:
    """What is known about a zone's keys."""

    zone: dns.name.Name
    """The zone."""
    status: Status
    """secure (keys trusted), insecure (proven unsigned), bogus, indeterminate."""
    keys: tuple[DNSKEY, ...] = ()
    """Trusted zone keys (secure only)."""
    codes: tuple[ValidationCode, ...] = ()
    """Reasons."""
    missing: tuple[str, ...] = ()
    """Material that was missing."""
    detail: tuple[str, ...] = ()
    """Explanations."""
    from_cache: bool = False
    """Trust came from the persistent key cache."""
    validated_by: str = ""
    """How the keys were validated (recorded in the cache), e.g. 'ds 12345/13/2 via test.'."""
    revoked: tuple[DNSKEY, ...] = ()
    """Keys seen revoked with a valid self-signature (RFC 5011)."""


@dataclass(slots=True)
class _Collected:
    codes: list[ValidationCode] = field(default_factory=list)
    detail: list[str] = field(default_factory=list)
    revoked: list[DNSKEY] = field(default_factory=list)

    def add(self, code: ValidationCode, text: str) -> None:
        if code not in self.codes:
            self.codes.append(code)
        self.detail.append(text)


def signature_times(entry: SignedRRset, rrsig_wire: bytes, at_s: int | None) -> tuple[int, ...]:
    """Reference times for a stored RRSIG: the fixed time, else the capture times of the
    packets that carried it (latest first)."""
    if at_s is not None:
        return (at_s,)
    seen = entry.signatures[rrsig_wire]
    return (seen.last_seen_ns // 1_000_000_000, seen.first_seen_ns // 1_000_000_000)


class ChainResolver:
    """Computes ZoneTrust per zone from a KeyView; results are memoised per material
    generation (so keys observed later, e.g. in live mode, are picked up)."""

    def __init__(
        self,
        view: KeyView,
        policy: ValidationPolicy,
        checker: SignatureChecker,
        *,
        denial: DenialMemos | None = None,
        at_s: int | None = None,
        max_memo: int = 100_000,
    ) -> None:
        """``denial``: the validator's NSEC/NSEC3 memos (without them the resolver has its
        own)."""
        self.view = view
        self.policy = policy
        self.checker = checker
        self.denial = denial if denial is not None else DenialMemos()
        self.at_s = at_s
        self._memo: dict[_MemoKey, ZoneTrust] = {}
        """Results other than secure: any new material may change them."""
        self._secure: dict[_MemoKey, ZoneTrust] = {}
        """Secure results: only new DNSKEY/DS material may change them."""
        self._max_memo = max_memo
        self._generation = -1
        self._key_generation = -1
        self._busy: set[_MemoKey] = set()

    def memo(self) -> dict[dns.name.Name, ZoneTrust]:
        """Current memoised results per zone (for cache updates); a secure result of any
        anchor period wins."""
        found = {key[0]: trust for key, trust in self._memo.items()}
        found.update((key[0], trust) for key, trust in self._secure.items())
        return found

    def trust(self, zone: dns.name.Name, at_s: int | None = None) -> ZoneTrust:
        """The trust status of ``zone``'s keys for a response judged at ``at_s`` (ignored when
        the resolver has a fixed time): only trust anchors in force then apply (RFC 9718
        2.2). Without any time every anchor held applies."""
        ref = self.at_s if self.at_s is not None else at_s
        if self._generation != self.view.generation:
            self._forget_stale()
        key = (zone, self.view.anchors.epoch_of(ref))
        known = self._secure.get(key) or self._memo.get(key)
        if known is not None:
            return known
        if key in self._busy:  # a loop in forged material: never recurse forever
            return ZoneTrust(zone, Status.INDETERMINATE, codes=(ValidationCode.CHAIN_INCOMPLETE,),
                             detail=(f"chain loop at {zone}",))
        self._busy.add(key)
        try:
            result = self._within_budget(zone, ref)
        finally:
            self._busy.discard(key)
        if result.status is Status.INDETERMINATE and self.view.cached_keys(zone):
            result = self._from_cache(zone, result)
        memo = self._secure if result.status is Status.SECURE else self._memo
        if len(memo) >= self._max_memo:
            memo.clear()  # a memo only: recomputed on demand, bounded under any traffic
        memo[key] = result
        return result

    def _forget_stale(self) -> None:
        """New DNSKEY/DS material can change any result; new denial material (NSEC/NSEC3) only
        results that are not secure yet: a proof of absence cannot undo validated keys."""
        if self._key_generation != self.view.key_generation:
            self._secure.clear()
            self._key_generation = self.view.key_generation
        self._memo.clear()  # holds only what was computed since the last change: small
        self._generation = self.view.generation

    # --- computing ---------------------------------------------------------------------------

    def _within_budget(self, zone: dns.name.Name, ref: int | None) -> ZoneTrust:
        """``_compute`` with a budget of its own: a zone's trust is memoised and shared by
        every response, so its work (DS matching, DNSKEY self-signatures, DS-absence proofs)
        is bounded per zone, not charged to whichever response asked first. Keys proven by a
        valid signature stay trusted; anything else cut short is bogus (KeyTrap
        CVE-2023-50387, NSEC3 CVE-2023-50868)."""
        budget = WorkBudget(self.policy.budget)
        with self.checker.charged_to(budget):
            result = self._compute(zone, ref)
        if budget.exhausted is None or result.status is Status.SECURE:
            return result
        return ZoneTrust(zone, Status.BOGUS, (),
                         (ValidationCode.VALIDATION_BUDGET_EXCEEDED, ValidationCode.DNSSEC_BOGUS),
                         (), (*result.detail, budget.detail(f"the keys of {zone}")))

    def _compute(self, zone: dns.name.Name, ref: int | None) -> ZoneTrust:
        held = self.view.anchors.for_zone(zone)
        if held:
            in_force = self.view.anchors.for_zone(zone, ref)
            if not in_force:
                return self._no_anchor_in_force(zone, held, ref)
            return self._from_anchors(zone, in_force)
        if self.view.anchors.closest(zone) is None and not self._cached_above(zone):
            return ZoneTrust(zone, Status.INDETERMINATE, codes=(ValidationCode.NO_TRUST_ANCHOR,),
                             missing=(f"trust anchor for {zone} or an ancestor",),
                             detail=(f"no trust anchor at or above {zone}",))
        return self._from_parent(zone, ref)

    def _no_anchor_in_force(
        self, zone: dns.name.Name, held: Sequence[TrustAnchor], ref: int | None
    ) -> ZoneTrust:
        """RFC 9718 2.2: an anchor is used only within its validity period. With none in force
        nothing starts the chain: indeterminate, naming the keys seen and the anchors held."""
        period = self.view.anchors.period_text(ref)
        seen = _key_tags_seen(self.view.material.dnskey_rrsets(zone), self.checker.keys.tag)
        keys = f"; keys of {zone} seen: {seen}" if seen else ""
        text = (f"no trust anchor of {zone} is in force {period}{keys}; anchors held: "
                f"{', '.join(a.describe() for a in held)}")
        return ZoneTrust(zone, Status.INDETERMINATE, (),
                         (ValidationCode.NO_ANCHOR_IN_FORCE, ValidationCode.NO_TRUST_ANCHOR),
                         (text,), (text,))

    def _cached_above(self, zone: dns.name.Name) -> bool:
        return any(zone.is_subdomain(z) for z in self.view.cached_zones())

    def _from_anchors(self, zone: dns.name.Name, anchors: Sequence[TrustAnchor]) -> ZoneTrust:
        ds_records = [a.ds for a in anchors if a.ds is not None]
        key_anchors = [a.dnskey for a in anchors if a.dnskey is not None]
        via = "anchor " + ", ".join(sorted({a.source for a in anchors}))
        if key_anchors:
            keyed = self._from_trusted_keys(zone, key_anchors, via, anchors)
            if keyed.status is Status.SECURE or not ds_records:
                return keyed
        return self._from_ds(zone, ds_records, via, anchors)

    def _from_cache(self, zone: dns.name.Name, before: ZoneTrust) -> ZoneTrust:
        keys = [cached.rdata() for cached in self.view.cached_keys(zone)]
        result = self._from_trusted_keys(zone, keys, "key cache")
        if result.status is not Status.SECURE:
            return before
        return ZoneTrust(zone, Status.SECURE, result.keys,
                         (*result.codes, ValidationCode.TRUST_FROM_CACHE), (),
                         (*result.detail, f"keys of {zone} trusted from the key cache "
                          f"({'; '.join(before.missing) or 'chain incomplete'})"),
                         from_cache=True, validated_by="key cache")

    def _from_trusted_keys(
        self,
        zone: dns.name.Name,
        trusted: Sequence[DNSKEY],
        via: str,
        anchors: Sequence[TrustAnchor] = (),
    ) -> ZoneTrust:
        """DNSKEY anchors (or cached keys) are trusted as such; any DNSKEY RRset they sign
        adds its zone keys. A key seen revoked with a valid self-signature is dropped."""
        collected = _Collected()
        usable = [k for k in trusted if not self._revoked_in_capture(zone, k, collected)]
        usable = [k for k in usable if self.policy.supports_algorithm(int(k.algorithm))]
        if not usable:
            if collected.revoked:
                return ZoneTrust(zone, Status.BOGUS, (), tuple(collected.codes), (),
                                 tuple(collected.detail), revoked=tuple(collected.revoked))
            return _unsupported(zone, ValidationCode.UNSUPPORTED_DNSKEY_ALGORITHM,
                                f"no trusted key of {zone} uses a supported algorithm")
        keys = {k.to_digestable(): k for k in usable}
        signed = signed_entries(self.view.material.dnskey_rrsets(zone))
        for entry in signed:
            if self._dnskey_rrset_signed(zone, entry, usable, collected):
                keys.update((k.to_digestable(), k) for k in _zone_keys(entry))
        if anchors and signed and len(keys) == len(usable) and not any(
                k in entry.rrset for k in usable for entry in signed):
            # The zone publishes keys, none of them the anchored one: another root/anchor.
            return self._anchor_mismatch(zone, anchors, signed)
        return ZoneTrust(zone, Status.SECURE, tuple(keys.values()), (), (),
                         (f"keys of {zone} trusted via {via}",), validated_by=via,
                         revoked=tuple(collected.revoked))

    def _anchor_mismatch(
        self, zone: dns.name.Name, anchors: Sequence[TrustAnchor], signed: Sequence[SignedRRset]
    ) -> ZoneTrust:
        """RFC 4035 5 / RFC 9718: the zone's signed DNSKEY RRset holds no key an anchor in
        force names. A validator holding these anchors calls its data bogus; the cause is the
        anchor configuration (a private root, a lab, a network with its own anchor), named."""
        if any(a.problem for a in anchors):  # a malformed anchor file, not another root
            hint = "correct the anchor: as written it can match no key"
        else:
            hint = f"if this network uses its own anchor for {zone}, pass it with --trust-anchor"
        seen = _key_tags_seen(signed, self.checker.keys.tag)
        text = (f"{MISMATCH_PREFIX} the DNSKEY RRset of {zone} holds keys "
                f"{seen}, none of them matches the trust anchors in force "
                f"({', '.join(a.describe() for a in anchors)}); {hint}")
        return ZoneTrust(zone, Status.BOGUS, (),
                         (ValidationCode.TRUST_ANCHOR_MISMATCH, ValidationCode.DNSSEC_BOGUS),
                         (), (text,))

    def _revoked_in_capture(
        self, zone: dns.name.Name, key: DNSKEY, collected: _Collected
    ) -> bool:
        revoked = cast(DNSKEY, key.replace(flags=key.flags | Flag.REVOKE))
        if revoked == key:
            return False
        for entry in self.view.material.dnskey_rrsets(zone):
            if revoked in entry.rrset and self._dnskey_rrset_signed(zone, entry, [revoked],
                                                                      _Collected()):
                collected.add(ValidationCode.KEY_REVOKED,
                              f"anchor key {dns.dnssec.key_id(key)} of {zone} was revoked "
                              f"(RFC 5011 2.1)")
                collected.revoked.append(revoked)
                return True
        return False

    def _dnskey_rrset_signed(
        self,
        zone: dns.name.Name,
        entry: SignedRRset,
        keys: Sequence[DNSKEY],
        collected: _Collected,
    ) -> bool:
        if not entry.signatures:
            collected.add(ValidationCode.RRSIGS_MISSING, f"DNSKEY RRset of {zone} unsigned")
            return False
        for wire, seen in entry.signatures.items():
            result = self.checker.check(entry.rrset, seen.rrsig, zone, keys,
                                        signature_times(entry, wire, self.at_s))
            if result.valid:
                return True
            for code, text in zip(result.codes, result.detail, strict=False):
                collected.add(code, f"DNSKEY RRset of {zone}: {text}")
        return False

    def _from_ds(
        self,
        zone: dns.name.Name,
        ds_records: Sequence[DS],
        via: str,
        anchors: Sequence[TrustAnchor] = (),
    ) -> ZoneTrust:
        # RFC 4035 5.2 / RFC 6840 5.2: only DS with supported algorithm and digest count;
        # if none is supported the zone is treated as insecure.
        supported = [ds for ds in ds_records if self.policy.supports_digest(int(ds.digest_type))
                     and self.policy.supports_algorithm(int(ds.algorithm))]
        if not supported:
            digests_ok = any(self.policy.supports_digest(int(ds.digest_type))
                             for ds in ds_records)
            code = (ValidationCode.UNSUPPORTED_DNSKEY_ALGORITHM if digests_ok
                    else ValidationCode.UNSUPPORTED_DS_DIGEST)
            return _unsupported(zone, code, f"no DS of {zone} uses a supported algorithm and "
                                f"digest under policy {self.policy.name}")
        seen = self.view.material.dnskey_rrsets(zone)
        entries = signed_entries(seen)
        if not seen and self.view.material.dnskey_nodata_seen(zone) is not None:
            # RFC 4035 5.2: the parent's validated DS names keys the zone's own servers say
            # do not exist: no DNSKEY can match, so the zone is bogus, not merely unknown.
            text = (f"the DS of {zone} names keys, but its servers answered DNSKEY with no "
                    f"data")
            return ZoneTrust(zone, Status.BOGUS, (),
                             (ValidationCode.DNSKEY_MISSING, ValidationCode.DNSSEC_BOGUS),
                             (), (text,))
        if not entries and any(entry.stripped_with_do for entry in seen):
            # RFC 4035 3.1.1 / 5.2: asked with DO, the zone's DNSKEY RRset came without the
            # self-signature the DS chain needs: the keys cannot be trusted, bogus.
            text = f"DNSKEY RRset of {zone} arrived without RRSIGs although DO was set"
            return ZoneTrust(zone, Status.BOGUS, (),
                             (ValidationCode.RRSIGS_MISSING, ValidationCode.DNSSEC_BOGUS),
                             (), (text,))
        if not entries:
            return _dnskey_not_seen(zone, supported, unsigned_only=bool(seen))
        collected = _Collected()
        keys: dict[bytes, DNSKEY] = {}
        used: list[str] = []
        for entry in entries:
            for ds in supported:
                for key in self._ds_matches(zone, entry, ds, collected, bool(anchors)):
                    if self._dnskey_rrset_signed(zone, entry, [key], collected):
                        keys.update((k.to_digestable(), k) for k in _zone_keys(entry))
                        # The key the DS names signed the RRset, so it is trusted with it,
                        # REVOKE bit or not (RFC 5011 binds trust anchors; as Unbound).
                        keys[key.to_digestable()] = key
                        used.append(f"ds {ds.key_tag}/{ds.algorithm}/{ds.digest_type}")
        if keys:
            how = f"{', '.join(sorted(set(used)))} via {via}"
            return ZoneTrust(zone, Status.SECURE, tuple(keys.values()), (), (),
                             (f"keys of {zone} trusted by {how}",), validated_by=how,
                             revoked=tuple(collected.revoked))
        if anchors and not any(ds_names_any(zone, ds, entry.rrset)
                               for ds in supported for entry in entries):
            return self._anchor_mismatch(zone, anchors, entries)
        return ZoneTrust(zone, Status.BOGUS, (), (*collected.codes, ValidationCode.DNSSEC_BOGUS),
                         (), tuple(collected.detail) or (f"no DNSKEY of {zone} validates",),
                         revoked=tuple(collected.revoked))

    def _ds_matches(
        self,
        zone: dns.name.Name,
        entry: SignedRRset,
        ds: DS,
        collected: _Collected,
        is_anchor: bool,
    ) -> list[DNSKEY]:
        """Keys of ``entry`` matching ``ds`` by tag, algorithm and digest, with the zone bit
        set (RFC 4035 5.2, RFC 4034 2.1.1), and not revoked when ``ds`` is a trust anchor
        (RFC 5011 2.1 binds trust anchors; a key the parent's DS names is trusted by that DS,
        REVOKE bit or not, as Unbound and BIND do)."""
        found = []
        key_tag = self.checker.keys.tag
        candidates = [k for k in entry.rrset
                      if k.algorithm == ds.algorithm and key_tag(k) == ds.key_tag]
        if not candidates:
            collected.add(ValidationCode.DNSKEY_MISSING,
                          f"DNSKEY for {zone} with key tag {ds.key_tag} alg {ds.algorithm} "
                          f"not in a DNSKEY RRset seen")
        mismatches = 0
        limit = self.policy.budget.ds_match_failures
        for key in candidates:
            if mismatches >= limit:
                # KeyTrap (CVE-2023-50387) with colliding key tags under one DS: Unbound gives
                # up after MAX_DS_MATCH_FAILURES (4) keys that do not match.
                self.checker.budget.note(f"{limit} DNSKEYs of {zone} with DS key tag "
                                         f"{ds.key_tag} fail to match its digest")
                break
            computed = ds_digest(zone, key, ds.digest_type)
            if computed is None:
                continue
            if computed != ds.digest:
                mismatches += 1
                collected.add(ValidationCode.DS_MISMATCH,
                              f"DS {ds.key_tag}/{ds.algorithm}/{ds.digest_type} digest does not "
                              f"match DNSKEY {ds.key_tag} of {zone}")
                continue
            if not key.flags & Flag.ZONE:  # RFC 4035 5.2 / RFC 4034 2.1.1
                collected.add(ValidationCode.NO_ZONE_KEY_BIT,
                              f"DNSKEY {ds.key_tag} of {zone} matches the DS but has no Zone "
                              f"Key flag")
                continue
            if key.protocol != 3:  # RFC 4034 2.1.2
                collected.add(ValidationCode.KEY_PROTOCOL_INVALID,
                              f"DNSKEY {ds.key_tag} of {zone} protocol {key.protocol}")
                continue
            if key.flags & Flag.REVOKE and is_anchor:  # RFC 5011 2.1
                collected.add(ValidationCode.KEY_REVOKED,
                              f"DNSKEY {ds.key_tag} of {zone} matches the DS but is revoked")
                collected.revoked.append(key)
                continue
            found.append(key)
        return found

    # --- from the parent ---------------------------------------------------------------------

    def _from_parent(self, zone: dns.name.Name, ref: int | None) -> ZoneTrust:
        if zone == dns.name.root:
            return ZoneTrust(zone, Status.INDETERMINATE, codes=(ValidationCode.NO_TRUST_ANCHOR,),
                             missing=("trust anchor for .",))
        signed = [e for e in self.view.material.ds_rrsets(zone) if e.signatures]
        if signed:
            return self._from_ds_rrsets(zone, signed, ref)
        proven = self._ds_absence(zone, ref)
        if proven is not None:
            return proven
        parent = self._enclosing_known_zone(zone.parent())
        if parent is not None and parent != zone.parent():
            # RFC 4035 5.2: below a delegation proven insecure everything is insecure; a
            # validator never asks those zones for their DS (nor can they have a signed one).
            cut = self.insecure_cut(zone.parent(), parent, ref)
            if cut is not None:
                return _inherit(zone, cut)
        if parent is not None:
            above = self.trust(parent, ref)
            if above.status in (Status.INSECURE, Status.BOGUS):
                return _inherit(zone, above)
            if above.status is Status.INDETERMINATE:
                return _inherit(zone, above, (f"DS for {zone} not seen",))
        text = f"DS for {zone} not seen"
        return ZoneTrust(zone, Status.INDETERMINATE, (), (ValidationCode.DS_MISSING,),
                         (text,), (text,))

    def _enclosing_known_zone(self, name: dns.name.Name) -> dns.name.Name | None:
        """The deepest ancestor-or-self of ``name`` with DNSKEY material, an anchor, cached
        keys, or a signed DS RRset (a zone its parent says is signed: when its keys are
        missing or broken, everything below inherits that)."""
        material = self.view.material
        candidate = name
        while True:
            if (material.dnskey_rrsets(candidate) or self.view.anchors.for_zone(candidate)
                    or self.view.cached_keys(candidate)
                    or any(entry.signatures for entry in material.ds_rrsets(candidate))):
                return candidate
            if candidate == dns.name.root:
                return None
            candidate = candidate.parent()

    def insecure_cut(
        self, name: dns.name.Name, zone: dns.name.Name, at_s: int | None = None
    ) -> ZoneTrust | None:
        """The delegation between ``zone`` and ``name`` that a proof of no DS anywhere in the
        capture (a DS NODATA proof, an NSEC3 opt-out span) makes insecure: unsigned data at or
        below it belongs to the unsigned child zone (RFC 4035 5.2, RFC 5155 6), not to
        ``zone``. When that proof itself fails (its signature does not validate) the result is
        bogus: the claimed insecure cut is not proven, as a validator finds. None if none."""
        ref = self.at_s if self.at_s is not None else at_s
        for candidate in _ancestors_below(name, zone):
            if any(entry.signatures for entry in self.view.material.ds_rrsets(candidate)):
                continue  # a signed DS RRset outranks an opt-out span covering the name
            proven = self._ds_absence(candidate, ref)
            if proven is not None and proven.status in (Status.INSECURE, Status.BOGUS):
                return proven
        return None

    def validated_ds(self, zone: dns.name.Name, at_s: int | None = None) -> str | None:
        """The signer of a DS RRset of ``zone`` seen and validated anywhere in the capture
        (RFC 4035 5.2: the delegation is secure), else None."""
        ref = self.at_s if self.at_s is not None else at_s
        signed = [e for e in self.view.material.ds_rrsets(zone) if e.signatures]
        for entry in signed:
            for outcome in self._ds_rrset_outcomes(zone, entry, ref):
                if outcome.status is Status.SECURE:
                    return outcome.validated_by
        return None

    def _from_ds_rrsets(
        self, zone: dns.name.Name, entries: Sequence[SignedRRset], ref: int | None
    ) -> ZoneTrust:
        outcomes: list[ZoneTrust] = []
        for entry in entries:
            outcomes.extend(self._ds_rrset_outcomes(zone, entry, ref))
        secure_ds: list[DS] = []
        for outcome in outcomes:
            if outcome.status is Status.SECURE:
                secure_ds.extend(outcome.keys)  # type: ignore[arg-type]
        if secure_ds:
            signers = sorted({o.validated_by for o in outcomes if o.status is Status.SECURE})
            found = self._from_ds(zone, secure_ds, ", ".join(signers))
            if found.status is Status.SECURE and any(
                    o.from_cache for o in outcomes if o.status is Status.SECURE):
                # The parent's keys came from the key cache: so does this trust (it is
                # reported with trust_from_cache and never stored back as validated).
                found = dataclasses.replace(
                    found, from_cache=True,
                    codes=(*found.codes, ValidationCode.TRUST_FROM_CACHE),
                    validated_by=f"{found.validated_by} (key cache)")
            return found
        for status in (Status.INSECURE, Status.BOGUS, Status.INDETERMINATE):
            chosen = [o for o in outcomes if o.status is status]
            if chosen:
                return _merge(zone, status, chosen)
        return ZoneTrust(zone, Status.INDETERMINATE, (), (ValidationCode.DS_MISSING,),
                         (f"DS for {zone} not seen",))

    def _ds_rrset_outcomes(
        self, zone: dns.name.Name, entry: SignedRRset, ref: int | None
    ) -> list[ZoneTrust]:
        """Judge one DS RRset copy per signer; a SECURE outcome carries the DS records in
        ``keys`` and the parent in ``validated_by``."""
        outcomes = []
        by_signer: dict[dns.name.Name, list[bytes]] = {}
        for wire, seen in entry.signatures.items():
            by_signer.setdefault(seen.rrsig.signer, []).append(wire)
        for signer, wires in by_signer.items():
            if not (zone.is_subdomain(signer) and zone != signer):
                outcomes.append(ZoneTrust(zone, Status.BOGUS, (),
                                          (ValidationCode.SIGNER_NOT_ZONE,), (),
                                          (f"DS of {zone} signed by {signer}",)))
                continue
            parent = self.trust(signer, ref)
            if parent.status is not Status.SECURE:
                outcomes.append(_inherit(zone, parent))
                continue
            collected = _Collected()
            for wire in wires:
                result = self.checker.check(entry.rrset, entry.signatures[wire].rrsig, signer,
                                            parent.keys, signature_times(entry, wire, self.at_s))
                if result.valid:
                    outcomes.append(ZoneTrust(zone, Status.SECURE, tuple(entry.rrset),
                                              validated_by=str(signer),
                                              from_cache=parent.from_cache))  # type: ignore[arg-type]
                    break
                for code, text in zip(result.codes, result.detail, strict=False):
                    collected.add(code, f"DS RRset of {zone}: {text}")
            else:
                outcomes.append(ZoneTrust(zone, Status.BOGUS, (),
                                          (*collected.codes, ValidationCode.DNSSEC_BOGUS), (),
                                          tuple(collected.detail)))
        return outcomes

    def _ds_absence(self, zone: dns.name.Name, ref: int | None) -> ZoneTrust | None:
        """A validated NSEC/NSEC3 proof that ``zone`` has no DS makes it insecure."""
        material = self.view.material
        ancestor = zone.parent()
        while True:
            entries = material.denial_rrsets(ancestor)
            if entries:
                proof = prove_no_ds(zone, ancestor, entries, self.policy,
                                    budget=self.checker.budget, memos=self.denial)
                if proof is not None:
                    return self._judge_proof(zone, proof, ref)
            if ancestor == dns.name.root:
                return None
            ancestor = ancestor.parent()

    def _judge_proof(self, zone: dns.name.Name, proof: object, ref: int | None) -> ZoneTrust:
        from auditor.validate.denial import DenialProof

        assert isinstance(proof, DenialProof)
        parent = self.trust(proof.zone, ref)
        if parent.status is not Status.SECURE:
            return _inherit(zone, parent)
        collected = _Collected()
        for entry in proof.rrsets:
            if not self._rrset_valid(entry, proof.zone, parent.keys, collected):
                return ZoneTrust(zone, Status.BOGUS, (),
                                 (*collected.codes, ValidationCode.DNSSEC_BOGUS), (),
                                 tuple(collected.detail))
        codes = [ValidationCode.INSECURE_DELEGATION]
        if proof.kind is ProofKind.NSEC3_OPT_OUT:
            codes.append(ValidationCode.NSEC3_OPT_OUT)
        elif proof.kind is ProofKind.NSEC3_ITERATIONS:
            codes.append(ValidationCode.NSEC3_ITERATIONS_TOO_HIGH)
        return ZoneTrust(zone, Status.INSECURE, (), tuple(codes), (),
                         (f"{zone} is an insecure delegation: {proof.detail}",))

    def _rrset_valid(
        self,
        entry: SignedRRset,
        zone: dns.name.Name,
        keys: Sequence[DNSKEY],
        collected: _Collected,
    ) -> bool:
        for wire, seen in entry.signatures.items():
            if seen.rrsig.signer != zone:
                continue
            result = self.checker.check(entry.rrset, seen.rrsig, zone, keys,
                                        signature_times(entry, wire, self.at_s))
            if result.valid:
                return True
            for code, text in zip(result.codes, result.detail, strict=False):
                collected.add(code, f"{entry.rrset.name} {entry.rrset.rdtype.name}: {text}")
        return False


def _zone_keys(entry: SignedRRset) -> list[DNSKEY]:
    """Keys of a validated DNSKEY RRset usable for data: zone bit, protocol 3, not revoked."""
    return [k for k in entry.rrset
            if k.flags & Flag.ZONE and k.protocol == 3 and not k.flags & Flag.REVOKE]


def _unsupported(zone: dns.name.Name, code: ValidationCode, text: str) -> ZoneTrust:
    return ZoneTrust(zone, Status.INSECURE, (), (code,), (), (text,))


def _inherit(
    zone: dns.name.Name, above: ZoneTrust, extra_missing: tuple[str, ...] = ()
) -> ZoneTrust:
    codes = above.codes
    if above.status is Status.BOGUS and ValidationCode.CHAIN_INCOMPLETE not in codes:
        codes = (*codes, ValidationCode.CHAIN_INCOMPLETE)
    # The nearest missing link first: the DS of this zone before what is missing above it.
    return ZoneTrust(zone, above.status, (), codes, (*extra_missing, *above.missing),
                     (*above.detail, f"{zone} inherits {above.status} from {above.zone}"))


def _merge(zone: dns.name.Name, status: Status, outcomes: Sequence[ZoneTrust]) -> ZoneTrust:
    codes: list[ValidationCode] = []
    missing: list[str] = []
    detail: list[str] = []
    for outcome in outcomes:
        codes.extend(c for c in outcome.codes if c not in codes)
        missing.extend(m for m in outcome.missing if m not in missing)
        detail.extend(outcome.detail)
    return ZoneTrust(zone, status, (), tuple(codes), tuple(missing), tuple(detail))


def signed_entries(entries: Sequence[SignedRRset]) -> tuple[SignedRRset, ...]:
    """DNSKEY RRset copies seen with RRSIGs: a copy fetched with DO clear proves nothing about
    which keys the zone signs with (RFC 4035 5.2 needs the self-signature)."""
    return tuple(entry for entry in entries if entry.signatures)


def _key_tags_seen(entries: Sequence[SignedRRset], key_tag: Callable[[DNSKEY], int]) -> str:
    """``19036/8 (KSK), 11324/8`` for every key in the DNSKEY RRsets seen (``key_tag``: the
    validator's memo of key tags)."""
    tags: dict[tuple[int, int], bool] = {}
    for entry in entries:
        for key in entry.rrset:
            index = (key_tag(key), int(key.algorithm))
            tags[index] = tags.get(index, False) or bool(key.flags & Flag.SEP)
    return ", ".join(f"{tag}/{alg}{' (KSK)' if sep else ''}"
                     for (tag, alg), sep in sorted(tags.items()))


def _dnskey_not_seen(zone: dns.name.Name, supported: Sequence[DS], *,
                     unsigned_only: bool) -> ZoneTrust:
    """Indeterminate: the keys the DS (or anchor) names were not seen signed."""
    wanted = ", ".join(f"{ds.key_tag}/{ds.algorithm}" for ds in supported)
    if unsigned_only:
        text = (f"DNSKEY RRset of {zone} seen only without RRSIGs (fetched with DO clear); "
                f"the key(s) {wanted} the DS names cannot be validated from it")
        return ZoneTrust(zone, Status.INDETERMINATE, (),
                         (ValidationCode.DNSKEY_UNSIGNED_ONLY, ValidationCode.DNSKEY_MISSING),
                         (text,), (text,))
    missing = tuple(f"DNSKEY for {zone} with key tag {ds.key_tag} alg {ds.algorithm} "
                    f"not seen" for ds in supported)
    return ZoneTrust(zone, Status.INDETERMINATE, (), (ValidationCode.DNSKEY_MISSING,),
                     missing, missing)


def _ancestors_below(name: dns.name.Name, zone: dns.name.Name) -> list[dns.name.Name]:
    """``name`` and its ancestors strictly below ``zone``, the closest to ``zone`` first."""
    found: list[dns.name.Name] = []
    candidate = name
    while candidate != zone and candidate.is_subdomain(zone) and len(candidate) > 1:
        found.append(candidate)
        candidate = candidate.parent()
    return found[::-1]
