"""Shared checks of the scale tests: one process against workers, output by output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from auditor.capture.frame import Frame
from tests.capture.builders import pcap_header, pcap_record

PERFORMANCE_COUNTERS = (
    ("elapsed_s",),
    ("key_cache", "path"),
    ("validation", "key_cache"),
    ("messages",),  # each worker has its own parse cache
    ("state",),  # peaks and memo sizes are per process
    ("validation", "verdict_cache"),  # each worker has its own verdict cache
    ("processes",),  # audit --jobs: pids, CPU and the queue between the processes
)
"""stats.json fields that count work done or memory held, not what the traffic holds: they
differ between one process and several (auditor/scale/merge.py says how)."""


def lines(path: Path) -> list[dict[str, Any]]:
    """A JSON Lines file as parsed records."""
    return [json.loads(line) for line in path.read_text().splitlines()]


def stats_without_performance(path: Path) -> dict[str, Any]:
    """stats.json with ``PERFORMANCE_COUNTERS`` removed."""
    stats = json.loads(path.read_text())
    for keys in PERFORMANCE_COUNTERS:
        holder = stats
        for key in keys[:-1]:
            holder = holder[key]
        holder.pop(keys[-1], None)
    return stats


def assert_same_outputs(one: Path, many: Path) -> None:
    """Responses and findings equal record by record, in the same order, and byte for byte
    (the first says which record differs, the second what parsing hides: spelling, key
    order); stats equal but for performance counters."""
    for name in ("responses.jsonl", "findings.jsonl"):
        assert lines(one / name) == lines(many / name), name
        assert (one / name).read_bytes() == (many / name).read_bytes(), name
    assert stats_without_performance(one / "stats.json") == stats_without_performance(
        many / "stats.json")


def write_pcap(path: Path, frames: list[Frame]) -> Path:
    """A classic pcap (nanosecond timestamps) of ``frames`` in the order given."""
    data = bytearray(pcap_header(nano=True, linktype_field=frames[0].linktype))
    for frame in frames:
        sec, nsec = divmod(frame.ts_ns, 1_000_000_000)
        data += pcap_record("<", sec, nsec, frame.data, frame.wirelen)
    path.write_bytes(bytes(data))
    return path


def bailiwick_traffic() -> list[Frame]:
    """Answers from four servers carrying out-of-bailiwick, extraneous and outside-the-chain
    records (the forgery stage's per-response facts: body facts, bailiwick findings), in
    capture order."""
    import dns.flags

    from tests.forgery.builders import T0_NS, Traffic, answer, query

    traffic = Traffic()
    for n, server in enumerate(("198.51.100.53", "203.0.113.7", "192.0.2.99", "198.51.100.9")):
        at = T0_NS + n * 10_000_000
        q1 = query("www.example.", msg_id=10 * n + 1)
        traffic.exchange(q1, answer(q1, "www.example. A 192.0.2.1", "www.bank.test. A 6.6.6.6",
                                    flags=dns.flags.AA), at_ns=at, server=server, port=46001)
        q2 = query("www.sub.example.", msg_id=10 * n + 2, flags=0)
        traffic.exchange(q2, answer(q2, authority=["sub.example. NS ns1.sub.example.",
                                                   "bank.test. NS ns.evil.test."],
                                    additional=["ns1.sub.example. A 192.0.2.1",
                                                "ns.evil.test. A 6.6.6.6"]),
                         at_ns=at + 1_000_000, server=server, port=46002)
        q3 = query("www.example.", msg_id=10 * n + 3)
        traffic.exchange(q3, answer(q3, "www.example. A 192.0.2.1", "www.bank.test. A 6.6.6.6",
                                    flags=dns.flags.RA), at_ns=at + 2_000_000,
                         server=server, port=46003)
    return sorted(traffic.frames, key=lambda f: (f.ts_ns, f.number))
