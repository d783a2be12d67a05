"""Prometheus text exposition of a live run (``--metrics-port``): a collector that turns the
latest snapshot of the run's counters into metric families when scraped, so capture pays
nothing per packet."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.exposition import start_http_server
from prometheus_client.registry import Collector

PREFIX = "dnssec_auditor"


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    """The run's counters at one moment, taken by the live loop (never by the scraper)."""

    frames_read: int = 0
    """Frames taken from the capture."""
    kernel: Mapping[str, int] = field(default_factory=dict)
    """Kernel counts: ``received``, ``dropped``."""
    internal_drops: Mapping[str, int] = field(default_factory=dict)
    """Frames, queries and held responses dropped inside the auditor, by reason."""
    verdicts: Mapping[str, int] = field(default_factory=dict)
    """Responses judged, by verdict."""
    findings: Mapping[tuple[str, str], int] = field(default_factory=dict)
    """Finding occurrences by (code, severity)."""
    alerts: int = 0
    """Alerts sent."""
    held: int = 0
    """Responses waiting for keys now."""
    state: Mapping[str, int] = field(default_factory=dict)
    """Entries (or bytes, for ``*_bytes*``) of each capped table now."""
    evictions: Mapping[str, int] = field(default_factory=dict)
    """Entries dropped from each capped table so far."""
    lag_s: float = 0.0
    """Wall time minus the capture time of the last frame judged, when it was judged."""
    rss_bytes: int = 0
    """Resident memory."""
    started_s: float = 0.0
    """Unix time the run started."""


class LiveCollector(Collector):
    """Metric families from the latest snapshot handed to ``update``."""

    def __init__(self) -> None:
        self._snapshot = MetricsSnapshot()
        self._lock = threading.Lock()

    def update(self, snapshot: MetricsSnapshot) -> None:
        """Publish a new snapshot (called by the live loop)."""
        with self._lock:
            self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        """The families of the current snapshot (called by the scraper thread)."""
        with self._lock:
            snap = self._snapshot
        yield _counter("frames_read", "Frames read from the capture.", snap.frames_read)
        yield _labelled(CounterMetricFamily, "frames_dropped",
                        "Frames dropped: by the kernel (where=kernel) or inside the auditor "
                        "(where=internal), by reason.", ["where", "reason"],
                        [(("kernel", "buffer"), snap.kernel.get("dropped", 0)),
                         *((("internal", reason), count)
                           for reason, count in snap.internal_drops.items())])
        yield _counter("kernel_received", "Frames the kernel passed the capture filter.",
                       snap.kernel.get("received", 0))
        yield _labelled(CounterMetricFamily, "responses", "Responses judged, by verdict.",
                        ["verdict"], [((v,), n) for v, n in snap.verdicts.items()])
        yield _labelled(CounterMetricFamily, "findings",
                        "Finding occurrences, by code and severity.", ["code", "severity"],
                        list(snap.findings.items()))
        yield _counter("alerts", "Alerts sent.", snap.alerts)
        yield _gauge("held_responses", "Responses waiting for the keys they need.", snap.held)
        yield _labelled(GaugeMetricFamily, "state_size",
                        "Entries (bytes for *_bytes*) held in each capped table.", ["table"],
                        [((t,), n) for t, n in snap.state.items()])
        yield _labelled(CounterMetricFamily, "evictions",
                        "Entries dropped from each capped table.", ["table"],
                        [((t,), n) for t, n in snap.evictions.items()])
        yield _gauge("capture_lag_seconds", "Wall time minus capture time of the last frame "
                     "judged, when it was judged (meaningful on interfaces).", snap.lag_s)
        yield _gauge("resident_memory_bytes", "Resident memory of the auditor.", snap.rss_bytes)
        yield _gauge("start_time_seconds", "Unix time the run started.", snap.started_s)


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(f"{PREFIX}_{name}", documentation, value=value)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{PREFIX}_{name}", documentation, value=value)


def _labelled(kind: Callable[..., Any], name: str, documentation: str, labels: list[str],
              samples: list[tuple[tuple[str, ...], int]]) -> Metric:
    family = kind(f"{PREFIX}_{name}", documentation, labels=labels)
    for values, count in samples:
        family.add_metric(list(values), count)
    return family  # type: ignore[no-any-return]


class MetricsServer:
    """The HTTP endpoint serving ``/metrics`` from a ``LiveCollector``."""

    def __init__(self, port: int, address: str = "127.0.0.1") -> None:
        self.collector = LiveCollector()
        registry = CollectorRegistry(auto_describe=False)
        registry.register(self.collector)
        self._server, self._thread = start_http_server(port, address, registry)
        self.address = address
        self.port = int(self._server.server_port)

    @property
    def url(self) -> str:
        """Where to scrape."""
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
