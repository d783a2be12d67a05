"""How many cores this process may use: its CPU affinity, lowered to its control group's CPU
quota (``--jobs 0``, ``live --jobs 0``); and how many a file audit uses by default (one for a
small input)."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from pathlib import Path

from auditor.capture.sources import is_gzip_file

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


SMALL_INPUT_BYTES = 4 << 20
"""Below this many bytes of capture in all, ``audit --jobs 0`` runs in one process: the second
process's fixed costs (its start and imports, the key-pass exchange, the merge, the split tail)
eat what it saves. Measured on the standard benchmark capture (about 220 bytes a frame),
``--jobs 1`` against ``--jobs 2``, two runs each (benchmarks/README.md, "session 13"): the 44 KB
sample 1.32-1.39 against 1.83 s; 1.1 MB 2.5-3.2 s either way; 4.4 MB 7.2-7.8 against 7.1-7.3 s
with half as much CPU again; 8.8 MB 14.4-15.5 against 11.0 s."""


def default_file_jobs(captures: Iterable[str]) -> int:
    """Processes for ``audit --jobs 0``: one when the captures are local, uncompressed files
    of fewer than ``SMALL_INPUT_BYTES`` together, else every core (``default_jobs``). A
    compressed file, a URL or anything else whose capture size is not its size on disk
    counts as large."""
    total = 0
    for capture in captures:
        try:
            total += os.path.getsize(capture)
            compressed = is_gzip_file(capture)
        except (OSError, ValueError):
            return default_jobs()
        if compressed or total >= SMALL_INPUT_BYTES:
            return default_jobs()
    return 1
