"""What crosses from ``audit --jobs 2``'s judging process to its reporting process
(``auditor/scale/carry.py``): a message whole once, then by reference while both windows hold
it; the evidence made again there equals the evidence sent, whatever the order of the
responses, the memo segments and the window's size."""

from __future__ import annotations

import dataclasses
import io
import json
import pickle
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditor.capture.sources import CaptureSet
from auditor.engine.caches import Caches
from auditor.engine.limits import Limits
from auditor.engine.stream import EvidenceStream
from auditor.evidence import ResponseEvidence
from auditor.messages import MessageLeftBehind, ObservedMessage
from auditor.scale.carry import (
    CarriedUnpickler,
    CarryingPickler,
    MessageWindow,
    Rebuilder,
    next_unpickler,
)
from auditor.scale.pipe import _FRESH, _RESTART, _Feed
from tests.scale.helpers import assert_same_outputs, lines
from tests.scale.test_jobs import ANCHOR, FIXTURES, SAMPLE, _both


def _evidence(capture: Path) -> tuple[list[ResponseEvidence], Caches]:
    caches = Caches()
    stream = EvidenceStream(ports=frozenset({53}), verify_checksums=False, caches=caches)
    with CaptureSet([str(capture)]) as source:
        found = list(stream.run(source))
    return found, caches


SENT, SENT_CACHES = _evidence(FIXTURES / "seed1-s00033" / "capture.pcap")


def _comparable(evidence: ResponseEvidence) -> tuple[object, ...]:
    """Evidence by value: a parsed message compares by identity, so by its summary and
    problems instead."""
    transaction = evidence.transaction
    return (dataclasses.replace(evidence, transaction=None), _message(transaction.response),
            _message(transaction.query), transaction.response_index, transaction.query_copies,
            transaction.question_mismatch)


def _message(message: ObservedMessage | None) -> tuple[object, ...] | None:
    if message is None:
        return None
    return (dataclasses.replace(message, parsed=None), message.parsed.summary,
            message.parsed.problems)


def _carried(order: list[int], window: int, segments: set[int]
             ) -> tuple[list[ResponseEvidence], CarryingPickler, Rebuilder]:
    """``SENT[i]`` for each ``i`` of ``order``, one per batch, through the two ends; the
    memo restarts before each batch numbered in ``segments``."""
    limits = Limits.file(parse_cache=window)
    buffer = io.BytesIO()
    pickler = CarryingPickler(buffer, limits)
    pickler.facts = SENT_CACHES.facts
    rebuilder = Rebuilder(limits, Caches(limits))
    unpickler = CarriedUnpickler(buffer, rebuilder)
    back: list[ResponseEvidence] = []
    for number, index in enumerate(order):
        if number in segments:
            pickler.clear_memo()
        start = buffer.tell()
        pickler.dump([SENT[index]])
        buffer.seek(start)
        if number in segments:
            unpickler = CarriedUnpickler(buffer, rebuilder)
        back.extend(unpickler.load())
    return back, pickler, rebuilder


def test_the_lab_capture_has_repeats_and_unanswered_queries() -> None:
    keys = [evidence.transaction.response.wire.wire[2:] for evidence in SENT]
    assert len(SENT) > 50 and len(set(keys)) < len(keys)


@settings(max_examples=60, deadline=None)
@given(order=st.lists(st.integers(0, len(SENT) - 1), min_size=1, max_size=80),
       window=st.integers(1, 12), segments=st.sets(st.integers(0, 79), max_size=20))
def test_evidence_comes_back_equal_and_the_windows_stay_in_step(
        order: list[int], window: int, segments: set[int]) -> None:
    back, pickler, rebuilder = _carried(order, window, segments)
    assert [_comparable(e) for e in back] == [_comparable(SENT[index]) for index in order]
    assert rebuilder.parsed_again == 0
    assert pickler.sent_whole <= 2 * len(order)  # at most a response and its query each
    assert len(rebuilder.window) == len(pickler.mirror) <= window


def test_a_repeat_within_the_window_crosses_as_a_reference() -> None:
    keys = [evidence.transaction.response.wire.wire[2:] for evidence in SENT]
    first = next(n for n, key in enumerate(keys) if keys.count(key) > 1)
    again = keys.index(keys[first], first + 1)
    back, pickler, rebuilder = _carried([first, again], 100, {0, 1})
    assert pickler.sent_again >= 1 and rebuilder.parsed_again == 0
    # The repeat is the reporting side's own object, as one process shares it.
    assert back[1].transaction.response.parsed is back[0].transaction.response.parsed
    assert back[1].rrsets is back[0].rrsets


def test_a_responses_records_stay_with_the_judging_process() -> None:
    back, _, _ = _carried([0], 4, {0})
    response: ObservedMessage = back[0].transaction.response
    assert back[0].rrsets == SENT[0].rrsets
    with pytest.raises(MessageLeftBehind):
        _ = response.message


def test_a_querys_records_read_by_the_judging_process_cross_with_it() -> None:
    # The forgery stage reads a query's header from its message, on either side.
    query = SENT[0].transaction.query
    assert query is not None
    header = query.message
    assert header is not None and query.parsed.records_read
    back, _, _ = _carried([0], 4, {0})
    query_back = back[0].transaction.query
    assert query_back is not None and query_back.message == header


def test_a_reference_the_window_lost_is_parsed_again_not_wrong() -> None:
    # The two windows out of step (our own bug) cost a parse, never a different result.
    _, pickler, rebuilder = _carried([0], 4, {0})
    buffer = io.BytesIO()
    again = CarryingPickler(buffer, Limits.file(parse_cache=4))
    again.facts = SENT_CACHES.facts
    again.mirror = pickler.mirror  # believes the reporting side holds the message
    rebuilder.window = MessageWindow(4)  # which has lost it
    again.dump([SENT[0]])
    buffer.seek(0)
    back = CarriedUnpickler(buffer, rebuilder).load()
    assert [_comparable(e) for e in back] == [_comparable(SENT[0])]
    assert rebuilder.parsed_again >= 1


@pytest.mark.parametrize("restarted", [False, True])
def test_a_batch_that_failed_to_pickle_restarts_both_windows(restarted: bool) -> None:
    # live --jobs 2 drops an event that cannot be pickled and sends its batch again: the
    # failed attempt put the message's key in the mirror. Both windows start again
    # (pipe._RESTART), so it crosses whole; without that, as a reference to nothing.
    limits = Limits.live()
    buffer = io.BytesIO()
    pickler = CarryingPickler(buffer, limits)
    pickler.facts = SENT_CACHES.facts
    with pytest.raises(Exception, match="pickle"):
        pickler.dump([SENT[0], lambda: None])
    assert len(pickler.mirror) > 0
    rebuilder = Rebuilder(limits, Caches(limits))
    rebuilder.window.put(b"held before", SENT[1].transaction.response.parsed)
    if restarted:
        pickler.restart()
    buffer.seek(0)
    buffer.truncate()
    pickler.clear_memo()
    pickler.dump([SENT[0]])
    feed = _Feed()
    flag = _RESTART if restarted else _FRESH
    unpickler = next_unpickler(flag, CarriedUnpickler(feed, rebuilder), feed, rebuilder)
    feed.set(memoryview(buffer.getvalue()))
    back = unpickler.load()
    assert [_comparable(e) for e in back] == [_comparable(SENT[0])]  # right either way
    if restarted:
        assert rebuilder.parsed_again == 0 and len(rebuilder.window) == len(pickler.mirror)
    else:
        assert rebuilder.parsed_again >= 1


def test_the_window_ages_out_by_entries_and_by_bytes() -> None:
    window: MessageWindow[int] = MessageWindow(3, max_bytes=10**9)
    for number, key in enumerate((b"a", b"b", b"c")):
        window.put(key, number)
    assert window.get(b"a") == 0  # now the most recent
    window.put(b"d", 3)
    assert window.peek(b"b") is None and len(window) == 3
    small: MessageWindow[int] = MessageWindow(100, max_bytes=1)
    small.put(b"x" * 100, 1)
    small.put(b"y" * 100, 2)
    assert len(small) == 1 and small.peek(b"y" * 100) == 2


def test_two_jobs_equal_one_with_a_window_of_two_messages(tmp_path: Path) -> None:
    one, two = _both(SAMPLE, ANCHOR, tmp_path, limits=Limits.file(parse_cache=2))
    assert_same_outputs(one, two)
    messages = json.loads((two / "stats.json").read_text())["processes"]["messages"]
    assert messages["parsed_again"] == 0
    assert messages["sent_whole"] > 0 and messages["sent_again"] >= 0
    assert len(lines(two / "responses.jsonl")) > 0


def test_pickle_of_an_unpicklable_stand_in_fails_loudly() -> None:
    # The stand-ins exist only to be swapped by the reporting process's unpickler.
    data = io.BytesIO()
    pickler = CarryingPickler(data, Limits.file())
    pickler.facts = SENT_CACHES.facts
    pickler.dump(SENT[0])
    with pytest.raises(AssertionError, match="reporting process's unpickler"):
        pickle.loads(data.getvalue())
