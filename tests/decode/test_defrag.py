"""IP defragmentation: any order, duplicates, overlaps, conflicts, expiry, caps, ledger balance."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, UDP, fragment
from scapy.layers.inet6 import IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, fragment6
from scapy.packet import Packet, Raw

from auditor.anomaly import AnomalyCode
from auditor.capture.frame import LinkType
from auditor.decode.defrag import Defragmenter
from auditor.decode.dissect import IPDatagram, dissect
from auditor.decode.transport import DNS_PORTS, UDPDatagram, split_transport
from auditor.ledger import Ledger, Reason
from tests.decode.packets import TS, V4_DST, V4_SRC, V6_DST, V6_SRC, frame

SECOND = 1_000_000_000


def dns_like(size: int) -> bytes:
    return bytes((i * 7 + 3) % 251 for i in range(size))


def v4_reference() -> IP:
    return (
        IP(src=V4_SRC, dst=V4_DST, id=0xBEEF, ttl=50) / UDP(sport=53, dport=5000) / dns_like(1900)
    )


def v6_reference(extra: Packet | None = None) -> IPv6:
    upper = UDP(sport=53, dport=5000) / dns_like(3100)
    inner = IPv6ExtHdrFragment(id=0x12345678) / (upper if extra is None else extra / upper)
    return IPv6(src=V6_SRC, dst=V6_DST, hlim=60) / inner


def v4_fragments() -> list[bytes]:
    pieces = [bytes(p) for p in fragment(v4_reference(), fragsize=520)]
    assert len(pieces) == 4
    return pieces


def v6_fragments(extra: Packet | None = None) -> list[bytes]:
    pieces = [bytes(p) for p in fragment6(v6_reference(extra), 1280)]
    assert len(pieces) == 3
    return pieces


def whole(raw: bytes) -> IPDatagram:
    """The unfragmented reference, dissected."""
    datagram = dissect(frame(raw, LinkType.RAW), Ledger())
    assert datagram is not None and datagram.fragment is None
    return datagram


def unfragmented_v6(extra: Packet | None = None) -> IPDatagram:
    packet = IPv6(src=V6_SRC, dst=V6_DST, hlim=60)
    upper = UDP(sport=53, dport=5000) / dns_like(3100)
    return whole(bytes(packet / (upper if extra is None else extra / upper)))


class Run:
    """Feeds raw IP packets through dissect and a Defragmenter, checking the ledger each step."""

    def __init__(self, **limits: int) -> None:
        self.ledger = Ledger()
        self.defrag = Defragmenter(self.ledger, **limits)
        self.out: list[IPDatagram] = []
        self.number = 0

    def feed(self, raw: bytes, ts_ns: int | None = None) -> IPDatagram | None:
        self.number += 1
        self.ledger.read()
        when = TS + self.number if ts_ns is None else ts_ns
        datagram = dissect(frame(raw, LinkType.RAW, number=self.number, ts_ns=when), self.ledger)
        assert datagram is not None
        result = self.defrag.feed(datagram)
        if result is not None:
            self.out.append(result)
        self.check_balance()
        return result

    def check_balance(self) -> None:
        """frames read == settled + held in the defragmenter + owned by datagrams handed on."""
        handed_on = sum(d.owned_frames for d in self.out)
        settled = sum(self.ledger.settled.values())
        assert self.ledger.frames_read == settled + self.defrag.held_frames + handed_on

    def codes(self) -> list[AnomalyCode]:
        return [a.code for a in self.ledger.anomalies]


def assert_same_datagram(got: IPDatagram, reference: IPDatagram) -> None:
    for name in ("version", "src", "dst", "protocol", "hop_limit", "ip_id", "payload"):
        assert getattr(got, name) == getattr(reference, name), name
    assert got.fragment is None


def test_whole_datagrams_pass_through_unchanged() -> None:
    run = Run()
    datagram = whole(bytes(v4_reference()))
    assert run.defrag.feed(datagram) is datagram


@pytest.mark.parametrize("order", list(itertools.permutations(range(4))))
def test_ipv4_any_order(order: tuple[int, ...]) -> None:
    pieces = v4_fragments()
    run = Run()
    results = [run.feed(pieces[i]) for i in order]
    assert results[:3] == [None, None, None]
    done = results[3]
    assert done is not None
    reference = dataclasses.replace(whole(bytes(v4_reference())), ip_id=0xBEEF)
    assert_same_datagram(done, reference)
    assert (done.frame, done.frames, done.ts_ns, done.owned_frames) == (4, (1, 2, 3, 4), TS + 4, 4)
    udp = split_transport(done, DNS_PORTS, run.ledger, verify_checksums=True)
    assert isinstance(udp, UDPDatagram)
    assert udp.checksum_ok is True
    assert udp.payload == dns_like(1900)
    assert run.defrag.held_frames == 0
    assert run.ledger.anomalies == []


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_ipv6_any_order(order: tuple[int, ...]) -> None:
    pieces = v6_fragments()
    run = Run()
    results = [run.feed(pieces[i]) for i in order]
    done = results[2]
    assert results[:2] == [None, None] and done is not None
    reference = dataclasses.replace(unfragmented_v6(), ip_id=0x12345678)
    assert_same_datagram(done, reference)
    assert done.owned_frames == 3
    udp = split_transport(done, DNS_PORTS, run.ledger, verify_checksums=True)
    assert isinstance(udp, UDPDatagram) and udp.checksum_ok is True


def test_ipv6_extension_headers_inside_the_fragmentable_part_are_walked() -> None:
    extra = IPv6ExtHdrDestOpt()
    run = Run()
    results = [run.feed(piece) for piece in reversed(v6_fragments(extra))]
    done = results[-1]
    assert done is not None
    assert done.protocol == 17
    assert done.payload == unfragmented_v6(extra).payload


def test_ipv6_fragment_inside_a_reassembled_payload_is_malformed() -> None:
    run = Run()
    inner = bytes(IPv6ExtHdrFragment(nh=17, id=9, m=1)) + bytes(UDP() / b"abcdefgh")
    base = IPv6(src=V6_SRC, dst=V6_DST)
    first = base / IPv6ExtHdrFragment(nh=44, id=1, m=1) / Raw(inner[:16])
    last = base / IPv6ExtHdrFragment(nh=44, id=1, offset=2) / Raw(inner[16:])
    assert run.feed(bytes(first)) is None
    assert run.feed(bytes(last)) is None
    assert run.ledger.settled == {Reason.MALFORMED_IP: 2}


@st.composite
def arrivals(draw: st.DrawFn, count: int) -> list[int]:
    """Every fragment index at least once, some repeated, in any order."""
    repeats = draw(st.lists(st.integers(0, count - 1), max_size=5))
    return draw(st.permutations([*range(count), *repeats]))


@settings(max_examples=120, deadline=None)
@given(version=st.sampled_from([4, 6]), data=st.data())
def test_any_order_with_duplicates_gives_the_unfragmented_datagram(
    version: int, data: st.DataObject
) -> None:
    pieces = v4_fragments() if version == 4 else v6_fragments()
    order = data.draw(arrivals(len(pieces)))
    run = Run()
    for index in order:
        run.feed(pieces[index])
    assert len(run.out) == 1
    done = run.out[0]
    reference = whole(bytes(v4_reference())) if version == 4 else unfragmented_v6()
    assert done.payload == reference.payload
    assert (done.src, done.dst, done.protocol) == (reference.src, reference.dst, 17)
    assert done.owned_frames == len(pieces)
    completing = next(
        n for n in range(1, len(order) + 1) if set(order[:n]) == set(range(len(pieces)))
    )
    assert done.frame == completing
    assert done.frames == tuple(range(1, completing + 1))
    assert run.ledger.settled == (
        {Reason.FRAGMENT_DUPLICATE: len(order) - len(pieces)} if len(order) > len(pieces) else {}
    )
    assert run.defrag.held_frames == 0
    assert run.ledger.pending == done.owned_frames


# --- hand-made fragments ------------------------------------------------------------------------


def frag4(offset: int, data: bytes, more: bool, ident: int = 77) -> bytes:
    flags = "MF" if more else 0
    return bytes(
        IP(src=V4_SRC, dst=V4_DST, id=ident, proto=17, flags=flags, frag=offset // 8) / Raw(data)
    )


PAYLOAD = dns_like(40)


def test_overlap_with_identical_bytes_is_accepted_and_noted() -> None:
    run = Run()
    run.feed(frag4(0, PAYLOAD[:16], True))
    run.feed(frag4(8, PAYLOAD[8:32], True))
    done = run.feed(frag4(32, PAYLOAD[32:], False))
    assert done is not None and done.payload == PAYLOAD
    assert done.owned_frames == 3
    assert run.codes() == [AnomalyCode.FRAGMENT_OVERLAP_SAME]


def test_exact_duplicate_in_a_set() -> None:
    run = Run()
    run.feed(frag4(0, PAYLOAD[:16], True))
    run.feed(frag4(0, PAYLOAD[:16], True))
    done = run.feed(frag4(16, PAYLOAD[16:], False))
    assert done is not None
    assert done.frames == (1, 2, 3) and done.owned_frames == 2
    assert run.ledger.settled == {Reason.FRAGMENT_DUPLICATE: 1}


def test_conflicting_overlap_discards_the_whole_set() -> None:
    forged = bytes(b ^ 0xFF for b in PAYLOAD[16:32])
    run = Run()
    run.feed(frag4(16, PAYLOAD[16:32], True))
    run.feed(frag4(32, PAYLOAD[32:], False))
    assert run.feed(frag4(8, PAYLOAD[8:16] + forged, True)) is None
    assert run.ledger.settled == {Reason.FRAGMENT_OVERLAP_CONFLICT: 3}
    [anomaly] = run.ledger.anomalies
    assert anomaly.code == AnomalyCode.FRAGMENT_OVERLAP_CONFLICT
    assert (anomaly.src, anomaly.dst, anomaly.frames) == (V4_SRC, V4_DST, (1, 2, 3))
    assert anomaly.params["ident"] == 77
    assert anomaly.params["offsets"] == [(16, 32), (32, 40)]
    assert anomaly.params["conflicting_fragment"] == (8, 32)
    # The genuine first fragment arriving afterwards never merges with anything discarded.
    assert run.feed(frag4(0, PAYLOAD[:16], True)) is None
    run.defrag.flush()
    assert run.ledger.pending == 0


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_forged_fragment_is_reported_in_every_order(order: tuple[int, ...]) -> None:
    genuine_first = frag4(0, PAYLOAD[:16], True)
    genuine_last = frag4(16, PAYLOAD[16:], False)
    forged_last = frag4(16, b"forged-answer!" + PAYLOAD[30:], False)
    packets = [genuine_first, genuine_last, forged_last]
    run = Run()
    for index in order:
        run.feed(packets[index])
    conflicts = [a for a in run.ledger.anomalies if a.code == AnomalyCode.FRAGMENT_OVERLAP_CONFLICT]
    assert len(conflicts) == 1
    # Whatever was handed on before the conflict showed is named by the anomaly.
    for datagram in run.out:
        assert set(datagram.frames) <= set(conflicts[0].frames)
    run.defrag.flush()
    assert run.ledger.pending == sum(d.owned_frames for d in run.out)


def test_two_last_fragments_with_different_ends_conflict() -> None:
    run = Run()
    run.feed(frag4(16, PAYLOAD[16:32], False))
    run.feed(frag4(16, PAYLOAD[16:], False))
    assert run.ledger.settled == {Reason.FRAGMENT_OVERLAP_CONFLICT: 2}


def test_late_exact_copy_of_a_completed_set_is_a_duplicate() -> None:
    run = Run()
    run.feed(frag4(0, PAYLOAD[:16], True))
    assert run.feed(frag4(16, PAYLOAD[16:], False)) is not None
    assert run.feed(frag4(0, PAYLOAD[:16], True)) is None
    assert run.ledger.settled == {Reason.FRAGMENT_DUPLICATE: 1}
    assert run.defrag.held_frames == 0


def test_never_pads_a_hole() -> None:
    run = Run()
    run.feed(frag4(0, PAYLOAD[:8], True))
    assert run.feed(frag4(16, PAYLOAD[16:], False)) is None
    assert run.defrag.held_frames == 2
    run.defrag.flush()
    assert run.ledger.settled == {Reason.FRAGMENT_INCOMPLETE: 2}
    assert run.codes() == [AnomalyCode.FRAGMENT_INCOMPLETE]


def test_expiry_follows_capture_time_only() -> None:
    run = Run(timeout_ns=30 * SECOND)
    run.feed(frag4(0, PAYLOAD[:16], True), ts_ns=TS)
    run.feed(frag4(0, PAYLOAD[:16], True, ident=78), ts_ns=TS + 10 * SECOND)
    run.defrag.expire(TS + 30 * SECOND)
    assert run.defrag.held_frames == 2
    run.defrag.expire(TS + 30 * SECOND + 1)
    assert run.defrag.held_frames == 1
    assert run.ledger.settled == {Reason.FRAGMENT_INCOMPLETE: 1}
    [anomaly] = run.ledger.anomalies
    assert anomaly.code == AnomalyCode.FRAGMENT_INCOMPLETE and anomaly.params["ident"] == 77
    # The younger set still completes.
    done = run.feed(frag4(16, PAYLOAD[16:], False, ident=78), ts_ns=TS + 31 * SECOND)
    assert done is not None and done.payload == PAYLOAD


def test_set_count_cap_evicts_the_oldest() -> None:
    run = Run(max_sets=2)
    for ident in (1, 2, 3):
        run.feed(frag4(0, PAYLOAD[:16], True, ident=ident))
    assert run.ledger.settled == {Reason.FRAGMENT_EVICTED: 1}
    [anomaly] = run.ledger.anomalies
    assert anomaly.code == AnomalyCode.FRAGMENT_EVICTED and anomaly.params["ident"] == 1
    assert run.feed(frag4(16, PAYLOAD[16:], False, ident=3)) is not None


def test_byte_cap_evicts_the_oldest() -> None:
    run = Run(max_bytes=40)
    run.feed(frag4(0, PAYLOAD[:32], True, ident=1))
    run.feed(frag4(0, PAYLOAD[:16], True, ident=2))
    assert run.ledger.settled == {Reason.FRAGMENT_EVICTED: 1}
    assert run.defrag.held_bytes == 16


def test_fragment_count_cap() -> None:
    run = Run(max_fragments=3)
    for offset in (0, 8, 16, 24):
        run.feed(frag4(offset, PAYLOAD[offset : offset + 8], True))
    assert run.ledger.settled == {Reason.FRAGMENT_EVICTED: 4}
    assert run.codes() == [AnomalyCode.FRAGMENT_EVICTED]


def test_oversized_reassembly_is_malformed() -> None:
    run = Run()
    run.feed(frag4(0, PAYLOAD[:16], True))
    assert run.feed(frag4(65512, PAYLOAD[:16], False)) is None
    assert run.ledger.settled == {Reason.MALFORMED_IP: 2}


def test_flush_settles_everything_held() -> None:
    run = Run()
    run.feed(frag4(0, PAYLOAD[:16], True, ident=1))
    run.feed(frag4(8, PAYLOAD[8:16], True, ident=2))
    run.feed(frag4(8, PAYLOAD[8:16], True, ident=2))
    run.defrag.flush()
    assert run.ledger.settled == {Reason.FRAGMENT_INCOMPLETE: 2, Reason.FRAGMENT_DUPLICATE: 1}
    assert run.ledger.pending == 0
