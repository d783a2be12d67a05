"""Live: the hold-on waiting cap comes from LiveLimits and stats.json reports every eviction
of the capped key-material and forgery tables (new ``evictions`` section)."""

from __future__ import annotations

import io
from pathlib import Path

import dns.name
import dns.rrset

from auditor.findings.zones import ZoneHealth
from auditor.forgery import ForgeryDetector
from auditor.live import AlertSink, LiveAuditor, LiveLimits, LiveOptions
from auditor.trust import KeyCache

NS = 1_000_000_000


def test_holdon_waiting_cap_and_eviction_counters_reach_stats(tmp_path: Path) -> None:
    limits = LiveLimits(holdon_waiting=3, signed_copies=4)
    with KeyCache(str(tmp_path / "k.sqlite")) as cache:
        auditor = LiveAuditor(LiveOptions(out_dir=tmp_path / "out", limits=limits), cache,
                              AlertSink(io.StringIO()))
        [detector] = [s for s in auditor.sources if isinstance(s, ForgeryDetector)]
        assert detector.config.holdon_waiting == 3
        assert detector._holdon._max_waiting == 3
        rrsig_text = ("A 13 2 60 20250801000000 20250501000000 1 example. "
                      "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
                      "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
        for n in range(10):
            name = f"h{n}.example."
            auditor.material.add_rrset(
                dns.rrset.from_text(name, 60, "IN", "A", "192.0.2.1"),
                dns.rrset.from_text(name, 60, "IN", "RRSIG", rrsig_text), n * NS)
        evictions = auditor.stats(final=False)["evictions"]
        assert evictions["key_material_signed_copies"] == 6
        assert evictions["holdon_waiting_evicted"] == 0
        assert set(evictions) >= {"race_state_evicted", "crosscheck_claims_dropped",
                                  "holdon_servers_evicted", "holdon_waiting_evicted",
                                  "zones_evicted"}
        [zones] = [s for s in auditor.sources if isinstance(s, ZoneHealth)]
        zones.evicted = 5
        assert auditor.stats(final=False)["evictions"]["zones_evicted"] == 5
        state = auditor.stats(final=False)["state"]
        assert state["key_material_signed_copies"] == 4  # at its cap
        assert {"pending_queries", "parsed_messages", "zones", "key_material_denial_records",
                "key_material_chain_rrsets"} <= set(state)
        outcome = auditor.finish()
        assert outcome.stats["evictions"]["key_material_signed_copies"] == 6


def test_the_lineage_memo_is_sized_from_the_forgery_cap(tmp_path: Path) -> None:
    with KeyCache(str(tmp_path / "k.sqlite")) as cache:
        auditor = LiveAuditor(
            LiveOptions(out_dir=tmp_path / "out", limits=LiveLimits(forgery_entries=7)),
            cache, AlertSink(io.StringIO()))
        lineage = auditor.caches.names.lineage
        for n in range(50):  # ever-new names
            lineage(dns.name.from_text(f"h{n}.z{n}.example."))
        assert len(lineage) == 7
        detector = auditor.sources[0]
        assert isinstance(detector, ForgeryDetector)
        assert detector._cross._names is auditor.caches.names
        auditor.finish()


def test_a_slow_key_cache_write_pushes_the_next_one_back(tmp_path: Path) -> None:
    from auditor.live import PERSIST_SHARE_FACTOR

    with KeyCache(str(tmp_path / "k.sqlite")) as cache:
        auditor = LiveAuditor(LiveOptions(out_dir=tmp_path / "out"), cache,
                              AlertSink(io.StringIO()))
        auditor._timed_persist = lambda: 12.0  # type: ignore[method-assign]
        due = auditor._next_cache
        auditor.tick(int(due * NS) + 1)
        assert auditor._next_cache >= due + PERSIST_SHARE_FACTOR * 12.0
        quick = LiveAuditor(LiveOptions(out_dir=tmp_path / "out2"), cache,
                            AlertSink(io.StringIO()))
        quick._timed_persist = lambda: 0.01  # type: ignore[method-assign]
        due = quick._next_cache
        quick.tick(int(due * NS) + 1)
        assert quick._next_cache < due + quick.options.cache_interval_s + 1
        auditor.finish()
        quick.finish()
