"""Validation policy: which algorithms and digests count, clock skew, and named presets."""

from __future__ import annotations

from dataclasses import dataclass, replace

from auditor.errors import ConfigError

# Algorithms dnspython 2.9 can verify (dns.dnssecalgs): RSAMD5 1, DSA 3, RSASHA1 5,
# DSA-NSEC3-SHA1 6, RSASHA1-NSEC3-SHA1 7, RSASHA256 8, RSASHA512 10, ECDSAP256SHA256 13,
# ECDSAP384SHA384 14, ED25519 15, ED448 16.
_SHA1_ALGORITHMS = frozenset({5, 7})
_MODERN_ALGORITHMS = frozenset({8, 10, 13, 14, 15, 16})


@dataclass(frozen=True, slots=True)
class BudgetLimits:
    """How much validation work one response (or one zone's chain of trust) may cost, as
    Unbound 1.19.1 and BIND 9.18.24 bound it after KeyTrap (CVE-2023-50387: many DNSKEYs
    sharing a key tag times many RRSIGs naming it) and the NSEC3 hash attack
    (CVE-2023-50868: many NSEC3 parameter sets, many iterations, deep names). When a limit
    is reached the answer is bogus with ``validation_budget_exceeded``: legitimate zones stay
    far below every limit (two keys sharing a tag happen, two hundred do not).

    The defaults keep one response under 50 ms on a 2024 laptop core: a signature check
    costs 150-220 us (Ed25519, RSA-2048, ECDSA P-256 through dnspython), an NSEC3 hash
    10 us plus 0.4 us per iteration."""

    keys_per_signature: int = 4
    """DNSKEYs with the RRSIG's key tag and algorithm tried per RRSIG (key-tag collisions;
    Unbound's ``MAX_DS_MATCH_FAILURES`` and BIND's collision cap are 4)."""
    failures_per_rrset: int = 8
    """Failed signature checks per RRset before it is given up (Unbound's
    ``MAX_VALIDATE_RRSIGS``)."""
    failures: int = 16
    """Failed signature checks per response (or per zone's chain of trust)."""
    signature_checks: int = 256
    """Signature checks of any outcome per response (or per zone's chain of trust): 256
    checks are about 50 ms. Unbound's ``MAX_VALIDATE_AT_ONCE`` (8) suspends and resumes
    up to ``MAX_VALIDATION_SUSPENDS`` (16) times, 128 in all; a passive auditor cannot
    suspend, so the whole allowance is given at once, and twice as large, since a legitimate
    large answer (a signed zone's ANY, a full referral with glue) holds dozens of signed
    RRsets. Failures, the KeyTrap cost, are capped far lower (``failures``). Zone transfers
    are not validated at all (``zone_transfer``)."""
    ds_match_failures: int = 4
    """DS digests that fail to match a DNSKEY with the DS key tag, per DS (Unbound's
    ``MAX_DS_MATCH_FAILURES``)."""
    nsec3_hashes: int = 128
    """Distinct NSEC3 hashes (name, salt, iterations) per response (Unbound allows
    ``MAX_NSEC3_CALCULATIONS`` 8 per pass and 16 suspended passes)."""
    nsec3_rounds: int = 16_384
    """SHA-1 rounds over those hashes per response, each hash costing iterations + 1 (one
    more per 64 octets of salt): about 7 ms; a 2,500-iteration proof (policy permissive)
    fits with a shallow name, a deep one does not."""
    zone_checks_per_second: int = 2_000
    """Live mode: signature verifications actually computed (not memoised) per zone per
    second of capture time, about 0.4 s of one core."""
    zone_nsec3_rounds_per_second: int = 1_000_000
    """Live mode: NSEC3 SHA-1 rounds charged per zone per second of capture time."""


DEFAULT_BUDGET = BudgetLimits()
"""The validation budget of every preset."""


@dataclass(frozen=True, slots=True)
class ValidationPolicy:
    """What the validator accepts. Anything outside the sets is 'unsupported': a zone whose
    validated DS RRset lists only unsupported algorithms or digests is insecure, not bogus
    (RFC 4035 5.2, RFC 6840 5.2).

    Key size is not part of the policy: Unbound and BIND validate short RSA keys (512 bits
    and up) like any other, so the verdict does too, and zone health reports the weakness
    (``weak_key``)."""

    name: str
    """Preset name, recorded in reports."""
    algorithms: frozenset[int]
    """DNSKEY/RRSIG algorithm numbers used for validation."""
    ds_digests: frozenset[int]
    """DS digest types used for validation (1 SHA-1, 2 SHA-256, 4 SHA-384)."""
    clock_skew_s: int = 0
    """Seconds of tolerance applied to both RRSIG inception and expiration."""
    max_nsec3_iterations: int = 150
    """NSEC3 iteration count above which a proof is treated as insecure, checked before any
    hashing. RFC 9276 3.2 lets a validator treat proofs above a limit of its choosing as
    insecure (and asks it not to SERVFAIL up to 100); 150 is the limit deployed validators
    apply, Unbound 1.17 (``val-nsec3-keysize-iterations: "1024 150 2048 150 4096 150"``) and
    BIND 9.18 (150), so the default verdict follows theirs."""
    budget: BudgetLimits = DEFAULT_BUDGET
    """Validation work allowed per response (KeyTrap CVE-2023-50387, NSEC3 CVE-2023-50868)."""

    def supports_algorithm(self, algorithm: int) -> bool:
        """Whether signatures of ``algorithm`` are validated under this policy."""
        return algorithm in self.algorithms

    def supports_digest(self, digest_type: int) -> bool:
        """Whether DS records of ``digest_type`` are used under this policy."""
        return digest_type in self.ds_digests


RFC8624 = ValidationPolicy(
    name="rfc8624",
    # RFC 8624 3.1: RSASHA1, RSASHA1-NSEC3-SHA1, RSASHA256, RSASHA512, ECDSA, Ed25519 MUST/
    # RECOMMENDED for validation, Ed448 MAY; RSAMD5 and DSA MUST NOT.
    algorithms=_SHA1_ALGORITHMS | _MODERN_ALGORITHMS,
    # RFC 8624 3.3: SHA-1, SHA-256 MUST and SHA-384 MAY for validation.
    ds_digests=frozenset({1, 2, 4}),
)
"""The default preset: RFC 8624 sections 3.1 and 3.3 'validation' columns."""

RFC9904 = ValidationPolicy(
    name="rfc9904",
    # The IANA registries maintained under RFC 9904 (with RFC 9905) downgrade SHA-1 based
    # algorithms and the SHA-1 DS digest; this strict preset no longer validates them, so
    # zones relying on them only are reported insecure.
    algorithms=_MODERN_ALGORITHMS,
    ds_digests=frozenset({2, 4}),
    # RFC 9276 3.2: the strict preset keeps the lower limit of 100 the RFC names.
    max_nsec3_iterations=100,
)
"""Strict modern preset: no SHA-1 anywhere, NSEC3 proofs above 100 iterations insecure."""

PERMISSIVE = ValidationPolicy(
    name="permissive",
    algorithms=frozenset({1, 3, 6}) | _SHA1_ALGORITHMS | _MODERN_ALGORITHMS,
    ds_digests=frozenset({1, 2, 4}),
    clock_skew_s=300,
    max_nsec3_iterations=2500,
)
"""Everything dnspython can verify, with five minutes of clock skew (for lab captures)."""

PRESETS: dict[str, ValidationPolicy] = {p.name: p for p in (RFC8624, RFC9904, PERMISSIVE)}
"""Named presets selectable from the command line."""


def policy_from_name(name: str, *, clock_skew_s: int | None = None) -> ValidationPolicy:
    """The preset called ``name`` (``rfc8624``, ``rfc9904``, ``permissive``), with an optional
    clock skew override; raises ConfigError for an unknown name."""
    try:
        policy = PRESETS[name.lower()]
    except KeyError:
        known = ", ".join(sorted(PRESETS))
        raise ConfigError(f"unknown validation policy {name!r} (known: {known})") from None
    if clock_skew_s is None:
        return policy
    if clock_skew_s < 0:
        raise ConfigError(f"clock skew must not be negative: {clock_skew_s}")
    return replace(policy, clock_skew_s=clock_skew_s)
