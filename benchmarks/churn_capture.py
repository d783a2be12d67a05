"""Writes the benchmark capture with churn: traffic that keeps bringing new names, zones,
clients and servers, as a tap on a real network sees it (for memory soaks).

On top of ``make_capture``'s resolver traffic (unchanged, but for the share of sessions given to
churn), ``ChurnGenerator`` adds:

- random-subdomain ("water torture") queries under every zone: NXDOMAIN with NSEC or NSEC3
  proofs, a never-seen name each time;
- CDN-style hashed names under a wildcard (``<hash>.cdn.<zone>``): wildcard answers with the
  proof that the name itself does not exist, and wildcard NODATA for AAAA;
- a brand-new signed zone every ``new_zone_every_s`` seconds of capture time (half of them with
  NSEC3), with its own two authoritative servers (new IPv4 and IPv6 addresses);
- a signed parent ``example.`` holding a DS for every zone: the resolver fetches the parent's
  DNSKEY and the zone's DS along with the zone's DNSKEY, so anchoring ``example.`` alone
  (``anchor_text()``) validates every zone, however late it appears;
- clients never seen before (new IPv4 and IPv6 addresses, random ports).

Signing stays cheap: every zone shares the generator's two keys, each RRset is signed once,
wildcard signatures are reused for every expanded name. Only the messages about fresh names are
rendered per query (and forgotten at once). The same seed, packet count and churn options give
the same file, byte for byte.
"""

from __future__ import annotations

import bisect
import random
import sys
from dataclasses import dataclass
from pathlib import Path

import dns.dnssec
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_capture import (  # noqa: E402
    _ZONE_WORDS,
    DATA_TTL,
    DNSKEY_TTL,
    NEGATIVE_TTL,
    UPSTREAM_LOSS,
    CaptureSummary,
    Catalog,
    Endpoint,
    Question,
    SigningKeys,
    TrafficGenerator,
    Zone,
    _host_label,
    _ipv6,
)

PARENT = dns.name.from_text("example.")
"""The parent of every benchmark zone; anchoring it validates them all through their DS."""
_DS = dns.rdatatype.RdataType.DS
_DNSKEY = dns.rdatatype.RdataType.DNSKEY
_NSEC3 = dns.rdatatype.RdataType.NSEC3
_FRESH_KINDS = frozenset({"random_nxdomain", "wildcard", "wildcard_nodata"})
"""Question kinds whose name is new every time (never cached, rendered per query)."""
_HEX = "0123456789abcdef"
_Key = tuple[dns.name.Name, dns.rdatatype.RdataType]


@dataclass(frozen=True, slots=True)
class ChurnOptions:
    """How much new material the traffic brings (shares are of client sessions)."""

    share: float = 0.35
    """Share of client sessions given to churn traffic (the rest is ``make_capture``'s)."""
    new_zone_every_s: float = 10.0
    """Capture seconds between two new zones."""
    recent_zones: int = 8
    """Churn questions go to one of the newest zones this many (the rest to the old ones)."""
    new_zone_share: float = 0.7
    """Share of churn questions about one of the newest zones."""
    new_client_share: float = 0.5
    """Share of churn sessions from a client address never seen before."""
    nsec3_share: float = 0.5
    """Share of new zones denying with NSEC3 (RFC 5155) instead of NSEC."""
    hosts_per_zone: int = 12
    """Host names (A and AAAA) of a new zone."""


class ParentZone(Zone):
    """``example.``: apex records and a DS RRset per child zone, added as zones appear. It is
    only ever asked for its DNSKEY and for DS RRsets that exist, so it needs no NSEC chain."""

    def __init__(self, index: int, keys: SigningKeys) -> None:  # noqa: D107 - no Zone.__init__
        self.index = index
        self.origin = PARENT
        self.keys = keys
        self.hosts: list[dns.name.Name] = []
        self.big: list[dns.name.Name] = []
        self.missing: list[dns.name.Name] = []
        self.rrsets: dict[_Key, dns.rrset.RRset] = {}
        self._signed: dict[_Key, list[dns.rrset.RRset]] = {}
        origin = PARENT.to_text()
        self._add(PARENT, dns.rdatatype.SOA, DATA_TTL,
                  [f"ns1.{origin} hostmaster.{origin} 2025060101 7200 3600 1209600 "
                   f"{NEGATIVE_TTL}"])
        self._add(PARENT, dns.rdatatype.NS, DATA_TTL, [f"ns1.{origin}", f"ns2.{origin}"])
        self._add(PARENT, _DNSKEY, DNSKEY_TTL, keys.dnskey_texts)
        self.names = [PARENT]
        self._ksk = next(key for key in self.rrsets[(PARENT, _DNSKEY)] if key.flags & 1)

    def delegate(self, child: dns.name.Name) -> None:
        """Add the DS of a child zone, which uses the same keys (RFC 4034 5.1)."""
        ds = dns.dnssec.make_ds(child, self._ksk, "SHA256")
        self.rrsets[(child, _DS)] = dns.rrset.from_rdata(child, DNSKEY_TTL, ds)

    def anchor_text(self) -> str:
        """The parent's KSK as a trust-anchor line (``name TTL IN DNSKEY ...``)."""
        return f"{PARENT.to_text()} {DNSKEY_TTL} IN DNSKEY {self._ksk.to_text()}"


class ChurnZone(Zone):
    """A zone that appears during the capture: a few hosts, a wildcard ``*.cdn`` A record for
    hashed CDN names, and an NSEC or NSEC3 (no salt, no extra iterations, RFC 9276) chain."""

    def __init__(self, index: int, keys: SigningKeys, *, nsec3: bool, hosts: int) -> None:
        self.index = index
        self.origin = dns.name.from_text(f"{_ZONE_WORDS[index % len(_ZONE_WORDS)]}{index}.example")
        self.keys = keys
        self.nsec3 = nsec3
        self.hosts = [self._child(_host_label(j)) for j in range(hosts)]
        self.big: list[dns.name.Name] = []
        self.missing: list[dns.name.Name] = []
        self.cdn = self._child("cdn")
        self.wildcard = dns.name.Name((b"*", *self.cdn.labels))
        self.rrsets: dict[_Key, dns.rrset.RRset] = {}
        self._signed: dict[_Key, list[dns.rrset.RRset]] = {}
        self._fill_new(index)
        self._add(self.wildcard, dns.rdatatype.A, DATA_TTL, [f"192.0.2.{index % 250 + 1}"])
        if nsec3:
            self._add(self.origin, dns.rdatatype.NSEC3PARAM, 0, ["1 0 0 -"])
        self.names = sorted({name for name, _ in self.rrsets})
        self._existing = {*self.names, self.cdn}  # cdn is an empty non-terminal
        self._hashes: list[str] = []
        self._hashed: dict[str, dns.name.Name] = {}
        if nsec3:
            self._add_nsec3_chain()
        else:
            self._add_nsec_chain()

    def _fill_new(self, index: int) -> None:
        apex, origin = self.origin, self.origin.to_text()
        self._add(apex, dns.rdatatype.SOA, DATA_TTL,
                  [f"ns1.{origin} hostmaster.{origin} 2025060101 7200 3600 1209600 "
                   f"{NEGATIVE_TTL}"])
        self._add(apex, dns.rdatatype.NS, DATA_TTL, [f"ns1.{origin}", f"ns2.{origin}"])
        self._add(apex, _DNSKEY, DNSKEY_TTL, self.keys.dnskey_texts)
        for server in (1, 2):
            address = ".".join(str(octet) for octet in server_v4(index, server))
            self._add(self._child(f"ns{server}"), dns.rdatatype.A, DATA_TTL, [address])
        for j, host in enumerate(self.hosts):
            self._add(host, dns.rdatatype.A, DATA_TTL, [f"198.51.100.{(index + j) % 254 + 1}"])
            self._add(host, dns.rdatatype.AAAA, DATA_TTL, [f"2001:db8:{index:x}:{j:x}::1"])

    # -- NSEC3 ---------------------------------------------------------------------------

    def _hash(self, name: dns.name.Name) -> str:
        return str(dns.dnssec.nsec3_hash(name, None, 0, 1))  # RFC 5155 5: SHA-1, no salt

    def _add_nsec3_chain(self) -> None:
        """RFC 5155 7.1: one NSEC3 per existing name (empty non-terminals too), in hash order."""
        types: dict[dns.name.Name, set[str]] = {name: set() for name in self._existing}
        for name, rdtype in self.rrsets:
            types[name].update({"RRSIG", dns.rdatatype.to_text(rdtype)})
        hashed = sorted((self._hash(name), name) for name in self._existing)
        self._hashes = [digest for digest, _ in hashed]
        for position, (digest, name) in enumerate(hashed):
            following = hashed[(position + 1) % len(hashed)][0]
            bitmap = " ".join(sorted(types[name], key=dns.rdatatype.from_text))
            owner = self._hash_owner(digest)
            self._hashed[digest] = owner
            self._add(owner, _NSEC3, NEGATIVE_TTL, [f"1 0 0 - {following} {bitmap}".strip()])

    def _hash_owner(self, digest: str) -> dns.name.Name:
        return dns.name.Name((digest.lower().encode(), *self.origin.labels))

    def _nsec3_matching(self, name: dns.name.Name) -> list[dns.rrset.RRset]:
        return self.signed(self._hashed[self._hash(name)], _NSEC3)

    def _nsec3_covering(self, name: dns.name.Name) -> list[dns.rrset.RRset]:
        position = bisect.bisect_left(self._hashes, self._hash(name)) - 1  # -1 wraps to the last
        return self.signed(self._hashed[self._hashes[position]], _NSEC3)

    # -- answers -------------------------------------------------------------------------

    def records(
        self, qname: dns.name.Name, qtype: dns.rdatatype.RdataType
    ) -> tuple[dns.rcode.Rcode, list[dns.rrset.RRset], list[dns.rrset.RRset]]:
        """(rcode, answer, authority), wildcard answers and NSEC3 proofs included."""
        if (qname, qtype) in self.rrsets:
            return dns.rcode.NOERROR, self.signed(qname, qtype), []
        soa = self.signed(self.origin, dns.rdatatype.SOA)
        if qname in self._existing:
            proof = (self._nsec3_matching(qname) if self.nsec3  # RFC 5155 7.2.3
                     else self.signed(qname, dns.rdatatype.NSEC))  # RFC 4035 3.1.3.1
            return dns.rcode.NOERROR, [], soa + proof
        if qname.parent() == self.cdn:
            return self._wildcard(qname, qtype, soa)
        if not self.nsec3:
            return super().records(qname, qtype)
        # RFC 5155 7.2.2: closest encloser (the apex), next closer name, wildcard at the apex.
        proof = self._nsec3_matching(self.origin) + self._nsec3_covering(qname)
        wildcard = self._nsec3_covering(dns.name.Name((b"*", *self.origin.labels)))
        return dns.rcode.NXDOMAIN, [], soa + _unique(proof + wildcard)

    def _wildcard(
        self, qname: dns.name.Name, qtype: dns.rdatatype.RdataType, soa: list[dns.rrset.RRset]
    ) -> tuple[dns.rcode.Rcode, list[dns.rrset.RRset], list[dns.rrset.RRset]]:
        if qtype == dns.rdatatype.A:
            rrset, rrsig = self.signed(self.wildcard, dns.rdatatype.A)
            answer = [dns.rrset.from_rdata_list(qname, rrset.ttl, list(rrset)),
                      dns.rrset.from_rdata_list(qname, rrsig.ttl, list(rrsig))]
            # RFC 4035 3.1.3.3 / RFC 5155 7.2.6: the name itself must be shown not to exist.
            proof = (self._nsec3_covering(qname) if self.nsec3
                     else self.signed(self.covering_nsec(qname), dns.rdatatype.NSEC))
            return dns.rcode.NOERROR, answer, proof
        if self.nsec3:  # RFC 5155 7.2.5: closest encloser, next closer, matching wildcard
            proof = (self._nsec3_matching(self.cdn) + self._nsec3_covering(qname)
                     + self._nsec3_matching(self.wildcard))
        else:  # RFC 4035 3.1.3.4: name covered, the wildcard's NSEC lacks the type
            proof = (self.signed(self.covering_nsec(qname), dns.rdatatype.NSEC)
                     + self.signed(self.wildcard, dns.rdatatype.NSEC))
        return dns.rcode.NOERROR, [], soa + _unique(proof)


def server_v4(index: int, server: int) -> bytes:
    """IPv4 address of a new zone's server 1 or 2, in 100.64.0.0/10 (RFC 6598)."""
    pair = index % 126 * 2 + server
    return bytes([100, 64 + index // (126 * 256) % 64, index // 126 % 256, pair])


def _unique(rrsets: list[dns.rrset.RRset]) -> list[dns.rrset.RRset]:
    """Drop repeated RRsets (one NSEC3 can serve two parts of a proof), keeping the order."""
    return list({id(rrset): rrset for rrset in rrsets}.values())


class ChurnCatalog(Catalog):
    """The static catalogue plus the parent zone, the zones added over time and their
    questions; wires of fresh questions are dropped once used."""

    def __init__(self, seed: int, options: ChurnOptions) -> None:
        super().__init__(seed)
        self.options = options
        self.keys = self.zones[0].keys
        self.parent = ParentZone(len(self.zones), self.keys)
        self.zones.append(self.parent)
        self.dnskey.append(Question(self.parent, PARENT, _DNSKEY, "dnskey"))
        self.missing.append([])
        self.big.append([])
        self.ds: dict[int, Question] = {}
        """DS question (asked of the parent) per zone index."""
        self.hosts: dict[int, list[Question]] = {}
        """A, AAAA and HTTPS questions per new zone."""
        for zone in self.zones[: self.parent.index]:
            self._delegate(zone)

    def add_zone(self, nsec3: bool) -> ChurnZone:
        """Create the next zone, delegate it and register its fixed questions."""
        zone = ChurnZone(len(self.zones), self.keys, nsec3=nsec3,
                         hosts=self.options.hosts_per_zone)
        self.zones.append(zone)
        self.dnskey.append(Question(zone, zone.origin, _DNSKEY, "dnskey"))
        self.missing.append([])
        self.big.append([])
        self.hosts[zone.index] = [
            Question(zone, host, rdtype, kind)
            for host in zone.hosts
            for rdtype, kind in ((dns.rdatatype.A, "data"), (dns.rdatatype.AAAA, "data"),
                                 (dns.rdatatype.HTTPS, "nodata"))
        ]
        self._delegate(zone)
        return zone

    def _delegate(self, zone: Zone) -> None:
        self.parent.delegate(zone.origin)
        self.ds[zone.index] = Question(self.parent, zone.origin, _DS, "ds")

    def forget(self, question: Question) -> None:
        """Drop every wire rendered for a fresh question (it is never asked again)."""
        for role in ("client", "upstream", "truncated"):
            self._wires.pop((question, role), None)
            self._responses.pop((question, role), None)


class ChurnGenerator(TrafficGenerator):
    """``TrafficGenerator`` whose traffic keeps introducing new names, zones, clients and
    upstream servers (see the module docstring)."""

    def __init__(self, seed: int, packets: int, options: ChurnOptions | None = None) -> None:
        super().__init__(seed, packets)
        self.options = options or ChurnOptions()
        self.catalog: ChurnCatalog = ChurnCatalog(seed, self.options)
        self.churn_rng = random.Random(f"churn/{seed}")
        self._new_zones: list[ChurnZone] = []
        self._next_zone_ns = self.clock_ns
        self._new_clients = 0
        self.zones_added = 0
        """Zones created during the capture."""
        self.fresh_names = 0
        """Questions about a name never asked before."""
        self.new_clients = 0
        """Sessions from a client address never seen before."""
        for zone in (self.catalog.parent,):
            self._add_servers(zone)

    def anchor_text(self) -> str:
        """The trust anchor that validates every zone of the capture (the parent's KSK)."""
        return self.catalog.parent.anchor_text() + "\n"

    # -- zones and endpoints -----------------------------------------------------------------

    def _add_servers(self, zone: Zone) -> None:
        """Two new authoritative servers per zone (100.64.0.0/10 and 2001:db8:54::/48)."""
        n = zone.index
        self.net.servers_v4.append(
            [self.net._remote(server_v4(n, s), 50 + n % 9) for s in (1, 2)])
        self.net.servers_v6.append(
            [self.net._remote(_ipv6(f"2001:db8:54:{n:x}::{s}"), 52 + n % 5) for s in (1, 2)])

    def _grow(self, t: int) -> None:
        while t >= self._next_zone_ns:
            self._next_zone_ns += int(self.options.new_zone_every_s * 1e9)
            zone = self.catalog.add_zone(self.churn_rng.random() < self.options.nsec3_share)
            self._add_servers(zone)
            self._new_zones.append(zone)
            del self._new_zones[: -self.options.recent_zones]
            self.zones_added += 1

    def _fresh_client(self) -> Endpoint:
        self._new_clients += 1
        n = self._new_clients
        mac = bytes([2, 1, n >> 24 & 0xFF, n >> 16 & 0xFF, n >> 8 & 0xFF, n & 0xFF])
        if self.churn_rng.random() < 0.2:
            return Endpoint(mac, _ipv6(f"2001:db8:2::{n >> 16:x}:{n & 0xFFFF:x}"), 64)
        return Endpoint(mac, bytes([10, n >> 16 & 0xFF, n >> 8 & 0xFF, n & 0xFF]),
                        128 if n % 5 == 0 else 64)

    # -- sessions ----------------------------------------------------------------------------

    def _session(self, t: int) -> None:
        self._grow(t)
        if self.churn_rng.random() >= self.options.share:
            super()._session(t)
            return
        if self.churn_rng.random() < self.options.new_client_share:
            client = self._fresh_client()
            self.new_clients += 1
        else:
            client = self.rng.choice(self.net.clients)
        question = self._churn_question()
        self._udp_client_query(t, client, question)
        if question.kind in _FRESH_KINDS:
            self.catalog.forget(question)

    def _churn_question(self) -> Question:
        rng = self.churn_rng
        if rng.random() >= self.options.new_zone_share:
            zone = self.catalog.zones[rng.randrange(self.catalog.parent.index)]
            return self._random_subdomain(zone, rng.choice((dns.rdatatype.A,
                                                            dns.rdatatype.AAAA)))
        zone = rng.choice(self._new_zones)
        draw = rng.random()
        if draw < 0.35:
            return self._random_subdomain(zone, dns.rdatatype.A)
        if draw < 0.70:
            self.fresh_names += 1
            qtype = dns.rdatatype.A if draw < 0.60 else dns.rdatatype.AAAA
            name = dns.name.Name((self._label(rng, 16).encode(), *zone.cdn.labels))
            return Question(zone, name, qtype, "wildcard" if qtype == dns.rdatatype.A
                            else "wildcard_nodata")
        return rng.choice(self.catalog.hosts[zone.index])

    def _random_subdomain(self, zone: Zone, qtype: dns.rdatatype.RdataType) -> Question:
        self.fresh_names += 1
        name = dns.name.Name((self._label(self.churn_rng, 12).encode(), *zone.origin.labels))
        return Question(zone, name, qtype, "random_nxdomain")

    @staticmethod
    def _label(rng: random.Random, length: int) -> str:
        return "".join(rng.choices(_HEX, k=length))

    # -- the resolver's upstream work ------------------------------------------------------

    def _resolve(self, t: float, question: Question, *, big: bool = False) -> float:
        """Upstream exchange on a cache miss, then (unless cached) the parent's DNSKEY, the
        zone's DS and the zone's DNSKEY, as a validating resolver fetches them."""
        if self.cache.get(question, 0) > t:
            return t
        t = self._exchange(t, question, big=big)
        if question.kind not in _FRESH_KINDS:
            is_data = (question.qname, question.qtype) in question.zone.rrsets
            self.cache[question] = int(t + (DATA_TTL if is_data else NEGATIVE_TTL) * 1e9)
        index = question.zone.index
        for chain_question in (self.catalog.dnskey[self.catalog.parent.index],
                               self.catalog.ds.get(index), self.catalog.dnskey[index]):
            if chain_question is None or chain_question is question:
                continue
            if self.cache.get(chain_question, 0) <= t:
                t = self._exchange(t + 40_000, chain_question, big=False)
                self.cache[chain_question] = int(t + DNSKEY_TTL * 1e9)
        return t

    def _exchange(self, t: float, question: Question, *, big: bool) -> float:
        use_v6 = not big and self.rng.random() < 0.2
        servers = (self.net.servers_v6 if use_v6 else self.net.servers_v4)[question.zone.index]
        return self._upstream_exchange(t, servers, question, big=big)


assert 0 < UPSTREAM_LOSS < 1  # the retry path of _upstream_exchange is exercised here too


def write_churn_capture(path: Path, packets: int, seed: int = 1,
                        options: ChurnOptions | None = None,
                        gap_ns: float | None = None) -> tuple[CaptureSummary, ChurnGenerator]:
    """Write a churn capture of exactly ``packets`` frames (``gap_ns`` spreads them over more
    capture time); return what was written and the generator (anchor, churn counts)."""
    generator = ChurnGenerator(seed, packets, options)
    if gap_ns is not None:
        generator.gap_ns = gap_ns
    with path.open("wb") as out:
        return generator.run(out), generator
