"""Files and pipes written by the real tcpdump read back frame for frame."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from auditor.capture.sources import CaptureSet
from tests.capture.builders import build_pcap, read_all, write

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump is not installed"),
]

RECORDS = [
    (1_700_000_000 + i // 10, (i % 10) * 1000, bytes([i % 256]) * 300) for i in range(10_000)
]


def _as_root_keep_user() -> list[str]:
    return ["-Z", "root"] if os.geteuid() == 0 else []


def test_rotated_pieces_merge_back_into_the_original(tmp_path: Path) -> None:
    original = write(tmp_path, "orig.pcap", build_pcap(RECORDS).data)
    pieces = tmp_path / "pieces"
    pieces.mkdir()
    subprocess.run(
        ["tcpdump", "-r", original, "-w", str(pieces / "dump"), "-C", "1", *_as_root_keep_user()],
        check=True,
        capture_output=True,
    )
    paths = sorted(str(p) for p in pieces.iterdir())
    assert len(paths) >= 3
    captures = CaptureSet(paths[::-1])  # the merge, not the argument order, sorts them
    merged = [(f.ts_ns, f.data) for f in captures]
    assert merged == [(f.ts_ns, f.data) for f in read_all(original)[0]]
    assert captures.problems == []
    assert captures.bytes_read == captures.total_bytes


def test_tcpdump_writing_to_a_pipe(tmp_path: Path) -> None:
    original = write(tmp_path, "orig.pcap", build_pcap(RECORDS[:500], ">", nano=True).data)
    tcpdump = subprocess.Popen(
        ["tcpdump", "-r", original, "-w", "-"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    reader = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from auditor.capture.sources import open_capture; "
            "print(sum(len(f.data) for f in open_capture('-')))",
        ],
        stdin=tcpdump.stdout,
        capture_output=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert tcpdump.wait(timeout=60) == 0
    assert int(reader.stdout) == sum(len(data) for _, _, data in RECORDS[:500])
