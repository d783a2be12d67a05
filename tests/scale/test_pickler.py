"""The pickler that carries judged responses between processes (``audit --jobs 2``, ``live
--jobs 2``, Dask spools) restores every kind of record data, including the types whose own
pickle round trip fails in dnspython 2.9 (APL, OPENPGPKEY: found by the real captures)."""

from __future__ import annotations

import dataclasses
import io
import pickle

import dns.message
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditor.messages import MessageLeftBehind
from auditor.scale.pickling import DataclassPickler

SAMPLES = (
    ("A", "192.0.2.1"),
    ("AAAA", "2001:db8::1"),
    ("APL", "1:192.168.32.0/21 !1:192.168.38.0/28 2:2001:db8::/32"),
    ("OPENPGPKEY", "mQINBFiDgC8BEADBgQzLJQ=="),
    ("TXT", '"hello" "world"'),
    ("CAA", '0 issue "ca.example.net"'),
    ("DNSKEY", "257 3 13 mdsswUyr3DPW132mOi8V9xESWE8jTo0dxCjjnopKl+GqJxpVXckHAeF+ "
               "KkxLbxILfDLUT0rAK9iUzy1L53eKGQ=="),
    ("DS", "2371 13 2 1F987CC6583E92DF0890718C42D6A44C3D2B2D6A4B2D7A6C5E12F2F84D3A3E3B"),
    ("RRSIG", "A 13 2 300 20250701000000 20250601000000 42539 example. "
              "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw=="),
    ("NSEC", "b.example. A RRSIG NSEC"),
    ("NSEC3", "1 1 0 - 2T7B4G4VSA5SMI47K61MV5BV1A22BOJR A RRSIG"),
    ("LOC", "52 22 23.000 N 4 53 32.000 E -2.00m 0.00m 10000m 10m"),
    ("SVCB", '1 svc.example. alpn="h2,h3" port=8443'),
    ("HTTPS", "1 . ipv4hint=192.0.2.1"),
    ("SSHFP", "4 2 123456789abcdef67890123456789abcdef67890123456789abcdef123456789"),
    ("TYPE65280", r"\# 3 010203"),
)


def _round_trip(obj: object) -> object:
    buffer = io.BytesIO()
    DataclassPickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
    return pickle.loads(buffer.getvalue())


@pytest.mark.parametrize(("rdtype", "text"), SAMPLES, ids=[s[0] for s in SAMPLES])
def test_every_sample_type_comes_back_equal(rdtype: str, text: str) -> None:
    rdata = dns.rdata.from_text(dns.rdataclass.IN, rdtype, text)
    back = _round_trip(rdata)
    assert type(back) is type(rdata)
    assert back == rdata
    assert back.to_wire() == rdata.to_wire()


def test_a_whole_message_with_the_broken_types_comes_back() -> None:
    message = dns.message.from_text(
        "id 1234\nopcode QUERY\nrcode NOERROR\nflags QR RD RA\n;QUESTION\nexample. IN APL\n"
        ";ANSWER\nexample. 300 IN APL 1:192.0.2.0/24\n"
        "example. 300 IN OPENPGPKEY mQINBFiDgC8BEADBgQzLJQ==\n")
    back = _round_trip(message)
    assert isinstance(back, dns.message.Message)
    assert back.to_wire() == message.to_wire()


@settings(max_examples=200, deadline=None)
@given(rdtype=st.sampled_from([t for t in dns.rdatatype.RdataType
                               if not dns.rdatatype.is_metatype(t)]),
       wire=st.binary(max_size=64))
def test_any_parsable_record_data_comes_back_equal(rdtype: dns.rdatatype.RdataType,
                                                    wire: bytes) -> None:
    try:
        rdata = dns.rdata.from_wire(dns.rdataclass.IN, rdtype, wire, 0, len(wire))
    except Exception:  # noqa: BLE001 - bytes a stranger sent need not parse
        return
    back = _round_trip(rdata)
    assert back == rdata
    assert back.to_wire() == rdata.to_wire()


def test_judged_responses_come_back_equal_and_share_what_they_shared() -> None:
    # Slotted dataclasses (evidence, transactions, verdicts) travel as their field values and
    # are restored field by field (``work._restorer``): equal, and an object sent twice in one
    # pickle is one object again (the reporting process's identity memos rely on it).
    from auditor.engine.stream import EvidenceStream
    from tests.scale.helpers import bailiwick_traffic

    evidence = list(EvidenceStream(ports=frozenset({53})).run(iter(bailiwick_traffic())))
    assert evidence
    back = _round_trip([evidence, evidence[0].transaction])
    for sent, came in zip(evidence, back[0], strict=True):  # type: ignore[index]
        # Every field equal; a parsed message compares by identity, so its wire and records.
        for field in dataclasses.fields(sent):
            if field.name != "transaction":
                assert getattr(came, field.name) == getattr(sent, field.name), field.name
        for side in ("query", "response"):
            mine, theirs = getattr(sent.transaction, side), getattr(came.transaction, side)
            assert (theirs.wire, theirs.summary) == (mine.wire, mine.summary)
            assert theirs.problems == mine.problems
            if side == "response" and mine.message is not None:
                # A parsed response's message stays behind; reading it there is our bug.
                with pytest.raises(MessageLeftBehind):
                    _ = theirs.message
                continue
            assert (theirs.message is None) == (mine.message is None)
            if mine.message is not None:
                assert theirs.message.sections == mine.message.sections
    assert back[1] is back[0][0].transaction  # type: ignore[index]


def test_a_response_crosses_without_its_parsed_message() -> None:
    # The stages after the verdict read a response's records from its evidence; its parsed
    # message stayed in the process that parsed it (less to pickle and load). The message
    # of a query crosses (the forgery stage reads its header).
    from auditor.engine.stream import EvidenceStream
    from tests.scale.helpers import bailiwick_traffic

    evidence = list(EvidenceStream(ports=frozenset({53})).run(iter(bailiwick_traffic())))
    parsed = [e.transaction.response.parsed for e in evidence]
    assert all(p.message is not None for p in parsed)
    with_message = len(pickle.dumps(parsed[0]._message, pickle.HIGHEST_PROTOCOL))
    sent = pickle.dumps(parsed[0], pickle.HIGHEST_PROTOCOL)
    assert len(sent) < with_message
    back = _round_trip(evidence)
    assert [e.rrsets for e in back] == [e.rrsets for e in evidence]  # type: ignore[attr-defined]


def test_a_restorer_refuses_values_of_another_class() -> None:
    from auditor.messages import Summary
    from auditor.scale.pickling import _restore

    with pytest.raises(ValueError, match="unpack"):
        _restore(Summary, (None, 1))
