"""``audit --jobs N``: the file audit on N worker processes of one machine.

Phase 1 harvests key material from N flow shards in parallel and merges it; phase 2 judges the
same shards with the merged material; this process then runs the finding stages, the
resolution linker and the reports over the shards' items merged in capture order (the stages
that compare flows: spoofing, races, hold-on, cross-checks, zone health, resolution).
"""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

from auditor.pipeline import (
    AuditOptions,
    AuditOutcome,
    EvidenceStream,
    Rendered,
    RunJudge,
    run_audit,
)
from auditor.scale.merge import replay
from auditor.scale.work import Harvest, Judged, ShardSpec, harvest, judge_shard
from auditor.trust import KeyMaterial
from auditor.trust.material import MaterialSnapshot

T = TypeVar("T")
Mapper = Callable[[Callable[[ShardSpec], T], Sequence[ShardSpec]], list[T]]
"""Runs a task over every shard and returns the results in shard order (a process pool's or
a Dask client's ``map``)."""


def default_jobs() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class ShardedJudging:
    """``JudgedElsewhere`` for ``run_audit``: both phases over ``shards`` flow shards, run by
    ``mapper``."""

    def __init__(self, options: AuditOptions, shards: int, mapper: Mapper[Any],
                 spool_dir: str | None) -> None:
        self.specs = [ShardSpec(options, index, shards, spool_dir) for index in range(shards)]
        self._map = mapper
        self._material: MaterialSnapshot | None = None
        self.results: list[Judged] = []

    def key_material(self) -> tuple[KeyMaterial, int]:
        """Phase 1 and the merge of its snapshots."""
        harvests: list[Harvest] = self._map(harvest, self.specs)
        material = KeyMaterial.merged(found.material for found in harvests)
        self._material = material.snapshot()
        return material, sum(found.parsed for found in harvests)

    def judged(self, source: Any, stream: EvidenceStream, judge: RunJudge) -> Iterator[Rendered]:
        """Phase 2, then the merge."""
        assert self._material is not None, "key_material() first"
        task = functools.partial(judge_shard, material=self._material)
        self.results = self._map(task, self.specs)
        try:
            yield from replay(self.results, source, stream, judge)
        finally:
            for result in self.results:
                result.discard()


def run_jobs(options: AuditOptions, jobs: int) -> AuditOutcome:
    """The audit on ``jobs`` processes; one process (``run_audit`` as is) for ``jobs`` 1 or
    standard input, which cannot be read twice."""
    if jobs <= 1 or "-" in options.captures:
        return run_audit(options)
    with (ProcessPoolExecutor(max_workers=jobs) as pool,
          tempfile.TemporaryDirectory(prefix="auditor-shards-") as spool):
        def mapper(task: Callable[[ShardSpec], T], specs: Sequence[ShardSpec]) -> list[T]:
            return list(pool.map(task, specs))

        return run_audit(options, ShardedJudging(options, jobs, mapper, spool))


SMALL_INPUT = 8 << 20
"""Below this many bytes of capture (about 40,000 frames) worker start-up and the merge cost
more than a second core saves: the default ``--jobs`` audits them in one process."""


def jobs_for(captures: tuple[str, ...]) -> int:
    """The default ``--jobs``: every core, one for small inputs and standard input."""
    if "-" in captures:
        return 1
    try:
        size = sum(os.path.getsize(path) for path in captures)
    except OSError:
        return 1  # a missing file: one process reports it as it always has
    return default_jobs() if size >= SMALL_INPUT else 1
