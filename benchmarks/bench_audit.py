"""Measures the whole ``audit`` command against tshark's DNS field extraction, one core.

Usage: ``bench_audit.py [--packets N] [--kind standard|ttl-decay|churn] [--repo DIR ...]
[--profile]``. Without ``--capture`` it first writes a ``make_capture.py`` capture (and its
trust anchor) of the chosen kind, or reuses one already in ``benchmarks/out/``. Every
measurement runs in its own child process pinned to one CPU (``taskset -c``), in the same run,
so the ratio is what counts on a shared machine; peak RSS comes from ``wait4``. ``--repo`` runs
the audit of other checkouts too (a before/after pair in one run) and checks that their
``responses.jsonl`` and ``findings.jsonl`` are byte-identical to the first one's. ``--profile``
runs our audit once more under cProfile and prints where the time goes per stage, in
microseconds per frame (scaled to the unprofiled CPU time). Wall and CPU time are both
reported: on a shared machine CPU time is the robust figure. The exit status is 0 whatever the
ratio and 1 only if an audit failed or the outputs differ.
"""

from __future__ import annotations

import argparse
import cProfile
import filecmp
import json
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
OUT_DIR = BENCH_DIR / "out"
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

import make_capture  # noqa: E402  (sibling script, found through BENCH_DIR)
from bench_decode import pinned  # noqa: E402

KINDS = ("standard", "ttl-decay", "churn")
COMPARED = ("responses.jsonl", "findings.jsonl")
"""Outputs that must be byte-identical between checkouts (neither holds a run id or time)."""
STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("capture+decode", ("auditor/capture/", "auditor/decode/", "auditor/ledger.py")),
    (
        "parse",
        (
            "auditor/messages.py",
            "dns/message.py",
            "dns/rdata",
            "dns/name.py",
            "dns/rrset.py",
            "dns/rdataset.py",
            "dns/wire.py",
            "dns/set.py",
        ),
    ),
    ("match", ("auditor/transactions.py",)),
    ("evidence+keys", ("auditor/evidence.py", "auditor/trust/", "auditor/memo.py")),
    ("validate", ("auditor/validate/", "dns/dnssec", "cryptography/")),
    ("findings", ("auditor/findings/",)),
    ("forgery", ("auditor/forgery/",)),
    ("resolution", ("auditor/resolution/",)),
    ("write+reports", ("auditor/report/", "json/", "orjson", "pyarrow/", "pandas/", "jinja2/")),
    ("pipeline", ("auditor/pipeline.py", "auditor/engine/")),  # the drivers and the engine
)
"""Stages of the per-stage breakdown: own time of the functions in these files (first match
wins; everything else, interpreter and imports included, is ``other``)."""


@dataclass(slots=True)
class Child:
    """What one pinned child process cost."""

    status: int
    wall_s: float
    cpu_s: float
    """User plus system CPU time: on a shared machine the robust figure (wall time also
    counts the time other processes held the CPU)."""
    peak_rss_mb: float


def run_child(command: list[str], stdout: Any = None) -> Child:
    """Run to completion; its wall and CPU seconds and peak RSS (from ``wait4``)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=stdout, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    cpu = usage.ru_utime + usage.ru_stime
    return Child(os.waitstatus_to_exitcode(status), wall, cpu, usage.ru_maxrss / 1024)


@dataclass(slots=True)
class AuditRun:
    """One child's figures (an audit, or tshark)."""

    repo: str
    wall_s: float = 0.0
    cpu_s: float = 0.0
    peak_rss_mb: float = 0.0
    responses: int | None = None
    verdicts: dict[str, int] = field(default_factory=dict)
    identical: bool | None = None
    """Outputs byte-identical to the first checkout's (None for the first)."""
    error: str | None = None


def capture_for(args: argparse.Namespace) -> tuple[Path, Path | None]:
    """The capture and its anchor: given, already in benchmarks/out/, or written now."""
    if args.capture is not None:
        return args.capture, args.anchor
    OUT_DIR.mkdir(exist_ok=True)
    path = OUT_DIR / f"audit-{args.kind}-{args.packets}-seed{args.seed}.pcap"
    anchor = path.with_suffix(".anchor")
    if not path.exists() or not anchor.exists():
        print(f"writing {path} ...", file=sys.stderr)
        if args.kind == "churn":
            from churn_capture import write_churn_capture

            _, generator = write_churn_capture(path, args.packets, args.seed)
            anchor.write_text(generator.anchor_text())
        else:
            make_capture.write_capture(
                path, args.packets, args.seed, ttl_decay=args.kind == "ttl-decay"
            )
    return path, anchor


def audit_command(capture: Path, anchor: Path | None, out: Path, extra: list[str]) -> list[str]:
    """``python -m auditor audit`` with every default output, quiet."""
    command = [sys.executable, "-m", "auditor", "audit", str(capture), "--out", str(out), "-q",
               "--jobs", "1"]  # one core, as tshark
    if anchor is not None:
        command += ["--trust-anchor", str(anchor)]
    return command + extra


def run_audit_child(repo: Path, command: list[str], cpu: int | None) -> Child:
    """Run one audit with ``repo`` first on the import path (its own ``auditor`` package)."""
    previous = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(repo) + (os.pathsep + previous if previous else "")
    cwd = Path.cwd()
    try:
        os.chdir(repo)
        return run_child(pinned(command, cpu))
    finally:
        os.chdir(cwd)
        if previous is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = previous


def measure_audit(
    repo: Path, capture: Path, anchor: Path | None, out: Path, args: argparse.Namespace
) -> AuditRun:
    """One pinned audit; its verdict counts read back from ``stats.json``."""
    run = AuditRun(str(repo))
    child = run_audit_child(repo, audit_command(capture, anchor, out, args.audit_arg), args.cpu)
    run.wall_s, run.cpu_s, run.peak_rss_mb = child.wall_s, child.cpu_s, child.peak_rss_mb
    stats_path = out / "stats.json"
    if child.status != 0 or not stats_path.exists():
        run.error = f"audit exited with status {child.status}"
        return run
    stats = json.loads(stats_path.read_text())
    run.responses = stats.get("responses_written")
    run.verdicts = stats.get("validation", {}).get("verdicts", {})
    return run


def tshark_command(capture: Path) -> list[str]:
    """The command benchmarks/README.md compares with (bench_decode.py's)."""
    from bench_decode import tshark_command as command

    return command(capture)


def measure_tshark(capture: Path, cpu: int | None) -> AuditRun:
    """tshark's DNS field extraction, output to /dev/null."""
    run = AuditRun("tshark -T fields -Y dns")
    if shutil.which("tshark") is None:
        run.error = "tshark not installed"
        return run
    with open(os.devnull, "wb") as sink:
        child = run_child(pinned(tshark_command(capture), cpu), stdout=sink)
    run.wall_s, run.cpu_s, run.peak_rss_mb = child.wall_s, child.cpu_s, child.peak_rss_mb
    if child.status != 0:
        run.error = f"tshark exited with status {child.status}"
    return run


def same_outputs(first: Path, other: Path) -> bool:
    """Whether the compared outputs of two audits are byte-identical."""
    return all(filecmp.cmp(first / name, other / name, shallow=False) for name in COMPARED)


def stage_of(filename: str) -> str:
    """The breakdown stage a profiled function's file belongs to."""
    for stage, parts in STAGES:
        if any(part in filename for part in parts):
            return stage
    return "other"


def profile_stages(
    capture: Path, anchor: Path | None, out: Path, extra: list[str]
) -> dict[str, float]:
    """Own time per stage (seconds, profiled) of one in-process audit of this checkout."""
    sys.path.insert(0, str(REPO_ROOT))
    from auditor.cli import cli, tune_garbage_collector

    argv = audit_command(capture, anchor, out, extra)[3:]
    tune_garbage_collector()
    profiler = cProfile.Profile()
    try:
        profiler.runcall(cli, argv, standalone_mode=True)
    except SystemExit:
        pass
    stats = pstats.Stats(profiler)
    return {**stage_totals(stats), **phase_totals(stats)}


PHASES = (
    ("key pass (first pass)", "pipeline.py", "_observe_keys"),
    ("end-of-run reports", "report/run.py", "finish"),
)
"""Phases shown apart, by cumulative time (they overlap the stages)."""


def phase_totals(stats: Any) -> dict[str, float]:
    """Cumulative time of each of ``PHASES``, keyed ``phase: NAME``."""
    found: dict[str, float] = {}
    for (filename, _, function), (_, _, _, cumulative, _) in stats.stats.items():
        for label, file_part, name in PHASES:
            if function == name and filename.endswith(file_part):
                found[f"phase: {label}"] = found.get(f"phase: {label}", 0.0) + cumulative
    return found


def stage_totals(stats: Any) -> dict[str, float]:
    """Own time per stage; a function of no stage (a builtin such as ``dict.get``, the
    standard library) is charged to the stages of its callers, in proportion to the time
    it spent for each (one level up), else to ``other``."""
    totals: dict[str, float] = {}
    for (filename, _, _), (_, _, own, _, callers) in stats.stats.items():
        stage = stage_of(filename)
        if stage != "other" or not callers:
            totals[stage] = totals.get(stage, 0.0) + own
            continue
        for (caller_file, _, _), figures in callers.items():
            caller_stage = stage_of(caller_file)
            totals[caller_stage] = totals.get(caller_stage, 0.0) + figures[2]
    return totals


def print_breakdown(totals: dict[str, float], cpu_s: float, frames: int) -> None:
    """Per-stage µs/frame, the profiled shares scaled to the unprofiled CPU time."""
    profiled = sum(v for k, v in totals.items() if not k.startswith("phase:")) or 1.0
    print("\nper-stage breakdown (cProfile own time, scaled to the unprofiled CPU time):")
    print(f"| {'stage':<30} | {'share':>6} | {'µs/frame':>9} |")
    print(f"|{'-' * 32}|{'-' * 8}:|{'-' * 11}:|")
    ordered = sorted(totals.items(), key=lambda item: (item[0].startswith("phase:"), -item[1]))
    for stage, seconds in ordered:
        share = seconds / profiled
        print(f"| {stage:<30} | {share:6.1%} | {share * cpu_s / frames * 1e6:9.1f} |")


def print_table(tshark: AuditRun | None, runs: list[AuditRun], frames: int) -> None:
    """One row per child: wall and CPU seconds, frames per CPU second, peak RSS, and the
    speed relative to tshark by wall and by CPU time (>1: faster than tshark)."""
    print(
        f"| {'measurement':<40} | {'wall s':>7} | {'CPU s':>7} | {'fr/CPU s':>9} | "
        f"{'peak MB':>7} | {'vs tshark wall / CPU':>20} |"
    )
    print(f"|{'-' * 42}|{'-' * 8}:|{'-' * 8}:|{'-' * 10}:|{'-' * 8}:|{'-' * 21}:|")
    for run in ([tshark] if tshark is not None else []) + runs:
        if run.error:
            print(f"| {run.repo:<40} | {run.error}")
            continue
        ratio = "-"
        if tshark is not None and not tshark.error:
            ratio = f"{tshark.wall_s / run.wall_s:.3f}x / {tshark.cpu_s / run.cpu_s:.3f}x"
        print(
            f"| {run.repo[-40:]:<40} | {run.wall_s:7.2f} | {run.cpu_s:7.2f} | "
            f"{frames / run.cpu_s:9,.0f} | {run.peak_rss_mb:7.0f} | {ratio:>20} |"
        )
    for run in runs:
        same = "" if run.identical is None else f", outputs identical: {run.identical}"
        print(f"  {run.repo}: {run.responses} responses {run.verdicts}{same}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--packets", type=int, default=200_000, help="frames to generate")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--kind",
        choices=KINDS,
        default="standard",
        help="make_capture.py traffic: plain, --ttl-decay or --churn",
    )
    parser.add_argument("--capture", type=Path, help="audit this capture instead")
    parser.add_argument("--anchor", type=Path, help="trust anchor file for --capture")
    parser.add_argument(
        "--repo",
        type=Path,
        action="append",
        default=[],
        help="checkout whose audit to measure (repeatable; default: this one)",
    )
    parser.add_argument("--cpu", type=int, default=0, help="CPU to pin every child to")
    parser.add_argument("--no-pin", dest="cpu", action="store_const", const=None)
    parser.add_argument("--no-tshark", action="store_true")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also profile this checkout's audit for a per-stage breakdown",
    )
    parser.add_argument(
        "--audit-arg",
        action="append",
        default=[],
        help="extra argument for every audit (repeatable)",
    )
    parser.add_argument("--json", type=Path, help="write every figure here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    capture, anchor = capture_for(args)
    frames = sum(1 for _ in _frames(capture))
    repos = [path.resolve() for path in args.repo] or [REPO_ROOT]
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as temporary:
        work = Path(temporary)
        tshark = None if args.no_tshark else measure_tshark(capture, args.cpu)
        runs = []
        for index, repo in enumerate(repos):
            out = work / f"audit-{index}"
            runs.append(measure_audit(repo, capture, anchor, out, args))
            if index and not runs[-1].error and not runs[0].error:
                runs[-1].identical = same_outputs(work / "audit-0", out)
        print(f"\n{capture} ({frames:,} frames, kind {args.kind}); pinned to CPU {args.cpu}")
        print_table(tshark, runs, frames)
        totals = {}
        if args.profile:
            totals = profile_stages(capture, anchor, work / "profiled", args.audit_arg)
            print_breakdown(totals, runs[-1].cpu_s, frames)
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "capture": str(capture),
                    "frames": frames,
                    "kind": args.kind,
                    "tshark": None if tshark is None else asdict(tshark),
                    "audits": [asdict(run) for run in runs],
                    "profile_s": totals,
                },
                indent=2,
            )
        )
    failed = any(run.error or run.identical is False for run in runs)
    return 1 if failed else 0


def _frames(capture: Path) -> Any:
    sys.path.insert(0, str(REPO_ROOT))
    from auditor.capture.sources import CaptureSet

    with CaptureSet([str(capture)]) as source:
        yield from source


if __name__ == "__main__":
    sys.exit(main())
