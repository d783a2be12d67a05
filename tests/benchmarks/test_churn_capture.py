"""The churn variant of the benchmark capture: deterministic, keeps bringing new names, zones,
clients and servers, and validates secure from the one parent anchor (and not without it)."""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import dns.name
import dns.rcode
import dns.rdatatype
import pytest

from auditor.capture.sources import CaptureSet
from auditor.evidence import ResponseEvidence, Section
from auditor.pipeline import EvidenceStream
from auditor.trust import KeyMaterial, KeyView
from auditor.trust.anchors import TrustAnchors, parse_anchor_text
from auditor.validate import RFC8624, Status, Validator

_SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "churn_capture.py"
PACKETS = 4_000
SEED = 5
ANSWER = Section.ANSWER
GAP_NS = 30_000_000.0
"""One frame per 30 ms: 4,000 frames span two minutes, so about a dozen zones appear."""


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being created
    spec.loader.exec_module(module)
    return module


churn = _load("bench_churn_capture", _SCRIPT)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any, Any]:
    path = tmp_path_factory.mktemp("churn") / "churn.pcap"
    summary, generator = churn.write_churn_capture(path, PACKETS, SEED, gap_ns=GAP_NS)
    return path, summary, generator


@pytest.fixture(scope="module")
def evidence(generated: tuple[Path, Any, Any]) -> list[ResponseEvidence]:
    path, _, _ = generated
    with CaptureSet([str(path)]) as source:
        return list(EvidenceStream().run(source))


def _judge(found: list[ResponseEvidence], anchor_text: str) -> Counter[Status]:
    """Two passes, as the offline audit: every key first, then every response at its time."""
    material = KeyMaterial()
    for item in found:
        material.observe(item)
    anchors = TrustAnchors(parse_anchor_text(anchor_text, "test"))
    validator = Validator(KeyView(anchors, material), RFC8624)
    return Counter(validator.judge(item).status for item in found)


def test_same_seed_gives_the_same_bytes(generated: tuple[Path, Any, Any], tmp_path: Path) -> None:
    path, _, _ = generated
    again = tmp_path / "again.pcap"
    churn.write_churn_capture(again, PACKETS, SEED, gap_ns=GAP_NS)
    other = tmp_path / "other.pcap"
    churn.write_churn_capture(other, PACKETS, SEED + 1, gap_ns=GAP_NS)
    assert again.read_bytes() == path.read_bytes()
    assert other.read_bytes() != path.read_bytes()


def test_writes_exactly_the_frames_asked_and_every_response_is_found(
    generated: tuple[Path, Any, Any], evidence: list[ResponseEvidence]
) -> None:
    _, summary, _ = generated
    assert summary.packets == PACKETS
    assert len(evidence) == summary.counts["dns_response"]


def test_later_traffic_keeps_bringing_names_zones_clients_and_servers(
    generated: tuple[Path, Any, Any], evidence: list[ResponseEvidence]
) -> None:
    _, _, generator = generated
    assert generator.zones_added >= 10
    half = len(evidence) // 2
    early, late = evidence[:half], evidence[half:]

    def seen(items: list[ResponseEvidence]) -> dict[str, set[object]]:
        wires = [item.transaction.response.wire for item in items]
        return {
            "qname": {item.qname for item in items},
            "zone": {item.qname.split(3)[1] for item in items
                     if item.qname is not None and len(item.qname) >= 3},
            "client": {wire.dst for wire in wires if wire.sport == 53},
            "server": {wire.src for wire in wires
                       if wire.src.startswith(("100.", "2001:db8:54"))},
        }

    before, after = seen(early), seen(late)
    for kind in ("qname", "zone", "client", "server"):
        new = after[kind] - before[kind]
        assert len(new) >= (5 if kind == "zone" else 10), (kind, len(new))
    assert len(after["qname"] - before["qname"]) > len(late) // 10


def test_proofs_of_every_shape_are_present(evidence: list[ResponseEvidence]) -> None:
    types = Counter(item.rdtype for response in evidence for item in response.rrsets)
    assert types[dns.rdatatype.NSEC] and types[dns.rdatatype.NSEC3] and types[dns.rdatatype.DS]
    wildcard = [(r, len(r.qname)) for r in evidence
                if r.qname is not None and b"cdn" in r.qname.labels]
    expanded = [r for r, labels in wildcard if any(
        item.rrsigs is not None and item.rrsigs[0].labels < labels - 1
        for item in r.section(ANSWER))]  # RFC 4035 5.3.4: fewer RRSIG labels than the owner
    assert expanded and len(expanded) < len(wildcard)  # wildcard answers and wildcard NODATA
    assert sum(r.rcode == dns.rcode.NXDOMAIN for r in evidence) > len(evidence) // 20


def test_the_parent_anchor_alone_makes_every_complete_answer_secure(
    generated: tuple[Path, Any, Any], evidence: list[ResponseEvidence]
) -> None:
    _, summary, generator = generated
    statuses = _judge(evidence, generator.anchor_text())
    truncated = summary.counts.get("truncated_response", 0)
    assert statuses[Status.BOGUS] == 0
    assert statuses[Status.INDETERMINATE] <= truncated  # TC=1 answers carry no records
    assert statuses[Status.SECURE] == len(evidence) - statuses[Status.INDETERMINATE]


def test_without_the_parent_anchor_nothing_is_secure(
    generated: tuple[Path, Any, Any], evidence: list[ResponseEvidence]
) -> None:
    _, _, generator = generated
    other = churn.ParentZone(0, churn.SigningKeys(SEED + 1))  # the same parent, another key
    statuses = _judge(evidence, other.anchor_text())
    assert statuses[Status.SECURE] == 0


def test_a_churn_run_leaves_the_default_generator_unchanged(tmp_path: Path) -> None:
    make_capture = sys.modules["make_capture"]  # the copy the churn module extends
    plain, churned = tmp_path / "plain.pcap", tmp_path / "churned.pcap"
    make_capture.write_capture(plain, 2_000, SEED)
    churn.write_churn_capture(churned, 2_000, SEED)
    assert plain.read_bytes() != churned.read_bytes()
    again = tmp_path / "again.pcap"
    make_capture.write_capture(again, 2_000, SEED)
    assert again.read_bytes() == plain.read_bytes()


def test_random_names_are_new_and_below_their_zone() -> None:
    generator = churn.ChurnGenerator(SEED, 100)
    generator._grow(generator.clock_ns)
    zone = generator.catalog.zones[0]
    names = [generator._random_subdomain(zone, dns.rdatatype.A).qname for _ in range(200)]
    assert len(set(names)) == 200
    assert all(name.parent() == zone.origin for name in names)
    assert all(isinstance(name, dns.name.Name) for name in names)
