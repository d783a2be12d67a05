"""One RRSIG against candidate keys: every RRSIG field checked by us (RFC 4035 5.3.1), the
cryptography by dnspython, memoised on the canonical (RRset, RRSIG, DNSKEY) triple."""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import dns.dnssec
import dns.exception
import dns.name
import dns.rdataset
import dns.rdatatype
import dns.rdtypes.ANY.DNSKEY
import dns.rdtypes.ANY.RRSIG
import dns.rrset
from dns.rdtypes.dnskeybase import Flag

from auditor.findings.codes import ValidationCode
from auditor.memo import IdentityMemo
from auditor.trust.material import RecordDigests
from auditor.validate.budget import WorkBudget
from auditor.validate.policy import ValidationPolicy
from auditor.validate.verdict import TimeWindow

logger = logging.getLogger(__name__)

DNSKEY = dns.rdtypes.ANY.DNSKEY.DNSKEY
RRSIG = dns.rdtypes.ANY.RRSIG.RRSIG

_SERIAL = 1 << 32
_HALF = 1 << 31


def serial_lt(a: int, b: int) -> bool:
    """RFC 1982 3.2 serial-number 'a < b' in 32-bit space (used for RRSIG times, RFC 4034
    3.1.5)."""
    return a != b and (b - a) % _SERIAL < _HALF


def serial_to_epoch(value: int, near_s: int) -> int:
    """The absolute time (seconds) of 32-bit serial ``value`` closest to ``near_s``."""
    return near_s + ((value - near_s + _HALF) % _SERIAL) - _HALF


def owner_label_count(name: dns.name.Name) -> int:
    """RFC 4034 3.1.3 label count: no root label, no leading '*'."""
    count = len(name) - 1
    return count - 1 if name.is_wild() else count


def rsa_modulus_bits(key: DNSKEY) -> int:
    """Modulus size of an RSA DNSKEY (RFC 3110 2); 0 when malformed."""
    data = key.key
    if not data:
        return 0
    if data[0] == 0:
        if len(data) < 3:
            return 0
        exponent_length = int.from_bytes(data[1:3], "big")
        modulus = data[3 + exponent_length :]
    else:
        modulus = data[1 + data[0] :]
    stripped = modulus.lstrip(b"\x00")
    return 0 if not stripped else (len(stripped) - 1) * 8 + stripped[0].bit_length()


RSA_ALGORITHMS = frozenset({1, 5, 7, 8, 10})
"""RSAMD5, RSASHA1, RSASHA1-NSEC3-SHA1, RSASHA256, RSASHA512: keys in RFC 3110 2 format."""

KEY_TAG_MEMO_SIZE = 20_000
"""DNSKEYs whose key tag a validator memoises."""
KEY_INDEX_MEMO_SIZE = 1_000
"""Trusted key sets whose (algorithm, key tag) index a validator memoises."""
_INDEXED = 8
"""Key sets larger than this are looked up through an index by (algorithm, key tag)."""


class KeyTags:
    """A validator's memos of key tags and key set indexes (one per ``SignatureChecker``,
    so one per run; none is shared between runs or processes)."""

    __slots__ = ("_index", "tag")

    def __init__(self) -> None:
        self.tag: IdentityMemo[DNSKEY, int] = IdentityMemo(dns.dnssec.key_id, KEY_TAG_MEMO_SIZE)
        """RFC 4034 Appendix B key tag of a DNSKEY, memoised per key object (keys are few and
        shared by every response of their zone)."""
        self._index: IdentityMemo[tuple[DNSKEY, ...], dict[tuple[int, int], list[DNSKEY]]] = (
            IdentityMemo(self._index_keys, KEY_INDEX_MEMO_SIZE))
        """Trusted key sets (``ZoneTrust.keys``, immutable tuples) by (algorithm, tag): a zone
        that publishes hundreds of keys must not cost a scan of them per RRSIG (KeyTrap
        variants with RRSIGs naming absent tags)."""

    def _index_keys(self, keys: tuple[DNSKEY, ...]) -> dict[tuple[int, int], list[DNSKEY]]:
        index: dict[tuple[int, int], list[DNSKEY]] = {}
        tag = self.tag
        for key in keys:
            index.setdefault((int(key.algorithm), tag(key)), []).append(key)
        return index

    def candidates(self, keys: Sequence[DNSKEY], algorithm: int, tag: int) -> list[DNSKEY]:
        """The keys of ``keys`` with ``algorithm`` and key tag ``tag``, in their order."""
        if isinstance(keys, tuple) and len(keys) > _INDEXED:
            return self._index(keys).get((algorithm, tag), [])
        key_tag = self.tag
        return [k for k in keys if k.algorithm == algorithm and key_tag(k) == tag]

    def clear(self) -> None:
        """Forget every memoised tag and index (the caps stay)."""
        self.tag.clear()
        self._index.clear()


@dataclass(frozen=True, slots=True)
class SignatureResult:
    """The outcome of checking one RRSIG against candidate keys."""

    valid: bool
    """True when the RRSIG validates with one of the keys at one of the reference times."""
    unsupported: bool
    """True when the algorithm is not supported by the policy (neither valid nor bogus)."""
    codes: tuple[ValidationCode, ...]
    """Problems found (empty when valid, except notes such as original_ttl_exceeded)."""
    detail: tuple[str, ...]
    """Explanations of the problems."""
    key: DNSKEY | None
    """The key that validated."""
    wildcard: bool
    """The Labels field is smaller than the owner's label count (RFC 4035 5.3.4)."""
    failures: int = 0
    """Cryptographic checks that failed (counted against the per-RRset budget)."""

    @property
    def budget_exceeded(self) -> bool:
        """The check stopped because a validation budget ran out."""
        return ValidationCode.VALIDATION_BUDGET_EXCEEDED in self.codes


class SignatureChecker:
    """Checks RRSIGs; the crypto result of each distinct triple is cached in a bounded LRU.
    Every check is charged to ``budget`` (the response or zone being judged)."""

    def __init__(self, policy: ValidationPolicy, *, memo_size: int = 100_000,
                 digests: RecordDigests | None = None) -> None:
        """``digests``: the run's RRset digests and record wire forms (its key material's;
        without them the checker has its own)."""
        self.policy = policy
        self.digests = digests if digests is not None else RecordDigests()
        self.keys = KeyTags()
        """Key tags and key set indexes, memoised for this checker's run."""
        self._memo: OrderedDict[bytes, bool] = OrderedDict()
        self._memo_size = memo_size
        self.crypto_calls = 0
        self.memo_hits = 0
        self.budget = WorkBudget(None)
        """The budget checks are charged to; unlimited outside a response or zone."""
        self.window: TimeWindow | None = None
        """Narrowed by every validity-period check while a response is judged (``windowed``)."""

    @contextmanager
    def charged_to(self, budget: WorkBudget) -> Iterator[WorkBudget]:
        """Charge the checks made inside the block to ``budget``."""
        previous, self.budget = self.budget, budget
        try:
            yield budget
        finally:
            self.budget = previous

    def check(
        self,
        rrset: dns.rrset.RRset,
        rrsig: RRSIG,
        zone: dns.name.Name,
        keys: Sequence[DNSKEY],
        times_s: Sequence[int],
    ) -> SignatureResult:
        """Check ``rrsig`` over ``rrset`` with the trusted ``keys`` of ``zone``; the RRSIG is
        accepted if its validity period contains any of ``times_s``."""
        codes: list[ValidationCode] = []
        detail: list[str] = []
        owner = rrset.name
        wildcard = False
        tag, algorithm = int(rrsig.key_tag), int(rrsig.algorithm)
        # RFC 4035 5.3.1: the RRSIG must cover the RRset's type and have its class.
        if rrsig.type_covered != rrset.rdtype or rrsig.rdclass != rrset.rdclass:
            return _fail(ValidationCode.BAD_SIGNATURE, "RRSIG does not cover this RRset", wildcard)
        # RFC 4035 5.3.1: Signer's Name is the zone of the key and contains the owner.
        if rrsig.signer != zone or not owner.is_subdomain(rrsig.signer):
            return _fail(ValidationCode.SIGNER_NOT_ZONE,
                         f"signer {rrsig.signer} is not the zone {zone} containing {owner}",
                         wildcard)
        # RFC 4035 5.3.1: Labels must not exceed the owner's label count; fewer means the
        # RRset was synthesised from a wildcard (RFC 4035 5.3.4).
        labels = owner_label_count(owner)
        if rrsig.labels > labels:
            return _fail(ValidationCode.LABELS_INVALID,
                         f"RRSIG labels {rrsig.labels} > {labels} labels of {owner}", wildcard)
        wildcard = rrsig.labels < labels
        # RFC 4035 5.3.3: received TTL above Original TTL is capped, not fatal: note it.
        if rrset.ttl > rrsig.original_ttl:
            codes.append(ValidationCode.ORIGINAL_TTL_EXCEEDED)
            detail.append(f"TTL {rrset.ttl} exceeds original TTL {rrsig.original_ttl}")
        if not self.policy.supports_algorithm(algorithm):
            return SignatureResult(False, True, (ValidationCode.UNSUPPORTED_DNSKEY_ALGORITHM,),
                                   (f"algorithm {algorithm} not supported by policy "
                                    f"{self.policy.name}",), None, wildcard)
        time_problem = self._time_problem(rrsig, times_s)
        if time_problem is not None:
            return SignatureResult(False, False, (*codes, time_problem[0]),
                                   (*detail, time_problem[1]), None, wildcard)
        candidates = self.keys.candidates(keys, algorithm, tag)
        if not candidates:
            return SignatureResult(False, False, (*codes, ValidationCode.DNSKEY_MISSING),
                                   (*detail, f"DNSKEY for {zone} with key tag {tag} alg "
                                    f"{algorithm} not among its trusted keys"), None, wildcard)
        budget = self.budget
        cap = self.policy.budget.keys_per_signature
        # KeyTrap (CVE-2023-50387): RFC 4035 5.3.1 would try every key with the tag, and an
        # attacker publishes hundreds; like Unbound and BIND, only the first few are tried.
        colliding = len(candidates) > cap
        unsupported = failures = 0
        for key in candidates[:cap]:
            problem = self._key_problem(key, rrsig)
            if problem is not None:
                codes.append(problem[0])
                detail.append(problem[1])
                unsupported += problem[0] is ValidationCode.UNSUPPORTED_DNSKEY_ALGORITHM
                continue
            if not budget.may_check():
                return _exhausted(codes, detail, wildcard, failures,
                                  f"{zone}: {budget.exhausted} already spent")
            valid, computed = self._verify(rrset, rrsig, key)
            budget.charge_check(failed=not valid, computed=computed)
            if valid:
                return SignatureResult(True, False, tuple(codes), tuple(detail), key, wildcard,
                                       failures)
            failures += 1
            codes.append(ValidationCode.BAD_SIGNATURE)
            detail.append(f"signature by {zone} key {tag} alg {algorithm} does not verify")
        if colliding:
            budget.note(f"more than {cap} DNSKEYs of {zone} share key tag {tag}")
            return _exhausted(codes, detail, wildcard, failures,
                              f"{len(candidates)} DNSKEYs of {zone} share key tag {tag} alg "
                              f"{algorithm}; only {cap} were tried")
        return SignatureResult(False, unsupported == len(candidates), tuple(codes),
                               tuple(detail), None, wildcard, failures)

    @contextmanager
    def windowed(self, window: TimeWindow | None) -> Iterator[TimeWindow | None]:
        """Narrow ``window`` by every validity-period check made inside the block."""
        previous, self.window = self.window, window
        try:
            yield window
        finally:
            self.window = previous

    def _time_problem(
        self, rrsig: RRSIG, times_s: Sequence[int]
    ) -> tuple[ValidationCode, str] | None:
        problem = self._period_problem(rrsig, times_s)
        if self.window is not None:
            skew = self.policy.clock_skew_s
            self.window.note_period((rrsig.inception - skew) % _SERIAL,
                                    (rrsig.expiration + skew) % _SERIAL,
                                    tuple(times_s), problem is None)
        return problem

    def _period_problem(
        self, rrsig: RRSIG, times_s: Sequence[int]
    ) -> tuple[ValidationCode, str] | None:
        skew = self.policy.clock_skew_s
        problem: tuple[ValidationCode, str] | None = None
        for at_s in times_s:
            now = at_s % _SERIAL
            # RFC 4035 5.3.1 with RFC 4034 3.1.5 serial arithmetic (RFC 1982).
            if serial_lt((rrsig.expiration + skew) % _SERIAL, now):
                problem = (ValidationCode.SIGNATURE_EXPIRED,
                           f"RRSIG expired at {serial_to_epoch(rrsig.expiration, at_s)}, "
                           f"judged at {at_s}")
            elif serial_lt(now, (rrsig.inception - skew) % _SERIAL):
                problem = (ValidationCode.SIGNATURE_NOT_YET_VALID,
                           f"RRSIG valid from {serial_to_epoch(rrsig.inception, at_s)}, "
                           f"judged at {at_s}")
            else:
                return None
        return problem

    def _key_problem(self, key: DNSKEY, rrsig: RRSIG) -> tuple[ValidationCode, str] | None:
        tag = self.keys.tag(key)
        if key.protocol != 3:  # RFC 4034 2.1.2
            return ValidationCode.KEY_PROTOCOL_INVALID, f"DNSKEY {tag} protocol {key.protocol}"
        if not key.flags & Flag.ZONE:  # RFC 4034 2.1.1
            return ValidationCode.NO_ZONE_KEY_BIT, f"DNSKEY {tag} has no Zone Key flag"
        # RFC 5011 2.1: a revoked key only validates its own DNSKEY RRset self-signature.
        if key.flags & Flag.REVOKE and rrsig.type_covered != dns.rdatatype.DNSKEY:
            return ValidationCode.KEY_REVOKED, f"DNSKEY {tag} is revoked (RFC 5011)"
        # No key-size gate: Unbound and BIND verify RSA keys under 1024 bits (checked with a
        # 512-bit RSASHA256 zone), so a verifying signature is secure; zone health reports
        # the weak key (weak_key).
        return None

    def _verify(self, rrset: dns.rrset.RRset, rrsig: RRSIG, key: DNSKEY) -> tuple[bool, bool]:
        """(valid, computed): computed is False when the memo answered."""
        digests = self.digests
        memo_key = hashlib.sha256(
            digests.digest(rrset) + digests.wire(rrsig) + digests.wire(key)
        ).digest()
        cached = self._memo.get(memo_key)
        if cached is not None:
            self.memo_hits += 1
            self._memo.move_to_end(memo_key)
            return cached, False
        result = self._crypto(rrset, rrsig, key)
        self._memo[memo_key] = result
        if len(self._memo) > self._memo_size:
            self._memo.popitem(last=False)
        return result, True

    def _crypto(self, rrset: dns.rrset.RRset, rrsig: RRSIG, key: DNSKEY) -> bool:
        """One signature, one key. Times were judged already: pass a time inside the window."""
        self.crypto_calls += 1
        keyset = dns.rdataset.from_rdata_list(0, [key])
        try:
            dns.dnssec.validate_rrsig(
                rrset,
                rrsig,
                {rrsig.signer: keyset},
                now=rrsig.inception,
                policy=dns.dnssec.allow_all_policy,
            )
        except dns.dnssec.ValidationFailure:
            return False
        except Exception as exc:  # noqa: BLE001 - stranger-controlled keys must never crash us
            logger.debug("crypto check failed on malformed input: %s", exc)
            return False
        return True


def _fail(code: ValidationCode, text: str, wildcard: bool) -> SignatureResult:
    return SignatureResult(False, False, (code,), (text,), None, wildcard)


def _exhausted(
    codes: list[ValidationCode], detail: list[str], wildcard: bool, failures: int, text: str
) -> SignatureResult:
    return SignatureResult(False, False, (*codes, ValidationCode.VALIDATION_BUDGET_EXCEEDED),
                           (*detail, f"validation budget exceeded: {text}"), None, wildcard,
                           failures)
