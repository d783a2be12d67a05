"""Every cap and timeout of a run's state, as one object with a preset per driver."""

from __future__ import annotations

from dataclasses import dataclass, replace

NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Limits:
    """Caps and timeouts of every piece of state (times are capture time).

    The field defaults are the live preset (``LIVE_LIMITS``: a tap's state must stay small
    for days); ``FILE_LIMITS`` is the file preset (one audit over finite input, larger tables
    for speed). ``live --limit NAME=N`` and the other ``live`` cap options override the live
    preset field by field (``auditor.live.LiveLimits`` is this class).
    """

    fragment_sets: int = 10_000
    """IP fragment sets being reassembled (file: 10,000)."""
    fragment_bytes: int = 32 << 20
    """Bytes held in incomplete fragment sets (file: 64 MB)."""
    fragment_timeout_ns: int = 30 * NS
    """Age at which an incomplete fragment set is dropped (file: 30 s)."""
    tcp_flows: int = 20_000
    """TCP streams being reassembled (file: 50,000)."""
    tcp_bytes: int = 64 << 20
    """Bytes buffered over all TCP streams (file: 64 MB)."""
    tcp_timeout_ns: int = 60 * NS
    """Idle time after which a TCP stream is dropped (file: 120 s)."""
    pending_queries: int = 100_000
    """Queries waiting for their response (file: 200,000)."""
    query_timeout_ns: int = 30 * NS
    """Age at which an unanswered query is dropped (file: 30 s)."""
    held_responses: int = 10_000
    """Responses waiting for late keys (file, single pass: 20,000)."""
    held_bytes: int = 32 << 20
    """DNS message bytes of the responses waiting for late keys (the file driver's
    single pass holds responses in capture order and caps them by number only)."""
    hold_ns: int = 500_000_000
    """How long an indeterminate response waits for the keys it needs (a resolver fetches
    them one round trip after the answer; the rest of the audit, forgery checks included,
    sees the response only once it is released, so this bounds alert latency). File: 5 s,
    used by single-pass input (standard input) only."""
    parse_cache: int = 10_000
    """Distinct parsed DNS messages kept for reuse (file: 50,000; 32 MB in both)."""
    facts_memo: int = 10_000
    """Parsed messages whose evidence facts are memoised (the run's ``Caches``; file:
    4,000)."""
    record_cache: int = 20_000
    """Question and owner names, name texts, summaries, records and RRsets each that the parse
    stage shares between messages (the run's ``Caches.parse``; file: 10,000)."""
    address_memo: int = 20_000
    """Address texts/values each that the decode stage memoises (the run's ``Caches``;
    file: 65,536)."""
    digest_memo: int = 20_000
    """RRset digests and record wire forms each memoised by the key material
    (``KeyMaterial.digests``; file: 10,000)."""
    signature_memo: int = 20_000
    """Distinct RRSIG checks whose result the validator memoises (file: 20,000; each entry
    keeps the signed data's canonical form: about 1 KB)."""
    verdict_cache: int = 20_000
    """Distinct answers whose verdict is reused while its window and the key material's
    generation hold (``VerdictCache``; file: 50,000)."""
    verdict_cache_bytes: int = 16 << 20
    """Accounted bytes of the verdict cache (its keys hold the answer bodies; file: 24 MB)."""
    signed_copies: int = 100_000
    """Signed RRset copies kept by the key material for cross-checks (file: 500,000)."""
    denial_records: int = 50_000
    """NSEC/NSEC3 RRsets kept by the key material (file: 200,000)."""
    zones: int = 20_000
    """Zones tracked by the zone-health stage (file: 50,000)."""
    chain_rrsets: int = 50_000
    """DNSKEY/DS RRsets (by owner and type) kept by the key material (file: 200,000)."""
    forgery_entries: int = 20_000
    """Cap of every keyed table of the forgery stage (queries, servers, claims) and of the
    run's memo of names' ancestors (``Caches.names``; file: 8,000)."""
    holdon_waiting: int = 2_000
    """Responses (each with its evidence) the forgery stage keeps waiting for their server's
    hold-on baseline, over all servers (file: 10,000)."""
    rejudge_per_tick: int = 256
    """Held responses re-judged per timer tick after new keys arrived (the rest wait for the
    next ticks), so a large backlog cannot stall capture (live only)."""
    finding_keys: int = 20_000
    """Findings merge keys (code, zone or question, server, client) counted at once (live
    only)."""
    alert_facts: int = 50_000
    """Frames whose response facts (flow, question, verdict; about 300 bytes each) are kept
    for findings decided after the response was judged (bursts, races, hold-on; live only)."""
    burst_window_ns: int = 500_000_000
    """Window over which wrong-ID responses to one client port are grouped (file: 2 s). Live,
    the timer closes it, so a burst's alert comes at most this long plus a tick after its
    first response: within 1 s of its last."""
    alert_interval_ns: int = 60 * NS
    """A finding key is written and alerted again, with its rising count, at most once per
    this much capture time (live only)."""

    @classmethod
    def live(cls, **overrides: int) -> Limits:
        """The live preset with ``overrides`` (field name: value)."""
        return replace(LIVE_LIMITS, **overrides)

    @classmethod
    def file(cls, **overrides: int) -> Limits:
        """The file preset with ``overrides`` (field name: value)."""
        return replace(FILE_LIMITS, **overrides)


LIVE_LIMITS = Limits()
"""The live preset: every table small and every wait short (a tap runs for days)."""

FILE_LIMITS = Limits(
    fragment_bytes=64 << 20,
    tcp_flows=50_000,
    tcp_timeout_ns=120 * NS,
    pending_queries=200_000,
    held_responses=20_000,
    hold_ns=5 * NS,
    parse_cache=50_000,
    facts_memo=4_000,
    record_cache=10_000,
    address_memo=65_536,
    digest_memo=10_000,
    verdict_cache=50_000,
    verdict_cache_bytes=24 << 20,
    signed_copies=500_000,
    denial_records=200_000,
    zones=50_000,
    chain_rrsets=200_000,
    forgery_entries=8_000,
    holdon_waiting=10_000,
    burst_window_ns=2 * NS,
)
"""The file preset: one audit over finite input (the sizes the stages were tuned with)."""
