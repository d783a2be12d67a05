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
import os
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from auditor.engine.build import merged_key_material
from auditor.engine.judge import Rendered, RunJudge
from auditor.engine.stream import EvidenceStream
from auditor.pipeline import AuditOptions, AuditOutcome, run_audit
from auditor.scale.merge import replay
from auditor.scale.work import Harvest, Item, ShardSpec, harvest, judge_shard, spooled_items
from auditor.trust import KeyMaterial
from auditor.trust.material import MaterialSnapshot


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
        self._on_closed = on_closed
        """Called once the JSON Lines outputs are whole (``outputs_closed``)."""

    def key_material(self) -> tuple[KeyMaterial, int]:
        """Phase 1 and the merge of its snapshots, capped by the run's ``Limits``."""
        pending = [self._submit(harvest, spec) for spec in self.specs]
        harvests: list[Harvest] = [task.result() for task in pending]
        material = merged_key_material(self._limits, (found.material for found in harvests))
        self._material = material.snapshot()
        return material, sum(found.parsed for found in harvests)

    def judged(self, source: Any, stream: EvidenceStream, judge: RunJudge) -> Iterator[Rendered]:
        """Phase 2 and the merge."""
        assert self._material is not None, "key_material() first"
        task = functools.partial(judge_shard, material=self._material)
        pending = [self._submit(task, spec) for spec in self.specs]
        streams = [_following(spec.spool, job) if spec.spool is not None else _after(job)
                   for spec, job in zip(self.specs, pending, strict=True)]
        try:
            yield from replay(streams, lambda: [job.result() for job in pending], source,
                              stream, judge)
        finally:
            for job in pending:
                if job.done() and not _failed(job):
                    job.result().discard()


    def outputs_closed(self) -> None:
        """Start what reads the JSON Lines back (``on_closed``)."""
        if self._on_closed is not None:
            self._on_closed()


def _failed(job: Pending) -> bool:
    try:
        job.result()
    except Exception:  # reported where the result was first asked for
        return True
    return False


def _after(job: Pending) -> Iterator[Item]:
    """A shard's items once its task has ended."""
    yield from job.result().items()


def _following(path: str, job: Pending) -> Iterator[Item]:
    """A shard's items as its worker writes them to ``path``."""
    with io.BufferedReader(_Growing(path, job), 1 << 20) as spool:
        yield from spooled_items(spool)


class _Growing(io.RawIOBase):
    """A spool file being written: a read waits for more bytes until the worker has ended
    (then the end of the file is the end), and raises the worker's exception if it failed."""

    POLL_S = 0.002

    def __init__(self, path: str, job: Pending) -> None:
        super().__init__()
        self._path = path
        self._job = job
        self._file: io.FileIO | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while True:
            ended = self._job.done()
            if self._file is None and os.path.exists(self._path):
                self._file = io.FileIO(self._path, "rb")
            if self._file is not None:
                count = self._file.readinto(buffer)
                if count:
                    return count
            if ended:
                self._job.result()  # the worker's exception, if it failed
                if self._file is None:
                    return 0
                return self._file.readinto(buffer) or 0
            time.sleep(self.POLL_S)

    def close(self) -> None:
        if self._file is not None:
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
