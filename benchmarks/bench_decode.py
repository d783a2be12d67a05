"""Measures our capture+decode+parse+match stage against tshark's DNS field extraction, one core.

Usage: ``bench_decode.py [--packets N] [--capture FILE] [--keep] [--profile]``. Without
``--capture`` it first writes a synthetic signed-DNS capture with ``make_capture.py``. Each
measurement runs in its own child process pinned to one CPU (``taskset -c``), so the peak RSS
(from ``wait4``) and the wall time belong to that measurement alone. The report goes to stdout;
the exit status is 0 whatever the ratio (it is a report, not a test) and 1 only if our stage
crashed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
OUT_DIR = BENCH_DIR / "out"
"""Where ``--keep`` leaves the capture and tshark's output (git-ignored)."""
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

import make_capture  # noqa: E402  (sibling script, found through BENCH_DIR)

TSHARK_FIELDS = (
    "frame.number",
    "ip.src",
    "ip.dst",
    "ipv6.src",
    "ipv6.dst",
    "dns.id",
    "dns.qry.name",
    "dns.qry.type",
    "dns.flags.rcode",
    "dns.flags.response",
)
"""What tshark extracts per DNS message: roughly what our stage hands on (addresses, ID,
question, rcode, QR). IPv6 addresses are included because our stage decodes them too."""
PROFILE_TOP = 25


@dataclass(slots=True)
class Measurement:
    """One child process's figures."""

    label: str
    """What was measured, as the table shows it."""
    wall_s: float | None = None
    """Wall time of the whole child process (interpreter start, imports, reading, exit)."""
    loop_s: float | None = None
    """Wall time of the measured loop alone (ours), or wall minus tshark's fixed start-up."""
    peak_rss_mb: float | None = None
    """Peak resident set size of the child (``wait4`` rusage ``ru_maxrss``)."""
    frames: int | None = None
    """Frames the measured tool went through."""
    messages: int | None = None
    """DNS messages (queries + responses) the tool reported."""
    responses: int | None = None
    """DNS responses: ResponseEvidence yielded (ours) or rows with QR=1 (tshark)."""
    details: dict[str, Any] = field(default_factory=dict)
    """Extra figures (our stage's counters, tshark's command line)."""
    error: str | None = None
    """Why the measurement failed, if it did."""


# -- child side: the measured loops ---------------------------------------------------------


def measure_reader(path: str) -> dict[str, Any]:
    """Iterate ``CaptureSet([path])`` to the end, counting frames."""
    started = time.perf_counter()
    from auditor.capture.sources import CaptureSet

    imported = time.perf_counter()
    frames = 0
    with CaptureSet([path]) as source:
        for _ in source:
            frames += 1
        bytes_read = source.bytes_read
    done = time.perf_counter()
    return {
        "frames": frames,
        "bytes_read": bytes_read,
        "import_s": imported - started,
        "loop_s": done - imported,
    }


def measure_pipeline(path: str, *, records: bool = False) -> dict[str, Any]:
    """Iterate the capture stage to the end, counting responses.

    Without ``records``: ``EvidenceStream().transactions(...)`` — every frame decoded, every
    DNS message's header, question and EDNS read, every response matched (the fields
    ``responses.jsonl`` reports and tshark's field extraction prints). With ``records``:
    ``EvidenceStream().run(...)`` — also every record of every distinct response parsed by
    dnspython and paired with its RRSIGs (what validation needs).
    """
    started = time.perf_counter()
    from auditor.capture.sources import CaptureSet
    from auditor.pipeline import EvidenceStream

    imported = time.perf_counter()
    stream = EvidenceStream()
    responses = 0
    with CaptureSet([path]) as source:
        for _ in stream.run(source) if records else stream.transactions(source):
            responses += 1
    done = time.perf_counter()
    counters = stream.counters()
    return {
        "frames": counters["frames_read"],
        "responses": responses,
        "messages": counters["matching"]["queries"] + counters["matching"]["responses"],
        "counters": counters,
        "import_s": imported - started,
        "loop_s": done - imported,
    }


def profile_pipeline(path: str) -> None:
    """Run the pipeline under cProfile; print the top functions by cumulative and own time."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    result = measure_pipeline(path)
    profiler.disable()
    print(
        f"profiled run: {result['frames']:,} frames, {result['responses']:,} responses "
        f"in {result['loop_s']:.1f} s (profiler overhead included)"
    )
    stats = pstats.Stats(profiler, stream=sys.stdout).strip_dirs()
    print(f"\n== top {PROFILE_TOP} by cumulative time ==")
    stats.sort_stats("cumulative").print_stats(PROFILE_TOP)
    print(f"\n== top {PROFILE_TOP} by own (total) time ==")
    stats.sort_stats("tottime").print_stats(PROFILE_TOP)


def child_main(kind: str, path: str, result_path: str) -> int:
    """Entry point of a measuring child: write its figures as JSON to ``result_path``."""
    if kind == "profile":
        profile_pipeline(path)
        return 0
    measures: dict[str, Any] = {
        "reader": measure_reader,
        "pipeline": measure_pipeline,
        "records": lambda p: measure_pipeline(p, records=True),
    }
    try:
        result = measures[kind](path)
    except Exception as exc:  # reported by the parent (a crash in a stage)
        result = {"error": f"{type(exc).__name__}: {exc}"}
    Path(result_path).write_text(json.dumps(result))
    return 0 if "error" not in result else 1


# -- parent side: processes, pinning, table -------------------------------------------------


def pinned(command: list[str], cpu: int | None) -> list[str]:
    """``command`` prefixed with ``taskset -c CPU`` when pinning is asked for and available."""
    if cpu is None or shutil.which("taskset") is None:
        return command
    return ["taskset", "-c", str(cpu), *command]


def run_child(command: list[str], stdout: Any = None) -> tuple[int, float, float]:
    """Run to completion; (exit status, wall seconds, peak RSS in MB of that process)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=stdout, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, wall, usage.ru_maxrss / 1024  # Linux reports kilobytes


def measure_ours(kind: str, label: str, capture: Path, work: Path, cpu: int | None) -> Measurement:
    """Run one of our measured loops in a pinned child and read back its figures."""
    result_path = work / f"{kind}.json"
    command = [sys.executable, __file__, "--child", kind, str(capture), str(result_path)]
    status, wall, rss = run_child(pinned(command, cpu))
    measurement = Measurement(label, wall_s=wall, peak_rss_mb=rss)
    if not result_path.exists():
        measurement.error = f"child exited with status {status} without a result"
        return measurement
    result = json.loads(result_path.read_text())
    if "error" in result:
        measurement.error = result["error"]
        return measurement
    measurement.loop_s = result["loop_s"]
    measurement.frames = result["frames"]
    measurement.messages = result.get("messages")
    measurement.responses = result.get("responses")
    measurement.details = {k: v for k, v in result.items() if k not in ("frames", "loop_s")}
    return measurement


def tshark_command(capture: Path) -> list[str]:
    """tshark reading DNS fields: one pass, no name resolution, one row per DNS message."""
    fields = [arg for name in TSHARK_FIELDS for arg in ("-e", name)]
    return ["tshark", "-n", "-r", str(capture), "-Y", "dns", "-T", "fields", *fields]


def measure_tshark(capture: Path, frames: int, work: Path, cpu: int | None) -> Measurement:
    """tshark's field extraction on the capture, with its fixed start-up cost measured apart."""
    label = "tshark -T fields -Y dns"
    if shutil.which("tshark") is None:
        return Measurement(label, error="tshark not installed (apt-get install -y tshark)")
    empty = work / "empty.pcap"
    empty.write_bytes(make_capture.PCAP_HEADER)
    with open(os.devnull, "wb") as sink:
        _, startup, _ = run_child(pinned(tshark_command(empty), cpu), stdout=sink)
    rows_path = work / "tshark-fields.tsv"
    with rows_path.open("wb") as rows:
        status, wall, rss = run_child(pinned(tshark_command(capture), cpu), stdout=rows)
    measurement = Measurement(
        label, wall_s=wall, loop_s=max(wall - startup, 0.0), peak_rss_mb=rss, frames=frames
    )
    measurement.details = {"startup_s": startup, "command": " ".join(tshark_command(capture))}
    if status != 0:
        measurement.error = f"tshark exited with status {status}"
        return measurement
    measurement.messages, measurement.responses = count_tshark_rows(rows_path)
    return measurement


def count_tshark_rows(rows_path: Path) -> tuple[int, int]:
    """(rows, rows whose dns.flags.response is set) in tshark's field output."""
    qr_column = TSHARK_FIELDS.index("dns.flags.response")
    rows = responses = 0
    with rows_path.open("rb") as lines:
        for line in lines:
            rows += 1
            columns = line.rstrip(b"\n").split(b"\t")
            flags = columns[qr_column] if len(columns) > qr_column else b""
            if flags.split(b",")[0] in (b"1", b"True"):
                responses += 1
    return rows, responses


@contextmanager
def work_dir(keep: bool) -> Iterator[Path]:
    """``benchmarks/out/`` when results are kept, otherwise a temporary directory."""
    if keep:
        OUT_DIR.mkdir(exist_ok=True)
        yield OUT_DIR
        return
    with tempfile.TemporaryDirectory(prefix="bench-decode-") as temporary:
        yield Path(temporary)


def _rate(frames: int | None, seconds: float | None) -> str:
    if not frames or not seconds:
        return f"{'-':>10}"
    return f"{frames / seconds:>10,.0f}"


def _number(value: float | None, spec: str) -> str:
    """``value`` formatted by ``spec`` (which starts with its width), or a dash that wide."""
    if value is None:
        width = int("".join(ch for ch in spec.split(".")[0] if ch.isdigit()) or 1)
        return "-".rjust(width)
    return format(value, spec)


def print_table(rows: list[Measurement]) -> None:
    """The figures, one row per measurement."""
    header = (
        f"{'measurement':32} {'wall s':>8} {'net s':>8} {'frames/s':>10} {'net fr/s':>10} "
        f"{'peak MB':>8} {'DNS msgs':>10} {'responses':>10}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        if row.error is not None and row.wall_s is None:
            print(f"{row.label:32} {row.error}")
            continue
        print(
            f"{row.label:32} {_number(row.wall_s, '8.2f')} {_number(row.loop_s, '8.2f')} "
            f"{_rate(row.frames, row.wall_s)} {_rate(row.frames, row.loop_s)} "
            f"{_number(row.peak_rss_mb, '8.0f')} {_number(row.messages, '10,')} "
            f"{_number(row.responses, '10,')}"
        )
        if row.error is not None:
            print(f"{'':32} FAILED: {row.error}")


def print_verdict(ours: Measurement, tshark: Measurement) -> None:
    """Ratio and whether the target (at least tshark's speed on one core) is met."""
    if ours.error or tshark.error or not ours.wall_s or not tshark.wall_s:
        print("\nratio: not available (a measurement failed)")
        return
    ratio = tshark.wall_s / ours.wall_s
    net_ratio = (tshark.loop_s or 0.0) / ours.loop_s if ours.loop_s else 0.0
    verdict = "MET" if ratio >= 1.0 else "NOT MET"
    print(f"\nspeed vs tshark (process wall): {ratio:.2f}x  (>1 means we are faster)")
    if (tshark.loop_s or 0.0) < 0.5 * tshark.wall_s:
        print("speed vs tshark (net of start-up): not meaningful, tshark mostly started up")
    else:
        print(f"speed vs tshark (net of start-up): {net_ratio:.2f}x")
    print(f"target 'at least as fast as tshark field extraction on one core': {verdict}")
    if ours.responses is not None and tshark.responses is not None:
        same = "same" if ours.responses == tshark.responses else "DIFFERENT"
        print(f"responses: ours {ours.responses:,} / tshark {tshark.responses:,} ({same})")


def print_counters(ours: Measurement) -> None:
    """Our stage's own accounting: where frames ended and how matching went."""
    counters = ours.details.get("counters")
    if not counters:
        return
    settled = {k: v for k, v in counters["frames"].items() if v}
    print("\nours, frames settled:", ", ".join(f"{k} {v:,}" for k, v in settled.items()))
    print("ours, matching:", ", ".join(f"{k} {v:,}" for k, v in counters["matching"].items()))
    print("ours, messages:", ", ".join(f"{k} {v:,}" for k, v in counters["messages"].items()))


def prepare_capture(args: argparse.Namespace, work: Path) -> tuple[Path, int | None]:
    """The capture to read (written now unless ``--capture``) and its true response count."""
    if args.capture is not None:
        print(f"capture: {args.capture} (given; no ground truth)")
        return args.capture, None
    path = work / f"bench-{args.packets}-seed{args.seed}.pcap"
    started = time.perf_counter()
    summary = make_capture.write_capture(path, args.packets, args.seed)
    elapsed = time.perf_counter() - started
    counts = summary.counts
    print(
        f"capture: {path} written in {elapsed:.1f} s: {summary.packets:,} frames, "
        f"{summary.bytes / 1e6:.1f} MB, {summary.duration_s:.0f} s of traffic"
    )
    print(
        "  generator's ground truth: "
        + ", ".join(
            f"{tag} {counts.get(tag, 0):,}"
            for tag in (
                "dns_query",
                "dns_response",
                "dns_response_tcp",
                "fragmented_response",
                "truncated_response",
                "dnskey_response",
                "nxdomain_response",
                "noise",
            )
        )
    )
    return path, counts.get("dns_response", 0)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--packets",
        type=int,
        default=make_capture.DEFAULT_PACKETS,
        help="frames to generate (default %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=1, help="generator seed")
    parser.add_argument("--capture", type=Path, help="measure this capture instead")
    parser.add_argument(
        "--keep", action="store_true", help=f"keep the capture and tshark's output in {OUT_DIR}"
    )
    parser.add_argument("--cpu", type=int, default=0, help="CPU to pin every run to")
    parser.add_argument("--no-pin", action="store_true", help="do not pin to one CPU")
    parser.add_argument("--no-tshark", action="store_true", help="skip the tshark run")
    parser.add_argument(
        "--profile",
        action="store_true",
        help=f"also profile our stage; print the top {PROFILE_TOP} functions",
    )
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Generate (or take) a capture, measure reader, our stage and tshark, print the table."""
    args = parse_args(argv)
    if args.child:
        return child_main(*args.child)
    cpu = None if args.no_pin else args.cpu
    with work_dir(args.keep) as work:
        capture, truth = prepare_capture(args, work)
        pin = f"pinned to CPU {cpu}" if cpu is not None and shutil.which("taskset") else "unpinned"
        print(f"measuring ({pin}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]})\n")
        reader = measure_ours("reader", "ours: capture reader only", capture, work, cpu)
        ours = measure_ours("pipeline", "ours: capture->decode->match", capture, work, cpu)
        records = measure_ours("records", "ours: ... + parse all records", capture, work, cpu)
        frames = ours.frames or reader.frames or 0
        tshark = (
            Measurement("tshark", error="skipped")
            if args.no_tshark
            else measure_tshark(capture, frames, work, cpu)
        )
        print_table([reader, ours, records, tshark])
        if truth is not None:
            print(f"\nground truth: {truth:,} DNS responses complete within the capture")
        print_verdict(ours, tshark)
        print_counters(ours)
        if "startup_s" in tshark.details:
            print(
                f"\ntshark start-up (empty capture): {tshark.details['startup_s']:.2f} s; "
                f"command: {tshark.details['command']}"
            )
        if args.json is not None:
            figures = [vars_of(row) for row in (reader, ours, records, tshark)]
            args.json.write_text(
                json.dumps({"ground_truth_responses": truth, "measurements": figures}, indent=2)
            )
        if args.profile and ours.error is None:
            print()
            sys.stdout.flush()
            command = [sys.executable, __file__, "--child", "profile", str(capture), "-"]
            run_child(pinned(command, cpu))
    return 1 if ours.error is not None else 0


def vars_of(row: Measurement) -> dict[str, Any]:
    """A measurement as a JSON-ready mapping."""
    return {name: getattr(row, name) for name in Measurement.__dataclass_fields__}


if __name__ == "__main__":
    sys.exit(main())
