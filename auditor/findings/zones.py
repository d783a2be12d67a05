"""Zone health: an inventory of every zone seen (keys, DS, denial, CDS/CDNSKEY, signature
validity, verdicts) and the policy findings it implies, built from judged responses."""

from __future__ import annotations

import logging
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import dns.dnssec
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.CDNSKEY
import dns.rdtypes.ANY.DNSKEY
import dns.rdtypes.ANY.DS
import dns.rdtypes.dsbase
import dns.rrset
from dns.rdtypes.dnskeybase import Flag

from auditor.evidence import ResponseEvidence, RRsetEvidence
from auditor.findings.catalogue import Finding, Provenance
from auditor.findings.codes import FindingCode as F
from auditor.findings.merge import FindingMerger
from auditor.findings.validation import provenance_of
from auditor.messages import NameTexts, name_texts
from auditor.validate.compact import is_minimally_covering
from auditor.validate.ds import ds_names_any
from auditor.validate.signature import RSA_ALGORITHMS, rsa_modulus_bits, serial_to_epoch
from auditor.validate.verdict import Status, Verdict

logger = logging.getLogger(__name__)

DNSKEY = dns.rdtypes.ANY.DNSKEY.DNSKEY | dns.rdtypes.ANY.CDNSKEY.CDNSKEY
DS = dns.rdtypes.dsbase.DSBase
TrustOf = Callable[[dns.name.Name], tuple[str, str]]
"""Zone -> (chain status, explanation); usually ``Validator.zone_trust`` adapted."""

MAX_ZONES = 50_000
MAX_RECORDS_PER_ZONE = 64
"""DNSKEY, DS and NSEC3 parameter sets kept per zone (the first ones seen)."""
MAX_ZONE_BYTES = 16 << 20
"""Accounted bytes (``ZONE_OVERHEAD`` per zone, ``record_cost`` per record kept) of the zones
tracked; over it the zone seen least recently is forgotten, as over ``MAX_ZONES``."""
ZONE_OVERHEAD = 1_536
"""Bytes a tracked zone costs besides its records (its state, provenance, verdict counts and
the table entry), measured with tracemalloc over 10,000 zones (1,370 bytes each)."""
RECORD_OVERHEAD = 256
"""Bytes a kept DNSKEY/DS/CDS record or NSEC3 parameter set costs besides its wire bytes."""
EXPIRY_WARNING_S = 2 * 86_400
"""Signatures with less remaining validity than this when seen are reported."""
WEAK_RSA_BITS = 1024
"""RSA moduli shorter than this are reported as ``weak_key`` (RFC 6781 3.4.2; NIST SP 800-131A
disallows RSA under 2048 bits for new signatures and 512 bits has been factored since 1999).
Validation does not gate on size: Unbound and BIND accept such keys."""

# RFC 8624 3.1 "DNSSEC Signing" column (kept as the IANA registry's values by RFC 9904).
SIGNING_STATUS: dict[int, str] = {
    1: "MUST NOT", 3: "MUST NOT", 5: "NOT RECOMMENDED", 6: "MUST NOT", 7: "NOT RECOMMENDED",
    8: "MUST", 10: "NOT RECOMMENDED", 12: "MUST NOT", 13: "MUST", 14: "MAY",
    15: "RECOMMENDED", 16: "MAY",
}
# RFC 8624 3.3 "DNSSEC Delegation" column for DS digest types.
DIGEST_STATUS: dict[int, str] = {1: "MUST NOT", 2: "MUST", 3: "MUST NOT", 4: "MAY"}
_CURVE_BITS = {13: 256, 14: 384, 15: 256, 16: 456}
_NSEC3_OPT_OUT = 0x01  # RFC 5155 3.1.2.1


def algorithm_name(number: int) -> str:
    """``ECDSAP256SHA256 (13)`` style text."""
    try:
        return f"{dns.dnssec.Algorithm(number).name} ({number})"
    except ValueError:
        return f"algorithm {number}"


def key_bits(key: DNSKEY) -> int:
    """Key size in bits (RSA modulus or curve size); 0 when unknown."""
    algorithm = int(key.algorithm)
    if algorithm in RSA_ALGORITHMS:
        return rsa_modulus_bits(key)  # type: ignore[arg-type]
    return _CURVE_BITS.get(algorithm, 0)


def key_text(key: DNSKEY) -> str:
    """``tag/alg/bits KSK|ZSK[ revoked]``, e.g. ``12345/13/256 KSK``."""
    role = "KSK" if key.flags & Flag.SEP else "ZSK"
    revoked = " revoked" if key.flags & Flag.REVOKE else ""
    return f"{dns.dnssec.key_id(key)}/{int(key.algorithm)}/{key_bits(key)} {role}{revoked}"


def _duration(seconds: int) -> str:
    if seconds < 0:
        return f"expired {_duration(-seconds)} ago"
    if seconds >= 86_400:
        return f"{seconds / 86_400:.1f} days"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} hours"
    return f"{seconds} s"


@dataclass(slots=True)
class _Signed:
    """The latest copy of a CDS/CDNSKEY RRset with its RRSIGs."""

    rrset: dns.rrset.RRset
    rrsigs: dns.rrset.RRset | None
    where: Provenance


@dataclass(slots=True)
class _ZoneState:
    """Everything remembered about one zone while the capture is read."""

    first: Provenance
    last_ns: int
    verdicts: Counter[str] = field(default_factory=Counter)
    dnskeys: dict[bytes, DNSKEY] = field(default_factory=dict)
    ds: dict[bytes, DS] = field(default_factory=dict)
    where: dict[str, Provenance] = field(default_factory=dict)
    nsec: bool = False
    nsec_chain: bool = False
    """An NSEC that is not minimally covering was seen (online signers make only those)."""
    nsec3: set[tuple[int, str, bool]] = field(default_factory=set)
    min_remaining_s: int | None = None
    min_remaining_rrset: str = ""
    ttl_over: tuple[str, int, int] | None = None
    signed: dict[str, _Signed] = field(default_factory=dict)
    cost: int = ZONE_OVERHEAD
    """Accounted bytes of this zone (``ZONE_OVERHEAD`` plus ``record_cost`` of its records)."""


def record_cost(wire: bytes) -> int:
    """Accounted bytes of one record (or NSEC3 parameter set) a zone keeps, by its wire form."""
    return 2 * len(wire) + RECORD_OVERHEAD


def _signed_cost(rrset: dns.rrset.RRset, rrsigs: dns.rrset.RRset | None) -> int:
    return sum(record_cost(r.to_digestable()) for r in (*rrset, *(rrsigs or ())))


@dataclass(frozen=True, slots=True)
class ZoneHealthRow:
    """One line of ``zones.csv`` / ``zones.parquet``."""

    zone: str
    """Zone name, absolute."""
    chain_status: str
    """Chain-of-trust status of the zone's keys (secure, insecure, bogus, indeterminate)."""
    chain_detail: str
    """Why, in a sentence or two."""
    dnskeys: str
    """Published DNSKEYs as ``tag/alg/bits KSK|ZSK[ revoked]``, ``; ``-separated."""
    dnskey_flags: str
    """Flags field of each DNSKEY, in the same order."""
    ksk_count: int
    """DNSKEYs with the SEP bit (RFC 4034 2.1.1), revoked ones excluded."""
    zsk_count: int
    """DNSKEYs without the SEP bit."""
    revoked_count: int
    """DNSKEYs with the REVOKE bit (RFC 5011 2.1)."""
    algorithms: str
    """DNSKEY algorithm numbers, comma-separated."""
    ds: str
    """DS records seen as ``tag/alg/digest-type matches|no match``."""
    denial: str
    """``NSEC``, ``NSEC3``, both, or empty when no denial record was seen."""
    nsec3_iterations: int | None
    """Largest NSEC3 additional iteration count seen."""
    nsec3_salt: str | None
    """NSEC3 salt (hex, ``-`` for none)."""
    nsec3_opt_out: bool | None
    """Whether an NSEC3 record with the opt-out flag was seen."""
    min_signature_validity_s: int | None
    """Shortest remaining signature validity seen (seconds, negative if expired)."""
    min_signature_rrset: str
    """The RRset whose signature had that shortest validity."""
    secure: int
    """Responses about this zone judged secure."""
    insecure: int
    """... insecure."""
    bogus: int
    """... bogus."""
    indeterminate: int
    """... indeterminate."""
    first_seen: int
    """Capture time (ns) of the first response involving the zone."""
    last_seen: int
    """Capture time (ns) of the last response involving the zone."""
    cds: str
    """CDS records seen (presentation format), ``; ``-separated."""
    cdnskey: str
    """CDNSKEY records seen as key descriptions."""
    cds_matches_dnskey: bool | None
    """Every CDS/CDNSKEY names a published DNSKEY (RFC 7344 4.1); None without CDS/CDNSKEY
    or without the zone's DNSKEY RRset in the capture (not applicable)."""
    cds_signed_by_ds_key: bool | None
    """The CDS/CDNSKEY RRsets are signed by a key the parent's DS names (RFC 7344 4.1); None
    without CDS/CDNSKEY, without their RRSIGs, or without the zone's DNSKEY and DS RRsets in
    the capture (not applicable)."""
    cds_delete: bool
    """A CDS/CDNSKEY delete request was seen (RFC 8078 4)."""
    cds_algorithm_roll: bool
    """The CDS/CDNSKEY algorithms differ from the DS algorithms (an algorithm roll)."""
    findings: str
    """Policy finding codes for this zone, comma-separated."""


class ZoneHealth:
    """FindingSource: gathers per-zone facts from every judged response; at ``flush`` builds
    the inventory (``rows``) and emits the policy findings.

    ``trust_of`` gives each zone's chain status (e.g. from ``Validator.zone_trust``).
    Memory is bounded by ``max_zones`` (default ``MAX_ZONES``) zones, ``max_bytes`` (default
    ``MAX_ZONE_BYTES``) accounted bytes over all of them and ``MAX_RECORDS_PER_ZONE`` keys/DS
    /NSEC3 parameter sets each; over either cap the zone seen least recently is forgotten (a
    tap running for days keeps tracking new zones) and ``evicted`` counts it.
    """

    def __init__(
        self,
        trust_of: TrustOf | None = None,
        *,
        expiry_warning_s: int = EXPIRY_WARNING_S,
        max_zones: int | None = None,
        max_bytes: int = MAX_ZONE_BYTES,
        name_text: NameTexts | None = None,
    ) -> None:
        """``name_text``: the run's memo of name texts (its parse tables'; without it the
        stage has its own)."""
        self._name_text = name_text if name_text is not None else name_texts()
        self._trust_of = trust_of
        self._max_zones = MAX_ZONES if max_zones is None else max_zones
        self._max_bytes = max_bytes
        self._bytes = 0
        self._expiry_warning_s = expiry_warning_s
        self._zones: OrderedDict[str, _ZoneState] = OrderedDict()
        self.evicted = 0
        """Zones forgotten, least recently seen first, because ``max_zones`` were tracked or
        they held ``max_bytes``."""
        self.evicted_bytes = 0
        """Accounted bytes of the zones counted in ``evicted``."""
        self._merger = FindingMerger()
        self.rows: list[ZoneHealthRow] = []
        """The inventory, filled by ``flush``, sorted by zone name."""

    def __len__(self) -> int:
        return len(self._zones)

    @property
    def held_bytes(self) -> int:
        """Accounted bytes of the zones tracked now."""
        return self._bytes

    def counters(self) -> dict[str, int]:
        """JSON-ready counts for ``stats.json``: zones tracked, their bytes, evictions."""
        return {"zones": len(self._zones), "zone_bytes": self._bytes,
                "zones_evicted": self.evicted, "zone_evicted_bytes": self.evicted_bytes,
                "merge_peak_bytes": self._merger.peak_bytes,
                "findings_not_merged": self._merger.dropped}

    # --- feeding -----------------------------------------------------------------------------

    def feed(self, evidence: ResponseEvidence, verdict: Verdict) -> Iterable[Finding]:
        """Take the zone facts of one judged response."""
        where = provenance_of(evidence)
        if verdict.zone:
            self._state(verdict.zone, where).verdicts[verdict.status.value] += 1
        reference_s = verdict.reference_time_ns // 1_000_000_000
        for item in evidence.rrsets:
            self._observe(item, where, reference_s)
        while self._bytes > self._max_bytes and len(self._zones) > 1:
            self._evict_oldest()  # the zones this response touched are the most recent
        return ()

    def _evict_oldest(self) -> None:
        _, state = self._zones.popitem(last=False)
        self._bytes -= state.cost
        self.evicted += 1
        self.evicted_bytes += state.cost

    def _grow(self, state: _ZoneState, cost: int) -> None:
        state.cost += cost
        self._bytes += cost

    def _state(self, zone: str, where: Provenance) -> _ZoneState:
        state = self._zones.get(zone)
        if state is None:
            if len(self._zones) >= self._max_zones:
                self._evict_oldest()
            state = _ZoneState(where, where.ts_ns)
            self._zones[zone] = state
            self._bytes += state.cost
        else:
            self._zones.move_to_end(zone)
        state.last_ns = max(state.last_ns, where.ts_ns)
        return state

    def _observe(self, item: RRsetEvidence, where: Provenance, reference_s: int) -> None:
        rdtype = item.rrset.rdtype
        owner = self._name_text(item.rrset.name)
        if rdtype == dns.rdatatype.DNSKEY:
            self._remember(owner, "dnskey", where, item.rrset)
        elif rdtype == dns.rdatatype.DS:
            self._remember(owner, "ds", where, item.rrset)
        elif rdtype in (dns.rdatatype.CDS, dns.rdatatype.CDNSKEY):
            state = self._state(owner, where)
            replaced = state.signed.get(rdtype.name)
            if replaced is not None:
                self._grow(state, -_signed_cost(replaced.rrset, replaced.rrsigs))
            state.signed[rdtype.name] = _Signed(item.rrset, item.rrsigs, where)
            self._grow(state, _signed_cost(item.rrset, item.rrsigs))
            state.where.setdefault("signed", where)
        if item.rrsigs is None:
            return
        for rrsig in item.rrsigs:
            state = self._state(self._name_text(rrsig.signer), where)
            if rdtype == dns.rdatatype.NSEC:
                state.nsec = True
                state.where.setdefault("nsec", where)
                # RFC 4470 / RFC 9824: records made on the fly span only the name asked.
                state.nsec_chain = state.nsec_chain or any(
                    not is_minimally_covering(record.next) for record in item.rrset)
            elif rdtype == dns.rdatatype.NSEC3:
                for record in item.rrset:
                    params = (int(record.iterations), record.salt.hex() or "-",
                              bool(record.flags & _NSEC3_OPT_OUT))
                    if params not in state.nsec3 and len(state.nsec3) < MAX_RECORDS_PER_ZONE:
                        state.nsec3.add(params)
                        self._grow(state, record_cost(record.salt))
                state.where.setdefault("nsec3", where)
            self._validity(state, item, int(rrsig.expiration), reference_s, where)

    def _remember(self, owner: str, kind: str, where: Provenance, rrset: dns.rrset.RRset) -> None:
        state = self._state(owner, where)
        store: dict[bytes, DNSKEY] | dict[bytes, DS] = (
            state.dnskeys if kind == "dnskey" else state.ds
        )
        state.where.setdefault(kind, where)
        for record in rrset:
            if len(store) < MAX_RECORDS_PER_ZONE:
                wire = record.to_digestable()
                if wire not in store:
                    store[wire] = record  # type: ignore[assignment]
                    self._grow(state, record_cost(wire))

    def _validity(
        self, state: _ZoneState, item: RRsetEvidence, expiration: int, reference_s: int,
        where: Provenance,
    ) -> None:
        # RFC 4034 3.1.5: expiration is a 32-bit serial number (RFC 1982) near the reference.
        remaining = serial_to_epoch(expiration, reference_s) - reference_s
        label = f"{self._name_text(item.rrset.name)} {item.rrset.rdtype.name}"
        if state.min_remaining_s is None or remaining < state.min_remaining_s:
            state.min_remaining_s = remaining
            state.min_remaining_rrset = label
            state.where["validity"] = where
        # RFC 4035 5.3.3: a cached RRset must not outlive its signature's expiration.
        if 0 < remaining < item.rrset.ttl and state.ttl_over is None:
            state.ttl_over = (label, int(item.rrset.ttl), remaining)
            state.where["ttl"] = where

    # --- the inventory -----------------------------------------------------------------------

    def flush(self) -> Iterable[Finding]:
        """Build ``rows`` and return the merged policy findings."""
        self.rows = [self._row(zone, state) for zone, state in sorted(self._zones.items())]
        return list(self._merger.flush())

    def _finding(self, code: F, zone: str, state: _ZoneState, where_key: str,
                 params: dict[str, object], codes: list[F]) -> None:
        where = state.where.get(where_key, state.first)
        self._merger.add(code, (zone, *sorted((k, str(v)) for k, v in params.items())),
                         {"zone": zone, **params}, where)
        if code not in codes:
            codes.append(code)

    def _row(self, zone: str, state: _ZoneState) -> ZoneHealthRow:
        codes: list[F] = []
        name = dns.name.from_text(zone)
        keys = list(state.dnskeys.values())
        ds_records = list(state.ds.values())
        self._key_findings(zone, state, keys, codes)
        self._ds_findings(zone, state, ds_records, codes)
        self._denial_findings(zone, state, codes)
        self._validity_findings(zone, state, codes)
        cds = _CdsCheck(name, keys, ds_records, state.signed)
        self._cds_findings(zone, state, cds, codes)
        status, detail = self._trust_of(name) if self._trust_of is not None else ("", "")
        iterations = max((i for i, _, _ in state.nsec3), default=None)
        salts = sorted({s for _, s, _ in state.nsec3})
        denial = "+".join(k for k, seen in (("NSEC", state.nsec), ("NSEC3", bool(state.nsec3)))
                          if seen)
        return ZoneHealthRow(
            zone=zone, chain_status=status, chain_detail=detail,
            dnskeys="; ".join(key_text(k) for k in keys),
            dnskey_flags=", ".join(str(int(k.flags)) for k in keys),
            ksk_count=sum(1 for k in keys if k.flags & Flag.SEP and not k.flags & Flag.REVOKE),
            zsk_count=sum(1 for k in keys if not k.flags & Flag.SEP),
            revoked_count=sum(1 for k in keys if k.flags & Flag.REVOKE),
            algorithms=",".join(str(a) for a in sorted({int(k.algorithm) for k in keys})),
            ds="; ".join(_ds_text(name, ds, keys) for ds in ds_records),
            denial=denial,
            nsec3_iterations=iterations,
            nsec3_salt=",".join(salts) if salts else None,
            nsec3_opt_out=any(o for _, _, o in state.nsec3) if state.nsec3 else None,
            min_signature_validity_s=state.min_remaining_s,
            min_signature_rrset=state.min_remaining_rrset,
            secure=state.verdicts[Status.SECURE.value],
            insecure=state.verdicts[Status.INSECURE.value],
            bogus=state.verdicts[Status.BOGUS.value],
            indeterminate=state.verdicts[Status.INDETERMINATE.value],
            first_seen=state.first.ts_ns, last_seen=state.last_ns,
            cds="; ".join(r.to_text() for r in cds.cds),
            cdnskey="; ".join(key_text(k) for k in cds.cdnskey),
            cds_matches_dnskey=cds.matches, cds_signed_by_ds_key=cds.signed_by_ds_key,
            cds_delete=cds.delete, cds_algorithm_roll=cds.algorithm_roll,
            findings=",".join(codes),
        )

    def _key_findings(self, zone: str, state: _ZoneState, keys: list[DNSKEY],
                      codes: list[F]) -> None:
        for algorithm in sorted({int(k.algorithm) for k in keys}):
            status = SIGNING_STATUS.get(algorithm, "unassigned")
            if status in ("MUST NOT", "NOT RECOMMENDED", "unassigned"):  # RFC 8624 3.1
                self._finding(F.ALGORITHM_NOT_RECOMMENDED, zone, state, "dnskey",
                              {"algorithm": algorithm_name(algorithm), "status": status}, codes)
        ksks = sorted({dns.dnssec.key_id(k) for k in keys
                       if k.flags & Flag.SEP and not k.flags & Flag.REVOKE})
        if len(ksks) > 1:  # RFC 6781 4.1.2: double-KSK rollover publishes both keys
            self._finding(F.KSK_ROLLOVER_IN_PROGRESS, zone, state, "dnskey",
                          {"key_tags": ", ".join(str(t) for t in ksks)}, codes)
        for key in keys:
            if key.flags & Flag.REVOKE:  # RFC 5011 2.1
                self._finding(F.KEY_REVOKED_PUBLISHED, zone, state, "dnskey",
                              {"key_tag": dns.dnssec.key_id(key)}, codes)
            bits = key_bits(key)
            # RFC 6781 3.4.2: a short RSA modulus; 0 is a malformed key, not a weak one.
            if int(key.algorithm) in RSA_ALGORITHMS and 0 < bits < WEAK_RSA_BITS:
                self._finding(F.WEAK_KEY, zone, state, "dnskey",
                              {"key_tag": dns.dnssec.key_id(key),
                               "algorithm": algorithm_name(int(key.algorithm)), "bits": bits,
                               "minimum": WEAK_RSA_BITS}, codes)

    def _ds_findings(self, zone: str, state: _ZoneState, ds_records: list[DS],
                     codes: list[F]) -> None:
        for digest in sorted({int(ds.digest_type) for ds in ds_records}):
            status = DIGEST_STATUS.get(digest, "unassigned")
            if status in ("MUST NOT", "unassigned"):  # RFC 8624 3.3
                self._finding(F.DS_DIGEST_NOT_RECOMMENDED, zone, state, "ds",
                              {"digest": _digest_name(digest), "status": status}, codes)

    def _denial_findings(self, zone: str, state: _ZoneState, codes: list[F]) -> None:
        if state.nsec_chain:  # RFC 5155 1: NSEC chains enumerate the zone
            self._finding(F.NSEC_ZONE_WALKABLE, zone, state, "nsec", {}, codes)
        for iterations, salt, opt_out in sorted(state.nsec3):
            if iterations > 0:  # RFC 9276 3.1: iterations MUST be 0
                self._finding(F.NSEC3_ITERATIONS, zone, state, "nsec3",
                              {"iterations": iterations}, codes)
            if salt != "-":  # RFC 9276 3.1: SHOULD NOT use a salt
                self._finding(F.NSEC3_SALT, zone, state, "nsec3", {"salt": salt}, codes)
            if opt_out:  # RFC 9276 3.1: opt-out only for very large, sparsely signed zones
                self._finding(F.NSEC3_OPT_OUT, zone, state, "nsec3", {}, codes)

    def _validity_findings(self, zone: str, state: _ZoneState, codes: list[F]) -> None:
        remaining = state.min_remaining_s
        if remaining is not None and 0 < remaining < self._expiry_warning_s:
            self._finding(F.SIGNATURE_EXPIRING_SOON, zone, state, "validity",
                          {"rrset": state.min_remaining_rrset, "remaining": _duration(remaining)},
                          codes)
        if state.ttl_over is not None:
            label, ttl, left = state.ttl_over
            self._finding(F.TTL_EXCEEDS_SIGNATURE_VALIDITY, zone, state, "ttl",
                          {"rrset": label, "ttl": ttl, "remaining": _duration(left)}, codes)

    def _cds_findings(self, zone: str, state: _ZoneState, cds: _CdsCheck,
                      codes: list[F]) -> None:
        for rrtype, record in cds.unmatched:
            self._finding(F.CDS_NO_MATCHING_DNSKEY, zone, state, "signed",
                          {"rrtype": rrtype, "record": record}, codes)
        for rrtype in cds.unsigned_by_ds:
            self._finding(F.CDS_NOT_SIGNED_BY_DS_KEY, zone, state, "signed",
                          {"rrtype": rrtype}, codes)
        for rrtype in cds.delete_types:
            self._finding(F.CDS_DELETE_REQUESTED, zone, state, "signed", {"rrtype": rrtype},
                          codes)
        if cds.algorithm_roll:
            self._finding(F.CDS_ALGORITHM_ROLL, zone, state, "signed",
                          {"rrtype": "/".join(sorted(state.signed)),
                           "new": cds.new_algorithms, "old": cds.old_algorithms}, codes)


def _digest_name(digest: int) -> str:
    try:
        return f"{dns.dnssec.DSDigest(digest).name} ({digest})"
    except ValueError:
        return f"digest type {digest}"


def _ds_matches(zone: dns.name.Name, ds: DS, keys: list[DNSKEY]) -> bool:
    return ds_names_any(zone, ds, keys)


def _ds_text(zone: dns.name.Name, ds: DS, keys: list[DNSKEY]) -> str:
    match = "matches" if _ds_matches(zone, ds, keys) else "no match"
    return f"{ds.key_tag}/{int(ds.algorithm)}/{int(ds.digest_type)} {match}"


class _CdsCheck:
    """RFC 7344 / RFC 8078 checks of a zone's CDS and CDNSKEY RRsets.

    A check is made only on the evidence it needs: "names no published DNSKEY" needs the
    zone's DNSKEY RRset in the capture, "not signed by a DS-named key" needs the DNSKEY and DS
    RRsets and the CDS/CDNSKEY RRSIGs (a query without DO gets none); otherwise the check is
    not applicable (None, no finding), since an absent key proves nothing.
    """

    def __init__(self, zone: dns.name.Name, keys: list[DNSKEY], ds_records: list[DS],
                 signed: dict[str, _Signed]) -> None:
        cds_copy, cdnskey_copy = signed.get("CDS"), signed.get("CDNSKEY")
        self.cds: list[DS] = list(cds_copy.rrset) if cds_copy else []  # type: ignore[arg-type]
        self.cdnskey: list[DNSKEY] = (
            list(cdnskey_copy.rrset) if cdnskey_copy else []  # type: ignore[arg-type]
        )
        published = {k.to_digestable() for k in keys}
        self.unmatched: list[tuple[str, str]] = []
        self.delete_types: list[str] = []
        self.unsigned_by_ds: list[str] = []
        present = bool(self.cds or self.cdnskey)
        keys_seen = bool(keys)
        for record in self.cds:
            if int(record.algorithm) == 0 and int(record.digest_type) == 0:  # RFC 8078 4
                self._delete("CDS")
            elif keys_seen and not _ds_matches(zone, record, keys):
                self.unmatched.append(("CDS", record.to_text()))
        for key in self.cdnskey:
            if int(key.algorithm) == 0:  # RFC 8078 4: CDNSKEY 0 3 0 AA==
                self._delete("CDNSKEY")
            elif keys_seen and key.to_digestable() not in published:
                self.unmatched.append(("CDNSKEY", key_text(key)))
        judged = {kind: copy for kind, copy in signed.items() if copy.rrsigs is not None}
        if keys_seen and ds_records:
            self.unsigned_by_ds.extend(
                kind for kind, copy in judged.items()
                if not _signed_by_ds_key(zone, copy, keys, ds_records))
        self.matches: bool | None = (
            (not self.unmatched) if present and keys_seen else None)
        self.signed_by_ds_key: bool | None = (
            (not self.unsigned_by_ds) if judged and keys_seen and ds_records else None)
        self.delete = bool(self.delete_types)
        new = {int(r.algorithm) for r in [*self.cds, *self.cdnskey] if int(r.algorithm)}
        old = {int(ds.algorithm) for ds in ds_records}
        self.algorithm_roll = bool(new and old and new != old)
        self.new_algorithms = ",".join(str(a) for a in sorted(new))
        self.old_algorithms = ",".join(str(a) for a in sorted(old))

    def _delete(self, rrtype: str) -> None:
        if rrtype not in self.delete_types:
            self.delete_types.append(rrtype)


def _signed_by_ds_key(zone: dns.name.Name, copy: _Signed, keys: list[DNSKEY],
                      ds_records: list[DS]) -> bool:
    """RFC 7344 4.1: the CDS/CDNSKEY RRset is signed by a key the current DS set names."""
    if copy.rrsigs is None:
        return False
    named = [k for k in keys if any(_ds_matches(zone, ds, [k]) for ds in ds_records)]
    if not named:
        return False
    keyset = dns.rrset.RRset(zone, dns.rdataclass.IN, dns.rdatatype.DNSKEY)
    for key in named:
        keyset.add(key)
    at = copy.where.ts_ns / 1_000_000_000
    for rrsig in copy.rrsigs:
        try:
            dns.dnssec.validate_rrsig(copy.rrset, rrsig, {zone: keyset}, now=at,
                                      policy=dns.dnssec.allow_all_policy)
        except (dns.dnssec.ValidationFailure, dns.dnssec.UnsupportedAlgorithm):
            continue
        return True
    return False
