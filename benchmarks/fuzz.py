"""Fuzz run of the whole offline ``audit`` path: N executions, crashes and the slowest inputs.

Each execution audits one small capture (``tests/fuzz/target.py``: ``run_audit`` on the bytes
written to a file, from an empty output directory, reports off but JSON Lines, stats, chains
and key cache written; every other execution with the sample capture's private root anchor) and
checks that no exception other than ``AuditorError`` escapes and that every frame read is
settled once. ``cheap_runs`` keeps the process's own objects out of the garbage collector's
scans, parses each anchor file once and writes the pandas/pyarrow zone tables every 100th
execution (JSON the others): a small audit then costs a few milliseconds instead of ~70.

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
    nice -n 19 .venv/bin/python benchmarks/fuzz.py --runs 1000000 --jobs 2   # two processes
    .venv/bin/python benchmarks/fuzz.py --retime benchmarks/out/fuzz/slow-*.pcap   # re-time only

Each slow input of the report is replayed five times alone after the run ("replayed alone"):
its time during the run includes whatever else the machine was doing at that moment.

``kill -INT`` or ``kill -TERM`` of the main process stops every worker and prints the report of
what ran (also for a run started in the background, which inherits SIGINT ignored).

Crashing and slowest inputs are written to ``benchmarks/out/fuzz/`` (git-ignored). Exit status
1 when any execution crashed.
"""

from __future__ import annotations

import argparse
import heapq
import logging
import multiprocessing
import os
import queue
import random
import shutil
import signal
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.fuzz.target import (  # noqa: E402
    audit_bytes,
    cheap_runs,
    mutate,
    pcap_of,
    sample_frames,
)

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
            stats = audit_bytes(data, self.workdir, anchored=bool(self.executions % 2))
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

    def merge(self, other: Tally) -> None:
        """Add another worker's tally (its execution numbers prefixed by its seed)."""
        self.executions += other.executions
        self.refused += other.refused
        self.crash_count += other.crash_count
        for key, crash in other.crashes.items():
            self.crashes.setdefault(key, crash)
        for item in other.slowest:
            if len(self.slowest) < SLOWEST:
                heapq.heappush(self.slowest, item)
            elif item[0] > self.slowest[0][0]:
                heapq.heapreplace(self.slowest, item)

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
            print(f"  slow input #{number}: {elapsed * 1000:.1f} ms, {len(data)} bytes -> {path}; "
                  f"replayed alone: {retime(data, self.workdir)}")


def retime(data: bytes, workdir: Path, rounds: int = 5) -> str:
    """Median and worst wall ms of ``rounds`` audits of one input, unanchored and anchored in
    turn, in this process after the run: an input timed slow during a long run on a shared
    machine may only have met a busy moment, and this tells which."""
    workdir.mkdir(parents=True, exist_ok=True)
    times = []
    with cheap_runs():
        for index in range(rounds):
            started = time.perf_counter()
            try:
                audit_bytes(data, workdir, anchored=bool(index % 2))
            except Exception:  # noqa: BLE001 - a crash is reported by the run itself
                pass
            times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return f"median {times[len(times) // 2]:.1f} ms, worst {times[-1]:.1f} ms of {rounds}"


def run_mutate(tally: Tally, runs: int, deadline: float, seed: int) -> None:
    rng = random.Random(seed)
    frames = sample_frames()
    with cheap_runs():
        while tally.executions < runs and time.monotonic() < deadline:
            tally.run(mutate(rng, frames))
            if tally.executions % 10_000 == 0:
                print(f"  ... seed {seed}: {tally.executions:,} executions, "
                      f"{tally.crash_count} crashes", flush=True)


def stop_on_signals() -> None:
    """SIGINT and SIGTERM end the run early, with its report: both raise KeyboardInterrupt,
    even where SIGINT was inherited ignored (a background job of a non-interactive shell)."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.default_int_handler)


def _worker(runs: int, deadline: float, seed: int, results: multiprocessing.Queue) -> None:
    stop_on_signals()
    _quiet()
    tally = Tally(_workdir())
    try:
        run_mutate(tally, runs, deadline, seed)
    except KeyboardInterrupt:
        pass
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):  # stopping: a second signal (the
            signal.signal(signum, signal.SIG_IGN)  # parent's, or the group's) must not
        shutil.rmtree(tally.workdir, ignore_errors=True)  # lose the tally
    # Execution numbers of this worker: seed * 10**9 + its own count.
    tally.crashes = {k: (seed * 10**9 + n, d, t) for k, (n, d, t) in tally.crashes.items()}
    tally.slowest = [(e, seed * 10**9 + n, d) for e, n, d in tally.slowest]
    tally.workdir = Path()
    results.put(tally)


def run_jobs(tally: Tally, runs: int, deadline: float, seed: int, jobs: int) -> None:
    """``jobs`` processes, seeds ``seed .. seed + jobs - 1``, ``runs`` executions in all."""
    results: multiprocessing.Queue = multiprocessing.Queue()
    share = [runs // jobs + (i < runs % jobs) for i in range(jobs)]
    workers = [multiprocessing.Process(target=_worker, args=(share[i], deadline, seed + i,
                                                             results)) for i in range(jobs)]
    for worker in workers:
        worker.start()
    waiting = len(workers)
    try:
        while waiting:
            tally.merge(results.get())
            waiting -= 1
    except KeyboardInterrupt:  # stopped early: stop the workers, report what they did
        give_up = time.monotonic() + 120
        while waiting and time.monotonic() < give_up:
            for worker in workers:  # again every 5 s: a signal can land where it is lost
                if worker.is_alive() and worker.pid is not None:
                    os.kill(worker.pid, signal.SIGINT)
            try:
                tally.merge(results.get(timeout=5))
            except queue.Empty:
                continue
            waiting -= 1
    for worker in workers:
        worker.join(timeout=10)


def _quiet() -> None:
    logging.disable(logging.CRITICAL)  # the audit's per-run warnings are not the report
    warnings.simplefilter("ignore")


def _workdir() -> Path:
    shm = Path("/dev/shm")
    return Path(tempfile.mkdtemp(prefix="fuzz-", dir=shm if shm.is_dir() else None))


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
    parser.add_argument("--jobs", type=int, default=1,
                        help="processes for the mutate engine (seeds SEED, SEED+1, ...)")
    parser.add_argument("--retime", type=Path, nargs="+", metavar="PCAP",
                        help="only replay these inputs (e.g. an earlier run's slow-*.pcap) and "
                             "print their times")
    args = parser.parse_args(argv)
    stop_on_signals()
    _quiet()
    if args.retime:
        workdir = _workdir()
        for path in args.retime:
            print(f"{path}: {path.stat().st_size} bytes, {retime(path.read_bytes(), workdir)}")
        shutil.rmtree(workdir, ignore_errors=True)
        return 0
    tally = Tally(_workdir())
    started = time.monotonic()
    deadline = started + args.minutes * 60 if args.minutes else float("inf")
    try:
        if args.engine == "atheris":
            run_atheris(tally, args.runs, args.seed)
        elif args.jobs > 1:
            run_jobs(tally, args.runs, deadline, args.seed, args.jobs)
        else:
            run_mutate(tally, args.runs, deadline, args.seed)
    except KeyboardInterrupt:
        pass
    finally:
        if args.engine == "mutate":
            tally.report(time.monotonic() - started)
        shutil.rmtree(tally.workdir, ignore_errors=True)
    return 1 if tally.crash_count else 0


if __name__ == "__main__":
    sys.exit(main())
