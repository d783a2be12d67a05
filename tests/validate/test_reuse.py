"""The verdict cache's key (TTL-free bodies, TTLs over Original TTL) and time windows."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import dns.rrset

from auditor.findings.codes import ValidationCode
from auditor.messages import ttl_free
from auditor.validate.reuse import VerdictCache
from auditor.validate.verdict import ALWAYS, Status, TimeWindow, Verdict

NS = 1_000_000_000


def _response(ttl: int, *, edns_do: bool = True) -> bytes:
    query = dns.message.make_query("www.example.", "A", want_dnssec=edns_do)
    response = dns.message.make_response(query)
    response.answer.append(dns.rrset.from_text("www.example.", ttl, "IN", "A", "192.0.2.1"))
    response.authority.append(dns.rrset.from_text("example.", ttl, "IN", "NS", "ns.example."))
    return response.to_wire()


def test_ttl_free_ignores_ttls_and_id() -> None:
    first, second = _response(300), _response(17)
    assert first != second
    assert ttl_free(first) == ttl_free(b"\x12\x34" + second[2:])


def test_ttl_free_keeps_everything_else() -> None:
    assert ttl_free(_response(300)) != ttl_free(
        _response(300).replace(b"\xc0\x00\x02\x01", b"\xc0\x00\x02\x02")
    )


def test_ttl_free_keeps_the_opt_ttl_field() -> None:
    # RFC 6891 6.1.3: the OPT "TTL" holds the extended RCODE and the DO bit.
    assert ttl_free(_response(300, edns_do=True)) != ttl_free(_response(300, edns_do=False))


def test_ttl_free_of_a_cut_message_is_the_message_after_its_id() -> None:
    wire = _response(300)[:-5]
    assert ttl_free(wire) == wire[2:]


def test_window_narrows_to_the_signature_period_at_the_reference_time() -> None:
    window = TimeWindow(1_000)
    window.note_period(900, 1_500, (1_000,), True)
    window.note_period(0, 2_000, (5,), True)  # a stored signature's own times: no effect
    assert window.bounds() == (900 * NS, 1_500 * NS + NS - 1)


def test_a_failed_check_holds_for_its_second_only() -> None:
    window = TimeWindow(1_000)
    window.note_period(1_100, 1_500, (1_000,), False)
    assert window.bounds() == (1_000 * NS, 1_000 * NS + NS - 1)


def test_fixed_reference_time_ignores_periods() -> None:
    window = TimeWindow(None)
    window.note_period(1_100, 1_500, (1_000,), False)
    assert window.bounds() == ALWAYS
    window.narrow_ns(7, 7)
    assert window.bounds() == (7, 7)


@dataclass
class _Wire:
    wire: bytes
    ts_ns: int


class _Parsed:
    def ttl_free_key(self, wire: bytes) -> bytes:
        return ttl_free(wire)


@dataclass
class _Message:
    wire: _Wire
    flags: int = 0
    parsed: _Parsed = field(default_factory=_Parsed)


@dataclass
class _Transaction:
    response: _Message
    query: _Message | None


@dataclass
class _Evidence:
    transaction: _Transaction
    query_do: bool | None = True
    rrsets: tuple[object, ...] = ()
    rcode: int = 0

    @property
    def ts_ns(self) -> int:
        return self.transaction.response.wire.ts_ns


class _Anchors:
    def epoch_of(self, at_s: int | None) -> int | None:
        return 0


@dataclass
class _Material:
    delegation_generation: int = 0


@dataclass
class _Keys:
    anchors: _Anchors = field(default_factory=_Anchors)
    generation: int = 1
    material: _Material = field(default_factory=_Material)


@dataclass
class _Validator:
    at_ns: int | None = None
    zone_rate: object = None
    keys: _Keys = field(default_factory=_Keys)


def _evidence(ts_ns: int, ttl: int = 300, query_flags: int = 0) -> _Evidence:
    wire = _Wire(_response(ttl), ts_ns)
    return _Evidence(_Transaction(_Message(wire), _Message(_Wire(b"", ts_ns), query_flags)))


def _cache(
    window: tuple[int, int] | None,
    codes: tuple[ValidationCode, ...] = (),
    *,
    growing: bool = False,
    validator: _Validator | None = None,
) -> tuple[VerdictCache, list[int]]:
    judged: list[int] = []

    def judge(evidence: object) -> Verdict:
        ts_ns = evidence.ts_ns  # type: ignore[attr-defined]
        judged.append(ts_ns)
        return Verdict(Status.SECURE, codes, "example.", (), (), ts_ns, (), valid_ns=window)

    cache = VerdictCache(validator or _Validator(), judge,  # type: ignore[arg-type]
                         growing_material=growing)
    return cache, judged


def test_a_repeat_inside_the_window_is_not_judged_again() -> None:
    cache, judged = _cache((0, 10 * NS))
    first, _ = cache.judge(_evidence(NS))  # type: ignore[arg-type]
    again, stored = cache.judge(_evidence(2 * NS, ttl=17))  # type: ignore[arg-type]
    assert judged == [NS]
    assert stored is first and again.reference_time_ns == 2 * NS
    assert again == Verdict(Status.SECURE, (), "example.", (), (), 2 * NS, ())
    assert cache.stats.hits == 1


def test_a_repeat_outside_the_window_is_judged_again() -> None:
    cache, judged = _cache((0, 10 * NS))
    cache.judge(_evidence(NS))  # type: ignore[arg-type]
    cache.judge(_evidence(11 * NS))  # type: ignore[arg-type]
    assert judged == [NS, 11 * NS]
    assert cache.stats.outside_window == 1


def test_query_bits_are_part_of_the_key() -> None:
    cache, judged = _cache(ALWAYS)
    cache.judge(_evidence(NS))  # type: ignore[arg-type]
    cache.judge(_evidence(NS, query_flags=dns.flags.CD))  # type: ignore[arg-type]
    assert judged == [NS, NS]


def test_a_verdict_without_window_is_never_reused() -> None:
    cache, judged = _cache(None)
    cache.judge(_evidence(NS))  # type: ignore[arg-type]
    cache.judge(_evidence(NS))  # type: ignore[arg-type]
    assert judged == [NS, NS]
    assert cache.stats.not_reusable == 2


def test_a_hit_copies_every_field_but_the_reference_time() -> None:
    # _restamped spells dataclasses.replace out: a field added to Verdict must be copied too.
    stored = Verdict(
        Status.BOGUS, (), "example.", (), ("m",), NS, ("d",), Status.SECURE, (0, 10 * NS)
    )
    cache, _ = _cache(None)
    again = cache._restamped(stored, _evidence(2 * NS))  # type: ignore[arg-type]
    expected = dataclasses.replace(stored, reference_time_ns=2 * NS)
    assert [getattr(again, f.name) for f in dataclasses.fields(Verdict)] == [
        getattr(expected, f.name) for f in dataclasses.fields(Verdict)
    ]


def test_a_verdict_a_budget_cut_short_is_never_reused() -> None:
    # The per-response budget or live mode's per-zone rate: the work was cut short, so the
    # same body judged with budget to spare may get another verdict.
    shaped = (ValidationCode.VALIDATION_BUDGET_EXCEEDED, ValidationCode.DNSSEC_BOGUS)
    cache, judged = _cache(ALWAYS, shaped)
    cache.judge(_evidence(NS))  # type: ignore[arg-type]
    cache.judge(_evidence(NS))  # type: ignore[arg-type]
    assert judged == [NS, NS]
    assert cache.stats.budget_shaped == 2 and len(cache) == 0


def test_a_zone_rate_is_allowed() -> None:
    # Live mode: a hit costs no validation work, so it needs none of the zone's rate.
    cache, judged = _cache(ALWAYS, validator=_Validator(zone_rate=object()))
    cache.judge(_evidence(NS))  # type: ignore[arg-type]
    cache.judge(_evidence(2 * NS))  # type: ignore[arg-type]
    assert judged == [NS]


def test_growing_material_keys_on_the_delegations_seen() -> None:
    validator = _Validator()
    cache, judged = _cache(ALWAYS, growing=True, validator=validator)
    cache.judge(_evidence(NS))  # type: ignore[arg-type]
    cache.judge(_evidence(2 * NS))  # type: ignore[arg-type]
    validator.keys.material.delegation_generation += 1
    cache.judge(_evidence(3 * NS))  # type: ignore[arg-type]
    assert judged == [NS, 3 * NS]


def test_files_ignore_the_delegations_seen() -> None:
    # With the whole capture's material gathered first, delegations cannot change meanwhile.
    validator = _Validator()
    cache, judged = _cache(ALWAYS, validator=validator)
    cache.judge(_evidence(NS))  # type: ignore[arg-type]
    validator.keys.material.delegation_generation += 1
    cache.judge(_evidence(2 * NS))  # type: ignore[arg-type]
    assert judged == [NS]


def test_growing_material_stores_nothing_that_read_signed_copies() -> None:
    # An unsigned cross-check pins its verdict to one instant; a SERVFAIL's claims are held
    # against copies: with copies still arriving, neither is stored.
    pinned, judged = _cache((NS, NS), growing=True)
    pinned.judge(_evidence(NS))  # type: ignore[arg-type]
    pinned.judge(_evidence(NS))  # type: ignore[arg-type]
    assert judged == [NS, NS] and pinned.stats.growing_material == 2
    servfail, judged = _cache(ALWAYS, growing=True)
    for _ in range(2):
        evidence = _evidence(NS)
        evidence.rcode = dns.rcode.SERVFAIL
        servfail.judge(evidence)  # type: ignore[arg-type]
    assert judged == [NS, NS] and servfail.stats.growing_material == 2
    files, judged = _cache((NS, NS))
    files.judge(_evidence(NS))  # type: ignore[arg-type]
    files.judge(_evidence(NS))  # type: ignore[arg-type]
    assert judged == [NS]


def test_untouched_material_keeps_an_older_generation_s_verdict() -> None:
    # Live mode: material about other zones must not empty the cache; material about one of
    # the response's zones must.
    validator = _Validator()
    asked: list[int] = []
    touched = {"now": False}

    def untouched(evidence: object, generation: int) -> bool:
        asked.append(generation)
        return not touched["now"]

    judged: list[int] = []

    def judge(evidence: object) -> Verdict:
        ts_ns = evidence.ts_ns  # type: ignore[attr-defined]
        judged.append(ts_ns)
        return Verdict(Status.SECURE, (), "example.", (), (), ts_ns, (), valid_ns=ALWAYS)

    cache = VerdictCache(validator, judge, growing_material=True,  # type: ignore[arg-type]
                         untouched=untouched)
    cache.judge(_evidence(NS))  # type: ignore[arg-type]
    validator.keys.generation = 2
    cache.judge(_evidence(2 * NS))  # type: ignore[arg-type]
    cache.judge(_evidence(3 * NS))  # type: ignore[arg-type]  (moved to generation 2)
    assert judged == [NS] and asked == [1]
    validator.keys.generation = 3
    touched["now"] = True
    cache.judge(_evidence(4 * NS))  # type: ignore[arg-type]
    assert judged == [NS, 4 * NS] and asked == [1, 2]
    assert cache.stats.material_changed == 1 and cache.stats.hits == 2
