"""Finding merger: bounded in keys and in accounted bytes, drops counted, held keys still
counted."""

from __future__ import annotations

from auditor.findings.catalogue import Provenance
from auditor.findings.merge import KEY_OVERHEAD, FindingMerger


def _add(merger: FindingMerger, zone: str, frame: int) -> None:
    merger.add("bogus_answer", (zone, "192.0.2.53"), {"zone": zone, "server": "192.0.2.53"},
               Provenance("a.pcap", (frame,), frame, "192.0.2.53"),
               lists={"reasons": ["expired"]})


def test_new_keys_over_the_byte_budget_are_dropped_counted_and_the_held_ones_still_merge() -> None:
    merger = FindingMerger(max_bytes=3 * (KEY_OVERHEAD + 200))
    for n in range(10):
        _add(merger, f"z{n}.example.", n + 1)
    assert len(merger) == 3 and merger.dropped == 7
    assert 0 < merger.held_bytes <= 3 * (KEY_OVERHEAD + 200)
    assert merger.peak_bytes == merger.held_bytes
    _add(merger, "z0.example.", 20)  # a key already held goes on counting
    assert merger.dropped == 7
    found = {f.params["zone"]: f.count for f in merger.flush()}
    assert found == {"z0.example.": 2, "z1.example.": 1, "z2.example.": 1}
    assert merger.held_bytes == 0 and merger.peak_bytes > 0


def test_one_key_larger_than_the_budget_is_still_merged() -> None:
    merger = FindingMerger(max_bytes=1)
    _add(merger, "big.example.", 1)
    _add(merger, "other.example.", 2)
    assert len(merger) == 1 and merger.dropped == 1
