"""pcapng reading: sections, interfaces, timestamp resolution, packet block kinds, damage."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.utils import RawPcapNgWriter

from auditor.capture.sources import open_capture
from auditor.errors import CaptureError
from tests.capture.builders import (
    CUSTOM,
    DSB,
    IF_FCSLEN,
    IF_NAME,
    IF_TSOFFSET,
    IF_TSRESOL,
    ISB,
    NRB,
    block,
    build_pcapng,
    epb,
    idb,
    obsolete_pb,
    read_all,
    shb,
    spb,
    write,
)

NS = 10**9


def test_two_interfaces_with_own_link_type_and_resolution(tmp_path: Path) -> None:
    le = "<"
    data = (
        shb(le)
        + idb(le, 1, 65535, (IF_NAME, b"eth0"), (IF_TSRESOL, b"\x09"), (IF_FCSLEN, b"\x04"))
        + idb(
            le,
            101,
            0,
            (IF_NAME, b"tun0\x00"),
            (IF_TSRESOL, b"\x94"),
            (IF_TSOFFSET, struct.pack("<q", 100)),
        )
        + epb(le, 0, 1_700_000_000_123_456_789, b"ether")
        + epb(le, 1, 3 * 2**20 + 2**19, b"raw-ip")
        + epb(le, 1, 1, b"tick")
    )
    frames, problems, reader = read_all(write(tmp_path, "two.pcapng", data))
    assert problems == []
    assert [(f.number, f.linktype, f.interface, f.interface_name) for f in frames] == [
        (1, 1, 0, "eth0"),
        (2, 101, 1, "tun0"),
        (3, 101, 1, "tun0"),
    ]
    assert frames[0].ts_ns == 1_700_000_000_123_456_789
    assert frames[1].ts_ns == 3_500_000_000 + 100 * NS  # 3.5 s in 2^-20 units, +100 s offset
    assert frames[2].ts_ns == 953 + 100 * NS  # 10^9 / 2^20 = 953.67 ns, floored
    assert [f.data for f in frames] == [b"ether", b"raw-ip", b"tick"]
    eth0, tun0 = reader.interfaces[0], reader.interfaces[1]
    assert (eth0.linktype, eth0.snaplen, eth0.fcs_len, eth0.ts_units_per_second) == (
        1,
        65535,
        4,
        NS,
    )
    assert (tun0.ts_units_per_second, tun0.ts_offset_s, tun0.describe()) == (
        2**20,
        100,
        "interface 1 (tun0)",
    )
    assert reader.interface_of(frames[1]) == tun0


def test_default_resolution_is_microseconds(tmp_path: Path) -> None:
    data = shb(">") + idb(">", 1) + epb(">", 0, 1_500_000, b"x")
    frames, _, reader = read_all(write(tmp_path, "usec.pcapng", data))
    assert frames[0].ts_ns == 1_500_000_000
    assert reader.interfaces[0].ts_units_per_second == 10**6


def test_power_of_ten_coarser_and_finer_than_nanoseconds(tmp_path: Path) -> None:
    data = (
        shb("<")
        + idb("<", 1, 0, (IF_TSRESOL, b"\x00"))  # seconds
        + idb("<", 1, 0, (IF_TSRESOL, b"\x0c"))  # picoseconds
        + epb("<", 0, 7, b"s")
        + epb("<", 1, 7_000_000_001_999, b"p")
    )
    frames, _, _ = read_all(write(tmp_path, "res.pcapng", data))
    assert [f.ts_ns for f in frames] == [7 * NS, 7_000_000_001]


def test_sections_with_other_byte_order_restart_interface_ids(tmp_path: Path) -> None:
    data = (
        shb("<")
        + idb("<", 1, 0, (IF_NAME, b"eth0"))
        + epb("<", 0, 1_000_000, b"first")
        + shb(">")
        + idb(">", 113, 0, (IF_NAME, b"any"))
        + idb(">", 101, 0)
        + epb(">", 0, 2_000_000, b"second")
        + epb(">", 1, 3_000_000, b"third")
    )
    frames, problems, reader = read_all(write(tmp_path, "sections.pcapng", data))
    assert problems == []
    assert [(f.number, f.linktype, f.interface, f.interface_name, f.ts_ns) for f in frames] == [
        (1, 1, 0, "eth0", 1 * NS),
        (2, 113, 1, "any", 2 * NS),
        (3, 101, 2, None, 3 * NS),
    ]
    assert [(i.section, i.local_id) for i in reader.interfaces.values()] == [
        (0, 0),
        (1, 0),
        (1, 1),
    ]


def test_section_without_its_own_interface_cannot_use_the_old_one(tmp_path: Path) -> None:
    first = shb("<") + idb("<", 1) + epb("<", 0, 1, b"ok")
    data = first + shb("<") + epb("<", 0, 2, b"orphan")
    frames, problems, _ = read_all(write(tmp_path, "orphan.pcapng", data))
    assert [f.data for f in frames] == [b"ok"]
    assert problems[0].offset == len(first) + len(shb("<"))
    assert "interface 0" in problems[0].problem


def test_simple_and_obsolete_packet_blocks(tmp_path: Path) -> None:
    le = "<"
    head = shb(le) + idb(le, 1, 8)
    data = (
        head
        + spb(le, b"early", 5)  # no timestamp seen yet
        + obsolete_pb(le, 0, 4_000_000, b"old-style")
        + spb(le, b"0123456789abcdef"[:8], wirelen=16)  # cut to snaplen 8
        + epb(le, 0, 9_000_000, b"new")
        + spb(le, b"late!")
        + epb(le, 0, 0, b"epoch")
        + spb(le, b"after-epoch")
    )
    frames, problems, _ = read_all(write(tmp_path, "spb.pcapng", data))
    assert problems == []
    assert [(f.data, f.wirelen, f.ts_ns, f.number) for f in frames] == [
        (b"early", 5, 0, 1),
        (b"old-style", 9, 4 * NS, 2),
        (b"01234567", 16, 4 * NS, 3),  # SPB reuses the last seen timestamp
        (b"new", 3, 9 * NS, 4),
        (b"late!", 5, 9 * NS, 5),
        (b"epoch", 5, 0, 6),
        (b"after-ep", 11, 0, 7),  # a zero timestamp is still a timestamp
    ]


def test_other_blocks_are_skipped_by_length(tmp_path: Path) -> None:
    le = "<"
    data = (
        shb(le)
        + block(le, NRB, b"\x01\x00\x08\x00" + b"\x7f\x00\x00\x01host" + b"\x00" * 4)
        + idb(le, 1)
        + epb(le, 0, 1, b"a")
        + block(le, ISB, b"\x00" * 12)
        + block(le, DSB, b"TLSK\x05\x00\x00\x00hello")
        + block(le, CUSTOM, b"\x00\x00\x7e\x45custom data")
        + block(le, 0x12345678, b"")
        + epb(le, 0, 2, b"b")
    )
    frames, problems, _ = read_all(write(tmp_path, "skip.pcapng", data))
    assert problems == []
    assert [f.data for f in frames] == [b"a", b"b"]
    assert [f.number for f in frames] == [1, 2]


def test_agrees_with_scapy_writer(tmp_path: Path) -> None:
    path = tmp_path / "scapy.pcapng"
    writer = RawPcapNgWriter(str(path))
    writer.linktype = 1
    writer._write_header(None)
    for i in range(4):
        writer._write_packet(
            b"\xaa" * (i + 1), 101 if i % 2 else 1, sec=2000 + i, ifname=b"if%d" % (i % 2)
        )
    writer.close()
    frames, problems, reader = read_all(str(path))
    assert problems == []
    assert [(f.ts_ns, f.data, f.linktype, f.interface_name) for f in frames] == [
        ((2000 + i) * NS, b"\xaa" * (i + 1), 101 if i % 2 else 1, f"if{i % 2}") for i in range(4)
    ]
    assert len(reader.interfaces) == 3  # scapy writes an unnamed interface 0 first


def _corrupt_cases() -> list[tuple[str, bytes, str]]:
    le = "<"
    return [
        ("length not a multiple of 4", struct.pack("<II", 6, 30) + b"\x00" * 40, "bad block"),
        ("length too small", struct.pack("<II", 6, 8) + b"\x00" * 40, "bad block length 8"),
        ("huge length", struct.pack("<II", 6, 0xFFFFFFF0) + b"\x00" * 40, "bad block"),
        ("trailer mismatch", epb(le, 0, 5, b"zz")[:-4] + b"\x00\x00\x00\x00", "trailing"),
        ("unknown interface", epb(le, 7, 5, b"zz"), "interface 7"),
        (
            "caplen overruns block",
            block(le, 6, struct.pack("<IIIII", 0, 0, 5, 500, 500) + b"x" * 8),
            "overruns",
        ),
        ("epb too short", block(le, 6, b"\x00" * 8), "too short"),
        ("second SHB bad BOM", block(le, 0x0A0D0D0A, b"\x00" * 16), "byte-order"),
        ("second SHB version 2", shb(le, major=2), "version 2"),
    ]


def _cut_cases() -> list[tuple[str, bytes, str]]:
    return [
        ("cut block header", b"\x06\x00\x00", "truncated block header"),
        ("cut block", epb("<", 0, 5, b"x" * 20)[:-3], "truncated block: 49 of 52"),
    ]


@pytest.mark.parametrize(
    ("label", "bad", "words"),
    _corrupt_cases() + _cut_cases(),
)
def test_corruption_mid_file_keeps_earlier_frames(
    tmp_path: Path, label: str, bad: bytes, words: str
) -> None:
    good = build_pcapng([(1, b"one"), (2, b"two")])
    after = b"" if label.startswith("cut") else epb("<", 0, 3, b"after")
    path = write(tmp_path, "corrupt.pcapng", good.data + bad + after)
    frames, problems, _ = read_all(path)
    assert [f.data for f in frames] == [b"one", b"two"], label
    assert len(problems) == 1, label
    assert problems[0].offset == len(good.data), label
    assert words in problems[0].problem, label
    assert problems[0].source == path


def test_overrunning_option_is_a_problem_but_reading_goes_on(tmp_path: Path) -> None:
    bad_idb = block("<", 1, struct.pack("<HHI", 1, 0, 0) + struct.pack("<HH", IF_NAME, 200))
    data = shb("<") + bad_idb + epb("<", 0, 1, b"still read")
    frames, problems, _ = read_all(write(tmp_path, "opt.pcapng", data))
    assert [f.data for f in frames] == [b"still read"]
    assert [(p.offset, "option" in p.problem) for p in problems] == [(len(shb("<")), True)]


@pytest.mark.parametrize(
    ("head", "words"),
    [
        (block("<", 0x0A0D0D0A, b"\x00" * 16), "byte-order"),
        (shb("<", major=2), "version 2"),
        (shb("<")[:20], "truncated section header"),
        (b"\x0a\x0d\x0d\x0a\x1c\x00\x00\x00", "truncated section header"),
    ],
)
def test_unusable_first_section_header_raises(tmp_path: Path, head: bytes, words: str) -> None:
    path = write(tmp_path, "bad.pcapng", head)
    with pytest.raises(CaptureError, match=words) as raised:
        open_capture(path)
    assert raised.value.source == path
    assert raised.value.offset == 0


@st.composite
def pcapng_files(draw: st.DrawFn) -> tuple[bytes, list[tuple[int, int]], int]:
    packets = draw(
        st.lists(st.tuples(st.integers(0, 2**64 - 1), st.binary(max_size=40)), max_size=6)
    )
    built = build_pcapng(packets, draw(st.sampled_from(["<", ">"])))
    return built.data, built.blocks, len(shb("<"))


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(capture=pcapng_files(), cut_fraction=st.floats(0, 1), garbage=st.binary(max_size=64))
def test_cut_or_garbage_never_loses_earlier_frames(
    tmp_path: Path,
    capture: tuple[bytes, list[tuple[int, int]], int],
    cut_fraction: float,
    garbage: bytes,
) -> None:
    data, blocks, header_len = capture
    cut = header_len + int((len(data) - header_len) * cut_fraction)
    reference = read_all(write(tmp_path, "ref.pcapng", data))[0]
    whole_blocks = [end <= cut for _, end in blocks].count(True)
    whole = max(whole_blocks - 1, 0)  # the first block after the SHB is the IDB
    frames, problems, _ = read_all(write(tmp_path, "h.pcapng", data[:cut] + garbage))
    assert len(frames) >= whole
    assert [(f.number, f.ts_ns, f.data) for f in frames[:whole]] == [
        (f.number, f.ts_ns, f.data) for f in reference[:whole]
    ]
    if not garbage:
        partial = [start for start, end in blocks if start < cut < end]
        assert [p.offset for p in problems] == partial
    assert all(isinstance(p, CaptureError) for p in problems)
