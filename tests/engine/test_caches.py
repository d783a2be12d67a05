"""A run's memos are an object its driver makes from its ``Limits`` and hands to its streams:
two runs in one process share none of them, and releasing them changes no evidence."""

from __future__ import annotations

from pathlib import Path

from auditor.engine.caches import Caches
from auditor.engine.limits import FILE_LIMITS, Limits
from auditor.engine.stream import EvidenceStream
from auditor.evidence import build_evidence

SAMPLE = Path(__file__).resolve().parents[2] / "captures" / "sample-dnssec.pcap"


def _sample_stream(caches: Caches | None = None) -> EvidenceStream:
    return EvidenceStream(limits=Limits.file(facts_memo=3), caches=caches)


def test_caches_are_sized_from_the_limits() -> None:
    assert Caches(Limits.file(facts_memo=7)).facts._size == 7
    assert Caches(Limits.file(address_memo=5)).addresses.size == 5
    assert Caches(Limits.file(forgery_entries=6)).names.lineage._size == 6
    assert Caches().facts._size == FILE_LIMITS.facts_memo
    assert Caches(Limits.file(record_cache=4)).parse.name_text._size == 4
    assert list(Caches().sizes()) == ["message_facts", "name_texts"]


def test_each_stream_without_caches_gets_its_own() -> None:
    first, second = _sample_stream(), _sample_stream()
    assert first.caches is not None and first.caches is not second.caches
    assert first.caches.facts._size == 3
    assert first.chain.addresses is first.caches.addresses
    assert first.chain.parser.tables is first.caches.parse
    shared = Caches()
    assert _sample_stream(shared).caches is shared


def test_release_empties_the_memos_and_changes_no_evidence() -> None:
    from auditor.capture.sources import CaptureSet

    caches = Caches()
    with CaptureSet([str(SAMPLE)]) as source:
        stream = EvidenceStream(caches=caches)
        transactions = list(stream.transactions(source))
    memoised = [build_evidence(t, caches.facts) for t in transactions]
    assert caches.sizes()["message_facts"] > 0 and caches.addresses.texts
    caches.release()
    assert caches.sizes() == {"message_facts": 0, "name_texts": 0}
    assert not caches.addresses.texts and not caches.parse.summaries
    assert caches.times(1_700_000_000_123_456_789) == "2023-11-14T22:13:20.123456Z"
    assert [build_evidence(t) for t in transactions] == memoised
