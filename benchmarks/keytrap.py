"""KeyTrap (CVE-2023-50387) and NSEC3 hash (CVE-2023-50868) captures, audited end to end.

Builds a private root (Ed25519) delegating to an attacker zone, writes classic pcaps of
resolver-to-authority exchanges and runs ``dnssec-auditor audit`` on each, printing the wall
time per response and the verdicts and codes:

- ``keytrap``: the zone publishes 200 DNSKEYs sharing its ZSK's key tag (crafted rdata), and
  each of 50 answers carries 200 RRSIGs naming that tag, none valid.
- ``keytrap-legit``: negative twin, two keys share a tag, every answer validly signed.
- ``nsec3-100`` / ``nsec3-2500``: 50 NXDOMAIN answers for 30-label names (no label shared
  between answers, so no hash is reused), each with one
  validly signed NSEC3 RRset of 400 records with distinct salts at 100 (default policy) or
  2,500 iterations (``--policy permissive``).

    .venv/bin/python benchmarks/keytrap.py [--responses 50] [--timeout 300] [--keep DIR]
    PYTHONPATH=/path/to/old/tree .venv/bin/python benchmarks/keytrap.py   # "before" figures
"""

from __future__ import annotations

import argparse
import base64
import collections
import hashlib
import json
import os
import random
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dns.dnssec
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.DNSKEY
import dns.rdtypes.ANY.RRSIG
import dns.rrset
from cryptography.hazmat.primitives.asymmetric import ed25519

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_capture import (  # noqa: E402
    PCAP_HEADER,
    ethernet_frame,
    ipv4_packet,
    udp_datagram,
)

T0 = 1_700_000_000
INCEPTION, EXPIRATION = T0 - 86_400, T0 + 30 * 86_400
RESOLVER, AUTHORITY = bytes([192, 0, 2, 53]), bytes([198, 51, 100, 1])
MAC_A, MAC_B = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")
DNSKEY = dns.rdtypes.ANY.DNSKEY.DNSKEY
RRSIG = dns.rdtypes.ANY.RRSIG.RRSIG


class Zone:
    """A zone with a deterministic Ed25519 KSK and ZSK."""

    def __init__(self, origin: str, seed: str) -> None:
        self.origin = dns.name.from_text(origin)
        self.ksk_priv = ed25519.Ed25519PrivateKey.from_private_bytes(
            hashlib.sha256(f"{seed}/ksk".encode()).digest())
        self.zsk_priv = ed25519.Ed25519PrivateKey.from_private_bytes(
            hashlib.sha256(f"{seed}/zsk".encode()).digest())
        self.ksk = dns.dnssec.make_dnskey(self.ksk_priv.public_key(), 15, flags=257)
        self.zsk = dns.dnssec.make_dnskey(self.zsk_priv.public_key(), 15, flags=256)
        self.extra: list[DNSKEY] = []

    def keys(self) -> dns.rrset.RRset:
        out = dns.rrset.RRset(self.origin, dns.rdataclass.IN, dns.rdatatype.DNSKEY)
        out.update_ttl(3600)
        for key in (self.ksk, self.zsk, *self.extra):
            out.add(key)
        return out

    def sign(self, rrset: dns.rrset.RRset) -> dns.rrset.RRset:
        ksk = rrset.rdtype == dns.rdatatype.DNSKEY
        rrsig = dns.dnssec.sign(rrset, self.ksk_priv if ksk else self.zsk_priv, self.origin,
                                self.ksk if ksk else self.zsk, inception=INCEPTION,
                                expiration=EXPIRATION)
        return sigs_of(rrset, [rrsig])

    def ds(self) -> dns.rrset.RRset:
        return dns.rrset.from_rdata(self.origin, 3600,
                                    dns.dnssec.make_ds(self.origin, self.ksk, "SHA256"))


def sigs_of(rrset: dns.rrset.RRset, rrsigs: list[RRSIG]) -> dns.rrset.RRset:
    out = dns.rrset.RRset(rrset.name, rrset.rdclass, dns.rdatatype.RRSIG, rrset.rdtype)
    out.update_ttl(rrset.ttl)
    for rrsig in rrsigs:
        out.add(rrsig)
    return out


def colliding_key(tag: int, rng: random.Random) -> DNSKEY:
    """A zone key whose crafted last two octets give it key tag ``tag`` (RFC 4034 App. B)."""
    while True:
        body = rng.randbytes(30)
        partial = dns.dnssec.key_id(DNSKEY(1, 48, 256, 3, 15, body + b"\0\0"))
        key = DNSKEY(1, 48, 256, 3, 15, body + ((tag - partial) % 65536).to_bytes(2, "big"))
        if dns.dnssec.key_id(key) == tag:
            return key


def fake_sigs(rrset: dns.rrset.RRset, zone: Zone, tag: int, count: int,
              rng: random.Random) -> dns.rrset.RRset:
    return sigs_of(rrset, [RRSIG(1, 46, rrset.rdtype, 15, len(rrset.name) - 1, rrset.ttl,
                                 EXPIRATION, INCEPTION, tag, zone.origin, rng.randbytes(64))
                           for _ in range(count)])


class Writer:
    """Query/response pairs as Ethernet/IPv4/UDP frames in a classic pcap."""

    def __init__(self) -> None:
        self.frames: list[tuple[int, bytes]] = []
        self.ts_us = T0 * 1_000_000
        self.port = 20000

    def exchange(self, qname: str, qtype: str, answer: list[dns.rrset.RRset] = (),  # type: ignore[assignment]
                 authority: list[dns.rrset.RRset] = (),  # type: ignore[assignment]
                 rcode: int = 0) -> None:
        query = dns.message.make_query(qname, qtype, want_dnssec=True)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        response.answer, response.authority = list(answer), list(authority)
        response.set_rcode(dns.rcode.Rcode.make(rcode))
        self.port += 1
        for src, dst, sport, dport, message in (
                (RESOLVER, AUTHORITY, self.port, 53, query),
                (AUTHORITY, RESOLVER, 53, self.port, response)):
            wire = message.to_wire(max_size=65535)
            packet = ipv4_packet(src, dst, 17, udp_datagram(src, dst, sport, dport, wire),
                                 64, self.port & 0xFFFF, 0)
            self.ts_us += 1000
            self.frames.append((self.ts_us, ethernet_frame(MAC_A, MAC_B, 0x0800, packet)))

    def write(self, path: Path) -> None:
        with path.open("wb") as out:
            out.write(PCAP_HEADER)
            for ts_us, frame in self.frames:
                out.write(struct.pack("<IIII", ts_us // 1_000_000, ts_us % 1_000_000,
                                      len(frame), len(frame)))
                out.write(frame)


def hierarchy(child: Zone) -> tuple[Writer, Zone]:
    root = Zone(".", "root")
    writer = Writer()
    for zone in (root, child):
        keys = zone.keys()
        writer.exchange(zone.origin.to_text(), "DNSKEY", [keys, zone.sign(keys)])
    ds = child.ds()
    writer.exchange(child.origin.to_text(), "DS", [ds, root.sign(ds)])
    return writer, root


def keytrap(responses: int, keys: int, sigs: int, *, legit: bool) -> Writer:
    rng = random.Random(1)
    zone = Zone("trap.", "trap")
    tag = dns.dnssec.key_id(zone.zsk)
    zone.extra = [colliding_key(tag, rng) for _ in range(1 if legit else keys)]
    writer, _ = hierarchy(zone)
    for index in range(responses):
        qname = f"w{index}.trap."
        data = dns.rrset.from_text(qname, 300, "IN", "A", "192.0.2.1")
        rrsigs = zone.sign(data) if legit else fake_sigs(data, zone, tag, sigs, rng)
        writer.exchange(qname, "A", [data, rrsigs])
    return writer


def nsec3(responses: int, records: int, iterations: int, depth: int) -> Writer:
    rng = random.Random(2)
    zone = Zone("n3.", "n3")
    writer, _ = hierarchy(zone)
    soa = dns.rrset.from_text("n3.", 300, "IN", "SOA", "ns.n3. h.n3. 1 7200 3600 1209600 300")
    owner = base64.b32hexencode(rng.randbytes(20)).decode().lower() + ".n3."
    texts = [f"1 0 {iterations} {rng.randbytes(8).hex()} "
             f"{base64.b32hexencode(rng.randbytes(20)).decode()} A RRSIG"
             for _ in range(records)]
    flood = dns.rrset.from_text(owner, 300, "IN", "NSEC3", *texts)
    authority = [soa, zone.sign(soa), flood, zone.sign(flood)]
    for index in range(responses):
        # Every label differs between responses: no hash is reused from an earlier one.
        qname = ".".join(f"l{i}r{index}" for i in range(depth)) + ".n3."
        writer.exchange(qname, "A", authority=authority, rcode=dns.rcode.NXDOMAIN)
    return writer


def audit(capture: Path, anchor: Path, out: Path, policy: str, timeout: int) -> dict[str, object]:
    command = [sys.executable, "-c", "import sys; from auditor.cli import main; main()",
               "audit", str(capture), "--trust-anchor", str(anchor), "--out", str(out),
               "--quiet", "--keys", str(out / "keys.sqlite"), "--policy", policy, "--jobs", "1"]
    start = time.perf_counter()
    try:
        subprocess.run(command, capture_output=True, timeout=timeout, check=False,
                       env={**os.environ, "PYTHONWARNINGS": "ignore"})
    except subprocess.TimeoutExpired:
        return {"seconds": time.perf_counter() - start, "timeout": True}
    seconds = time.perf_counter() - start
    rows = [json.loads(line) for line in (out / "responses.jsonl").read_text().splitlines()]
    findings = [json.loads(line) for line in (out / "findings.jsonl").read_text().splitlines()]
    return {"seconds": seconds, "timeout": False, "rows": rows,
            "budget_findings": [(f["code"], f.get("severity"), f.get("verdict"),
                                 f["params"].get("zone"), f["params"].get("server"))
                                for f in findings if f.get("code") == "validation_budget_exceeded"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--responses", type=int, default=50)
    parser.add_argument("--timeout", type=int, default=300)
    parser.add_argument("--keep", type=Path, help="write captures and reports here")
    parser.add_argument("--only", nargs="*", help="cases to run")
    args = parser.parse_args(argv)
    n = args.responses
    cases = {
        "keytrap": (lambda: keytrap(n, 200, 200, legit=False), "rfc8624"),
        "keytrap-legit": (lambda: keytrap(n, 200, 200, legit=True), "rfc8624"),
        "nsec3-100": (lambda: nsec3(n, 400, 100, 30), "rfc8624"),
        "nsec3-2500": (lambda: nsec3(n, 400, 2500, 30), "permissive"),
    }
    base = args.keep or Path(tempfile.mkdtemp(prefix="keytrap-"))
    base.mkdir(parents=True, exist_ok=True)
    root = Zone(".", "root")
    anchor = base / "root.anchor"
    anchor.write_text(f". IN DS {root.ds()[0].to_text()}\n")
    for case, (build, policy) in cases.items():
        if args.only and case not in args.only:
            continue
        capture = base / f"{case}.pcap"
        build().write(capture)
        out = base / case
        out.mkdir(exist_ok=True)
        result = audit(capture, anchor, out, policy, args.timeout)
        if result["timeout"]:
            print(f"{case:14} policy={policy:10} TIMEOUT after {result['seconds']:.0f} s "
                  f"(> {result['seconds'] / n * 1000:.0f} ms per attack response)")
            continue
        rows = [r for r in result["rows"] if r["qtype"] in ("A",)]  # type: ignore[union-attr]
        verdicts = collections.Counter(r["verdict"] for r in rows)
        codes = collections.Counter(c for r in rows for c in r["codes"])
        print(f"{case:14} policy={policy:10} {result['seconds']:.2f} s for {len(rows)} "
              f"responses ({result['seconds'] / max(1, len(rows)) * 1000:.1f} ms per response, "
              f"process start and key material included) verdicts={dict(verdicts)} "
              f"codes={dict(codes.most_common(4))}")
        for finding in result["budget_findings"]:  # type: ignore[union-attr]
            print(f"{'':14} finding {finding}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
