"""Classic pcap reading: magics, byte orders, timestamps, header fields, damage."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.utils import RawPcapWriter

from auditor.capture.sources import open_capture
from auditor.errors import CaptureError
from tests.capture.builders import build_pcap, pcap_header, pcap_record, read_all, write

RECORDS = [
    (1_700_000_000, 1, b"\x01\x02\x03"),
    (1_700_000_001, 999_999, b""),
    (1_700_000_002, 500_000, bytes(range(60))),
]


@pytest.mark.parametrize("order", ["<", ">"])
def test_microsecond_pcap_both_byte_orders(tmp_path: Path, order: str) -> None:
    path = write(tmp_path, "usec.pcap", build_pcap(RECORDS, order).data)
    frames, problems, reader = read_all(path)
    assert problems == []
    assert [f.ts_ns for f in frames] == [
        1_700_000_000_000_001_000,
        1_700_000_001_999_999_000,
        1_700_000_002_500_000_000,
    ]
    assert [f.data for f in frames] == [data for _, _, data in RECORDS]
    assert [f.number for f in frames] == [1, 2, 3]
    assert {f.capture for f in frames} == {"usec.pcap"}
    assert {(f.linktype, f.interface, f.interface_name) for f in frames} == {(1, 0, None)}
    assert reader.interfaces[0].ts_units_per_second == 1_000_000


@pytest.mark.parametrize("order", ["<", ">"])
def test_nanosecond_pcap_both_byte_orders(tmp_path: Path, order: str) -> None:
    records = [(1_700_000_000, 123_456_789, b"abc"), (5, 999_999_999, b"d")]
    path = write(tmp_path, "nsec.pcap", build_pcap(records, order, nano=True).data)
    frames, problems, reader = read_all(path)
    assert problems == []
    assert [f.ts_ns for f in frames] == [1_700_000_000_123_456_789, 5_999_999_999]
    assert reader.interfaces[0].ts_units_per_second == 1_000_000_000


@pytest.mark.parametrize(("endianness", "nano"), [("<", False), (">", False), (">", True)])
def test_agrees_with_scapy_writer(tmp_path: Path, endianness: str, nano: bool) -> None:
    path = tmp_path / "scapy.pcap"
    writer = RawPcapWriter(str(path), linktype=101, endianness=endianness, nano=nano, snaplen=96)
    writer._write_header(None)
    for i in range(4):
        writer._write_packet(b"\x45" + bytes(i), 101, sec=1000 + i, usec=i * 7, wirelen=200)
    writer.close()
    frames, problems, reader = read_all(str(path))
    unit = 1 if nano else 1000
    assert problems == []
    assert [(f.ts_ns, f.data, f.wirelen, f.linktype) for f in frames] == [
        ((1000 + i) * 10**9 + i * 7 * unit, b"\x45" + bytes(i), 200, 101) for i in range(4)
    ]
    assert reader.interfaces[0].snaplen == 96


def test_snaplen_cut_frame_keeps_wire_length(tmp_path: Path) -> None:
    data = pcap_header(snaplen=64) + pcap_record("<", 1, 0, b"x" * 64, wirelen=1500)
    frames, _, reader = read_all(write(tmp_path, "cut.pcap", data))
    assert (len(frames[0].data), frames[0].wirelen) == (64, 1500)
    assert reader.interfaces[0].snaplen == 64


@pytest.mark.parametrize(
    ("field", "linktype", "fcs_len"),
    [
        (1, 1, None),
        ((2 << 28) | 0x04000000 | 1, 1, 4),  # P bit set, FCS of 2 16-bit words
        ((1 << 28) | 113, 113, None),  # FCS length without the P bit means unknown
        (0x04000000 | 276, 276, 0),
    ],
)
def test_linktype_field_fcs_bits(tmp_path: Path, field: int, linktype: int, fcs_len: int) -> None:
    data = pcap_header(linktype_field=field) + pcap_record("<", 1, 0, b"z")
    frames, _, reader = read_all(write(tmp_path, "fcs.pcap", data))
    assert frames[0].linktype == linktype
    assert reader.interfaces[0].linktype == linktype
    assert reader.interfaces[0].fcs_len == fcs_len


def test_truncated_last_record_keeps_earlier_frames(tmp_path: Path) -> None:
    built = build_pcap(RECORDS)
    last_start = built.packets[-1][0]
    path = write(tmp_path, "trunc.pcap", built.data[:-5])
    frames, problems, _ = read_all(path)
    assert [f.data for f in frames] == [data for _, _, data in RECORDS[:2]]
    assert len(problems) == 1
    assert problems[0].offset == last_start
    assert problems[0].source == path
    assert "truncated" in problems[0].problem


def test_every_cut_point(tmp_path: Path) -> None:
    built = build_pcap(RECORDS)
    for cut in range(24, len(built.data) + 1):
        frames, problems, _ = read_all(write(tmp_path, "c.pcap", built.data[:cut]))
        complete = [start for start, end in built.packets if end <= cut]
        assert len(frames) == len(complete), cut
        partial = [start for start, end in built.packets if start < cut < end]
        assert [p.offset for p in problems] == partial, cut


def test_implausible_length_is_a_problem(tmp_path: Path) -> None:
    data = build_pcap(RECORDS[:1]).data
    bad = struct.pack("<IIII", 1, 0, 0xFFFFFFF0, 0xFFFFFFF0)
    frames, problems, _ = read_all(write(tmp_path, "huge.pcap", data + bad + b"x" * 40))
    assert len(frames) == 1
    assert problems[0].offset == len(data)
    assert "implausible" in problems[0].problem


@pytest.mark.parametrize(
    ("header", "words"),
    [
        (struct.pack("<IHHiIII", 0xA1B2C3D4, 3, 0, 0, 0, 65535, 1), "version 3.0"),
        (struct.pack("<IHHiIII", 0xA1B2CD34, 2, 4, 0, 0, 65535, 1), "modified"),
        (struct.pack("<IHH", 0xA1B2C3D4, 2, 4), "truncated pcap file header"),
    ],
)
def test_unusable_header_raises(tmp_path: Path, header: bytes, words: str) -> None:
    path = write(tmp_path, "bad.pcap", header)
    with pytest.raises(CaptureError, match=words) as raised:
        open_capture(path)
    assert raised.value.source == path


@st.composite
def pcap_files(draw: st.DrawFn) -> tuple[bytes, list[tuple[int, int]], int]:
    records = draw(
        st.lists(
            st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 999_999), st.binary(max_size=40)),
            max_size=6,
        )
    )
    order = draw(st.sampled_from(["<", ">"]))
    built = build_pcap(records, order, nano=draw(st.booleans()))
    return built.data, built.packets, len(records)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(capture=pcap_files(), cut_fraction=st.floats(0, 1), garbage=st.binary(max_size=64))
def test_cut_or_garbage_never_loses_earlier_frames(
    tmp_path: Path,
    capture: tuple[bytes, list[tuple[int, int]], int],
    cut_fraction: float,
    garbage: bytes,
) -> None:
    data, packets, _ = capture
    cut = 24 + int((len(data) - 24) * cut_fraction)
    whole = [end <= cut for _, end in packets].count(True)
    path = write(tmp_path, "h.pcap", data[:cut] + garbage)
    frames, problems, _ = read_all(path)
    assert len(frames) >= whole
    expected = read_all(write(tmp_path, "ref.pcap", data))[0][:whole]
    assert frames[:whole] == [
        type(f)("h.pcap", f.number, f.ts_ns, f.linktype, f.data, f.wirelen) for f in expected
    ]
    assert all(isinstance(p, CaptureError) and p.offset is not None for p in problems)
