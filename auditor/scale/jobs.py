"""Flow-sharded judging of a file audit (``audit --scheduler``: Dask tasks), and the entry
point of ``audit --jobs N`` (which pipelines one audit over two processes instead:
``scale/reporting.py``).

Phase 1 harvests key material from N flow shards in parallel and merges it; phase 2 judges the
same shards with the merged material, rendering each response's record and deriving what the
forgery stage reads of a response alone; this process then runs the finding stages, the
resolution linker and the reports over the shards' items merged in capture order (the stages
that compare flows: spoofing, races, hold-on, cross-checks, zone health, resolution).
"""

from __future__ import annotations

import functools
import io
import logging
import os
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from auditor.engine.build import merged_key_material
from auditor.engine.judge import Rendered, RunJudge
from auditor.engine.stream import EvidenceStream
from auditor.errors import AuditorError
from auditor.pipeline import AuditOptions, AuditOutcome, run_audit
from auditor.scale.merge import replay
from auditor.scale.work import (
    Harvest,
    Item,
    Judged,
    OrderKey,
    ShardSpec,
    harvest,
    judge_shard,
    spooled_items,
)
from auditor.trust import KeyMaterial
from auditor.trust.material import MaterialSnapshot

logger = logging.getLogger(__name__)


class Pending(Protocol):
    """A task's future result (``concurrent.futures.Future``, ``distributed.Future``)."""

    def result(self) -> Any:
        """Wait for the result; raise the task's exception if it failed."""
        ...

    def done(self) -> bool:
        """Whether the task has ended."""
        ...


Submit = Callable[[Callable[[ShardSpec], Any], ShardSpec], Pending]
"""Starts a task on one shard (a process pool's or a Dask client's ``submit``)."""


class ShardedJudging:
    """``JudgedElsewhere`` for ``run_audit``: both phases over ``shards`` flow shards, started
    by ``submit``. With a ``spool_dir`` the merge reads each shard's items as the worker
    writes them, so merging overlaps judging."""

    def __init__(self, options: AuditOptions, shards: int, submit: Submit,
                 spool_dir: str | None, run: str = "",
                 on_closed: Callable[[], None] | None = None) -> None:
        self.specs = [ShardSpec(options, index, shards, spool_dir, run=run)
                      for index in range(shards)]
        self._limits = options.limits
        self._submit = submit
        self._material: MaterialSnapshot | None = None
        self._progress = options.progress
        """Whether to show a progress bar per phase (standard error is a terminal)."""
        self._frames = 0
        """Frames of the merged input, once phase 1 counted them."""
        self._on_closed = on_closed
        """Called once the JSON Lines outputs are whole (``outputs_closed``)."""
        self._restarted: list[int] = []
        """The shards whose judging task was started again (a worker lost), once each time."""

    def key_material(self) -> tuple[KeyMaterial, int]:
        """Phase 1 and the merge of its snapshots, capped by the run's ``Limits``."""
        pending = [self._submit(harvest, spec) for spec in self.specs]
        with _bar(self._progress, len(pending), "harvesting", "shard") as bar:
            harvests: list[Harvest] = []
            for task in pending:
                harvests.append(task.result())
                bar.update(1)
        self._frames = max((found.frames for found in harvests), default=0)
        material = merged_key_material(self._limits, (found.material for found in harvests))
        self._material = material.snapshot()
        return material, sum(found.parsed for found in harvests)

    def judged(self, source: Any, stream: EvidenceStream, judge: RunJudge) -> Iterator[Rendered]:
        """Phase 2 and the merge."""
        assert self._material is not None, "key_material() first"
        task = functools.partial(judge_shard, material=self._material)
        pending = [self._submit(task, spec) for spec in self.specs]
        streams = [_following(spec, job, self._restarted.append) if spec.spool_dir is not None
                   else _after(job) for spec, job in zip(self.specs, pending, strict=True)]
        merge = _MergePosition()
        try:
            with _bar(self._progress, self._frames, "judging", "frame") as bar:
                watched = [merge.watch(items) for items in streams] if self._progress else streams
                merged = replay(watched, lambda: [job.result() for job in pending], source,
                                stream, judge)
                for count, rendered in enumerate(merged):
                    if count % PROGRESS_EVERY == 0:
                        bar.update(max(0, merge.position - bar.n))
                    yield rendered
                bar.update(max(0, self._frames - bar.n))
        finally:
            for job in pending:
                if job.done() and not _failed(job):
                    job.result().discard()

    def outputs_closed(self) -> None:
        """Start what reads the JSON Lines back (``on_closed``)."""
        if self._on_closed is not None:
            self._on_closed()

    @property
    def processes(self) -> dict[str, Any]:
        """``stats.json`` ``processes`` of a sharded run: the flow shards, and the judging
        tasks started again after their worker was lost (the merge went on in the new
        attempt; a warning said so, which ``-q`` does not show)."""
        return {"shards": len(self.specs), "attempts_restarted": len(self._restarted),
                "shards_restarted": sorted(set(self._restarted))}


PROGRESS_EVERY = 1024
"""Merged responses between two updates of the judging phase's progress bar."""


class _MergePosition:
    """The frame position of the last item the merge took from any shard (they come in
    capture order: where the merge has got to)."""

    def __init__(self) -> None:
        self.position = 0

    def watch(self, items: Iterator[Item]) -> Iterator[Item]:
        for item in items:
            self.position = item[0][0]
            yield item


def _bar(enabled: bool, total: int, what: str, unit: str) -> Any:
    """A tqdm bar on standard error when ``enabled`` (``AuditOptions.progress``), else one that
    shows nothing: a cluster run took hours without a word."""
    from tqdm import tqdm

    return tqdm(total=total, desc=what, unit=unit, unit_scale=unit == "frame", leave=False,
                disable=not enabled)


def _failed(job: Pending) -> bool:
    try:
        job.result()
    except Exception:  # reported where the result was first asked for
        return True
    return False


def _after(job: Pending) -> Iterator[Item]:
    """A shard's items once its task has ended."""
    yield from job.result().items()


def _following(spec: ShardSpec, job: Pending,
               restarted: Callable[[int], None] = lambda shard: None) -> Iterator[Item]:
    """A shard's items as its worker writes them to its spool. When the cluster starts the
    task again (its worker was lost), the new attempt writes a spool of its own: the items
    already merged are skipped there, after checking that it gave the same ones up to that
    point (judging is deterministic, but the pickled bytes of two attempts are not: one may
    take the harvest its process kept, the other parse afresh)."""
    merged = 0
    last: OrderKey | None = None
    tried: set[str] = set()
    while True:
        path = _next_attempt(spec, job, tried)
        tried.add(path)
        try:
            seen = 0
            with io.BufferedReader(_Growing(path, spec, job, tried), 1 << 20) as spool:
                for item in spooled_items(spool):
                    seen += 1
                    if seen <= merged:
                        if seen == merged and item[0] != last:
                            raise _diverged(spec, seen)
                        continue
                    merged += 1
                    last = item[0]
                    yield item
            if seen < merged:
                raise _diverged(spec, seen)
            return
        except _Superseded:
            restarted(spec.index)
            logger.warning("shard %d: its judging task started again (worker lost); the new "
                           "attempt's items past the %d already merged follow", spec.index,
                           merged)


def _diverged(spec: ShardSpec, item: int) -> AuditorError:
    """What stops the merge when a shard's new attempt does not repeat what was merged."""
    return AuditorError(f"shard {spec.index}: the task started again after its worker was "
                        f"lost gave other items than the first attempt (item {item}): the "
                        f"audit cannot go on")


class _Superseded(Exception):  # noqa: N818 - a signal between two functions here, not an error
    """The spool being read was left by a lost attempt: another attempt's is the one to read."""


def _next_attempt(spec: ShardSpec, job: Pending, tried: set[str]) -> str:
    """The spool to read next: the finished task's, else the newest attempt's not yet tried
    (waiting for one to appear); raises the task's exception if it failed."""
    while True:
        if job.done():
            result: Judged = job.result()  # the task's exception, if it failed
            if result.spool is None or result.spool in tried:
                raise AuditorError(f"shard {spec.index}: its spool was not found again")
            if not os.path.exists(result.spool):
                # A worker on another host wrote it to a disk of its own: without this, the
                # shard's items were silently missing from the outputs.
                raise AuditorError(
                    f"shard {spec.index}: its worker wrote what it judged to "
                    f"{result.spool}, which this process cannot see: the output directory "
                    f"must be on a store the client and every worker share (README, "
                    f"\"Several cores, a Dask cluster\")")
            return result.spool
        fresh = [path for path in spec.attempts() if path not in tried]
        if fresh:
            return fresh[-1]
        time.sleep(_Growing.LIST_S)


class _Growing(io.RawIOBase):
    """A spool file being written: a read waits for more bytes while its attempt may still
    write them. It raises ``_Superseded`` when another attempt took over (a newer spool of the
    shard appeared, or the task ended with another), and the worker's exception if it failed."""

    POLL_S = 0.002
    """How often a read at the end of the spool looks for more bytes."""
    LIST_S = 0.05
    """How often it lists the spool directory for another attempt (a shared store may be slow
    to list, and the cluster takes seconds to see a worker lost)."""

    def __init__(self, path: str, spec: ShardSpec, job: Pending, tried: set[str]) -> None:
        super().__init__()
        self._path = path
        self._spec = spec
        self._job = job
        self._tried = tried
        self._file = io.FileIO(path, "rb")
        self._listed = time.monotonic()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while True:
            ended = self._job.done()
            count = self._file.readinto(buffer)
            if count:
                return count
            if ended:
                result: Judged = self._job.result()  # the worker's exception, if it failed
                if result.spool != self._path:
                    raise _Superseded(self._path)
                return self._file.readinto(buffer) or 0
            if time.monotonic() - self._listed >= self.LIST_S:
                self._listed = time.monotonic()
                if any(path not in self._tried for path in self._spec.attempts()):
                    raise _Superseded(self._path)
            time.sleep(self.POLL_S)

    def close(self) -> None:
        self._file.close()
        super().close()


def run_jobs(options: AuditOptions, jobs: int) -> AuditOutcome:
    """The audit on ``jobs`` processes: two or more pipeline it (``scale/reporting.py``:
    the key pass split over ``jobs`` processes, at most ``KEY_PASS_MAX``, then judging here,
    reporting in a second process); one process (``run_audit`` as is) for ``jobs`` 1 or
    standard input, which cannot be read twice."""
    if jobs <= 1 or "-" in options.captures:
        return run_audit(options)
    from auditor.scale.reporting import run_pipelined

    return run_pipelined(options, jobs)
