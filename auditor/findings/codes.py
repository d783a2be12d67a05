"""The stable vocabulary of outcomes: the verdict status, the codes saying why (each with its
RFC 8914 EDE number) and the finding codes of the catalogue (a leaf: any stage may use it)."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """RFC 4033 section 5 / RFC 4035 section 4.3 security status."""

    SECURE = "secure"
    """An unbroken chain of signed DNSKEY and DS RRs from a trust anchor validates the data."""
    INSECURE = "insecure"
    """A validated proof shows that no chain exists (no DS at a delegation, or only
    unsupported algorithms/digests)."""
    BOGUS = "bogus"
    """A chain should exist but the proof failed."""
    INDETERMINATE = "indeterminate"
    """Material needed to decide (DNSKEY, DS, anchor) is neither in the capture nor the cache."""


class ValidationCode(StrEnum):
    """Why a verdict is what it is. Values are a public JSON contract: never rename them.

    ``ede`` is the RFC 8914 Extended DNS Error info code a validating resolver would attach for
    the same reason (section 4), or None when RFC 8914 has no matching code.
    """

    ede: int | None

    def __new__(cls, value: str, ede: int | None = None) -> ValidationCode:
        member = str.__new__(cls, value)
        member._value_ = value
        member.ede = ede
        return member

    # RFC 8914 section 4 codes.
    UNSUPPORTED_DNSKEY_ALGORITHM = ("unsupported_dnskey_algorithm", 1)
    """Only DNSKEY algorithms we (or the policy) do not support: the zone is insecure."""
    UNSUPPORTED_DS_DIGEST = ("unsupported_ds_digest", 2)
    """Only DS digest types we (or the policy) do not support: the zone is insecure."""
    DNSSEC_INDETERMINATE = ("dnssec_indeterminate", 5)
    """Some material needed to decide is neither in the capture nor in the key cache."""
    DNSSEC_BOGUS = ("dnssec_bogus", 6)
    """A proof failed (umbrella code; a more specific one is always given too)."""
    SIGNATURE_EXPIRED = ("signature_expired", 7)
    """RRSIG expiration is before the reference time (RFC 4035 5.3.1)."""
    SIGNATURE_NOT_YET_VALID = ("signature_not_yet_valid", 8)
    """RRSIG inception is after the reference time (RFC 4035 5.3.1)."""
    DNSKEY_MISSING = ("dnskey_missing", 9)
    """No DNSKEY with the RRSIG's or DS's key tag and algorithm was seen."""
    RRSIGS_MISSING = ("rrsigs_missing", 10)
    """An RRset of a signed zone arrived without RRSIG although DNSSEC was requested."""
    NO_ZONE_KEY_BIT = ("no_zone_key_bit", 11)
    """The matching DNSKEY lacks the Zone Key flag (RFC 4034 2.1.1)."""
    NSEC_MISSING = ("nsec_missing", 12)
    """A denial or wildcard proof would need NSEC/NSEC3 records that are absent."""

    # Our own codes.
    DS_MISSING = ("ds_missing", None)
    """Neither a DS RRset nor a proof of its absence was seen for a zone."""
    DS_MISMATCH = ("ds_mismatch", None)
    """No DNSKEY of the zone matches the validated DS digest (RFC 4035 5.2)."""
    SIGNER_NOT_ZONE = ("signer_not_zone", None)
    """The RRSIG signer is not an ancestor-or-self of the owner, or not the key's zone
    (RFC 4035 5.3.1)."""
    LABELS_INVALID = ("labels_invalid", None)
    """The RRSIG Labels field exceeds the owner's label count (RFC 4035 5.3.1)."""
    ORIGINAL_TTL_EXCEEDED = ("original_ttl_exceeded", None)
    """A received TTL is larger than the RRSIG Original TTL (RFC 4035 5.3.3); noted only."""
    KEY_REVOKED = ("key_revoked", None)
    """The only usable key has the REVOKE bit set (RFC 5011 2.1)."""
    KEY_PROTOCOL_INVALID = ("key_protocol_invalid", None)
    """The matching DNSKEY's Protocol field is not 3 (RFC 4034 2.1.2)."""
    BAD_SIGNATURE = ("bad_signature", None)
    """The cryptographic check of the signature failed."""
    WILDCARD_EXPANDED = ("wildcard_expanded", None)
    """The RRSIG Labels field shows the answer was synthesised from a wildcard
    (RFC 4035 5.3.4)."""
    WILDCARD_UNPROVEN = ("wildcard_unproven", None)
    """A wildcard expansion without a checked proof that the query name does not exist."""
    CHAIN_INCOMPLETE = ("chain_incomplete", None)
    """The chain of trust from an anchor could not be followed to the signer's zone."""
    NO_TRUST_ANCHOR = ("no_trust_anchor", None)
    """No trust anchor covers the name (RFC 4033 5: indeterminate)."""
    TRUST_ANCHOR_MISMATCH = ("trust_anchor_mismatch", None)
    """The anchored zone's signed DNSKEY RRset holds no key that matches a trust anchor in force
    at the reference time (RFC 4035 5, RFC 9718 2.2): a validator holding these anchors says
    bogus; the capture comes from a network with its own root or anchor (use --trust-anchor)."""
    NO_ANCHOR_IN_FORCE = ("no_anchor_in_force", None)
    """The zone has trust anchors, but none was valid at the reference time (RFC 9718 2.2
    validFrom/validUntil): nothing to start the chain from, indeterminate."""
    DNSKEY_UNSIGNED_ONLY = ("dnskey_unsigned_only", None)
    """The zone's DNSKEY RRset was seen only without RRSIGs (fetched with DO clear): its keys
    cannot be validated from this capture, indeterminate (RFC 4035 5.2 needs the RRSIG)."""
    DNSSEC_NOT_REQUESTED = ("dnssec_not_requested", None)
    """The query did not set DO (RFC 3225, RFC 4035 3.2.1): the answer carries no signatures to
    validate and no validated copy was seen to compare it with."""
    NO_RECORDS = ("no_records", None)
    """The response has no records at all (nothing to validate)."""
    AD_WITH_OTHER_ANCHOR = ("ad_with_other_anchor", None)
    """AD set on data that fails only at the trust anchor: the resolver validates with another
    trust anchor (a configuration matter, not forgery)."""
    ZONE_TRANSFER = ("zone_transfer", None)
    """An AXFR/IXFR response (RFC 5936, RFC 1995): a whole zone between servers, not an answer
    a resolver validates; not validated (indeterminate)."""
    NOT_CLASS_IN = ("not_class_in", None)
    """The question's class is not IN (CHAOS, HESIOD, a reserved class): DNSSEC trust anchors
    and chains exist for class IN only, so there is nothing to validate (indeterminate)."""
    RRSIG_ONLY_ANSWER = ("rrsig_only_answer", None)
    """The answer holds only RRSIG records (a query for type RRSIG): records, so no denial,
    but covering no RRset of the response; an RRSIG RRset is never signed (RFC 4035 2.2)."""
    OUT_OF_ZONE_IGNORED = ("out_of_zone_ignored", None)
    """An authoritative answer carried records outside the zone it speaks for (a CNAME
    target's data): a validating resolver discards them and asks again, so they are not
    judged with this answer (RFC 2181 5.4.1)."""
    TRUST_FROM_CACHE = ("trust_from_cache", None)
    """The zone's keys were trusted from the persistent key cache, not from this capture."""
    INSECURE_DELEGATION = ("insecure_delegation", None)
    """A validated NSEC/NSEC3 proves the delegation has no DS (RFC 4035 5.2)."""
    NSEC3_OPT_OUT = ("nsec3_opt_out", None)
    """The insecure delegation is proven by an opt-out NSEC3 span (RFC 5155 6, 8.9)."""
    UNSIGNED_REFERRAL = ("unsigned_referral", None)
    """Delegation NS or glue, which are never signed (RFC 4035 2.2)."""
    UNSIGNED_CROSS_CHECKED = ("unsigned_cross_checked", None)
    """An unsigned answer (query without DO) equals a validated copy seen elsewhere."""
    UNSIGNED_CONTRADICTS_VALIDATED = ("unsigned_contradicts_validated", None)
    """An unsigned answer differs from every validated copy of the same RRset."""
    UNSIGNED_NOT_CROSS_CHECKED = ("unsigned_not_cross_checked", None)
    """An unsigned answer (query without DO) for which no validated copy was seen."""
    CNAME_SYNTHESIZED = ("cname_synthesized", None)
    """An unsigned CNAME matching a validated DNAME's synthesis (RFC 6672 5.3.1)."""
    CNAME_CHAIN_BROKEN = ("cname_chain_broken", None)
    """The answer's CNAME/DNAME chain does not lead to the records returned."""
    DENIAL_NOT_CHECKED = ("denial_not_checked", None)
    """A negative answer whose NSEC/NSEC3 proof is not checked yet."""
    DENIAL_NO_COVER = ("denial_no_cover", None)
    """No NSEC/NSEC3 covers the name (or the next closer name) said not to exist (RFC 4035
    5.4, RFC 5155 8.3/8.8)."""
    DENIAL_NO_CLOSEST_ENCLOSER = ("denial_no_closest_encloser", None)
    """No NSEC3 matches an ancestor of the name: no closest encloser proof (RFC 5155 8.3)."""
    DENIAL_WILDCARD_NOT_EXCLUDED = ("denial_wildcard_not_excluded", None)
    """Nothing proves that the wildcard at the closest encloser does not exist, or it exists
    (RFC 4035 5.4, RFC 4592 4, RFC 5155 8.4)."""
    DENIAL_NO_MATCH = ("denial_no_match", None)
    """A NODATA answer without an NSEC/NSEC3 matching the name or the wildcard (RFC 4035 5.4,
    RFC 5155 8.5-8.7)."""
    DENIAL_BITMAP_HAS_TYPE = ("denial_bitmap_has_type", None)
    """The matching NSEC/NSEC3 type bitmap lists the queried type or CNAME (or, for a
    delegation, lacks NS or lists DS)."""
    DENIAL_NAME_EXISTS = ("denial_name_exists", None)
    """An NXDOMAIN whose own records show the name exists (matching record, or an empty
    non-terminal above the next name)."""
    DENIAL_WRONG_ZONE = ("denial_wrong_zone", None)
    """NSEC/NSEC3 records signed by, or owned in, another zone than the one the proof is
    about (RFC 5155 8.3: NSEC3 owners sit directly below the apex)."""
    DENIAL_PARENT_SIDE = ("denial_parent_side", None)
    """An NSEC/NSEC3 at a zone cut (NS without SOA) or DNAME used to deny names below it or
    types other than DS (RFC 6840 4.1, RFC 5155 8.3)."""
    DENIAL_CHILD_SIDE = ("denial_child_side", None)
    """An NSEC/NSEC3 of the child apex (SOA set) offered about the DS: true of the child zone,
    no proof about the parent's delegation (RFC 6840 4.4, RFC 5155 B.6)."""
    COMPACT_DENIAL_NXNAME = ("compact_denial_nxname", None)
    """Compact denial: a validated NSEC owned by the name with the NXNAME pseudo-type says the
    name does not exist, whatever the rcode (NOERROR as signed, NXDOMAIN when restored) (RFC
    9824 3-4). A note on a secure denial, not a problem."""
    NSEC3_ITERATIONS_TOO_HIGH = ("nsec3_iterations_too_high", 27)
    """NSEC3 iterations above the policy limit: the proof is treated as insecure (RFC 9276
    3.2; EDE 27 Unsupported NSEC3 Iterations Value)."""
    NSEC3_ITERATIONS_NONZERO = ("nsec3_iterations_nonzero", None)
    """NSEC3 with additional iterations, against RFC 9276 3.1 guidance (noted only)."""
    NSEC3_SALT_PRESENT = ("nsec3_salt_present", None)
    """NSEC3 with a salt, against RFC 9276 3.1 guidance (noted only)."""
    NSEC3_MALFORMED = ("nsec3_malformed", None)
    """An NSEC3 with a known hash algorithm whose Next Hashed Owner Name has another length
    than that hash (SHA-1: 20 octets, RFC 5155 3.1.7): a malformed record proves nothing, so
    the proof fails (bogus), never insecure."""
    VALIDATION_BUDGET_EXCEEDED = ("validation_budget_exceeded", None)
    """Validating the response needed more work than a validator allows (key-tag collisions,
    failed signature checks, NSEC3 hashes: KeyTrap CVE-2023-50387, CVE-2023-50868): bogus,
    and itself a sign of an attack."""
    NSEC3_UNKNOWN_ALGORITHM = ("nsec3_unknown_algorithm", None)
    """Only NSEC3 records with an unknown hash algorithm or flags: ignored (RFC 5155 8.1,
    8.2), the answer cannot be proven and is treated as insecure."""
    DNAME_SYNTHESIS_MISMATCH = ("dname_synthesis_mismatch", None)
    """A CNAME below a DNAME differs from the DNAME substitution of the name (RFC 6672 2.2,
    3.1)."""
    AD_ON_INSECURE = ("ad_on_insecure", None)
    """The AD bit is set on a response whose answer is insecure (RFC 4035 3.2.3)."""
    AD_ON_BOGUS = ("ad_on_bogus", None)
    """The AD bit is set on a response whose answer is bogus."""
    SERVFAIL_CONTRADICTS_EVIDENCE = ("servfail_contradicts_evidence", None)
    """A SERVFAIL's EDE reason is contradicted by validated copies seen in the capture."""
    UNSIGNED_ADDITIONAL = ("unsigned_additional", None)
    """Additional-section data without RRSIG: servers may omit those signatures (RFC 4035
    3.1.1), so it is neither validated nor held against the response."""
    REFERRAL = ("referral", None)
    """The response is a referral: its security is that of the delegation's DS RRset or of
    the proof that no DS exists (RFC 4035 5.2)."""
    TRUNCATED = ("truncated", None)
    """The TC bit is set: the answer is incomplete and is judged only as far as it goes."""
    TRUNCATED_CAPTURE = ("truncated_capture", None)
    """The capture's snapshot length cut the answer: header and question listed, the rest
    was never captured, so nothing is validated (as tshark marks it malformed)."""
    NOT_A_QUERY_ANSWER = ("not_a_query_answer", None)
    """The response's opcode is not QUERY (NOTIFY, UPDATE, ...; RFC 1996, RFC 2136): its
    sections are not an answer to a question, so it is not validated as one and no forgery
    heuristic judges it (indeterminate)."""


class FindingCode(StrEnum):
    """The code of a catalogue finding (``auditor.findings.catalogue.CATALOGUE`` holds one entry
    per member: severity, template, RFC references). Values are a public JSON contract (the
    ``code`` of ``findings.jsonl``, EVE signature IDs, metrics labels): never rename them.

    Several values equal a ``ValidationCode`` (``ad_on_bogus``, ``signature_expired``): the
    finding that reports, per zone and server, the answers whose verdict carries that code.
    """

    # Decode anomalies that deserve a catalogue entry (``auditor.anomaly.AnomalyCode`` values).
    UNSUPPORTED_LINKTYPE = "unsupported_linktype"
    """Unsupported link type."""
    FRAGMENT_OVERLAP_CONFLICT = "fragment_overlap_conflict"
    """Conflicting overlapping IP fragments."""

    # Validation findings (``auditor.findings.validation``).
    AD_ON_BOGUS = "ad_on_bogus"
    """Resolver claimed secure on bogus data."""
    TRUST_ANCHOR_MISMATCH = "trust_anchor_mismatch"
    """Chain ends at a trust anchor the auditor does not hold."""
    RESOLVER_OTHER_TRUST_ANCHOR = "resolver_other_trust_anchor"
    """Resolver validates with another trust anchor."""
    OUT_OF_ZONE_ANSWER_RECORDS = "out_of_zone_answer_records"
    """Authoritative answer with records outside its zone."""
    VALIDATION_BUDGET_EXCEEDED = "validation_budget_exceeded"
    """Answer exceeds the validation budget (KeyTrap / NSEC3 attack)."""
    BOGUS_ANSWER = "bogus_answer"
    """Bogus answer."""
    SIGNATURE_EXPIRED = "signature_expired"
    """Expired signature."""
    SIGNATURE_NOT_YET_VALID = "signature_not_yet_valid"
    """Signature not yet valid."""
    BAD_SIGNATURE = "bad_signature"
    """Signature does not verify."""
    DS_MISMATCH = "ds_mismatch"
    """DS does not match any DNSKEY."""
    AD_ON_INSECURE = "ad_on_insecure"
    """AD bit on insecure data."""
    SERVFAIL_CONTRADICTS_EVIDENCE = "servfail_contradicts_evidence"
    """SERVFAIL contradicted by validated data."""
    INDETERMINATE_ANSWERS = "indeterminate_answers"
    """Answers that could not be validated."""

    # Zone health and policy findings (``auditor.findings.zones``).
    ALGORITHM_NOT_RECOMMENDED = "algorithm_not_recommended"
    """Signing algorithm not recommended."""
    DS_DIGEST_NOT_RECOMMENDED = "ds_digest_not_recommended"
    """DS digest type not recommended."""
    NSEC3_ITERATIONS = "nsec3_iterations"
    """NSEC3 additional iterations."""
    NSEC3_SALT = "nsec3_salt"
    """NSEC3 salt."""
    NSEC3_OPT_OUT = "nsec3_opt_out"
    """NSEC3 opt-out."""
    NSEC_ZONE_WALKABLE = "nsec_zone_walkable"
    """Zone walkable (NSEC)."""
    SIGNATURE_EXPIRING_SOON = "signature_expiring_soon"
    """Signature about to expire."""
    TTL_EXCEEDS_SIGNATURE_VALIDITY = "ttl_exceeds_signature_validity"
    """TTL outlives the signature."""
    KSK_ROLLOVER_IN_PROGRESS = "ksk_rollover_in_progress"
    """KSK rollover in progress."""
    KEY_REVOKED_PUBLISHED = "key_revoked_published"
    """Revoked key published."""
    WEAK_KEY = "weak_key"
    """Weak key."""
    CDS_NO_MATCHING_DNSKEY = "cds_no_matching_dnskey"
    """CDS/CDNSKEY names no published DNSKEY."""
    CDS_NOT_SIGNED_BY_DS_KEY = "cds_not_signed_by_ds_key"
    """CDS/CDNSKEY not signed by a DS-named key."""
    CDS_DELETE_REQUESTED = "cds_delete_requested"
    """CDS/CDNSKEY asks to remove the DS."""
    CDS_ALGORITHM_ROLL = "cds_algorithm_roll"
    """CDS/CDNSKEY asks for an algorithm roll."""

    # Forgery signals (``auditor.forgery``).
    RESPONSE_RACE = "response_race"
    """Racing responses with different answers."""
    WRONG_ID_BURST = "wrong_id_burst"
    """Burst of responses with wrong IDs."""
    UNSOLICITED_RESPONSE = "unsolicited_response"
    """Response without a matching query."""
    RESPONSE_FROM_UNQUERIED_SERVER = "response_from_unqueried_server"
    """Response from an address the query was not sent to."""
    KAMINSKY_PATTERN = "kaminsky_pattern"
    """Kaminsky-style poisoning pattern."""
    HOP_LIMIT_ANOMALY = "hop_limit_anomaly"
    """IP TTL unlike the server's usual."""
    RTT_ANOMALY = "rtt_anomaly"
    """Response faster than the server can answer."""
    OUT_OF_BAILIWICK_DATA = "out_of_bailiwick_data"
    """Out-of-bailiwick records."""
    ANSWER_OUTSIDE_CHAIN = "answer_outside_chain"
    """Answer records that do not follow from the question."""
    EXTRANEOUS_RECORDS = "extraneous_records"
    """Records a resolver discards."""
    ADDITIONAL_CONTRADICTS_VALIDATED = "additional_contradicts_validated"
    """Additional data contradicts validated data."""
    RRSIGS_STRIPPED = "rrsigs_stripped"
    """RRSIGs stripped from a signed zone's answer."""
    OPT_STRIPPED = "opt_stripped"
    """EDNS OPT record stripped."""
    KEY_MATERIAL_STRIPPED = "key_material_stripped"
    """DNSKEY/DS answer stripped."""
    AD_ON_UNVALIDATED = "ad_on_unvalidated"
    """AD bit on data that does not validate."""
    AD_CLEARED = "ad_cleared"
    """AD bit missing on validated data."""
    FLAGS_ALTERED = "flags_altered"
    """DNSSEC header bits altered in transit."""
    CONTRADICTS_VALIDATED = "contradicts_validated"
    """Answer contradicts validated data."""
    DENIAL_CONTRADICTS_VALIDATED = "denial_contradicts_validated"
    """Negative answer contradicts validated data."""


__all__ = ["FindingCode", "Status", "ValidationCode"]
