"""Tables capped in accounted bytes evict the oldest entries and count them (issue 13)."""

from __future__ import annotations

from pathlib import Path

import dns.message

from auditor.forgery.common import NOTE_COST, ResponseNote
from auditor.forgery.crosscheck import CLAIM_RDATA_COST
from auditor.forgery.detector import ForgeryConfig, ForgeryDetector
from auditor.ledger import Ledger
from auditor.messages import MessageParser, parsed_cost
from auditor.pipeline import AuditOptions, EvidenceStream, run_audit
from auditor.resolution import ResolutionLinker
from auditor.transactions import PENDING_OVERHEAD, Matcher
from tests.forgery import builders
from tests.forgery.builders import MS, T0_NS, Traffic
from tests.helpers import wire_message

SAMPLE = Path(__file__).resolve().parents[1] / "captures" / "sample-dnssec.pcap"


def _query(index: int) -> bytes:
    return dns.message.make_query(f"n{index}.example.", "A").to_wire()


def test_pending_queries_capped_in_bytes() -> None:
    size = len(_query(0)) + PENDING_OVERHEAD
    matcher = Matcher(max_pending_bytes=3 * size + 10)
    parser = MessageParser(Ledger())
    for index in range(5):
        observed = parser.feed(wire_message(_query(index), sport=1000 + index))
        assert observed is not None
        matcher.feed(observed)
    assert matcher.pending == 3
    assert matcher.pending_bytes <= 3 * size + 10
    assert matcher.stats.evicted_queries == 2
    assert matcher.stats.evicted_query_bytes == 2 * size


def test_parse_cache_capped_in_bytes() -> None:
    wires = [_query(index) for index in range(6)]
    cap = 2 * parsed_cost(wires[0][2:]) + 10
    parser = MessageParser(Ledger(), cache_bytes=cap)
    for data in wires:
        parser.feed(wire_message(data))
    assert parser.cached == 2 and parser.cached_bytes <= cap
    assert parser.evicted == 4


def test_stats_report_state_peaks(tmp_path: Path) -> None:
    stats = run_audit(AuditOptions(captures=(str(SAMPLE),), out_dir=tmp_path,
                                   report_formats=frozenset())).stats
    peak = stats["state"]["peak"]
    assert peak["parsed_messages"] > 0 and peak["parsed_message_bytes"] > 0
    assert {"pending_queries", "pending_query_bytes", "tcp_bytes_held",
            "fragment_bytes_held"} <= set(peak)
    assert "signed_copy_bytes" in stats["state"]["key_material"]
    assert stats["matching"]["evicted_query_bytes"] == 0
    assert stats["messages"]["parse_cache_evicted"] == 0
    zones = stats["state"]["findings"]["ZoneHealth"]
    assert zones["zones"] > 0 and zones["zone_bytes"] > 0 and zones["zones_evicted"] == 0
    assert stats["state"]["findings"]["ValidationFindings"]["findings_not_merged"] == 0
    assert stats["forgery"]["holdon_waiting_evicted_bytes"] == 0


def _distinct_answers(count: int) -> Traffic:
    traffic = Traffic()
    for index in range(count):
        q = builders.query(f"n{index}.example.", msg_id=index + 1)
        traffic.exchange(q, builders.answer(q, f"n{index}.example. A 192.0.2.{index + 1}"),
                         at_ns=T0_NS + index * MS, port=40000 + index)
    return traffic


def _detect(traffic: Traffic, config: ForgeryConfig) -> ForgeryDetector:
    detector = ForgeryDetector(config)
    stream = EvidenceStream(on_query=detector.observe_query)
    for evidence in stream.run(traffic.frames):
        detector.feed(evidence, builders.insecure(evidence))
    return detector


def test_race_state_keeps_notes_capped_in_bytes() -> None:
    detector = _detect(_distinct_answers(5), ForgeryConfig(races_bytes=3 * NOTE_COST))
    races = detector._races
    assert len(races) == 3 and races.held_bytes == 3 * NOTE_COST
    assert races.evicted == 2
    kept = [variant.first for entry in races._queries.values() for variant in entry.variants]
    assert all(isinstance(note, ResponseNote) for note in kept)  # not the whole evidence


def test_crosscheck_claims_keep_notes_capped_in_bytes() -> None:
    text = "n0.example. A"
    cost = NOTE_COST + len(text) + CLAIM_RDATA_COST
    detector = _detect(_distinct_answers(5), ForgeryConfig(crosscheck_bytes=3 * cost))
    cross = detector._cross
    assert cross.claim_bytes == 3 * cost and cross.dropped_claims == 2
    assert all(isinstance(claim.summary, ResponseNote) for claim in cross._claims)


def test_resolution_linker_bounds_query_senders_and_their_exchanges() -> None:
    linker = ResolutionLinker(max_resolvers=3, max_exchanges=4)
    parser = MessageParser(Ledger())
    for index in range(6):  # six stubs, one query each, then one stub asking twice more
        source = f"198.18.0.{index + 1}" if index < 4 else "198.18.0.4"
        observed = parser.feed(wire_message(_query(index), src=source, sport=1000 + index))
        assert observed is not None
        linker.observe_query(observed)
    assert len(linker._resolvers) <= 3 and linker._held <= 4
    # Two flows over max_exchanges pending, two exchanges with their senders.
    assert linker.stats.evicted_resolvers == 2 and linker.stats.evicted == 4
    assert linker.stats.as_dict()["evicted_resolvers"] == 2


def test_the_command_line_loads_no_pandas_or_pyarrow_before_an_audit() -> None:
    """pandas and pyarrow (about 85 MB resident) are loaded when the tables are written, not
    with the command line: an audit's judging loop runs without them."""
    import subprocess
    import sys

    code = ("import sys, auditor.cli; "
            "print(sorted({'pandas', 'pyarrow', 'numpy'} & set(sys.modules)))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert loaded == "[]"
