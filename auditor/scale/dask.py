"""``audit --scheduler``: the file audit on a Dask cluster.

The same two phases as ``--jobs``, as Dask tasks: every worker harvests the key material of one
flow shard of all the captures, the client merges it, every worker judges its shard with the
merged material, spooling what it judged into the output directory (which every worker must
reach: a shared store), and the client merges those spools in capture order as they grow,
runs the finding stages, writes the reports, the partitioned dataset and the key cache (once,
here). Shards
are flows, not files: rotated pieces cut TCP streams and query/answer pairs at their
boundaries, which a per-file task would judge differently from one process.

Captures are read through fsspec: local paths and globs as they are; other URLs
(``s3://...``, ``gs://...``, with the filesystem package installed) are copied once per host
and run into a local cache keeping their base names (the names the reports cite), which the
run removes from every worker when it ends.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import logging
import os
import posixpath
import shutil
import socket
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TypeVar

from auditor.errors import CaptureError, ConfigError, ProcessLost
from auditor.memo import collecting_rarely, collector_tuned, tune_garbage_collector
from auditor.pipeline import AuditOptions, AuditOutcome, run_audit
from auditor.report.partitioned import write_partitioned
from auditor.scale.jobs import Pending, ShardedJudging
from auditor.scale.work import ShardSpec, forget_key_passes, harvest

T = TypeVar("T")
logger = logging.getLogger(__name__)

LOCAL_PREFIX = "local:"
"""``--scheduler local:N``: a LocalCluster of N single-threaded worker processes."""
SHARDS_PER_WORKER = 1
"""Flow shards per worker thread (each shard reads every frame, so more shards cost reading)."""
WORKER_CACHE = "dnssec-auditor-captures"
"""Where a worker keeps its copies of remote captures: ``$TMPDIR/WORKER_CACHE/RUN`` (one
directory per run, removed when the run ends: ``_drop_worker_cache``)."""


def expand_captures(captures: Sequence[str]) -> tuple[str, ...]:
    """Every capture a path, URL or glob names, globs sorted, in the order given; a name that
    matches nothing is kept, so the audit reports it as missing."""
    import fsspec.core

    found: list[str] = []
    for given in captures:
        if not any(sign in given for sign in "*?["):
            found.append(given)
            continue
        fs, _, paths = fsspec.core.get_fs_token_paths(given)
        if not paths:
            found.append(given)
            continue
        local = "file" in _protocols(fs)
        found.extend(sorted(path if local else fs.unstrip_protocol(path) for path in paths))
    return tuple(found)


def _protocols(fs: Any) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)


def is_remote(path: str) -> bool:
    """Whether ``path`` is an fsspec URL of a filesystem other than the local one."""
    return "://" in path and not path.startswith("file://")


def localised(captures: Sequence[str], cache_dir: str) -> tuple[str, ...]:
    """Local paths of the captures: remote URLs are fetched once into ``cache_dir`` (their
    base names kept: ``_fetched``), local paths stay as given."""
    paths = []
    for capture in captures:
        if not is_remote(capture):
            paths.append(capture.removeprefix("file://"))
            continue
        try:
            paths.append(_fetched(capture, cache_dir))
        except (OSError, ValueError) as exc:
            raise CaptureError(capture, f"cannot fetch: {exc}") from exc
    return tuple(paths)


def _fetched(url: str, cache_dir: str) -> str:
    """A local copy of ``url`` under its base name (the name the reports cite), in a directory
    of its own for this URL and this version of its content (fsspec's ``ukey``: the object's
    ETag, generation, or size and time). So two captures with one base name
    (``s3://tap1/dns.pcap``, ``s3://tap2/dns.pcap``) never share a copy, and a capture
    rewritten under its URL (daily rotation reusing names) is fetched again, never read stale
    from a worker's cache. fsspec's ``filecache`` with ``same_names`` did both (checked with its
    in-memory filesystem: the second URL's bytes served for the first)."""
    import fsspec.core

    fs, path = fsspec.core.url_to_fs(url)
    info = fs.info(path)
    version = hashlib.sha256(f"{url}\0{fs.ukey(path)}".encode()).hexdigest()[:24]
    directory = os.path.join(cache_dir, version)
    local = os.path.join(directory, posixpath.basename(path.rstrip("/")))
    os.makedirs(directory, exist_ok=True)
    # A worker's threads, and the worker processes of one host, fetch each capture once: 8
    # worker processes on a host downloaded every capture 8 times from the store.
    with _FETCHING, _host_lock(directory):
        if os.path.exists(local):
            return local
        partial = f"{local}.{os.getpid()}.part"
        fs.get_file(path, partial)
        size, got = info.get("size"), os.path.getsize(partial)
        if size is not None and got != size:
            os.unlink(partial)  # a cut copy must not be audited, nor kept for the next run
            raise OSError(f"fetched {got} bytes where the store announced {size}")
        os.replace(partial, local)
    return local


_FETCHING = threading.Lock()
"""Serialises fetches within a process (not a table: no state is kept in it)."""


@contextlib.contextmanager
def _host_lock(directory: str) -> Iterator[None]:
    """Hold ``directory``'s lock file (``flock``: released when the holder ends, even killed),
    so the processes of one host fetch into it one after the other."""
    with open(os.path.join(directory, ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _worker_cache(run: str) -> str:
    """The directory of this worker's copies of the remote captures of run ``run``."""
    return os.path.join(tempfile.gettempdir(), WORKER_CACHE, run)


def _drop_worker_cache(run: str) -> int:
    """Remove this worker's copies of run ``run``'s remote captures; the bytes freed. A week
    of rotated captures is hundreds of GB, and every worker fetches every capture (flow
    shards): kept, the copies would fill the workers' disks run after run."""
    directory = _worker_cache(run)
    freed = sum(os.path.getsize(os.path.join(parent, name))
                for parent, _, names in os.walk(directory) for name in names)
    shutil.rmtree(directory, ignore_errors=True)
    return freed


def _drop_worker_caches(client: Any, run: str) -> None:
    """Every worker's ``_drop_worker_cache(run)``; a failure is logged, never raised over the
    audit's own outcome."""
    try:
        freed = client.run(_drop_worker_cache, run)
    except Exception as exc:  # noqa: BLE001 - a worker gone, a lost connection
        logger.warning("could not remove the workers' copies of the remote captures "
                       "(%s/%s on each): %s", WORKER_CACHE, run, exc)
        return
    logger.info("removed the workers' copies of the remote captures: %d bytes",
                sum(freed.values()))


def _on_worker(task: Callable[[ShardSpec], T], run: str) -> Callable[[ShardSpec], T]:
    """``task`` with the spec's remote captures fetched to the worker's cache for run ``run``
    first, and the worker's garbage collector tuned as the command line tunes it
    (``memo.GC_THRESHOLDS``: distributed leaves CPython's (700, 10, 10), which rescans the
    worker's caches)."""
    def run_task(spec: ShardSpec) -> T:
        if not collector_tuned():  # a worker process: its first task of the run
            tune_garbage_collector()
        captures = spec.options.captures
        if any(is_remote(path) for path in captures):
            options = dataclasses.replace(spec.options,
                                          captures=localised(captures, _worker_cache(run)))
            spec = dataclasses.replace(spec, options=options)
        _check_visible(spec.options.captures)
        return task(spec)

    return run_task


def _check_visible(captures: Sequence[str]) -> None:
    """Raise ``CaptureError`` for a capture the client read but this worker cannot see:
    "no such file" alone sent the user to the client's disk."""
    for path in captures:
        if not os.path.exists(path):
            raise CaptureError(path, f"not on worker host {socket.gethostname()}: local "
                                     f"captures must be on a store every worker reaches under "
                                     f"the same path, or be given as fsspec URLs (README, "
                                     f"\"Several cores, a Dask cluster\")")


def _after_harvest(task: Callable[[ShardSpec], T]) -> Callable[[ShardSpec, Any], T]:
    """``task`` taking its shard's harvest as a second argument it does not use (a
    dependency, for where the scheduler runs it)."""
    def run_task(spec: ShardSpec, _harvest: Any) -> T:
        return task(spec)

    return run_task


def _forget_key_passes(client: Any) -> None:
    """Every worker's ``work.forget_key_passes()`` (harvests whose judging task ran
    elsewhere); a failure is logged, never raised over the audit's own outcome."""
    try:
        client.run(forget_key_passes)
    except Exception as exc:  # noqa: BLE001 - a worker gone, a lost connection
        logger.warning("could not drop the workers' kept key passes: %s", exc)


def _gave_up(scheduler: str, exc: Any, out_dir: Path) -> ProcessLost:
    """What the audit says when the cluster gave up on a task whose workers kept dying
    (``distributed``'s ``KilledWorker``: out of memory, killed, a crash in native code)."""
    worker = getattr(getattr(exc, "last_worker", None), "address", None) or "unknown"
    tries = getattr(exc, "allowed_failures", None)
    times = f" {tries + 1} times" if isinstance(tries, int) else ""
    return ProcessLost(f"--scheduler {scheduler}: the cluster gave up on a task after the "
                       f"workers running it died{times} (the last: {worker}; their logs say "
                       f"why: memory, a kill); the outputs in {out_dir} are incomplete")


def local_workers(scheduler: str) -> int | None:
    """N of ``local:N`` (``local:`` alone: 1), None for a scheduler address; ``ValueError``
    for a count that is not a whole number of at least 1."""
    if not scheduler.startswith(LOCAL_PREFIX):
        return None
    count = scheduler.removeprefix(LOCAL_PREFIX) or "1"
    if not count.isdigit() or int(count) < 1:
        raise ValueError("local:N needs a number of worker processes of at least 1, "
                         "e.g. local:4")
    return int(count)


@collecting_rarely
def run_on_dask(options: AuditOptions, scheduler: str) -> AuditOutcome:
    """Audit on the cluster at ``scheduler`` (or ``local:N``); write the partitioned dataset
    besides the usual outputs."""
    from distributed import Client, KilledWorker, LocalCluster

    captures = expand_captures(options.captures)
    if "-" in captures:
        raise CaptureError("-", "standard input cannot be audited on a cluster")
    options.out_dir.mkdir(parents=True, exist_ok=True)
    try:
        workers = local_workers(scheduler)
    except ValueError as exc:
        raise ConfigError(f"--scheduler {scheduler}: {exc}") from exc
    with ExitStack() as stack:
        if workers is not None:
            cluster = stack.enter_context(LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True,
                dashboard_address=None))
            client = stack.enter_context(Client(cluster))
        else:
            try:
                client = stack.enter_context(Client(scheduler))
            except (OSError, ValueError, TypeError) as exc:  # unreachable, malformed address
                raise ConfigError(f"--scheduler {scheduler}: no Dask scheduler reached there: "
                                  f"{exc}") from exc
        threads = sum(client.nthreads().values()) or 1
        cache = stack.enter_context(tempfile.TemporaryDirectory(prefix="auditor-fetch-"))
        local = dataclasses.replace(options, captures=localised(captures, cache))
        remote = dataclasses.replace(options, captures=captures)
        run = uuid.uuid4().hex
        if any(is_remote(capture) for capture in captures):
            # Unwound before the client closes (in reverse), also when the audit fails.
            stack.callback(_drop_worker_caches, client, run)

        stack.callback(_forget_key_passes, client)
        harvests: dict[int, Any] = {}

        def submit(task: Callable[[ShardSpec], Any], spec: ShardSpec) -> Pending:
            remote_spec = dataclasses.replace(spec, options=remote)
            if task is harvest:
                future: Pending = client.submit(_on_worker(task, run), remote_spec, pure=False)
                harvests[spec.index] = future
                return future
            # The shard's harvest as a dependency the task ignores: the scheduler then runs
            # it where that harvest's result is, the process that kept what it parsed
            # (``work.kept_key_pass``), unless moving it is worth more.
            after = harvests.pop(spec.index, None)
            future = client.submit(_after_harvest(_on_worker(task, run)), remote_spec, after,
                                   pure=False)
            return future

        # The workers spool their items into the output directory, which the client reads
        # as they grow: nothing of the size of the traffic passes through the scheduler.
        spool = stack.enter_context(tempfile.TemporaryDirectory(
            prefix=".shards-", dir=options.out_dir))
        dataset: list[Pending] = []

        def write_dataset() -> None:
            # On a worker, from the shared output directory, while this process writes
            # stats.json, the flow tables and the reports: it read every line back after
            # those, one core idle (3.0 of the 45.5 s of 200,000 frames on 2 cores).
            dataset.append(client.submit(write_partitioned, options.out_dir, pure=False))

        try:
            outcome = run_audit(local, ShardedJudging(local, threads * SHARDS_PER_WORKER,
                                                      submit, spool, run, write_dataset))
            partitions: list[Path] = dataset[0].result()
        except KilledWorker as exc:
            raise _gave_up(scheduler, exc, options.out_dir) from exc
    return dataclasses.replace(outcome, files=outcome.files + tuple(partitions))
