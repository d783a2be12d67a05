"""Capture inputs: gzip by content, standard input, several files merged, errors, progress."""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditor.capture.frame import Frame
from auditor.capture.sources import CaptureSet, open_capture
from auditor.errors import CaptureError
from tests.capture.builders import build_pcap, build_pcapng, read_all, write

RECORDS = [(100, 0, b"a"), (101, 5, b"bb"), (102, 7, b"ccc")]


def _stdin_from(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))


def test_gzip_is_detected_by_content_not_name(tmp_path: Path) -> None:
    plain = build_pcap(RECORDS).data
    disguised = write(tmp_path, "looks-plain.pcap", gzip.compress(plain))
    misnamed = write(tmp_path, "not-really.pcap.gz", plain)
    for path, compressed in ((disguised, True), (misnamed, False)):
        frames, problems, reader = read_all(path)
        assert [f.data for f in frames] == [b"a", b"bb", b"ccc"]
        assert problems == []
        assert reader.compressed is compressed


def test_gzip_pcapng_and_progress_counts_compressed_bytes(tmp_path: Path) -> None:
    packed = gzip.compress(build_pcapng([(i, bytes(100)) for i in range(50)]).data)
    frames, _, reader = read_all(write(tmp_path, "c.pcapng.gz", packed))
    assert len(frames) == 50
    assert reader.bytes_read == reader.total_bytes == len(packed)


def test_truncated_gzip_keeps_frames_before_the_cut(tmp_path: Path) -> None:
    records = [(100 + i, 0, bytes([i]) * 200) for i in range(200)]
    packed = gzip.compress(build_pcap(records).data, compresslevel=1)
    frames, problems, _ = read_all(write(tmp_path, "cut.pcap.gz", packed[: len(packed) // 2]))
    assert 0 < len(frames) < 200
    assert [f.data for f in frames] == [data for _, _, data in records[: len(frames)]]
    assert len(problems) == 1
    assert problems[0].offset is not None


def test_gzip_trailing_garbage_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    packed = gzip.compress(build_pcap(RECORDS).data) + b"garbage!"
    frames, problems, _ = read_all(write(tmp_path, "trail.pcap.gz", packed))
    assert len(frames) == 3
    assert len(problems) == 1


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", "empty input"),
        (b"\xd4\xc3", "too short"),
        (b"hello, this is text, not a capture\n", "not a pcap or pcapng file"),
        (gzip.compress(b""), "empty input inside the gzip stream"),
        (gzip.compress(b"plain text inside gzip"), "not a pcap or pcapng file inside"),
        (b"\x1f\x8b\x08\x00garbage-after-gzip-magic", "cannot read inside the gzip stream"),
        (b"\xfd7zXZ\x00\x00\x04", "xz-compressed"),
    ],
)
def test_unusable_input_raises_naming_the_file(tmp_path: Path, content: bytes, words: str) -> None:
    path = write(tmp_path, "input.pcap", content)
    with pytest.raises(CaptureError, match=words) as raised:
        open_capture(path)
    assert raised.value.source == path
    assert path in str(raised.value)


def test_missing_file_and_directory_raise(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.pcap")
    with pytest.raises(CaptureError, match="no such file") as raised:
        open_capture(missing)
    assert raised.value.source == missing
    with pytest.raises(CaptureError, match="directory"):
        open_capture(str(tmp_path))


def test_stdin_plain_and_gzip(monkeypatch: pytest.MonkeyPatch) -> None:
    for data in (build_pcap(RECORDS).data, gzip.compress(build_pcapng([(7, b"ng")]).data)):
        _stdin_from(monkeypatch, data)
        reader = open_capture("-")
        frames = list(reader)
        assert frames and {f.capture for f in frames} == {"-"}
        assert reader.total_bytes is None
        assert reader.bytes_read == len(data)


def test_empty_stdin_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    _stdin_from(monkeypatch, b"")
    with pytest.raises(CaptureError, match="<stdin>.*empty"):
        open_capture("-")


_CHILD = """
import json, sys
from auditor.capture.sources import CaptureSet
frames = CaptureSet(sys.argv[1:])
out = [[f.capture, f.number, f.ts_ns, f.data.hex()] for f in frames]
print(json.dumps({"frames": out, "problems": [str(p) for p in frames.problems],
                  "total": frames.total_bytes}))
"""


@pytest.mark.parametrize("compress", [False, True])
def test_stdin_through_a_real_pipe(compress: bool) -> None:
    data = build_pcap([(100 + i, i, bytes([i]) * 50) for i in range(100)]).data
    if compress:
        data = gzip.compress(data)
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert child.stdin is not None
    for start in range(0, len(data), 7):  # dribble the capture in small writes
        child.stdin.write(data[start : start + 7])
        child.stdin.flush()
    child.stdin.close()
    assert child.stdout is not None
    result = json.loads(child.stdout.read())
    assert child.wait(timeout=60) == 0
    assert [frame[1] for frame in result["frames"]] == list(range(1, 101))
    assert result["frames"][-1] == ["-", 100, 199_000_099_000, (bytes([99]) * 50).hex()]
    assert result["problems"] == [] and result["total"] is None


def test_several_files_merge_by_timestamp_with_per_file_numbers(tmp_path: Path) -> None:
    a = write(tmp_path, "a.pcap", build_pcap([(1, 0, b"a1"), (3, 0, b"a2"), (5, 0, b"a3")]).data)
    b = write(tmp_path, "b.pcapng", build_pcapng([(2 * 10**9, b"b1"), (3 * 10**9, b"b2")]).data)
    c = write(tmp_path, "c.pcap.gz", gzip.compress(build_pcap([(4, 0, b"c1")]).data))
    captures = CaptureSet([a, b, c])
    frames = list(captures)
    assert [(f.capture, f.number, f.data) for f in frames] == [
        ("a.pcap", 1, b"a1"),
        ("b.pcapng", 1, b"b1"),
        ("a.pcap", 2, b"a2"),  # equal timestamps keep the order the paths were given
        ("b.pcapng", 2, b"b2"),
        ("c.pcap.gz", 1, b"c1"),
        ("a.pcap", 3, b"a3"),
    ]
    sizes = [Path(p).stat().st_size for p in (a, b, c)]
    assert captures.total_bytes == captures.bytes_read == sum(sizes)
    assert captures.problems == []
    assert set(captures.interfaces) == {"a.pcap", "b.pcapng", "c.pcap.gz"}
    assert captures.interface_of(frames[1]) == captures.interfaces["b.pcapng"][0]


def test_merge_collects_problems_and_keeps_streaming(tmp_path: Path) -> None:
    cut = build_pcap([(1, 0, b"x"), (9, 0, b"lost")]).data[:-2]
    a = write(tmp_path, "cut.pcap", cut)
    b = write(tmp_path, "fine.pcap", build_pcap([(2, 0, b"y"), (10, 0, b"z")]).data)
    captures = CaptureSet([a, b])
    assert [f.data for f in captures] == [b"x", b"y", b"z"]
    assert [(p.source, p.offset) for p in captures.problems] == [(a, 24 + 17)]


def test_same_base_name_in_two_directories_keeps_the_paths(tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    first = write(tmp_path / "one", "dump.pcap", build_pcap([(1, 0, b"1")]).data)
    second = write(tmp_path / "two", "dump.pcap", build_pcap([(2, 0, b"2")]).data)
    assert [f.capture for f in CaptureSet([first, second])] == [first, second]


def test_capture_set_raises_for_the_first_bad_file(tmp_path: Path) -> None:
    good = write(tmp_path, "good.pcap", build_pcap(RECORDS).data)
    bad = write(tmp_path, "bad.pcap", b"not a capture at all")
    with pytest.raises(CaptureError) as raised:
        CaptureSet([good, bad, str(tmp_path / "missing.pcap")])
    assert raised.value.source == bad
    with pytest.raises(CaptureError, match="no capture"):
        CaptureSet([])
    with pytest.raises(CaptureError, match="more than once"):
        CaptureSet(["-", "-"])


def test_progress_grows_while_reading(tmp_path: Path) -> None:
    records = [(i, 0, bytes(1000)) for i in range(1000)]  # ~1 MB, several read buffers
    reader = open_capture(write(tmp_path, "big.pcap", build_pcap(records).data))
    assert reader.total_bytes is not None
    seen = [reader.bytes_read for frame in reader if frame.number % 100 == 1]
    assert seen == sorted(seen) and seen[0] < seen[-1] < reader.total_bytes
    assert reader.bytes_read == reader.total_bytes


def test_a_stream_is_read_once(tmp_path: Path) -> None:
    reader = open_capture(write(tmp_path, "once.pcap", build_pcap(RECORDS).data))
    assert len(list(reader)) == 3
    with pytest.raises(RuntimeError):
        iter(reader)


def _drain(path: str) -> list[Frame]:
    try:
        return read_all(path)[0]
    except CaptureError:
        return []


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    prefix=st.sampled_from(
        [
            b"",
            b"\xd4\xc3\xb2\xa1",
            b"\x4d\x3c\xb2\xa1\x02\x00\x04\x00",
            b"\x0a\x0d\x0d\x0a",
            b"\x0a\x0d\x0d\x0a\x1c\x00\x00\x00\x4d\x3c\x2b\x1a\x01\x00",
            b"\x1f\x8b",
        ]
    ),
    noise=st.binary(max_size=300),
    compress=st.booleans(),
)
def test_random_bytes_only_ever_raise_capture_error(
    tmp_path: Path, prefix: bytes, noise: bytes, compress: bool
) -> None:
    content = prefix + noise
    path = write(tmp_path, "noise", gzip.compress(content) if compress else content)
    _drain(path)  # anything but CaptureError escapes and fails the test


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    pcapng=st.booleans(),
    order=st.sampled_from(["<", ">"]),
    edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), max_size=4),
)
def test_corrupted_bytes_never_lose_earlier_frames(
    tmp_path: Path, pcapng: bool, order: str, edits: list[tuple[float, int]]
) -> None:
    payloads = [bytes([i]) * (i * 3) for i in range(8)]
    if pcapng:
        built = build_pcapng([(i * 10**9, p) for i, p in enumerate(payloads)], order)
    else:
        built = build_pcap([(i, 0, p) for i, p in enumerate(payloads)], order)
    data = bytearray(built.data)
    positions = [int(where * len(data)) for where, _ in edits]
    for position, (_, value) in zip(positions, edits, strict=True):
        data[position] = value
    first_edit = min(positions, default=len(data))
    intact = [end <= first_edit for _, end in built.packets].count(True)
    frames = _drain(write(tmp_path, "edited", bytes(data)))
    if first_edit >= built.blocks[0][0]:  # file header untouched: it must open
        assert [f.data for f in frames[:intact]] == payloads[:intact]
