"""Test builders: signed zones with fixed times, responses wired through the real parsing path."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dns.dnssec
import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.DNSKEY
import dns.rrset
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

from auditor.evidence import ResponseEvidence, build_evidence
from auditor.transactions import Matcher
from auditor.trust import KeyCache, KeyMaterial, KeyView, TrustAnchors, parse_anchor_text
from auditor.validate import RFC8624, ValidationPolicy, Validator
from tests.helpers import CLIENT, SERVER, observe

WHEN = 1_700_000_000
"""Pinned capture time (seconds) of every test response."""
INCEPTION = WHEN - 86_400
EXPIRATION = WHEN + 30 * 86_400
NS = 1_000_000_000

PrivateKey = (
    rsa.RSAPrivateKey
    | dsa.DSAPrivateKey
    | ec.EllipticCurvePrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
)


DATA = Path(__file__).resolve().parents[1] / "data" / "dnssec"


@functools.cache
def private_key(algorithm: int, slot: int = 0, rsa_bits: int = 2048) -> PrivateKey:
    """A key generated once per test session for (algorithm, slot, RSA size). RSA keys under
    1024 bits come from tests/data/dnssec/rsa512_*.pem (cryptography refuses to generate them)."""
    if algorithm in (5, 7, 8, 10):
        if rsa_bits < 1024:
            pem = DATA / f"rsa512_{'ksk' if slot % 2 == 0 else 'zsk'}.pem"
            loaded = serialization.load_pem_private_key(pem.read_bytes(), password=None)
            assert isinstance(loaded, rsa.RSAPrivateKey)
            return loaded
        return rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
    if algorithm in (3, 6):
        return dsa.generate_private_key(key_size=1024)
    if algorithm == 13:
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == 14:
        return ec.generate_private_key(ec.SECP384R1())
    if algorithm == 15:
        return ed25519.Ed25519PrivateKey.generate()
    if algorithm == 16:
        return ed448.Ed448PrivateKey.generate()
    raise ValueError(algorithm)


def name(text: str) -> dns.name.Name:
    """Absolute name."""
    return dns.name.from_text(text)


@dataclass
class Zone:
    """A signed zone with one KSK and one ZSK of the same algorithm."""

    origin: dns.name.Name
    algorithm: int = 13
    slot: int = 0
    extra_keys: list[dns.rdtypes.ANY.DNSKEY.DNSKEY] = field(default_factory=list)
    rsa_bits: int = 2048
    """RSA modulus size (RSA algorithms only; 512 uses the keys in tests/data/dnssec)."""

    @property
    def ksk_private(self) -> PrivateKey:
        return private_key(self.algorithm, 2 * self.slot, self.rsa_bits)

    @property
    def zsk_private(self) -> PrivateKey:
        return private_key(self.algorithm, 2 * self.slot + 1, self.rsa_bits)

    @property
    def ksk(self) -> dns.rdtypes.ANY.DNSKEY.DNSKEY:
        return dns.dnssec.make_dnskey(self.ksk_private.public_key(), self.algorithm, flags=257)

    @property
    def zsk(self) -> dns.rdtypes.ANY.DNSKEY.DNSKEY:
        return dns.dnssec.make_dnskey(self.zsk_private.public_key(), self.algorithm, flags=256)

    def dnskey_rrset(self) -> dns.rrset.RRset:
        rrset = dns.rrset.RRset(self.origin, dns.rdataclass.IN, dns.rdatatype.DNSKEY)
        rrset.update_ttl(3600)
        for key in (self.ksk, self.zsk, *self.extra_keys):
            rrset.add(key)
        return rrset

    def sign(
        self,
        rrset: dns.rrset.RRset,
        *,
        ksk: bool = False,
        inception: int = INCEPTION,
        expiration: int = EXPIRATION,
        signer: dns.name.Name | None = None,
    ) -> dns.rrset.RRset:
        """The RRSIG RRset over ``rrset`` (by the KSK for DNSKEY RRsets)."""
        use_ksk = ksk or rrset.rdtype == dns.rdatatype.DNSKEY
        private = self.ksk_private if use_ksk else self.zsk_private
        key = self.ksk if use_ksk else self.zsk
        rrsig = dns.dnssec.sign(rrset, private, signer or self.origin, key,
                                inception=inception, expiration=expiration,
                                policy=dns.dnssec.allow_all_policy)
        sigs = dns.rrset.RRset(rrset.name, rrset.rdclass, dns.rdatatype.RRSIG, rrset.rdtype)
        sigs.update_ttl(rrset.ttl)
        sigs.add(rrsig)
        return sigs

    def ds(self, digest_type: int = 2) -> dns.rrset.RRset:
        """The DS RRset of this zone's KSK, as the parent publishes it."""
        ds = dns.dnssec.make_ds(self.origin, self.ksk, dns.dnssec.DSDigest.make(digest_type),
                                policy=dns.dnssec.allow_all_policy)
        return dns.rrset.from_rdata(self.origin, 3600, ds)

    def anchor_text(self, digest_type: int = 2) -> str:
        ds = self.ds(digest_type)
        return f"{self.origin} IN DS {ds[0].to_text()}\n"


def rrset(owner: str, rdtype: str, *rdatas: str, ttl: int = 300) -> dns.rrset.RRset:
    """An RRset from presentation text."""
    return dns.rrset.from_text(owner, ttl, "IN", rdtype, *rdatas)


def respond(
    qname: str,
    qtype: str,
    answer: Sequence[dns.rrset.RRset] = (),
    authority: Sequence[dns.rrset.RRset] = (),
    additional: Sequence[dns.rrset.RRset] = (),
    *,
    query_do: bool | None = True,
    response_do: bool | None = None,
    ad: bool = False,
    tc: bool = False,
    aa: bool = False,
    rcode: int = dns.rcode.NOERROR,
    ede: Sequence[int] = (),
    ts: int = WHEN,
    sport: int = 40000,
) -> ResponseEvidence:
    """A response carried through MessageParser, Matcher and build_evidence."""
    query = dns.message.make_query(qname, qtype, want_dnssec=bool(query_do))
    response = dns.message.make_response(query)
    do = query_do if response_do is None else response_do
    options: list[dns.edns.Option] = [
        dns.edns.EDEOption(dns.edns.EDECode.make(code)) for code in ede
    ]
    response.use_edns(0, dns.flags.DO if do else 0, 1232, options=options)
    response.request_payload = 65535  # render attack-sized responses too (as over TCP)
    response.answer = list(answer)
    response.authority = list(authority)
    response.additional = list(additional)
    response.set_rcode(dns.rcode.Rcode.make(rcode))
    if ad:
        response.flags |= dns.flags.AD
    if tc:
        response.flags |= dns.flags.TC
    if aa:
        response.flags |= dns.flags.AA
    matcher = Matcher()
    ts_ns = ts * NS
    if query_do is not None:
        matcher.feed(observe(query, src=CLIENT, dst=SERVER, sport=sport, dport=53, ts_ns=ts_ns))
    transaction = matcher.feed(
        observe(response, src=SERVER, sport=53, dst=CLIENT, dport=sport, ts_ns=ts_ns + 1000)
    )
    assert transaction is not None
    return build_evidence(transaction)


@dataclass
class Lab:
    """A private hierarchy: . -> test. -> example.test. (algorithms per zone)."""

    root: Zone = field(default_factory=lambda: Zone(name("."), 13))
    tld: Zone = field(default_factory=lambda: Zone(name("test."), 13))
    leaf: Zone = field(default_factory=lambda: Zone(name("example.test."), 13))
    leaf_digest: int = 2

    def key_responses(self, *, with_leaf_ds: bool = True) -> list[ResponseEvidence]:
        """DNSKEY responses for every zone and DS responses for every delegation."""
        evidence = [self.dnskey_response(z) for z in (self.root, self.tld, self.leaf)]
        evidence.append(self.ds_response(self.tld, self.root))
        if with_leaf_ds:
            evidence.append(self.ds_response(self.leaf, self.tld, self.leaf_digest))
        return evidence

    @staticmethod
    def dnskey_response(zone: Zone) -> ResponseEvidence:
        keys = zone.dnskey_rrset()
        return respond(zone.origin.to_text(), "DNSKEY", [keys, zone.sign(keys)])

    @staticmethod
    def ds_response(child: Zone, parent: Zone, digest_type: int = 2) -> ResponseEvidence:
        ds = child.ds(digest_type)
        return respond(child.origin.to_text(), "DS", [ds, parent.sign(ds)])

    def anchors(self) -> TrustAnchors:
        return TrustAnchors(parse_anchor_text(self.root.anchor_text(), "lab-root.ds"))

    def material(self, responses: Sequence[ResponseEvidence] = ()) -> KeyMaterial:
        material = KeyMaterial()
        for evidence in [*self.key_responses(), *responses]:
            material.observe(evidence)
        return material

    def validator(
        self,
        responses: Sequence[ResponseEvidence] = (),
        *,
        policy: ValidationPolicy = RFC8624,
        cache: KeyCache | None = None,
        material: KeyMaterial | None = None,
        at_ns: int | None = None,
    ) -> Validator:
        material = material if material is not None else self.material(responses)
        return Validator(KeyView(self.anchors(), material, cache), policy, at_ns=at_ns)

    def signed_a(self, owner: str = "www.example.test.", address: str = "192.0.2.1",
                 **sign: int) -> list[dns.rrset.RRset]:
        data = rrset(owner, "A", address)
        return [data, self.leaf.sign(data, **sign)]  # type: ignore[arg-type]


def flip_signature(sigs: dns.rrset.RRset, index: int = 5) -> dns.rrset.RRset:
    """The same RRSIG RRset with one signature byte flipped."""
    out = dns.rrset.RRset(sigs.name, sigs.rdclass, sigs.rdtype, sigs.covers)
    out.update_ttl(sigs.ttl)
    for rrsig in sigs:
        signature = bytearray(rrsig.signature)
        signature[index] ^= 0x01
        out.add(rrsig.replace(signature=bytes(signature)))
    return out


def replace_rdata(sigs: dns.rrset.RRset, **changes: object) -> dns.rrset.RRset:
    """Every record of ``sigs`` with fields replaced."""
    out = dns.rrset.RRset(sigs.name, sigs.rdclass, sigs.rdtype, sigs.covers)
    out.update_ttl(sigs.ttl)
    for rdata in sigs:
        out.add(rdata.replace(**changes))
    return out
