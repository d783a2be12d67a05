"""Tests for query/response matching on flow, ID and question."""

from __future__ import annotations

import dns.message
import dns.opcode
from hypothesis import given, settings
from hypothesis import strategies as st

from auditor.ledger import Ledger
from auditor.messages import MessageParser
from auditor.transactions import Matcher
from tests.helpers import CLIENT, SERVER, observe, wire_message

T0 = 1_700_000_000_000_000_000
SECOND = 1_000_000_000


def _exchange(
    qname: str = "www.example.com.", *, msg_id: int = 1234
) -> tuple[dns.message.Message, dns.message.Message]:
    query = dns.message.make_query(qname, "A", id=msg_id)
    return query, dns.message.make_response(query)


def _send(message: dns.message.Message, *, ts: int = T0, frame: int = 1, sport: int = 40000):  # noqa: ANN202
    return observe(message, src=CLIENT, sport=sport, dst=SERVER, dport=53, ts_ns=ts, frame=frame)


def _reply(
    message: dns.message.Message,
    *,
    ts: int = T0,
    frame: int = 2,
    dport: int = 40000,
    src: str = SERVER,
):  # noqa: ANN202
    return observe(message, src=src, sport=53, dst=CLIENT, dport=dport, ts_ns=ts, frame=frame)


def test_response_matches_its_query() -> None:
    matcher = Matcher()
    query, response = _exchange()
    assert matcher.feed(_send(query)) is None
    transaction = matcher.feed(_reply(response))
    assert transaction is not None
    assert transaction.query is not None and transaction.query.wire.frame == 1
    assert transaction.response_index == 0
    assert matcher.stats.matched == 1


def test_response_without_query_is_unsolicited_not_an_error() -> None:
    matcher = Matcher()
    _, response = _exchange()
    transaction = matcher.feed(_reply(response))
    assert transaction is not None and transaction.query is None
    assert matcher.stats.unsolicited == 1


def test_wrong_id_wrong_port_wrong_server_do_not_match() -> None:
    matcher = Matcher()
    query, _ = _exchange(msg_id=1)
    matcher.feed(_send(query))
    _, other_id = _exchange(msg_id=2)
    assert matcher.feed(_reply(other_id)).query is None  # type: ignore[union-attr]
    _, same_id = _exchange(msg_id=1)
    assert matcher.feed(_reply(same_id, dport=40001)).query is None  # type: ignore[union-attr]
    assert matcher.feed(_reply(same_id, src="203.0.113.9")).query is None  # type: ignore[union-attr]
    assert matcher.stats.unsolicited == 3


def test_question_mismatch_is_not_a_match() -> None:
    matcher = Matcher()
    query, _ = _exchange("a.example.", msg_id=7)
    matcher.feed(_send(query))
    _, other = _exchange("b.example.", msg_id=7)
    transaction = matcher.feed(_reply(other))
    assert transaction is not None and transaction.query is None
    assert matcher.stats.question_mismatch == 1


def test_question_case_does_not_matter() -> None:
    matcher = Matcher()
    query, _ = _exchange("WwW.ExAmple.COM.", msg_id=7)
    matcher.feed(_send(query))
    _, lower = _exchange("www.example.com.", msg_id=7)
    assert matcher.feed(_reply(lower)).query is not None  # type: ignore[union-attr]


def test_second_response_gets_index_one() -> None:
    matcher = Matcher()
    query, response = _exchange()
    matcher.feed(_send(query))
    matcher.feed(_reply(response, frame=2))
    second = matcher.feed(_reply(response, frame=3))
    assert second is not None and second.response_index == 1
    assert second.query is not None
    assert matcher.stats.extra_responses == 1


def test_unanswered_queries_are_counted_on_expiry_and_flush() -> None:
    matcher = Matcher(timeout_ns=5 * SECOND)
    first, _ = _exchange("a.example.", msg_id=1)
    second, _ = _exchange("b.example.", msg_id=2)
    matcher.feed(_send(first, ts=T0))
    matcher.feed(_send(second, ts=T0 + 4 * SECOND))
    matcher.expire(T0 + 6 * SECOND)
    assert matcher.stats.unanswered == 1
    matcher.flush()
    assert matcher.stats.unanswered == 2


def test_retransmitted_query_counted_once() -> None:
    matcher = Matcher()
    query, response = _exchange()
    matcher.feed(_send(query, frame=1))
    matcher.feed(_send(query, frame=2))
    transaction = matcher.feed(_reply(response, frame=3))
    assert transaction is not None and transaction.query is not None
    assert transaction.query.wire.frame == 1
    assert matcher.stats.duplicate_queries == 1
    matcher.flush()
    assert matcher.stats.unanswered == 0


def test_pending_is_bounded() -> None:
    matcher = Matcher(max_pending=10)
    for n in range(25):
        query, _ = _exchange(f"n{n}.example.", msg_id=n)
        matcher.feed(_send(query))
    assert matcher.stats.evicted_queries == 15


@settings(max_examples=60, deadline=None)
@given(st.permutations(list(range(6))))
def test_every_response_matches_when_queries_come_first(order: list[int]) -> None:
    matcher = Matcher()
    exchanges = [_exchange(f"n{n}.example.", msg_id=100 + n) for n in range(6)]
    for query, _ in exchanges:
        matcher.feed(_send(query))
    for n in order:
        transaction = matcher.feed(_reply(exchanges[n][1]))
        assert transaction is not None and transaction.query is not None
        assert transaction.query.id == 100 + n
    matcher.flush()
    assert matcher.stats.matched == 6 and matcher.stats.unanswered == 0


def test_a_query_asked_again_after_its_answer_is_another_copy_of_the_exchange() -> None:
    matcher = Matcher()
    query, response = _exchange()
    matcher.feed(_send(query, frame=1))
    first = matcher.feed(_reply(response, frame=2))
    matcher.feed(_send(query, ts=T0 + SECOND, frame=3))  # the client asks again, same ID
    second = matcher.feed(_reply(response, ts=T0 + SECOND, frame=4))
    assert first is not None and first.query_copies == 1
    assert second is not None and second.query is not None
    assert second.query_copies == 2 and second.response_index == 1
    assert matcher.stats.duplicate_queries == 1 and matcher.stats.extra_responses == 1


def test_a_copy_still_waiting_keeps_the_exchange_for_the_query_timeout() -> None:
    matcher = Matcher(timeout_ns=30 * SECOND, linger_ns=2 * SECOND)
    query, response = _exchange()
    matcher.feed(_send(query, frame=1))
    matcher.feed(_reply(response, frame=2))
    matcher.feed(_send(query, ts=T0 + SECOND, frame=3))
    matcher.expire(T0 + 10 * SECOND)  # past the linger time, within the timeout
    late = matcher.feed(_reply(response, ts=T0 + 10 * SECOND, frame=4))
    assert late is not None and late.query is not None and late.query_copies == 2


def test_a_query_whose_question_cannot_be_read_matches_on_flow_and_id() -> None:
    # suricata-verify dns-forward-pointer: a compression pointer pointing forward.
    query, response = _exchange("codemonkey.net.", msg_id=0x8E04)
    wire = bytearray(query.to_wire())
    wire[12:14] = b"\xc0\x12"  # the question name becomes a pointer past the question
    matcher = Matcher()
    parsed = MessageParser(Ledger()).feed(wire_message(bytes(wire), src=CLIENT, sport=40000,
                                                       dst=SERVER, dport=53, ts_ns=T0, frame=1))
    assert parsed is not None and parsed.qname is None
    matcher.feed(parsed)
    transaction = matcher.feed(_reply(response))
    assert transaction is not None and transaction.query is not None


def test_question_mismatch_is_marked_on_the_unmatched_transaction() -> None:
    matcher = Matcher()
    query, _ = _exchange("a.example.", msg_id=7)
    matcher.feed(_send(query))
    _, other = _exchange("b.example.", msg_id=7)
    mismatch = matcher.feed(_reply(other))
    _, stranger = _exchange("b.example.", msg_id=8)
    unsolicited = matcher.feed(_reply(stranger))
    assert mismatch is not None and mismatch.question_mismatch
    assert unsolicited is not None and not unsolicited.question_mismatch


def test_opcode_of_notify_and_update_answers() -> None:
    matcher = Matcher()
    query, response = _exchange()
    assert matcher.feed(_reply(response)).answers_query  # type: ignore[union-attr]
    notify = dns.message.make_query("example.", "SOA", id=9)
    notify.set_opcode(dns.opcode.NOTIFY)
    ack = dns.message.make_response(notify)
    transaction = matcher.feed(_reply(ack))
    assert transaction is not None and transaction.opcode == dns.opcode.NOTIFY
    assert not transaction.answers_query
