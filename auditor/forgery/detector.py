"""The forgery finding stage: runs every signal family over each judged response."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import dns.opcode

from auditor.evidence import ResponseEvidence
from auditor.findings.catalogue import Finding
from auditor.findings.codes import FindingCode as F
from auditor.forgery.bailiwick import BailiwickFacts, bailiwick_facts, findings_from
from auditor.forgery.common import (
    BODY_MEMO_SIZE,
    NS_PER_S,
    BodyFacts,
    BodyMemo,
    ForgeryVerdict,
    NameMemos,
    ResponseSummary,
    body_facts,
    summarize,
)
from auditor.forgery.crosscheck import CrossChecker
from auditor.forgery.downgrade import DowngradeTracker
from auditor.forgery.holdon import HoldOnTracker
from auditor.forgery.races import RaceTracker
from auditor.forgery.spoofing import (
    KaminskyTracker,
    QueryIndex,
    UnsolicitedTracker,
    query_bits_finding,
)
from auditor.messages import NameTexts, ObservedMessage, name_texts
from auditor.trust.material import RecordDigests
from auditor.validate.verdict import Verdict

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ForgeryConfig:
    """Thresholds and memory bounds of the forgery signals (all times in capture time)."""

    race_linger_ns: int = 10 * NS_PER_S
    """How long after its last response a query is kept to catch racing responses."""
    burst_window_ns: int = 2 * NS_PER_S
    """Window over which unsolicited responses to one client port are grouped."""
    burst_ids: int = 10
    """Distinct wrong IDs in one window that make an ID brute-force burst."""
    capture_warmup_ns: int = 10 * NS_PER_S
    """Unmatched responses this early in a capture may answer queries sent before it began:
    capture loss, never an unsolicited response or part of a burst."""
    query_keep_ns: int = 60 * NS_PER_S
    """How long queries are remembered for the unsolicited/wrong-server checks."""
    kaminsky_window_ns: int = 10 * NS_PER_S
    """Window of the Kaminsky pattern."""
    kaminsky_names: int = 3
    """Distinct names (and spoof-marked responses) that make a Kaminsky pattern."""
    holdon_min_samples: int = 6
    """Responses a server must have shown before its IP TTL and RTT are judged."""
    holdon_window: int = 64
    """Recent samples kept per server."""
    hop_share: float = 0.8
    """Share of a server's recent responses its stable IP TTLs must explain before a TTL
    outside them is flagged."""
    hop_path_share: float = 0.2
    """An IP TTL is a stable path of the server when this share of its other recent responses
    (at least two) carried it..."""
    hop_path_count: int = 3
    """...or at least this many of them did (anycast and multi-homed servers have several)."""
    holdon_horizon_ns: int = 600 * NS_PER_S
    """Only IP TTL and RTT samples this close in time to a response make its baseline."""
    rtt_spread: float = 3.0
    """A pair's RTTs are a usable baseline only when their 80th percentile is within this
    factor of their 20th (tunnels and long-polling servers have no usual RTT)."""
    rtt_factor: float = 5.0
    """An RTT below 1/rtt_factor of the server's 20th-percentile RTT is flagged."""
    min_rtt_gap_ns: int = 1_000_000
    """...and only when it is also at least this much faster: below a millisecond the
    difference is host scheduling noise (loopback, same-host resolvers), not a closer sender."""
    crosscheck_defer_ns: int = 5 * NS_PER_S
    """How long an unvalidated answer waits for validated data arriving after it."""
    ttl_slack_ns: int = 1 * NS_PER_S
    """Slack added to both ends of TTL windows (race timing, clock granularity)."""
    max_entries: int = 8_000
    """Cap of every keyed table (queries, servers, validated RRsets, pending claims): with
    about 5 KB per query over all tables, about 40 MB under a flood of distinct queries (the
    tables that keep whole responses are capped in bytes too: ``crosscheck_bytes``,
    ``races_bytes``)."""
    crosscheck_bytes: int = 24 << 20
    """Accounted bytes of the answers waiting for validated data to compare with (each keeps
    a ``common.ResponseNote`` and the records it compares: ``crosscheck.claim_cost``)."""
    races_bytes: int = 32 << 20
    """Accounted bytes of the answers kept ``race_linger_ns`` to compare later answers to the
    same query with (a ``common.ResponseNote`` each, ``common.NOTE_COST``)."""
    holdon_waiting: int = 10_000
    """Responses (each with its whole evidence) kept waiting for their server's hold-on
    baseline; over it the server waiting longest loses its waiting responses, unjudged."""
    holdon_waiting_bytes: int = 8 << 20
    """Accounted bytes of those waiting responses (``holdon.waiting_cost``); over it, as
    over ``holdon_waiting``, counted in ``holdon_waiting_evicted``."""


@dataclass(frozen=True, slots=True)
class ResponseFacts:
    """What the forgery stage derives from one judged query answer alone, wherever it was
    judged: ``audit --jobs`` workers derive it beside the verdict, and the merging process's
    stage takes it instead of deriving it again (``ForgeryDetector.prime``)."""

    body: BodyFacts
    """The summary fields of its body."""
    bailiwick: tuple[Finding, ...]
    """Its bailiwick findings."""


class ForgeryDetector:
    """``FindingSource`` of forgery signals; also observes queries (``observe_query``).

    Sans-I/O: judged responses in capture order in, findings out; time is the capture time of
    what was fed, and every table is capped and expired.
    """

    def __init__(self, config: ForgeryConfig | None = None,
                 names: NameMemos | None = None, digests: RecordDigests | None = None,
                 name_text: NameTexts | None = None) -> None:
        """``names``: the run's name memos (``engine/caches.py``); ``digests``: its RRset
        digests (its key material's); ``name_text``: its memo of name texts (its parse
        tables'); without them the stage has its own."""
        name_text = name_text if name_text is not None else name_texts()
        self.config = config = config or ForgeryConfig()
        names = names if names is not None else NameMemos(config.max_entries)
        digests = digests if digests is not None else RecordDigests()
        cap = config.max_entries
        self._queries = QueryIndex(keep_ns=config.query_keep_ns, max_queries=cap,
                                   max_clients=cap)
        self._races = RaceTracker(linger_ns=config.race_linger_ns, max_queries=cap,
                                  max_bytes=config.races_bytes)
        self._unsolicited = UnsolicitedTracker(self._queries, window_ns=config.burst_window_ns,
                                               burst_ids=config.burst_ids, max_ports=cap,
                                               warmup_ns=config.capture_warmup_ns)
        self._kaminsky = KaminskyTracker(window_ns=config.kaminsky_window_ns,
                                         min_names=config.kaminsky_names, max_patterns=cap,
                                         names=names)
        self._holdon = HoldOnTracker(min_samples=config.holdon_min_samples,
                                     window=config.holdon_window, hop_share=config.hop_share,
                                     rtt_factor=config.rtt_factor, max_servers=cap,
                                     min_rtt_gap_ns=config.min_rtt_gap_ns,
                                     max_waiting=config.holdon_waiting,
                                     max_waiting_bytes=config.holdon_waiting_bytes,
                                     hop_path_share=config.hop_path_share,
                                     hop_path_count=config.hop_path_count,
                                     rtt_spread=config.rtt_spread,
                                     horizon_ns=config.holdon_horizon_ns)
        self._downgrade = DowngradeTracker(keep_ns=config.race_linger_ns, max_entries=cap)
        self._cross = CrossChecker(defer_ns=config.crosscheck_defer_ns,
                                   slack_ns=config.ttl_slack_ns, max_keys=cap, max_claims=cap,
                                   max_claim_bytes=config.crosscheck_bytes, names=names,
                                   digests=digests, name_text=name_text)
        digest = digests.digest
        self._body_facts = BodyMemo(lambda evidence: body_facts(evidence, digest, name_text),
                                    BODY_MEMO_SIZE)
        self._bailiwick: BodyMemo[BailiwickFacts | None] = BodyMemo(bailiwick_facts,
                                                                    BODY_MEMO_SIZE)
        """What the summary and the bailiwick rules read of a body, once per distinct body."""
        self._pending_query_findings: list[Finding] = []
        self._primed: tuple[ResponseEvidence, ResponseFacts] | None = None
        self._last_expiry_ns = 0
        self.responses = 0
        self.not_query_answers = 0
        """Responses with an opcode other than QUERY (NOTIFY, UPDATE): no heuristic applies."""
        self.by_code: Counter[str] = Counter()

    def observe_query(self, query: ObservedMessage) -> None:
        """Take one query (QR=0) as it is decoded."""
        if query.is_response or (query.flags >> 11) & 0xF != dns.opcode.QUERY:
            return  # a NOTIFY or UPDATE request asks no question to be answered
        altered = self._queries.observe(query)
        if altered is not None:
            asked, bits = altered
            self._pending_query_findings.append(query_bits_finding(query, asked, bits))

    def facts(self, evidence: ResponseEvidence, verdict: Verdict) -> ResponseFacts | None:
        """``ResponseFacts`` of a judged response (None for a NOTIFY/UPDATE answer, which no
        signal reads)."""
        if not evidence.transaction.answers_query:
            return None
        body = self._body_facts(evidence)
        found = findings_from(summarize(evidence, verdict, body), self._bailiwick(evidence))
        return ResponseFacts(body, tuple(found))

    def prime(self, evidence: ResponseEvidence, facts: ResponseFacts) -> None:
        """The ``facts`` of the response fed next, derived where it was judged."""
        self._primed = (evidence, facts)

    def feed(self, evidence: ResponseEvidence, verdict: Verdict) -> list[Finding]:
        """Take one judged response; return the findings it completes."""
        self.responses += 1
        primed, self._primed = self._primed, None
        known = primed[1] if primed is not None and primed[0] is evidence else None
        found = self._take_query_findings()
        if not evidence.transaction.answers_query:
            # NOTIFY/UPDATE acknowledgements (RFC 1996, RFC 2136): their sections are not an
            # answer to a question, so races, bailiwick, cross-checks... do not apply.
            self.not_query_answers += 1
            return self._count(found)
        summary = summarize(evidence, verdict,
                            known.body if known is not None else self._body_facts(evidence))
        self._queries.note_time(summary.capture, summary.ts_ns)
        if summary.matched:
            self._queries.note_answer(summary)
        found.extend(self._expire(summary.ts_ns))
        raced = self._races.feed(summary)
        found.extend(raced)
        spoof_signs = (any(f.code == F.RESPONSE_RACE for f in raced)
                       or self._unsolicited.is_candidate(summary))
        found.extend(self._unsolicited.feed(summary))
        found.extend(self._kaminsky.feed(summary, spoof_signs))
        found.extend(self._holdon.feed(summary))
        found.extend(known.bailiwick if known is not None
                     else findings_from(summary, self._bailiwick(evidence)))
        found.extend(self._downgrade.feed(summary))
        found.extend(self._cross.feed(summary))
        return self._count(found)

    def flush(self) -> list[Finding]:
        """End of input: close open windows and forget everything."""
        found = self._take_query_findings()
        found.extend(self._unsolicited.flush())
        self._races.flush()
        self._cross.flush()
        return self._count(found)

    def expire(self, now_ns: int) -> list[Finding]:
        """Timer (live mode): close the windows that ended by capture time ``now_ns`` although
        no response arrived since, and hand over pending query findings."""
        self._last_expiry_ns = now_ns
        return self._count([*self._take_query_findings(), *self._expire_windows(now_ns)])

    def counters(self) -> dict[str, object]:
        """JSON-ready counts for ``stats.json``."""
        return {
            "responses_checked": self.responses,
            "findings": dict(self.by_code.most_common()),
            "retransmissions": self._races.retransmissions,
            "races": self._races.races,
            "unsolicited_one_sided": self._unsolicited.one_sided,
            "unsolicited_by_reason": dict(sorted(self._unsolicited.by_reason.items())),
            "race_retry_answers": self._races.retry_answers,
            "race_retry_bits": self._races.retry_bits,
            "queries_retried_with_other_bits": self._queries.retried_with_other_bits,
            "not_a_query_answer": self.not_query_answers,
            "race_state_evicted": self._races.evicted,
            "crosscheck_claims_dropped": self._cross.dropped_claims,
            "holdon_servers_evicted": self._holdon.servers_evicted,
            "holdon_waiting_evicted": self._holdon.waiting_evicted,
            "holdon_waiting_evicted_bytes": self._holdon.waiting_evicted_bytes,
            "rtt_skipped_recursive": self._holdon.rtt_skipped_recursive,
            "rtt_skipped_retried": self._holdon.rtt_skipped_retried,
            "rtt_skipped_unstable": self._holdon.rtt_skipped_unstable,
            "holdon_skipped_unmatched": self._holdon.skipped_unmatched,
            "holdon_pairs_evicted": self._holdon.pairs_evicted,
        }

    def _expire(self, now_ns: int) -> list[Finding]:
        if now_ns - self._last_expiry_ns < NS_PER_S // 4:
            return []
        self._last_expiry_ns = now_ns
        return self._expire_windows(now_ns)

    def _expire_windows(self, now_ns: int) -> list[Finding]:
        self._races.expire(now_ns)
        self._queries.expire(now_ns)
        self._kaminsky.expire(now_ns)
        self._cross.expire(now_ns)
        return self._unsolicited.expire(now_ns)

    def _take_query_findings(self) -> list[Finding]:
        found, self._pending_query_findings = self._pending_query_findings, []
        return found

    def _count(self, found: list[Finding]) -> list[Finding]:
        for finding in found:
            self.by_code[finding.code] += 1
        return found


def finding_frames(findings: Iterable[Finding]) -> set[tuple[str, int]]:
    """The (capture, frame) pairs behind forged or suspicious findings."""
    wanted: set[tuple[str, int]] = set()
    for finding in findings:
        wanted.update(evidence_refs(finding))
    return wanted


def evidence_refs(finding: Finding) -> list[tuple[str, int]]:
    """The frames a forged/suspicious finding cites (none for other findings)."""
    if finding.verdict not in (ForgeryVerdict.FORGED.value, ForgeryVerdict.SUSPICIOUS.value):
        return []
    cited = finding.params.get("evidence_frames")
    if isinstance(cited, list):
        return [(str(capture), int(frame)) for capture, frame in cited]
    return [(finding.provenance.capture, frame) for frame in finding.provenance.frames]


__all__ = ["ForgeryConfig", "ForgeryDetector", "ResponseFacts", "ResponseSummary",
           "evidence_refs", "finding_frames"]
