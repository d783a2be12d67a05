"""``KeyMaterial.snapshot``/``merge``: the material of flow shards, merged, is the material one
collector gathers over the whole capture, down to the order of its tables, under the run's
caps (``merged_key_material``) as under the defaults."""

from __future__ import annotations

import base64
import pickle
from collections import Counter
from pathlib import Path
from typing import Any

import dns.rrset

from auditor.capture.sources import CaptureSet
from auditor.engine.build import key_material, merged_key_material
from auditor.engine.limits import FILE_LIMITS, Limits
from auditor.pipeline import EvidenceStream, observe_answer_keys
from auditor.scale.shard import FlowShard
from auditor.trust import KeyMaterial
from auditor.trust.material import MaterialSnapshot, SignedRRset

ROOT = Path(__file__).resolve().parents[2]
CAPTURES = [ROOT / "captures" / "sample-dnssec.pcap",
            ROOT / "tests" / "differential" / "fixtures" / "seed1-s00033" / "capture.pcap"]


def _gather(capture: Path, shard: FlowShard | None, limits: Limits = FILE_LIMITS) -> KeyMaterial:
    material = key_material(limits)
    with CaptureSet([str(capture)]) as source:
        for evidence in EvidenceStream(verify_checksums=False, shard=shard).run(source):
            observe_answer_keys(material, evidence)
    return material


def _entry(entry: SignedRRset) -> tuple[Any, ...]:
    return (entry.rrset.to_text(), entry.digest, entry.first_seen_ns, entry.last_seen_ns,
            entry.stripped_with_do,
            [(wire, s.first_seen_ns, s.last_seen_ns) for wire, s in entry.signatures.items()])


def _plain(snapshot: MaterialSnapshot) -> dict[str, Any]:
    return {
        "chain": [(key, [_entry(e) for e in entries]) for key, entries in snapshot.chain.items()],
        "denial": [(_entry(e), sorted(s.to_text() for s in signers))
                   for e, signers in snapshot.denial],
        "copies": [(key, [_entry(e) for e in entries])
                   for key, entries in snapshot.copies.items()],
        "delegations": sorted(snapshot.delegations),
        "dnskey_nodata": list(snapshot.dnskey_nodata.items()),
        "responses": snapshot.responses,
    }


def test_merged_shards_equal_one_collector() -> None:
    for capture in CAPTURES:
        whole = _gather(capture, None)
        merged = merged_key_material(FILE_LIMITS, (
            pickle.loads(pickle.dumps(_gather(capture, FlowShard(index, 3)).snapshot()))
            for index in range(3)))
        assert _plain(merged.snapshot()) == _plain(whole.snapshot()), capture.name
        assert merged.sizes() == whole.sizes()
        assert merged.known_zone_names() == whole.known_zone_names()
        assert merged.denial_signers() == whole.denial_signers()
        assert [e.rrset.name for e in merged.all_dnskey_rrsets()] == [
            e.rrset.name for e in whole.all_dnskey_rrsets()]


def test_merge_moves_the_generation_and_restarts_the_change_log() -> None:
    part = _gather(CAPTURES[0], None)
    merged = KeyMaterial()
    merged.merge(part.snapshot())
    assert merged.generation > 0 and merged.key_generation > 0
    assert merged.changed_zones_since(0) is None  # anything may have changed


NS = 1_000_000_000
SMALL = Limits.file(chain_rrsets=3, denial_records=2, signed_copies=4)
"""A budget every capture here exceeds (the file preset keeps 200,000 of each)."""


def _dnskey(zone: str, n: int) -> dns.rrset.RRset:
    key = base64.b64encode(b"\x03\x01\x00\x01" + n.to_bytes(4, "big") + bytes(56)).decode()
    return dns.rrset.from_text(zone, 3600, "IN", "DNSKEY", f"257 3 8 {key}")


def test_merged_material_keeps_the_runs_budget_and_counts_evictions_as_one_collector() -> None:
    # Two flow shards see the DNSKEYs of ten zones, alternately; one collector sees them all.
    limits = Limits.file(chain_rrsets=4)
    whole, shards = key_material(limits), [key_material(limits), key_material(limits)]
    for n in range(10):
        for material in (whole, shards[n % 2]):
            material.add_rrset(_dnskey(f"z{n}.example.", n), None, n * NS)
    merged = merged_key_material(limits, [shard.snapshot() for shard in shards])
    # The least recently seen go, over the run's cap and not the default's (200,000) ...
    assert merged.known_zone_names() == whole.known_zone_names()
    assert len(merged.known_zone_names()) == 4 and merged.sizes() == whole.sizes()
    # ... and every entry pushed out is counted: by a shard (one each) or the merge (four).
    assert merged.evicted == whole.evicted == Counter({"chain_rrsets": 6})
    unbounded = merged_key_material(FILE_LIMITS, [shard.snapshot() for shard in shards])
    assert len(unbounded.known_zone_names()) == 8  # what the default caps kept


def _distinct(snapshots: list[MaterialSnapshot]) -> dict[str, int]:
    """Distinct entries per capped table over every snapshot (what a merge must hold or drop)."""
    return {
        "chain_rrsets": len({key for s in snapshots for key in s.chain}),
        "denial_records": len({entry.digest for s in snapshots for entry, _ in s.denial}),
        "signed_copies": len({key for s in snapshots for key in s.copies}),
        "dnskey_nodata": len({zone for s in snapshots for zone in s.dnskey_nodata}),
    }


def test_merged_shards_over_a_small_budget_hold_what_one_collector_holds() -> None:
    for capture in CAPTURES:
        whole = _gather(capture, None, SMALL)
        snapshots = [_gather(capture, FlowShard(index, 3), SMALL).snapshot()
                     for index in range(3)]
        merged = merged_key_material(SMALL, snapshots)
        sizes = merged.sizes()
        assert sizes == whole.sizes(), capture.name
        assert (sizes["chain_rrsets"], sizes["denial_records"], sizes["signed_copies"]) == (
            SMALL.chain_rrsets, SMALL.denial_records, SMALL.signed_copies)
        assert _plain(merged.snapshot()) == _plain(whole.snapshot()), capture.name
        # Evictions are counted in the tables one collector counts them in: each shard's
        # own, plus every entry the merge pushed out over the run's caps.
        assert set(merged.evicted) == set(whole.evicted), capture.name
        shards = Counter[str]()
        for snapshot in snapshots:
            shards.update(snapshot.evicted)
        for table, distinct in _distinct(snapshots).items():
            assert merged.evicted[table] - shards[table] == distinct - sizes[table], table
