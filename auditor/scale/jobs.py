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
import math
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
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


CGROUP_ROOT = Path("/sys/fs/cgroup")
"""Where the kernel shows this process's control groups."""


def default_jobs(cgroups: Path = CGROUP_ROOT, membership: Path = Path("/proc/self/cgroup"),
                 ) -> int:
    """The cores this process may run on: its CPU affinity, lowered to its control group's
    CPU quota where one is set. A container started with ``--cpus=2`` on a 16-core host sees
    16 CPUs in its affinity but gets the time of 2; counting 16 would start up to 8 key-pass
    processes on 2 cores' worth of time (slower than 2, and 8 processes' memory)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    quota = cgroup_cpu_quota(cgroups, membership)
    return cores if quota is None else max(1, min(cores, math.ceil(quota)))


def cgroup_cpu_quota(cgroups: Path = CGROUP_ROOT,
                     membership: Path = Path("/proc/self/cgroup")) -> float | None:
    """CPUs' worth of time this process's control group may use (quota / period), or None
    where no quota is set or none can be read. cgroup v2: ``cpu.max`` ("max 100000" or
    "200000 100000"); v1: ``cpu.cfs_quota_us`` (-1: none) over ``cpu.cfs_period_us``. The
    group's own directory is read, then the root (inside a container, its own group)."""
    v2, v1 = _cgroup_paths(membership)
    for directory in (cgroups / v2.lstrip("/"), cgroups) if v2 is not None else ():
        found = _read(directory / "cpu.max")
        if found is not None:
            quota, _, period = found.partition(" ")
            return _ratio(quota, period)
    for directory in _v1_directories(cgroups, v1):
        microseconds = _read(directory / "cpu.cfs_quota_us")
        if microseconds is not None:
            return _ratio(microseconds, _read(directory / "cpu.cfs_period_us") or "")
    return None


def _cgroup_paths(membership: Path) -> tuple[str | None, str | None]:
    """This process's cgroup v2 path and cgroup v1 ``cpu`` controller path, where listed
    (``/proc/self/cgroup`` lines: ``0::PATH``; ``N:cpu,cpuacct:PATH``)."""
    v2 = v1 = None
    for line in (_read(membership) or "").splitlines():
        number, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if number == "0" and controllers == "":
            v2 = path
        elif "cpu" in controllers.split(","):
            v1 = path
    return v2, v1


def _v1_directories(cgroups: Path, path: str | None) -> list[Path]:
    """Where a cgroup v1 ``cpu`` controller's files may be: its group's directory, then the
    controller's root, under each name the controller is mounted as."""
    found = []
    for mount in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
        if path is not None:
            found.append(cgroups / mount / path.lstrip("/"))
        found.append(cgroups / mount)
    return found


def _ratio(quota: str, period: str) -> float | None:
    """quota / period, None for no quota ("max", -1) or anything unreadable."""
    try:
        over, per = int(quota), int(period)
    except ValueError:
        return None
    return over / per if over > 0 and per > 0 else None


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


class ShardedJudging:
    """``JudgedElsewhere`` for ``run_audit``: both phases over ``shards`` flow shards, started
    by ``submit``. With a ``spool_dir`` the merge reads each shard's items as the worker
    writes them, so merging overlaps judging."""

    def __init__(self, options: AuditOptions, shards: int, submit: Submit,
                 spool_dir: str | None) -> None:
        self.specs = [ShardSpec(options, index, shards, spool_dir) for index in range(shards)]
        self._limits = options.limits
        self._submit = submit
        self._material: MaterialSnapshot | None = None

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
