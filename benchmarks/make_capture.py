"""Writes a large, realistic classic pcap of DNSSEC-signed resolver traffic for decode benchmarks.

The capture is taken on a recursive resolver's interface: many clients (IPv4 and some IPv6)
query it, it answers popular names from its cache, and on cache misses it asks the zones'
authoritative servers (with DNSKEY fetches). Names are drawn Zipf-like, so the same answer
bytes recur with other IDs, ports and addresses. Every RRset is signed once (ECDSAP256SHA256,
deterministic signatures, fixed keys derived from the seed, fixed inception/expiration) and
its wire form reused; packets are built with ``struct`` from the rendered DNS bytes.

Mix: UDP answers, NODATA and NXDOMAIN with NSEC proofs, DNSKEY responses, TCP sessions (with
handshake, RFC 1035 4.2.2 length framing, some messages split across segments, teardown),
large TXT responses that arrive IPv4-fragmented from upstream and go to the client as a
truncated UDP answer followed by a TCP retry, lost upstream queries with retries, and non-DNS
noise (ARP, ICMP echo, NTP, HTTPS). IPv4 header, UDP and TCP checksums are all computed.
The same seed and packet count always give the same file, byte for byte.
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import heapq
import ipaddress
import random
import struct
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path
from typing import BinaryIO

import dns.dnssec
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.DNSKEY
import dns.rrset
from cryptography.hazmat.primitives.asymmetric import ec

DEFAULT_PACKETS = 1_000_000
PACKETS_PER_SECOND = 1_667
"""Mean capture rate: one million packets span about ten minutes."""
CAPTURE_START_S = 1_748_779_200
"""2025-06-01T12:00:00Z, the first packet's time."""
SIG_INCEPTION_S = 1_746_057_600
"""2025-05-01T00:00:00Z: every RRSIG's inception."""
SIG_EXPIRATION_S = 1_754_006_400
"""2025-08-01T00:00:00Z: every RRSIG's expiration."""

ZONE_COUNT = 50
NAMES_PER_ZONE = 100
NX_NAMES_PER_ZONE = 40
BIG_NAMES_PER_ZONE = 2
ZIPF_EXPONENT = 1.0
CLIENTS_V4 = 2_000
CLIENTS_V6 = 350
CLIENT_EDNS_PAYLOAD = 1232
UPSTREAM_BIG_PAYLOAD = 4096
MTU = 1500
TCP_MSS = 1460
DATA_TTL = 300
NEGATIVE_TTL = 60
DNSKEY_TTL = 3600
UPSTREAM_LOSS = 0.01
CLIENT_TCP_SHARE = 0.03
NOISE_SESSION_SHARE = 0.025

_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_HOST_LABELS = (
    "www",
    "api",
    "mail",
    "img",
    "static",
    "login",
    "m",
    "cdn",
    "app",
    "auth",
    "shop",
    "blog",
    "news",
    "video",
    "files",
    "assets",
    "pay",
    "id",
    "push",
    "status",
)
_ZONE_WORDS = ("shop", "news", "bank", "cloud", "games", "media", "maps", "mail", "video", "tech")
_TYPO_LABELS = ("wwww", "ww", "mial", "aip", "logni", "statc", "cnd", "ap", "autth", "shpo")

PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262_144, 1)
"""Classic pcap file header: microsecond timestamps, little-endian, LINKTYPE_ETHERNET."""
_RECORD = struct.Struct("<IIII")
_ETH = struct.Struct("!6s6sH")
_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_IPV6 = struct.Struct("!IHBB16s16s")
_UDP = struct.Struct("!HHHH")
_TCP = struct.Struct("!HHIIBBHHH")
_ARP = struct.Struct("!HHBBH6s4s6s4s")
_ICMP = struct.Struct("!BBHHH")
_ETHERTYPE_IPV4 = 0x0800
_ETHERTYPE_IPV6 = 0x86DD
_ETHERTYPE_ARP = 0x0806
_PROTO_ICMP = 1
_PROTO_TCP = 6
_PROTO_UDP = 17
_IP_DF = 0x4000
_IP_MF = 0x2000
_MIN_FRAME = 60
_FIN, _SYN, _PSH, _ACK = 0x01, 0x02, 0x08, 0x10
_TYPE_HTTPS = dns.rdatatype.RdataType.HTTPS

_Packet = tuple[int, int, bytes, tuple[str, ...]]
"""(timestamp ns, sequence number, Ethernet frame, tags counted when written)."""
_Send = Callable[[float, bool, int, bytes, tuple[str, ...]], None]
"""A TCP connection's segment sender: (time, from client, flags, payload, tags)."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A host as seen on the capturing interface."""

    mac: bytes
    """The MAC address its frames carry on this link (the gateway's for remote hosts)."""
    ip: bytes
    """Its IPv4 (4 bytes) or IPv6 (16 bytes) address."""
    ttl: int
    """The IP TTL / hop limit its packets have when they reach the capture point."""


@dataclass(frozen=True, slots=True)
class CaptureSummary:
    """What the generator wrote: the ground truth a decoder's counts are checked against."""

    packets: int
    """Frames written."""
    bytes: int
    """Size of the file."""
    first_ts_ns: int
    """Time of the first frame, nanoseconds since the epoch."""
    last_ts_ns: int
    """Time of the last frame."""
    counts: dict[str, int]
    """Frames per tag: ``ipv4``, ``ipv6``, ``udp``, ``tcp``, ``fragment``, ``arp``, ``noise``,
    and per completed DNS message (counted on the frame that completes it): ``dns_query``,
    ``dns_response``, ``dns_response_tcp``, ``dnskey_response``, ``nxdomain_response``,
    ``nodata_response``, ``truncated_response``, ``fragmented_response``; ``tcp_control`` for
    segments without payload and ``tcp_split`` for segments carrying part of a message."""

    @property
    def duration_s(self) -> float:
        """Seconds from the first to the last frame."""
        return (self.last_ts_ns - self.first_ts_ns) / 1e9


def checksum(data: bytes) -> int:
    """RFC 1071 Internet checksum: one's complement of the one's complement sum of 16-bit words.

    Uses 2**16 = 1 (mod 0xFFFF): the word sum folds to the big integer's value mod 0xFFFF.
    """
    if len(data) % 2:
        data += b"\x00"
    folded = int.from_bytes(data, "big") % 0xFFFF
    if folded == 0:
        return 0xFFFF if not any(data) else 0  # a non-zero sum that folds to 0 is 0xFFFF
    return 0xFFFF - folded


def _pseudo_header(src: bytes, dst: bytes, proto: int, length: int) -> bytes:
    if len(src) == 4:
        return src + dst + struct.pack("!BBH", 0, proto, length)  # RFC 768 pseudo-header
    return src + dst + struct.pack("!I3xB", length, proto)  # RFC 8200 8.1 pseudo-header


def udp_datagram(src: bytes, dst: bytes, sport: int, dport: int, payload: bytes) -> bytes:
    """UDP header plus payload with the checksum over the pseudo-header computed."""
    length = 8 + len(payload)
    body = _UDP.pack(sport, dport, length, 0) + payload
    value = checksum(_pseudo_header(src, dst, _PROTO_UDP, length) + body) or 0xFFFF  # RFC 768
    return body[:6] + value.to_bytes(2, "big") + body[8:]


def tcp_segment(
    src: bytes,
    dst: bytes,
    ports: tuple[int, int],
    seq: int,
    ack: int,
    flags: int,
    payload: bytes = b"",
) -> bytes:
    """TCP header (an MSS option on SYNs) plus payload, with the checksum computed."""
    options = struct.pack("!BBH", 2, 4, TCP_MSS) if flags & _SYN else b""
    offset = (20 + len(options)) // 4 << 4
    header = _TCP.pack(ports[0], ports[1], seq, ack, offset, flags, 64_240, 0, 0) + options
    body = header + payload
    value = checksum(_pseudo_header(src, dst, _PROTO_TCP, len(body)) + body)
    return body[:16] + value.to_bytes(2, "big") + body[18:]


def ipv4_packet(
    src: bytes, dst: bytes, proto: int, payload: bytes, ttl: int, ident: int, frag: int = _IP_DF
) -> bytes:
    """IPv4 header (no options) with its checksum, plus payload; ``frag`` is flags+offset."""
    header = _IPV4.pack(0x45, 0, 20 + len(payload), ident, frag, ttl, proto, 0, src, dst)
    return header[:10] + checksum(header).to_bytes(2, "big") + header[12:] + payload


def ipv6_packet(src: bytes, dst: bytes, proto: int, payload: bytes, hop_limit: int) -> bytes:
    """IPv6 header without extension headers, plus payload."""
    return _IPV6.pack(0x6000_0000, len(payload), proto, hop_limit, src, dst) + payload


def ethernet_frame(dst_mac: bytes, src_mac: bytes, ethertype: int, payload: bytes) -> bytes:
    """Ethernet II frame (no FCS), padded to the 60-byte minimum as a receiver captures it."""
    frame = _ETH.pack(dst_mac, src_mac, ethertype) + payload
    if len(frame) < _MIN_FRAME:
        frame += bytes(_MIN_FRAME - len(frame))
    return frame


def ipv4_fragments(
    src: bytes, dst: bytes, proto: int, datagram: bytes, ttl: int, ident: int
) -> list[bytes]:
    """Split a transport datagram into IPv4 fragments that fit the MTU (RFC 791 3.2)."""
    chunk = (MTU - 20) // 8 * 8
    pieces = []
    for offset in range(0, len(datagram), chunk):
        more = _IP_MF if offset + chunk < len(datagram) else 0
        piece = datagram[offset : offset + chunk]
        pieces.append(ipv4_packet(src, dst, proto, piece, ttl, ident, more | offset // 8))
    return pieces


def _derive_key(seed: int, role: str) -> ec.EllipticCurvePrivateKey:
    digest = hashlib.sha256(f"dnssec-auditor-bench/{seed}/{role}".encode()).digest()
    return ec.derive_private_key(
        int.from_bytes(digest, "big") % (_P256_ORDER - 1) + 1, ec.SECP256R1()
    )


class Zone:
    """One signed zone: its names, RRsets, NSEC chain, and signatures made on first use."""

    def __init__(self, index: int, keys: SigningKeys) -> None:
        word = _ZONE_WORDS[index % len(_ZONE_WORDS)]
        self.index = index
        """Position in the catalogue, which also picks the zone's servers."""
        self.origin = dns.name.from_text(f"{word}{index}.example")
        self.keys = keys
        self.hosts = [self._child(_host_label(j)) for j in range(NAMES_PER_ZONE)]
        self.big = [self._child(f"txt{j}") for j in range(BIG_NAMES_PER_ZONE)]
        self.missing = [
            self._child(f"{_TYPO_LABELS[j % len(_TYPO_LABELS)]}{j // len(_TYPO_LABELS) or ''}")
            for j in range(NX_NAMES_PER_ZONE)
        ]
        self.rrsets: dict[tuple[dns.name.Name, dns.rdatatype.RdataType], dns.rrset.RRset] = {}
        self._signed: dict[
            tuple[dns.name.Name, dns.rdatatype.RdataType], list[dns.rrset.RRset]
        ] = {}
        self._fill(index)
        self.names = sorted({name for name, _ in self.rrsets})
        self._add_nsec_chain()

    def _child(self, label: str) -> dns.name.Name:
        return dns.name.Name((label.encode(), *self.origin.labels))

    def _add(
        self, name: dns.name.Name, rdtype: dns.rdatatype.RdataType, ttl: int, texts: list[str]
    ) -> None:
        rrset = dns.rrset.from_text_list(name, ttl, dns.rdataclass.IN, rdtype, texts)
        self.rrsets[(name, rdtype)] = rrset

    def _fill(self, index: int) -> None:
        apex, origin = self.origin, self.origin.to_text()
        self._add(
            apex,
            dns.rdatatype.SOA,
            DATA_TTL,
            [f"ns1.{origin} hostmaster.{origin} 2025060101 7200 3600 1209600 {NEGATIVE_TTL}"],
        )
        self._add(apex, dns.rdatatype.NS, DATA_TTL, [f"ns1.{origin}", f"ns2.{origin}"])
        self._add(apex, dns.rdatatype.DNSKEY, DNSKEY_TTL, self.keys.dnskey_texts)
        for server in (1, 2):
            self._add(
                self._child(f"ns{server}"),
                dns.rdatatype.A,
                DATA_TTL,
                [f"203.0.113.{index * 2 + server}"],
            )
        for j, host in enumerate(self.hosts):
            count = 1 + (j % 3 == 0)
            addresses = [f"198.51.{100 + k}.{(index * 7 + j) % 254 + 1}" for k in range(count)]
            self._add(host, dns.rdatatype.A, DATA_TTL, addresses)
            self._add(host, dns.rdatatype.AAAA, DATA_TTL, [f"2001:db8:{index:x}:{j:x}::1"])
        for j, name in enumerate(self.big):
            rng = random.Random(f"{index}/{j}")
            texts = [
                '"'
                + "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(250))
                + '"'
                for _ in range(12)
            ]
            self._add(name, dns.rdatatype.TXT, DATA_TTL, texts)

    def _add_nsec_chain(self) -> None:
        """RFC 4034 4.1: each name points to the next in canonical order, the last to the apex."""
        types: dict[dns.name.Name, set[str]] = {}
        for name, rdtype in self.rrsets:
            types.setdefault(name, {"RRSIG", "NSEC"}).add(dns.rdatatype.to_text(rdtype))
        for position, name in enumerate(self.names):
            following = self.names[(position + 1) % len(self.names)]
            bitmap = " ".join(sorted(types[name], key=dns.rdatatype.from_text))
            self._add(name, dns.rdatatype.NSEC, NEGATIVE_TTL, [f"{following} {bitmap}"])

    def signed(self, name: dns.name.Name, rdtype: dns.rdatatype.RdataType) -> list[dns.rrset.RRset]:
        """The RRset and its RRSIG, signing it the first time it is asked for."""
        key = (name, rdtype)
        found = self._signed.get(key)
        if found is None:
            rrset = self.rrsets[key]
            rrsig = self.keys.sign(rrset, self.origin)
            found = [rrset, dns.rrset.from_rdata(name, rrset.ttl, rrsig)]
            self._signed[key] = found
        return found

    def covering_nsec(self, name: dns.name.Name) -> dns.name.Name:
        """Owner of the NSEC whose interval covers a name that does not exist."""
        return self.names[bisect.bisect_left(self.names, name) - 1]

    def records(
        self, qname: dns.name.Name, qtype: dns.rdatatype.RdataType
    ) -> tuple[dns.rcode.Rcode, list[dns.rrset.RRset], list[dns.rrset.RRset]]:
        """(rcode, answer, authority) the zone gives for a question, denial proofs included."""
        if (qname, qtype) in self.rrsets:
            return dns.rcode.NOERROR, self.signed(qname, qtype), []
        soa = self.signed(self.origin, dns.rdatatype.SOA)
        if (qname, dns.rdatatype.NSEC) in self.rrsets:  # RFC 4035 3.1.3.1: NODATA
            return dns.rcode.NOERROR, [], soa + self.signed(qname, dns.rdatatype.NSEC)
        covering = self.covering_nsec(qname)  # RFC 4035 3.1.3.2: name error plus wildcard proof
        wildcard = self.covering_nsec(dns.name.Name((b"*", *self.origin.labels)))
        proof = self.signed(covering, dns.rdatatype.NSEC)
        if wildcard != covering:
            proof += self.signed(wildcard, dns.rdatatype.NSEC)
        return dns.rcode.NXDOMAIN, [], soa + proof


def _host_label(j: int) -> str:
    base = _HOST_LABELS[j % len(_HOST_LABELS)]
    return base + (str(j // len(_HOST_LABELS)) if j >= len(_HOST_LABELS) else "")


class SigningKeys:
    """A KSK and a ZSK shared by every zone; signatures use fixed inception and expiration."""

    def __init__(self, seed: int) -> None:
        self._ksk = _derive_key(seed, "ksk")
        self._zsk = _derive_key(seed, "zsk")
        algorithm = dns.dnssec.Algorithm.ECDSAP256SHA256
        self._ksk_dnskey = dns.dnssec.make_dnskey(self._ksk.public_key(), algorithm, flags=257)
        self._zsk_dnskey = dns.dnssec.make_dnskey(self._zsk.public_key(), algorithm, flags=256)
        self.dnskey_texts = [self._ksk_dnskey.to_text(), self._zsk_dnskey.to_text()]

    def sign(self, rrset: dns.rrset.RRset, signer: dns.name.Name) -> dns.rdata.Rdata:
        """RRSIG over ``rrset``: the KSK signs DNSKEY RRsets, the ZSK everything else."""
        is_dnskey = rrset.rdtype == dns.rdatatype.DNSKEY
        key = self._ksk if is_dnskey else self._zsk
        dnskey: dns.rdtypes.ANY.DNSKEY.DNSKEY = self._ksk_dnskey if is_dnskey else self._zsk_dnskey
        return dns.dnssec.sign(
            rrset,
            key,
            signer,
            dnskey,
            inception=SIG_INCEPTION_S,
            expiration=SIG_EXPIRATION_S,
            deterministic=True,
        )


@dataclass(frozen=True, slots=True, eq=False)
class Question:
    """One question a client may ask, with the zone that answers it. Each is made once and
    compared by identity, so caches keyed by it never hash a ``dns.name.Name``."""

    zone: Zone
    qname: dns.name.Name
    qtype: dns.rdatatype.RdataType
    kind: str
    """``data``, ``nodata``, ``dnskey``, ``nxdomain`` or ``big``."""


class Catalog:
    """Zones, Zipf popularity, and DNS wire templates (ID 0) rendered once per question+role."""

    def __init__(self, seed: int) -> None:
        keys = SigningKeys(seed)
        self.zones = [Zone(index, keys) for index in range(ZONE_COUNT)]
        hosts = [
            (
                Question(zone, host, dns.rdatatype.A, "data"),
                Question(zone, host, dns.rdatatype.AAAA, "data"),
                Question(zone, host, _TYPE_HTTPS, "nodata"),
            )
            for zone in self.zones
            for host in zone.hosts
        ]
        random.Random(seed).shuffle(hosts)  # popularity rank is unrelated to zone and label
        self.ranked = hosts
        """(A, AAAA, HTTPS) questions per host, most popular first."""
        self.dnskey = [
            Question(zone, zone.origin, dns.rdatatype.DNSKEY, "dnskey") for zone in self.zones
        ]
        self.missing = [
            [Question(zone, name, dns.rdatatype.A, "nxdomain") for name in zone.missing]
            for zone in self.zones
        ]
        self.big = [
            [Question(zone, name, dns.rdatatype.TXT, "big") for name in zone.big]
            for zone in self.zones
        ]
        self.cum_weights = list(
            accumulate(1 / (rank + 1) ** ZIPF_EXPONENT for rank in range(len(hosts)))
        )
        self._wires: dict[tuple[Question, str], bytes] = {}
        self._responses: dict[tuple[Question, str], tuple[bytes, tuple[str, ...]]] = {}

    def query(self, question: Question, role: str) -> bytes:
        """Query wire (ID 0): ``client`` asks recursively, ``upstream`` iteratively."""
        key = (question, role)
        wire = self._wires.get(key)
        if wire is None:
            big = question.qtype == dns.rdatatype.TXT and role == "upstream"
            if role == "upstream" and not big:  # the client's query without RD: patch, not render
                wire = self._wires[key] = _with_flags(self.query(question, "client"), 0)
                return wire
            message = dns.message.make_query(
                question.qname,
                question.qtype,
                want_dnssec=True,
                id=0,
                payload=UPSTREAM_BIG_PAYLOAD if big else CLIENT_EDNS_PAYLOAD,
                flags=dns.flags.RD if role == "client" else 0,
            )
            wire = self._wires[key] = message.to_wire()
        return wire

    def response(self, question: Question, role: str) -> tuple[bytes, tuple[str, ...]]:
        """(response wire with ID 0, its tags): ``client`` from the resolver, ``upstream`` from
        the authoritative server, ``truncated`` an empty TC=1 answer to a client over UDP."""
        key = (question, role)
        found = self._responses.get(key)
        if found is None:
            if role == "upstream" and question.kind != "big":  # same bytes, AA instead of RA+AD
                wire, tags = self.response(question, "client")
                found = (_with_flags(wire, dns.flags.QR | dns.flags.AA | wire[3] & 0x0F), tags)
            else:
                found = self._render_response(question, role)
            self._responses[key] = found
        return found

    def _render_response(self, question: Question, role: str) -> tuple[bytes, tuple[str, ...]]:
        rcode, answer, authority = question.zone.records(question.qname, question.qtype)
        asked = self.query(question, "upstream" if role == "upstream" else "client")
        query = dns.message.from_wire(asked)
        response = dns.message.make_response(query)
        response.use_edns(0, dns.flags.DO, query.payload)
        if role == "truncated":
            response.flags |= dns.flags.TC | dns.flags.RA  # RFC 1035 4.1.1, RFC 7766 5
        else:
            response.set_rcode(rcode)
            response.flags |= dns.flags.AA if role == "upstream" else dns.flags.RA | dns.flags.AD
            response.answer.extend(answer)
            response.authority.extend(authority)
        return response.to_wire(max_size=65_535, want_shuffle=False), _response_tags(
            question, response
        )


def _response_tags(question: Question, response: dns.message.Message) -> tuple[str, ...]:
    tags = ["dns_response"]
    if response.flags & dns.flags.TC:
        tags.append("truncated_response")
    elif response.rcode() == dns.rcode.NXDOMAIN:
        tags.append("nxdomain_response")
    elif question.qtype == dns.rdatatype.DNSKEY:
        tags.append("dnskey_response")
    elif not response.answer:
        tags.append("nodata_response")
    return tuple(tags)


def _with_flags(wire: bytes, flags: int) -> bytes:
    """The template with its flags word (RFC 1035 4.1.1) replaced."""
    return wire[:2] + flags.to_bytes(2, "big") + wire[4:]


def with_id(wire: bytes, message_id: int) -> bytes:
    """The template with its ID field set."""
    return message_id.to_bytes(2, "big") + wire[2:]


def _skip_name(wire: bytes | bytearray, offset: int) -> int:
    while wire[offset] and wire[offset] < 0xC0:
        offset += 1 + wire[offset]
    return offset + (2 if wire[offset] else 1)


def with_ttls_aged(wire: bytes, age_s: int) -> bytes:
    """The template with every answer and authority TTL lowered by ``age_s`` (not below 0), as
    a resolver counts down what it serves from its cache (RFC 1035 3.2.1; RFC 2181 8)."""
    if age_s <= 0:
        return wire
    out = bytearray(wire)
    qdcount, ancount, nscount = struct.unpack_from("!HHH", out, 4)
    offset = 12
    for _ in range(qdcount):
        offset = _skip_name(out, offset) + 4
    for _ in range(ancount + nscount):
        offset = _skip_name(out, offset)
        ttl, length = struct.unpack_from("!IH", out, offset + 4)
        struct.pack_into("!I", out, offset + 4, max(0, ttl - age_s))
        offset += 10 + length
    return bytes(out)


def _ipv6(address: str) -> bytes:
    return ipaddress.IPv6Address(address).packed


class Network:
    """Addresses and MACs of the resolver, its clients, gateway, authoritative servers, noise."""

    def __init__(self) -> None:
        self.gateway_mac = bytes.fromhex("020000000001")
        resolver_mac = bytes.fromhex("020000000053")
        self.resolver_v4 = Endpoint(resolver_mac, bytes([192, 0, 2, 53]), 64)
        self.resolver_v6 = Endpoint(resolver_mac, _ipv6("2001:db8::53"), 64)
        self.clients = [  # RFC 2544 benchmarking range 198.18.0.0/15 and RFC 3849 documentation
            Endpoint(
                bytes([2, 0, 0xC0, 0, i >> 8, i & 0xFF]),
                bytes([198, 18 + i // 64_000, i // 250 % 256, i % 250 + 1]),
                128 if i % 5 == 0 else 64,
            )
            for i in range(CLIENTS_V4)
        ] + [
            Endpoint(bytes([2, 0, 0xC6, 0, i >> 8, i & 0xFF]), _ipv6(f"2001:db8:1::{i + 1:x}"), 64)
            for i in range(CLIENTS_V6)
        ]
        self.servers_v4 = [
            [self._remote(bytes([203, 0, 113, z * 2 + s]), 50 + z % 7) for s in (1, 2)]
            for z in range(ZONE_COUNT)
        ]
        self.servers_v6 = [
            [self._remote(_ipv6(f"2001:db8:53:{z:x}::{s}"), 52 + z % 5) for s in (1, 2)]
            for z in range(ZONE_COUNT)
        ]
        self.ntp = self._remote(bytes([203, 0, 113, 123]), 55)
        self.collector = self._remote(bytes([203, 0, 113, 200]), 58)

    def _remote(self, address: bytes, ttl: int) -> Endpoint:
        return Endpoint(self.gateway_mac, address, ttl)

    def resolver_for(self, peer: Endpoint) -> Endpoint:
        """The resolver's address of the peer's family."""
        return self.resolver_v4 if len(peer.ip) == 4 else self.resolver_v6


class TrafficGenerator:
    """Produces sessions in time order and writes their packets through a time-ordered heap."""

    def __init__(self, seed: int, packets: int) -> None:
        self.rng = random.Random(seed)
        self.catalog = Catalog(seed)
        self.net = Network()
        self.target = packets
        self.clock_ns = CAPTURE_START_S * 1_000_000_000
        self.gap_ns = 1e9 / PACKETS_PER_SECOND
        self.heap: list[_Packet] = []
        self.sequence = 0
        self.cache: dict[Question, int] = {}
        self.cached_at: dict[Question, float] = {}
        """When the resolver's copy of each answer arrived (for ``ttl_decay``)."""
        self.ttl_decay = False
        """Answers from the resolver's cache carry TTLs counted down by their age (off by
        default: the default capture stays byte-identical)."""
        self.counts: Counter[str] = Counter()
        self._popular: list[int] = []

    # -- packet emission ---------------------------------------------------------------------

    def anchor_text(self) -> str:
        """A trust anchor file for every zone (each zone's KSK as a DNSKEY), so an audit of
        the capture validates (``--trust-anchor OUT.anchor``) instead of calling every answer
        indeterminate: the zones have no signed parent."""
        ksk = self.catalog.zones[0].keys.dnskey_texts[0]
        return "".join(f"{zone.origin.to_text()} {DNSKEY_TTL} IN DNSKEY {ksk}\n"
                       for zone in self.catalog.zones)

    def _push(self, ts_ns: int, frame: bytes, tags: tuple[str, ...]) -> None:
        self.sequence += 1
        heapq.heappush(self.heap, (int(ts_ns), self.sequence, frame, tags))

    def _ip_frame(
        self,
        ts_ns: float,
        src: Endpoint,
        dst: Endpoint,
        proto: int,
        body: bytes,
        tags: tuple[str, ...],
    ) -> None:
        if len(src.ip) == 4:
            packet = ipv4_packet(src.ip, dst.ip, proto, body, src.ttl, self.rng.getrandbits(16))
            frame = ethernet_frame(dst.mac, src.mac, _ETHERTYPE_IPV4, packet)
            self._push(int(ts_ns), frame, ("ipv4", *tags))
        else:
            packet = ipv6_packet(src.ip, dst.ip, proto, body, src.ttl)
            self._push(
                int(ts_ns),
                ethernet_frame(dst.mac, src.mac, _ETHERTYPE_IPV6, packet),
                ("ipv6", *tags),
            )

    def _udp(
        self,
        ts_ns: float,
        src: Endpoint,
        sport: int,
        dst: Endpoint,
        dport: int,
        payload: bytes,
        tags: tuple[str, ...],
    ) -> None:
        body = udp_datagram(src.ip, dst.ip, sport, dport, payload)
        self._ip_frame(ts_ns, src, dst, _PROTO_UDP, body, ("udp", *tags))

    def _fragmented_udp(
        self,
        ts_ns: float,
        src: Endpoint,
        sport: int,
        dst: Endpoint,
        dport: int,
        payload: bytes,
        tags: tuple[str, ...],
    ) -> None:
        body = udp_datagram(src.ip, dst.ip, sport, dport, payload)
        pieces = ipv4_fragments(src.ip, dst.ip, _PROTO_UDP, body, src.ttl, self.rng.getrandbits(16))
        if self.rng.random() < 0.2:
            pieces.reverse()  # some stacks send the last fragment first
        for position, piece in enumerate(pieces):
            last = position == len(pieces) - 1
            frame = ethernet_frame(dst.mac, src.mac, _ETHERTYPE_IPV4, piece)
            extra = ("fragmented_response", *tags) if last else ()
            self._push(int(ts_ns + position * 12_000), frame, ("ipv4", "udp", "fragment", *extra))

    # -- sessions ----------------------------------------------------------------------------

    def run(self, out: BinaryIO) -> CaptureSummary:
        """Write the pcap header and ``target`` frames; return what was written."""
        out.write(PCAP_HEADER)
        written, size = 0, len(PCAP_HEADER)
        first_ts = last_ts = self.clock_ns
        batch: list[bytes] = []
        while written < self.target:
            if written + len(self.heap) < self.target:
                before = len(self.heap)
                self._session(self.clock_ns)
                made = len(self.heap) - before
                self.clock_ns += int(self.rng.expovariate(1.0) * max(made, 1) * self.gap_ns)
                limit = self.clock_ns
            else:
                limit = None
            while (
                self.heap and written < self.target and (limit is None or self.heap[0][0] < limit)
            ):
                ts_ns, _, frame, tags = heapq.heappop(self.heap)
                if written == 0:
                    first_ts = ts_ns
                last_ts = ts_ns
                batch.append(
                    _RECORD.pack(
                        ts_ns // 1_000_000_000, ts_ns // 1_000 % 1_000_000, len(frame), len(frame)
                    )
                    + frame
                )
                size += 16 + len(frame)
                self.counts.update(tags)
                written += 1
                if len(batch) >= 8_192:
                    out.write(b"".join(batch))
                    batch.clear()
        out.write(b"".join(batch))
        return CaptureSummary(written, size, first_ts, last_ts, dict(self.counts))

    def _session(self, t: int) -> None:
        if self.rng.random() < NOISE_SESSION_SHARE:
            self._noise(t)
            return
        client = self.rng.choice(self.net.clients)
        question = self._client_question()
        if question.kind == "big":
            self._big_answer(t, client, question)
        elif self.rng.random() < CLIENT_TCP_SHARE:
            questions = [question] + [
                self._client_question() for _ in range(self.rng.choice((0, 0, 1, 2)))
            ]
            self._tcp_client_session(
                t, client, [q for q in questions if q.qtype != dns.rdatatype.TXT]
            )
        else:
            self._udp_client_query(t, client, question)

    def _client_question(self) -> Question:
        if not self._popular:
            self._popular = self.rng.choices(
                range(len(self.catalog.ranked)), cum_weights=self.catalog.cum_weights, k=4_096
            )
        a, aaaa, https = self.catalog.ranked[self._popular.pop()]
        draw = self.rng.random()
        if draw < 0.56:
            return a
        if draw < 0.84:
            return aaaa
        if draw < 0.91:
            return https
        zone = a.zone.index
        if draw < 0.94:
            return self.catalog.dnskey[zone]
        if draw < 0.996:
            return self.rng.choice(self.catalog.missing[zone])
        return self.rng.choice(self.catalog.big[zone])

    def _udp_client_query(self, t: int, client: Endpoint, question: Question) -> None:
        resolver = self.net.resolver_for(client)
        port, message_id = self.rng.randint(32_768, 60_999), self.rng.getrandbits(16)
        query = with_id(self.catalog.query(question, "client"), message_id)
        self._udp(t, client, port, resolver, 53, query, ("dns_query",))
        ready = self._resolve(t + self.rng.uniform(20_000, 80_000), question)
        wire, tags = self._client_response(question, ready)
        self._udp(
            ready + self.rng.uniform(30_000, 150_000),
            resolver,
            53,
            client,
            port,
            with_id(wire, message_id),
            tags,
        )

    def _client_response(self, question: Question, when: float) -> tuple[bytes, tuple[str, ...]]:
        """The resolver's answer template, its TTLs aged since it was cached (``ttl_decay``)."""
        wire, tags = self.catalog.response(question, "client")
        if self.ttl_decay:
            age_s = int((when - self.cached_at.get(question, when)) / 1e9)
            wire = with_ttls_aged(wire, age_s)
        return wire, tags

    def _resolve(self, t: float, question: Question, *, big: bool = False) -> float:
        """Emit the resolver's upstream exchange on a cache miss; return when the answer is in."""
        if self.cache.get(question, 0) > t:
            return t
        use_v6 = not big and self.rng.random() < 0.2
        servers = (self.net.servers_v6 if use_v6 else self.net.servers_v4)[question.zone.index]
        t = self._upstream_exchange(t, servers, question, big=big)
        is_data = (question.qname, question.qtype) in question.zone.rrsets
        self.cache[question] = int(t + (DATA_TTL if is_data else NEGATIVE_TTL) * 1e9)
        self.cached_at[question] = t
        dnskey = self.catalog.dnskey[question.zone.index]
        if question.qtype != dns.rdatatype.DNSKEY and self.cache.get(dnskey, 0) <= t:
            t = self._upstream_exchange(t + 40_000, servers, dnskey, big=False)
            self.cache[dnskey] = int(t + DNSKEY_TTL * 1e9)
        return t

    def _upstream_exchange(
        self, t: float, servers: list[Endpoint], question: Question, *, big: bool
    ) -> float:
        server = self.rng.choice(servers)
        if self.rng.random() < UPSTREAM_LOSS:  # lost: retry on the other server after a timeout
            self._upstream_query(t, server, question)
            t += 800_000_000
            server = servers[1 - servers.index(server)]
        port, message_id = self._upstream_query(t, server, question)
        t += self.rng.uniform(4e6, 30e6) + server.ttl * 200_000
        wire, tags = self.catalog.response(question, "upstream")
        resolver = self.net.resolver_for(server)
        if big:
            self._fragmented_udp(t, server, 53, resolver, port, with_id(wire, message_id), tags)
        else:
            self._udp(t, server, 53, resolver, port, with_id(wire, message_id), tags)
        return t + 30_000

    def _upstream_query(self, t: float, server: Endpoint, question: Question) -> tuple[int, int]:
        port, message_id = self.rng.randint(1_024, 65_535), self.rng.getrandbits(16)
        query = with_id(self.catalog.query(question, "upstream"), message_id)
        self._udp(t, self.net.resolver_for(server), port, server, 53, query, ("dns_query",))
        return port, message_id

    def _big_answer(self, t: int, client: Endpoint, question: Question) -> None:
        """Upstream answer IPv4-fragmented, client gets TC=1 over UDP and retries over TCP."""
        resolver = self.net.resolver_for(client)
        port, message_id = self.rng.randint(32_768, 60_999), self.rng.getrandbits(16)
        query = with_id(self.catalog.query(question, "client"), message_id)
        self._udp(t, client, port, resolver, 53, query, ("dns_query",))
        ready = self._resolve(t + 50_000, question, big=True)
        wire, tags = self.catalog.response(question, "truncated")
        self._udp(
            ready + 60_000,
            resolver,
            53,
            client,
            port,
            with_id(wire, message_id),
            tags,
        )
        self._tcp_client_session(int(ready + 400_000), client, [question])

    def _tcp_client_session(self, t: int, client: Endpoint, questions: list[Question]) -> None:
        """RFC 7766 TCP: handshake, length-framed queries and answers, FIN teardown."""
        resolver = self.net.resolver_for(client)
        port = self.rng.randint(32_768, 60_999)
        lan = self.rng.uniform(60_000, 250_000)
        c_seq, s_seq = self.rng.getrandbits(32), self.rng.getrandbits(32)

        def send(
            when: float, from_client: bool, flags: int, data: bytes, tags: tuple[str, ...]
        ) -> None:
            nonlocal c_seq, s_seq
            src, dst = (client, resolver) if from_client else (resolver, client)
            ports = (port, 53) if from_client else (53, port)
            seq, ack = (c_seq, s_seq) if from_client else (s_seq, c_seq)
            segment = tcp_segment(
                src.ip, dst.ip, ports, seq, ack if flags & _ACK else 0, flags, data
            )
            kind = ("tcp_control",) if not data else ()
            self._ip_frame(when, src, dst, _PROTO_TCP, segment, ("tcp", *kind, *tags))
            advance = len(data) + (1 if flags & (_SYN | _FIN) else 0)
            if from_client:
                c_seq = (c_seq + advance) % 2**32
            else:
                s_seq = (s_seq + advance) % 2**32

        send(t, True, _SYN, b"", ())
        send(t + lan, False, _SYN | _ACK, b"", ())
        t_now = t + lan + 30_000
        send(t_now, True, _ACK, b"", ())
        for question in questions:
            message_id = self.rng.getrandbits(16)
            query = with_id(self.catalog.query(question, "client"), message_id)
            t_now = self._tcp_message(send, t_now + 20_000, True, query, ("dns_query",))
            ready = self._resolve(t_now + 40_000, question, big=question.qtype == dns.rdatatype.TXT)
            if self.rng.random() < 0.4:
                send(t_now + 30_000, False, _ACK, b"", ())  # a separate ACK before the answer
            wire, tags = self._client_response(question, ready)
            tags = ("dns_response_tcp", *tags)
            t_now = self._tcp_message(
                send, max(ready, t_now) + 60_000, False, with_id(wire, message_id), tags
            )
            send(t_now + lan, True, _ACK, b"", ())
            t_now += lan
        send(t_now + 2_000_000, True, _FIN | _ACK, b"", ())
        send(t_now + 2_000_000 + lan, False, _FIN | _ACK, b"", ())
        send(t_now + 2_000_000 + 2 * lan, True, _ACK, b"", ())

    def _tcp_message(
        self, send: _Send, t: float, from_client: bool, wire: bytes, tags: tuple[str, ...]
    ) -> float:
        """One DNS message with its two-byte length (RFC 1035 4.2.2), split like real stacks:
        sometimes the length goes alone, large messages go in MSS-sized segments."""
        framed = len(wire).to_bytes(2, "big") + wire
        cuts = [2] if self.rng.random() < 0.15 else []
        cuts += range(cuts[0] + TCP_MSS if cuts else TCP_MSS, len(framed), TCP_MSS)
        bounds = [0, *cuts, len(framed)]
        pieces = [framed[a:b] for a, b in zip(bounds, bounds[1:], strict=False) if b > a]
        for position, piece in enumerate(pieces):
            last = position == len(pieces) - 1
            piece_tags = tags if last else ()
            split = ("tcp_split",) if len(pieces) > 1 else ()
            send(t, from_client, _PSH | _ACK if last else _ACK, piece, (*split, *piece_tags))
            t += 15_000
        return t

    def _noise(self, t: int) -> None:
        """Non-DNS traffic on the same link: ARP, ICMP echo, NTP, HTTPS to a collector."""
        client = self.rng.choice(self.net.clients[:CLIENTS_V4])
        resolver = self.net.resolver_v4
        kind = self.rng.random()
        if kind < 0.3:
            self._arp(t, client, resolver)
        elif kind < 0.5:
            for offset, (src, dst, icmp_type) in enumerate(
                ((client, resolver, 8), (resolver, client, 0))
            ):
                payload = bytes(range(48))
                header = _ICMP.pack(icmp_type, 0, 0, 0x1234, offset)
                body = header[:2] + checksum(header + payload).to_bytes(2, "big") + header[4:]
                self._ip_frame(
                    t + offset * 150_000, src, dst, _PROTO_ICMP, body + payload, ("noise",)
                )
        elif kind < 0.7:
            port = self.rng.randint(32_768, 60_999)
            request = bytes([0x23]) + bytes(47)  # NTPv4 client mode
            self._udp(t, resolver, port, self.net.ntp, 123, request, ("noise",))
            self._udp(
                t + 25e6,
                self.net.ntp,
                123,
                resolver,
                port,
                bytes([0x24]) + self.rng.randbytes(47),
                ("noise",),
            )
        else:
            port, seq = self.rng.randint(32_768, 60_999), self.rng.getrandbits(32)
            for step in range(self.rng.randint(3, 8)):
                data = self.rng.randbytes(self.rng.randint(100, 1_400))
                segment = tcp_segment(
                    resolver.ip, self.net.collector.ip, (port, 443), seq, 1, _PSH | _ACK, data
                )
                self._ip_frame(
                    t + step * 90_000,
                    resolver,
                    self.net.collector,
                    _PROTO_TCP,
                    segment,
                    ("tcp", "noise"),
                )
                seq = (seq + len(data)) % 2**32

    def _arp(self, t: int, client: Endpoint, resolver: Endpoint) -> None:
        request = _ARP.pack(
            1, _ETHERTYPE_IPV4, 6, 4, 1, client.mac, client.ip, bytes(6), resolver.ip
        )
        reply = _ARP.pack(
            1, _ETHERTYPE_IPV4, 6, 4, 2, resolver.mac, resolver.ip, client.mac, client.ip
        )
        self._push(
            t, ethernet_frame(b"\xff" * 6, client.mac, _ETHERTYPE_ARP, request), ("arp", "noise")
        )
        self._push(
            t + 90_000,
            ethernet_frame(client.mac, resolver.mac, _ETHERTYPE_ARP, reply),
            ("arp", "noise"),
        )


def write_capture(path: Path, packets: int = DEFAULT_PACKETS, seed: int = 1, *,
                  ttl_decay: bool = False) -> CaptureSummary:
    """Write a capture of exactly ``packets`` frames to ``path``, and the zones' trust anchors
    to ``path`` with suffix ``.anchor``; same inputs, same bytes."""
    generator = TrafficGenerator(seed, packets)
    generator.ttl_decay = ttl_decay
    with path.open("wb") as out:
        summary = generator.run(out)
    path.with_suffix(".anchor").write_text(generator.anchor_text())
    return summary


def main(argv: list[str] | None = None) -> int:
    """Command line: ``make_capture.py OUT.pcap [--packets N] [--seed S] [--churn]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("out", type=Path, help="pcap file to write")
    parser.add_argument("--packets", type=int, default=DEFAULT_PACKETS, help="frames to write")
    parser.add_argument("--seed", type=int, default=1, help="random seed (keys, names, traffic)")
    parser.add_argument("--churn", action="store_true",
                        help="ever-new names, zones, clients and servers (churn_capture.py)")
    parser.add_argument("--ttl-decay", action="store_true",
                        help="the resolver counts TTLs down in the answers it serves from its "
                        "cache, as real resolvers do (fewer byte-identical repeats)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    if args.churn:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from churn_capture import write_churn_capture

        summary, generator = write_churn_capture(args.out, args.packets, args.seed)
        args.out.with_suffix(".anchor").write_text(generator.anchor_text())
    else:
        summary = write_capture(args.out, args.packets, args.seed, ttl_decay=args.ttl_decay)
    elapsed = time.perf_counter() - started
    print(
        f"wrote {args.out}: {summary.packets:,} frames, {summary.bytes / 1e6:.1f} MB, "
        f"{summary.duration_s:.0f} s of traffic, in {elapsed:.1f} s",
        file=sys.stderr,
    )
    for tag, count in sorted(summary.counts.items()):
        print(f"  {tag:22} {count:>10,}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
