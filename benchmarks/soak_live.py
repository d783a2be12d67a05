"""Soak benchmark of ``dnssec-auditor live``: replays a large capture onto a veth pair made by
this script, at increasing packet rates, and reports the highest rate with zero drops and the
auditor's memory over time.

Traffic only goes onto the veth pair created here (the capture's addresses never leave it:
frames arrive on our end, nothing routes them). Needs root and tcpreplay
(``apt-get install -y tcpreplay``); without tcpreplay a paced raw-socket sender is used.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from shutil import which

REPO = Path(__file__).resolve().parent.parent
OUR_END, PEER_END = "soak-cap0", "soak-inj0"
DEFAULT_RATES = (1000, 2000, 3000, 4000, 5000, 7000, 10000)
MAX_DRAIN_S = 2.5


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True)


def make_veth() -> None:
    subprocess.run(["ip", "link", "del", OUR_END], check=False, stderr=subprocess.DEVNULL)
    _run("ip", "link", "add", OUR_END, "type", "veth", "peer", "name", PEER_END)
    for name in (OUR_END, PEER_END):
        _run("ip", "link", "set", name, "up")


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


class Sampler(threading.Thread):
    """RSS of a process every ``interval`` seconds."""

    def __init__(self, pid: int, interval: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self.stop = threading.Event()
        self.start_time = time.monotonic()

    def run(self) -> None:
        while not self.stop.wait(self.interval):
            self.samples.append((round(time.monotonic() - self.start_time, 1), rss_of(self.pid)))


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


def start_auditor(out: Path, hold: float, anchors: Path | None) -> subprocess.Popen[str]:
    # The capture's signatures are valid in mid-2025 and live judges at capture (= now)
    # time: a clock skew of ~3 years keeps them valid, as on a live network.
    trust = ["--trust-anchor", str(anchors), "--clock-skew", "100000000"] if anchors else []
    process = subprocess.Popen(
        [sys.executable, "-m", "auditor", "live", "-i", OUR_END, "--out", str(out),
         "--alerts", str(out / "alerts.jsonl"), "--stats-interval", "1", "--hold", str(hold),
         *trust, "-v"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    for line in process.stderr:
        if "capturing on" in line:
            break
    threading.Thread(target=lambda: [None for _ in process.stderr or []], daemon=True).start()
    return process


def replay(capture: Path, rate: int, count: int) -> float:
    started = time.monotonic()
    if which("tcpreplay"):
        subprocess.run(["tcpreplay", "-q", "-i", PEER_END, f"--pps={rate}", "--loop=0",
                        f"--limit={count}", str(capture)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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


def one_rate(capture: Path, rate: int, seconds: float, hold: float,
             anchors: Path | None) -> dict:
    count = int(rate * seconds)
    with tempfile.TemporaryDirectory(prefix="soak-") as directory:
        out = Path(directory)
        process = start_auditor(out, hold, anchors)
        sampler = Sampler(process.pid)
        sampler.start()
        sent_s = replay(capture, rate, count)
        drain_s = wait_caught_up(out, timeout=120)
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
        "peak_rss_mib": round(max((m for _, m in sampler.samples), default=0) / 2**20, 1),
        "rss_mib_over_time": [(t, round(m / 2**20, 1)) for t, m in sampler.samples],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--capture", type=Path, help="capture to replay (default: generated)")
    parser.add_argument("--packets", type=int, default=200_000,
                        help="frames in the generated capture")
    parser.add_argument("--rates", type=int, nargs="+", default=list(DEFAULT_RATES))
    parser.add_argument("--seconds", type=float, default=10.0, help="replay time per rate")
    parser.add_argument("--soak-seconds", type=float, default=60.0,
                        help="long run at the best zero-drop rate (0: skip)")
    parser.add_argument("--hold", type=float, default=3.0, help="live --hold")
    parser.add_argument("--no-anchors", action="store_true",
                        help="no trust anchors: every response is held as indeterminate")
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "out" /
                        "soak-live.json")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("soak_live.py needs root (veth pair, packet sockets)", file=sys.stderr)
        return 2
    capture = ensure_capture(args.capture, args.packets)
    anchors = None if args.no_anchors else write_anchors(
        capture, Path(tempfile.mkdtemp(prefix="soak-anchors-")) / "anchors.txt")
    results: list[dict] = []
    make_veth()
    try:
        best = None
        for rate in args.rates:
            result = one_rate(capture, rate, args.seconds, args.hold, anchors)
            results.append(result)
            # Zero drops, and keeping up: every frame read within ~2 s of the replay's end
            # (the kernel buffer cannot hide a rate the auditor cannot sustain).
            clean = (result["kernel_dropped"] == 0 and result["frames_read"]
                     == result["kernel_received"] and result["exit_code"] == 0
                     and result["drain_s"] <= MAX_DRAIN_S)
            result["zero_drop"] = clean
            print(json.dumps({k: v for k, v in result.items() if k != "rss_mib_over_time"}),
                  flush=True)
            if not clean:
                break
            best = rate
        soak = None
        if best is not None and args.soak_seconds > 0:
            soak = one_rate(capture, best, args.soak_seconds, args.hold, anchors)
            print(json.dumps({"soak": soak}), flush=True)
    finally:
        remove_veth()
    report = {"capture": str(capture), "results": results, "best_zero_drop_pps": best,
              "soak": soak}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"highest zero-drop rate: {best} pps; report in {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
