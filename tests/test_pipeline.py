"""End-to-end tests of the audit pipeline and CLI on captures written by scapy."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import dns.flags
import dns.message
import dns.rrset
import pytest
from click.testing import CliRunner
from scapy.layers.inet import IP, TCP, UDP, fragment
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw
from scapy.utils import wrpcap

from auditor.cli import cli

CLIENT, SERVER = "192.0.2.10", "198.51.100.53"
T0 = 1_700_000_000.0


def _dns_pair(qname: str, msg_id: int, *, big: bool = False) -> tuple[bytes, bytes]:
    query = dns.message.make_query(qname, "TXT", id=msg_id, want_dnssec=True)
    response = dns.message.make_response(query)
    response.use_edns(0, dns.flags.DO, 4096)
    text = '"' + "x" * 200 + '"'
    count = 12 if big else 1
    rrset = dns.rrset.from_text(qname, 300, "IN", "TXT", *([text] * 1))
    for n in range(count - 1):
        rrset.add(dns.rrset.from_text(qname, 300, "IN", "TXT", f'"{n}{text[1:]}')[0])
    response.answer.append(rrset)
    return query.to_wire(), response.to_wire()


def _udp(src: str, dst: str, sport: int, dport: int, payload: bytes) -> Packet:
    return (
        Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
        / IP(src=src, dst=dst)
        / UDP(sport=sport, dport=dport)
        / Raw(payload)
    )


def _tcp_exchange(query: bytes, response: bytes) -> list[Packet]:
    def seg(
        src: str,
        dst: str,
        sport: int,
        dport: int,
        flags: str,
        seq: int,
        ack: int,
        data: bytes = b"",
    ) -> Packet:
        return (
            Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
            / IP(src=src, dst=dst)
            / TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack)
            / Raw(data)
        )

    framed_q = len(query).to_bytes(2, "big") + query
    framed_r = len(response).to_bytes(2, "big") + response
    c, s = 1000, 5000
    return [
        seg(CLIENT, SERVER, 41000, 53, "S", c, 0),
        seg(SERVER, CLIENT, 53, 41000, "SA", s, c + 1),
        seg(CLIENT, SERVER, 41000, 53, "A", c + 1, s + 1),
        seg(CLIENT, SERVER, 41000, 53, "PA", c + 1, s + 1, framed_q),
        seg(SERVER, CLIENT, 53, 41000, "A", s + 1, c + 1 + len(framed_q), framed_r[:100]),
        seg(SERVER, CLIENT, 53, 41000, "PA", s + 101, c + 1 + len(framed_q), framed_r[100:]),
        seg(CLIENT, SERVER, 41000, 53, "FA", c + 1 + len(framed_q), s + 1 + len(framed_r)),
    ]


def _sample_packets() -> list[Packet]:
    q1, r1 = _dns_pair("a.example.", 1)
    q2, r2 = _dns_pair("big.example.", 2, big=True)
    q3, r3 = _dns_pair("tcp.example.", 3, big=True)
    packets: list[Packet] = [
        _udp(CLIENT, SERVER, 40001, 53, q1),
        _udp(SERVER, CLIENT, 53, 40001, r1),
        _udp(CLIENT, SERVER, 40002, 53, q2),
    ]
    big = IP(src=SERVER, dst=CLIENT, id=777) / UDP(sport=53, dport=40002) / Raw(r2)
    fragments = fragment(big, fragsize=512)
    assert len(fragments) >= 3
    packets.extend(
        Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / frag
        for frag in reversed(fragments)
    )
    packets.extend(_tcp_exchange(q3, r3))
    packets.append(_udp(CLIENT, "203.0.113.1", 40003, 123, b"\x00" * 48))  # NTP: not DNS
    packets.append(_udp(SERVER, CLIENT, 53, 40009, _dns_pair("lost.example.", 9)[1]))
    for n, packet in enumerate(packets):
        packet.time = T0 + n * 0.01
    return packets


@pytest.fixture
def sample_pcap(tmp_path: Path) -> Path:
    path = tmp_path / "sample.pcap"
    wrpcap(str(path), _sample_packets())
    return path


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_audit_finds_udp_fragmented_and_tcp_responses(sample_pcap: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["audit", str(sample_pcap), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    records = _read_jsonl(out / "responses.jsonl")
    by_name = {r["qname"]: r for r in records}
    assert set(by_name) == {"a.example.", "big.example.", "tcp.example.", "lost.example."}
    assert by_name["a.example."]["query_frame"] == 1
    assert by_name["a.example."]["frame"] == 2
    assert by_name["a.example."]["transport"] == "udp"
    assert by_name["a.example."]["ts"] == "2023-11-14T22:13:20.010000Z"
    assert by_name["a.example."]["flags"][0] == "QR"
    assert by_name["a.example."]["do"] is True
    fragmented = by_name["big.example."]
    assert len(fragmented["frames"]) >= 3 and fragmented["query_frame"] == 3
    assert by_name["tcp.example."]["transport"] == "tcp"
    assert len(by_name["tcp.example."]["frames"]) == 2
    assert by_name["lost.example."]["query_frame"] is None
    stats = json.loads((out / "stats.json").read_text())
    assert stats["frames_read"] == len(_sample_packets())
    assert sum(stats["frames"].values()) == stats["frames_read"]
    assert stats["frames"]["not_dns_port"] == 1
    assert stats["matching"]["unsolicited_responses"] == 1


def test_gzip_and_stdin_give_the_same_responses(sample_pcap: Path, tmp_path: Path) -> None:
    zipped = tmp_path / "sample.pcap.gz"
    zipped.write_bytes(gzip.compress(sample_pcap.read_bytes()))
    plain, packed, piped = tmp_path / "p", tmp_path / "z", tmp_path / "s"
    runner = CliRunner()
    assert runner.invoke(cli, ["audit", str(sample_pcap), "--out", str(plain), "-q"]).exit_code == 0
    assert runner.invoke(cli, ["audit", str(zipped), "--out", str(packed), "-q"]).exit_code == 0
    completed = subprocess.run(
        [sys.executable, "-m", "auditor", "audit", "-", "--out", str(piped), "-q"],
        input=zipped.read_bytes(),
        capture_output=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr.decode()

    def strip(records: list[dict]) -> list[dict]:
        return [{k: v for k, v in r.items() if k != "capture"} for r in records]

    reference = strip(_read_jsonl(plain / "responses.jsonl"))
    assert strip(_read_jsonl(packed / "responses.jsonl")) == reference
    assert strip(_read_jsonl(piped / "responses.jsonl")) == reference


def test_missing_file_is_exit_3_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pcap"
    result = CliRunner().invoke(cli, ["audit", str(missing), "--out", str(tmp_path / "o")])
    assert result.exit_code == 3
    assert "nope.pcap" in result.output


def test_not_a_capture_is_exit_3(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.txt"
    bogus.write_text("this is not a capture\n" * 10)
    result = CliRunner().invoke(cli, ["audit", str(bogus), "--out", str(tmp_path / "o")])
    assert result.exit_code == 3
    assert "notes.txt" in result.output


def test_truncated_capture_keeps_earlier_responses_and_exits_4(
    sample_pcap: Path, tmp_path: Path
) -> None:
    cut = tmp_path / "cut.pcap"
    data = sample_pcap.read_bytes()
    cut.write_bytes(data[:-20])
    out = tmp_path / "o"
    result = CliRunner().invoke(cli, ["audit", str(cut), "--out", str(out)])
    assert result.exit_code == 4, result.output
    records = _read_jsonl(out / "responses.jsonl")
    assert {r["qname"] for r in records} >= {"a.example.", "big.example.", "tcp.example."}
    stats = json.loads((out / "stats.json").read_text())
    assert stats["capture_problems"] and "cut.pcap" in stats["capture_problems"][0]


def test_extra_port(tmp_path: Path) -> None:
    query, response = _dns_pair("alt.example.", 5)
    packets = [
        _udp(CLIENT, SERVER, 40001, 5353, query),
        _udp(SERVER, CLIENT, 5353, 40001, response),
    ]
    path = tmp_path / "alt.pcap"
    wrpcap(str(path), packets)
    runner = CliRunner()
    out = tmp_path / "o"
    assert runner.invoke(cli, ["audit", str(path), "--out", str(out), "-q"]).exit_code == 0
    assert _read_jsonl(out / "responses.jsonl") == []
    out2 = tmp_path / "o2"
    assert (
        runner.invoke(
            cli, ["audit", str(path), "--out", str(out2), "-q", "--port", "5353"]
        ).exit_code
        == 0
    )
    assert [r["qname"] for r in _read_jsonl(out2 / "responses.jsonl")] == ["alt.example."]


def test_bad_checksums_are_counted_not_dropped(tmp_path: Path) -> None:
    query, response = _dns_pair("sum.example.", 11)
    eth = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    packets = [
        eth / IP(src=CLIENT, dst=SERVER) / UDP(sport=40001, dport=53, chksum=0x1234) / Raw(query),
        eth
        / IP(src=SERVER, dst=CLIENT)
        / UDP(sport=53, dport=40001, chksum=0x4321)
        / Raw(response),
    ]
    path = tmp_path / "sums.pcap"
    wrpcap(str(path), packets)
    runner = CliRunner()
    out = tmp_path / "o"
    assert runner.invoke(cli, ["audit", str(path), "--out", str(out), "-q"]).exit_code == 0
    assert [r["qname"] for r in _read_jsonl(out / "responses.jsonl")] == ["sum.example."]
    stats = json.loads((out / "stats.json").read_text())
    assert stats["observed"]["udp_bad_checksum"] == 2
    skipped = tmp_path / "skip"
    assert (
        runner.invoke(
            cli, ["audit", str(path), "--out", str(skipped), "-q", "--no-checksums"]
        ).exit_code
        == 0
    )
    assert (
        json.loads((skipped / "stats.json").read_text())["observed"].get("udp_bad_checksum", 0) == 0
    )


def test_a_library_caller_gets_the_runs_collector_thresholds_and_its_own_back(
        sample_pcap: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A program calling run_audit got CPython's (700, 10, 10): a 1,000,000-frame audit ran
    # 2.4 times slower, a full collection every 2-3 s (benchmarks/README.md, "session 12").
    import gc

    import auditor.pipeline as pipeline
    from auditor.memo import GC_THRESHOLDS

    seen: list[tuple[int, ...]] = []
    setup = pipeline.judging_setup

    def watched(*args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(gc.get_threshold())
        return setup(*args, **kwargs)

    monkeypatch.setattr(pipeline, "judging_setup", watched)
    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        outcome = pipeline.run_audit(pipeline.AuditOptions(captures=(str(sample_pcap),),
                                                           out_dir=tmp_path / "out"))
        assert gc.get_threshold() == (700, 10, 10)  # the caller's, restored
    finally:
        gc.set_threshold(*before)
    assert seen == [GC_THRESHOLDS]
    assert outcome.verdicts
