"""The record walker in auditor.messages gives exactly what dnspython's lenient parse gives,
or declines; and repeats share their parsed records."""

from __future__ import annotations

import random

import dns.flags
import dns.message
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditor.messages import ParseTables, read_records

OWNERS = ["example.", "www.example.", "WWW.Example.", "a.b.example.", "*.example.", "other.test.",
          "x" * 63 + ".example."]
RDATA = {
    "A": ["192.0.2.1", "192.0.2.2"],
    "AAAA": ["2001:db8::1"],
    "NS": ["ns1.example.", "NS2.other.test."],
    "CNAME": ["www.example."],
    "MX": ["10 mail.example.", "20 www.example."],
    "SOA": ["ns1.example. hostmaster.example. 1 7200 3600 1209600 300"],
    "TXT": ['"v=spf1 -all"', '"a" "b"'],
    "SRV": ["0 5 443 www.example."],
    "PTR": ["www.example."],
    "DS": ["12345 13 2 " + "ab" * 32],
    "DNSKEY": ["257 3 13 " + "mdsswUyr3DPW132mOi8V9xESWE8jTo0dxCjjnopKl+GqJxpVXckHAeF+KkxLbxIL"
               "fDLUT0rAK9iUzy1L53eKGQ=="],
    "RRSIG": ["A 13 2 300 20250801000000 20250501000000 12345 example. "
              "c2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJl",
              "NS 13 1 3600 20250801000000 20250501000000 12345 example. "
              "c2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJl"],
    "NSEC": ["www.example. A RRSIG NSEC", "Z.example. NS DS RRSIG NSEC"],
    "NSEC3": ["1 1 0 - 2T7B4G4VSA5SMI47K61MV5BV1A22BOJR NS SOA RRSIG DNSKEY NSEC3PARAM"],
    "HTTPS": ['1 . alpn="h2"'],
    "TYPE65280": [r"\# 3 abcdef"],
}
RECORD = st.tuples(st.sampled_from(OWNERS), st.sampled_from(sorted(RDATA)), st.integers(0, 3),
                   st.sampled_from([0, 60, 300, 3600, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]))


def _rrset(owner: str, rdtype: str, pick: int, ttl: int) -> dns.rrset.RRset:
    texts = RDATA[rdtype]
    return dns.rrset.from_text(owner, ttl, "IN", rdtype, texts[pick % len(texts)])


def _wire(sections: list[list[tuple[str, str, int, int]]], *, edns: bool, flags: int,
          qname: str | None = "www.example.") -> bytes:
    """A message whose records appear one by one in the given order (so one RRset may be
    split and its owner spelt differently), rendered with name compression."""
    message = dns.message.Message(id=4321)
    message.flags = flags
    if qname is not None:
        message.question = [dns.rrset.RRset(dns.name.from_text(qname), dns.rdataclass.IN,
                                            dns.rdatatype.A)]
    for number, records in zip((1, 2, 3), sections, strict=True):
        message.sections[number] = [_rrset(*record) for record in records]
    if edns:
        message.use_edns(0, dns.flags.DO, 1232)
    return message.to_wire(max_size=65535)


def _shape(message: dns.message.Message) -> object:
    """Everything downstream reads of a parsed message, case and order kept."""
    def section(rrsets: list[dns.rrset.RRset]) -> list[object]:
        return [(rrset.name.to_text(), int(rrset.rdclass), int(rrset.rdtype),
                 int(rrset.covers), rrset.ttl, [rdata.to_text() for rdata in rrset])
                for rrset in rrsets]
    opt = None if message.opt is None else (message.edns, message.ednsflags, message.payload,
                                            [o.to_text() for o in message.options])
    return (message.id, int(message.flags), section(message.question), section(message.answer),
            section(message.authority), section(message.additional), opt)


def _reference(wire: bytes) -> dns.message.Message | None:
    try:
        return dns.message.from_wire(wire, continue_on_error=True, ignore_trailing=True)
    except Exception:  # noqa: BLE001
        return None


def assert_agrees(wire: bytes) -> dns.message.Message | None:
    fast = read_records(wire)
    reference = _reference(wire)
    if fast is None:
        return None
    assert reference is not None, "the walker accepted what dnspython rejects"
    assert not getattr(reference, "errors", []), "the walker accepted a record dnspython rejects"
    assert _shape(fast) == _shape(reference)
    return fast


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(RECORD, max_size=8), min_size=3, max_size=3), st.booleans(),
       st.sampled_from([0x8180, 0x8400, 0x8183, 0x8500 | dns.flags.AD, 0x0100]))
def test_generated_messages_parse_exactly_as_dnspython_parses_them(
        sections: list[list[tuple[str, str, int, int]]], edns: bool, flags: int) -> None:
    wire = _wire(sections, edns=edns, flags=flags)
    assert assert_agrees(wire) is not None  # well-formed IN messages are never declined


@settings(max_examples=400, deadline=None)
@given(st.lists(st.lists(RECORD, max_size=5), min_size=3, max_size=3), st.booleans(),
       st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=4),
       st.integers(0, 10_000))
def test_damaged_messages_agree_or_are_declined(
        sections: list[list[tuple[str, str, int, int]]], edns: bool,
        flips: list[tuple[int, int]], cut: int) -> None:
    wire = bytearray(_wire(sections, edns=edns, flags=0x8180))
    for where, value in flips:
        wire[where % len(wire)] = value
    assert_agrees(bytes(wire[: max(12, len(wire) - cut % 40)]))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_never_raise(data: bytes) -> None:
    assert_agrees(data)


def test_a_record_split_across_a_section_is_one_rrset_with_the_first_owner_spelling() -> None:
    wire = _wire([[("www.example.", "A", 0, 300), ("other.test.", "A", 0, 60),
                   ("WWW.Example.", "A", 1, 60)], [], []], edns=False, flags=0x8180)
    fast = assert_agrees(wire)
    assert fast is not None
    first = fast.answer[0]
    assert first.name.to_text() == "www.example." and first.ttl == 60 and len(first) == 2


def test_compressed_names_inside_records_are_followed_not_shared() -> None:
    # NS/MX/SOA/CNAME data are compressed against the question: bytes that differ by context
    # must never be taken for one another.
    one = _wire([[("example.", "NS", 0, 300)], [], []], edns=False, flags=0x8180,
                qname="ns1.example.")
    two = _wire([[("example.", "NS", 0, 300)], [], []], edns=False, flags=0x8180,
                qname="other.test.")
    for wire in (one, two):
        assert assert_agrees(wire) is not None


def test_repeats_with_other_ids_and_ttls_share_their_records() -> None:
    records = [[("www.example.", "A", 0, 300), ("www.example.", "RRSIG", 0, 300)], [], []]
    tables = ParseTables()  # one run's
    first = read_records(_wire(records, edns=True, flags=0x8180), tables)
    again = read_records(_wire(records, edns=True, flags=0x8580), tables)
    later = [[(owner, rdtype, pick, 250) for owner, rdtype, pick, _ in records[0]], [], []]
    decayed = read_records(_wire(later, edns=True, flags=0x8180), tables)
    elsewhere = read_records(_wire(records, edns=True, flags=0x8180))  # another run's tables
    assert elsewhere is not None and elsewhere.answer[0] is not first.answer[0]
    assert first is not None and again is not None and decayed is not None
    assert again.answer[0] is first.answer[0]  # identical RRset: the very same object
    assert decayed.answer[0] is not first.answer[0] and decayed.answer[0].ttl == 250
    assert next(iter(decayed.answer[0])) is next(iter(first.answer[0]))  # records shared


def test_unusual_messages_are_left_to_dnspython() -> None:
    chaos = dns.message.make_query("version.bind.", "TXT", "CH")
    assert read_records(chaos.to_wire()) is None
    update = dns.message.make_query("example.", "SOA")
    update.flags |= 5 << 11  # opcode UPDATE
    assert read_records(update.to_wire()) is None
    rng = random.Random(7)
    assert read_records(bytes(rng.randrange(256) for _ in range(11))) is None
