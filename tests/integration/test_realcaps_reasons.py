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
