"""Hold-on: bounds (responses waiting for their server's baseline are capped across servers,
the server waiting longest loses its responses first, and every drop is counted), and the
false-positive guards of the IP TTL and RTT rules, each with an attack twin that still fires."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from auditor.forgery import ForgeryConfig, ForgeryDetector
from auditor.forgery.common import summarize
from auditor.forgery.holdon import waiting_cost
from auditor.pipeline import EvidenceStream
from tests.forgery.builders import (
    CLIENT,
    MS,
    SERVER,
    T0_NS,
    Traffic,
    answer,
    by_code,
    codes,
    insecure,
    query,
)
from tests.forgery.realcaps import detect, realcap


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


def test_waiting_responses_are_capped_in_bytes_and_the_drops_counted_with_their_bytes() -> None:
    traffic = Traffic()
    _one_response_each(traffic, 200)
    costs = _waiting_costs(traffic)
    budget = sum(costs[-10:])  # room for the ten newest answers
    detector, _ = _feed(traffic, ForgeryConfig(max_entries=1_000, holdon_waiting=10_000,
                                               holdon_waiting_bytes=budget))
    holdon = detector._holdon
    assert holdon.waiting == 10 and holdon.waiting_bytes == budget
    assert holdon.waiting_evicted == 190
    counters = detector.counters()
    assert counters["holdon_waiting_evicted"] == 190
    assert counters["holdon_waiting_evicted_bytes"] == sum(costs[:190])
    newest = {f"198.51.100.{n % 250 + 1}" for n in range(190, 200)}
    assert {s for s, p in holdon._profiles.items() if p.waiting} == newest  # oldest went first


def test_a_server_reaching_its_baseline_after_byte_evictions_is_still_judged() -> None:
    traffic = Traffic()
    _one_response_each(traffic, 50)
    for n in range(8):  # then a server with a baseline: the odd IP TTL is still found
        q = query(f"h{n}.example.", msg_id=n + 1)
        traffic.exchange(q, answer(q, f"h{n}.example. A 192.0.2.1"),
                         at_ns=T0_NS + (100 + n) * 50 * MS, port=41000 + n,
                         ttl=50 if n == 7 else 58)
    detector, found = _feed(traffic, ForgeryConfig(holdon_waiting_bytes=1))
    assert found == ["hop_limit_anomaly"]
    # Over the budget only the newest response waits: 49 of the 50 servers' answers and the
    # first 5 of the last server's go unjudged (counted); its baseline then judges the rest.
    assert detector._holdon.waiting_evicted == 49 + 5 and detector._holdon.waiting == 0


def _waiting_costs(traffic: Traffic) -> list[int]:
    """The accounted bytes (``waiting_cost``) of every answer of ``traffic``, in order."""
    return [waiting_cost(summarize(e, insecure(e))) for e in EvidenceStream().run(traffic.frames)]


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


# --- IP TTL: a set of stable paths ----------------------------------------------------------


def _anycast(odd_ttl: int | None) -> Traffic:
    """20 answers of one anycast server reaching the tap over two paths (TTL 58 for 13 of
    them, 55 for 7: a 65/35 split), interleaved; the 15th with ``odd_ttl`` when given."""
    traffic = Traffic()
    second_path = {1, 4, 6, 9, 12, 16, 18}
    for n in range(20):
        q = query(f"a{n}.example.", msg_id=n + 1)
        ttl = 55 if n in second_path else 58
        if n == 14 and odd_ttl is not None:
            ttl = odd_ttl
        traffic.exchange(q, answer(q, f"a{n}.example. A 192.0.2.1"),
                         at_ns=T0_NS + n * 100 * MS, port=46000 + n, ttl=ttl)
    return traffic


def test_anycast_server_with_two_stable_paths_raises_nothing() -> None:
    assert _feed(_anycast(None), ForgeryConfig())[1] == []


def test_ip_ttl_outside_both_anycast_paths_is_flagged() -> None:
    detector = ForgeryDetector()
    stream = EvidenceStream(on_query=detector.observe_query)
    found = [f for e in stream.run(_anycast(50).frames) for f in detector.feed(e, insecure(e))]
    assert codes(found) == ["hop_limit_anomaly"]
    assert found[0].params["hop_limit"] == 50
    assert found[0].params["paths"] == [58, 55]


def test_real_stitched_captures_show_one_server_at_two_distances_without_alarm() -> None:
    # Excerpts taken days apart at the server (TTL 64) and near a client (TTL 60).
    for relative in ("nDPI/dns_fragmented.pcap", "zeek/dns-edns-ecs.pcap"):
        _, found = detect(realcap(relative))
        assert by_code(found, "hop_limit_anomaly") == [] and by_code(found, "rtt_anomaly") == []


def test_a_one_off_distance_within_minutes_is_flagged_but_not_across_days() -> None:
    # The twin of the stitched captures: five answers at TTL 64, then one at 60, minutes apart.
    traffic = Traffic()
    for n in range(6):
        q = query(f"s{n}.example.", msg_id=n + 1)
        traffic.exchange(q, answer(q, f"s{n}.example. A 192.0.2.1"),
                         at_ns=T0_NS + n * 60_000 * MS, port=47000 + n,
                         ttl=64 if n < 5 else 60)
    assert _feed(traffic, ForgeryConfig())[1] == ["hop_limit_anomaly"]
    spread = Traffic()
    spread.frames = [replace(f, ts_ns=f.ts_ns + (86_400_000 * MS if f.number > 10 else 0))
                     for f in traffic.frames]  # the last one a day later: no baseline then
    assert _feed(spread, ForgeryConfig())[1] == []


# --- RTT: a stable baseline per client-server pair -------------------------------------------


def test_real_iodine_tunnel_answers_from_other_code_paths_are_not_rtt_anomalies() -> None:
    # The iodine server answers after ~13 ms while polling and in ~0.1 ms otherwise.
    detector, found = detect(realcap("nDPI/dns-tunnel-iodine.pcap"))
    assert by_code(found, "rtt_anomaly") == []


def _pair_traffic(fast_ns: int, usual_ns: Callable[[int], int], *, retried: bool = False,
                  fast_first: bool = False) -> Traffic:
    """Ten exchanges of one client with one authoritative server; the third (or first, with
    ``fast_first``) answered after ``fast_ns``; with ``retried`` its query was sent twice."""
    traffic = Traffic()
    fast = 0 if fast_first else 2
    for n in range(10):
        q = query(f"p{n}.example.", msg_id=n + 1)
        at = T0_NS + n * 100 * MS
        if retried and n == fast:
            traffic.add(q, CLIENT, SERVER, 48000 + n, 53, at - 50 * MS)
        traffic.exchange(q, answer(q, f"p{n}.example. A 192.0.2.1"), at_ns=at,
                         port=48000 + n, rtt_ns=fast_ns if n == fast else usual_ns(n))
    return traffic


def test_a_fast_answer_to_a_retried_query_is_not_an_rtt_anomaly() -> None:
    detector, found = detect(_pair_traffic(100_000, lambda n: (20 + n) * MS, retried=True).frames)
    assert by_code(found, "rtt_anomaly") == []
    assert detector.counters()["rtt_skipped_retried"] == 1
    _, twin = detect(_pair_traffic(100_000, lambda n: (20 + n) * MS).frames)
    assert codes(twin) == ["rtt_anomaly"]


def test_a_pair_without_a_usual_rtt_is_not_judged() -> None:
    # RTTs between 2 and 60 ms (a tunnel, a long-polling server): no baseline to be faster than.
    detector, found = detect(_pair_traffic(100_000, lambda n: (2 if n % 2 else 60) * MS).frames)
    assert by_code(found, "rtt_anomaly") == []
    assert detector.counters()["rtt_skipped_unstable"] >= 1


def test_a_pair_that_answered_as_fast_before_is_not_flagged() -> None:
    traffic = _pair_traffic(100_000, lambda n: (20 + n) * MS)
    q = query("early.example.", msg_id=99)  # the same pair answered in 90 us before
    traffic.exchange(q, answer(q, "early.example. A 192.0.2.1"), at_ns=T0_NS - 500 * MS,
                     port=48999, rtt_ns=90_000)
    _, found = detect(sorted(traffic.frames, key=lambda f: f.ts_ns))
    assert by_code(found, "rtt_anomaly") == []


def test_clients_at_other_distances_from_the_tap_have_their_own_baselines() -> None:
    # A tap at the server: a nearby client's answers take 0.3 ms, a remote one's 20 ms.
    traffic = Traffic()
    for n in range(16):
        near = n % 2 == 0
        q = query(f"c{n}.example.", msg_id=n + 1)
        traffic.exchange(q, answer(q, f"c{n}.example. A 192.0.2.1"),
                         at_ns=T0_NS + n * 100 * MS, port=49000 + n,
                         client=CLIENT if near else "198.18.0.9",
                         rtt_ns=300_000 if near else (20 + n % 3) * MS)
    assert detect(traffic.frames)[1] == []
