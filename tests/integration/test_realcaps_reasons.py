"""Issue 11 points 1-4 on real captures: anchors in time, the true reason of an indeterminate
answer, the closest known zone, key material seen only without signatures."""

from __future__ import annotations

import json
from pathlib import Path

import dns.dnssec
import dns.name
from click.testing import CliRunner

from auditor.cli import cli
from auditor.trust import parse_anchor_text
from tests.realcaps import realcap


def _responses(capture: Path, out: Path, *extra: str) -> list[dict]:
    result = CliRunner().invoke(cli, ["audit", str(capture), "--out", str(out), "-q", *extra])
    assert result.exit_code in (0, 4), result.output
    return [json.loads(line) for line in (out / "responses.jsonl").read_text().splitlines()]


def test_a_2017_answer_names_the_root_keys_in_force_then(tmp_path: Path) -> None:
    # sns-pb.isc.org with DO, 2017-06-02, no root DNSKEY in the capture: the missing root key
    # is one of the anchors of that day (KSK-2010 19036, KSK-2017 20326), never KSK-2024.
    [answer] = _responses(realcap("kprobe/sns-pb.isc.org-dnssec.pcap"), tmp_path / "o")
    assert answer["ts"].startswith("2017-06-02")
    assert answer["verdict"] == "indeterminate" and answer["zone"] == "isc.org."
    text = " ".join(answer["missing"])
    assert "19036" in text and "20326" in text and "38696" not in text
    assert answer["missing"][0] == "DS for isc.org. not seen"  # the nearest link first


def test_answers_without_do_are_explained_by_do_0_with_their_zone(tmp_path: Path) -> None:
    records = _responses(realcap("zeek/dns53.pcap"), tmp_path / "o")
    unsigned = [r for r in records if not r["do"] and r["answer_count"]]
    assert unsigned
    for record in unsigned:
        assert record["verdict"] == "indeterminate", record
        assert "dnssec_not_requested" in record["codes"], record
        assert "dnskey_missing" not in record["codes"], record
        assert record["zone"] is not None, record


def _ds_anchor_from(dnskey_anchor: Path, out: Path) -> Path:
    [anchor] = parse_anchor_text(dnskey_anchor.read_text(), str(dnskey_anchor))
    assert anchor.dnskey is not None
    ds = dns.dnssec.make_ds(anchor.zone, anchor.dnskey, "SHA256")
    out.write_text(f"{anchor.zone} IN DS {ds.to_text()}\n")
    return out


def test_a_dnskey_rrset_fetched_without_do_is_indeterminate_not_bogus(tmp_path: Path) -> None:
    # ed25519.no: the DNSKEY RRset was fetched with DO clear (no RRSIG), then the A record with
    # DO, signed by the ZSK 37771. With only the KSK as anchor (a DNSKEY or a DS anchor) the ZSK
    # must be proven by a signed DNSKEY RRset, and none was seen: indeterminate, not bogus.
    capture = realcap("zeek/dnssec__ed25519.no.pcap")
    ksk = realcap("anchors/ed25519.anchor")
    for name, anchor in (("key", ksk), ("ds", _ds_anchor_from(ksk, tmp_path / "ds.anchor"))):
        records = _responses(capture, tmp_path / name, "--trust-anchor", str(anchor))
        signed = [r for r in records if r["qtype"] == "A"]
        assert signed and all(r["verdict"] == "indeterminate" for r in signed), signed
        assert all("dnskey_unsigned_only" in r["codes"] for r in signed), signed
        assert not any(r["verdict"] == "bogus" for r in records)
        assert not any("ad_on_bogus" in r["codes"] for r in records)
    # Negative twin: with both keys as anchors the same answer validates, and with its
    # signature altered it is bogus.
    both = realcap("anchors/ed25519all.anchor")
    records = _responses(capture, tmp_path / "all", "--trust-anchor", str(both))
    assert [r["verdict"] for r in records if r["qtype"] == "A"] == ["secure"]
    altered = _flip_signature_byte(capture, tmp_path / "altered.pcap")
    records = _responses(altered, tmp_path / "altered", "--trust-anchor", str(both))
    assert [r["verdict"] for r in records if r["qtype"] == "A"] == ["bogus"]


def _flip_signature_byte(capture: Path, out: Path) -> Path:
    """The capture with one byte in the middle of the A answer's RRSIG signature changed."""
    import dns.message
    import dns.rdatatype
    from scapy.utils import rdpcap

    data = bytearray(capture.read_bytes())
    for packet in rdpcap(str(capture)):
        try:
            message = dns.message.from_wire(bytes(packet)[42:])  # Ethernet + IPv4 + UDP here
        except Exception:  # noqa: BLE001 - queries without answers parse too; others skip
            continue
        for rrset in message.answer:
            if rrset.rdtype == dns.rdatatype.RRSIG:
                signature = rrset[0].signature
                at = data.find(signature)
                assert at > 0
                data[at + len(signature) // 2] ^= 0xFF
                out.write_bytes(bytes(data))
                return out
    raise AssertionError("no RRSIG found")


def _with_unsigned_copy(capture: Path, out: Path, delay_s: float, address: str) -> Path:
    """The capture plus an unsigned (DO=0) exchange for fg2.weberlab.de. A answered with
    ``address``, ``delay_s`` after the last frame that carried the validated copy."""
    import dns.message
    import dns.rrset
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    from scapy.utils import rdpcap, wrpcap

    packets = list(rdpcap(str(capture)))
    at = float(packets[11].time) + delay_s  # frame 12: the validated fg2.weberlab.de. A
    query = dns.message.make_query("fg2.weberlab.de.", "A")
    query.id = 4242
    response = dns.message.make_response(query)
    response.answer.append(dns.rrset.from_text("fg2.weberlab.de.", 300, "IN", "A", address))
    client, server = "198.51.100.7", "193.24.227.238"
    for src, dst, sport, dport, wire, when in (
            (client, server, 45000, 53, query.to_wire(), at),
            (server, client, 53, 45000, response.to_wire(), at + 0.01)):
        frame = Ether() / IP(src=src, dst=dst, ttl=60) / UDP(sport=sport, dport=dport) / wire
        frame.time = when
        packets.append(frame)
    wrpcap(str(out), packets)
    return out


def test_an_unsigned_answer_contradicting_a_current_validated_copy_is_bogus(
    tmp_path: Path,
) -> None:
    # Issue 11 point 5 on a real capture: nDPI/dns_fragmented.pcap validates fg2.weberlab.de. A
    # (weberlab.de.'s own KSK as anchor); ten seconds later an unsigned answer with another
    # address contradicts it within its TTL and signature window.
    capture = realcap("nDPI/dns_fragmented.pcap")
    anchor = str(realcap("anchors/weberlab.anchor"))
    soon = _with_unsigned_copy(capture, tmp_path / "soon.pcap", 10, "6.6.6.6")
    records = _responses(soon, tmp_path / "soon", "--trust-anchor", anchor)
    [forged] = [r for r in records if r["id"] == 4242]
    assert forged["verdict"] == "bogus"
    assert "unsigned_contradicts_validated" in forged["rrsets"][0]["codes"]
    lines = (tmp_path / "soon" / "findings.jsonl").read_text().splitlines()
    assert any(json.loads(line)["code"] == "contradicts_validated" for line in lines)


def test_a_validated_copy_from_years_earlier_proves_nothing_on_a_real_capture(
    tmp_path: Path,
) -> None:
    # Twin: the same unsigned answer three years later; the copy's TTL and signatures have long
    # run out, so it neither confirms nor contradicts: indeterminate, and no forgery finding.
    capture = realcap("nDPI/dns_fragmented.pcap")
    anchor = str(realcap("anchors/weberlab.anchor"))
    later = _with_unsigned_copy(capture, tmp_path / "later.pcap", 3 * 365 * 86400, "6.6.6.6")
    out = tmp_path / "later"
    records = _responses(later, out, "--trust-anchor", anchor)
    [answer] = [r for r in records if r["id"] == 4242]
    assert answer["verdict"] == "indeterminate"
    findings = [json.loads(line) for line in (out / "findings.jsonl").read_text().splitlines()]
    assert not [f for f in findings if f.get("verdict") in ("forged", "suspicious")]
