"""Bounded memory: a memo of a pure function of an object, keyed by the object's identity,
handing the heap that released state freed back to the operating system, and when the cyclic
garbage collector runs."""

from __future__ import annotations

import ctypes
import functools
import gc
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, ParamSpec, TypeVar

Obj = TypeVar("Obj")
Value = TypeVar("Value")
Params = ParamSpec("Params")


class IdentityMemo(Generic[Obj, Value]):
    """Remembers ``compute(obj)`` for the most recently used objects, by ``id(obj)``.

    Identical messages share their parsed records (``messages.ParsedMessage``), so a value
    derived from an immutable dnspython object (its canonical wire form, a key tag, a digest) is
    computed once per object instead of once per packet. Each entry holds the object itself,
    so its id cannot be reused by another object while the entry lives; hashing by id is
    O(1), unlike hashing dnspython rdata (which renders them to wire form each time).
    Only use it for objects that are never mutated after parsing.
    """

    __slots__ = ("_compute", "_entries", "_size", "hits", "misses")

    def __init__(self, compute: Callable[[Obj], Value], size: int) -> None:
        self._compute = compute
        self._entries: OrderedDict[int, tuple[Obj, Value]] = OrderedDict()
        self._size = max(1, size)
        self.hits = 0
        """Lookups answered from the memo."""
        self.misses = 0
        """Lookups that computed the value."""

    def __call__(self, obj: Obj) -> Value:
        key = id(obj)
        entry = self._entries.get(key)
        if entry is not None and entry[0] is obj:
            self.hits += 1
            return entry[1]
        self.misses += 1
        value = self._compute(obj)
        self._entries[key] = (obj, value)
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)  # oldest inserted goes first
        return value

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Forget every entry (the cap stays)."""
        self._entries.clear()

    def resize(self, size: int) -> None:
        """Change the cap, dropping the oldest entries over it."""
        self._size = max(1, size)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)


def release_heap() -> bool:
    """Return the C heap's free pages to the operating system (glibc ``malloc_trim(0)``);
    False where the C library has no such call (musl, macOS, Windows).

    Freed Python objects larger than 512 bytes (message bytes, dict tables) go back to the C
    heap, which keeps their pages: after the judging state is released the process still
    holds them, and what the reports allocate next (Arrow buffers, pandas) comes on top
    (a 100,000-frame names flood: 227 -> 213 MB after release).
    """
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError, TypeError):
        return False
    return bool(trim(0))


GC_THRESHOLDS = (2_000_000, 1, 1)
"""The cyclic collector's thresholds for a run: it runs only after the tracked objects grew by
2,000,000 since its last run (CPython counts allocations net of deallocations), and then
collects every generation within two runs. The audit keeps hundreds of thousands of long-lived
objects in bounded caches and makes no reference cycles per frame (a collection every 3 s of a
200,000-frame audit found 198 cyclic objects in all, one-off engine objects), so each
collection is a full scan that finds almost nothing: with CPython's (700, 10, 10) the
collector took about a fifth of live mode's CPU (3.8 s of 19.7 on 60,000 frames), and with
(100_000, 50, 100) still 2.8 s of a 55 s one-process audit of 200,000 frames and 7.3 s of
``--jobs 2``'s two processes, whose pickled batches are long-lived objects made in bursts
(benchmarks/README.md, "the collector"). One process's caches plateau below it (a
1,000,000-frame audit: 0.85 s of collection, mostly the explicit one before the reports);
``--jobs 2``'s reporting process, which also holds a segment of loaded batches, crosses it a
few times (1.8 s over 1,000,000 frames). A leak of cycles would still be collected, every
2,000,000 objects."""


def tune_garbage_collector() -> None:
    """Move everything imported so far out of the collector's sight and collect rarely (the
    command line does it at start; a Dask worker before its first task: ``scale/dask.py``)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def skip_collection_at_exit() -> None:
    """The command is over and its outputs closed: move what is left out of the collector's
    sight, so the interpreter's last collection does not walk it. Left for it were the
    ``--jobs 2`` link's objects (its pickler's memo segment, the outbox and its thread, in
    reference cycles), about 635,000 at 1,000,000 frames: 1.6 s of a run's wall time after
    everything was written. Objects in cycles are then never finalized; the process ends,
    every output was closed explicitly and the system closes its descriptors."""
    gc.freeze()


def collector_tuned() -> bool:
    """Whether this process's collector runs with the run's thresholds."""
    return gc.get_threshold() == GC_THRESHOLDS


def collecting_rarely(run: Callable[Params, Value]) -> Callable[Params, Value]:
    """``run`` (an audit's entry point: ``run_audit``, ``run_pipelined``, ``run_on_dask``,
    ``run_live``) with the run's thresholds (``GC_THRESHOLDS``) while it lasts, when its caller
    has not set them (the command line has: ``tune_garbage_collector``), and the caller's
    restored after. A program calling the audit as a library otherwise ran it with CPython's
    (700, 10, 10): a 1,000,000-frame ``--jobs 2`` audit took 375 s instead of about 156, a full
    collection every 2-3 s; 200,000 frames with one process 69.8 s instead of 49.7
    (benchmarks/README.md, "session 12"). Nothing is frozen: the
    caller's objects stay the caller's, scanned by the rare full collections. A process forked
    inside ``run`` (``--jobs 2``'s reporting process) inherits the thresholds."""
    @functools.wraps(run)
    def with_thresholds(*args: Params.args, **kwargs: Params.kwargs) -> Value:
        if collector_tuned():
            return run(*args, **kwargs)
        before = gc.get_threshold()
        gc.set_threshold(*GC_THRESHOLDS)
        try:
            return run(*args, **kwargs)
        finally:
            gc.set_threshold(*before)

    return with_thresholds
