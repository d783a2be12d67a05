"""``live --metrics-port``: a Prometheus scrape of a running auditor (a pcap stream on a pipe
that stays open) reads its frames, verdicts, findings, held responses, tables and lag."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "captures" / "sample-dnssec.pcap"
ANCHOR = REPO / "captures" / "sample-dnssec.anchor"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def _value(samples: dict, name: str, **labels: str) -> float:
    return samples[(f"dnssec_auditor_{name}", tuple(sorted(labels.items())))]


def test_metrics_endpoint_serves_the_running_audit(tmp_path: Path) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    process = subprocess.Popen(
        [sys.executable, "-m", "auditor", "live", "--read", "-", "--trust-anchor", str(ANCHOR),
         "--out", str(tmp_path / "out"), "--metrics-port", str(port)],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=REPO)
    assert process.stdin is not None
    try:
        process.stdin.write(SAMPLE.read_bytes())
        process.stdin.flush()  # the pipe stays open: the run goes on
        deadline = time.monotonic() + 30
        samples: dict = {}
        while time.monotonic() < deadline:
            try:
                samples = _scrape(url)
            except OSError:
                samples = {}
            # the held responses are released by the timer: the stream is quiet, not over
            if (samples.get(("dnssec_auditor_responses_total", (("verdict", "secure"),))) == 43
                    and samples.get(("dnssec_auditor_held_responses", ())) == 0):
                break
            time.sleep(0.2)
        assert samples, "metrics endpoint never answered"
        assert _value(samples, "frames_read_total") == 155
        assert _value(samples, "kernel_received_total") == 155
        assert _value(samples, "frames_dropped_total", where="kernel", reason="buffer") == 0
        assert _value(samples, "frames_dropped_total", where="internal",
                      reason="internal_errors") == 0
        assert _value(samples, "responses_total", verdict="bogus") == 13
        # every bogus answer is an occurrence of bogus_answer, upstream here: medium
        assert _value(samples, "findings_total", code="bogus_answer", severity="medium") == 13
        assert _value(samples, "alerts_total") == 2
        assert _value(samples, "held_responses") == 0
        assert _value(samples, "state_size", table="pending_queries") >= 0
        assert ("dnssec_auditor_evictions_total", (("table", "zones_evicted"),)) in samples
        assert _value(samples, "capture_lag_seconds") > 0  # a capture made days ago
        assert _value(samples, "resident_memory_bytes") > 10 << 20
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0
    stderr = process.stderr.read().decode() if process.stderr else ""
    assert f"metrics {url}" in stderr


def test_metrics_listen_on_loopback_by_default(tmp_path: Path) -> None:
    from auditor.report.metrics import MetricsServer

    server = MetricsServer(0)
    try:
        assert server.address == "127.0.0.1" and server.url.startswith("http://127.0.0.1:")
        assert _scrape(server.url)[("dnssec_auditor_frames_read_total", ())] == 0
    finally:
        server.close()
