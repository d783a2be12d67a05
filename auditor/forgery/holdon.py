"""Hold-On style consistency: a response's IP TTL and round-trip time against what the same
server usually shows in this capture."""

from __future__ import annotations

from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field

from auditor.findings.catalogue import Finding
from auditor.forgery.common import ForgeryVerdict, ResponseSummary, forgery_finding


@dataclass(slots=True)
class _Profile:
    """What one server looked like so far (bounded windows of recent samples)."""

    hops: deque[int]
    rtts: deque[int]
    waiting: list[ResponseSummary] = field(default_factory=list)
    """Responses seen before the profile had enough samples; judged once it has."""


class HoldOnTracker:
    """Learns each server's IP TTL and RTT from the capture itself (Duan et al., "Hold-On",
    2012) and flags responses far from them.

    IP TTL: flagged when it differs from the server's mode and the mode covers at least
    ``hop_share`` of ``min_samples`` or more responses. RTT: flagged when it is below
    ``1/rtt_factor`` of the server's 20th-percentile RTT and at least ``min_rtt_gap_ns``
    faster (a spoofer near the victim answers before the real server can; sub-millisecond
    differences are scheduling noise).
    """

    def __init__(self, *, min_samples: int, window: int, hop_share: float, rtt_factor: float,
                 max_servers: int, min_rtt_gap_ns: int = 1_000_000,
                 max_waiting: int = 10_000) -> None:
        self._min = min_samples
        self._min_gap = min_rtt_gap_ns
        self._window = window
        self._share = hop_share
        self._factor = rtt_factor
        self._max = max_servers
        self._max_waiting = max(1, max_waiting)
        self._profiles: OrderedDict[str, _Profile] = OrderedDict()
        self._waiting_servers: OrderedDict[str, None] = OrderedDict()
        """Servers with responses waiting for a baseline, the one waiting longest first."""
        self._waiting_total = 0
        self.rtt_skipped_recursive = 0
        """Responses of recursive resolvers (RA) not judged by RTT (cache hits are fast)."""
        self.servers_evicted = 0
        """Server profiles dropped (least recently seen first) over ``max_servers``."""
        self.waiting_evicted = 0
        """Responses dropped unjudged while waiting for their server's baseline, because
        ``max_waiting`` responses were waiting (the server waiting longest loses its oldest
        first) or their server's profile was dropped."""

    @property
    def waiting(self) -> int:
        """Responses waiting for their server's baseline now (each holds its evidence)."""
        return self._waiting_total

    def __len__(self) -> int:
        return len(self._profiles)

    def feed(self, summary: ResponseSummary) -> list[Finding]:
        """Take one response; return anomalies it (or responses waiting for a baseline) show."""
        profile = self._profile(summary.server)
        profile.hops.append(summary.hop_limit)
        rtt = summary.rtt_ns
        if rtt is not None:
            profile.rtts.append(rtt)
        if len(profile.hops) < self._min:
            if len(profile.waiting) < self._min:
                self._hold(summary.server, profile, summary)
            return []
        pending = [*profile.waiting, summary]
        self._release(summary.server, profile)
        return [finding for item in pending for finding in self._judge(profile, item)]

    def _hold(self, server: str, profile: _Profile, summary: ResponseSummary) -> None:
        profile.waiting.append(summary)
        self._waiting_total += 1
        self._waiting_servers[server] = None  # keeps its place if already waiting
        while self._waiting_total > self._max_waiting:  # oldest response of the longest wait
            oldest = next(iter(self._waiting_servers))
            waiting = self._profiles[oldest].waiting
            del waiting[0]
            self._waiting_total -= 1
            self.waiting_evicted += 1
            if not waiting:
                del self._waiting_servers[oldest]

    def _release(self, server: str, profile: _Profile) -> None:
        self._waiting_total -= len(profile.waiting)
        profile.waiting = []
        self._waiting_servers.pop(server, None)

    def _profile(self, server: str) -> _Profile:
        profile = self._profiles.get(server)
        if profile is None:
            profile = self._profiles[server] = _Profile(deque(maxlen=self._window),
                                                        deque(maxlen=self._window))
            if len(self._profiles) > self._max:
                oldest, dropped = self._profiles.popitem(last=False)
                self.servers_evicted += 1
                self.waiting_evicted += len(dropped.waiting)
                self._release(oldest, dropped)
        else:
            self._profiles.move_to_end(server)
        return profile

    def _judge(self, profile: _Profile, summary: ResponseSummary) -> list[Finding]:
        found = []
        hop = self._hop_finding(profile, summary)
        if hop is not None:
            found.append(hop)
        rtt = self._rtt_finding(profile, summary)
        if rtt is not None:
            found.append(rtt)
        return found

    def _hop_finding(self, profile: _Profile, summary: ResponseSummary) -> Finding | None:
        counts = Counter(profile.hops)
        usual, seen = counts.most_common(1)[0]
        share = seen / len(profile.hops)
        if summary.hop_limit == usual or share < self._share:
            return None
        params = {
            "server": summary.server,
            "hop_limit": summary.hop_limit,
            "usual": usual,
            "share": round(share * 100),
            "samples": len(profile.hops),
            "qname": summary.qname_text,
        }
        return forgery_finding(
            "hop_limit_anomaly", params, summary, ForgeryVerdict.SUSPICIOUS,
            [*summary.query_refs, *summary.refs],
            reasoning=f"packets from one host travel the same path, so their IP TTL is stable "
            f"({usual} in {round(share * 100)}% of {len(profile.hops)}); an off-path spoofer "
            f"elsewhere sends with another initial TTL or distance ({summary.hop_limit})",
        )

    def _rtt_finding(self, profile: _Profile, summary: ResponseSummary) -> Finding | None:
        rtt = summary.rtt_ns
        if rtt is None or len(profile.rtts) < self._min or summary.recursive:
            # A recursive resolver (RA) answers from its cache in microseconds and after
            # upstream queries in milliseconds: a fast answer is a cache hit, not a spoofer.
            # The timing argument of RFC 5452 4 holds for authoritative answers.
            self.rtt_skipped_recursive += summary.recursive
            return None
        others = sorted(profile.rtts)
        others.remove(rtt)
        usual = others[len(others) // 5]
        if rtt * self._factor >= usual or usual - rtt < self._min_gap:
            return None
        params = {
            "server": summary.server,
            "rtt_us": rtt // 1000,
            "usual_us": usual // 1000,
            "samples": len(others),
            "qname": summary.qname_text,
        }
        return forgery_finding(
            "rtt_anomaly", params, summary, ForgeryVerdict.SUSPICIOUS,
            [*summary.query_refs, *summary.refs],
            reasoning=f"the response came {rtt / 1e3:.0f} us after the query, over "
            f"{self._factor:g} times faster than this server's usual fastest answers "
            f"({usual / 1e3:.0f} us): it was likely sent before the query reached the server",
        )
