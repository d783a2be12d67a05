"""Soak benchmark of ``dnssec-auditor live``: replays a large capture onto a veth pair made by
this script, at increasing packet rates, and reports the highest rate with zero drops and the
auditor's memory over time.

Reference, in the same run: at each rate, after the auditor's run (never at the same time), the
same frames are replayed at the same rate to tshark capturing live on the same interface, with
the same BPF filter as ``live`` and a kernel buffer of the size our socket asks for, printing
DNS fields per frame (``-Y dns -T fields``); the same criteria (zero kernel drops, caught up
within 2.5 s of the replay's end) give its highest zero-drop rate. tshark does no DNSSEC
validation: the comparison is who keeps up with capture and DNS decoding, while the auditor
also matches queries, pairs RRsets with RRSIGs, validates and reports every response.
``--no-reference`` skips tshark; ``--reference-only`` runs tshark alone.

Traffic only goes onto the veth pair created here (the capture's addresses never leave it:
frames arrive on our end, nothing routes them). Needs root, tcpreplay
(``apt-get install -y tcpreplay``; without it a paced raw-socket sender is used) and, for
the reference, tshark.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from shutil import which

REPO = Path(__file__).resolve().parent.parent
OUR_END, PEER_END = "soak-cap0", "soak-inj0"
DEFAULT_RATES = (1000, 2000, 3000, 4000, 5000, 7000, 10000)
MAX_DRAIN_S = 2.5
VETH_MTU = 9000  # the capture's IPv6 TCP segments are 1,534-byte frames: over a 1,500 MTU
TSHARK_FIELDS = ("frame.number", "dns.id", "dns.qry.name", "dns.flags.rcode",
                 "dns.flags.response")
SETTLE_S = 1.5
"""Quiet time after which tshark's output counts as settled: dumpcap hands new frames on to
tshark about twice a second, so its output grows in steps even when it keeps up."""
FAILED_BELOW = "not measured: not zero-drop at a lower rate"


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True)


def make_veth() -> None:
    subprocess.run(["ip", "link", "del", OUR_END], check=False, stderr=subprocess.DEVNULL)
    _run("ip", "link", "add", OUR_END, "type", "veth", "peer", "name", PEER_END)
    for name in (OUR_END, PEER_END):
        _run("ip", "link", "set", name, "mtu", str(VETH_MTU), "up")


def remove_veth() -> None:
    subprocess.run(["ip", "link", "del", OUR_END], check=False)


def ensure_capture(path: Path | None, packets: int) -> Path:
    if path is not None:
        return path
    target = REPO / "benchmarks" / "out" / f"bench-{packets}-seed1.pcap"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        _run(sys.executable, str(REPO / "benchmarks" / "make_capture.py"), str(target),
             "--packets", str(packets))
    return target


def rss_of(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def process_tree(root: int) -> list[int]:
    """``root`` and every process descending from it (tshark runs dumpcap as its child)."""
    children: defaultdict[int, list[int]] = defaultdict(list)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rpartition(")")[2].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children[parent].append(int(stat.parent.name))
    tree = [root]
    for pid in tree:  # grows while walked: breadth first
        tree.extend(children.get(pid, ()))
    return tree


def tree_rss(root: int) -> int:
    return sum(rss_of(pid) for pid in process_tree(root))


class Sampler(threading.Thread):
    """RSS of a process (or what ``measure`` says of it) every ``interval`` seconds."""

    def __init__(self, pid: int, interval: float = 1.0,
                 measure: Callable[[int], int] = rss_of) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.measure = measure
        self.samples: list[tuple[float, int]] = []
        self.stop = threading.Event()
        self.start_time = time.monotonic()

    def run(self) -> None:
        while not self.stop.wait(self.interval):
            self.samples.append((round(time.monotonic() - self.start_time, 1),
                                 self.measure(self.pid)))

    def peak_mib(self) -> float:
        return round(max((m for _, m in self.samples), default=0) / 2**20, 1)

    def over_time_mib(self) -> list[tuple[float, float]]:
        return [(t, round(m / 2**20, 1)) for t, m in self.samples]


def write_anchors(capture: Path, target: Path, frames: int = 50_000) -> Path:
    """Every DNSKEY RRset in the first ``frames`` frames as trust anchors: the benchmark zones
    have no parent chain, and unanchored traffic would all be held as indeterminate."""
    from itertools import islice

    from auditor.capture.sources import CaptureSet
    from auditor.pipeline import EvidenceStream

    lines: set[str] = set()
    with CaptureSet([str(capture)]) as source:
        for evidence in EvidenceStream().run(islice(source, frames)):
            for item in evidence.rrsets:
                if item.rrset.rdtype == 48:  # DNSKEY
                    lines.update(f"{item.rrset.name} 3600 IN DNSKEY {key.to_text()}"
                                 for key in item.rrset if key.flags & 1)  # SEP keys
    target.write_text("\n".join(sorted(lines)) + "\n")
    return target


def start_auditor(out: Path, hold: float, anchors: Path | None,
                  metrics_port: int | None = None,
                  live_args: tuple[str, ...] = ()) -> subprocess.Popen[str]:
    # The capture's signatures are valid in mid-2025 and live judges at capture (= now)
    # time: a clock skew of ~3 years keeps them valid, as on a live network.
    trust = ["--trust-anchor", str(anchors), "--clock-skew", "100000000"] if anchors else []
    metrics = ["--metrics-port", str(metrics_port)] if metrics_port is not None else []
    process = subprocess.Popen(
        [sys.executable, "-m", "auditor", "live", "-i", OUR_END, "--out", str(out),
         "--alerts", str(out / "alerts.jsonl"), "--stats-interval", "1", "--hold", str(hold),
         *trust, *metrics, *live_args, "-v"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    for line in process.stderr:
        if "capturing on" in line:
            break
    threading.Thread(target=lambda: [None for _ in process.stderr or []], daemon=True).start()
    return process


REPLAY_TIMER = "nano"
"""tcpreplay's pacing (``--timer``): ``nano`` sleeps between packets. Its default, ``gtod``,
busy-waits: measured at 5,000 frames/s, 5.0 CPU s per 5 s of replay (a whole core, which
the auditor then cannot use) against 0.56 with ``nano``, at the same achieved rate. Runs
before 2026-12-07 04:00 UTC used the default."""


def replay(capture: Path, rate: int, count: int) -> float:
    started = time.monotonic()
    if which("tcpreplay"):
        subprocess.run(["tcpreplay", "-q", f"--timer={REPLAY_TIMER}", "-i", PEER_END,
                        f"--pps={rate}", "--loop=0", f"--limit={count}", str(capture)],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    else:
        paced_send(capture, rate, count)
    return time.monotonic() - started


def paced_send(capture: Path, rate: int, count: int) -> None:
    from auditor.capture.sources import CaptureSet

    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    sock.bind((PEER_END, 0))
    start = time.monotonic()
    sent = 0
    while sent < count:  # loop over the capture, as tcpreplay --loop=0 does
        with CaptureSet([str(capture)]) as frames:
            for frame in frames:
                if sent >= count:
                    break
                delay = start + sent / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                sock.send(frame.data)
                sent += 1
    sock.close()


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far (``/proc/PID/stat`` utime + stime)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Scraper(threading.Thread):
    """Scrapes the metrics endpoint every ``interval`` seconds, as Prometheus would (its
    default is 15 s: every second is the harder case)."""

    def __init__(self, port: int, interval: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.url = f"http://127.0.0.1:{port}/metrics"
        self.interval = interval
        self.scrapes = 0
        self.failures = 0
        self.stop = threading.Event()

    def run(self) -> None:
        import urllib.request

        while not self.stop.wait(self.interval):
            try:
                with urllib.request.urlopen(self.url, timeout=5) as response:
                    response.read()
                self.scrapes += 1
            except OSError:
                self.failures += 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def read_stats(out: Path) -> dict:
    try:
        return json.loads((out / "stats.json").read_text())
    except (OSError, ValueError):
        return {}


def wait_caught_up(out: Path, timeout: float) -> float:
    """Seconds until the auditor has read every frame the kernel queued for it."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        time.sleep(0.5)
        stats = read_stats(out)
        received = stats.get("capture", {}).get("received", -1)
        if stats.get("frames_read", 0) >= received >= 0:
            time.sleep(1.2)  # one more stats period: the kernel count may have moved
            stats = read_stats(out)
            if stats.get("frames_read", 0) >= stats.get("capture", {}).get("received", 0):
                break
    return time.monotonic() - started


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds of a process and its children (``live --jobs 2``: both processes)."""
    return sum(cpu_seconds(pid) for pid in process_tree(root))


def one_rate(capture: Path, rate: int, seconds: float, hold: float,
             anchors: Path | None, *, metrics: bool = False,
             live_args: tuple[str, ...] = ()) -> dict:
    count = int(rate * seconds)
    with tempfile.TemporaryDirectory(prefix="soak-") as directory:
        out = Path(directory)
        port = free_port() if metrics else None
        process = start_auditor(out, hold, anchors, port, live_args)
        scraper = Scraper(port) if port is not None else None
        if scraper is not None:
            scraper.start()
        sampler = Sampler(process.pid, measure=tree_rss)
        sampler.start()
        cpu_before = tree_cpu_seconds(process.pid)
        sent_s = replay(capture, rate, count)
        drain_s = wait_caught_up(out, timeout=120)
        cpu_s = tree_cpu_seconds(process.pid) - cpu_before
        if scraper is not None:
            scraper.stop.set()
        process.send_signal(signal.SIGTERM)
        code = process.wait(120)
        sampler.stop.set()
        stats = read_stats(out)
    capture_counts = stats.get("capture", {})
    drops = stats.get("internal_drops", {})
    return {
        "rate_pps": rate, "frames_sent": count, "replay_s": round(sent_s, 2),
        "achieved_pps": round(count / sent_s) if sent_s else None,
        "kernel_received": capture_counts.get("received"),
        "kernel_dropped": capture_counts.get("dropped"),
        "frames_read": stats.get("frames_read"),
        "responses": stats.get("responses_written"),
        "verdicts": stats.get("validation", {}).get("verdicts"),
        "internal_drops": drops, "drain_s": round(drain_s, 1), "exit_code": code,
        "peak_rss_mib": sampler.peak_mib(), "rss_mib_over_time": sampler.over_time_mib(),
        "cpu_s": round(cpu_s, 2), "metrics": metrics,
        "scrapes": scraper.scrapes if scraper is not None else None,
        "scrape_failures": scraper.failures if scraper is not None else None,
        "live_args": list(live_args), "processes": stats.get("processes"),
    }


def metrics_cost(capture: Path, args: argparse.Namespace, anchors: Path | None) -> dict:
    """At each rate, ``--repeat`` pairs of runs without and with ``--metrics-port`` (scraped
    every second), alternating so machine load hits both alike: zero-drop, drain time and the
    auditor's CPU seconds for the same frames."""
    pairs = []
    for rate in args.rates:
        for _ in range(args.repeat):
            pair = {}
            for metrics in (False, True):
                result = one_rate(capture, rate, args.seconds, args.hold, anchors,
                                  metrics=metrics)
                result["zero_drop"] = ours_clean(result)
                pair["with" if metrics else "without"] = without_series(result)
            print(json.dumps(pair), flush=True)
            pairs.append(pair)
    cpu = {side: [pair[side]["cpu_s"] for pair in pairs] for side in ("without", "with")}
    return {"pairs": pairs, "cpu_s": cpu,
            "cpu_ratio_median": sorted(w / o for w, o in zip(cpu["with"], cpu["without"],
                                                              strict=True) if o)[len(pairs) // 2]
            if pairs else None}


def tshark_command() -> list[str]:
    """tshark doing the decoding half of our live mode: the same interface and BPF filter, the
    kernel buffer our socket asks for (``-B`` counts MiB), one row of DNS fields per frame."""
    from auditor.capture.live import RCVBUF_BYTES, default_filter

    fields = [arg for field in TSHARK_FIELDS for arg in ("-e", field)]
    return ["tshark", "-n", "-i", OUR_END, "-B", str(RCVBUF_BYTES >> 20), "-f", default_filter(),
            "-Y", "dns", "-T", "fields", *fields]


class TsharkRun:
    """tshark capturing on ``OUR_END``, rows to ``out/tshark-rows.tsv``, its temporary capture
    file in ``out`` (``TMPDIR``) and its stderr collected in ``stderr_lines``."""

    def __init__(self, out: Path, start_timeout: float = 30.0) -> None:
        self.out = out
        self.rows = out / "tshark-rows.tsv"
        self.stderr_lines: list[str] = []
        self.capturing = threading.Event()
        with self.rows.open("wb") as rows:
            self.process = subprocess.Popen(
                tshark_command(), stdout=rows, stderr=subprocess.PIPE, text=True,
                env={**os.environ, "TMPDIR": str(out)})
        self.reader = threading.Thread(target=self._read_stderr, daemon=True)
        self.reader.start()
        if not self.capturing.wait(start_timeout):
            self.process.kill()
            self.process.wait()
            raise RuntimeError(f"tshark did not start capturing: {self.stderr_lines}")

    def _read_stderr(self) -> None:
        for line in self.process.stderr or []:
            self.stderr_lines.append(line)
            if "Capture started" in line:  # dumpcap has opened the interface, filter set
                self.capturing.set()

    def stop(self, timeout: float = 120.0) -> tuple[int, Path | None]:
        """SIGINT (tshark then prints its counts), after keeping a link to the temporary
        capture, which tshark deletes on exit and dumpcap ends with its kernel counters."""
        kept = self._keep_temporary_capture()
        self.process.send_signal(signal.SIGINT)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self.reader.join(5)
        return code, kept

    def _keep_temporary_capture(self) -> Path | None:
        files = sorted(self.out.glob("wireshark_*.pcapng"))
        if not files:
            return None
        kept = self.out / "dumpcap-capture.pcapng"
        os.link(files[0], kept)
        return kept


def wait_output_settled(rows: Path, timeout: float) -> float:
    """Seconds from now (the replay's end) until ``rows`` last grew, once it has not grown for
    ``SETTLE_S``. tshark's stdout is block-buffered, so growth is seen 4 KiB (about 100 rows)
    at a time, and its last partial block only at exit."""
    started = last_growth = time.monotonic()
    size = rows.stat().st_size
    while time.monotonic() - last_growth < SETTLE_S and time.monotonic() - started < timeout:
        time.sleep(0.1)
        if (now_size := rows.stat().st_size) != size:
            size, last_growth = now_size, time.monotonic()
    return last_growth - started


def read_pcapng_counts(path: Path) -> dict[str, int | None]:
    """Frames in dumpcap's pcapng and the kernel counters of its last Interface Statistics Block
    (isb_ifrecv, isb_ifdrop: pcapng draft 4.6), which dumpcap writes when it stops."""
    frames = 0
    received = dropped = None
    with path.open("rb") as file:
        header = file.read(12)
        order = "<" if header[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
        file.seek(0)
        while len(head := file.read(8)) == 8:
            kind, length = struct.unpack(order + "II", head)
            if length < 12:
                break
            if kind in (2, 3, 6):  # Packet, Simple Packet, Enhanced Packet Block
                frames += 1
            if kind == 5:  # Interface Statistics Block
                options = isb_options(file.read(length - 12)[12:], order)
                received, dropped = options.get(4, received), options.get(5, dropped)
                file.seek(4, os.SEEK_CUR)
            else:
                file.seek(length - 8, os.SEEK_CUR)
    return {"frames": frames, "received": received, "dropped": dropped}


def isb_options(options: bytes, order: str) -> dict[int, int]:
    """The 64-bit counters among an Interface Statistics Block's options, by option code."""
    found: dict[int, int] = {}
    offset = 0
    while offset + 4 <= len(options):
        code, size = struct.unpack_from(order + "HH", options, offset)
        if code == 0:  # opt_endofopt
            break
        if size == 8 and code >= 4:
            found[code] = struct.unpack_from(order + "Q", options, offset + 4)[0]
        offset += 4 + (size + 3) // 4 * 4
    return found


def count_rows(rows: Path) -> dict[str, int]:
    """tshark's rows (one per frame with DNS), responses among them (QR set in the first
    message) and the last frame number printed."""
    qr_column = TSHARK_FIELDS.index("dns.flags.response")
    counts = {"rows": 0, "responses": 0, "last_frame_number": 0}
    with rows.open("rb") as lines:
        for line in lines:
            columns = line.rstrip(b"\n").split(b"\t")
            counts["rows"] += 1
            if len(columns) > qr_column and columns[qr_column].split(b",")[0] in (b"1", b"True"):
                counts["responses"] += 1
            if columns[0].isdigit():
                counts["last_frame_number"] = int(columns[0])
    return counts


def tshark_reported(stderr: str) -> dict[str, int | None]:
    """tshark's own summary on stderr: "N packets captured" counts the frames that passed the
    display filter (``-Y``), not all captured; "N packets dropped from IF" only appears when
    dumpcap's kernel drop count is not zero."""
    captured = re.search(r"^(\d+) packets? captured$", stderr, re.MULTILINE)
    dropped = re.findall(r"^(\d+) packets? dropped", stderr, re.MULTILINE)
    return {"reported_captured": int(captured[1]) if captured else None,
            "reported_dropped": sum(map(int, dropped))}


def reference_rate(capture: Path, rate: int, seconds: float) -> dict:
    """tshark at one rate: the same frames as ``one_rate`` replays, the same keep-up test."""
    count = int(rate * seconds)
    with tempfile.TemporaryDirectory(prefix="soak-tshark-") as directory:
        run = TsharkRun(Path(directory))
        sampler = Sampler(run.process.pid, measure=tree_rss)
        sampler.start()
        sent_s = replay(capture, rate, count)
        drain_s = wait_output_settled(run.rows, timeout=120)
        code, kept = run.stop()
        sampler.stop.set()
        dumpcap = read_pcapng_counts(kept) if kept else {}
        rows = count_rows(run.rows)
        reported = tshark_reported("".join(run.stderr_lines))
    captured, dropped = dumpcap.get("frames"), dumpcap.get("dropped")
    result = {
        "frames_sent": count, "replay_s": round(sent_s, 2),
        "achieved_pps": round(count / sent_s) if sent_s else None,
        "kernel_received": None if captured is None or dropped is None else captured + dropped,
        "kernel_dropped": dropped, "frames_captured": captured, **reported, **rows,
        "drain_s": round(drain_s, 1),
        "exit_code": code, "peak_rss_mib": sampler.peak_mib(),
        "rss_mib_over_time": sampler.over_time_mib(),
    }
    result["zero_drop"] = (dropped == 0 and reported["reported_dropped"] == 0 and bool(captured)
                           and code == 0 and drain_s <= MAX_DRAIN_S)
    return result


def ours_clean(result: dict) -> bool:
    """Zero drops, and keeping up: every frame read within ~2 s of the replay's end (the kernel
    buffer cannot hide a rate the auditor cannot sustain)."""
    queue_dropped = (result.get("internal_drops") or {}).get("reporter_queue_full", 0)
    return (result["kernel_dropped"] == 0 and result["frames_read"] == result["kernel_received"]
            and not queue_dropped  # live --jobs 2: no judged response lost between processes
            and result["exit_code"] == 0 and result["drain_s"] <= MAX_DRAIN_S)


def not_measured(rate: int, seconds: float, reason: str) -> dict:
    """Our row at a rate we did not run: every field of ``one_rate`` present, None."""
    keys = ("replay_s", "achieved_pps", "kernel_received", "kernel_dropped", "frames_read",
            "responses", "verdicts", "internal_drops", "drain_s", "exit_code", "peak_rss_mib",
            "rss_mib_over_time", "zero_drop")
    return {"rate_pps": rate, "frames_sent": int(rate * seconds), **dict.fromkeys(keys),
            "skipped": reason}


def compare_jobs(capture: Path, args: argparse.Namespace,
                 anchors: Path | None) -> dict:
    """Ours alone with each ``--jobs`` value at each rate, one after the other per rate (so
    machine load hits each alike), each value until its first rate that is not zero-drop."""
    running = dict.fromkeys(args.jobs, True)
    best: dict[int, int | None] = dict.fromkeys(args.jobs)
    rows = []
    for rate in args.rates:
        for jobs in args.jobs:
            if not running[jobs]:
                continue
            live_args = ("--jobs", str(jobs), *args.live_arg)
            result = one_rate(capture, rate, args.seconds, args.hold, anchors,
                              live_args=live_args)
            result["jobs"] = jobs
            result["zero_drop"] = running[jobs] = ours_clean(result)
            best[jobs] = rate if running[jobs] else best[jobs]
            rows.append(result)
            print(json.dumps(without_series(result)), flush=True)
        if not any(running.values()):
            break
    return {"capture": str(capture), "results": rows,
            "best_zero_drop_pps_by_jobs": {str(jobs): rate for jobs, rate in best.items()},
            "load_average": os.getloadavg()}


def without_series(row: dict) -> dict:
    """A row for printing: without the RSS series, ours and tshark's."""
    return {key: without_series(value) if isinstance(value, dict) and key == "tshark" else value
            for key, value in row.items() if key != "rss_mib_over_time"}


def sweep(capture: Path, args: argparse.Namespace,
          anchors: Path | None) -> tuple[list[dict], int | None, int | None]:
    """Every rate in turn, ours then tshark (never both at once), each tool until its first
    rate that is not zero-drop."""
    run_ours, run_tshark = not args.reference_only, not args.no_reference
    results: list[dict] = []
    best: int | None = None
    tshark_best: int | None = None
    for rate in args.rates:
        if not (run_ours or run_tshark):
            break
        if run_ours:
            live_args = tuple(getattr(args, "live_arg", None) or ())
            result = one_rate(capture, rate, args.seconds, args.hold, anchors,
                              **({"live_args": live_args} if live_args else {}))
            result["zero_drop"] = run_ours = ours_clean(result)
            best = rate if run_ours else best
        else:
            reason = "not measured: --reference-only" if args.reference_only else FAILED_BELOW
            result = not_measured(rate, args.seconds, reason)
        if run_tshark:
            result["tshark"] = reference_rate(capture, rate, args.seconds)
            run_tshark = result["tshark"]["zero_drop"]
            tshark_best = rate if run_tshark else tshark_best
        elif not args.no_reference:
            result["tshark"] = {"skipped": FAILED_BELOW, "zero_drop": None}
        results.append(result)
        print(json.dumps(without_series(result)), flush=True)
    return results, best, tshark_best


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--capture", type=Path, help="capture to replay (default: generated)")
    parser.add_argument("--packets", type=int, default=200_000,
                        help="frames in the generated capture")
    parser.add_argument("--rates", type=int, nargs="+", default=list(DEFAULT_RATES))
    parser.add_argument("--seconds", type=float, default=10.0, help="replay time per rate")
    parser.add_argument("--soak-seconds", type=float, default=60.0,
                        help="long run at the best zero-drop rate (0: skip; ours only)")
    parser.add_argument("--hold", type=float, default=3.0, help="live --hold")
    parser.add_argument("--no-anchors", action="store_true",
                        help="no trust anchors: every response is held as indeterminate")
    reference = parser.add_mutually_exclusive_group()
    reference.add_argument("--no-reference", action="store_true",
                           help="skip the tshark reference run at each rate")
    reference.add_argument("--reference-only", action="store_true",
                           help="run tshark alone (no auditor, no soak): to check the reference")
    parser.add_argument("--metrics-cost", action="store_true",
                        help="only compare runs without and with --metrics-port (scraped "
                        "every second) at each of --rates; no tshark, no soak")
    parser.add_argument("--repeat", type=int, default=3,
                        help="pairs of runs per rate for --metrics-cost")
    parser.add_argument("--live-arg", action="append", default=[], metavar="ARG",
                        help="pass ARG to 'dnssec-auditor live' (repeatable), e.g. "
                        "--live-arg=--jobs --live-arg=2")
    parser.add_argument("--jobs", type=int, nargs="+", metavar="N",
                        help="ours alone with 'live --jobs N' for each N, alternating at each "
                        "rate; writes soak-live-jobs.json (no tshark, no soak)")
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "out" /
                        "soak-live.json")
    return parser.parse_args()


def reference_description() -> dict:
    version = subprocess.run(["tshark", "--version"], capture_output=True, text=True,
                             check=False).stdout.partition("\n")[0]
    return {"tool": version, "command": tshark_command(),
            "note": "tshark does no DNSSEC validation: it captures and decodes DNS only"}


def main() -> int:
    args = parse_args()
    if os.geteuid() != 0:
        print("soak_live.py needs root (veth pair, packet sockets)", file=sys.stderr)
        return 2
    if not args.no_reference and not (args.metrics_cost or args.jobs) and not which("tshark"):
        print("the reference needs tshark (apt-get install -y tshark), or pass --no-reference",
              file=sys.stderr)
        return 2
    capture = ensure_capture(args.capture, args.packets)
    anchors = None if args.no_anchors or args.reference_only else write_anchors(
        capture, Path(tempfile.mkdtemp(prefix="soak-anchors-")) / "anchors.txt")
    make_veth()
    if args.jobs:
        try:
            compared = compare_jobs(capture, args, anchors)
        finally:
            remove_veth()
        target = args.json.with_name("soak-live-jobs.json")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(compared, indent=2) + "\n")
        print(f"highest zero-drop rate by --jobs: {compared['best_zero_drop_pps_by_jobs']}; "
              f"report in {target}")
        return 0
    if args.metrics_cost:
        try:
            cost = metrics_cost(capture, args, anchors)
        finally:
            remove_veth()
        target = args.json.with_name("soak-live-metrics.json")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(cost, indent=2) + "\n")
        print(f"metrics cost: CPU with/without median {cost['cpu_ratio_median']}; "
              f"report in {target}")
        return 0
    try:
        results, best, tshark_best = sweep(capture, args, anchors)
        soak = None
        if best is not None and args.soak_seconds > 0:
            soak = one_rate(capture, best, args.soak_seconds, args.hold, anchors)
            print(json.dumps({"soak": soak}), flush=True)
    finally:
        remove_veth()
    report = {"capture": str(capture), "results": results, "best_zero_drop_pps": best,
              "soak": soak}
    if not args.no_reference:
        report |= {"tshark_best_zero_drop_pps": tshark_best,
                   "reference": reference_description()}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    tshark_text = "not measured" if args.no_reference else f"{tshark_best} pps"
    ours_text = "not measured" if args.reference_only else f"{best} pps"
    print(f"highest zero-drop rate: ours {ours_text}, tshark {tshark_text}; report in {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
