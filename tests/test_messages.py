"""Tests for lenient DNS parsing, the parse cache and frame settlement."""

from __future__ import annotations

import pickle

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rrset
from hypothesis import given, settings
from hypothesis import strategies as st

from auditor.ledger import Ledger, Reason
from auditor.messages import HashedName, MessageParser, ParsedMessage, ParseTables, summarise
from tests.helpers import query_and_response, wire_message


def test_parses_query_and_settles_its_frame() -> None:
    ledger = Ledger()
    query, _ = query_and_response()
    observed = MessageParser(ledger).feed(wire_message(query.to_wire()))
    assert observed is not None
    assert not observed.is_response
    assert observed.id == query.id
    assert observed.qname is not None and observed.qname.to_text() == "www.example.com."
    assert observed.qtype == 1
    assert ledger.settled[Reason.DNS_MESSAGE] == 1


def test_identical_messages_with_other_ids_parse_once() -> None:
    ledger = Ledger()
    parser = MessageParser(ledger)
    _, response = query_and_response()
    response.answer.append(dns.rrset.from_text("www.example.com.", 300, "IN", "A", "192.0.2.1"))
    ids = []
    for new_id in (1, 2, 3):
        response.id = new_id
        observed = parser.feed(wire_message(response.to_wire()))
        assert observed is not None and observed.message is not None
        ids.append(observed.id)
    assert ids == [1, 2, 3]
    assert parser.parsed == 1
    assert parser.cache_hits == 2


def test_short_message_is_a_parse_error_not_an_exception() -> None:
    ledger = Ledger()
    assert MessageParser(ledger).feed(wire_message(b"\x00\x01\x02")) is None
    assert ledger.settled[Reason.DNS_PARSE_ERROR] == 1
    assert ledger.take_anomalies()[0].code == "dns_parse_error"


def test_bad_record_length_is_recorded_as_a_problem() -> None:
    _, response = query_and_response(dnssec=False)
    response.answer.append(dns.rrset.from_text("www.example.com.", 300, "IN", "A", "192.0.2.1"))
    wire = bytearray(response.to_wire())
    wire[-5] = 0x03  # the A record's RDLENGTH (last 6 bytes: length + address) becomes 3
    observed = MessageParser(Ledger()).feed(wire_message(bytes(wire)))
    assert observed is not None
    assert observed.message is not None, "the header and question must still be usable"
    assert observed.problems, "the bad record must be reported, not silently dropped"


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=600))
def test_random_bytes_never_raise_and_settle_once(data: bytes) -> None:
    ledger = Ledger()
    MessageParser(ledger).feed(wire_message(data))
    assert sum(ledger.settled.values()) == 1


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=0, max_value=400), st.binary(min_size=1, max_size=8))
def test_corrupted_real_message_never_raises(position: int, junk: bytes) -> None:
    _, response = query_and_response()
    response.answer.append(dns.rrset.from_text("www.example.com.", 300, "IN", "A", "192.0.2.1"))
    wire = bytearray(response.to_wire())
    position %= len(wire)
    wire[position : position + len(junk)] = junk
    ledger = Ledger()
    MessageParser(ledger).feed(wire_message(bytes(wire)))
    assert sum(ledger.settled.values()) == 1


def test_response_keeps_flags_from_header() -> None:
    query = dns.message.make_query("example.com.", "A")
    response = dns.message.make_response(query)
    observed = MessageParser(Ledger()).feed(wire_message(response.to_wire()))
    assert observed is not None and observed.is_response


_LABEL = st.binary(min_size=1, max_size=12).filter(lambda b: b"." not in b and b"\\" not in b)


@settings(max_examples=200, deadline=None)
@given(
    labels=st.lists(_LABEL, min_size=0, max_size=5),
    rdtype=st.sampled_from(["A", "AAAA", "DNSKEY", "DS", "TXT", "NS"]),
    dnssec=st.booleans(),
    rcode=st.sampled_from([0, 2, 3, 5]),
    ede=st.lists(st.integers(min_value=0, max_value=30), max_size=2),
    answers=st.integers(min_value=0, max_value=3),
)
def test_summary_agrees_with_dnspython(
    labels: list[bytes], rdtype: str, dnssec: bool, rcode: int, ede: list[int], answers: int
) -> None:
    name = dns.name.Name([*labels, b""])
    query = dns.message.make_query(name, rdtype, want_dnssec=dnssec)
    response = dns.message.make_response(query)
    response.set_rcode(rcode)
    options = [dns.edns.EDEOption(code) for code in ede]
    if dnssec or options:
        response.use_edns(0, dns.flags.DO if dnssec else 0, 1232, options=options)
    for n in range(answers):
        response.answer.append(dns.rrset.from_text(name, 60, "IN", "A", f"192.0.2.{n}"))
    for message in (query, response):
        wire = message.to_wire()
        summary = summarise(wire)
        parsed = dns.message.from_wire(wire)
        assert summary.readable and summary.problem is None
        assert summary.qname == parsed.question[0].name
        assert summary.qtype == parsed.question[0].rdtype
        assert summary.rcode == parsed.rcode()
        assert summary.edns == (parsed.edns >= 0)
        assert summary.do == bool(parsed.ednsflags & dns.flags.DO)
        expected = [o.code for o in parsed.options if isinstance(o, dns.edns.EDEOption)]
        assert list(summary.ede) == expected


def test_question_key_ignores_case() -> None:
    upper = dns.message.make_query("WwW.ExAmPlE.", "A").to_wire()
    lower = dns.message.make_query("www.example.", "A").to_wire()
    assert summarise(upper).question_key == summarise(lower).question_key


def test_forward_pointer_in_question_is_a_parse_error() -> None:
    query = dns.message.make_query("www.example.", "A")
    wire = bytearray(query.to_wire())
    # Rewrite the question name as a pointer to a copy appended after the question.
    name_wire = dns.name.from_text("www.example.").to_wire()
    tail = bytes(wire[12 + len(name_wire) :])
    pointer = (0xC000 | (12 + 2 + len(tail))).to_bytes(2, "big")
    rebuilt = bytes(wire[:12]) + pointer + tail + name_wire
    summary = summarise(rebuilt)
    # Nothing precedes the first question, so a pointer there can only point forward, which
    # RFC 1035 4.1.4 does not allow ("a prior occurrence"): unreadable, reported, no raise.
    assert not summary.readable
    assert summary.problem is not None and "question" in summary.problem


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=12, max_size=300))
def test_summarise_never_raises(data: bytes) -> None:
    summarise(data)


def test_question_name_keeps_its_case_when_names_are_memoised() -> None:
    tables = ParseTables()  # one run's: the names are memoised across the three
    lower = summarise(dns.message.make_query("www.example.", "A").to_wire(), tables)
    upper = summarise(dns.message.make_query("WwW.ExAmPlE.", "A").to_wire(), tables)
    again = summarise(dns.message.make_query("WwW.ExAmPlE.", "AAAA").to_wire(), tables)
    assert lower.qname is not None and upper.qname is not None and again.qname is not None
    assert lower.qname.labels == (b"www", b"example", b"")
    assert upper.qname.labels == (b"WwW", b"ExAmPlE", b"")
    assert again.qname.labels == upper.qname.labels


def test_question_name_cut_short_is_reported_as_such() -> None:
    wire = dns.message.make_query("www.example.", "A").to_wire()
    summary = summarise(wire[: 12 + 6])  # inside the label "example"
    assert not summary.readable
    assert summary.problem == "question unreadable: IndexError: question name cut short"


def test_cached_message_carries_its_summary() -> None:
    parser = MessageParser(Ledger())
    query, _ = query_and_response()
    first = parser.feed(wire_message(query.to_wire()))
    second = parser.feed(wire_message(query.to_wire()))
    assert first is not None and second is not None
    assert second.parsed is first.parsed and second.summary is first.parsed.summary
    assert first.summary == summarise(query.to_wire())


def test_a_cut_message_reports_each_parse_problem_once() -> None:
    # dnspython's lenient parse records the failure of a record cut short twice.
    response = dns.message.make_response(dns.message.make_query("www.example.", "A"))
    response.answer.append(
        dns.rrset.from_text("www.example.", 300, "IN", "A", "192.0.2.1", "192.0.2.2"))
    problems = ParsedMessage(response.to_wire()[:-3]).problems
    assert len(problems) == 1 and problems[0].startswith("FormError at offset")


_LABELS = st.lists(st.binary(min_size=1, max_size=63), max_size=4).map(
    lambda labels: (*labels, b""))


@settings(max_examples=300, deadline=None)
@given(labels=_LABELS, upper=st.booleans())
def test_a_hashed_name_is_the_name_it_copies(labels: tuple[bytes, ...], upper: bool) -> None:
    """Same hash (before and after it is cached), equality, order, text and dictionary slot as
    dnspython's name of the same labels in another case; pickled, the labels alone go and a
    ``HashedName`` comes back."""
    plain = dns.name.Name([label.upper() if upper else label for label in labels])
    hashed = HashedName(labels)
    assert type(hashed) is HashedName
    assert hash(hashed) == hash(plain) == hash(hashed)
    assert hashed == plain and not hashed != plain and plain.fullcompare(hashed)[1] == 0
    assert hashed.to_text() == dns.name.Name(labels).to_text()
    assert {plain: 1}[hashed] == 1 and {hashed: 2}[plain] == 2
    back = pickle.loads(pickle.dumps(hashed, pickle.HIGHEST_PROTOCOL))
    assert type(back) is HashedName and back.labels == hashed.labels
    assert not hasattr(back, "_hash")  # the cache stayed behind
    assert hash(back) == hash(plain)


def test_the_walker_makes_hashed_names() -> None:
    """The record walker's owner and question names are ``HashedName``s (the tables keyed by
    them are looked up again and again)."""
    _, response = query_and_response("www.example.com.", "A")
    response.answer.append(dns.rrset.from_text("www.example.com.", 300, "IN", "A",
                                               "192.0.2.1"))
    parsed = ParsedMessage(response.to_wire(), tables=ParseTables(100))
    message = parsed.message
    assert message is not None
    assert type(message.question[0].name) is HashedName
    assert all(type(rrset.name) is HashedName for rrset in message.answer)
