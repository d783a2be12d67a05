"""A capture with no DNS on the given ports says that nothing was audited and names the other
ports whose payloads look like DNS, as --port options."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from scapy.layers.inet import IP, TCP, UDP
from scapy.utils import rdpcap, wrpcap

from auditor.cli import cli
from auditor.decode.census import looks_like_dns

SAMPLE = Path(__file__).resolve().parent.parent / "captures" / "sample-dnssec.pcap"


@pytest.fixture(scope="module")
def moved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample capture with DNS moved from port 53 to 5353 (checksums recomputed)."""
    packets = rdpcap(str(SAMPLE))
    for packet in packets:
        for layer in (UDP, TCP):
            if layer in packet:
                segment = packet[layer]
                segment.sport = 5353 if segment.sport == 53 else segment.sport
                segment.dport = 5353 if segment.dport == 53 else segment.dport
                del segment.chksum
        if IP in packet:
            del packet[IP].chksum
    path = tmp_path_factory.mktemp("moved") / "dns-on-5353.pcap"
    wrpcap(str(path), packets)
    return path


def _audit(capture: Path, out: Path, *extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["audit", str(capture), "--out", str(out), "-q", *extra])
    return result.exit_code, result.output


def test_no_dns_on_the_ports_names_the_port_it_runs_on(moved: Path, tmp_path: Path) -> None:
    code, text = _audit(moved, tmp_path / "a")
    assert code == 0
    lines = text.splitlines()
    assert lines[0] == ("dnssec-auditor: nothing was audited: no DNS message on port(s) 53 "
                        "among 155 frames")
    assert lines[1].startswith("  DNS seems to run on other ports: UDP port 5353 (")
    assert lines[1].endswith("; try --port 5353")  # no client's ephemeral port suggested


def test_with_the_suggested_port_it_audits_and_says_nothing(moved: Path,
                                                            tmp_path: Path) -> None:
    code, text = _audit(moved, tmp_path / "b", "--port", "5353")
    assert (code, text) == (0, "")


def test_the_dns_shape_test() -> None:
    query = bytes.fromhex("abcd01000001000000000000") + b"\x03www\x07example\x00\x00\x01\x00\x01"
    assert looks_like_dns(query)
    assert not looks_like_dns(query[:-3])  # question cut short
    assert not looks_like_dns(bytes.fromhex("abcd01000002000000000000") + query[12:])
    assert not looks_like_dns(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(40))
