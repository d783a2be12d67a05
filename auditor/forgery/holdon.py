"""Hold-On style consistency: a response's IP TTL and round-trip time against what the same
server (and, for the RTT, the same client and server) usually shows in this capture.

Rules and the normal behaviours they must not fire on (each has a test in
``tests/forgery/test_holdon.py``):

* A baseline is recent: only samples within ``horizon_ns`` of the judged response count
  (routes change over hours, and captures stitched from several days and vantage points
  show the same server at several distances).
* Only answers matched to a captured query build a baseline or are judged: a wrong-ID flood
  would otherwise teach the baseline the spoofer's TTL, and unmatched responses are judged by
  the unsolicited/burst rules instead.
* IP TTL: a server's usual TTLs are a *set* of stable paths, not one mode. Anycast services
  and multi-homed servers reach a tap over two or more stable paths (8.8.8.8 splits 65/35 on
  some networks); a value is a stable path when at least ``hop_path_count`` of the server's
  other recent responses, or ``hop_path_share`` of them, carried it. A TTL is flagged only
  when no other recent answer of the server carried it (a one-off: a second answer over the
  same path makes it a path, if a rare one, which a small early baseline cannot tell from
  a 35% path) and the stable paths explain at least ``hop_share`` of the other recent
  answers (a server whose TTL wanders is not judged).
* RTT: measured per (client, server) pair, since the time between a query and its answer at
  the tap depends on where the tap sits between that client and that server (a tap at the
  server sees processing time only, one at the client the whole path). Flagged only when
  (1) the answer is authoritative (no RA: a recursive resolver's cache hit is fast), (2) the
  query was sent once (after a retry the answer may belong to either copy, Karn's rule),
  (3) the pair has a stable baseline (80th percentile within ``rtt_spread`` times the 20th:
  tunnels such as iodine and long-polling servers answer from different code paths and
  have no usual RTT), (4) it is ``rtt_factor`` times faster than the pair's 20th percentile
  and at least ``min_rtt_gap_ns`` faster, and (5) the pair never answered that fast before
  in the capture (a server that can answer in 100 us once can do so again).
"""

from __future__ import annotations

from collections import Counter, OrderedDict, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from auditor.findings.catalogue import Finding
from auditor.findings.codes import FindingCode as F
from auditor.forgery.common import ForgeryVerdict, ResponseSummary, forgery_finding

WAITING_OVERHEAD = 3_072
"""Bytes a waiting response costs besides three times its message length: it keeps the whole
response (evidence, parsed message, records, summary), estimated like a parse-cache entry
(``messages.parsed_cost``) plus the evidence and summary."""


def waiting_cost(summary: ResponseSummary) -> int:
    """Accounted bytes of one response waiting for its server's baseline."""
    return 3 * len(summary.evidence.transaction.response.wire.wire) + WAITING_OVERHEAD


@dataclass(slots=True)
class _Profile:
    """What one server looked like so far (a bounded window of recent IP TTLs)."""

    hops: deque[tuple[int, int]]
    """Recent (capture time, IP TTL) samples."""
    waiting: list[ResponseSummary] = field(default_factory=list)
    """Responses seen before the profile had enough samples; judged once it has."""
    counts: Counter[int] = field(default_factory=Counter)
    """IP TTLs of ``hops`` counted, kept with it (a lookup instead of a scan per response)."""
    ordered: bool = True
    """Whether ``hops`` arrived in capture-time order (then its ends bound every sample)."""

    def add_hop(self, ts_ns: int, hop_limit: int) -> None:
        hops = self.hops
        if len(hops) == hops.maxlen:
            self.counts[hops[0][1]] -= 1
        if hops and ts_ns < hops[-1][0]:
            self.ordered = False
        hops.append((ts_ns, hop_limit))
        self.counts[hop_limit] += 1


@dataclass(slots=True)
class _Pair:
    """Round-trip times of one (client, server) pair."""

    window: int
    """Samples kept."""
    rtts: list[tuple[int, int]] = field(default_factory=list)
    """Recent (capture time, RTT) samples, at most ``window`` (a list, not a ``deque``: an
    empty deque allocates a 64-slot block, ~600 bytes for each of the thousands of pairs a
    flood of new clients brings, most of which see one sample)."""
    fastest: list[int] = field(default_factory=list)
    """The two smallest RTTs ever seen for the pair, ascending."""

    def add(self, ts_ns: int, rtt: int) -> None:
        rtts = self.rtts
        rtts.append((ts_ns, rtt))
        if len(rtts) > self.window:
            del rtts[0]
        fastest = self.fastest
        if len(fastest) < 2 or rtt < fastest[-1]:
            fastest.append(rtt)
            fastest.sort()
            del fastest[2:]

    def fastest_other(self, rtt: int) -> int | None:
        """The fastest RTT of the pair other than this sample."""
        others = list(self.fastest)
        if rtt in others:
            others.remove(rtt)
        return others[0] if others else None


class HoldOnTracker:
    """Learns each server's IP TTL and RTT from the capture itself (Duan et al., "Hold-On",
    2012) and flags responses far from them.

    IP TTL: flagged when it is none of the server's stable paths and those paths explain at
    least ``hop_share`` of ``min_samples`` or more responses. RTT: flagged when a stable
    baseline of the (client, server) pair says it is impossibly fast (see the module
    docstring for every guard).
    """

    def __init__(self, *, min_samples: int, window: int, hop_share: float, rtt_factor: float,
                 max_servers: int, min_rtt_gap_ns: int = 1_000_000,
                 max_waiting: int = 10_000, max_waiting_bytes: int = 8 << 20,
                 hop_path_share: float = 0.2,
                 hop_path_count: int = 3, rtt_spread: float = 3.0,
                 horizon_ns: int = 600_000_000_000) -> None:
        self._min = min_samples
        self._min_gap = min_rtt_gap_ns
        self._window = window
        self._share = hop_share
        self._path_share = hop_path_share
        self._path_count = hop_path_count
        self._factor = rtt_factor
        self._spread = rtt_spread
        self._horizon = horizon_ns
        self._max = max_servers
        self._max_waiting = max(1, max_waiting)
        self._max_waiting_bytes = max_waiting_bytes
        self._waiting_bytes = 0
        self._profiles: OrderedDict[str, _Profile] = OrderedDict()
        self._pairs: OrderedDict[tuple[str, str], _Pair] = OrderedDict()
        self._waiting_servers: OrderedDict[str, None] = OrderedDict()
        """Servers with responses waiting for a baseline, the one waiting longest first."""
        self._waiting_total = 0
        self.rtt_skipped_recursive = 0
        """Responses of recursive resolvers (RA) not judged by RTT (cache hits are fast)."""
        self.rtt_skipped_retried = 0
        """Answers to a query sent more than once, not judged by RTT (either copy may be the
        one answered)."""
        self.rtt_skipped_unstable = 0
        """Answers not judged by RTT because their pair's RTTs have no stable baseline."""
        self.skipped_unmatched = 0
        """Responses without a matched query: they neither build nor meet a baseline."""
        self.pairs_evicted = 0
        """(client, server) RTT profiles dropped (least recently seen first) over
        ``max_servers``."""
        self.servers_evicted = 0
        """Server profiles dropped (least recently seen first) over ``max_servers``."""
        self.waiting_evicted = 0
        """Responses dropped unjudged while waiting for their server's baseline, because
        ``max_waiting`` responses or ``max_waiting_bytes`` accounted bytes (``waiting_cost``)
        were waiting (the server waiting longest loses its oldest first) or their server's
        profile was dropped."""
        self.waiting_evicted_bytes = 0
        """Accounted bytes of the responses counted in ``waiting_evicted``."""

    @property
    def waiting(self) -> int:
        """Responses waiting for their server's baseline now (each holds its evidence)."""
        return self._waiting_total

    @property
    def waiting_bytes(self) -> int:
        """Accounted bytes (``waiting_cost``) of the responses waiting now."""
        return self._waiting_bytes

    def __len__(self) -> int:
        return len(self._profiles)

    def feed(self, summary: ResponseSummary) -> list[Finding]:
        """Take one response; return anomalies it (or responses waiting for a baseline) show."""
        if not summary.matched:
            self.skipped_unmatched += 1
            return []
        profile = self._profile(summary.server)
        profile.add_hop(summary.ts_ns, summary.hop_limit)
        rtt = summary.rtt_ns
        if rtt is not None and summary.query_copies == 1:
            self._pair(summary.client, summary.server).add(summary.ts_ns, rtt)
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
        self._waiting_bytes += waiting_cost(summary)
        self._waiting_servers[server] = None  # keeps its place if already waiting
        while self._waiting_total > self._max_waiting or (
                self._waiting_bytes > self._max_waiting_bytes and self._waiting_total > 1):
            oldest = next(iter(self._waiting_servers))  # oldest response of the longest wait
            waiting = self._profiles[oldest].waiting
            cost = waiting_cost(waiting.pop(0))
            self._waiting_total -= 1
            self._waiting_bytes -= cost
            self.waiting_evicted += 1
            self.waiting_evicted_bytes += cost
            if not waiting:
                del self._waiting_servers[oldest]

    def _release(self, server: str, profile: _Profile) -> int:
        """Stop holding a profile's waiting responses; return their accounted bytes."""
        cost = sum(waiting_cost(summary) for summary in profile.waiting)
        self._waiting_total -= len(profile.waiting)
        self._waiting_bytes -= cost
        profile.waiting = []
        self._waiting_servers.pop(server, None)
        return cost

    def _profile(self, server: str) -> _Profile:
        profile = self._profiles.get(server)
        if profile is None:
            profile = self._profiles[server] = _Profile(deque(maxlen=self._window))
            if len(self._profiles) > self._max:
                oldest, dropped = self._profiles.popitem(last=False)
                self.servers_evicted += 1
                self.waiting_evicted += len(dropped.waiting)
                self.waiting_evicted_bytes += self._release(oldest, dropped)
        else:
            self._profiles.move_to_end(server)
        return profile

    def _pair(self, client: str, server: str) -> _Pair:
        key = (client, server)
        pair = self._pairs.get(key)
        if pair is None:
            pair = self._pairs[key] = _Pair(self._window)
            if len(self._pairs) > self._max:
                self._pairs.popitem(last=False)
                self.pairs_evicted += 1
        else:
            self._pairs.move_to_end(key)
        return pair

    def _judge(self, profile: _Profile, summary: ResponseSummary) -> list[Finding]:
        found = []
        hop = self._hop_finding(profile, summary)
        if hop is not None:
            found.append(hop)
        rtt = self._rtt_finding(profile, summary)
        if rtt is not None:
            found.append(rtt)
        return found

    def _recent(self, samples: Sequence[tuple[int, int]], ts_ns: int) -> list[int]:
        """The values of the samples within the horizon of ``ts_ns`` (either side: responses
        waiting for a baseline are judged against samples that came after them)."""
        horizon = self._horizon
        return [value for at, value in samples if abs(at - ts_ns) <= horizon]

    def _stable_paths(self, profile: _Profile, summary: ResponseSummary) -> tuple[
            int, dict[int, int], int]:
        """How many of the server's *other* recent responses (a response never vouches for
        itself) came with this one's IP TTL, the stable paths among them, and how many others
        there are."""
        hops, ts_ns, horizon = profile.hops, summary.ts_ns, self._horizon
        counts: Mapping[int, int]
        if profile.ordered and ts_ns - hops[0][0] <= horizon and hops[-1][0] - ts_ns <= horizon:
            counts = profile.counts  # every sample is recent (the usual case); read only
            others = len(hops) - 1
        else:
            recent = self._recent(hops, ts_ns)
            counts = Counter(recent)
            others = len(recent) - 1
        hop = summary.hop_limit
        floor = min(self._path_count, self._path_share * others)
        stable = {}
        for value, seen in counts.items():
            if value == hop:
                seen -= 1  # this response's own sample
            if seen > 0 and seen >= floor:
                stable[value] = seen
        return counts.get(hop, 0) - 1, stable, others

    def _hop_finding(self, profile: _Profile, summary: ResponseSummary) -> Finding | None:
        hop = summary.hop_limit
        same_way, stable, others = self._stable_paths(profile, summary)
        if same_way > 0 or not stable or others < self._min - 1:
            return None  # another answer came the same way: a path, if a rare one
        covered = sum(stable.values()) / others
        if covered < self._share:
            return None  # the server's TTL wanders: no usual path to hold it against
        paths = sorted(stable, key=lambda value: (-stable[value], value))
        usual = paths[0]
        share = stable[usual] / others
        params = {
            "server": summary.server,
            "hop_limit": hop,
            "usual": usual,
            "share": round(share * 100),
            "samples": others,
            "qname": summary.qname_text,
            "paths": paths,
            "paths_share": round(covered * 100),
        }
        path_text = ", ".join(f"{value} ({stable[value]})" for value in paths)
        return forgery_finding(
            F.HOP_LIMIT_ANOMALY, params, summary, ForgeryVerdict.SUSPICIOUS,
            [*summary.query_refs, *summary.refs],
            reasoning=f"packets from one host reach the tap over a few stable paths, so their "
            f"IP TTL takes a few stable values ({path_text} of {others} other answers, "
            f"{round(covered * 100)}% of them); an off-path spoofer elsewhere sends with "
            f"another initial TTL or distance ({hop}), matching none of them",
        )

    def _rtt_finding(self, profile: _Profile, summary: ResponseSummary) -> Finding | None:
        rtt = summary.rtt_ns
        if rtt is None:
            return None
        if summary.recursive:
            # A recursive resolver (RA) answers from its cache in microseconds and after
            # upstream queries in milliseconds: a fast answer is a cache hit, not a spoofer.
            # The timing argument of RFC 5452 4 holds for authoritative answers.
            self.rtt_skipped_recursive += 1
            return None
        if summary.query_copies > 1:
            self.rtt_skipped_retried += 1  # Karn's rule: which copy was answered is unknown
            return None
        pair = self._pairs.get((summary.client, summary.server))
        if pair is None:
            return None
        others = sorted(self._recent(pair.rtts, summary.ts_ns))
        if rtt not in others or len(others) < self._min:
            return None
        others.remove(rtt)
        usual = others[len(others) // 5]
        high = others[(len(others) * 4) // 5]
        if high > usual * self._spread:
            self.rtt_skipped_unstable += 1  # no usual RTT to be faster than
            return None
        fastest = pair.fastest_other(rtt)
        if rtt * self._factor >= usual or usual - rtt < self._min_gap:
            return None
        if fastest is not None and rtt * self._factor >= fastest:
            return None  # the pair has answered about this fast before
        params = {
            "server": summary.server,
            "rtt_us": rtt // 1000,
            "usual_us": usual // 1000,
            "samples": len(others),
            "qname": summary.qname_text,
            "client": summary.client,
            "high_us": high // 1000,
            "fastest_us": None if fastest is None else fastest // 1000,
        }
        return forgery_finding(
            F.RTT_ANOMALY, params, summary, ForgeryVerdict.SUSPICIOUS,
            [*summary.query_refs, *summary.refs],
            reasoning=f"the response came {rtt / 1e3:.0f} us after the query, over "
            f"{self._factor:g} times faster than this client-server pair's usual fastest "
            f"answers ({usual / 1e3:.0f} us; its RTTs are stable, 80th percentile "
            f"{high / 1e3:.0f} us) and faster than it ever answered before: it was likely "
            f"sent before the query reached the server",
        )
