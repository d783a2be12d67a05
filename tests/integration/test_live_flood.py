"""`live` on a veth pair flooded with incomplete IP fragments and half-open TCP streams: the
reassembly state stays within its caps and genuine DNSSEC traffic is still judged."""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from auditor.capture.sources import CaptureSet
from auditor.live import LiveLimits, LiveOptions, memory_bytes, run_live

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root for a veth pair")]

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "captures" / "sample-dnssec.pcap"
ANCHOR = REPO / "captures" / "sample-dnssec.anchor"
LIMITS = LiveLimits(fragment_sets=500, fragment_bytes=300_000, tcp_flows=2000,
                    tcp_bytes=4_000_000)
"""Each tracked TCP flow counts 1 KB of overhead besides its bytes (tcpstream.FLOW_OVERHEAD),
so 4 MB holds the 2,000 flows the flood fills; the flow cap is what this test exercises."""


@pytest.fixture
def veth() -> Iterator[tuple[str, str]]:
    ours, peer = f"dfa{os.getpid() % 100000}", f"dfb{os.getpid() % 100000}"
    subprocess.run(["ip", "link", "add", ours, "type", "veth", "peer", "name", peer],
                   check=True)
    try:
        for name in (ours, peer):
            # lo's captures carry frames up to 64 KiB: let the veth pass them whole
            subprocess.run(["ip", "link", "set", name, "mtu", "65535", "up"], check=True)
        yield ours, peer
    finally:
        subprocess.run(["ip", "link", "del", ours], check=False)


def _ether(ip: bytes) -> bytes:
    return b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00" + ip


def _first_fragment(n: int) -> bytes:
    payload = struct.pack("!HHHH", 40000, 53, 1408, 0) + bytes(1200)
    return _ether(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), n & 0xFFFF, 0x2000,
                              64, 17, 0, bytes([127, 60, n >> 8 & 255, n & 255]),
                              bytes([127, 60, 0, 53])) + payload)


def _half_open(n: int) -> bytes:
    data = struct.pack("!H", 400) + bytes(150)  # a length prefix promising more than sent
    port = 1024 + n % 60000
    tcp = struct.pack("!HHIIBBHHH", port, 53, 7, 0, 5 << 4, 0x18, 65535, 0, 0) + data
    return _ether(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0, 64, 6, 0,
                              bytes([127, 61, n >> 8 & 255, n & 255]),
                              bytes([127, 60, 0, 53])) + tcp)


class Flood(threading.Thread):
    """Waits for the auditor, then sends the flood with the genuine sample frames spread
    through it, watches stats.json, and finally sends SIGTERM to this process."""

    def __init__(self, peer: str, out: Path, flood: int) -> None:
        super().__init__(daemon=True)
        self.peer, self.out, self.flood = peer, out, flood
        self.peak_state: dict[str, int] = {}
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:
            self.error = exc
        finally:
            os.kill(os.getpid(), signal.SIGTERM)

    def _run(self) -> None:
        deadline = time.monotonic() + 20
        while not (self.out / "stats.json").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        with CaptureSet([str(SAMPLE)]) as frames:
            genuine = [frame.data for frame in frames]
        every = max(1, self.flood // len(genuine))
        with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as sock:
            sock.bind((self.peer, 0))
            for n in range(self.flood):
                sock.send(_first_fragment(n))
                sock.send(_half_open(n))
                if n % every == 0 and genuine:
                    sock.send(genuine.pop(0))
                if n % 2000 == 0:
                    self._watch()
                    time.sleep(0.02)  # a flood, not a kernel-buffer overrun test
            for data in genuine:
                sock.send(data)
        for _ in range(15):
            time.sleep(0.2)
            self._watch()

    def _watch(self) -> None:
        try:
            state = json.loads((self.out / "stats.json").read_text())["state"]
        except (OSError, ValueError, KeyError):
            return
        for name, value in state.items():
            self.peak_state[name] = max(value, self.peak_state.get(name, 0))


def test_flood_stays_within_caps_while_genuine_traffic_is_judged(
    veth: tuple[str, str], tmp_path: Path
) -> None:
    ours, peer = veth
    out = tmp_path / "live"
    options = LiveOptions(out_dir=out, interfaces=(ours,), trust_anchors=(str(ANCHOR),),
                          alerts_path=tmp_path / "alerts.jsonl", stats_interval_s=0.2,
                          limits=LIMITS)
    flood = Flood(peer, out, 40_000)
    before = memory_bytes()
    flood.start()
    outcome = run_live(options)
    flood.join(10)
    assert flood.error is None, flood.error
    stats = outcome.stats
    peak = flood.peak_state
    assert peak["fragment_bytes_held"] <= LIMITS.fragment_bytes
    assert peak["tcp_flows"] <= LIMITS.tcp_flows and peak["tcp_bytes_held"] <= LIMITS.tcp_bytes
    assert peak["fragment_frames_held"] > 100 and peak["tcp_flows"] > 1000  # the flood arrived
    drops = stats["internal_drops"]
    assert drops["fragment_evicted"] > 10_000 and drops["tcp_evicted"] > 10_000
    assert stats["capture"]["dropped"] == 0
    assert stats["validation"]["verdicts"]["secure"] >= 40
    assert stats["validation"]["verdicts"]["bogus"] >= 10
    assert stats["memory"]["peak_rss_bytes"] - before < 150 << 20
    assert sum(stats["frames"].values()) == stats["frames_read"]
