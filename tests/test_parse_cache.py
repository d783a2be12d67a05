"""The two-pass parse cache drops a message at its last sighting in the judging pass."""

from __future__ import annotations

import dns.message
import dns.rrset
from hypothesis import given, settings
from hypothesis import strategies as st

from auditor.ledger import Ledger
from auditor.messages import MessageParser, ParseCache
from tests.helpers import query_and_response, wire_message


def _answers(count: int) -> list[bytes]:
    """``count`` distinct response messages."""
    _, response = query_and_response()
    wires = []
    for index in range(count):
        answer = response.__class__(id=response.id)
        answer.flags = response.flags
        answer.question = response.question
        answer.answer.append(dns.rrset.from_text("www.example.com.", 300, "IN", "A",
                                                 f"192.0.2.{index + 1}"))
        wires.append(answer.to_wire())
    return wires


def _passes(sequence: list[bytes], cache: ParseCache, **caps: int) -> tuple[int, int]:
    """Feed ``sequence`` through a key pass and a judging pass sharing ``cache``; the
    messages parsed by each."""
    first = MessageParser(Ledger(), cache=cache, **caps)
    for wire in sequence:
        first.feed(wire_message(wire))
    cache.start_replay()
    second = MessageParser(Ledger(), cache=cache, **caps)
    for wire in sequence:
        second.feed(wire_message(wire))
    return first.parsed, second.parsed


def test_a_message_leaves_the_cache_after_its_last_sighting() -> None:
    one, two = _answers(2)
    cache = ParseCache()
    _passes([one, two, one], cache)
    assert not cache  # ``two`` and then ``one`` were seen for the last time
    assert cache.dropped_after_last_use == 2


def test_the_judging_pass_finds_what_a_plain_lru_would_have_evicted() -> None:
    """Three distinct messages, a cache of two: a plain LRU parses all three again in the
    judging pass (each miss evicts the next one needed); dropping each at its last sighting
    leaves the last one in place."""
    sequence = _answers(3)
    assert _passes(sequence, ParseCache(counting=False), cache_size=2) == (3, 3)
    assert _passes(sequence, ParseCache(), cache_size=2) == (3, 2)


def test_one_pass_counts_nothing() -> None:
    one, = _answers(1)
    cache = ParseCache(counting=False)
    parser = MessageParser(Ledger(), cache=cache)
    parser.feed(wire_message(one))
    parser.feed(wire_message(one))
    assert len(cache) == 1 and cache.dropped_after_last_use == 0


def test_a_saturated_counter_never_drops() -> None:
    one, = _answers(1)
    cache = ParseCache()
    _passes([one] * 300, cache)
    assert len(cache) == 1 and cache.dropped_after_last_use == 0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=7), min_size=1, max_size=40),
       st.integers(min_value=1, max_value=6))
def test_never_dropped_before_its_last_sighting(picks: list[int], size: int) -> None:
    """Whatever the order and cache size, and with every key sharing one counter (the worst
    collision): a message dropped at a "last" sighting is never seen again afterwards."""
    wires = _answers(8)
    sequence = [wires[i] for i in picks]
    cache = ParseCache()
    cache._mask = 0  # every key on one counter
    first = MessageParser(Ledger(), cache=cache, cache_size=size)
    for wire in sequence:
        first.feed(wire_message(wire))
    cache.start_replay()
    second = MessageParser(Ledger(), cache=cache, cache_size=size)
    dropped_keys: set[bytes] = set()
    for wire in sequence:
        key = wire[2:]
        assert key not in dropped_keys
        before = cache.dropped_after_last_use
        second.feed(wire_message(wire))
        if cache.dropped_after_last_use > before:
            dropped_keys.add(key)
    assert second.cached_bytes >= 0


def test_outputs_of_a_parsed_message_are_those_of_a_fresh_parse() -> None:
    """A message parsed again after its drop reads the same as before."""
    one, = _answers(1)
    cache = ParseCache()
    _passes([one], cache)
    again = MessageParser(Ledger(), cache=cache).feed(wire_message(one))
    assert again is not None and again.message is not None
    assert again.message.answer == dns.message.from_wire(one).answer


@settings(max_examples=200, deadline=None)
@given(keys=st.lists(st.binary(min_size=1, max_size=3), max_size=400),
       owners=st.lists(st.integers(0, 2), min_size=400, max_size=400))
def test_sightings_of_other_shards_make_one_pass_of_counts(keys: list[bytes],
                                                           owners: list[int]) -> None:
    # audit --jobs: each process's key pass counts its own flow shard; the judging process
    # adds the others' sightings, and then drops each message at its last sighting exactly
    # as one process that counted the whole input (saturation included).
    whole = ParseCache()
    shards = [ParseCache() for _ in range(3)]
    for key, owner in zip(keys, owners, strict=False):
        whole.count(key)
        shards[owner].count(key)
    judging = shards[0]
    for other in shards[1:]:
        judging.add_sightings(other.sightings())
    whole.start_replay()
    judging.start_replay()
    if keys:
        assert ([judging.seen_for_the_last_time(key) for key in keys]
                == [whole.seen_for_the_last_time(key) for key in keys])


def test_sightings_saturate_as_counting_does() -> None:
    key = b"popular"
    one, other = ParseCache(), ParseCache()
    for _ in range(200):
        one.count(key)
        other.count(key)
    one.add_sightings(other.sightings())
    one.start_replay()
    assert not any(one.seen_for_the_last_time(key) for _ in range(400))  # 255: never dropped
    assert ParseCache().sightings() is None
