"""The sending and receiving ends shared by the two-process splits (``audit --jobs 2``:
``scale/reporting.py``; ``live --jobs 2``: ``scale/live.py``): events pickled in batches with a
shared memo, queued in a bounded outbox that a thread sends, read back by one unpickler per
memo segment; and how the first process learns that the second one failed."""

from __future__ import annotations

import io
import multiprocessing
import multiprocessing.connection
import pickle
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from enum import IntEnum
from typing import Any, Generic, TypeVar

from auditor.errors import ProcessLost
from auditor.scale.pickling import DataclassPickler

Connection = multiprocessing.connection.Connection

POLL_S = 0.5
"""How often a wait for the other process checks that it is still alive."""
SHARED_EVENTS = 32_768
"""Events pickled with one pickler memo: an object sent again within them (a repeated
answer's parsed records, a cached verdict and its fields) crosses as a reference and is the
same object on the other side, so the reporting process's identity memos hit as they do in
one process; then both memos restart, so neither side keeps every object alive. Measured on
60,000 frames of the benchmark capture: the reporting process's CPU 9.1 s against 10.8 with
no sharing (8,192 events: 10.7), for about 160 MB more RSS over both processes."""
SHARED_BYTES = 16 << 20
"""The memo also restarts after this many pickled bytes, so a flood of large distinct
answers cannot make the memos (which keep what they saw alive) large."""
_FRESH, _SHARED, _RESTART = b"F", b"C", b"R"
"""First byte of a message: its batch starts a new memo, continues the last one, or starts a
new memo and empties the message window (``scale/carry.py``: after a batch failed to pickle,
so the two windows are in step again)."""


class ReporterFailed(ProcessLost):
    """The reporting process ended without finishing the run (a crash, a kill)."""


class _Outbox:
    """Pickled batches waiting for the reporting process, sent by a thread (a full pipe blocks
    the thread, not the capture), at most ``max_bytes`` of them unless forced."""

    def __init__(self, conn: Connection, max_bytes: int) -> None:
        self._conn = conn
        self.max_bytes = max_bytes
        self.queued_bytes = 0
        self.peak_bytes = 0
        self.error: BaseException | None = None
        """Why sending failed (the reporting process is gone)."""
        self._items: deque[bytes] = deque()
        self._closed = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="reporter-link", daemon=True)
        self._thread.start()

    @property
    def full(self) -> bool:
        """Whether the queue holds ``max_bytes`` or more."""
        return self.queued_bytes >= self.max_bytes

    def put(self, data: bytes, *, wait: bool, alive: Callable[[], bool]) -> float:
        """Queue ``data``; with ``wait``, first wait while the queue is full (and the reporting
        process alive). Returns the seconds waited."""
        started = time.monotonic()
        with self._cond:
            while wait and self.full and self.error is None and alive():
                self._cond.wait(POLL_S)
            self._items.append(data)
            self.queued_bytes += len(data)
            self.peak_bytes = max(self.peak_bytes, self.queued_bytes)
            self._cond.notify_all()
        return time.monotonic() - started

    def close(self, alive: Callable[[], bool]) -> None:
        """Send what is queued (while the reporting process lives), then stop."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        while self._thread.is_alive() and alive():
            self._thread.join(POLL_S)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._items and not self._closed:
                    self._cond.wait()
                if not self._items:
                    return
                data = self._items[0]
            try:
                self._conn.send_bytes(data)
            except (OSError, ValueError) as exc:  # the reporting process is gone
                with self._cond:
                    self.error = exc
                    self._items.clear()
                    self.queued_bytes = 0
                    self._cond.notify_all()
                return
            with self._cond:
                self._items.popleft()
                self.queued_bytes -= len(data)
                self._cond.notify_all()

E = TypeVar("E", bound=IntEnum)
"""The event kinds of one split."""


class EventLink(ABC, Generic[E]):
    """The first process's end of a split: ``_add`` batches events, ``_pickle_once`` pickles a
    batch with the memo shared over ``SHARED_EVENTS`` events, ``_receive`` waits for the second
    process's answers and ``_failed`` says why it is gone. Subclasses send (``send``) and word
    the failure (``_failure_text``)."""

    batch_events = 1_024
    """Events per pickled batch at most."""

    def __init__(self, process: multiprocessing.process.BaseProcess, events: Connection,
                 results: Connection, queue_bytes: int) -> None:
        self._process = process
        self._events = events
        self._results = results
        self._outbox = _Outbox(events, queue_bytes)
        self._batch: list[tuple[E, Any]] = []
        self._buffer = io.BytesIO()
        self._pickler = self._new_pickler(self._buffer)
        self._segment = 0
        """Events pickled with the current memo."""
        self._segment_bytes = 0
        self._restart = False
        """The next batch starts a new memo and empties the message window."""
        self.batches = 0
        self.bytes_sent = 0
        self.waited_s = 0.0

    def _new_pickler(self, buffer: io.BytesIO) -> pickle.Pickler:
        """The pickler of every batch (the second process's unpickler must match it)."""
        return DataclassPickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)

    def _alive(self) -> bool:
        return self._process.is_alive()

    def _add(self, kind: E, payload: Any) -> None:
        self._batch.append((kind, payload))
        if len(self._batch) >= self.batch_events:
            self.send()

    @abstractmethod
    def send(self) -> None:
        """Pickle the batch and queue it."""

    def _pickle_once(self, batch: list[tuple[E, Any]]) -> bytes:
        """One message: the memo flag, then the batch pickled with the shared memo (objects
        sent again within ``SHARED_EVENTS`` events or ``SHARED_BYTES`` cross as references)."""
        buffer = self._buffer
        buffer.seek(0)
        buffer.truncate()
        if self._segment == 0:
            self._pickler.clear_memo()
            buffer.write(_RESTART if self._restart else _FRESH)
            self._restart = False
        else:
            buffer.write(_SHARED)
        self._pickler.dump(batch)
        data = buffer.getvalue()
        self._segment += len(batch)
        self._segment_bytes += len(data)
        if self._segment >= SHARED_EVENTS or self._segment_bytes >= SHARED_BYTES:
            self._segment = self._segment_bytes = 0
        return data

    def _receive(self) -> tuple[str, Any]:
        """The second process's next answer; raise if it ends without one."""
        while not self._results.poll(POLL_S):
            if not self._alive() and not self._results.poll(0):
                raise self._failed(None)
        try:
            answer: tuple[str, Any] = self._results.recv()
        except (EOFError, OSError) as exc:
            raise self._failed(None) from exc
        return answer

    def _failed(self, said: str | None) -> ReporterFailed:
        self._process.join(POLL_S)
        detail = f": {said.strip()}" if said else ""
        return ReporterFailed(self._failure_text(self._process.pid,
                                                 how_it_ended(self._process.exitcode), detail))

    @abstractmethod
    def _failure_text(self, pid: int | None, how: str, detail: str) -> str:
        """What the error says when the second process is gone."""

    def abort(self) -> None:
        """The first process failed: stop feeding the second one, which then closes its
        outputs with what it received; end it if it does not exit."""
        self._outbox.close(lambda: False)
        self._events.close()
        self._process.join(10)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join()


class _Feed:
    """The file an ``Unpickler`` reads: the current message, swapped for each batch, so one
    unpickler (and its memo) reads a whole segment of messages."""

    def __init__(self) -> None:
        self._view = memoryview(b"")
        self._at = 0

    def set(self, view: memoryview) -> None:
        """Read ``view`` next."""
        self._view = view
        self._at = 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._view) if size < 0 else min(len(self._view), self._at + size)
        data = self._view[self._at:end].tobytes()
        self._at = end
        return data

    def readinto(self, buffer: memoryview) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def readline(self) -> bytes:
        rest = self._view[self._at:].tobytes()
        end = rest.find(b"\n") + 1 or len(rest)
        self._at += end
        return rest[:end]


def how_it_ended(exitcode: int | None) -> str:
    """A process's end in words, from its ``exitcode`` (None: it has not ended)."""
    if exitcode is None:
        return "still running"
    return f"killed by signal {-exitcode}" if exitcode < 0 else f"exit status {exitcode}"


def fork_second(target: Callable[..., None], name: str, *args: Any,
                ) -> tuple[multiprocessing.process.BaseProcess, Connection, Connection]:
    """Fork the second process of a split: ``target(*args, events, results, parents)`` runs
    there; here, the process, the events pipe's writing end and the results pipe's reading
    end (the ends each side does not use are closed on its side)."""
    context = multiprocessing.get_context("fork")  # the child shares the imported modules
    events_read, events_write = context.Pipe(duplex=False)
    results_read, results_write = context.Pipe(duplex=False)
    process = context.Process(target=target, name=name,
                              args=(*args, events_read, results_write,
                                    (events_write, results_read)))
    process.start()
    events_read.close()
    results_write.close()
    return process, events_write, results_read
