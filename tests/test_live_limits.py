"""Every live cache and table is capped from ``LiveLimits``, and the caps come from the CLI."""

from __future__ import annotations

import io
from pathlib import Path

import dns.message
import dns.rrset
import pytest
from click.testing import CliRunner

from auditor import messages as messages_module
from auditor.cli_live import _limits, live
from auditor.decode import dissect as dissect_module
from auditor.findings.catalogue import Provenance
from auditor.findings.zones import ZoneHealth
from auditor.live import AlertSink, LiveAuditor, LiveLimits, LiveOptions
from auditor.trust import KeyCache
from auditor.trust import material as material_module

SMALL = LiveLimits(parse_cache=7, facts_memo=11, record_cache=5, address_memo=3, digest_memo=13,
                   signature_memo=17,
                   signed_copies=19, denial_records=23, zones=29, forgery_entries=31)


def test_live_auditor_caps_every_cache_from_its_limits(tmp_path: Path) -> None:
    with KeyCache(str(tmp_path / "k.sqlite")) as cache:
        auditor = LiveAuditor(LiveOptions(out_dir=tmp_path / "out", limits=SMALL), cache,
                              AlertSink(io.StringIO()))
        zones = [s for s in auditor.sources if isinstance(s, ZoneHealth)]
        assert auditor.stream.chain.parser is not None
        assert auditor.stream.chain.parser._cache_size == 7
        assert auditor.caches.facts._size == 11
        assert auditor.stream.caches is auditor.caches
        assert auditor.caches.parse.size == SMALL.record_cache
        assert auditor.caches.parse.name_text._size == SMALL.record_cache
        assert auditor.stream.chain.parser.tables is auditor.caches.parse
        assert auditor.validator.name_text is auditor.caches.parse.name_text
        assert auditor.caches.addresses.size == SMALL.address_memo
        assert auditor.stream.chain.addresses is auditor.caches.addresses
        assert auditor.material.digests.digest._size == 13
        assert auditor.validator.checker.digests is auditor.material.digests
        assert auditor.validator.checker._memo_size == 17
        assert auditor.material._max_copies == 19
        assert auditor.material._max_denial == 23
        assert [z._max_zones for z in zones] == [29]
        auditor.finish()


def test_digest_memo_never_exceeds_its_cap() -> None:
    memos = material_module.RecordDigests(5)
    rrsets = [dns.rrset.from_text(f"h{i}.example.", 60, "IN", "A", f"192.0.2.{i}")
              for i in range(40)]
    digests = {memos.digest(rrset) for rrset in rrsets}
    assert len(digests) == 40
    assert len(memos.digest) <= 5 and len(memos.wire) <= 5
    assert digests == {material_module.rdata_set_digest(rrset) for rrset in rrsets}


def test_zone_health_keeps_the_most_recently_seen_zones_within_max_zones() -> None:
    health = ZoneHealth(max_zones=2)
    where = Provenance(capture="c", frames=(1,), ts_ns=0)
    for zone in ("z0.", "z1.", "z0.", "z2.", "z3.", "z0."):
        health._state(zone, where)
    assert list(health._zones) == ["z3.", "z0."]
    assert health.evicted == 3  # z1., then z0., then z2.


def test_cli_options_set_the_caps_and_leave_the_rest_default() -> None:
    limits = _limits(2.0, max_fragment_sets=3, max_tcp_flows=4, max_pending_queries=5,
                     max_held_responses=6, max_cache_entries=7)
    assert (limits.fragment_sets, limits.tcp_flows, limits.pending_queries,
            limits.held_responses) == (3, 4, 5, 6)
    assert (limits.parse_cache, limits.facts_memo, limits.digest_memo,
            limits.signature_memo) == (7, 7, 7, 7)
    assert limits.hold_ns == 2_000_000_000
    default = _limits(0.5, max_fragment_sets=None, max_tcp_flows=None, max_pending_queries=None,
                      max_held_responses=None, max_cache_entries=None)
    assert default == LiveLimits()


def test_cli_rejects_a_zero_cap() -> None:
    result = CliRunner().invoke(live, ["--read", "-", "--max-tcp-flows", "0"])
    assert result.exit_code == 2
    assert "--max-tcp-flows" in result.output


def test_record_walker_tables_never_exceed_their_cap() -> None:
    import dns.message
    import dns.rrset

    tables = messages_module.ParseTables(4)
    for i in range(30):
        response = dns.message.make_response(dns.message.make_query(f"h{i}.example.", "A"))
        response.answer.append(dns.rrset.from_text(f"h{i}.example.", 60, "IN", "A",
                                                   f"192.0.2.{i}"))
        assert messages_module.read_records(response.to_wire(), tables) is not None
        assert len(tables.owner_names) <= 4
        assert len(tables.rdatas) <= 4
        assert len(tables.rrsets) <= 4


def test_address_memos_never_exceed_their_cap() -> None:
    import socket

    from auditor.decode import fastpath, transport

    memos = dissect_module.AddressMemos(3)
    for i in range(20):
        memos.text(bytes([192, 0, 2, i]))
        fastpath._ipv4_text(memos, 0xC0000200 + i)
        fastpath._ipv6_address(memos, bytes(15) + bytes([i]))
        transport._address_value(memos, socket.AF_INET, f"192.0.2.{i}")
        for memo in (memos.texts, memos.ipv4_texts, memos.ipv6_addresses, memos.values):
            assert len(memo) <= 3
    assert memos.text(bytes([192, 0, 2, 7])) == "192.0.2.7"


def test_limit_option_sets_any_cap_by_name_and_rejects_unknown_ones() -> None:
    from click import BadParameter

    from auditor.cli_live import _parse_limits

    extra = _parse_limits(("zones=5", "signed-copies=9", "holdon_waiting=2"))
    limits = _limits(3.0, max_fragment_sets=None, max_tcp_flows=None, max_pending_queries=None,
                     max_held_responses=None, max_cache_entries=4, extra=extra)
    assert (limits.zones, limits.signed_copies, limits.holdon_waiting) == (5, 9, 2)
    assert limits.parse_cache == 4 and limits.fragment_sets == LiveLimits().fragment_sets
    for bad in ("zonez=5", "zones=many", "zones=0", "hold_ns=5"):
        with pytest.raises(BadParameter):
            _parse_limits((bad,))
