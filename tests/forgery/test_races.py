"""Races: more distinct answers than the client sent copies of the query. Retransmitted
responses and the answers to a retried or re-asked query are normal; each normal case has an
attack twin that still fires."""

from __future__ import annotations

from tests.forgery.builders import (
    CLIENT,
    MS,
    SERVER,
    T0_NS,
    Traffic,
    answer,
    by_code,
    query,
    run,
)
from tests.forgery.realcaps import detect, patched, realcap

# zeek/dns-two-responses.pcap: one query for www.cmu.edu A, then two identical responses
# 88 us apart carrying 128.2.10.163, 128.2.1.8 and 128.237.148.168.
_TWO_RESPONSES = "zeek/dns-two-responses.pcap"
_CMU_ADDRESS = bytes([128, 2, 10, 163])


def test_real_duplicated_response_is_a_retransmission_not_a_race() -> None:
    detector, found = detect(realcap(_TWO_RESPONSES))
    assert by_code(found, "response_race") == []
    assert detector.counters()["retransmissions"] == 1


def test_real_duplicated_response_with_another_address_is_a_race() -> None:
    frames = realcap(_TWO_RESPONSES)
    frames[2] = patched(frames[2], _CMU_ADDRESS, bytes([6, 6, 6, 6]))
    _, found = detect(frames)
    races = by_code(found, "response_race")
    assert len(races) == 1
    assert races[0].params["conflicting_frames"] == [2, 3]
    assert races[0].params["query_copies"] == 1


def test_real_two_queries_on_one_port_each_get_their_answer() -> None:
    # Both queries leave port 53 for 8.8.8.8 (IDs 1 and 2, A then AAAA): two exchanges.
    _, found = detect(realcap("suricata-verify/dns__dns-udp-double-request-response__"
                              "dns-udp-double-request-response.pcap"))
    assert found == []


def _retried(copies: int, answers: list[str], *, reask: bool = False) -> Traffic:
    """``copies`` copies of one query (same ID and port), then the answers in order; with
    ``reask`` the second copy is sent after the first answer (the client asks again)."""
    traffic = Traffic()
    q = query("cdn.example.", msg_id=4242)
    at = T0_NS
    traffic.add(q, CLIENT, SERVER, 40000, 53, at)
    if not reask:
        for _ in range(copies - 1):
            at += 1000 * MS  # a stub resolver's retry after its timeout
            traffic.add(q, CLIENT, SERVER, 40000, 53, at)
    for n, address in enumerate(answers):
        at += 20 * MS
        traffic.add(answer(q, f"cdn.example. A {address}"), SERVER, CLIENT, 53, 40000, at)
        if reask and n < copies - 1:
            at += 500 * MS
            traffic.add(q, CLIENT, SERVER, 40000, 53, at)
    return traffic


def test_each_copy_of_a_retried_query_may_get_its_own_answer() -> None:
    # A load-balanced name answered differently to the two copies: not a race.
    assert by_code(run(_retried(2, ["192.0.2.1", "192.0.2.2"])), "response_race") == []


def test_the_same_two_answers_to_a_query_sent_once_are_a_race() -> None:
    races = by_code(run(_retried(1, ["192.0.2.1", "192.0.2.2"])), "response_race")
    assert len(races) == 1


def test_a_client_that_asks_again_after_the_answer_is_not_raced() -> None:
    assert by_code(run(_retried(2, ["192.0.2.1", "192.0.2.2"], reask=True)),
                   "response_race") == []


def test_more_distinct_answers_than_copies_are_a_race() -> None:
    races = by_code(run(_retried(2, ["192.0.2.1", "192.0.2.2", "6.6.6.6"])), "response_race")
    assert len(races) == 1
    assert races[0].params["count"] == 3 and races[0].params["query_copies"] == 2
