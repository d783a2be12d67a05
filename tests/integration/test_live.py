"""`live` on the loopback interface: real BIND + validating Unbound traffic, a forged answer
injected with scapy, the alert timed, SIGTERM, and every response in the flushed output."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.rrset
import pytest

from tests.lab import Lab, TcpdumpCapture

pytestmark = pytest.mark.integration

LAB_FILTER = "net 127.53.0.0/16 and (port 53 or (ip[6:2] & 0x1fff != 0))"
FORGED_PORT = 45353
FORGED_ID = 0x5EED


class LiveProcess:
    """``dnssec-auditor live`` as a subprocess; alerts read line by line with arrival times."""

    def __init__(self, argv: list[str], out: Path) -> None:
        self.out = out
        self.alerts: list[tuple[float, dict]] = []
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "auditor", "live", *argv, "--out", str(out), "-v"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            cwd=Path(__file__).resolve().parents[2],
        )
        self._ready = threading.Event()
        self.stderr: list[str] = []
        threading.Thread(target=self._read_alerts, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_alerts(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.alerts.append((time.monotonic(), json.loads(line)))

    def _read_stderr(self) -> None:
        assert self.popen.stderr is not None
        for line in self.popen.stderr:
            self.stderr.append(line)
            if "capturing on" in line:
                self._ready.set()

    def wait_ready(self, timeout: float = 20) -> None:
        if not self._ready.wait(timeout):
            self.popen.kill()
            raise AssertionError("live did not start: " + "".join(self.stderr)[-3000:])

    def wait_alert(self, code: str, since: float, timeout: float = 5) -> float:
        """Seconds from ``since`` until an alert with ``code`` arrived."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for arrived, alert in list(self.alerts):
                if alert["code"] == code and arrived >= since:
                    return arrived - since
            time.sleep(0.02)
        raise AssertionError(f"no {code} alert within {timeout}s; got "
                             f"{[a['code'] for _, a in self.alerts]}")

    def stop(self, timeout: float = 30) -> int:
        self.popen.send_signal(signal.SIGTERM)
        return self.popen.wait(timeout)


@pytest.fixture
def live_lo(lab: Lab, tmp_path: Path) -> Iterator[LiveProcess]:
    process = LiveProcess(["--interface", "lo", "--filter", LAB_FILTER, "--trust-anchor",
                           str(lab.trust_anchor_file), "--evidence", "--stats-interval", "1"],
                          tmp_path / "live")
    try:
        process.wait_ready()
        yield process
    finally:
        if process.popen.poll() is None:
            process.popen.kill()
            process.popen.wait()


def _ask_and_forge(lab: Lab, qname: str) -> float:
    """Ask the authoritative server for ``qname`` A from a fixed port and ID, take the real
    answer, then inject (scapy, raw IP on lo) a forged answer to the same query; return the
    monotonic time the forged packet was sent."""
    from scapy.layers.inet import IP, UDP
    from scapy.packet import Raw
    from scapy.sendrecv import send

    server = lab.authoritative_for(qname)
    query = dns.message.make_query(qname, "A", want_dnssec=True, id=FORGED_ID)
    query.flags &= ~dns.flags.RD
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((lab.addresses.client, FORGED_PORT))
        sock.settimeout(5)
        sock.sendto(query.to_wire(), (server, 53))
        sock.recvfrom(65535)
        forged = dns.message.make_response(query)
        forged.flags |= dns.flags.AA
        forged.answer.append(dns.rrset.from_text(qname, 300, "IN", "A", "192.0.2.66"))
        packet = (IP(src=server, dst=lab.addresses.client) / UDP(sport=53, dport=FORGED_PORT)
                  / Raw(forged.to_wire()))
        sent = time.monotonic()
        send(packet, iface="lo", verbose=False)
        time.sleep(0.2)  # let the socket receive it, so no ICMP port unreachable follows
    return sent


def _responses(directory: Path) -> list[dict]:
    return [json.loads(line) for path in sorted(directory.glob("responses-*.jsonl"))
            for line in path.read_text().splitlines()]


def _key(record: dict) -> tuple:
    return (record["src"], record["sport"], record["dst"], record["dport"], record["id"],
            record["qname"], record["transport"])


def test_live_alerts_on_forged_and_bogus_answers_and_loses_nothing(
    lab: Lab, live_lo: LiveProcess, tmp_path: Path
) -> None:
    pcap = tmp_path / "reference.pcap"
    with TcpdumpCapture(pcap, LAB_FILTER, settle=1.0):
        lab.flush_resolver()
        for name in ("www.sec.test.", "www.ecdsa.test.", "www.nsec3.test."):
            lab.query_resolver(name, "A")
        lab.query_resolver("www.sec.test.", "A", tcp=True)
        bogus_asked = time.monotonic()
        lab.query_resolver("www.expired.test.", "A")
        bogus_delay = live_lo.wait_alert("bogus_answer", bogus_asked)
        forged_sent = _ask_and_forge(lab, "www.sec.test.")
        forged_delay = live_lo.wait_alert("response_race", forged_sent)
    print(f"alert latency: bogus {bogus_delay:.3f}s, forged {forged_delay:.3f}s")
    assert forged_delay < 1.5, f"forged alert took {forged_delay:.2f}s"
    assert bogus_delay < 3.0
    time.sleep(0.5)
    assert live_lo.stop() == 0, "".join(live_lo.stderr)[-3000:]

    out = live_lo.out
    stats = json.loads((out / "stats.json").read_text())
    assert stats["final"] is True
    responses = _responses(out)
    assert len(responses) == stats["responses_written"]
    assert sum(stats["validation"]["verdicts"].values()) == len(responses)
    assert stats["matching"]["responses"] == len(responses)
    assert sum(stats["frames"].values()) == stats["frames_read"]
    assert stats["capture"]["dropped"] == 0
    assert stats["internal_drops"]["internal_errors"] == 0

    reference = subprocess.run(
        [sys.executable, "-m", "auditor", "audit", str(pcap), "--out", str(tmp_path / "off"),
         "-q", "--trust-anchor", str(lab.trust_anchor_file)],
        capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2], check=False)
    assert reference.returncode in (0, 1), reference.stderr
    offline = [json.loads(line) for line in
               (tmp_path / "off" / "responses.jsonl").read_text().splitlines()]
    # Every response the reference tcpdump saw is in live's output with the same verdict.
    # Live listens a little longer than the reference capture (it starts before and stops
    # after it), so background resolver traffic outside that window may add responses.
    live_verdicts = Counter((_key(r), r["verdict"]) for r in responses)
    offline_verdicts = Counter((_key(r), r["verdict"]) for r in offline)
    missing = offline_verdicts - live_verdicts
    assert not missing, f"responses or verdicts differ from the offline audit: {missing}"
    assert len(responses) - len(offline) <= 4, "live saw much more than the reference window"

    race = [alert for _, alert in live_lo.alerts if alert["code"] == "response_race"]
    assert race[0]["verdict"] == "forged"
    assert race[0]["params"]["qname"] == "www.sec.test."
    assert any(piece.stat().st_size > 0 for piece in out.glob("evidence-*.pcapng"))
    assert any(out.glob("responses-*.parquet"))
    assert "stats: packets" in "".join(live_lo.stderr)


def test_live_without_capture_privilege_names_what_is_missing(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to drop to an unprivileged user")
    done = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
         sys.executable, "-m", "auditor", "live", "-i", "lo", "--out", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=60, cwd=Path(__file__).resolve().parents[2],
        check=False)
    assert done.returncode == 77, done.stderr
    assert "CAP_NET_RAW" in done.stderr and "root" in done.stderr
