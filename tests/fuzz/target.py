"""The fuzz target: the whole offline ``audit`` path on one capture given as bytes.

Shared by the hypothesis tests (``test_fuzz_audit.py``) and the long fuzz run
(``benchmarks/fuzz.py``, atheris or a mutation loop). A run may end in an ``AuditorError``
(unusable input: the CLI's exit 3); any other exception is a crash. After a run the frame
ledger must balance: every frame read is settled exactly once.
"""

from __future__ import annotations

import json
import random
import struct
from pathlib import Path

from auditor.errors import AuditorError
from auditor.pipeline import AuditOptions, run_audit

SAMPLE = Path(__file__).resolve().parents[2] / "captures" / "sample-dnssec.pcap"
_RECORD = struct.Struct("<IIII")
PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)


class LedgerMismatch(AssertionError):
    """Frames read and frames settled differ after a run."""


def audit_bytes(data: bytes, workdir: Path, name: str = "fuzz.pcap") -> dict[str, object] | None:
    """Audit ``data`` as a capture file in ``workdir``; return ``stats.json`` (None when the
    input was refused with an ``AuditorError``). Raises on a crash or an unbalanced ledger."""
    capture = workdir / name
    capture.write_bytes(data)
    try:
        outcome = run_audit(AuditOptions(captures=(str(capture),), out_dir=workdir / "out",
                                         report_formats=frozenset()))
    except AuditorError:
        return None
    stats = outcome.stats
    settled = sum(stats["frames"].values())
    if settled != stats["frames_read"] or stats["frames_unsettled"]:
        raise LedgerMismatch(f"frames_read {stats['frames_read']}, settled {settled}, "
                             f"unsettled {stats['frames_unsettled']}")
    # The written records must be JSON (a crash while serialising would have raised already).
    for line in (workdir / "out" / "responses.jsonl").read_text().splitlines()[:1]:
        json.loads(line)
    return stats


def sample_frames(path: Path = SAMPLE) -> list[tuple[int, int, bytes]]:
    """(seconds, microseconds, frame bytes) of every record of a little-endian µs pcap."""
    data = path.read_bytes()
    frames, offset = [], 24
    while offset + 16 <= len(data):
        sec, usec, caplen, _ = _RECORD.unpack_from(data, offset)
        frames.append((sec, usec, data[offset + 16: offset + 16 + caplen]))
        offset += 16 + caplen
    return frames


def pcap_of(frames: list[tuple[int, int, bytes]]) -> bytes:
    """A little-endian µs Ethernet pcap of ``frames``."""
    return PCAP_HEADER + b"".join(_RECORD.pack(s, u, len(f), len(f)) + f for s, u, f in frames)


def mutate(rng: random.Random, frames: list[tuple[int, int, bytes]], count: int = 6
           ) -> bytes:
    """A capture of a few sample frames, some mutated the ways hostile traffic differs from
    normal: flipped and random bytes, cut and grown frames, duplicated and reordered frames,
    interesting integers in header fields, and sometimes damage to the file framing itself."""
    start = rng.randrange(max(1, len(frames) - count))
    chosen = [list(f) for f in frames[start: start + rng.randint(1, count)]]
    if rng.random() < 0.3:
        chosen += [list(rng.choice(frames)) for _ in range(rng.randint(1, 4))]
    for entry in chosen:
        if rng.random() < 0.7:
            entry[2] = _mutate_bytes(rng, bytes(entry[2]))
    if rng.random() < 0.2:
        rng.shuffle(chosen)
    if rng.random() < 0.1:
        chosen += [chosen[rng.randrange(len(chosen))]] * rng.randint(1, 3)
    data = pcap_of([(s, u, f) for s, u, f in chosen])
    if rng.random() < 0.05:
        data = _mutate_bytes(rng, data)
    return data


_INTERESTING = (0, 1, 0x7F, 0x80, 0xFF, 0x100, 0x3FFF, 0x7FFF, 0x8000, 0xFFFF, 0xC00C, 0xC000)


def _mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        choice = rng.random()
        if not buf:
            buf += rng.randbytes(rng.randint(1, 64))
            continue
        at = rng.randrange(len(buf))
        if choice < 0.35:
            buf[at] ^= 1 << rng.randrange(8)
        elif choice < 0.55:
            buf[at] = rng.randrange(256)
        elif choice < 0.7 and at + 2 <= len(buf):
            buf[at: at + 2] = rng.choice(_INTERESTING).to_bytes(2, "big")
        elif choice < 0.8:
            del buf[at: at + rng.randint(1, 32)]
        elif choice < 0.9:
            buf[at:at] = rng.randbytes(rng.randint(1, 32))
        else:
            del buf[rng.randrange(len(buf)):]
    return bytes(buf)
