"""The fuzz target: the whole offline ``audit`` path on one capture given as bytes.

Shared by the hypothesis tests (``test_fuzz_audit.py``) and the long fuzz run
(``benchmarks/fuzz.py``, atheris or a mutation loop). A run may end in an ``AuditorError``
(unusable input: the CLI's exit 3); any other exception is a crash. After a run the frame
ledger must balance: every frame read is settled exactly once.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import json
import random
import shutil
import struct
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import auditor.pipeline
from auditor.errors import AuditorError
from auditor.findings.zones import ZoneHealthRow
from auditor.pipeline import AuditOptions, run_audit
from auditor.trust import TrustAnchors

SAMPLE = Path(__file__).resolve().parents[2] / "captures" / "sample-dnssec.pcap"
SAMPLE_ANCHOR = SAMPLE.with_suffix(".anchor")
_RECORD = struct.Struct("<IIII")
PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)


class LedgerMismatch(AssertionError):
    """Frames read and frames settled differ after a run."""


def audit_bytes(data: bytes, workdir: Path, name: str = "fuzz.pcap", *,
                anchored: bool = False) -> dict[str, object] | None:
    """Audit ``data`` as a capture file in ``workdir``; return ``stats.json`` (None when the
    input was refused with an ``AuditorError``). Raises on a crash or an unbalanced ledger.
    ``anchored``: with the sample capture's private root anchor, so chains validate. Every
    call starts from an empty output directory (no key cache carried between inputs) and
    with empty memos: each audit makes its own (``engine/caches.py``, the key material's
    digests, the validator's), so an input is judged from the same state however many ran
    before it in this process (a long fuzz run used to slow down as process-wide memos
    filled: 7.4 ms an execution at first, 10.9 ms after 12,000)."""
    capture = workdir / name
    capture.write_bytes(data)
    out = workdir / "out"
    shutil.rmtree(out, ignore_errors=True)
    anchors = (str(SAMPLE_ANCHOR),) if anchored else ()
    try:
        outcome = run_audit(AuditOptions(captures=(str(capture),), out_dir=out,
                                         report_formats=frozenset(), trust_anchors=anchors))
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
    if rng.random() < 0.4 and len(frames) > max(KEY_FRAMES):
        # The key material of a chain (root and test. DNSKEY, a DS referral and a leaf's
        # DNSKEY), so mutated answers are judged against keys, not only found unanchored.
        keys = [KEY_FRAMES[0], KEY_FRAMES[1], *rng.sample(KEY_FRAMES[2:], 2)]
        chosen = [list(frames[i]) for i in keys] + chosen
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


KEY_FRAMES = (10, 12, 4, 6, 14, 30, 42, 62)
"""Frames of the sample capture with DNSKEY (root, test., sec.test., ecdsa.test., ed.test.,
nsec3.test.) and DS (test. and sec.test. referrals) answers, read by ``sample_frames``."""

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


@contextmanager
def cheap_runs(tables_every: int = 100) -> Iterator[None]:
    """Make many ``audit_bytes`` calls in one process cheaper without skipping a stage of the
    audit: the harness's own objects (imports, sample frames) leave the garbage collector's
    reach (``gc.freeze``), anchor files are parsed once per path, and the zone tables (pandas
    and pyarrow, about 60 % of a small audit) are written by the real writer every
    ``tables_every``-th run only; the other runs still build every zone row and serialise it
    as JSON. Restores everything on exit."""
    import auditor.report.tables as tables

    real_load, real_write = auditor.pipeline.load_anchors, tables.write_zone_tables
    calls = 0

    @functools.lru_cache(maxsize=8)
    def load(files: tuple[str, ...]) -> TrustAnchors:
        return real_load(list(files))

    def write(rows: Sequence[ZoneHealthRow], out_dir: Path) -> list[Path]:
        nonlocal calls
        calls += 1
        if calls % tables_every == 0:
            return real_write(rows, out_dir)
        path = out_dir / "zones.json"
        path.write_text(json.dumps([dataclasses.asdict(r) for r in rows]))
        return [path]

    gc.collect()
    gc.freeze()
    auditor.pipeline.load_anchors = lambda files, **kw: load(tuple(files))  # type: ignore[assignment]
    tables.write_zone_tables = write
    try:
        yield
    finally:
        auditor.pipeline.load_anchors = real_load
        tables.write_zone_tables = real_write
        gc.unfreeze()
