"""Flood benchmark: hostile captures that try to grow the auditor's state without bound.

Four kinds, each a capture of N frames at a flood rate (100,000 frames/s of capture time, so no
timeout expires anything and only the caps bound the state):

- ``queries``: unanswered queries, every one a distinct random name from a distinct client
  port and ID (the matcher's pending table, the parse cache, the forgery stage's query view);
- ``names``: query/response pairs for distinct random names (a signed-looking answer: A record
  plus an RRSIG whose key is never seen), every message distinct (parse cache, record caches,
  memos, zone and forgery tables, the reports);
- ``fragments``: first IPv4 fragments (MF set) of distinct datagrams that never complete;
- ``tcp``: TCP streams that never complete: SYN, a segment with a length prefix announcing a
  large message and part of it, then a segment past a gap (held out of order).

For each kind and size it writes the capture, runs ``dnssec-auditor audit --jobs 1`` on it,
samples the child's RSS from ``/proc/PID/status`` (and its exact peak from ``wait4``), and
times tshark's DNS field extraction on the same file as the reference. Usage::

    .venv/bin/python benchmarks/flood.py                       # 250k, 500k, 1M of each kind
    .venv/bin/python benchmarks/flood.py --kinds names --frames 100000 --keep
    .venv/bin/python benchmarks/flood.py --json out.json --no-tshark

The exit status is 0 whatever the figures (a report, not a test); 1 when the audit failed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_capture import (  # noqa: E402
    ethernet_frame,
    ipv4_packet,
    tcp_segment,
    udp_datagram,
)

REPO = Path(__file__).resolve().parent.parent
OUT = Path(__file__).resolve().parent / "out"
KINDS = ("queries", "names", "fragments", "tcp")
SIZES = (250_000, 500_000, 1_000_000)
RATE = 100_000
"""Frames per second of capture time: a flood, faster than any timeout expires state."""
START_S = 1_748_779_200  # 2025-06-01T12:00:00Z
RSS_LIMIT = 300 << 20
TSHARK_FIELDS = ("frame.number", "ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "dns.id",
                 "dns.qry.name", "dns.qry.type", "dns.flags.rcode", "dns.flags.response")

_PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
_RECORD = struct.Struct("<IIII")
_RESOLVER = bytes((192, 0, 2, 53))
_MAC_A = bytes.fromhex("020000000001")
_MAC_B = bytes.fromhex("020000000002")
_IPV4 = 0x0800
_UDP, _TCP = 17, 6
_SYN, _ACK, _PSH = 0x02, 0x10, 0x08
_ZONE = b"\x05flood\x07example\x00"


def _name(rng: random.Random) -> bytes:
    label = f"{rng.getrandbits(64):016x}"
    return bytes((16,)) + label.encode() + _ZONE


def _query(rng: random.Random, ident: int, name: bytes) -> bytes:
    # RFC 1035 4.1.1: ID, RD, one question; an OPT record with DO (RFC 6891, RFC 3225).
    opt = b"\x00\x00\x29\x04\xd0\x00\x00\x80\x00\x00\x00"
    return struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 1) + name + b"\x00\x01\x00\x01" + opt


def _response(rng: random.Random, ident: int, name: bytes) -> bytes:
    header = struct.pack("!HHHHHH", ident, 0x8180, 1, 2, 0, 1)
    question = name + b"\x00\x01\x00\x01"
    address = rng.getrandbits(32).to_bytes(4, "big")
    a_record = b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x01\x2c\x00\x04" + address
    # RRSIG (RFC 4034 3.1) over the A RRset by the zone's key, which the flood never shows.
    signature = rng.randbytes(64)
    rdata = (struct.pack("!HBBIIIH", 1, 13, 3, 300, 1_754_006_400, 1_746_057_600, 4242)
             + _ZONE + signature)
    rrsig = b"\xc0\x0c\x00\x2e\x00\x01\x00\x00\x01\x2c" + struct.pack("!H", len(rdata)) + rdata
    opt = b"\x00\x00\x29\x04\xd0\x00\x00\x80\x00\x00\x00"
    return header + question + a_record + rrsig + opt


def _client(rng: random.Random) -> bytes:
    return bytes((198, 18 + rng.getrandbits(1), rng.getrandbits(8), rng.getrandbits(8)))


def _udp_frame(src: bytes, dst: bytes, sport: int, dport: int, payload: bytes,
               rng: random.Random) -> bytes:
    body = udp_datagram(src, dst, sport, dport, payload)
    return ethernet_frame(_MAC_B, _MAC_A, _IPV4,
                          ipv4_packet(src, dst, _UDP, body, 64, rng.getrandbits(16)))


def _frames_queries(rng: random.Random) -> Iterator[bytes]:
    while True:
        yield _udp_frame(_client(rng), _RESOLVER, 1024 + rng.getrandbits(15), 53,
                         _query(rng, rng.getrandbits(16), _name(rng)), rng)


def _frames_names(rng: random.Random) -> Iterator[bytes]:
    while True:
        client, port, ident, name = _client(rng), 1024 + rng.getrandbits(15), \
            rng.getrandbits(16), _name(rng)
        yield _udp_frame(client, _RESOLVER, port, 53, _query(rng, ident, name), rng)
        yield _udp_frame(_RESOLVER, client, 53, port, _response(rng, ident, name), rng)


def _frames_fragments(rng: random.Random) -> Iterator[bytes]:
    while True:
        # The first fragment of a large UDP DNS answer (RFC 791 3.2): MF set, offset 0.
        size = 8 * rng.randrange(60, 184)  # 480-1,464 bytes of a datagram never completed
        payload = struct.pack("!HHHH", 53, 1024 + rng.getrandbits(15), 4000, 0)
        payload += rng.randbytes(size - 8)
        packet = ipv4_packet(_RESOLVER, _client(rng), _UDP, payload, 64, rng.getrandbits(16),
                             0x2000)
        yield ethernet_frame(_MAC_A, _MAC_B, _IPV4, packet)


def _frames_tcp(rng: random.Random) -> Iterator[bytes]:
    while True:
        client, port = _client(rng), 1024 + rng.getrandbits(15)
        seq = rng.getrandbits(32)
        ports = (port, 53)

        def frame(payload: bytes, offset: int, flags: int, src: bytes = client,
                  ports: tuple[int, int] = ports, seq: int = seq) -> bytes:
            segment = tcp_segment(src, _RESOLVER, ports, (seq + offset) % (1 << 32), 1, flags,
                                  payload)
            return ethernet_frame(_MAC_B, _MAC_A, _IPV4,
                                  ipv4_packet(src, _RESOLVER, _TCP, segment, 64,
                                              rng.getrandbits(16)))

        yield frame(b"", 0, _SYN)
        # RFC 1035 4.2.2: a length prefix announcing 60,000 bytes, then part of the message,
        # then a later part past a gap: neither ever completes.
        yield frame(b"\xea\x60" + rng.randbytes(1_000), 1, _ACK | _PSH)
        yield frame(rng.randbytes(1_200), 1 + 2_002 + 4_000, _ACK | _PSH)


GENERATORS: dict[str, Callable[[random.Random], Iterator[bytes]]] = {
    "queries": _frames_queries, "names": _frames_names,
    "fragments": _frames_fragments, "tcp": _frames_tcp,
}


def write_flood(kind: str, frames: int, out: BinaryIO, seed: int = 1) -> int:
    """Write ``frames`` frames of the flood ``kind`` as a classic pcap; return bytes written."""
    rng = random.Random(f"{kind}:{seed}")
    out.write(_PCAP_HEADER)
    size, batch = len(_PCAP_HEADER), []
    gap_ns = 1_000_000_000 // RATE
    for number, frame in enumerate(GENERATORS[kind](rng)):
        if number >= frames:
            break
        ts_ns = START_S * 1_000_000_000 + number * gap_ns
        batch.append(_RECORD.pack(ts_ns // 1_000_000_000, ts_ns // 1_000 % 1_000_000,
                                  len(frame), len(frame)) + frame)
        size += 16 + len(frame)
        if len(batch) >= 8_192:
            out.write(b"".join(batch))
            batch.clear()
    out.write(b"".join(batch))
    return size


class RssSampler(threading.Thread):
    """Samples a process's VmRSS every ``interval`` seconds until it exits."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.samples: list[tuple[float, int]] = []
        self.done = threading.Event()

    def run(self) -> None:
        start = time.monotonic()
        while not self.done.is_set():
            rss = _rss(self.pid)
            if rss:
                self.samples.append((time.monotonic() - start, rss))
            self.done.wait(self.interval)


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run_measured(command: list[str], stdout: BinaryIO | int = subprocess.DEVNULL
                 ) -> tuple[int, float, int, int, str, float]:
    """Run ``command``; return (exit status, wall s, peak RSS bytes from wait4, highest sampled
    VmRSS, stderr tail, CPU s from wait4: user + system, which other load on a shared machine
    moves far less than wall time)."""
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=stdout, stderr=subprocess.PIPE, cwd=REPO)
    sampler = RssSampler(process.pid)
    sampler.start()
    stderr_chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: stderr_chunks.append(process.stderr.read()),  # type: ignore[union-attr]
                              daemon=True)
    reader.start()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.monotonic() - started
    sampler.done.set()
    sampler.join()
    reader.join()
    process.returncode = os.waitstatus_to_exitcode(status)
    sampled = max((rss for _, rss in sampler.samples), default=0)
    tail = b"".join(stderr_chunks).decode(errors="replace").strip().splitlines()[-3:]
    return (process.returncode, wall, usage.ru_maxrss * 1024, sampled, "\n".join(tail),
            usage.ru_utime + usage.ru_stime)


def audit(capture: Path, out_dir: Path) -> dict[str, object]:
    # One process (--jobs 1): the figure is the peak of the process that holds every table
    # (with --jobs N each worker holds its shard's, and wait4 gives the largest, not the sum).
    command = [sys.executable, "-m", "auditor", "audit", str(capture),
               "--out", str(out_dir), "-q", "--jobs", "1"]
    status, wall, peak, sampled, tail, cpu = run_measured(command)
    row: dict[str, object] = {"status": status, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
                              "peak_rss_mb": round(peak / 2**20, 1),
                              "sampled_rss_mb": round(sampled / 2**20, 1)}
    stats_path = out_dir / "stats.json"
    if status in (0, 1) and stats_path.exists():
        stats = json.loads(stats_path.read_text())
        frames = stats.get("frames", {})
        row["frames_read"] = stats.get("frames_read")
        row["frames_settled"] = sum(frames.values()) if isinstance(frames, dict) else None
        row["responses"] = stats.get("responses_written")
        row["state"] = stats.get("state")
    else:
        row["error"] = tail
    return row


def tshark(capture: Path, out: Path) -> dict[str, object] | None:
    binary = shutil.which("tshark")
    if binary is None:
        return None
    command = [binary, "-n", "-r", str(capture), "-Y", "dns", "-T", "fields"]
    for name in TSHARK_FIELDS:
        command += ["-e", name]
    with out.open("wb") as sink:
        status, wall, peak, _, _, _ = run_measured(command, stdout=sink)
    with out.open("rb") as rows:
        count = sum(1 for _ in rows)
    return {"status": status, "wall_s": round(wall, 2), "peak_rss_mb": round(peak / 2**20, 1),
            "rows": count}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated flood kinds")
    parser.add_argument("--frames", default=",".join(str(s) for s in SIZES),
                        help="comma-separated frame counts")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help=f"keep files in {OUT}")
    parser.add_argument("--no-tshark", action="store_true")
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    args = parser.parse_args(argv)
    kinds = [k for k in args.kinds.split(",") if k]
    unknown = set(kinds) - set(KINDS)
    if unknown:
        parser.error(f"unknown kinds: {', '.join(sorted(unknown))} (known: {', '.join(KINDS)})")
    sizes = [int(s.replace("_", "")) for s in args.frames.split(",") if s]
    work = OUT if args.keep else Path(tempfile.mkdtemp(prefix="flood-"))
    work.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, object]] = []
    failed = False
    print(f"{'kind':<10} {'frames':>9} {'MB':>6} {'ours s':>7} {'cpu s':>7} {'us/fr':>6} "
          f"{'cpu us/fr':>9} {'peak MB':>8} "
          f"{'tshark s':>8} {'ts MB':>6} {'ratio':>6} {'settled':>9}  state")
    try:
        for kind in kinds:
            for frames in sizes:
                capture = work / f"flood-{kind}-{frames}.pcap"
                with capture.open("wb") as out:
                    size = write_flood(kind, frames, out, args.seed)
                ours = audit(capture, work / f"flood-{kind}-{frames}")
                failed |= ours["status"] not in (0, 1)
                theirs = None if args.no_tshark else tshark(capture, work / "tshark.tsv")
                row = {"kind": kind, "frames": frames, "bytes": size, "ours": ours,
                       "tshark": theirs}
                results.append(row)
                ratio = (f"{theirs['wall_s'] / ours['wall_s']:.2f}x"  # type: ignore[operator]
                         if theirs else "-")
                state = ours.get("state") or {}
                big = {k: v for k, v in state.items() if v} if isinstance(state, dict) else {}
                print(f"{kind:<10} {frames:>9,} {size / 2**20:>6.0f} {ours['wall_s']:>7} "
                      f"{ours['cpu_s']:>7} "
                      f"{1e6 * ours['wall_s'] / frames:>6.1f} "  # type: ignore[operator]
                      f"{1e6 * ours['cpu_s'] / frames:>9.1f} "  # type: ignore[operator]
                      f"{ours['peak_rss_mb']:>8} "
                      f"{theirs['wall_s'] if theirs else '-':>8} "
                      f"{theirs['peak_rss_mb'] if theirs else '-':>6} {ratio:>6} "
                      f"{ours.get('frames_settled', '-')!s:>9}  {json.dumps(big)[:200]}",
                      flush=True)
                if "error" in ours:
                    print(f"  audit failed: {ours['error']}", flush=True)
                if not args.keep:
                    capture.unlink()
                    shutil.rmtree(work / f"flood-{kind}-{frames}", ignore_errors=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    over = [r for r in results if r["ours"]["peak_rss_mb"] > RSS_LIMIT / 2**20]  # type: ignore[index]
    print(f"peak RSS over {RSS_LIMIT >> 20} MB: "
          + (", ".join(f"{r['kind']}@{r['frames']:,}" for r in over) or "none"))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
