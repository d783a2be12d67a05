"""Memory soak of ``dnssec-auditor live``: feeds a long synthetic capture spanning hours of
capture time to ``live --read`` with small state caps, samples the child's RSS every second
against the frames it has processed, and reports whether the RSS plateaus.

No interface and no root are needed: the capture is a pcap file read as a stream. Usage::

    .venv/bin/python benchmarks/soak_memory.py --frames 500000 --hours 4
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_capture import TrafficGenerator  # noqa: E402
from soak_live import rss_of, write_anchors  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
STATS_FRAMES = re.compile(r"dnssec-auditor: (?:stats|final): packets (\d+)")
SMALL_CAPS = ("--max-fragment-sets", "500", "--max-tcp-flows", "500",
              "--max-pending-queries", "2000", "--max-held-responses", "500",
              "--max-cache-entries", "2000")
PLATEAU_TOLERANCE = 0.10
ROWS = 12


def write_long_capture(path: Path, frames: int, hours: float, seed: int = 1) -> float:
    """Write ``frames`` frames spread over about ``hours`` of capture time; return its span (s)."""
    generator = TrafficGenerator(seed, frames)
    generator.gap_ns = hours * 3600e9 / frames
    with path.open("wb") as out:
        return generator.run(out).duration_s


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


def run_auditor(capture: Path, anchors: Path, out: Path,
                caps: tuple[str, ...]) -> tuple[list[tuple[float, int, int]], str]:
    """Run ``live --read`` on the capture; return the RSS samples and the final stats line."""
    process = subprocess.Popen(
        [sys.executable, "-m", "auditor", "live", "--read", str(capture), "--out", str(out),
         "--alerts", str(out / "alerts.jsonl"), "--stats-interval", "1",
         "--trust-anchor", str(anchors), *caps],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
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


def main() -> int:
    """Command line; prints the table and the plateau verdict, exit 1 if RSS kept growing."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--frames", type=int, default=500_000)
    parser.add_argument("--hours", type=float, default=4.0, help="capture time spanned")
    parser.add_argument("--capture", type=Path, help="reuse (or write) this pcap")
    parser.add_argument("--default-caps", action="store_true",
                        help="run with the default caps instead of small ones")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="soak-memory-") as temp:
        work = Path(temp)
        capture = args.capture or work / "long.pcap"
        started = time.monotonic()
        span_s = write_long_capture(capture, args.frames, args.hours)
        print(f"capture: {args.frames:,} frames over {span_s / 3600:.2f} h of capture time, "
              f"written in {time.monotonic() - started:.0f} s", flush=True)
        anchors = write_anchors(capture, work / "anchors.txt")
        samples, final = run_auditor(capture, anchors, work / "out",
                                     () if args.default_caps else SMALL_CAPS)
    print(final)
    print("\n".join(table(samples, args.frames, span_s)))
    flat, mean, deviation = plateau(samples, args.frames)
    print(f"last third: mean RSS {mean / 2**20:.1f} MiB, largest deviation {deviation:.1%} "
          f"-> {'plateau' if flat else 'NOT flat'} (tolerance {PLATEAU_TOLERANCE:.0%})")
    return 0 if flat else 1


if __name__ == "__main__":
    sys.exit(main())
