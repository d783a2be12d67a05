"""IdentityMemo: computed once per object, bounded, never confused by a reused id."""

from __future__ import annotations

import platform

import dns.message
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditor.memo import IdentityMemo, release_heap


def test_value_is_computed_once_per_object() -> None:
    calls: list[str] = []
    memo: IdentityMemo[dns.message.Message, str] = IdentityMemo(
        lambda m: calls.append("x") or m.to_text(), size=10)
    message = dns.message.make_query("a.example.", "A")
    assert memo(message) == memo(message) == message.to_text()
    assert len(calls) == 1 and memo.hits == 1 and memo.misses == 1


def test_equal_but_distinct_objects_are_computed_separately() -> None:
    memo: IdentityMemo[list[int], int] = IdentityMemo(sum, size=10)
    first, second = [1, 2], [1, 2]
    memo(first)
    memo(second)
    assert memo.misses == 2


def test_shrinking_drops_the_oldest_entries() -> None:
    memo: IdentityMemo[dns.message.Message, int] = IdentityMemo(id, size=100)
    messages = [dns.message.make_query(f"q{i}.example.", "A") for i in range(50)]
    for message in messages:
        memo(message)
    memo.resize(10)
    assert len(memo) == 10
    memo(messages[-1])
    assert memo.hits == 1
    memo(messages[0])
    assert memo.misses == 51


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=30), max_size=200),
       st.integers(min_value=1, max_value=8))
def test_any_access_order_gives_the_function_value_within_the_cap(
        picks: list[int], size: int) -> None:
    objects = [[i, i * 7] for i in range(31)]
    memo: IdentityMemo[list[int], int] = IdentityMemo(sum, size=size)
    for pick in picks:
        assert memo(objects[pick]) == sum(objects[pick])
        assert len(memo) <= size


def test_release_heap_hands_freed_pages_back_where_glibc_can() -> None:
    blocks = [bytes(4_096) + bytes([n % 256]) for n in range(20_000)]  # 80 MB in the C heap
    del blocks
    released = release_heap()
    if platform.libc_ver()[0] == "glibc":
        assert released is True  # free pages to give back: malloc_trim says it gave some
    else:
        assert released is False


def test_collecting_rarely_keeps_thresholds_already_set_and_restores_after_a_failure() -> None:
    import gc

    from auditor.memo import GC_THRESHOLDS, collecting_rarely

    @collecting_rarely
    def run(fail: bool) -> tuple[int, ...]:
        if fail:
            raise RuntimeError("the audit failed")
        return gc.get_threshold()

    before = gc.get_threshold()
    try:
        gc.set_threshold(1000, 5, 5)
        assert run(False) == GC_THRESHOLDS
        assert gc.get_threshold() == (1000, 5, 5)
        with pytest.raises(RuntimeError):
            run(True)
        assert gc.get_threshold() == (1000, 5, 5)
        gc.set_threshold(*GC_THRESHOLDS)  # the command line's: left as they are
        assert run(False) == GC_THRESHOLDS
        assert gc.get_threshold() == GC_THRESHOLDS
    finally:
        gc.set_threshold(*before)
