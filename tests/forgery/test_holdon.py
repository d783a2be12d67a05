"""Hold-on bounds: responses waiting for their server's baseline are capped across servers,
the server waiting longest loses its responses first, and every drop is counted."""

from __future__ import annotations

from auditor.forgery import ForgeryConfig, ForgeryDetector
from auditor.pipeline import EvidenceStream
from tests.forgery.builders import MS, T0_NS, Traffic, answer, codes, insecure, query


def _feed(traffic: Traffic, config: ForgeryConfig) -> tuple[ForgeryDetector, list[str]]:
    detector = ForgeryDetector(config)
    stream = EvidenceStream(on_query=detector.observe_query)
    found: list[str] = []
    for evidence in stream.run(traffic.frames):
        found.extend(codes(detector.feed(evidence, insecure(evidence))))
    return detector, found


def _one_response_each(traffic: Traffic, servers: int, start: int = 0) -> None:
    for n in range(start, start + servers):
        q = query(f"n{n}.example.", msg_id=n % 65536)
        traffic.exchange(q, answer(q, f"n{n}.example. A 192.0.2.1"), at_ns=T0_NS + n * MS,
                         port=1024 + n, server=f"198.51.{100 + n // 250}.{n % 250 + 1}")


def test_responses_of_ever_new_servers_wait_within_the_cap_and_drops_are_counted() -> None:
    traffic = Traffic()
    _one_response_each(traffic, 200)
    detector, _ = _feed(traffic, ForgeryConfig(max_entries=1_000, holdon_waiting=10))
    holdon = detector._holdon
    assert holdon.waiting == 10
    assert sum(len(p.waiting) for p in holdon._profiles.values()) == 10
    assert holdon.waiting_evicted == 190
    assert detector.counters()["holdon_waiting_evicted"] == 190
    assert len(holdon) == 200 and holdon.servers_evicted == 0
    newest = {f"198.51.100.{n % 250 + 1}" for n in range(190, 200)}
    assert {s for s, p in holdon._profiles.items() if p.waiting} == newest  # oldest went first


def test_dropping_a_server_profile_drops_its_waiting_responses_and_counts_both() -> None:
    traffic = Traffic()
    _one_response_each(traffic, 300)
    detector, _ = _feed(traffic, ForgeryConfig(max_entries=40, holdon_waiting=1_000))
    holdon = detector._holdon
    assert len(holdon) == 40 and holdon.waiting == 40
    assert holdon.servers_evicted == 260 and holdon.waiting_evicted == 260
    assert detector.counters()["holdon_servers_evicted"] == 260


def test_a_waiting_response_is_still_judged_once_its_server_has_a_baseline() -> None:
    traffic = Traffic()
    for n in range(8):  # the odd IP TTL comes first, while the server has no baseline yet
        q = query(f"h{n}.example.", msg_id=n + 1)
        traffic.exchange(q, answer(q, f"h{n}.example. A 192.0.2.1"), at_ns=T0_NS + n * 50 * MS,
                         port=41000 + n, ttl=50 if n == 0 else 58)
    _, found = _feed(traffic, ForgeryConfig(holdon_waiting=100))
    assert found == ["hop_limit_anomaly"]
    _, lost = _feed(traffic, ForgeryConfig(holdon_waiting=1))
    assert lost == []  # with room for one waiting response only, the odd (first) one went
