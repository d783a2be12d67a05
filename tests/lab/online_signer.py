"""A small authoritative server that signs on the fly, as online signers answer: compact denial
(RFC 9824 "black lies" with NXNAME), NXDOMAIN restored with the compact NSEC, RFC 4470 NSEC
white lies and NSEC3 white lies (owner H-1, next H+1), plus broken twins of each.

What a non-existent name gets is chosen by its first label's prefix (``bl-``, ``blbad-``, ``nx-``,
``nxbad-``, ``wl-``, ``wlabs-``, ``wlbad-``), so one zone serves every shape, or by the zone's
``mode`` (one shape for every name: the differential harness serves generated zones so).
Existing names (empty non-terminals included) get a NODATA whose NSEC/NSEC3 spans only the name;
a CNAME is answered for any other type. Wildcards are expanded: with the wildcard's RRSIG labels
and a white lie covering the next closer name in the white-lie shapes (``wlbad``: a span that
misses it), signed as the name itself in the compact ones. No DNAMEs, no delegations."""

from __future__ import annotations

import base64
import logging
import socketserver
import threading
import time
from dataclasses import dataclass, field

import dns.dnssec
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from cryptography.hazmat.primitives.asymmetric import ec

logger = logging.getLogger(__name__)

TTL = 300
_MAX_CHASE = 8
"""CNAME steps followed inside one zone (the generator makes no loops)."""
HASH_SPACE = 1 << 160
SHAPES = ("bl", "blbad", "nx", "nxbad", "wl", "wlabs", "wlbad")
"""First-label prefixes of the non-existent names, one per answer shape."""


def _rrset(owner: dns.name.Name, rdtype: str, *texts: str) -> dns.rrset.RRset:
    return dns.rrset.from_text(owner, TTL, "IN", rdtype, *texts)


@dataclass
class OnlineZone:
    """One zone with a single CSK (ECDSA P-256), NSEC or NSEC3 (0 iterations, no salt)."""

    origin: dns.name.Name
    address: str
    nsec3: bool = False
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    data: dict[tuple[dns.name.Name, int], dns.rrset.RRset] = field(default_factory=dict)
    records: tuple[str, ...] | None = None
    """Zone-file lines ``owner TYPE rdata`` (owners relative to the origin) served besides
    SOA, NS and DNSKEY; ``None``: the lab's ``www A 192.0.2.1``."""
    mode: str = ""
    """Shape (one of `SHAPES`) of every non-existent name's answer; empty: by label prefix."""

    def __post_init__(self) -> None:
        o = self.origin
        ns = dns.name.from_text("ns", o)
        self.dnskey = dns.dnssec.make_dnskey(self.key.public_key(), 13, flags=257)
        records = [
            _rrset(o, "SOA", f"{ns} h.{o} 1 7200 3600 1209600 {TTL}"),
            _rrset(o, "NS", str(ns)),
            _rrset(ns, "A", self.address),
            dns.rrset.from_rdata(o, TTL, self.dnskey),
        ]
        if self.nsec3:
            records.append(_rrset(o, "NSEC3PARAM", "1 0 0 -"))
        self.data = {(r.name, r.rdtype): r for r in records}
        for line in self.records if self.records is not None else ("www A 192.0.2.1",):
            self._add(line)

    def _add(self, line: str) -> None:
        owner, rdtype, rdata = line.split(None, 2)
        name = dns.name.from_text(owner, self.origin)
        rdata_value = dns.rdata.from_text("IN", rdtype, rdata, self.origin, False)
        one = dns.rrset.from_rdata(name, TTL, rdata_value)
        key = (name, one.rdtype)
        if key in self.data:
            self.data[key].union_update(one)
        else:
            self.data[key] = one

    def ds_text(self) -> str:
        ds = dns.dnssec.make_ds(self.origin, self.dnskey, "SHA256")
        return f"{self.origin} 3600 IN DS {ds}\n"

    # --- signing ---------------------------------------------------------------------------

    def sign(self, rrset: dns.rrset.RRset) -> dns.rrset.RRset:
        now = int(time.time())
        rrsig = dns.dnssec.sign(rrset, self.key, self.origin, self.dnskey,
                                inception=now - 3600, expiration=now + 30 * 86_400)
        sigs = dns.rrset.RRset(rrset.name, rrset.rdclass, dns.rdatatype.RRSIG, rrset.rdtype)
        sigs.update_ttl(rrset.ttl)
        sigs.add(rrsig)
        return sigs

    def signed(self, *rrsets: dns.rrset.RRset) -> list[dns.rrset.RRset]:
        return [item for rrset in rrsets for item in (rrset, self.sign(rrset))]

    # --- names -----------------------------------------------------------------------------

    def types_at(self, name: dns.name.Name) -> list[str]:
        return sorted(dns.rdatatype.to_text(t) for n, t in self.data if n == name)

    def exists(self, name: dns.name.Name) -> bool:
        """A node with data or an empty non-terminal above one (RFC 5155 7.1)."""
        return any(n.is_subdomain(name) for n, _ in self.data)

    def closest_encloser(self, name: dns.name.Name) -> dns.name.Name:
        """The deepest existing ancestor of a non-existent *name* (RFC 5155 1.3)."""
        candidate = name.parent()
        while candidate != self.origin and not self.exists(candidate):
            candidate = candidate.parent()
        return candidate

    def nsec(self, owner: dns.name.Name, following: dns.name.Name,
             types: list[str]) -> dns.rrset.RRset:
        return _rrset(owner, "NSEC", f"{following} {' '.join([*types, 'RRSIG', 'NSEC'])}")

    def digest(self, name: dns.name.Name) -> int:
        return int.from_bytes(base64.b32hexdecode(dns.dnssec.nsec3_hash(name, None, 0, 1)), "big")

    def nsec3_record(self, owner_hash: int, next_hash: int, types: list[str]) -> dns.rrset.RRset:
        def text(value: int) -> str:
            return base64.b32hexencode((value % HASH_SPACE).to_bytes(20, "big")).decode()
        owner = dns.name.from_text(text(owner_hash).lower(), self.origin)
        bitmap = " ".join([*types, "RRSIG"]) if types else ""
        return _rrset(owner, "NSEC3", f"1 0 0 - {text(next_hash)} {bitmap}")

    # --- answers ---------------------------------------------------------------------------

    def answer(self, query: dns.message.Message) -> dns.message.Message:
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        if not question.name.is_subdomain(self.origin):
            response.set_rcode(dns.rcode.REFUSED)
            return response
        answer, rcode, authority = self.lookup(question.name, question.rdtype)
        response.answer, response.authority = answer, authority
        response.set_rcode(rcode)
        return response

    def lookup(
        self, qname: dns.name.Name, qtype: int
    ) -> tuple[list[dns.rrset.RRset], int, list[dns.rrset.RRset]]:
        """(answer, rcode, authority) for *qname*/*qtype*, CNAMEs followed inside the zone as
        an authoritative server does (RFC 1034 4.3.2 step 3a): a validator treats a CNAME
        answer whose in-zone target is left out as a NODATA for the target, without proof.
        A name that does not exist below a closest encloser with a wildcard is synthesised
        from it (RFC 4592 3.3.1), with the proof that no closer name exists (RFC 4035 3.1.3.3,
        RFC 5155 7.2.6) in the white-lie shapes, or signed as if the name owned it (what
        compact-denial signers do) in the others."""
        soa = self.data[(self.origin, dns.rdatatype.SOA)]
        answer: list[dns.rrset.RRset] = []
        proofs: list[dns.rrset.RRset] = []
        for _ in range(_MAX_CHASE):
            if not qname.is_subdomain(self.origin):
                break
            wildcard = self.wildcard_for(qname)
            source = wildcard or qname
            if wildcard is not None and self.proper_wildcards(qname):
                proofs += self.signed(*self.no_closer_match(qname))
            cname = self.data.get((source, dns.rdatatype.CNAME))
            if (source, qtype) in self.data:
                answer += self.synthesised(self.data[(source, qtype)], qname)
                return answer, dns.rcode.NOERROR, proofs
            if cname is None:
                if wildcard is not None:
                    nodata = self.wildcard_nodata(qname, wildcard, qtype)
                    return answer, dns.rcode.NOERROR, [*proofs, *self.signed(soa, *nodata)]
                if self.exists(qname):
                    return answer, dns.rcode.NOERROR, self.signed(soa, *self.nodata(qname))
                rcode, proof = self.denial(qname, qtype)
                return answer, rcode, [*proofs, *self.signed(soa, *proof)]
            answer += self.synthesised(cname, qname)
            qname = cname[0].target
        return answer, dns.rcode.NOERROR, proofs

    # --- wildcards (RFC 4592) --------------------------------------------------------------

    def wildcard_for(self, qname: dns.name.Name) -> dns.name.Name | None:
        """The wildcard ``*.<closest encloser>`` that *qname* is synthesised from, if any."""
        if self.exists(qname) or qname == self.origin:
            return None
        wildcard = dns.name.from_text("*", self.closest_encloser(qname))
        return wildcard if self.types_at(wildcard) else None

    def shape(self, qname: dns.name.Name) -> str:
        return self.mode or qname.labels[0].split(b"-")[0].decode("ascii", "replace")

    def proper_wildcards(self, qname: dns.name.Name) -> bool:
        """White-lie shapes expand wildcards as RFC 4035 5.3.4 expects (RRSIG labels of the
        wildcard, a proof of no closer match); compact shapes sign the name directly."""
        return self.nsec3 or self.shape(qname) in ("wl", "wlabs", "wlbad")

    def synthesised(self, rrset: dns.rrset.RRset, qname: dns.name.Name) -> list[dns.rrset.RRset]:
        """*rrset* and its RRSIG at *qname* (the RRset itself when *qname* owns it)."""
        if rrset.name == qname:
            return self.signed(rrset)
        copy = dns.rrset.RRset(qname, rrset.rdclass, rrset.rdtype)
        copy.update(rrset)
        copy.update_ttl(rrset.ttl)
        if not self.proper_wildcards(qname):
            return self.signed(copy)
        sigs = self.sign(rrset)  # labels: the wildcard's owner minus "*" (RFC 4034 3.1.3)
        moved = dns.rrset.RRset(qname, sigs.rdclass, sigs.rdtype, sigs.covers)
        moved.update(sigs)
        moved.update_ttl(sigs.ttl)
        return [copy, moved]

    def no_closer_match(self, qname: dns.name.Name) -> list[dns.rrset.RRset]:
        """The span covering the next closer name (``wlbad``: a neighbour's, missing it)."""
        closer = self.next_closer(qname)
        broken = self.shape(qname) == "wlbad"
        if self.nsec3:
            digest = self.digest(closer) + (2 if broken else 0)
            return [self.nsec3_record(digest - 1, digest + 1, [])]
        if broken:
            closer = self.neighbour(closer)
        following = _successor(closer) if self.shape(qname) == "wlabs" else None
        return self.white_lies(closer, following)[:1]

    def wildcard_nodata(self, qname: dns.name.Name, wildcard: dns.name.Name,
                        qtype: int) -> list[dns.rrset.RRset]:
        """NODATA at a wildcard-synthesised name: RFC 4035 3.1.3.4 / RFC 5155 7.2.5 for the
        white-lie shapes (the no-closer-match span is added by ``lookup``), a black-lie NSEC
        owned by the name with the wildcard's types for the compact ones (``*bad``: the type
        asked listed too)."""
        types = self.types_at(wildcard)
        if self.nsec3:
            closest = wildcard.parent()
            match = self.digest(closest)
            wild = self.digest(wildcard)
            at_closest = self.types_at(closest)
            if closest == self.origin and "NSEC3PARAM" not in at_closest:
                at_closest.append("NSEC3PARAM")
            return [self.nsec3_record(match, match + 1, at_closest),
                    self.nsec3_record(wild, wild + 1, types)]
        if self.proper_wildcards(qname):
            return [self.nsec(wildcard, _successor(wildcard), types)]
        if self.shape(qname).endswith("bad"):
            types = [*types, dns.rdatatype.to_text(qtype)]
        return [self.nsec(qname, _successor(qname), types)]

    def nodata(self, qname: dns.name.Name) -> list[dns.rrset.RRset]:
        types = self.types_at(qname)
        if self.nsec3:
            digest = self.digest(qname)
            return [self.nsec3_record(digest, digest + 1, types)]
        return [self.nsec(qname, _successor(qname), types)]

    def denial(self, qname: dns.name.Name, qtype: int) -> tuple[int, list[dns.rrset.RRset]]:
        shape = self.shape(qname)
        typed = [dns.rdatatype.to_text(qtype)]
        if self.nsec3:
            return dns.rcode.NXDOMAIN, self.nsec3_white_lies(qname, 2 if shape == "wlbad" else 0)
        closer = self.next_closer(qname)
        if shape == "bl":  # RFC 9824 3: black lie, NOERROR, NXNAME
            return dns.rcode.NOERROR, [self.nsec(qname, _successor(qname), ["NXNAME"])]
        if shape == "blbad":
            return dns.rcode.NOERROR, [self.nsec(qname, _successor(qname), [*typed, "NXNAME"])]
        if shape == "nx":  # RFC 9824 4: NXDOMAIN restored, the same NSEC
            return dns.rcode.NXDOMAIN, [self.nsec(qname, _successor(qname), ["NXNAME"])]
        if shape == "nxbad":
            return dns.rcode.NXDOMAIN, [self.nsec(qname, _successor(qname), [*typed, "NXNAME"])]
        if shape == "wlabs":  # RFC 4471 absolute method: the next name is \000.qname
            return dns.rcode.NXDOMAIN, self.white_lies(closer, _successor(closer))
        if shape == "wlbad":  # the span made for a neighbour that does not cover qname
            return dns.rcode.NXDOMAIN, self.white_lies(self.neighbour(closer))
        return dns.rcode.NXDOMAIN, self.white_lies(closer)

    @staticmethod
    def neighbour(name: dns.name.Name) -> dns.name.Name:
        """*name* with the last octet of its first label raised by one (a span made for it
        misses *name*)."""
        label = name.labels[0]
        return dns.name.Name((label[:-1] + bytes([label[-1] + 1]), *name.labels[1:]))

    def next_closer(self, qname: dns.name.Name) -> dns.name.Name:
        """The name one label below the closest encloser on the way to *qname* (RFC 5155 1.3)."""
        closest = self.closest_encloser(qname)
        return dns.name.Name(qname.labels[-len(closest) - 1 :])

    def white_lies(self, closer: dns.name.Name,
                   following: dns.name.Name | None = None) -> list[dns.rrset.RRset]:
        """RFC 4470 3 with RFC 4471's modified method around the next closer name (which covers
        every name below it): predecessor ``(label-1)\\255``, successor ``label\\000``; the
        wildcard at the closest encloser from ``\\)`` to ``\\000.*``."""
        label, rest = closer.labels[0], closer.labels[1:]
        before = dns.name.Name((label[:-1] + bytes([label[-1] - 1]) + b"\xff", *rest))
        after = following or dns.name.Name((label + b"\x00", *rest))
        encloser = closer.parent()
        wildcard = dns.name.from_text("*", encloser)
        return [self.nsec(before, after, []),
                self.nsec(dns.name.from_text("\\)", encloser), _successor(wildcard), [])]

    def nsec3_white_lies(self, qname: dns.name.Name, shift: int) -> list[dns.rrset.RRset]:
        """RFC 5155 7.2.2 made on the fly: the closest encloser matched, the next closer and
        the wildcard covered by spans H-1..H+1 (``shift`` breaks the cover)."""
        closest = self.closest_encloser(qname)
        encloser = self.digest(closest)
        closer = self.digest(self.next_closer(qname)) + shift
        wild = self.digest(dns.name.from_text("*", closest))
        types = self.types_at(closest)
        if closest == self.origin and "NSEC3PARAM" not in types:
            types.append("NSEC3PARAM")
        return [self.nsec3_record(encloser, encloser + 1, types),
                self.nsec3_record(closer - 1, closer + 1, []),
                self.nsec3_record(wild - 1, wild + 1, [])]


def _successor(name: dns.name.Name) -> dns.name.Name:
    return dns.name.Name((b"\x00", *name.labels))


class _Handler(socketserver.BaseRequestHandler):
    server: OnlineServer

    def handle(self) -> None:
        data, sock = self.request
        try:
            query = dns.message.from_wire(data)
        except Exception:  # a lab server: drop what it cannot parse
            logger.exception("unparsable query")
            return
        zone = self.server.zone_for(query.question[0].name) if query.question else None
        if zone is None:
            response = dns.message.make_response(query)
            response.set_rcode(dns.rcode.REFUSED)
        else:
            response = zone.answer(query)
        sock.sendto(response.to_wire(max_size=65535), self.client_address)


class OnlineServer(socketserver.ThreadingUDPServer):
    """The online signer on one UDP address, port 53, in a background thread."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: str, zones: list[OnlineZone]) -> None:
        self.zones = zones
        super().__init__((address, 53), _Handler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    def zone_for(self, name: dns.name.Name) -> OnlineZone | None:
        found = [z for z in self.zones if name.is_subdomain(z.origin)]
        return max(found, key=lambda z: len(z.origin), default=None)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self.thread.join(timeout=5)
