"""Builders shared by unit tests: wire messages and parsed messages without a capture."""

from __future__ import annotations

import dns.message

from auditor.decode.transport import Transport, WireMessage
from auditor.ledger import Ledger
from auditor.messages import MessageParser, ObservedMessage

CLIENT = "192.0.2.10"
SERVER = "198.51.100.53"


def wire_message(
    data: bytes,
    *,
    src: str = CLIENT,
    sport: int = 40000,
    dst: str = SERVER,
    dport: int = 53,
    frame: int = 1,
    ts_ns: int = 1_700_000_000_000_000_000,
    transport: Transport = Transport.UDP,
) -> WireMessage:
    """A WireMessage as the decode stage would hand it on, settling one frame."""
    return WireMessage(
        transport=transport,
        src=src,
        sport=sport,
        dst=dst,
        dport=dport,
        wire=data,
        capture="test.pcap",
        frame=frame,
        frames=(frame,),
        ts_ns=ts_ns,
        hop_limit=64,
        owned_frames=1,
    )


def observe(
    message: dns.message.Message, *, ledger: Ledger | None = None, **where: object
) -> ObservedMessage:
    """Parse ``message`` through the real MessageParser, as if captured."""
    parser = MessageParser(ledger or Ledger())
    observed = parser.feed(wire_message(message.to_wire(), **where))  # type: ignore[arg-type]
    assert observed is not None
    return observed


def query_and_response(
    qname: str = "www.example.com.", rdtype: str = "A", *, dnssec: bool = True
) -> tuple[dns.message.Message, dns.message.Message]:
    """A query and an (empty) response to it."""
    query = dns.message.make_query(qname, rdtype, want_dnssec=dnssec)
    response = dns.message.make_response(query)
    return query, response
