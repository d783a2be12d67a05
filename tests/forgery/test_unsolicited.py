"""Unmatched responses: capture loss (counted under a reason in stats.json) unless the capture
proves a spoofer's guess. Each normal case comes from a real capture or a synthetic one, with
an attack twin that still fires."""

from __future__ import annotations

from dataclasses import replace

import dns.message

from auditor.capture.frame import Frame
from tests.forgery.builders import (
    CLIENT,
    MS,
    SERVER,
    T0_NS,
    WARM_UP_NS,
    Traffic,
    answer,
    by_code,
    codes,
    query,
    warm_up,
)
from tests.forgery.realcaps import detect, patched, realcap

_ALARMS = ("unsolicited_response", "wrong_id_burst", "response_from_unqueried_server",
           "kaminsky_pattern")


def _reasons(counters: dict[str, object]) -> dict[str, int]:
    reasons = counters["unsolicited_by_reason"]
    assert isinstance(reasons, dict)
    return reasons


def _alarms(found: list) -> list[str]:  # type: ignore[type-arg]
    return [code for code in codes(found) if code in _ALARMS]


# --- real captures: capture loss --------------------------------------------------------------


def test_real_tcp_gap_loses_queries_not_an_alarm() -> None:
    # DNS over TCP to 8.8.8.8 with a gap: the query with ID 1 is in the lost bytes.
    detector, found = detect(realcap("suricata-verify/dns-tcp-ts-gap__input.pcap"))
    assert _alarms(found) == []
    # The response to it, and the one to the query after the gap (whose bytes the reassembler
    # can only deliver at the end), match nothing when they arrive.
    assert _reasons(detector.counters()) == {"tcp_capture_loss": 2}


def test_real_response_with_another_question_is_a_question_mismatch() -> None:
    # The response's name differs from the query's in three bytes (nDPI's test data).
    detector, found = detect(realcap("nDPI/dns-invalid-chars.pcap"))
    assert _alarms(found) == []
    assert _reasons(detector.counters()) == {"question_mismatch": 1}


def test_real_query_with_an_unreadable_question_still_matches_its_answer() -> None:
    # The query's name is a forward compression pointer: nothing to compare, match on ID.
    detector, found = detect(realcap("suricata-verify/dns__dns-forward-pointer__input.pcap"))
    assert _alarms(found) == []
    assert _reasons(detector.counters()) == {}


_TWO_X = "suricata-verify/dns__dns-udp-unsolicited-response__dns-response-2x.pcap"
"""Query 0x99ab, then 0.37 s later a response 0x9941 and the response 0x99ab, both with the
same answer 52.85.112.21 for client-cf.dropbox.com."""
_DROPBOX_ADDRESS = bytes([52, 85, 112, 21])


def test_real_wrong_id_response_right_after_the_capture_started_is_harmless() -> None:
    # The client's query is in the capture, so the capture-start guard does not apply; the
    # stray response repeats the accepted answer, which is what a late answer does.
    detector, found = detect(realcap(_TWO_X))
    assert _alarms(found) == []
    assert _reasons(detector.counters()) == {"same_answer": 1}


def _two_x_covered(frames: list[Frame]) -> list[Frame]:
    """The 2x capture starting 30 s earlier with another exchange of the same client and
    server: the capture now covers the flow well before the response."""
    earlier = Traffic()
    q = query("www.dropbox.com.", msg_id=7)
    earlier.exchange(q, answer(q, "www.dropbox.com. A 192.0.2.80"), client="10.16.1.11",
                     server="10.16.1.1", port=53000,
                     at_ns=frames[0].ts_ns - WARM_UP_NS)
    warm = [replace(f, capture=frames[0].capture, number=100 + f.number)
            for f in earlier.frames]
    return [*warm, *frames]


def test_real_wrong_id_response_repeating_the_accepted_answer_is_harmless() -> None:
    detector, found = detect(_two_x_covered(realcap(_TWO_X)))
    assert _alarms(found) == []
    assert _reasons(detector.counters()) == {"same_answer": 1}


def test_real_wrong_id_response_contradicting_the_accepted_answer_is_reported() -> None:
    frames = realcap(_TWO_X)
    frames[1] = patched(frames[1], _DROPBOX_ADDRESS, bytes([6, 6, 6, 6]))
    detector, found = detect(_two_x_covered(frames))
    reported = by_code(found, "unsolicited_response")
    assert len(reported) == 1
    assert reported[0].params["id"] == 0x9941 and reported[0].params["accepted_frame"] == 3
    assert _reasons(detector.counters()) == {"reported": 1}


def test_real_stitched_capture_answers_for_questions_never_asked_are_capture_loss() -> None:
    # Excerpts of several days: 1.1.1.1 answers ns2.weberdns.de A/AAAA to a client whose
    # queries for that name are not in the capture (and many answers of a one-sided tap).
    detector, found = detect(realcap("zeek/dns-edns-ecs.pcap"))
    assert _alarms(found) == []
    reasons = _reasons(detector.counters())
    assert reasons["not_targeted"] == 2
    assert set(reasons) <= {"not_targeted", "one_sided", "capture_start", "tcp_capture_loss"}


# --- synthetic: the rules' normal cases and attack twins --------------------------------------


def _flood(traffic: Traffic, *, at_ns: int, guesses: int = 15, port: int = 40000,
           address: str = "6.6.6.6") -> dns.message.Message:
    """A query from ``port`` and ``guesses`` wrong-ID answers to it, then the genuine one."""
    q = query("www.example.", msg_id=1000)
    traffic.add(q, CLIENT, SERVER, port, 53, at_ns)
    for n in range(guesses):
        fake = answer(query("www.example.", msg_id=2000 + n), f"www.example. A {address}")
        traffic.add(fake, SERVER, CLIENT, 53, port, at_ns + (n + 1) * 100_000)
    traffic.add(answer(q, "www.example. A 192.0.2.1"), SERVER, CLIENT, 53, port,
                at_ns + 20 * MS)
    return q


def test_a_flood_of_wrong_ids_at_the_capture_start_whose_query_was_captured_is_a_burst() -> None:
    # The capture-start guard is for answers to queries sent before the capture began; here
    # the query is captured and 15 other IDs answer it with another address (RFC 5452 4.3).
    traffic = Traffic()
    _flood(traffic, at_ns=T0_NS)
    detector, found = detect(traffic.frames)
    assert codes(found) == ["wrong_id_burst"]


def test_wrong_ids_at_the_capture_start_without_their_query_are_capture_loss() -> None:
    # Twin: the same answers without the client's query in the capture (it predates it).
    # The client is seen asking something else, so it is not a one-sided capture.
    traffic = Traffic()
    traffic.add(query("other.example.", msg_id=5), CLIENT, SERVER, 41000, 53, T0_NS - MS)
    _flood(traffic, at_ns=T0_NS)
    flood_query = traffic.frames[1].number
    frames = [f for f in traffic.frames if f.number != flood_query]
    detector, found = detect(frames)
    assert _alarms(found) == []
    assert _reasons(detector.counters()) == {"capture_start": 16}


def test_a_flood_of_wrong_ids_after_the_capture_start_is_a_burst() -> None:
    traffic = Traffic()
    warm_up(traffic)
    _flood(traffic, at_ns=T0_NS)
    detector, found = detect(sorted(traffic.frames, key=lambda f: f.ts_ns))
    assert codes(found) == ["wrong_id_burst"]
    assert found[0].params["distinct_ids"] == 15
    assert _reasons(detector.counters()) == {"burst": 15}


def test_wrong_ids_repeating_the_genuine_answer_are_not_a_burst() -> None:
    # A forwarder's queries lost by the tap: the late answers carry the accepted data.
    traffic = Traffic()
    warm_up(traffic)
    _flood(traffic, at_ns=T0_NS, address="192.0.2.1")
    detector, found = detect(sorted(traffic.frames, key=lambda f: f.ts_ns))
    assert _alarms(found) == []
    assert _reasons(detector.counters()) == {"same_answer": 15}


def test_wrong_ids_to_a_port_that_asked_nothing_of_that_server_are_not_a_burst() -> None:
    traffic = Traffic()
    warm_up(traffic)
    for n in range(15):  # answers to questions the client never asked from this port
        fake = answer(query(f"n{n}.example.", msg_id=2000 + n), f"n{n}.example. A 6.6.6.6")
        traffic.add(fake, SERVER, CLIENT, 53, 40000, T0_NS + (n + 1) * 100_000)
    detector, found = detect(sorted(traffic.frames, key=lambda f: f.ts_ns))
    assert _alarms(found) == []
    assert _reasons(detector.counters()) == {"not_targeted": 15}


def test_one_sided_capture_and_mdns_are_not_judged() -> None:
    traffic = Traffic()
    warm_up(traffic)
    stranger = "192.0.2.99"  # never seen asking: the tap sees one direction for it
    traffic.add(answer(query("a.example.", msg_id=5), "a.example. A 6.6.6.6"),
                SERVER, stranger, 53, 40001, T0_NS)
    announcement = answer(query("printer.local.", msg_id=0), "printer.local. A 192.0.2.7")
    traffic.add(announcement, "192.0.2.7", "224.0.0.251", 5353, 5353, T0_NS + 1 * MS)
    traffic.add(announcement, "192.0.2.7", CLIENT, 5353, 5353, T0_NS + 2 * MS)
    detector, found = detect(sorted(traffic.frames, key=lambda f: f.ts_ns),
                             ports=frozenset({53, 5353}))  # as with --port 5353
    assert _alarms(found) == []
    assert _reasons(detector.counters()) == {"one_sided": 1, "multicast": 2}
