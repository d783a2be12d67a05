"""Real traffic: tcpdump on loopback while dig talks to BIND and Unbound; every message found."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from auditor.cli import cli
from tests.lab import Lab, TcpdumpCapture

pytestmark = pytest.mark.integration

Capture = Callable[[str], TcpdumpCapture]


def _tshark_responses(path: Path) -> set[tuple[int, int, str]]:
    """(frame, DNS ID, qname) of every DNS response tshark decodes in the capture."""
    tshark = shutil.which("tshark")
    if tshark is None:
        pytest.skip("tshark is not installed")
    output = subprocess.run(
        [tshark, "-r", str(path), "-n", "-Y", "dns.flags.response == 1", "-T", "fields",
         "-e", "frame.number", "-e", "dns.id", "-e", "dns.qry.name", "-E", "occurrence=f"],
        capture_output=True, text=True, check=True,
    ).stdout
    found = set()
    for line in output.splitlines():
        frame, msg_id, qname = line.split("\t")
        name = "" if qname == "<Root>" else qname.rstrip(".").lower()  # tshark's root
        found.add((int(frame), int(msg_id, 16), name + "."))
    return found


def _audit(pcap: Path, out: Path) -> list[dict]:
    result = CliRunner().invoke(cli, ["audit", str(pcap), "--out", str(out), "--quiet"])
    assert result.exit_code in (0, 1), result.output
    stats = json.loads((out / "stats.json").read_text())
    assert sum(stats["frames"].values()) == stats["frames_read"], stats
    return [json.loads(line) for line in (out / "responses.jsonl").read_text().splitlines()]


def test_every_udp_and_tcp_exchange_is_found_and_matched(
    lab: Lab, capture: Capture, tmp_path: Path
) -> None:
    asked = [
        ("www.sec.test.", "A", False),
        ("www.sec.test.", "A", True),
        ("www.ecdsa.test.", "AAAA", False),
        ("sec.test.", "DNSKEY", True),
        ("nonexistent.sec.test.", "A", False),
    ]
    with capture("exchanges") as pcap:
        for qname, rdtype, tcp in asked:
            lab.query_authoritative(qname, rdtype, tcp=tcp)
            lab.query_resolver(qname, rdtype, tcp=tcp)
    records = _audit(pcap.path, tmp_path / "out")
    ours = {(r["frame"], r["id"], r["qname"]) for r in records}
    theirs = _tshark_responses(pcap.path)
    assert theirs, "tshark found no DNS responses: the capture is empty"
    assert ours == theirs
    client_records = [r for r in records if r["dst"] == lab.addresses.client]
    for qname, rdtype, tcp in asked:
        matching = [
            r for r in client_records if r["qname"] == qname and r["qtype"] == rdtype
            and r["transport"] == ("tcp" if tcp else "udp")
        ]
        assert len(matching) == 2, (qname, rdtype, tcp, matching)  # authoritative + resolver
        assert all(r["query_frame"] is not None for r in matching)
    assert all(r["query_frame"] is not None for r in records), "every response was matched"


def test_large_dnskey_truncated_then_over_tcp(lab: Lab, capture: Capture, tmp_path: Path) -> None:
    with capture("bigkeys") as pcap:
        udp = lab.query_authoritative("big.test.", "DNSKEY", ignore_tc=True)
        tcp = lab.query_authoritative("big.test.", "DNSKEY", tcp=True)
    assert udp.tc and not tcp.tc
    records = [r for r in _audit(pcap.path, tmp_path / "o") if r["qname"] == "big.test."]
    assert {r["transport"] for r in records} == {"udp", "tcp"}
    over_tcp = next(r for r in records if r["transport"] == "tcp")
    assert over_tcp["size"] > 3000 and over_tcp["answer_count"] >= 3
    assert "TC" in next(r for r in records if r["transport"] == "udp")["flags"]


def test_sample_capture_in_repository_audits_cleanly(tmp_path: Path) -> None:
    sample = Path(__file__).resolve().parents[2] / "captures" / "sample-dnssec.pcap"
    records = _audit(sample, tmp_path / "s")
    assert records
    assert {(r["frame"], r["id"], r["qname"]) for r in records} == _tshark_responses(sample)
