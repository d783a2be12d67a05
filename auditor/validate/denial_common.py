"""Shared vocabulary of the NSEC/NSEC3 proofs: what is claimed, the result, bitmaps and hashing."""

from __future__ import annotations

import base64
import functools
import hashlib
from dataclasses import dataclass
from enum import StrEnum

import dns.name
import dns.rdatatype
import dns.rdtypes.ANY.NSEC
import dns.rdtypes.ANY.NSEC3
import dns.rrset

from auditor.findings.codes import ValidationCode
from auditor.validate.budget import WorkBudget

NSEC = dns.rdtypes.ANY.NSEC.NSEC
NSEC3 = dns.rdtypes.ANY.NSEC3.NSEC3
OPT_OUT = 0x01
SHA1 = 1
SHA1_LENGTH = 20
"""Octets of a SHA-1 NSEC3 hash (owner label and Next Hashed Owner Name, RFC 5155 3.1.7)."""
HASH_MEMO_SIZE = 65_536
"""Bound of a validator's NSEC3 hash LRU (name, salt, iterations), shared across responses."""
BITMAP_MEMO_SIZE = 4096
"""Bound of a validator's type bitmap LRU (by window bytes)."""


class Claim(StrEnum):
    """What a response claims and a proof must establish."""

    NXDOMAIN = "nxdomain"
    """The name does not exist, nor a wildcard that could match it (RFC 4035 5.4, RFC 5155
    8.4)."""
    NODATA = "nodata"
    """The name exists (or a wildcard matches it) without the queried type (RFC 4035 5.4,
    RFC 5155 8.5-8.7)."""
    WILDCARD_ANSWER = "wildcard_answer"
    """An answer synthesised from a wildcard: the exact name must not exist (RFC 4035 5.3.4,
    RFC 5155 8.8)."""
    REFERRAL = "referral"
    """A delegation without DS: the parent proves the DS absent (RFC 4035 5.2, RFC 5155 8.9)."""


class Outcome(StrEnum):
    """The outcome of a proof, before the signatures of the records it used are weighed."""

    PROVEN = "proven"
    """A complete proof."""
    OPT_OUT = "opt_out"
    """Complete, but it relies on an opt-out span: insecure (RFC 5155 9.2)."""
    UNUSABLE = "unusable"
    """The NSEC3 parameters are unusable (iterations above policy, unknown hash): insecure
    (RFC 9276 3.2, RFC 5155 8.1)."""
    FAILED = "failed"
    """Records are missing or contradict the claim: bogus."""


@dataclass(frozen=True, slots=True)
class ProofResult:
    """The judgement of the NSEC/NSEC3 records of one response about one claim."""

    outcome: Outcome
    """Whether the proof holds."""
    codes: tuple[ValidationCode, ...]
    """Why it failed, plus notes (RFC 9276 guidance) when it holds."""
    used: tuple[dns.rrset.RRset, ...]
    """The NSEC/NSEC3 RRsets the proof relies on; each must validate in the zone."""
    detail: tuple[str, ...]
    """Explanations."""


def failed(code: ValidationCode, text: str, *more: ValidationCode) -> ProofResult:
    """A failed proof with its reason."""
    return ProofResult(Outcome.FAILED, (code, *more), (), (text,))


def bitmap_types(rdata: NSEC | NSEC3) -> frozenset[int]:
    """The RR types present in an NSEC/NSEC3 type bitmap (RFC 4034 4.1.2); not memoised (a
    validator's proofs use ``DenialMemos.bitmap_types``)."""
    return _bitmap_types(_windows(rdata))


def _windows(rdata: NSEC | NSEC3) -> tuple[tuple[int, bytes], ...]:
    return tuple((w, bytes(b)) for w, b in rdata.windows)


def _bitmap_types(windows: tuple[tuple[int, bytes], ...]) -> frozenset[int]:
    types: set[int] = set()
    for window, bitmap in windows:
        for index, byte in enumerate(bitmap):
            types.update(
                window * 256 + index * 8 + bit for bit in range(8) if byte & (0x80 >> bit)
            )
    return frozenset(types)


def is_delegation_bitmap(types: frozenset[int]) -> bool:
    """NS without SOA: the record was made at a zone cut on the parent side (RFC 6840 4.1)."""
    return dns.rdatatype.NS in types and dns.rdatatype.SOA not in types


def is_insecure_delegation_bitmap(types: frozenset[int]) -> bool:
    """NS present, DS and SOA absent (RFC 4035 5.2, RFC 6840 4.4: SOA means a zone apex,
    i.e. the child side, which cannot prove anything about the parent's DS)."""
    return is_delegation_bitmap(types) and dns.rdatatype.DS not in types


def denies_type(types: frozenset[int], rdtype: int) -> bool:
    """The bitmap lacks ``rdtype`` and CNAME (RFC 4035 3.1.3.1, RFC 5155 8.5)."""
    return rdtype not in types and dns.rdatatype.CNAME not in types


def nsec3_digest(name: dns.name.Name, salt: bytes, iterations: int) -> bytes:
    """SHA-1 NSEC3 hash of ``name`` (RFC 5155 5): IH(salt, x, 0) = H(x || salt),
    IH(salt, x, k) = H(IH(salt, x, k-1) || salt); not memoised (a validator's proofs use
    ``DenialMemos.digest``)."""
    digest = hashlib.sha1((name.canonicalize().to_wire() or b"") + salt).digest()
    for _ in range(iterations):
        digest = hashlib.sha1(digest + salt).digest()
    return digest


class DenialMemos:
    """A validator's memos of the NSEC/NSEC3 proofs, one per run (none is shared between
    runs or processes): type bitmaps by their window bytes and NSEC3 hashes by (name, salt,
    iterations), in bounded LRUs because traffic repeats the same records and names.
    dnspython names hash and compare case-insensitively, as the hash is taken over the
    canonical (lower-case) wire form."""

    __slots__ = ("_bitmaps", "digest")

    def __init__(self, hashes: int = HASH_MEMO_SIZE, bitmaps: int = BITMAP_MEMO_SIZE) -> None:
        self._bitmaps = functools.lru_cache(maxsize=bitmaps)(_bitmap_types)
        self.digest = functools.lru_cache(maxsize=hashes)(nsec3_digest)
        """``nsec3_digest``, memoised."""

    def bitmap_types(self, rdata: NSEC | NSEC3) -> frozenset[int]:
        """``bitmap_types``, memoised."""
        return self._bitmaps(_windows(rdata))

    def hash_bytes(self, name: dns.name.Name, rdata: NSEC3,
                   budget: WorkBudget | None = None) -> bytes:
        """The NSEC3 hash of ``name`` with ``rdata``'s parameters (RFC 5155 5), charged to
        ``budget`` (CVE-2023-50868; raises BudgetExceeded when it runs out)."""
        salt, iterations = bytes(rdata.salt), int(rdata.iterations)
        if budget is not None:
            budget.charge_hash(name, salt, iterations)
        return self.digest(name, salt, iterations)

    def clear(self) -> None:
        """Forget every memoised bitmap and hash (the caps stay)."""
        self._bitmaps.cache_clear()
        self.digest.cache_clear()


def nsec3_well_formed(owner_hash: bytes, rdata: NSEC3) -> bool:
    """A SHA-1 NSEC3 whose owner hash and Next Hashed Owner Name are both 20 octets (RFC 5155
    3.1.7); anything else is malformed and proves nothing."""
    return len(owner_hash) == SHA1_LENGTH and len(rdata.next) == SHA1_LENGTH


def nsec3_owner_hash(owner: dns.name.Name) -> bytes | None:
    """The hash in an NSEC3 owner's first label, or None when it is not base32hex."""
    try:
        return base64.b32hexdecode(owner.labels[0].decode("ascii").upper())
    except (ValueError, UnicodeDecodeError, IndexError):
        return None


def nsec3_covers(owner_hash: bytes, rdata: NSEC3, target: bytes) -> bool:
    """Whether the NSEC3 span (owner hash, next hash) strictly covers ``target`` (RFC 5155
    8.3), including the span that wraps around the end of the hash ring."""
    following = bytes(rdata.next)
    if owner_hash < following:
        return owner_hash < target < following
    return target > owner_hash or target < following


def nsec_covers(owner: dns.name.Name, following: dns.name.Name, name: dns.name.Name) -> bool:
    """Whether an NSEC (owner, next) strictly covers ``name`` in canonical order (RFC 4034
    6.1); the last NSEC of a zone points back to the apex (RFC 4034 4.1.1)."""
    if owner < following:
        return owner < name < following
    return name > owner or name < following


def common_ancestor(a: dns.name.Name, b: dns.name.Name) -> dns.name.Name:
    """The longest common ancestor of two absolute names."""
    _, _, labels = a.fullcompare(b)
    return a.split(labels)[1] if labels else dns.name.root


def ancestor(name: dns.name.Name, labels: int) -> dns.name.Name:
    """The ancestor-or-self of ``name`` with ``labels`` labels, root label excluded."""
    return name.split(labels + 1)[1]


def label_count(name: dns.name.Name) -> int:
    """Labels of an absolute name without the root label."""
    return len(name) - 1


def wildcard_of(encloser: dns.name.Name) -> dns.name.Name:
    """The wildcard name at ``encloser`` (RFC 4592 2.1.1)."""
    return dns.name.Name((b"*", *encloser.labels))


def next_closer(name: dns.name.Name, encloser: dns.name.Name) -> dns.name.Name:
    """The name one label longer than ``encloser`` on the way to ``name`` (RFC 5155 1.3)."""
    return ancestor(name, label_count(encloser) + 1)
