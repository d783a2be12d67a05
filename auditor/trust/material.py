"""Key material gathered from responses: DNSKEY, DS and NSEC/NSEC3 RRsets with their RRSIGs,
plus fingerprints of every signed RRset for cross-checking unsigned copies.

Memory is bounded by distinct RRset contents (and capped), never by packets: the same RRset
seen a million times is one entry whose first/last capture times move.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import struct
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import dns.flags
import dns.name
import dns.rcode
import dns.rdata
import dns.rdatatype
import dns.rdtypes.ANY.RRSIG
import dns.rrset

from auditor.evidence import ResponseEvidence, RRsetEvidence, Section
from auditor.memo import IdentityMemo

logger = logging.getLogger(__name__)

RRsetKey = tuple[dns.name.Name, int, int]
"""(owner, type, class) of an RRset; dnspython names compare case-insensitively."""

_CHAIN_TYPES = frozenset({dns.rdatatype.DNSKEY, dns.rdatatype.DS})
_DENIAL_TYPES = frozenset({dns.rdatatype.NSEC, dns.rdatatype.NSEC3})
_MAX_SIGNATURES_PER_RRSET = 32
_CHANGE_LOG = 4096
"""Generations whose changed zones are remembered (``KeyMaterial.changed_zones_since``)."""


def rdata_wire(rdata: dns.rdata.Rdata) -> bytes:
    """Canonical wire form (RFC 4034 6.2) of one record's rdata (not memoised: a run's stages
    use its ``RecordDigests.wire``)."""
    return rdata.to_digestable(dns.name.root)


def rdata_set_digest(rrset: dns.rrset.RRset,
                     wire: Callable[[dns.rdata.Rdata], bytes] = rdata_wire) -> bytes:
    """SHA-256 over the canonical form (RFC 4034 6.2) of owner, type, class and the sorted rdata
    set, TTL excluded: equal for two copies of the same RRset however they were received
    (``wire``: the canonical form of one record; not memoised: a run's stages use its
    ``RecordDigests.digest``)."""
    hasher = hashlib.sha256()
    hasher.update(rrset.name.canonicalize().to_wire() or b"")
    hasher.update(struct.pack("!HH", rrset.rdtype, rrset.rdclass))
    for found in sorted(wire(rdata) for rdata in rrset):
        hasher.update(struct.pack("!H", len(found)))
        hasher.update(found)
    return hasher.digest()


DIGEST_MEMO_SIZE = 10_000
"""Default cap of each memo of ``RecordDigests`` (the file preset's ``digest_memo``)."""


class RecordDigests:
    """RRset digests and records' canonical wire forms, memoised per parsed object by identity
    (``IdentityMemo``: repeated messages share their parsed RRsets and records). Each run's
    key material owns one (``KeyMaterial.digests``), which the validator and the forgery
    stage of the run use too; none is shared between runs or processes."""

    __slots__ = ("digest", "wire")

    def __init__(self, size: int = DIGEST_MEMO_SIZE) -> None:
        self.wire: IdentityMemo[dns.rdata.Rdata, bytes] = IdentityMemo(rdata_wire, size)
        """``rdata_wire``, memoised."""
        # Over the wire memo, not a method of this object: a reference cycle would keep
        # a finished run's memos alive until the collector's next full run.
        self.digest: IdentityMemo[dns.rrset.RRset, bytes] = IdentityMemo(
            functools.partial(rdata_set_digest, wire=self.wire), size)
        """``rdata_set_digest``, memoised."""

    def clear(self) -> None:
        """Forget every memoised digest and wire form (the caps stay)."""
        self.digest.clear()
        self.wire.clear()

COPY_OVERHEAD = 3_072
"""Bytes a signed copy costs besides its records' wire form: the parsed RRset and its RRSIGs
(shared with the parse stage, but kept alive here), the entry, its signature table and its
key, as measured with tracemalloc under a flood of distinct signed answers."""


def copy_cost(rrset: dns.rrset.RRset,
              wire: Callable[[dns.rdata.Rdata], bytes] = rdata_wire) -> int:
    """Accounted bytes of one signed copy of ``rrset`` (``max_signed_copy_bytes``; ``wire``:
    the canonical form of one record)."""
    return COPY_OVERHEAD + 2 * sum(len(wire(rdata)) for rdata in rrset)


@dataclass(slots=True)
class SeenSignature:
    """One distinct RRSIG record and when packets carrying it were captured."""

    rrsig: dns.rdtypes.ANY.RRSIG.RRSIG
    """The RRSIG record."""
    first_seen_ns: int
    """Capture time of the first packet carrying it."""
    last_seen_ns: int
    """Capture time of the latest packet carrying it."""


@dataclass(slots=True)
class SignedRRset:
    """One distinct RRset content with every distinct RRSIG seen over it."""

    rrset: dns.rrset.RRset
    """The first copy received (its TTL is the first received TTL)."""
    digest: bytes
    """``rdata_set_digest`` of the content."""
    first_seen_ns: int
    """Capture time of the first packet carrying it."""
    last_seen_ns: int
    """Capture time of the latest packet carrying it."""
    signatures: dict[bytes, SeenSignature] = field(default_factory=dict)
    """Distinct RRSIGs over this content, keyed by their wire form."""
    stripped_with_do: bool = False
    """A copy arrived without RRSIGs in answer to a query that set DO: the signatures RFC 4035
    3.1.1 requires were missing (a copy fetched with DO clear proves nothing either way)."""

    @property
    def key(self) -> RRsetKey:
        """(owner, type, class)."""
        return (self.rrset.name, int(self.rrset.rdtype), int(self.rrset.rdclass))

    def add_signatures(self, rrsigs: dns.rrset.RRset | None, ts_ns: int,
                       wire_of: Callable[[dns.rdata.Rdata], bytes] = rdata_wire) -> bool:
        """Remember the RRSIGs of one received copy; True if any was new (``wire_of``: the
        canonical form of one record)."""
        self.first_seen_ns = min(self.first_seen_ns, ts_ns)
        self.last_seen_ns = max(self.last_seen_ns, ts_ns)
        new = False
        for rrsig in rrsigs or ():
            wire = wire_of(rrsig)
            seen = self.signatures.get(wire)
            if seen is not None:
                seen.first_seen_ns = min(seen.first_seen_ns, ts_ns)
                seen.last_seen_ns = max(seen.last_seen_ns, ts_ns)
            elif len(self.signatures) < _MAX_SIGNATURES_PER_RRSET:
                self.signatures[wire] = SeenSignature(rrsig, ts_ns, ts_ns)
                new = True
        return new


class KeyMaterial:
    """Mutable collector: call ``observe`` for every response (before and during judging).

    ``generation`` increases whenever chain material (DNSKEY, DS, NSEC/NSEC3 RRsets or their
    RRSIGs) changes, so a validator can drop memoised chain results; ``key_generation`` only
    when DNSKEY/DS material changes (a new NSEC cannot undo a zone's secure keys).
    """

    def __init__(
        self,
        *,
        max_signed_copies: int = 500_000,
        max_signed_copy_bytes: int = 24 << 20,
        max_denial: int = 200_000,
        max_chain_rrsets: int = 200_000,
        max_copies_per_rrset: int = 32,
        digest_memo: int = DIGEST_MEMO_SIZE,
    ) -> None:
        """``digest_memo``: the cap of each memo of ``digests``."""
        self.digests = RecordDigests(digest_memo)
        """RRset digests and record wire forms of this run (its validator and forgery stage
        use them too)."""
        # Every table is capped: names, keys and forged copies are chosen by whoever sends
        # the traffic. Over a cap the least recently seen entry goes and ``evicted`` counts it.
        self._chain: OrderedDict[RRsetKey, dict[bytes, SignedRRset]] = OrderedDict()
        self._max_chain = max_chain_rrsets
        self._max_versions = max_copies_per_rrset
        self.evicted: Counter[str] = Counter()
        self._denial: OrderedDict[bytes, SignedRRset] = OrderedDict()
        self._denial_by_zone: dict[dns.name.Name, dict[bytes, SignedRRset]] = {}
        self._copies: OrderedDict[RRsetKey, dict[bytes, SignedRRset]] = OrderedDict()
        self._max_copies = max_signed_copies
        self._max_copy_bytes = max_signed_copy_bytes
        self._copy_bytes: dict[RRsetKey, int] = {}
        """Accounted bytes (``copy_cost``) of each owner/type's signed copies."""
        self._copy_total = 0
        self._max_denial = max_denial
        self._delegations: OrderedDict[dns.name.Name, int] = OrderedDict()
        """Delegation points, least recently seen first, with the capture time last seen (so a
        merge orders them as one collector would)."""
        self._dnskey_nodata: OrderedDict[dns.name.Name, int] = OrderedDict()
        self.generation = 0
        self.key_generation = 0
        self.delegation_generation = 0
        """Changes whenever the delegations seen (unsigned authority NS owners) change: they
        change no chain ``generation``, yet ``is_delegation`` is read by the validator."""
        self.responses = 0
        self._denial_signers: dict[bytes, set[dns.name.Name]] = {}
        self._changed_now: set[dns.name.Name] = set()
        self._changes: deque[tuple[int, frozenset[dns.name.Name]]] = deque(maxlen=_CHANGE_LOG)

    # --- building ----------------------------------------------------------------------------

    def observe(self, evidence: ResponseEvidence) -> bool:
        """Take every DNSKEY/DS/NSEC/NSEC3 RRset and every signed RRset of one response;
        return True if chain material changed."""
        self.responses += 1
        changed = False
        ts_ns = evidence.ts_ns
        asked_dnssec = bool(evidence.query_do if evidence.query_do is not None
                            else evidence.do)
        for item in evidence.rrsets:
            changed |= self._observe_rrset(item, ts_ns, asked_dnssec)
        changed |= self._observe_dnskey_nodata(evidence)
        if changed:
            self._next_generation()
        return changed

    def _next_generation(self) -> None:
        self.generation += 1
        self._changes.append((self.generation, frozenset(self._changed_now)))
        self._changed_now.clear()

    def changed_zones_since(self, generation: int) -> frozenset[dns.name.Name] | None:
        """The zones whose chain material (DNSKEY or DS owner, denial signer, DNSKEY NODATA)
        changed after ``generation``; None when the bounded change log no longer reaches back
        that far (then anything may have changed)."""
        if generation >= self.generation:
            return frozenset()
        if not self._changes or self._changes[0][0] > generation + 1:
            return None
        found: set[dns.name.Name] = set()
        for number, zones in reversed(self._changes):
            if number <= generation:
                break
            found.update(zones)
        return frozenset(found)

    def _observe_dnskey_nodata(self, evidence: ResponseEvidence) -> bool:
        """Remember authoritative answers saying a zone has no DNSKEY RRset at all (NOERROR,
        AA, no DNSKEY in the answer): with a validated DS that makes the zone bogus."""
        if (
            evidence.qtype != dns.rdatatype.DNSKEY
            or evidence.qname is None
            or evidence.rcode != dns.rcode.NOERROR
            or not evidence.flags & dns.flags.AA
            or evidence.flags & dns.flags.TC
            or any(item.rrset.rdtype == dns.rdatatype.DNSKEY
                   for item in evidence.section(Section.ANSWER))
        ):
            return False
        zone = evidence.qname
        if zone in self._dnskey_nodata:
            return False
        self._dnskey_nodata[zone] = evidence.ts_ns
        if len(self._dnskey_nodata) > self._max_denial:
            self._dnskey_nodata.popitem(last=False)
            self.evicted["dnskey_nodata"] += 1
        self.key_generation += 1
        self._changed_now.add(zone)
        return True

    def sizes(self) -> dict[str, int]:
        """Entries in each capped table now (JSON-ready), to watch against the caps."""
        return {"chain_rrsets": len(self._chain), "denial_records": len(self._denial),
                "signed_copies": len(self._copies), "signed_copy_bytes": self._copy_total,
                "delegations": len(self._delegations),
                "dnskey_nodata": len(self._dnskey_nodata)}

    def dnskey_nodata_seen(self, zone: dns.name.Name) -> int | None:
        """Capture time of the first authoritative answer showing ``zone`` without DNSKEY."""
        return self._dnskey_nodata.get(zone)

    def add_rrset(
        self, rrset: dns.rrset.RRset, rrsigs: dns.rrset.RRset | None, ts_ns: int
    ) -> bool:
        """Add one RRset (e.g. from a zone file or a test) as if observed in an answer."""
        changed = self._observe_rrset(RRsetEvidence(Section.ANSWER, rrset, rrsigs), ts_ns)
        if changed:
            self._next_generation()
        return changed

    def _observe_rrset(self, item: RRsetEvidence, ts_ns: int, asked_dnssec: bool = True) -> bool:
        rdtype = item.rrset.rdtype
        if rdtype in _CHAIN_TYPES:
            return self._remember_chain(item, ts_ns, asked_dnssec)
        if rdtype in _DENIAL_TYPES and item.rrsigs is not None:
            return self._remember_denial(item, ts_ns)
        if item.rrsigs is not None:
            self._remember_copy(item, ts_ns)
        elif rdtype == dns.rdatatype.NS and item.section is Section.AUTHORITY:
            self._remember_delegation(item.rrset.name, ts_ns)
        return False

    def _remember_delegation(self, name: dns.name.Name, ts_ns: int) -> None:
        """Unsigned authority NS: a delegation point (RFC 4035 2.2), maybe an unsigned child."""
        if name in self._delegations:
            self._delegations.move_to_end(name)
            self._delegations[name] = max(ts_ns, self._delegations[name])
            return
        self._delegations[name] = ts_ns
        self.delegation_generation += 1
        if len(self._delegations) > self._max_denial:
            self._delegations.popitem(last=False)

    def _remember_chain(self, item: RRsetEvidence, ts_ns: int, asked_dnssec: bool) -> bool:
        key = (item.rrset.name, int(item.rrset.rdtype), int(item.rrset.rdclass))
        copies = self._chain.get(key)
        if copies is None:
            copies = self._chain[key] = {}
            if len(self._chain) > self._max_chain:
                self._chain.popitem(last=False)
                self.evicted["chain_rrsets"] += 1
        else:
            self._chain.move_to_end(key)
        digest = self.digests.digest(item.rrset)
        entry = copies.get(digest)
        if entry is None:
            entry = SignedRRset(item.rrset, digest, ts_ns, ts_ns)
            copies[digest] = entry
            if len(copies) > self._max_versions:
                # Many different versions of one DNSKEY/DS RRset: forged copies or a very long
                # rollover; keep the most recent ones (dicts keep insertion order).
                del copies[next(iter(copies))]
                self.evicted["chain_versions"] += 1
            entry.add_signatures(item.rrsigs, ts_ns, self.digests.wire)
            entry.stripped_with_do = item.rrsigs is None and asked_dnssec
            self.key_generation += 1
            self._changed_now.add(item.rrset.name)
            return True
        if item.rrsigs is None and asked_dnssec and not entry.stripped_with_do:
            entry.stripped_with_do = True
            self.key_generation += 1
            self._changed_now.add(item.rrset.name)
            return True
        if entry.add_signatures(item.rrsigs, ts_ns, self.digests.wire):
            self.key_generation += 1
            self._changed_now.add(item.rrset.name)
            return True
        return False

    def _remember_denial(self, item: RRsetEvidence, ts_ns: int) -> bool:
        digest = self.digests.digest(item.rrset)
        entry = self._denial.get(digest)
        new = entry is None
        if entry is None:
            entry = SignedRRset(item.rrset, digest, ts_ns, ts_ns)
            self._denial[digest] = entry
            if len(self._denial) > self._max_denial:
                self._forget_denial(self._denial.popitem(last=False)[1])
                self.evicted["denial_records"] += 1
        else:
            self._denial.move_to_end(digest)
        new_signature = entry.add_signatures(item.rrsigs, ts_ns, self.digests.wire)
        signers = self._denial_signers.setdefault(digest, set())
        for rrsig in item.rrsigs or ():
            if rrsig.signer not in signers and len(signers) >= _MAX_SIGNATURES_PER_RRSET:
                continue  # forged copies naming ever-new signers: the index stays bounded
            self._denial_by_zone.setdefault(rrsig.signer, {})[digest] = entry
            signers.add(rrsig.signer)
        if new or new_signature:
            self._changed_now.update(signers)
        return new or new_signature

    def _forget_denial(self, entry: SignedRRset) -> None:
        for zone in self._denial_signers.pop(entry.digest, ()):
            by_digest = self._denial_by_zone.get(zone)
            if by_digest is None:
                continue
            by_digest.pop(entry.digest, None)
            if not by_digest:  # a zone left without denial records goes too (ever-new zones)
                del self._denial_by_zone[zone]
            self.evicted["denial_zones"] += 1

    def _remember_copy(self, item: RRsetEvidence, ts_ns: int) -> None:
        key = (item.rrset.name, int(item.rrset.rdtype), int(item.rrset.rdclass))
        copies = self._copies.get(key)
        if copies is None:
            copies = {}
            self._copies[key] = copies
        else:
            self._copies.move_to_end(key)
        digest = self.digests.digest(item.rrset)
        entry = copies.get(digest)
        if entry is None:
            entry = SignedRRset(item.rrset, digest, ts_ns, ts_ns)
            copies[digest] = entry
            cost = copy_cost(item.rrset, self.digests.wire)
            self._copy_bytes[key] = self._copy_bytes.get(key, 0) + cost
            self._copy_total += cost
        entry.add_signatures(item.rrsigs, ts_ns, self.digests.wire)
        while len(self._copies) > 1 and (len(self._copies) > self._max_copies
                                         or self._copy_total > self._max_copy_bytes):
            oldest, _ = self._copies.popitem(last=False)
            self._copy_total -= self._copy_bytes.pop(oldest, 0)
            self.evicted["signed_copies"] += 1

    def release_copies(self) -> None:
        """Forget every signed copy (kept for cross-checks while judging; not needed once
        every response is judged)."""
        self._copies.clear()
        self._copy_bytes.clear()
        self._copy_total = 0

    @property
    def signed_copy_bytes(self) -> int:
        """Accounted bytes of the signed copies kept now."""
        return self._copy_total

    # --- reading -----------------------------------------------------------------------------

    def dnskey_rrsets(self, zone: dns.name.Name) -> tuple[SignedRRset, ...]:
        """Every distinct DNSKEY RRset seen for ``zone`` (class IN)."""
        return tuple(self._chain.get((zone, dns.rdatatype.DNSKEY, 1), {}).values())

    def ds_rrsets(self, zone: dns.name.Name) -> tuple[SignedRRset, ...]:
        """Every distinct DS RRset seen at ``zone`` (owned by the child, signed by the parent)."""
        return tuple(self._chain.get((zone, dns.rdatatype.DS, 1), {}).values())

    def denial_rrsets(self, signer: dns.name.Name) -> tuple[SignedRRset, ...]:
        """Every signed NSEC/NSEC3 RRset whose RRSIG names ``signer``."""
        return tuple(self._denial_by_zone.get(signer, {}).values())

    def denial_signers(self) -> frozenset[dns.name.Name]:
        """Every zone that signed NSEC/NSEC3 records seen."""
        return frozenset(zone for zone, entries in self._denial_by_zone.items() if entries)

    def signed_denial(self, zone: dns.name.Name) -> bool:
        """Whether ``zone`` signed NSEC/NSEC3 records seen (``zone in denial_signers()``
        without building the set: asked for every label of every judged name)."""
        return bool(self._denial_by_zone.get(zone))

    def signed_copies(self, key: RRsetKey) -> tuple[SignedRRset, ...]:
        """Every distinct signed copy of the RRset (owner, type, class) seen."""
        if key[1] in _CHAIN_TYPES:
            return tuple(self._chain.get(key, {}).values())
        return tuple(self._copies.get(key, {}).values())

    def known_zone_names(self) -> frozenset[dns.name.Name]:
        """Names seen owning DNSKEY or DS RRsets (zone apexes and delegation points)."""
        return frozenset(name for name, _, _ in self._chain)

    def is_delegation(self, name: dns.name.Name) -> bool:
        """Whether an unsigned NS RRset for ``name`` was seen in an authority section."""
        return name in self._delegations

    def all_dnskey_rrsets(self) -> Iterable[SignedRRset]:
        """Every DNSKEY RRset seen, all zones."""
        for (_, rdtype, _), copies in self._chain.items():
            if rdtype == dns.rdatatype.DNSKEY:
                yield from copies.values()

    # --- snapshot and merge (audit --jobs, Dask) ----------------------------------------------

    def snapshot(self) -> MaterialSnapshot:
        """Everything gathered, as a picklable value another process can ``merge``."""
        return MaterialSnapshot(
            chain={key: tuple(copies.values()) for key, copies in self._chain.items()},
            denial=tuple((entry, frozenset(self._denial_signers.get(digest, ())))
                         for digest, entry in self._denial.items()),
            denial_by_zone={zone: tuple(entries) for zone, entries
                            in self._denial_by_zone.items()},
            copies={key: tuple(copies.values()) for key, copies in self._copies.items()},
            delegations=dict(self._delegations),
            dnskey_nodata=dict(self._dnskey_nodata),
            generation=self.generation,
            key_generation=self.key_generation,
            responses=self.responses,
            evicted=dict(self.evicted),
        )

    def merge(self, *others: MaterialSnapshot) -> None:
        """Add what other collectors gathered (over other flows of the same captures).

        Every table ends as if one collector had observed all inputs in capture order: an
        entry's times are the earliest and latest of all and its kept RRset the first
        received; least-recently-seen orders (which decide evictions) follow the latest
        capture times, insertion orders (versions, signatures, a zone's denial records) the
        first ones; entries seen at the same capture time keep the order of the collector
        that saw them (one response's records). Only entries two collectors saw at the same
        nanosecond may come out in another order. The caps are enforced once every snapshot
        is in: the least recently seen entries go, each counted once in ``evicted`` however
        many snapshots held it (on top of the evictions the snapshots counted themselves).
        The change log restarts (``changed_zones_since`` answers None: anything may have
        changed)."""
        for other in others:
            self._merge_one(other)
        self._enforce_caps()

    def _merge_one(self, other: MaterialSnapshot) -> None:
        """``merge`` of one snapshot, leaving the caps to the caller."""
        chain_rank = _ranks(((k, tuple(v.values())) for k, v in self._chain.items()),
                            other.chain.items(), _last_of)
        for key, entries in other.chain.items():
            copies = self._chain.setdefault(key, {})
            _merge_versions(copies, entries, self._max_versions, self.evicted, "chain_versions")
        denial_rank = _ranks(self._denial.items(),
                             ((entry.digest, entry) for entry, _ in other.denial),
                             lambda entry: entry.last_seen_ns)
        for entry, signers in other.denial:
            mine = self._denial.get(entry.digest)
            held = {} if mine is None else {entry.digest: mine}
            _merge_entry(held, entry)
            self._denial[entry.digest] = held[entry.digest]
            known = self._denial_signers.setdefault(entry.digest, set())
            for signer in signers:
                if signer in known or len(known) < _MAX_SIGNATURES_PER_RRSET:
                    known.add(signer)
        by_zone = {zone: tuple(entries) for zone, entries in self._denial_by_zone.items()}
        for zone, digests in other.denial_by_zone.items():
            by_zone[zone] = self._zone_order(zone, by_zone.get(zone, ()), digests)
        copy_rank = _ranks(((k, tuple(v.values())) for k, v in self._copies.items()),
                           other.copies.items(), _last_of)
        for key, entries in other.copies.items():
            copies = self._copies.setdefault(key, {})
            _merge_versions(copies, entries, None, self.evicted, "")
        delegation_rank = _ranks(self._delegations.items(), other.delegations.items(),
                                 lambda ts_ns: ts_ns)
        for name, ts_ns in other.delegations.items():
            self._delegations[name] = max(ts_ns, self._delegations.get(name, ts_ns))
        for zone, ts_ns in other.dnskey_nodata.items():
            self._dnskey_nodata[zone] = min(ts_ns, self._dnskey_nodata.get(zone, ts_ns))
        self.evicted.update(other.evicted)
        self.responses += other.responses
        self.generation += other.generation + 1
        self.key_generation += other.key_generation + 1
        self.delegation_generation += 1
        self._changes.clear()
        self._changed_now.clear()
        self._chain = OrderedDict(sorted(self._chain.items(),
                                         key=lambda kv: chain_rank[kv[0]]))
        self._denial = OrderedDict(sorted(self._denial.items(),
                                          key=lambda kv: denial_rank[kv[0]]))
        self._denial_by_zone = {
            zone: {digest: self._denial[digest] for digest in digests}
            for zone, digests in sorted(by_zone.items(), key=lambda kv: min(
                (_signed_first(self._denial[d], kv[0]) for d in kv[1]), default=0))}
        self._copies = OrderedDict(sorted(self._copies.items(),
                                          key=lambda kv: copy_rank[kv[0]]))
        wire = self.digests.wire
        self._copy_bytes = {key: sum(copy_cost(e.rrset, wire) for e in copies.values())
                            for key, copies in self._copies.items()}
        self._copy_total = sum(self._copy_bytes.values())
        self._dnskey_nodata = OrderedDict(sorted(self._dnskey_nodata.items(),
                                                 key=lambda kv: kv[1]))
        self._delegations = OrderedDict(sorted(self._delegations.items(),
                                               key=lambda kv: delegation_rank[kv[0]]))

    def _zone_order(self, zone: dns.name.Name, mine: tuple[bytes, ...],
                    theirs: tuple[bytes, ...]) -> tuple[bytes, ...]:
        """A signer's denial digests in the order one collector would have met them."""
        def first(digest: bytes) -> int:
            return _signed_first(self._denial[digest], zone)

        ranks = _ranks(((d, None) for d in mine), ((d, None) for d in theirs),
                       lambda _: 0, first=first)
        return tuple(sorted(ranks, key=ranks.__getitem__))

    def _enforce_caps(self) -> None:
        """The caps hold after a merge as after an observation: the least recently seen go."""
        while len(self._chain) > self._max_chain:
            self._chain.popitem(last=False)
            self.evicted["chain_rrsets"] += 1
        while len(self._denial) > self._max_denial:
            self._forget_denial(self._denial.popitem(last=False)[1])
            self.evicted["denial_records"] += 1
        while len(self._copies) > 1 and (len(self._copies) > self._max_copies
                                         or self._copy_total > self._max_copy_bytes):
            oldest, _ = self._copies.popitem(last=False)
            self._copy_total -= self._copy_bytes.pop(oldest, 0)
            self.evicted["signed_copies"] += 1
        while len(self._delegations) > self._max_denial:
            self._delegations.popitem(last=False)
        while len(self._dnskey_nodata) > self._max_denial:
            self._dnskey_nodata.popitem(last=False)
            self.evicted["dnskey_nodata"] += 1


@dataclass(frozen=True, slots=True)
class MaterialSnapshot:
    """A picklable copy of a ``KeyMaterial``'s tables (``KeyMaterial.snapshot``), for a worker
    to hand its harvest to the process that merges them."""

    chain: dict[RRsetKey, tuple[SignedRRset, ...]]
    """DNSKEY/DS RRsets: every distinct version per (owner, type, class)."""
    denial: tuple[tuple[SignedRRset, frozenset[dns.name.Name]], ...]
    """Signed NSEC/NSEC3 RRsets with the signers their RRSIGs name."""
    denial_by_zone: dict[dns.name.Name, tuple[bytes, ...]]
    """Per signer, the digests of its denial RRsets in the order they were first seen."""
    copies: dict[RRsetKey, tuple[SignedRRset, ...]]
    """Signed copies of every other RRset, for the unsigned cross-check."""
    delegations: dict[dns.name.Name, int]
    """Owners of unsigned authority NS RRsets, least recently seen first, with the capture time
    each was last seen."""
    dnskey_nodata: dict[dns.name.Name, int]
    """Zones shown without DNSKEY by an authoritative answer, with the first capture time."""
    generation: int
    """The collector's ``generation``."""
    key_generation: int
    """The collector's ``key_generation``."""
    responses: int
    """Responses observed."""
    evicted: dict[str, int]
    """Evictions per table."""


Rank = tuple[int, int, int]
"""(capture time, 0 for this collector / 1 for the merged one, position in its table)."""


def _ranks(mine: Iterable[tuple[Any, Any]], theirs: Iterable[tuple[Any, Any]],
           last: Callable[[Any], int], first: Callable[[Any], int] | None = None
           ) -> dict[Any, Rank]:
    """Where each key of two ordered tables goes in the merged one: by its latest capture time
    (``last`` of its value), or its earliest (``first`` of the key), ties in table order."""
    ranks: dict[Any, Rank] = {}
    for source, table in enumerate((mine, theirs)):
        for position, (key, value) in enumerate(table):
            if first is not None:
                rank = (first(key), source, position)
                ranks[key] = min(rank, ranks.get(key, rank))
            else:
                rank = (last(value), source, position)
                ranks[key] = max(rank, ranks.get(key, rank))
    return ranks


def _last_of(entries: Iterable[SignedRRset]) -> int:
    """The latest capture time of any version."""
    return max((entry.last_seen_ns for entry in entries), default=0)


def _merge_versions(copies: dict[bytes, SignedRRset], entries: Iterable[SignedRRset],
                    cap: int | None, evicted: Counter[str], table: str) -> None:
    """Fold another collector's versions of one RRset into ``copies``: in order of first
    capture time (ties: ours first); over ``cap`` the earliest go."""
    ranks = _ranks(((d, e) for d, e in copies.items()),
                   ((e.digest, e) for e in entries), lambda _: 0,
                   first=lambda digest: 0)
    for entry in entries:
        _merge_entry(copies, entry)
    ordered = sorted(copies.items(),
                     key=lambda kv: (kv[1].first_seen_ns, ranks[kv[0]]))
    if cap is not None and len(ordered) > cap:
        evicted[table] += len(ordered) - cap
        ordered = ordered[len(ordered) - cap:]
    copies.clear()
    copies.update(ordered)


def _merge_entry(copies: dict[bytes, SignedRRset], entry: SignedRRset) -> None:
    """Fold one distinct RRset content into ``copies`` (its versions keyed by digest)."""
    mine = copies.get(entry.digest)
    if mine is None:
        signatures = {wire: SeenSignature(seen.rrsig, seen.first_seen_ns, seen.last_seen_ns)
                      for wire, seen in entry.signatures.items()}
        copies[entry.digest] = SignedRRset(entry.rrset, entry.digest, entry.first_seen_ns,
                                           entry.last_seen_ns, signatures,
                                           entry.stripped_with_do)
        return
    if entry.first_seen_ns < mine.first_seen_ns:
        mine.rrset = entry.rrset  # the first copy received keeps its TTL
    mine.first_seen_ns = min(mine.first_seen_ns, entry.first_seen_ns)
    mine.last_seen_ns = max(mine.last_seen_ns, entry.last_seen_ns)
    mine.stripped_with_do |= entry.stripped_with_do
    for wire, seen in entry.signatures.items():
        have = mine.signatures.get(wire)
        if have is not None:
            have.first_seen_ns = min(have.first_seen_ns, seen.first_seen_ns)
            have.last_seen_ns = max(have.last_seen_ns, seen.last_seen_ns)
        else:
            mine.signatures[wire] = SeenSignature(seen.rrsig, seen.first_seen_ns,
                                                  seen.last_seen_ns)
    ordered = sorted(mine.signatures.items(), key=lambda kv: kv[1].first_seen_ns)
    mine.signatures = dict(ordered[:_MAX_SIGNATURES_PER_RRSET])


def _signed_first(entry: SignedRRset, signer: dns.name.Name) -> int:
    """When ``entry`` was first seen signed by ``signer``."""
    return min((seen.first_seen_ns for seen in entry.signatures.values()
                if seen.rrsig.signer == signer), default=entry.first_seen_ns)
