"""``KeyMaterial.snapshot``/``merge``: the material of flow shards, merged, is the material one
collector gathers over the whole capture, down to the order of its tables."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from auditor.capture.sources import CaptureSet
from auditor.pipeline import EvidenceStream, observe_answer_keys
from auditor.scale.shard import FlowShard
from auditor.trust import KeyMaterial
from auditor.trust.material import MaterialSnapshot, SignedRRset

ROOT = Path(__file__).resolve().parents[2]
CAPTURES = [ROOT / "captures" / "sample-dnssec.pcap",
            ROOT / "tests" / "differential" / "fixtures" / "seed1-s00033" / "capture.pcap"]


def _gather(capture: Path, shard: FlowShard | None) -> KeyMaterial:
    material = KeyMaterial()
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
        merged = KeyMaterial.merged(
            pickle.loads(pickle.dumps(_gather(capture, FlowShard(index, 3)).snapshot()))
            for index in range(3))
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
