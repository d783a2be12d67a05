"""Plain-language explanations of validation codes, for analysts reading the reports."""

from __future__ import annotations

from auditor.findings.codes import ValidationCode as C

PLAIN_WORDS: dict[str, str] = {
    C.UNSUPPORTED_DNSKEY_ALGORITHM: "signed only with algorithms the policy does not support",
    C.UNSUPPORTED_DS_DIGEST: "DS uses only digest types the policy does not support",
    C.DNSSEC_INDETERMINATE: "not enough key material in the capture to decide",
    C.DNSSEC_BOGUS: "validation failed",
    C.SIGNATURE_EXPIRED: "signature had expired",
    C.SIGNATURE_NOT_YET_VALID: "signature was not yet valid",
    C.DNSKEY_MISSING: "signing key (DNSKEY) not seen",
    C.RRSIGS_MISSING: "signatures missing from a signed zone's answer",
    C.NO_ZONE_KEY_BIT: "key lacks the zone-key flag",
    C.NSEC_MISSING: "denial-of-existence proof missing",
    C.DS_MISSING: "parent's DS record not seen",
    C.DS_MISMATCH: "DS digest matches none of the zone's keys",
    C.SIGNER_NOT_ZONE: "signed by a zone that does not own the name",
    C.LABELS_INVALID: "signature label count is impossible",
    C.ORIGINAL_TTL_EXCEEDED: "TTL above the signed original TTL",
    C.KEY_REVOKED: "key is revoked",
    C.KEY_PROTOCOL_INVALID: "key protocol field is not 3",
    C.BAD_SIGNATURE: "signature does not verify (data or signature altered)",
    C.WILDCARD_EXPANDED: "answer synthesised from a wildcard",
    C.WILDCARD_UNPROVEN: "wildcard answer without a checked proof",
    C.CHAIN_INCOMPLETE: "chain of trust broken above this zone",
    C.NO_TRUST_ANCHOR: "no trust anchor covers the name",
    C.TRUST_FROM_CACHE: "keys trusted from the key cache",
    C.INSECURE_DELEGATION: "proven unsigned delegation",
    C.NSEC3_OPT_OUT: "unsigned delegation inside an NSEC3 opt-out span",
    C.UNSIGNED_REFERRAL: "delegation records (never signed)",
    C.UNSIGNED_CROSS_CHECKED: "unsigned copy equals a validated copy",
    C.UNSIGNED_CONTRADICTS_VALIDATED: "unsigned copy differs from the validated data",
    C.UNSIGNED_NOT_CROSS_CHECKED: "unsigned answer, no validated copy to compare",
    C.CNAME_SYNTHESIZED: "CNAME synthesised from a validated DNAME",
    C.CNAME_CHAIN_BROKEN: "CNAME/DNAME chain does not lead to the answer",
    C.DENIAL_NOT_CHECKED: "denial-of-existence proof not checked",
    C.AD_ON_INSECURE: "resolver set AD on insecure data",
    C.AD_ON_BOGUS: "resolver claimed secure (AD) on bogus data",
    C.SERVFAIL_CONTRADICTS_EVIDENCE: "SERVFAIL reason contradicted by validated copies",
    C.UNSIGNED_ADDITIONAL: "unsigned additional-section data",
    C.REFERRAL: "referral",
    C.TRUNCATED: "truncated (TC) answer",
    C.TRUNCATED_CAPTURE: "answer cut by the capture's snapshot length (not validated)",
    C.DENIAL_NO_COVER: "no NSEC/NSEC3 record covers the name",
    C.DENIAL_NO_CLOSEST_ENCLOSER: "NSEC3 proof lacks the closest encloser",
    C.DENIAL_WILDCARD_NOT_EXCLUDED: "denial does not exclude a wildcard",
    C.DENIAL_NO_MATCH: "no NSEC/NSEC3 record matches the name",
    C.DENIAL_BITMAP_HAS_TYPE: "denial's type bitmap lists the denied type",
    C.DENIAL_NAME_EXISTS: "denial proof shows the name exists",
    C.DENIAL_WRONG_ZONE: "denial records from the wrong zone",
    C.DENIAL_PARENT_SIDE: "denial from the parent side of a delegation",
    C.DENIAL_CHILD_SIDE: "denial from the child side of a delegation",
    C.NSEC3_ITERATIONS_TOO_HIGH: "NSEC3 iterations above the policy limit",
    C.NSEC3_ITERATIONS_NONZERO: "NSEC3 uses additional iterations",
    C.NSEC3_SALT_PRESENT: "NSEC3 uses a salt",
    C.NSEC3_UNKNOWN_ALGORITHM: "unknown NSEC3 hash algorithm",
    C.DNAME_SYNTHESIS_MISMATCH: "CNAME does not match the DNAME synthesis",
}
"""Validation code value -> short plain-English phrase."""


def plain(code: str) -> str:
    """The plain phrase for a validation code (its words when the code is new to us).

    >>> plain("signature_expired")
    'signature had expired'
    >>> plain("some_future_code")
    'some future code'
    """
    return PLAIN_WORDS.get(code, code.replace("_", " "))
