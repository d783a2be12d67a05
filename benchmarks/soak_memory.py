"""Memory soak of ``dnssec-auditor live``: feeds a long synthetic capture spanning hours of
capture time to ``live --read`` with small state caps, samples the child's RSS every second
against the frames it has processed, and reports whether the RSS plateaus.

No interface and no root are needed: the capture is a pcap file read as a stream. With
``--churn`` the traffic keeps bringing new names, zones, clients and servers
(``churn_capture.py``) and is anchored at its common parent ``example.``. Usage::

    .venv/bin/python benchmarks/soak_memory.py --frames 500000 --hours 4
    .venv/bin/python benchmarks/soak_memory.py --churn --frames 400000 --hours 4
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from churn_capture import ChurnGenerator, ChurnOptions  # noqa: E402
from make_capture import TrafficGenerator  # noqa: E402
from soak_live import rss_of, write_anchors  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
STATS_FRAMES = re.compile(r"dnssec-auditor: (?:stats|final): packets (\d+)")
SMALL_CAPS = ("--max-fragment-sets", "500", "--max-tcp-flows", "500",
              "--max-pending-queries", "2000", "--max-held-responses", "500",
              "--max-cache-entries", "2000")
SMALL_LIMITS = {"fragment_sets": 500, "tcp_flows": 500, "pending_queries": 2000,
                "held_responses": 500, "parse_cache": 2000, "facts_memo": 2000,
                "record_cache": 2000, "digest_memo": 2000, "signature_memo": 2000,
                "signed_copies": 5000, "denial_records": 5000, "chain_rrsets": 5000,
                "zones": 1000, "forgery_entries": 2000, "holdon_waiting": 500,
                "address_memo": 2000, "finding_keys": 2000, "alert_facts": 5000}
"""With ``--all-small-caps``: every ``LiveLimits`` cap small, through ``live --limit``, so that
the soak shows each table bounded by its cap within hours."""
PLATEAU_TOLERANCE = 0.10
MAX_LAST_THIRD_GROWTH = 0.05
"""The last slice's median RSS may exceed the first median of the last third by this much."""
ROWS = 12


def write_long_capture(path: Path, frames: int, hours: float, seed: int = 1) -> float:
    """Write ``frames`` frames spread over about ``hours`` of capture time; return its span (s)."""
    generator = TrafficGenerator(seed, frames)
    generator.gap_ns = hours * 3600e9 / frames
    with path.open("wb") as out:
        return generator.run(out).duration_s


def write_churn_capture(path: Path, anchors: Path, frames: int, hours: float,
                        seed: int = 1, options: ChurnOptions | None = None) -> tuple[float, str]:
    """The churn variant: also writes the parent anchor; returns the span (s) and what the
    traffic brought (zones added, fresh names, new clients)."""
    generator = ChurnGenerator(seed, frames, options)
    generator.gap_ns = hours * 3600e9 / frames
    with path.open("wb") as out:
        span_s = generator.run(out).duration_s
    anchors.write_text(generator.anchor_text())
    return span_s, (f"churn: {generator.zones_added:,} zones added, {generator.fresh_names:,} "
                    f"fresh names, {generator.new_clients:,} sessions from new clients")


class StderrFrames(threading.Thread):
    """Follows the child's stats lines and keeps the latest processed-frame count."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        super().__init__(daemon=True)
        self.process = process
        self.frames = 0
        self.last_line = ""

    def run(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            match = STATS_FRAMES.search(line)
            if match:
                self.frames = int(match.group(1))
                self.last_line = line.strip()


def sample(process: subprocess.Popen[str], follower: StderrFrames) -> list[tuple[float, int, int]]:
    """(wall seconds, RSS bytes, frames processed) once a second until the child exits."""
    started = time.monotonic()
    samples: list[tuple[float, int, int]] = []
    while process.poll() is None:
        rss = rss_of(process.pid)
        if rss:
            samples.append((time.monotonic() - started, rss, follower.frames))
        time.sleep(1.0)
    return samples


def all_small_caps() -> tuple[str, ...]:
    """``--limit NAME=N`` for every entry of ``SMALL_LIMITS``."""
    return tuple(part for name, value in SMALL_LIMITS.items()
                 for part in ("--limit", f"{name}={value}"))


def run_auditor(capture: Path, anchors: Path, out: Path,
                caps: tuple[str, ...]) -> tuple[list[tuple[float, int, int]], str]:
    """Run ``live --read`` on the capture with ``caps`` (options); return the RSS samples and
    the final stats line."""
    command = [sys.executable, "-m", "auditor", "live", "--read", str(capture), "--out",
               str(out), "--alerts", str(out / "alerts.jsonl"), "--stats-interval", "1",
               "--trust-anchor", str(anchors), *caps]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    follower = StderrFrames(process)
    follower.start()
    samples = sample(process, follower)
    follower.join(timeout=5)
    return samples, follower.last_line


def table(samples: list[tuple[float, int, int]], frames: int, span_s: float) -> list[str]:
    """RSS per slice of capture time (frames are spread evenly over the span)."""
    lines = ["capture h | frames done | wall s | RSS MiB (median of slice) | RSS MiB max"]
    counted = [s for s in samples if s[2] > 0]
    for row in range(ROWS):
        low, high = frames * row / ROWS, frames * (row + 1) / ROWS
        part = [s for s in counted if low < s[2] <= high]
        if not part:
            continue
        hours = span_s * part[-1][2] / frames / 3600
        median = statistics.median(s[1] for s in part) / 2**20
        lines.append(f"{hours:9.2f} | {part[-1][2]:11,} | {part[-1][0]:6.0f} | "
                     f"{median:25.1f} | {max(s[1] for s in part) / 2**20:11.1f}")
    return lines


def plateau(samples: list[tuple[float, int, int]], frames: int) -> tuple[bool, float, float]:
    """Whether every RSS sample of the last third of the frames is within the tolerance of
    their mean; also the mean and the largest deviation (fraction)."""
    last = [s[1] for s in samples if s[2] > frames * 2 / 3]
    if not last:
        return False, 0.0, 0.0
    mean = statistics.fmean(last)
    deviation = max(abs(value - mean) for value in last) / mean
    return deviation <= PLATEAU_TOLERANCE, mean, deviation


def last_third_growth(samples: list[tuple[float, int, int]], frames: int) -> float:
    """Median RSS of the last twelfth of the frames over that of the first twelfth of the last
    third, minus one: a steady climb can stay within the tolerance of the mean and still be
    a leak."""
    def median_rss(low: float, high: float) -> float:
        part = [s[1] for s in samples if low < s[2] <= high]
        return statistics.median(part) if part else 0.0

    start = median_rss(frames * 8 / 12, frames * 9 / 12)
    end = median_rss(frames * 11 / 12, frames)
    return end / start - 1 if start else 0.0


def print_state(stats_path: Path) -> None:
    """The final table sizes and eviction counts the run reported (``stats.json``)."""
    try:
        stats = json.loads(stats_path.read_text())
    except (OSError, ValueError):
        return
    for key in ("state", "internal_drops", "evictions"):
        if key in stats:
            print(f"{key}: {json.dumps(stats[key], sort_keys=True)}")


def main() -> int:
    """Command line; prints the table and the plateau verdict, exit 1 if RSS kept growing."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--frames", type=int, default=500_000)
    parser.add_argument("--hours", type=float, default=4.0, help="capture time spanned")
    parser.add_argument("--capture", type=Path, help="reuse (or write) this pcap")
    parser.add_argument("--default-caps", action="store_true",
                        help="run with the default caps instead of small ones")
    parser.add_argument("--churn-share", type=float, default=ChurnOptions.share,
                        help="with --churn: share of client sessions bringing new things")
    parser.add_argument("--new-zone-every", type=float, default=ChurnOptions.new_zone_every_s,
                        help="with --churn: capture seconds between two new zones")
    parser.add_argument("--churn", action="store_true",
                        help="traffic with ever-new names, zones, clients and servers")
    parser.add_argument("--all-small-caps", action="store_true",
                        help="every LiveLimits cap small (SMALL_LIMITS), not only the "
                        "command-line ones")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="soak-memory-") as temp:
        work = Path(temp)
        capture = args.capture or work / "long.pcap"
        anchors = work / "anchors.txt"
        started = time.monotonic()
        if args.churn:
            options = ChurnOptions(share=args.churn_share,
                                   new_zone_every_s=args.new_zone_every)
            span_s, brought = write_churn_capture(capture, anchors, args.frames, args.hours,
                                                  options=options)
        else:
            span_s, brought = write_long_capture(capture, args.frames, args.hours), ""
        print(f"capture: {args.frames:,} frames over {span_s / 3600:.2f} h of capture time, "
              f"written in {time.monotonic() - started:.0f} s", flush=True)
        if brought:
            print(brought, flush=True)
        else:
            write_anchors(capture, anchors)
        started = time.monotonic()
        caps = (() if args.default_caps else
                all_small_caps() if args.all_small_caps else SMALL_CAPS)
        samples, final = run_auditor(capture, anchors, work / "out", caps)
        print(f"auditor: {time.monotonic() - started:.0f} s wall", flush=True)
        print_state(work / "out" / "stats.json")
    print(final)
    print("\n".join(table(samples, args.frames, span_s)))
    flat, mean, deviation = plateau(samples, args.frames)
    growth = last_third_growth(samples, args.frames)
    flat = flat and growth <= MAX_LAST_THIRD_GROWTH
    print(f"last third: mean RSS {mean / 2**20:.1f} MiB, largest deviation {deviation:.1%}, "
          f"growth {growth:+.1%} -> {'plateau' if flat else 'NOT flat'} (tolerance "
          f"{PLATEAU_TOLERANCE:.0%} of the mean, growth at most {MAX_LAST_THIRD_GROWTH:.0%})")
    return 0 if flat else 1


if __name__ == "__main__":
    sys.exit(main())
