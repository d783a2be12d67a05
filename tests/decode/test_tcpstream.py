"""Tests for TCP reassembly and RFC 1035 4.2.2 length framing of DNS messages."""

from __future__ import annotations

import itertools
import random
import struct
from typing import Any

import dns.message
import dns.rrset
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditor.anomaly import AnomalyCode
from auditor.decode.dissect import IPDatagram
from auditor.decode.tcpstream import FIN, FLOW_OVERHEAD, RST, SYN, TCPReassembler
from auditor.decode.transport import TCPSegment, Transport, WireMessage
from auditor.ledger import Ledger, Reason

ACK = 0x10
CLIENT = "192.0.2.10"
SERVER = "198.51.100.53"
T0 = 1_700_000_000_000_000_000
SECOND = 1_000_000_000
MOD = 1 << 32


def query(name: str = "www.example.com.", ident: int = 1, rdtype: str = "A") -> bytes:
    return dns.message.make_query(name, rdtype, id=ident).to_wire()


def response(name: str = "www.example.com.", ident: int = 1, answers: int = 1) -> bytes:
    request = dns.message.make_query(name, "A", id=ident)
    message = dns.message.make_response(request)
    addresses = [f"192.0.2.{i + 1}" for i in range(answers)]
    message.answer.append(dns.rrset.from_text(name, 300, "IN", "A", *addresses))
    state = random.getstate()  # dnspython shuffles RRs on output; keep hypothesis' random intact
    wire = message.to_wire()
    random.setstate(state)
    return wire


def framed(wire: bytes) -> bytes:
    return struct.pack("!H", len(wire)) + wire  # RFC 1035 4.2.2


def stream_of(wires: list[bytes]) -> bytes:
    return b"".join(framed(w) for w in wires)


def split(data: bytes, cuts: list[int]) -> list[tuple[int, bytes]]:
    """(offset, bytes) segments of ``data`` cut at ``cuts`` (sorted, inside the data)."""
    bounds = [0, *cuts, len(data)]
    return [(lo, data[lo:hi]) for lo, hi in itertools.pairwise(bounds) if hi > lo]


class Harness:
    """Feeds segments with increasing frame numbers and keeps the ledger honest."""

    def __init__(self, **options: int) -> None:
        self.ledger = Ledger()
        self.reassembler = TCPReassembler(self.ledger, **options)
        self.messages: list[WireMessage] = []
        self.frame = 0

    def send(
        self,
        payload: bytes = b"",
        seq: int = 0,
        flags: int = ACK,
        *,
        src: str = CLIENT,
        sport: int = 40000,
        dst: str = SERVER,
        dport: int = 53,
        ts_ns: int = T0,
        frames: tuple[int, ...] | None = None,
    ) -> list[WireMessage]:
        self.frame += 1
        numbers = frames or (self.frame,)
        self.ledger.read(len(numbers))
        ip = IPDatagram(
            capture="test.pcap",
            frame=numbers[-1],
            frames=numbers,
            ts_ns=ts_ns,
            version=4,
            src=src,
            dst=dst,
            protocol=6,
            hop_limit=64,
            ip_id=None,
            payload=b"",
            owned_frames=len(numbers),
        )
        segment = TCPSegment(ip, sport, dport, seq % MOD, 0, flags, payload, True)
        out = self.reassembler.feed(segment)
        self.messages += out
        return out

    def expire(self, now_ns: int) -> list[WireMessage]:
        out = self.reassembler.expire(now_ns)
        self.messages += out
        return out

    def flush(self) -> list[WireMessage]:
        out = self.reassembler.flush()
        self.messages += out
        return out

    @property
    def wires(self) -> list[bytes]:
        return [m.wire for m in self.messages]

    def codes(self) -> list[AnomalyCode]:
        return [a.code for a in self.ledger.anomalies]

    def assert_balanced(self) -> None:
        owned = sum(m.owned_frames for m in self.messages)
        assert self.ledger.frames_read == sum(self.ledger.settled.values()) + owned


def send_stream(h: Harness, isn: int, segments: list[tuple[int, bytes]], **where: Any) -> None:
    for offset, chunk in segments:
        h.send(chunk, isn + 1 + offset, **where)


# --- framing ----------------------------------------------------------------------------------


def test_one_message_in_one_segment() -> None:
    h = Harness()
    wire = query()
    h.send(b"", 1000, SYN)
    [message] = h.send(framed(wire), 1001)
    assert message.wire == wire
    assert message.transport is Transport.TCP
    assert (message.src, message.sport, message.dst, message.dport) == (CLIENT, 40000, SERVER, 53)
    assert message.frames == (2,) and message.frame == 2 and message.owned_frames == 1
    assert message.capture == "test.pcap" and message.ts_ns == T0 and message.hop_limit == 64
    h.send(b"", 1001 + len(framed(wire)), FIN | ACK)
    h.flush()
    assert h.ledger.settled[Reason.TCP_CONTROL] == 2
    assert h.ledger.anomalies == []
    h.assert_balanced()


def test_several_messages_in_one_segment_are_owned_by_the_last() -> None:
    h = Harness()
    wires = [query(ident=1), query(ident=2), response(ident=1)]
    h.send(b"", 5, SYN)
    out = h.send(stream_of(wires), 6)
    assert [m.wire for m in out] == wires
    assert [m.owned_frames for m in out] == [0, 0, 1]
    assert all(m.frames == (2,) for m in out)
    h.flush()
    h.assert_balanced()


def test_ip_fragmented_segment_brings_all_its_frames() -> None:
    h = Harness()
    h.send(b"", 5, SYN)
    [message] = h.send(framed(response(answers=3)), 6, frames=(7, 9))
    assert message.frames == (7, 9) and message.frame == 9 and message.owned_frames == 2
    h.flush()
    h.assert_balanced()


def expected_attribution(
    stream: bytes, wires: list[bytes], segments: list[tuple[int, bytes]]
) -> list[tuple[tuple[int, ...], int]]:
    """(frames, owned) per message when segment i (frame i + 2) arrives in order."""
    result = []
    start = 0
    for wire in wires:
        end = start + 2 + len(wire)
        frames = tuple(
            i + 2 for i, (lo, chunk) in enumerate(segments) if lo < end and lo + len(chunk) > start
        )
        owned = sum(1 for lo, chunk in segments if start < lo + len(chunk) <= end)
        result.append((frames, owned))
        start = end
    assert start == len(stream)
    return result


def test_every_split_in_two_and_three_segments_gives_the_same_messages() -> None:
    wires = [query("a.example.", 1), response("a.example.", 1), query("b.example.", 2)]
    stream = stream_of(wires)
    positions = range(1, len(stream))
    splits = [[p] for p in positions] + [list(c) for c in itertools.combinations(positions, 2)]
    for cuts in splits:
        h = Harness()
        segments = split(stream, cuts)
        h.send(b"", 77, SYN)
        send_stream(h, 77, segments)
        h.flush()
        assert h.wires == wires, cuts
        attribution = [(m.frames, m.owned_frames) for m in h.messages]
        assert attribution == expected_attribution(stream, wires, segments), cuts
        assert [m.frame for m in h.messages] == [m.frames[-1] for m in h.messages]
        h.assert_balanced()
        assert h.ledger.anomalies == []


def test_byte_by_byte_equals_whole() -> None:
    wires = [response(f"n{i}.example.", i, answers=i % 3 + 1) for i in range(4)]
    stream = stream_of(wires)
    h = Harness()
    h.send(b"", 0, SYN)
    send_stream(h, 0, split(stream, list(range(1, len(stream)))))
    assert h.wires == wires
    assert [m.owned_frames for m in h.messages] == [len(framed(w)) for w in wires]
    h.flush()
    h.assert_balanced()


# --- order, duplication, overlap --------------------------------------------------------------

names = st.lists(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12),
    min_size=1,
    max_size=3,
).map(lambda labels: ".".join(labels) + ".")
dns_wires = st.one_of(
    st.builds(query, names, st.integers(0, 0xFFFF), st.sampled_from(["A", "AAAA", "DNSKEY"])),
    st.builds(response, names, st.integers(0, 0xFFFF), st.integers(1, 6)),
)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_any_segmentation_permutation_and_duplication(data: st.DataObject) -> None:
    wires = data.draw(st.lists(dns_wires, min_size=1, max_size=4))
    stream = stream_of(wires)
    size = len(stream)
    cuts = sorted(set(data.draw(st.lists(st.integers(1, size - 1), max_size=10))))
    segments = split(stream, cuts)
    copies = data.draw(st.lists(st.sampled_from(segments), max_size=4))
    spans = data.draw(st.lists(st.tuples(st.integers(0, size - 1), st.integers(1, 60)), max_size=4))
    resent = [(lo, stream[lo : lo + n]) for lo, n in spans]
    fin: list[tuple[int, bytes]] = [(size, b"")] if data.draw(st.booleans()) else []
    order = data.draw(st.permutations(segments + copies + resent + fin))
    isn = data.draw(st.one_of(st.integers(0, MOD - 1), st.integers(MOD - 300, MOD - 1)))
    h = Harness()
    h.send(b"", isn, SYN)
    for offset, chunk in order:
        h.send(chunk, isn + 1 + offset, ACK if chunk else FIN | ACK)
    h.flush()
    assert h.wires == wires
    assert h.ledger.anomalies == []
    h.assert_balanced()
    assert h.reassembler.flows == 0 and h.reassembler.held_bytes == 0


def test_retransmission_of_framed_bytes_is_settled() -> None:
    h = Harness()
    chunk = framed(query())
    h.send(b"", 10, SYN)
    h.send(chunk, 11)
    assert h.send(chunk, 11) == []
    assert h.ledger.settled[Reason.TCP_RETRANSMISSION] == 1
    assert h.ledger.anomalies == []
    h.flush()
    h.assert_balanced()


def test_retransmission_with_other_bytes_keeps_the_first_and_is_reported() -> None:
    h = Harness()
    real, forged = framed(response(ident=7)), framed(response(ident=8))
    h.send(b"", 10, SYN)
    [message] = h.send(real, 11)
    assert h.send(forged, 11) == []
    assert message.wire == real[2:]
    [anomaly] = h.ledger.anomalies
    assert anomaly.code is AnomalyCode.TCP_OVERLAP_CONFLICT
    assert anomaly.frames == (3,)
    assert anomaly.params["start_offset"] == 0 and anomaly.params["first_difference"] == 3
    assert h.ledger.settled[Reason.TCP_RETRANSMISSION] == 1
    h.flush()
    h.assert_balanced()


def test_conflict_with_out_of_order_bytes_keeps_the_first_seen() -> None:
    h = Harness()
    wire = response(answers=4)
    stream = framed(wire)
    tail = stream[20:]
    other = tail[:10] + bytes(b ^ 0xFF for b in tail[10:20]) + tail[20:]
    h.send(b"", 10, SYN)
    h.send(tail, 11 + 20)
    h.send(other, 11 + 20)
    [message] = h.send(stream[:20], 11)
    assert message.wire == wire
    [anomaly] = h.ledger.anomalies
    assert anomaly.code is AnomalyCode.TCP_OVERLAP_CONFLICT
    assert anomaly.frames == (2, 3)
    assert anomaly.params["first_difference"] == 30
    h.flush()
    h.assert_balanced()


def test_partial_overlap_contributes_only_new_bytes() -> None:
    h = Harness()
    wire = response(answers=2)
    stream = framed(wire)
    h.send(b"", 10, SYN)
    h.send(stream[:30], 11)
    altered = bytes(b ^ 1 for b in stream[20:30]) + stream[30:]
    [message] = h.send(altered, 11 + 20)
    assert message.wire == wire
    assert message.frames == (2, 3) and message.owned_frames == 2
    assert h.codes() == [AnomalyCode.TCP_OVERLAP_CONFLICT]
    h.flush()
    h.assert_balanced()


def test_sequence_wraparound() -> None:
    wires = [query(ident=i) for i in range(3)]
    stream = stream_of(wires)
    isn = MOD - 40
    h = Harness()
    h.send(b"", isn, SYN)
    send_stream(h, isn, split(stream, [25, 38, 39, 41, 70]))
    h.send(stream[30:45], isn + 1 + 30)  # a retransmission straddling the wrap
    assert h.wires == wires
    assert h.ledger.settled[Reason.TCP_RETRANSMISSION] == 1
    h.flush()
    h.assert_balanced()


def test_directions_are_independent_streams() -> None:
    h = Harness()
    q, r = framed(query(ident=5)), framed(response(ident=5))
    h.send(b"", 100, SYN)
    h.send(b"", 9000, SYN | ACK, src=SERVER, sport=53, dst=CLIENT, dport=40000)
    h.send(q[:5], 101)
    h.send(r[:7], 9001, src=SERVER, sport=53, dst=CLIENT, dport=40000)
    h.send(q[5:], 106)
    h.send(r[7:], 9008, src=SERVER, sport=53, dst=CLIENT, dport=40000)
    assert h.wires == [q[2:], r[2:]]
    assert (h.messages[1].src, h.messages[1].sport) == (SERVER, 53)
    h.flush()
    h.assert_balanced()


def test_payloadless_segments_settle_as_control() -> None:
    h = Harness()
    h.send(b"", 1, SYN)
    h.send(b"", 2, ACK)
    h.send(b"", 2, FIN | ACK)
    h.send(b"", 2, RST)
    h.send(b"", 99, ACK, sport=1234)  # unknown flow
    assert h.ledger.settled == {Reason.TCP_CONTROL: 5}
    h.flush()
    h.assert_balanced()


# --- mid-stream start, gaps -------------------------------------------------------------------


def test_midstream_start_resynchronises_on_the_next_message() -> None:
    wires = [response(f"r{i}.example.", i, answers=2) for i in range(3)]
    stream = stream_of(wires)
    segments = split(stream, [10, 30, len(framed(wires[0])) + 5, 150])
    h = Harness()
    send_stream(h, 500, segments[1:])  # no SYN, first segment never captured
    h.flush()
    assert h.wires == wires[1:]
    assert h.ledger.settled[Reason.TCP_MIDSTREAM] == 1  # the segment ending inside message 0
    [anomaly] = h.ledger.anomalies
    assert anomaly.code is AnomalyCode.TCP_MIDSTREAM
    assert anomaly.params["skipped_bytes"] == len(framed(wires[0])) - 10
    h.assert_balanced()


def test_midstream_start_on_a_message_boundary_skips_nothing() -> None:
    wires = [query(ident=i) for i in range(3)]
    segments = split(stream_of(wires), [len(framed(wires[0]))])
    h = Harness()
    send_stream(h, 7, segments[1:])
    assert h.wires == wires[1:]
    assert h.ledger.anomalies == []
    h.flush()
    h.assert_balanced()


def test_midstream_bytes_before_the_join_point_settle_as_midstream() -> None:
    wires = [query(ident=i) for i in range(2)]
    stream = stream_of(wires)
    first = len(framed(wires[0]))
    h = Harness()
    h.send(stream[first:], 1 + first)
    h.send(stream[:first], 1)  # arrives late: before the point where the capture joined
    assert h.wires == wires[1:]
    assert h.ledger.settled[Reason.TCP_MIDSTREAM] == 1
    h.flush()
    h.assert_balanced()


def test_gap_is_skipped_at_flush_and_later_messages_are_found() -> None:
    wires = [response(f"g{i}.example.", i, answers=3) for i in range(4)]
    stream = stream_of(wires)
    one = len(framed(wires[0]))
    cuts = [one + 10, one + 40, 2 * one + 20, 3 * one - 1]
    segments = split(stream, cuts)
    h = Harness()
    h.send(b"", 0, SYN)
    send_stream(h, 0, segments[:1] + segments[2:])  # [one+10, one+40) never captured
    assert h.wires == wires[:1]
    h.flush()
    assert h.wires == [wires[0], wires[2], wires[3]]
    gap = next(a for a in h.ledger.anomalies if a.code is AnomalyCode.TCP_GAP)
    assert (gap.params["start_offset"], gap.params["end_offset"]) == (one + 10, one + 40)
    assert gap.params["missing_bytes"] == 30
    assert h.ledger.settled[Reason.TCP_GAP] == 1  # the segment ending before the hole
    after_hole = h.messages[1]
    assert after_hole.frames == (3, 4, 5) and after_hole.owned_frames == 2
    assert h.codes() == [AnomalyCode.TCP_GAP]
    h.assert_balanced()


def test_late_fill_of_a_skipped_gap_is_settled_as_gap() -> None:
    wires = [response(f"l{i}.example.", i, answers=5) for i in range(4)]
    stream = stream_of(wires)
    one = len(framed(wires[0]))
    h = Harness(max_flow_bytes=2 * one)
    h.send(b"", 0, SYN)
    h.send(stream[:5], 1)
    h.send(stream[one:], 1 + one)  # over the cap: the hole [5, one) is declared lost
    assert h.wires == wires[1:]
    h.send(stream[5:one], 6)  # the missing bytes turn up too late
    assert h.wires == wires[1:]
    assert h.ledger.settled[Reason.TCP_GAP] == 2
    h.flush()
    h.assert_balanced()


def message_bounds(wires: list[bytes]) -> list[tuple[int, int]]:
    bounds, start = [], 0
    for wire in wires:
        bounds.append((start, start + 2 + len(wire)))
        start += 2 + len(wire)
    return bounds


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_midstream_join_finds_every_message_after_the_join(data: st.DataObject) -> None:
    wires = data.draw(st.lists(dns_wires, min_size=2, max_size=5))
    stream = stream_of(wires)
    cuts = sorted(set(data.draw(st.lists(st.integers(1, len(stream) - 1), max_size=8))))
    segments = split(stream, cuts)
    dropped = data.draw(st.integers(1, len(segments) - 1)) if len(segments) > 1 else 0
    kept = segments[dropped:]
    joined = kept[0][0] if kept else len(stream)
    h = Harness()
    send_stream(h, 12345, kept)
    h.flush()
    expected = [w for w, (lo, _) in zip(wires, message_bounds(wires), strict=True) if lo >= joined]
    assert h.wires == expected
    assert set(h.codes()) <= {AnomalyCode.TCP_MIDSTREAM}
    assert len(h.codes()) <= 1
    h.assert_balanced()


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_messages_after_a_gap_are_found(data: st.DataObject) -> None:
    wires = data.draw(st.lists(dns_wires, min_size=2, max_size=5))
    stream = stream_of(wires)
    cuts = sorted(data.draw(st.lists(st.integers(1, len(stream) - 1), min_size=2, unique=True)))
    segments = split(stream, cuts)
    lost = data.draw(st.integers(1, len(segments) - 2))
    hole_start, chunk = segments[lost]
    hole_end = hole_start + len(chunk)
    order = data.draw(st.permutations(segments[:lost] + segments[lost + 1 :]))
    h = Harness()
    h.send(b"", 0, SYN)
    send_stream(h, 0, order)
    h.flush()
    bounds = message_bounds(wires)
    expected = [
        w for w, (lo, hi) in zip(wires, bounds, strict=True) if hi <= hole_start or lo >= hole_end
    ]
    assert h.wires == expected
    gaps = [a for a in h.ledger.anomalies if a.code is AnomalyCode.TCP_GAP]
    assert [(a.params["start_offset"], a.params["end_offset"]) for a in gaps] == [
        (hole_start, hole_end)
    ]
    h.assert_balanced()


def test_per_flow_cap_skips_a_persisting_hole() -> None:
    wires = [response(f"c{i}.example.", i, answers=5) for i in range(6)]
    stream = stream_of(wires)
    one = len(framed(wires[0]))
    h = Harness(max_flow_bytes=3 * one)
    h.send(b"", 0, SYN)
    h.send(stream[:10], 1)
    for k in range(1, 6):  # message 0's tail never arrives
        h.send(stream[k * one : (k + 1) * one], 1 + k * one)
    assert h.wires[: len(wires) - 2] == wires[1 : len(wires) - 1]  # framed before the flush
    h.flush()
    assert h.wires == wires[1:]
    assert AnomalyCode.TCP_GAP in h.codes()
    h.assert_balanced()


# --- closing, expiry, caps --------------------------------------------------------------------


def test_fin_with_incomplete_message() -> None:
    wires = [query(ident=1), response(ident=1)]
    stream = stream_of(wires)
    cut = len(stream) - 7
    h = Harness()
    h.send(b"", 0, SYN)
    h.send(stream[:cut], 1, ACK | FIN)
    assert h.wires == wires[:1]
    assert h.ledger.settled[Reason.TCP_INCOMPLETE_MESSAGE] == 1
    [anomaly] = h.ledger.anomalies
    assert anomaly.code is AnomalyCode.TCP_INCOMPLETE_MESSAGE
    assert anomaly.params["length"] == len(wires[1])
    h.send(stream[:cut], 1)  # a retransmission after the close
    assert h.ledger.settled[Reason.TCP_RETRANSMISSION] == 1
    h.flush()
    h.assert_balanced()


def test_fin_before_missing_data_waits_for_it() -> None:
    wires = [query(ident=1), query(ident=2)]
    stream = stream_of(wires)
    h = Harness()
    h.send(b"", 0, SYN)
    h.send(stream[20:], 21, ACK | FIN)
    h.send(stream[:20], 1)
    assert h.wires == wires
    assert h.ledger.anomalies == []
    h.flush()
    h.assert_balanced()


def test_hole_before_fin_is_skipped_at_expiry() -> None:
    wires = [response(f"f{i}.example.", i, answers=2) for i in range(3)]
    stream = stream_of(wires)
    one = len(framed(wires[0]))
    h = Harness(timeout_ns=10 * SECOND)
    h.send(b"", 0, SYN)
    h.send(stream[:one], 1)
    h.send(stream[one + 4 :], 1 + one + 4, ACK | FIN)  # 4 bytes never captured
    assert h.wires == wires[:1] and h.reassembler.flows == 1
    h.expire(T0 + 11 * SECOND)
    assert h.wires == [wires[0], wires[2]]
    assert h.codes() == [AnomalyCode.TCP_GAP]
    assert h.ledger.anomalies[0].params["missing_bytes"] == 4
    assert h.ledger.settled[Reason.TCP_GAP] == 0  # the segment after the hole ends in message 2
    h.assert_balanced()


def test_late_syn_of_a_joined_connection_is_ignored() -> None:
    wires = [query(ident=1), query(ident=2)]
    stream = stream_of(wires)
    one = len(framed(wires[0]))
    h = Harness()
    h.send(stream[one:], 1001 + one)
    h.send(b"", 1000, SYN)  # captured after the data: same connection
    h.send(stream[one:], 1001 + one)
    assert h.wires == wires[1:]
    assert h.ledger.settled[Reason.TCP_RETRANSMISSION] == 1
    h.flush()
    h.assert_balanced()


def test_expiry_uses_capture_time() -> None:
    h = Harness(timeout_ns=10 * SECOND)
    stream = framed(query())
    h.send(b"", 0, SYN, ts_ns=T0)
    h.send(stream[:9], 1, ts_ns=T0 + SECOND)
    assert h.expire(T0 + 11 * SECOND) == []
    assert h.reassembler.flows == 1
    h.expire(T0 + 11 * SECOND + 1)
    assert h.reassembler.flows == 0
    assert h.ledger.settled[Reason.TCP_INCOMPLETE_MESSAGE] == 1
    assert h.codes() == [AnomalyCode.TCP_INCOMPLETE_MESSAGE]
    h.assert_balanced()


def test_max_flows_evicts_the_least_recently_active() -> None:
    h = Harness(max_flows=2)
    partial = framed(query())[:8]
    for port in (1, 2):
        h.send(b"", 0, SYN, sport=port)
        h.send(partial, 1, sport=port)
    h.send(partial[:1], 1, sport=1)  # flow 1 is the most recent again (a retransmission)
    h.send(b"", 0, SYN, sport=3)
    assert h.ledger.settled[Reason.TCP_EVICTED] == 1
    [anomaly] = h.ledger.anomalies
    assert anomaly.code is AnomalyCode.TCP_EVICTED and anomaly.params["sport"] == 2
    h.flush()
    h.assert_balanced()


def test_total_cap_evicts() -> None:
    cap = 2 * FLOW_OVERHEAD + 100  # each flow also costs FLOW_OVERHEAD
    h = Harness(max_total_bytes=cap, history_bytes=0)
    partial = framed(response(answers=6))[:60]
    h.send(b"", 0, SYN, sport=1)
    h.send(partial, 1, sport=1)
    h.send(b"", 0, SYN, sport=2)
    h.send(partial, 1, sport=2)
    assert h.ledger.settled[Reason.TCP_EVICTED] == 1
    assert h.reassembler.held_bytes <= cap
    h.flush()
    h.assert_balanced()


def test_new_syn_on_a_known_flow_starts_a_new_stream() -> None:
    first, second = framed(query(ident=1)), framed(query(ident=2))
    h = Harness()
    h.send(b"", 1000, SYN)
    h.send(first[:10], 1001)
    h.send(b"", 1000, SYN)  # a retransmitted SYN changes nothing
    h.send(b"", 777_777, SYN)
    h.send(second, 777_778)
    assert h.wires == [second[2:]]
    assert h.ledger.settled[Reason.TCP_INCOMPLETE_MESSAGE] == 1
    h.flush()
    h.assert_balanced()


def test_syn_with_data() -> None:
    h = Harness()
    [message] = h.send(framed(query()), 41, SYN)
    assert message.wire == query()
    h.flush()
    h.assert_balanced()


# --- hostile input ----------------------------------------------------------------------------


def test_resync_gives_up_after_the_limit() -> None:
    h = Harness(resync_limit=1000)
    garbage = b"\xff" * 600
    for k in range(4):
        h.send(garbage, 5 + k * 600)
    h.send(framed(query()), 5 + 4 * 600)  # too late: the flow was given up
    h.flush()
    assert h.wires == []
    assert h.ledger.settled[Reason.TCP_MIDSTREAM] == 5
    assert h.codes() == [AnomalyCode.TCP_MIDSTREAM]
    h.assert_balanced()


def test_garbage_then_messages_resynchronises() -> None:
    wires = [query(ident=3), response(ident=3)]
    h = Harness()
    h.send(b"\x00\x01" * 50 + stream_of(wires), 42)
    h.flush()
    assert h.wires == wires
    h.assert_balanced()


@pytest.mark.parametrize("synced", [True, False])
@settings(max_examples=100, deadline=None)
@given(
    chunks=st.lists(
        st.tuples(st.binary(max_size=80), st.integers(0, 400), st.integers(0, 0xFF)),
        max_size=25,
    )
)
def test_random_bytes_never_raise(synced: bool, chunks: list[tuple[bytes, int, int]]) -> None:
    h = Harness(max_flow_bytes=300, max_total_bytes=1000, resync_limit=500)
    if synced:
        h.send(b"", MOD - 100, SYN)
    for payload, offset, flags in chunks:
        h.send(payload, MOD - 99 + offset, flags & ~SYN if offset % 7 else flags)
        h.expire(T0)
    h.flush()
    h.assert_balanced()
    assert h.reassembler.flows == 0 and h.reassembler.held_bytes == 0
