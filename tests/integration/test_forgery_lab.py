"""Forgery detection on real BIND/Unbound traffic: attacks built with scapy on top of genuine
responses captured from the lab, and a clean capture that must raise no forged finding."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdatatype
import dns.rrset
import pytest
from click.testing import CliRunner
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.packet import Packet, Raw
from scapy.utils import rdpcap, wrpcap

from auditor.cli import cli
from tests.lab import Lab

pytestmark = pytest.mark.integration

FORGED_A = "6.6.6.6"


@dataclass
class Exchange:
    """A genuine query packet and its genuine UDP response packet in the capture."""

    query: Packet
    response: Packet

    @property
    def message(self) -> dns.message.Message:
        return dns.message.from_wire(bytes(self.response[UDP].payload))


@dataclass
class Attack:
    """Packets of one capture with the injected/modified ones tagged."""

    packets: list[Packet]
    injected: dict[int, str] = field(default_factory=dict)
    """id(packet) -> attack name."""

    def inject(self, packet: Packet, name: str) -> Packet:
        self.packets.append(packet)
        self.injected[id(packet)] = name
        return packet

    def replace(self, old: Packet, new: Packet, name: str) -> Packet:
        self.packets[next(i for i, p in enumerate(self.packets) if p is old)] = new
        self.injected[id(new)] = name
        return new

    def write(self, path: Path) -> dict[int, str]:
        """Write in time order; return frame number -> attack name."""
        ordered = sorted(self.packets, key=lambda p: float(p.time))
        wrpcap(str(path), ordered)
        return {n + 1: self.injected[id(p)] for n, p in enumerate(ordered)
                if id(p) in self.injected}


def _dns(packet: Packet) -> dns.message.Message | None:
    if UDP not in packet or 53 not in (packet[UDP].sport, packet[UDP].dport):
        return None
    try:
        return dns.message.from_wire(bytes(packet[UDP].payload))
    except Exception:
        return None


def _find(packets: list[Packet], qname: str, rdtype: str, src: str, dst: str) -> Exchange:
    """The first UDP exchange src->dst for the question (query then its response)."""
    wanted = (dns.name.from_text(qname), dns.rdatatype.from_text(rdtype))
    for n, packet in enumerate(packets):
        message = _dns(packet)
        if message is None or message.flags & dns.flags.QR or packet[IP].src != src:
            continue
        if packet[IP].dst != dst or (message.question[0].name, message.question[0].rdtype) \
                != wanted:
            continue
        for later in packets[n + 1:]:
            answer = _dns(later)
            if (answer is not None and answer.flags & dns.flags.QR and answer.id == message.id
                    and later[IP].src == dst and later[UDP].dport == packet[UDP].sport):
                return Exchange(packet, later)
    raise AssertionError(f"no captured exchange {qname} {rdtype} {src} -> {dst}")


def _with_payload(template: Packet, message: dns.message.Message, at: float,
                  **ip: object) -> Packet:
    packet = copy.deepcopy(template)
    packet[UDP].remove_payload()
    packet[UDP].add_payload(Raw(message.to_wire()))
    del packet[UDP].len, packet[UDP].chksum, packet[IP].len, packet[IP].chksum
    for key, value in ip.items():
        setattr(packet[IP], key, value)
    packet = packet.__class__(bytes(packet))
    packet.time = at
    return packet


def _strip_rrsigs(message: dns.message.Message) -> dns.message.Message:
    stripped = copy.deepcopy(message)
    for section in (stripped.answer, stripped.authority, stripped.additional):
        section[:] = [r for r in section if r.rdtype != dns.rdatatype.RRSIG]
    return stripped


def _audit(lab: Lab, pcap: Path, out: Path) -> tuple[list[dict], list[dict]]:
    result = CliRunner().invoke(cli, ["audit", str(pcap), "--out", str(out), "-q",
                                      "--trust-anchor", str(lab.trust_anchor_file),
                                      "--evidence", str(out / "evidence.pcapng")])
    assert result.exit_code in (0, 1), result.output
    findings = [json.loads(line) for line in (out / "findings.jsonl").read_text().splitlines()]
    responses = [json.loads(line) for line in (out / "responses.jsonl").read_text().splitlines()]
    forgery = [f for f in findings if f.get("verdict") in ("forged", "suspicious")]
    return forgery, responses


_CHAIN = ((".", "DNSKEY"), ("test.", "DS"), ("test.", "DNSKEY"), ("sec.test.", "DS"),
          ("ecdsa.test.", "DS"), ("ed.test.", "DS"), ("p384.test.", "DS"),
          ("insecure.test.", "DS"), ("cname.test.", "DS"), ("nsec3.test.", "DS"))


def _chain_of_trust(lab: Lab) -> None:
    """What a validator fetches first: root keys, then DS and DNSKEY down the tree."""
    for qname, rdtype in _CHAIN:
        lab.query_authoritative(qname, rdtype)
    for zone in ("sec.test.", "ecdsa.test.", "ed.test.", "p384.test.", "cname.test.",
                 "nsec3.test."):
        lab.query_authoritative(zone, "DNSKEY")


def _genuine_traffic(lab: Lab, path: Path) -> list[Packet]:
    leaf, tld = lab.addresses.servers.leaf, lab.addresses.servers.tld
    with lab.capture(path):
        _chain_of_trust(lab)
        for qname, rdtype in (("www.sec.test.", "A"), ("www.ecdsa.test.", "A"),
                              ("www.insecure.test.", "A"), ("sec.test.", "DNSKEY"),
                              ("www.ed.test.", "A"), ("www.p384.test.", "A"),
                              ("mail.sec.test.", "MX"), ("www.sec.test.", "AAAA")):
            lab.query_authoritative(qname, rdtype)
        lab.query_authoritative("www.sec.test.", "A", server=tld)
        lab.flush_resolver()
        lab.query_resolver("www.ed.test.", "A")
    assert leaf
    return list(rdpcap(str(path)))


@pytest.fixture(scope="module")
def attacked(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
        tuple[list[dict], dict[int, str], list[dict]]]:
    """One capture of genuine lab traffic with seven attacks built on it, audited."""
    base = tmp_path_factory.mktemp("forgery")
    packets = _genuine_traffic(lab, base / "genuine.pcap")
    client, resolver = lab.addresses.client, lab.addresses.resolver
    leaf, tld = lab.addresses.servers.leaf, lab.addresses.servers.tld
    attack = Attack(list(packets))

    # 1. right-ID forged unsigned answer racing the genuine signed one
    race = _find(packets, "www.sec.test.", "A", client, leaf)
    forged = _strip_rrsigs(race.message)
    forged.answer[0] = dns.rrset.from_text("www.sec.test.", 300, "IN", "A", FORGED_A)
    t_q, t_r = float(race.query.time), float(race.response.time)
    attack.inject(_with_payload(race.response, forged, t_q + (t_r - t_q) / 2), "signed_race")

    # 2. wrong-ID burst before the genuine answer of another exchange
    burst = _find(packets, "www.p384.test.", "A", client, leaf)
    b_q, b_r = float(burst.query.time), float(burst.response.time)
    for n in range(15):
        fake = _strip_rrsigs(burst.message)
        fake.id = (burst.message.id + 1 + n * 997) % 65536
        fake.answer[0] = dns.rrset.from_text("www.p384.test.", 300, "IN", "A", FORGED_A)
        attack.inject(_with_payload(burst.response, fake, b_q + (b_r - b_q) * (n + 1) / 17),
                      "wrong_id_burst")

    # 3. forged NXDOMAIN for an existing name of a signed zone
    nx = _find(packets, "www.ecdsa.test.", "A", client, leaf)
    nxdomain = _strip_rrsigs(nx.message)
    nxdomain.set_rcode(dns.rcode.NXDOMAIN)
    nxdomain.answer.clear()
    nxdomain.authority[:] = [dns.rrset.from_text(
        "ecdsa.test.", 300, "IN", "SOA", "ns1.ecdsa.test. admin.ecdsa.test. 1 3600 600 86400 300")]
    nxdomain.additional.clear()
    n_q, n_r = float(nx.query.time), float(nx.response.time)
    attack.inject(_with_payload(nx.response, nxdomain, n_q + (n_r - n_q) / 2), "nxdomain")

    # 4. the resolver's AD answer, RRSIGs stripped on the way (AD kept)
    ad = _find(packets, "www.ed.test.", "A", client, resolver)
    assert ad.message.flags & dns.flags.AD
    attack.replace(ad.response, _with_payload(ad.response, _strip_rrsigs(ad.message),
                                              float(ad.response.time)), "ad_without_rrsig")

    # 5. forged answer in an unsigned zone: only the race shows it
    unsigned = _find(packets, "www.insecure.test.", "A", client, leaf)
    fake = copy.deepcopy(unsigned.message)
    fake.answer[0] = dns.rrset.from_text("www.insecure.test.", 300, "IN", "A", FORGED_A)
    u_q, u_r = float(unsigned.query.time), float(unsigned.response.time)
    attack.inject(_with_payload(unsigned.response, fake, u_q + (u_r - u_q) / 2), "unsigned_race")

    # 6. the test. referral for sec.test. carrying a delegation for an unrelated zone with its
    # glue (the Kaminsky payload, RFC 5452 6). An unreferenced additional A record alone is
    # discarded by every resolver (RFC 2181 5.4.1) and is only a low extraneous_records note.
    referral = _find(packets, "www.sec.test.", "A", client, tld)
    poisoned = copy.deepcopy(referral.message)
    poisoned.authority.append(dns.rrset.from_text("bank.example.", 86400, "IN", "NS",
                                                  "ns.bank.example."))
    poisoned.additional.append(dns.rrset.from_text("ns.bank.example.", 86400, "IN", "A",
                                                   FORGED_A))
    attack.replace(referral.response, _with_payload(referral.response, poisoned,
                                                    float(referral.response.time)), "bailiwick")

    # 7. a genuine answer re-sent with another IP TTL
    hop = _find(packets, "sec.test.", "DNSKEY", client, leaf)
    attack.replace(hop.response, _with_payload(hop.response, hop.message,
                                               float(hop.response.time), ttl=37), "ip_ttl")

    frames = attack.write(base / "attacked.pcap")
    forgery, responses = _audit(lab, base / "attacked.pcap", base / "out")
    yield forgery, frames, responses


def _codes_for(forgery: list[dict], frames: dict[int, str], name: str) -> dict[str, str]:
    wanted = {n for n, attack in frames.items() if attack == name}
    return {f["code"]: f["verdict"] for f in forgery if wanted & set(f["frames"])}


@pytest.mark.parametrize(("name", "code", "verdict"), [
    ("signed_race", "response_race", "forged"),
    ("signed_race", "rrsigs_stripped", "forged"),
    ("wrong_id_burst", "wrong_id_burst", "suspicious"),
    ("nxdomain", "denial_contradicts_validated", "forged"),
    ("nxdomain", "response_race", "forged"),
    ("ad_without_rrsig", "ad_on_unvalidated", "forged"),
    ("ad_without_rrsig", "rrsigs_stripped", "forged"),
    ("unsigned_race", "response_race", "suspicious"),
    ("bailiwick", "out_of_bailiwick_data", "suspicious"),
    ("ip_ttl", "hop_limit_anomaly", "suspicious"),
])
def test_each_attack_is_reported_with_its_code(
    attacked: tuple[list[dict], dict[int, str], list[dict]], name: str, code: str, verdict: str
) -> None:
    forgery, frames, _ = attacked
    assert _codes_for(forgery, frames, name).get(code) == verdict, [
        (f["code"], f["frames"]) for f in forgery]


def test_unsigned_race_has_no_proof_of_forgery(
    attacked: tuple[list[dict], dict[int, str], list[dict]]
) -> None:
    forgery, frames, _ = attacked
    assert set(_codes_for(forgery, frames, "unsigned_race").values()) == {"suspicious"}


def test_genuine_answers_raise_nothing(
    attacked: tuple[list[dict], dict[int, str], list[dict]]
) -> None:
    forgery, frames, responses = attacked
    for finding in forgery:
        suspects = finding["params"].get("suspect_frames") or finding["frames"]
        assert set(suspects) & set(frames), finding  # every finding points at an attack frame
    genuine = {r["frame"] for r in responses} - set(frames)
    blamed = {n for f in forgery for n in f["params"].get("suspect_frames", [])}
    assert not blamed & genuine


def test_clean_capture_raises_no_forged_finding(lab: Lab, tmp_path: Path) -> None:
    """Ordinary traffic: retransmissions, TC then TCP, two resolvers, TTL decay, no DO."""
    path = tmp_path / "clean.pcap"
    resolver = lab.addresses.resolver
    with lab.capture(path):
        _chain_of_trust(lab)
        lab.flush_resolver()
        for qname, rdtype in (("www.sec.test.", "A"), ("www.insecure.test.", "A"),
                              ("www.cname.test.", "A"), ("x.wild.sec.test.", "A"),
                              ("nonexistent.sec.test.", "A"), ("nsec3.test.", "DNSKEY"),
                              ("www.nsec3.test.", "A"), ("mail.sec.test.", "MX")):
            lab.query_resolver(qname, rdtype)
            lab.query_resolver(qname, rdtype, dnssec=False)
            lab.query_authoritative(qname, rdtype)
        lab.query_authoritative("big.test.", "DNSKEY")  # TC, then dig retries over TCP
        lab.query_resolver("big.test.", "DNSKEY", tcp=True)
        time.sleep(1.2)  # TTL decay at the resolver
        for qname in ("www.sec.test.", "www.insecure.test.", "www.ecdsa.test."):
            lab.query_resolver(qname, "A")
            if lab.resolver_ipv6:
                lab.query_resolver(qname, "A", ipv6=True)
    packets = list(rdpcap(str(path)))
    extra: list[Packet] = []
    second_resolver = "127.53.0.253"
    for n, packet in enumerate(packets):
        message = _dns(packet)
        if message is None or IPv6 in packet:
            continue
        gap = float(packets[n + 1].time) - float(packet.time) if n + 1 < len(packets) else 0.001
        if message.flags & dns.flags.QR and n % 3 == 0:
            extra.append(_with_payload(packet, message, float(packet.time) + 0.5))  # duplicate
        if not message.flags & dns.flags.QR and n % 4 == 0:
            extra.append(_with_payload(packet, message, float(packet.time) + gap / 2))  # retry
        if packet[IP].src == resolver and message.flags & dns.flags.QR:
            # A second resolver behind a load balancer: other addresses and decayed TTLs;
            # unsigned data may differ (another upstream address for the same name).
            other = copy.deepcopy(message)
            for rrset in other.answer:
                rrset.ttl = max(0, rrset.ttl - 7)
                if rrset.rdtype == dns.rdatatype.A and str(rrset.name).endswith("insecure.test."):
                    rrset.clear()
                    rrset.add(dns.rdata.from_text("IN", "A", "192.0.2.99"))
            query = next(p for p in reversed(packets[:n]) if _dns(p) is not None
                         and not _dns(p).flags & dns.flags.QR and _dns(p).id == message.id)
            extra.append(_with_payload(query, _dns(query), float(query.time) + 2.0,
                                       dst=second_resolver))
            extra.append(_with_payload(packet, other, float(packet.time) + 2.0,
                                       src=second_resolver))
    wrpcap(str(tmp_path / "clean-variety.pcap"),
           sorted(packets + extra, key=lambda p: float(p.time)))
    forgery, responses = _audit(lab, tmp_path / "clean-variety.pcap", tmp_path / "out")
    forged = [f for f in forgery if f["verdict"] == "forged"]
    suspicious = [f for f in forgery if f["verdict"] == "suspicious"]
    rate = len(forgery) / len(responses)
    print(f"clean capture: {len(responses)} responses, {len(forged)} forged, "
          f"{len(suspicious)} suspicious findings, false-positive rate {rate:.4f}")
    (tmp_path / "out" / "fp.json").write_text(json.dumps(
        {"responses": len(responses), "forged": len(forged), "suspicious": len(suspicious),
         "codes": sorted({f["code"] for f in forgery})}))
    assert len(responses) > 60
    assert forged == [], [(f["code"], f["message"]) for f in forged]
    assert suspicious == [], [(f["code"], f["message"]) for f in suspicious]
