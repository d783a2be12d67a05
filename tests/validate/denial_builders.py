"""Test builders for denial proofs: signed NSEC and NSEC3 chains of a small example.test. zone
and the negative responses an authoritative server would send from them (RFC 5155 7.2)."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field

import dns.dnssec
import dns.name
import dns.rcode
import dns.rrset

from auditor.evidence import ResponseEvidence
from auditor.validate import Verdict
from tests.validate.signing import Lab, Zone, name, respond, rrset

ZONE = "example.test."
SOA_TEXT = "ns.example.test. h.example.test. 1 7200 3600 1209600 300"

# The example.test. zone: owner -> types present. c. and w. are empty non-terminals;
# d. is an unsigned delegation; *.w. is a wildcard.
NAMES: dict[str, str] = {
    "example.test.": "NS SOA RRSIG NSEC DNSKEY",
    "a.example.test.": "A RRSIG NSEC",
    "b.c.example.test.": "A RRSIG NSEC",
    "d.example.test.": "NS RRSIG NSEC",
    "*.w.example.test.": "A RRSIG NSEC",
    "z.example.test.": "A RRSIG NSEC",
}
EMPTY_NON_TERMINALS = ("c.example.test.", "w.example.test.")


def soa(zone: Zone) -> list[dns.rrset.RRset]:
    """The signed SOA of example.test."""
    record = rrset(ZONE, "SOA", SOA_TEXT)
    return [record, zone.sign(record)]


@dataclass
class NsecChain:
    """The NSEC chain of example.test., every record signed by ``zone``."""

    zone: Zone
    types: dict[str, str] = field(default_factory=lambda: dict(NAMES))

    def owners(self) -> list[dns.name.Name]:
        return sorted(name(owner) for owner in self.types)

    def record(self, owner: str, types: str | None = None,
               next_name: str | None = None) -> list[dns.rrset.RRset]:
        """The signed NSEC at ``owner`` (optionally with another bitmap or next name)."""
        owners = self.owners()
        index = owners.index(name(owner))
        following = next_name or owners[(index + 1) % len(owners)].to_text()
        bitmap = self.types[owner] if types is None else types
        nsec = rrset(owner, "NSEC", f"{following} {bitmap}")
        return [nsec, self.zone.sign(nsec)]


@dataclass
class Nsec3Chain:
    """The NSEC3 chain of example.test. (RFC 5155 7.1: empty non-terminals get records,
    delegations too), every record signed by ``zone``."""

    zone: Zone
    salt: str = ""
    iterations: int = 0
    opt_out: bool = False
    algorithm: int = 1
    types: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.types:
            self.types = {owner: bitmap.replace("NSEC", "").replace("DNSKEY", "DNSKEY NSEC3PARAM")
                          for owner, bitmap in NAMES.items()}
            self.types.update(dict.fromkeys(EMPTY_NON_TERMINALS, ""))
            if self.opt_out:
                # RFC 5155 7.1: opt-out leaves insecure delegations out of the chain.
                del self.types["d.example.test."]

    def digest(self, owner: str | dns.name.Name) -> bytes:
        text = dns.dnssec.nsec3_hash(owner, self.salt or None, self.iterations, 1)
        return base64.b32hexdecode(text)

    def ring(self) -> list[tuple[bytes, str]]:
        return sorted((self.digest(owner), owner) for owner in self.types)

    def _salt_text(self) -> str:
        return self.salt or "-"

    def record_for_hash(self, owner_hash: bytes, types: str,
                        next_hash: bytes | None = None, *, zone: Zone | None = None,
                        flags: int | None = None) -> list[dns.rrset.RRset]:
        ring = self.ring()
        hashes = [h for h, _ in ring]
        if next_hash is None:
            following = [h for h in hashes if h > owner_hash]
            next_hash = following[0] if following else hashes[0]
        owner = base64.b32hexencode(owner_hash).decode().lower() + "." + ZONE
        flag = (1 if self.opt_out else 0) if flags is None else flags
        nsec3 = rrset(owner, "NSEC3",
                      f"{self.algorithm} {flag} {self.iterations} {self._salt_text()} "
                      f"{base64.b32hexencode(next_hash).decode()} {types}")
        return [nsec3, (zone or self.zone).sign(nsec3)]

    def match(self, owner: str, types: str | None = None) -> list[dns.rrset.RRset]:
        """The signed NSEC3 whose owner hash is H(owner)."""
        bitmap = self.types[owner] if types is None else types
        return self.record_for_hash(self.digest(owner), bitmap)

    def cover(self, target: str) -> list[dns.rrset.RRset]:
        """The signed NSEC3 whose span covers H(target)."""
        wanted = self.digest(target)
        ring = self.ring()
        previous = [item for item in ring if item[0] < wanted]
        owner_hash, owner = previous[-1] if previous else ring[-1]
        assert owner_hash != wanted, f"{target} exists"
        return self.record_for_hash(owner_hash, self.types[owner])


@dataclass
class DenialLab:
    """The Lab hierarchy plus helpers to judge negative responses."""

    lab: Lab = field(default_factory=Lab)

    @property
    def zone(self) -> Zone:
        return self.lab.leaf

    def judge(self, response: ResponseEvidence, **kwargs: object) -> Verdict:
        return self.lab.validator(**kwargs).judge(response)  # type: ignore[arg-type]

    def nxdomain(self, qname: str, proof: Sequence[dns.rrset.RRset], qtype: str = "A",
                 **kwargs: object) -> ResponseEvidence:
        return respond(qname, qtype, authority=[*soa(self.zone), *proof],
                       rcode=dns.rcode.NXDOMAIN, **kwargs)  # type: ignore[arg-type]

    def nodata(self, qname: str, qtype: str, proof: Sequence[dns.rrset.RRset],
               **kwargs: object) -> ResponseEvidence:
        return respond(qname, qtype, authority=[*soa(self.zone), *proof],
                       **kwargs)  # type: ignore[arg-type]
