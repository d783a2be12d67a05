"""``answer_count`` counts every record of the answer section, RRSIGs included, as tshark's
``dns.count.answers`` does (issue 11, point 9)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from auditor.pipeline import AuditOptions, run_audit
from tests.realcaps import REALCAPS, require

# Source: tshark -n -r F -Y 'dns.flags.response == 1' -T fields -e frame.number
#         -e dns.count.answers (tshark 4.x), and the RRSIGs among them.
CASES = [
    # capture, {frame: answer count}, {frame: RRSIGs in the answer}
    ("zeek/dnssec__dnskey.pcap", {2: 5}, {2: 2}),  # 3 DNSKEY + 2 RRSIG
    ("dqy/rrsig.pcap", {2: 2}, {2: 2}),  # an answer made only of RRSIGs
    ("zeek/dnssec__rrsig.pcap", {3: 2, 5: 2, 7: 4}, {3: 1, 5: 1, 7: 2}),
    ("dsc/1458044657.pcap", {2: 1, 4: 4, 6: 1, 8: 4}, {}),  # PTR answers repeat records
]


def _records(capture: Path, out: Path) -> dict[int, dict]:
    run_audit(AuditOptions(captures=(str(capture),), out_dir=out, report_formats=frozenset()))
    lines = (out / "responses.jsonl").read_text().splitlines()
    return {r["frame"]: r for r in map(json.loads, lines)}


@pytest.mark.parametrize(("name", "counts", "rrsigs"), CASES, ids=[c[0] for c in CASES])
def test_answer_count_equals_tshark(tmp_path: Path, name: str, counts: dict[int, int],
                                    rrsigs: dict[int, int]) -> None:
    capture = REALCAPS / name
    require(capture)
    records = _records(capture, tmp_path)
    assert {frame: records[frame]["answer_count"] for frame in counts} == counts
    # Negative twin: leaving the RRSIGs out (the old count) disagrees wherever there are any.
    for frame, signatures in rrsigs.items():
        assert records[frame]["answer_count"] - signatures != counts[frame]


def test_a_damaged_message_counts_the_records_actually_read(tmp_path: Path) -> None:
    """zeek/dns-edns-ecs-bad.pcap frame 1: a record runs past the end of the message; the
    header's count is not believed, the records read are counted."""
    capture = REALCAPS / "zeek" / "dns-edns-ecs-bad.pcap"
    require(capture)
    record = _records(capture, tmp_path)[1]
    assert record["problems"]
    wire_count = 236  # the header's ANCOUNT (tshark: dns.count.answers)
    assert record["answer_count"] == 5 != wire_count
