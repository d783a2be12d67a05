"""The findings catalogue: one table of stable codes, severities, templates and RFC references.

Each family of findings (decode anomalies, validation, forgery, zone health) declares its
specs in its own tuple; ``CATALOGUE`` registers them all in one dict, so a code is defined
exactly once and every message is rendered from its template.

>>> spec = CATALOGUE[FindingCode.FRAGMENT_OVERLAP_CONFLICT]
>>> spec.severity
<Severity.HIGH: 'high'>
>>> spec.render({"src": "192.0.2.1", "dst": "192.0.2.2", "ident": 7})
'IP fragments of datagram 7 from 192.0.2.1 to 192.0.2.2 overlap with different bytes'
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from auditor.findings.codes import FindingCode


class Severity(StrEnum):
    """How urgent a finding is; filterable in every report."""

    CRITICAL = "critical"
    """Proven forgery or a bogus answer a client accepted."""
    HIGH = "high"
    """Bogus data, a strong forgery signal, or a broken chain of trust."""
    MEDIUM = "medium"
    """Suspicious traffic or a zone misconfiguration that will break validation soon."""
    LOW = "low"
    """Policy or hygiene problems (weak algorithms, NSEC3 parameters, decode damage)."""
    INFO = "info"
    """Facts worth recording (a key rollover in progress, a trust anchor used)."""


@dataclass(frozen=True, slots=True)
class FindingSpec:
    """The definition of one finding code."""

    code: FindingCode
    """Stable lowercase snake_case code: a public contract, never renamed."""
    severity: Severity
    """Default severity."""
    title: str
    """Short human title for report headings."""
    template: str
    """``str.format`` template of the message; every field is a required parameter."""
    rfcs: tuple[str, ...]
    """Section-level references, e.g. ``("RFC 4035 5.3.1",)``."""
    remediation: str = ""
    """``str.format`` template of what to do about it, in words, using only the message's
    parameters (so it renders whenever the message does)."""

    @property
    def params(self) -> frozenset[str]:
        """The parameters the template needs."""
        return frozenset(
            field for _, field, _, _ in string.Formatter().parse(self.template) if field
        )

    def render(self, params: Mapping[str, object]) -> str:
        """The message for ``params``; raises KeyError naming a missing parameter."""
        missing = self.params - set(params)
        if missing:
            raise KeyError(f"finding {self.code} needs parameters {sorted(missing)}")
        return self.template.format(**params)

    def render_remediation(self, params: Mapping[str, object]) -> str:
        """What to do about a finding with ``params`` ("" when the entry has none)."""
        try:
            return self.remediation.format(**params)
        except (KeyError, IndexError, ValueError):
            return self.remediation


DECODE_FINDINGS: tuple[FindingSpec, ...] = (
    FindingSpec(
        FindingCode.UNSUPPORTED_LINKTYPE,
        Severity.LOW,
        "Unsupported link type",
        "{capture}: link type {linktype} on {interface} is not decoded",
        (),
        remediation=(
            "Capture on an Ethernet, Linux cooked (SLL/SLL2), raw IP or loopback interface, "
            "or convert {capture} with editcap."
        ),
    ),
    FindingSpec(
        FindingCode.FRAGMENT_OVERLAP_CONFLICT,
        Severity.HIGH,
        "Conflicting overlapping IP fragments",
        "IP fragments of datagram {ident} from {src} to {dst} overlap with different bytes",
        ("RFC 5722 3", "RFC 5452 4"),
        remediation=(
            "Treat {src} -> {dst} as under attack: check the path for an off-path spoofer; "
            "validating resolvers and RFC 5722 reassembly drop such datagrams."
        ),
    ),
)
"""Decode-level anomalies (``auditor.anomaly.AnomalyCode``) that deserve a catalogue entry."""


VALIDATION_FINDINGS: tuple[FindingSpec, ...] = (
    FindingSpec(
        FindingCode.AD_ON_BOGUS,
        Severity.CRITICAL,
        "Resolver claimed secure on bogus data",
        "{server} set the AD bit (claimed secure) on bogus data from zone {zone}: {reasons}",
        ("RFC 4035 3.2.3", "RFC 4035 4.3", "RFC 6840 5.8"),
        remediation=(
            "Check {server}'s validation: it must answer SERVFAIL for bogus data (enable "
            "DNSSEC validation, check its trust anchor); ask the operator of {zone} to fix "
            "the zone."
        ),
    ),
    FindingSpec(
        FindingCode.TRUST_ANCHOR_MISMATCH,
        Severity.MEDIUM,
        "Chain ends at a trust anchor the auditor does not hold",
        "Answers for zone {zone} fail only at the trust anchor of {anchored}: {detail}",
        ("RFC 4035 4.3", "RFC 4035 5", "RFC 9718 2.2"),
        remediation=(
            "Give the auditor the trust anchor the resolvers use for {anchored} "
            "(--trust-anchor), or check whether the resolvers use a stale one."
        ),
    ),
    FindingSpec(
        FindingCode.RESOLVER_OTHER_TRUST_ANCHOR,
        Severity.LOW,
        "Resolver validates with another trust anchor",
        "{server} set AD on answers for zone {zone} whose chain ends at a root or anchor the "
        "auditor does not hold: it validates with another trust anchor (a configuration "
        "difference, not a false claim)",
        ("RFC 4035 3.2.3", "RFC 4035 4.3"),
        remediation=(
            "Compare {server}'s trust anchors with the auditor's (--trust-anchor); no "
            "action if the private anchor is intended."
        ),
    ),
    FindingSpec(
        FindingCode.OUT_OF_ZONE_ANSWER_RECORDS,
        Severity.LOW,
        "Authoritative answer with records outside its zone",
        "{server} answered for zone {zone} with records outside it (a CNAME target's data); "
        "validating resolvers discard them and ask again, so they were not judged with it",
        ("RFC 2181 5.4.1", "RFC 1034 4.3.2"),
        remediation=(
            "Nothing to fix in {zone}; if the answers matter, audit the zone of the CNAME "
            "target separately."
        ),
    ),
    FindingSpec(
        FindingCode.VALIDATION_BUDGET_EXCEEDED,
        Severity.HIGH,
        "Answer exceeds the validation budget (KeyTrap / NSEC3 attack)",
        "{server} returned answers for zone {zone} whose validation needs more work than "
        "validators allow ({limits}): the pattern of KeyTrap (CVE-2023-50387) or the NSEC3 "
        "hash attack (CVE-2023-50868); judged bogus",
        ("RFC 4035 5.3.1", "RFC 5155 8.3", "RFC 9276 3.2"),
        remediation=(
            "Block or rate-limit {server} for {zone} and keep resolvers patched against "
            "CVE-2023-50387/50868."
        ),
    ),
    FindingSpec(
        FindingCode.BOGUS_ANSWER,
        Severity.HIGH,
        "Bogus answer",
        "{server} returned answers for zone {zone} that fail validation: {reasons}",
        ("RFC 4033 5", "RFC 4035 4.3", "RFC 4035 5.5"),
        remediation=(
            "Fix zone {zone} on {server} ({reasons}): re-sign it, or repair its keys and "
            "the parent's DS; until then validating resolvers answer SERVFAIL."
        ),
    ),
    FindingSpec(
        FindingCode.SIGNATURE_EXPIRED,
        Severity.HIGH,
        "Expired signature",
        "{server} served signatures of zone {zone} past their expiration ({rrsets})",
        ("RFC 4035 5.3.1", "RFC 4034 3.1.5"),
        remediation=(
            "Re-sign zone {zone} on {server} (the RRSIGs of {rrsets} have expired) and "
            "check that its signer's refresh job runs."
        ),
    ),
    FindingSpec(
        FindingCode.SIGNATURE_NOT_YET_VALID,
        Severity.HIGH,
        "Signature not yet valid",
        "{server} served signatures of zone {zone} before their inception ({rrsets})",
        ("RFC 4035 5.3.1", "RFC 4034 3.1.5"),
        remediation=(
            "Check the clock of zone {zone}'s signer and of {server}: its RRSIGs ({rrsets}) "
            "are not valid yet; re-sign with an inception in the past."
        ),
    ),
    FindingSpec(
        FindingCode.BAD_SIGNATURE,
        Severity.HIGH,
        "Signature does not verify",
        "{server} served signatures of zone {zone} that do not verify ({rrsets})",
        ("RFC 4035 5.3.3", "RFC 4034 3.1.8.1"),
        remediation=(
            "Re-sign zone {zone} and find what altered the data or signatures of {rrsets} "
            "after signing (a hand edit, a broken transfer, a middlebox)."
        ),
    ),
    FindingSpec(
        FindingCode.DS_MISMATCH,
        Severity.HIGH,
        "DS does not match any DNSKEY",
        "No DNSKEY of zone {zone} matches the DS digest its parent publishes",
        ("RFC 4035 5.2", "RFC 4034 5.1.4"),
        remediation=(
            "Publish a DS at the parent that matches a key of {zone} (or publish the key "
            "the DS names): compare dnssec-dsfromkey output with the parent's DS."
        ),
    ),
    FindingSpec(
        FindingCode.AD_ON_INSECURE,
        Severity.MEDIUM,
        "AD bit on insecure data",
        "{server} set the AD bit on insecure data from zone {zone}",
        ("RFC 4035 3.2.3",),
        remediation=(
            "Check {server}'s validator: AD on insecure data from {zone} is a resolver bug "
            "or a forwarder passing AD through."
        ),
    ),
    FindingSpec(
        FindingCode.SERVFAIL_CONTRADICTS_EVIDENCE,
        Severity.MEDIUM,
        "SERVFAIL contradicted by validated data",
        "{server} answered SERVFAIL with a DNSSEC reason although the capture holds validated "
        "copies for zone {zone}",
        ("RFC 8914 4", "RFC 4035 5.5"),
        remediation=(
            "Check {server}'s trust anchors, clock and cache for zone {zone}: the capture "
            "validates what it refused."
        ),
    ),
    FindingSpec(
        FindingCode.INDETERMINATE_ANSWERS,
        Severity.LOW,
        "Answers that could not be validated",
        "Answers for zone {zone} could not be validated: {reasons}",
        ("RFC 4033 5", "RFC 4035 5"),
        remediation=(
            "Capture the key material for {zone} too (the resolver's DNSKEY/DS queries), or "
            "pass --keys from an earlier run: {reasons}."
        ),
    ),
)
"""Validation findings: verdicts turned into catalogue entries, merged per zone and server."""


ZONE_FINDINGS: tuple[FindingSpec, ...] = (
    FindingSpec(
        FindingCode.ALGORITHM_NOT_RECOMMENDED,
        Severity.MEDIUM,
        "Signing algorithm not recommended",
        "Zone {zone} signs with {algorithm} ({status} for signing)",
        ("RFC 8624 3.1", "RFC 9904"),
        remediation=(
            "Roll zone {zone} to ECDSAP256SHA256 (13) or ED25519 (15) (RFC 8624, RFC 9904)."
        ),
    ),
    FindingSpec(
        FindingCode.DS_DIGEST_NOT_RECOMMENDED,
        Severity.LOW,
        "DS digest type not recommended",
        "The DS of zone {zone} uses digest {digest} ({status})",
        ("RFC 8624 3.3", "RFC 9904"),
        remediation=(
            "Replace the DS of zone {zone} by one with digest SHA-256 (2) at the parent."
        ),
    ),
    FindingSpec(
        FindingCode.NSEC3_ITERATIONS,
        Severity.MEDIUM,
        "NSEC3 additional iterations",
        "Zone {zone} uses NSEC3 with {iterations} additional iterations; RFC 9276 asks for 0",
        ("RFC 9276 3.1", "RFC 9276 3.2"),
        remediation=(
            "Re-sign zone {zone} with NSEC3 iterations 0 (RFC 9276 3.1); resolvers may "
            "treat high counts as insecure."
        ),
    ),
    FindingSpec(
        FindingCode.NSEC3_SALT,
        Severity.LOW,
        "NSEC3 salt",
        "Zone {zone} uses an NSEC3 salt ({salt}); RFC 9276 recommends none",
        ("RFC 9276 3.1",),
        remediation=(
            "Re-sign zone {zone} without an NSEC3 salt (salt '-', RFC 9276 3.1)."
        ),
    ),
    FindingSpec(
        FindingCode.NSEC3_OPT_OUT,
        Severity.INFO,
        "NSEC3 opt-out",
        "Zone {zone} uses NSEC3 opt-out",
        ("RFC 5155 6", "RFC 9276 3.1"),
        remediation=(
            "Use opt-out in {zone} only if it has many unsigned delegations (RFC 9276 3.2); "
            "otherwise re-sign without it."
        ),
    ),
    FindingSpec(
        FindingCode.NSEC_ZONE_WALKABLE,
        Severity.INFO,
        "Zone walkable (NSEC)",
        "Zone {zone} uses NSEC: its names can be listed by walking the chain",
        ("RFC 4034 4", "RFC 5155 1"),
        remediation=(
            "If listing the names of {zone} matters, use NSEC3 or online signing with "
            "minimal denial; otherwise nothing to do."
        ),
    ),
    FindingSpec(
        FindingCode.SIGNATURE_EXPIRING_SOON,
        Severity.MEDIUM,
        "Signature about to expire",
        "A signature of zone {zone} ({rrset}) had only {remaining} left when seen",
        ("RFC 6781 4.4.2", "RFC 4034 3.1.5"),
        remediation=(
            "Re-sign zone {zone} now: the signature of {rrset} had only {remaining} left; "
            "check the signer's refresh interval."
        ),
    ),
    FindingSpec(
        FindingCode.TTL_EXCEEDS_SIGNATURE_VALIDITY,
        Severity.MEDIUM,
        "TTL outlives the signature",
        "{rrset} in zone {zone} has TTL {ttl}s but its signature expires in {remaining}",
        ("RFC 4035 5.3.3", "RFC 6781 4.4.2.1"),
        remediation=(
            "Lower the TTL of {rrset} in zone {zone} below the signature lifetime, or "
            "re-sign more often."
        ),
    ),
    FindingSpec(
        FindingCode.KSK_ROLLOVER_IN_PROGRESS,
        Severity.INFO,
        "KSK rollover in progress",
        "Zone {zone} publishes several key-signing keys ({key_tags}): a KSK rollover looks "
        "in progress",
        ("RFC 6781 4.1.2", "RFC 7583 3.3"),
        remediation=(
            "Finish the KSK rollover of {zone} (update the parent's DS, then withdraw the "
            "old key), or remove the stray key."
        ),
    ),
    FindingSpec(
        FindingCode.KEY_REVOKED_PUBLISHED,
        Severity.INFO,
        "Revoked key published",
        "Zone {zone} publishes revoked key {key_tag}",
        ("RFC 5011 2.1",),
        remediation=(
            "Withdraw revoked key {key_tag} from {zone} once the RFC 5011 hold-down has "
            "passed."
        ),
    ),
    FindingSpec(
        FindingCode.WEAK_KEY,
        Severity.MEDIUM,
        "Weak key",
        "Zone {zone} publishes {algorithm} key {key_tag} of {bits} bits (under {minimum}); "
        "its signatures still validate, as in Unbound and BIND, but a modulus this short "
        "can be factored",
        ("RFC 6781 3.4.2",),
        remediation=(
            "Replace the {bits}-bit {algorithm} key {key_tag} of {zone} by a key of at "
            "least {minimum} bits, or roll to ECDSA/EdDSA."
        ),
    ),
    FindingSpec(
        FindingCode.CDS_NO_MATCHING_DNSKEY,
        Severity.MEDIUM,
        "CDS/CDNSKEY names no published DNSKEY",
        "Zone {zone} publishes {rrtype} {record} that matches none of its DNSKEYs",
        ("RFC 7344 4.1", "RFC 7344 5"),
        remediation=(
            "Fix or remove the {rrtype} of {zone}: it names no published DNSKEY, and a "
            "parent acting on it would break the zone."
        ),
    ),
    FindingSpec(
        FindingCode.CDS_NOT_SIGNED_BY_DS_KEY,
        Severity.MEDIUM,
        "CDS/CDNSKEY not signed by a DS-named key",
        "The {rrtype} RRset of zone {zone} is not signed by a key its parent's DS names",
        ("RFC 7344 4.1", "RFC 8078 3"),
        remediation=(
            "Sign the {rrtype} RRset of {zone} with a key its parent's DS names (RFC 7344 "
            "4.1), or the parent will ignore it."
        ),
    ),
    FindingSpec(
        FindingCode.CDS_DELETE_REQUESTED,
        Severity.INFO,
        "CDS/CDNSKEY asks to remove the DS",
        "Zone {zone} publishes a {rrtype} delete request: the parent should remove its DS",
        ("RFC 8078 4",),
        remediation=(
            "Confirm that {zone} should go insecure; if not, remove the {rrtype} delete "
            "record."
        ),
    ),
    FindingSpec(
        FindingCode.CDS_ALGORITHM_ROLL,
        Severity.INFO,
        "CDS/CDNSKEY asks for an algorithm roll",
        "Zone {zone} publishes {rrtype} for algorithm(s) {new} while its DS uses {old}",
        ("RFC 7344 4.1", "RFC 6781 4.1.4"),
        remediation=(
            "Complete the algorithm roll of {zone} from {old} to {new}: keep both "
            "algorithms signed until the parent's DS changes."
        ),
    ),
)
"""Zone health and policy findings, from the zone inventory at the end of a run."""


FORGERY_FINDINGS: tuple[FindingSpec, ...] = (
    FindingSpec(
        FindingCode.RESPONSE_RACE,
        Severity.HIGH,
        "Racing responses with different answers",
        "{count} different answers to one query for {qname} {qtype} ({client}#{cport} -> "
        "{server}, ID {id}): frame {first_frame} arrived first; validating: {validating}",
        ("RFC 5452 9.1", "RFC 5452 4"),
        remediation=(
            "Investigate a spoofing attempt on {client} for {qname}: compare the answers in "
            "frame {first_frame} and after; enable DNSSEC validation and source port "
            "randomisation."
        ),
    ),
    FindingSpec(
        FindingCode.WRONG_ID_BURST,
        Severity.HIGH,
        "Burst of responses with wrong IDs",
        "{count} responses with {distinct_ids} different IDs that match no query reached "
        "{client}#{cport} within {span_ms} ms (ID brute force)",
        ("RFC 5452 4.3", "RFC 5452 9.1"),
        remediation=(
            "Investigate a spoofing attempt on {client}#{cport}: rate-limit the source, "
            "check source port randomisation (RFC 5452)."
        ),
    ),
    FindingSpec(
        FindingCode.UNSOLICITED_RESPONSE,
        Severity.MEDIUM,
        "Response without a matching query",
        "Response from {server} to {client}#{cport} ID {id} for {qname} {qtype} matches no "
        "captured query ({reason})",
        ("RFC 5452 9.1",),
        remediation=(
            "Check whether the capture missed the query ({reason}); if not, investigate "
            "{server} sending unsolicited answers to {client}."
        ),
    ),
    FindingSpec(
        FindingCode.RESPONSE_FROM_UNQUERIED_SERVER,
        Severity.HIGH,
        "Response from an address the query was not sent to",
        "Response for {qname} {qtype} to {client}#{cport} ID {id} came from {server}, but the "
        "query was sent to {asked}",
        ("RFC 5452 9.1",),
        remediation=(
            "Investigate {server}: the query for {qname} went to {asked}; an answer from "
            "elsewhere is spoofed or sent by an anycast/NAT box."
        ),
    ),
    FindingSpec(
        FindingCode.KAMINSKY_PATTERN,
        Severity.HIGH,
        "Kaminsky-style poisoning pattern",
        "{names} different names under {zone} were answered to {client} with the same "
        "authority/additional data ({payload}), {spoofed} of them by responses with spoofing "
        "signs",
        ("RFC 5452 4", "RFC 5452 6"),
        remediation=(
            "Investigate a cache poisoning attempt on {client} under {zone}; validate "
            "DNSSEC and check source port randomisation."
        ),
    ),
    FindingSpec(
        FindingCode.HOP_LIMIT_ANOMALY,
        Severity.MEDIUM,
        "IP TTL unlike the server's usual",
        "Response from {server} arrived with IP TTL {hop_limit}; {usual} in {share}% of its "
        "{samples} responses in this capture",
        ("RFC 5452 4",),
        remediation=(
            "Check the path from {server}: an IP TTL of {hop_limit} instead of {usual} "
            "suggests another sender (spoofing) or a route change."
        ),
    ),
    FindingSpec(
        FindingCode.RTT_ANOMALY,
        Severity.MEDIUM,
        "Response faster than the server can answer",
        "Response from {server} arrived {rtt_us} us after the query; its usual fastest "
        "(20th percentile of {samples}) is {usual_us} us",
        ("RFC 5452 4",),
        remediation=(
            "Check whether the answer from {server} came from an on-path box: it arrived "
            "faster than the server can answer."
        ),
    ),
    FindingSpec(
        FindingCode.OUT_OF_BAILIWICK_DATA,
        Severity.HIGH,
        "Out-of-bailiwick records",
        "Response from {server} for {qname} {qtype} carries records outside its bailiwick "
        "{bailiwick}: {records}",
        ("RFC 5452 6", "RFC 2181 5.4.1"),
        remediation=(
            "Resolvers should ignore these records; check {server} for a misconfiguration "
            "or poisoning attempt ({records})."
        ),
    ),
    FindingSpec(
        FindingCode.ANSWER_OUTSIDE_CHAIN,
        Severity.HIGH,
        "Answer records that do not follow from the question",
        "Response from {server} for {qname} {qtype} answers with {records}, which no "
        "CNAME/DNAME chain from the question leads to",
        ("RFC 1034 4.3.2", "RFC 2181 5.4.1", "RFC 6672 3"),
        remediation=(
            "Check {server}: its answer for {qname} carries {records}, which a resolver "
            "must ignore; possible poisoning attempt."
        ),
    ),
    FindingSpec(
        FindingCode.EXTRANEOUS_RECORDS,
        Severity.LOW,
        "Records a resolver discards",
        "Response from {server} for {qname} {qtype} carries records nothing in it justifies "
        "(resolvers discard them): {records}",
        ("RFC 2181 5.4.1", "RFC 1034 4.3.2"),
        remediation=(
            "Check {server}'s configuration for {qname}: resolvers discard {records}."
        ),
    ),
    FindingSpec(
        FindingCode.ADDITIONAL_CONTRADICTS_VALIDATED,
        Severity.MEDIUM,
        "Additional data contradicts validated data",
        "Response from {server} for {qname} {qtype} carries {rrset} outside its bailiwick "
        "{bailiwick} with none of the addresses validated in frame {validated_frame} while "
        "that copy was within its TTL",
        ("RFC 2181 5.4.1", "RFC 5452 6", "RFC 4035 5"),
        remediation=(
            "Investigate {server}: its additional data for {qname} contradicts validated "
            "addresses (frame {validated_frame}); possible poisoning."
        ),
    ),
    FindingSpec(
        FindingCode.RRSIGS_STRIPPED,
        Severity.CRITICAL,
        "RRSIGs stripped from a signed zone's answer",
        "{rrsets} of signed zone {zone} reached {client} from {server} without RRSIGs although "
        "the query set DO",
        ("RFC 4035 3.1.1", "RFC 4035 5"),
        remediation=(
            "Find what strips RRSIGs between {server} and {client} (a middlebox, a "
            "non-DNSSEC forwarder) for zone {zone}."
        ),
    ),
    FindingSpec(
        FindingCode.OPT_STRIPPED,
        Severity.CRITICAL,
        "EDNS OPT record stripped",
        "Response from {server} for {qname} {qtype} of signed zone {zone} has no OPT record "
        "(and so no RRSIGs) although the query set DO",
        ("RFC 3225 3", "RFC 6891 7", "RFC 4035 3.1"),
        remediation=(
            "Find what strips EDNS between {server} and the client (a middlebox or old "
            "forwarder) for {qname} in zone {zone}."
        ),
    ),
    FindingSpec(
        FindingCode.KEY_MATERIAL_STRIPPED,
        Severity.CRITICAL,
        "DNSKEY/DS answer stripped",
        "{qtype} answer for {qname} from {server} was stripped ({how}) although validated "
        "DNSSEC material exists for it",
        ("RFC 4035 3.1.1", "RFC 4035 5.2"),
        remediation=(
            "Find what stripped the {qtype} answer for {qname} from {server} ({how}): a "
            "middlebox or a downgrade attack."
        ),
    ),
    FindingSpec(
        FindingCode.AD_ON_UNVALIDATED,
        Severity.CRITICAL,
        "AD bit on data that does not validate",
        "{server} set AD for {qname} {qtype} to {client} but the data is {status} ({reasons})",
        ("RFC 4035 3.2.3", "RFC 6840 5.8"),
        remediation=(
            "Check {server}: it claims AD for {qname} {qtype} although the data is "
            "{status}; do not trust its AD bit."
        ),
    ),
    FindingSpec(
        FindingCode.AD_CLEARED,
        Severity.MEDIUM,
        "AD bit missing on validated data",
        "Validating resolver {server} answered {qname} {qtype} to {client} without AD although "
        "the data validates and the query asked for it ({asked})",
        ("RFC 4035 3.2.3", "RFC 6840 5.7"),
        remediation=(
            "Check {server} for a validation failure or a middlebox clearing AD on {qname} "
            "{qtype} ({asked})."
        ),
    ),
    FindingSpec(
        FindingCode.FLAGS_ALTERED,
        Severity.HIGH,
        "DNSSEC header bits altered in transit",
        "Two copies of one {kind} for {qname} {qtype} ({client}#{cport} <-> {server}, ID {id}) "
        "differ only in their bits: {changes}",
        ("RFC 4035 3.2", "RFC 3225 3", "RFC 6840 5.9"),
        remediation=(
            "Find what alters header bits between {client} and {server} ({changes}): a "
            "middlebox or an on-path attacker."
        ),
    ),
    FindingSpec(
        FindingCode.CONTRADICTS_VALIDATED,
        Severity.CRITICAL,
        "Answer contradicts validated data",
        "{rrset} given to {client} by {server} differs from the validated copy seen in frame "
        "{validated_frame} while both were within their TTL",
        ("RFC 4033 3", "RFC 4035 5"),
        remediation=(
            "Treat the answer from {server} to {client} as forged: it contradicts the "
            "validated copy in frame {validated_frame}."
        ),
    ),
    FindingSpec(
        FindingCode.DENIAL_CONTRADICTS_VALIDATED,
        Severity.CRITICAL,
        "Negative answer contradicts validated data",
        "{rcode} for {qname} {qtype} given to {client} by {server} although frame "
        "{validated_frame} validated {rrset} within its TTL",
        ("RFC 4035 3.1.3", "RFC 8020 2"),
        remediation=(
            "Treat the {rcode} from {server} to {client} for {qname} as forged: frame "
            "{validated_frame} validated {rrset}."
        ),
    ),
)
"""Forgery signals (``auditor.forgery``): races, blind spoofing, Hold-On consistency,
bailiwick, DNSSEC downgrade and cross-checks; each finding carries ``forged`` or
``suspicious`` as its verdict."""


def _register(*families: tuple[FindingSpec, ...]) -> dict[FindingCode, FindingSpec]:
    table: dict[FindingCode, FindingSpec] = {}
    for family in families:
        for spec in family:
            if spec.code in table:
                raise ValueError(f"finding code {spec.code} is defined twice")
            table[spec.code] = spec
    return table


CATALOGUE: dict[FindingCode, FindingSpec] = _register(
    DECODE_FINDINGS, VALIDATION_FINDINGS, ZONE_FINDINGS, FORGERY_FINDINGS
)
"""Every finding code, registered once."""


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where a finding comes from, so anyone can find the packets again."""

    capture: str
    """Capture file name (or interface) of the deciding frame."""
    frames: tuple[int, ...]
    """Frame numbers involved, 1-based, as Wireshark counts."""
    ts_ns: int
    """Capture time of the deciding frame, nanoseconds since the epoch."""
    server: str | None = None
    """Server address (the response's source), when there is one."""
    client: str | None = None
    """Client address (the response's destination), when there is one."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One rendered finding: a catalogue code with its parameters and provenance."""

    code: FindingCode
    """Catalogue code (a ``str``: its value is what every output writes)."""
    severity: Severity
    """Severity (the catalogue default unless the emitter had reason to change it)."""
    message: str
    """The rendered template."""
    params: Mapping[str, object]
    """The template's parameters plus any extra machine-readable facts."""
    provenance: Provenance
    """Capture, frames, time, server and client."""
    verdict: str | None = None
    """For forgery findings: ``forged`` (proven) or ``suspicious`` (heuristics only)."""
    count: int = 1
    """How many occurrences were merged into this finding (1 when not merged)."""
    last_ts_ns: int | None = None
    """Capture time of the last merged occurrence (None: same as ``provenance.ts_ns``)."""

    @property
    def first_seen_ns(self) -> int:
        """Capture time of the first occurrence."""
        return self.provenance.ts_ns

    @property
    def last_seen_ns(self) -> int:
        """Capture time of the last occurrence."""
        return self.last_ts_ns if self.last_ts_ns is not None else self.provenance.ts_ns


def make_finding(
    code: FindingCode,
    params: Mapping[str, object],
    provenance: Provenance,
    *,
    severity: Severity | None = None,
    verdict: str | None = None,
    count: int = 1,
    last_ts_ns: int | None = None,
) -> Finding:
    """Render ``code`` from the catalogue; raises KeyError for an unknown code or parameter.

    >>> where = Provenance("a.pcap", (3, 4), 1_700_000_000_000_000_000, "192.0.2.53")
    >>> found = make_finding(FindingCode.AD_ON_BOGUS,
    ...                      {"server": "192.0.2.53", "zone": "example.", "reasons": "x"}, where)
    >>> found.code == "ad_on_bogus", f"{found.code}"
    (True, 'ad_on_bogus')
    >>> found.severity, found.message
    (<Severity.CRITICAL: 'critical'>, '192.0.2.53 set the AD bit (claimed secure) on bogus data \
from zone example.: x')
    >>> make_finding(FindingCode.DS_MISMATCH, {}, where)
    Traceback (most recent call last):
    ...
    KeyError: "finding ds_mismatch needs parameters ['zone']"
    """
    spec = CATALOGUE[code]
    return Finding(
        code=spec.code,
        severity=severity or spec.severity,
        message=spec.render(params),
        params=dict(params),
        provenance=provenance,
        verdict=verdict,
        count=count,
        last_ts_ns=last_ts_ns,
    )
