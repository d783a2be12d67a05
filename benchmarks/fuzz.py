"""Fuzz run of the whole offline ``audit`` path: N executions, crashes and the slowest inputs.

Each execution audits one small capture (``tests/fuzz/target.py``: ``run_audit`` on the bytes
written to a file, reports off but JSON Lines, stats and key cache written) and checks that no
exception other than ``AuditorError`` escapes and that every frame read is settled once.

Engines:

- ``mutate`` (default): a seeded mutation loop over frames of ``captures/sample-dnssec.pcap``
  (flipped/random bytes, interesting 16-bit values, cuts, insertions, duplicated and reordered
  frames, damage to the pcap framing); the same seed gives the same inputs.
- ``atheris``: coverage-guided (libFuzzer through atheris, when installed), seeded with
  captures of sample frames; ``--runs`` executions.

Usage::

    .venv/bin/python benchmarks/fuzz.py --runs 100000 --seed 1
    .venv/bin/python benchmarks/fuzz.py --engine atheris --runs 50000
    .venv/bin/python benchmarks/fuzz.py --minutes 60        # run for a time instead

Crashing and slowest inputs are written to ``benchmarks/out/fuzz/`` (git-ignored). Exit status
1 when any execution crashed.
"""

from __future__ import annotations

import argparse
import heapq
import logging
import random
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.fuzz.target import audit_bytes, mutate, pcap_of, sample_frames  # noqa: E402

OUT = Path(__file__).resolve().parent / "out" / "fuzz"
SLOWEST = 5


class Tally:
    """Executions, crashes (by exception type and place) and the slowest inputs."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.executions = 0
        self.refused = 0
        self.crashes: dict[str, tuple[int, bytes, str]] = {}
        self.crash_count = 0
        self.slowest: list[tuple[float, int, bytes]] = []

    def run(self, data: bytes) -> None:
        started = time.perf_counter()
        try:
            stats = audit_bytes(data, self.workdir)
        except Exception as exc:  # a crash: record it and go on
            self.crash_count += 1
            where = traceback.extract_tb(exc.__traceback__)[-1]
            key = f"{type(exc).__name__} at {where.filename}:{where.lineno}"
            if key not in self.crashes:
                self.crashes[key] = (self.executions, data, traceback.format_exc())
        else:
            self.refused += stats is None
        elapsed = time.perf_counter() - started
        item = (elapsed, self.executions, data)
        if len(self.slowest) < SLOWEST:
            heapq.heappush(self.slowest, item)
        elif elapsed > self.slowest[0][0]:
            heapq.heapreplace(self.slowest, item)
        self.executions += 1

    def report(self, seconds: float) -> None:
        OUT.mkdir(parents=True, exist_ok=True)
        rate = self.executions / seconds if seconds else 0.0
        print(f"executions {self.executions:,} in {seconds:,.0f} s ({rate:,.1f}/s); "
              f"refused as unusable input (exit 3) {self.refused:,}; crashes {self.crash_count:,} "
              f"({len(self.crashes)} distinct)")
        for key, (number, data, trace) in self.crashes.items():
            path = OUT / f"crash-{number}.pcap"
            path.write_bytes(data)
            print(f"  crash {key}: input {path}\n{trace}")
        for elapsed, number, data in sorted(self.slowest, reverse=True):
            path = OUT / f"slow-{number}.pcap"
            path.write_bytes(data)
            print(f"  slow input #{number}: {elapsed * 1000:.1f} ms, {len(data)} bytes -> {path}")


def run_mutate(tally: Tally, runs: int, deadline: float, seed: int) -> None:
    rng = random.Random(seed)
    frames = sample_frames()
    while tally.executions < runs and time.monotonic() < deadline:
        tally.run(mutate(rng, frames))
        if tally.executions % 10_000 == 0:
            print(f"  ... {tally.executions:,} executions, {tally.crash_count} crashes",
                  flush=True)


def run_atheris(tally: Tally, runs: int, seed: int) -> None:
    import atheris  # type: ignore[import-not-found]

    corpus = Path(tempfile.mkdtemp(prefix="fuzz-corpus-"))
    frames = sample_frames()
    for index in range(0, len(frames), 4):
        (corpus / f"seed-{index}").write_bytes(pcap_of(frames[index: index + 4]))
    started = time.monotonic()

    def one(data: bytes) -> None:
        tally.run(data)
        if tally.executions == runs:  # libFuzzer ends the process (os._exit) after its runs
            tally.report(time.monotonic() - started)
            sys.stdout.flush()

    atheris.instrument_all()  # coverage of every module imported so far (auditor, dnspython)
    atheris.Setup([sys.argv[0], f"-runs={runs}", f"-seed={seed}", "-max_len=8192",
                   "-rss_limit_mb=4096", str(corpus)], one)
    atheris.Fuzz()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", choices=("mutate", "atheris"), default="mutate")
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--minutes", type=float, default=None,
                        help="stop after this long (mutate engine)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    logging.disable(logging.CRITICAL)  # the audit's per-run warnings are not the report
    warnings.simplefilter("ignore")
    workdir = Path(tempfile.mkdtemp(prefix="fuzz-", dir="/dev/shm" if Path("/dev/shm").is_dir()
                                    else None))
    tally = Tally(workdir)
    started = time.monotonic()
    deadline = started + args.minutes * 60 if args.minutes else float("inf")
    try:
        if args.engine == "atheris":
            run_atheris(tally, args.runs, args.seed)
        else:
            run_mutate(tally, args.runs, deadline, args.seed)
    except KeyboardInterrupt:
        pass
    finally:
        if args.engine == "mutate":
            tally.report(time.monotonic() - started)
    return 1 if tally.crash_count else 0


if __name__ == "__main__":
    sys.exit(main())
