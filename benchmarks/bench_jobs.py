"""Measures ``audit --jobs N`` against ``--jobs 1``, and a Dask LocalCluster over rotated pieces
against one process over the same pieces, in the same run (issue 15).

Usage: ``bench_jobs.py [--packets N] [--kind standard|ttl-decay|churn] [--jobs N] [--repeat K]
[--pieces 8] [--workers 2] [--no-dask] [--no-model]``. ``--repeat K`` runs the
``--jobs 1``/``--jobs N`` pair K times, in alternating order (a machine that slows down during
a long run then favours neither side), and reports each pair's speed-up and their median.
The capture is a ``make_capture.py`` capture (written, or reused from ``benchmarks/out/``).
Each audit runs in its own child with every default output; wall time, CPU time (the child and
every worker it waited for, from ``wait4``) and the child's peak RSS are reported, and the
outputs compared: ``--jobs`` must give byte-identical ``responses.jsonl`` and
``findings.jsonl``; the cluster's must equal one process's over the same pieces. ``--model``
(default on) also measures, in this process, what a worker pays per frame it only passes over
(every worker reads every frame) and per frame it decodes and judges, and what the merging
process pays per response: the figures behind the cluster estimate in benchmarks/README.md.
Exit status 1 only if an audit failed or outputs differ.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench_audit import KINDS, audit_command, capture_for, run_child  # noqa: E402

COMPARED = ("responses.jsonl", "findings.jsonl")
PIECE_FIELDS = {"frame", "frames", "query_frame", "capture", "upstream_frames"}
"""Fields numbering frames within a piece (or naming it): they differ between rotated pieces
and the whole capture by construction, and are left out of the cluster comparison."""


def timed_audit(label: str, command: list[str]) -> dict[str, Any]:
    """One audit child: its wall and CPU seconds (workers included) and peak RSS."""
    child = run_child(command)
    row = {"run": label, "status": child.status, "wall_s": round(child.wall_s, 2),
           "cpu_s": round(child.cpu_s, 2), "peak_rss_mb": round(child.peak_rss_mb)}
    print(json.dumps(row), file=sys.stderr)
    return row


def jobs_pairs(capture: Path, anchor: Path | None, work: Path, jobs: int,
               repeat: int) -> tuple[list[dict[str, Any]], bool, list[float]]:
    """``--jobs 1`` and ``--jobs jobs`` audits, ``repeat`` pairs, every other pair in reverse
    order: the runs, whether every pair's outputs were byte-identical, each pair's speed-up."""
    runs: list[dict[str, Any]] = []
    ratios: list[float] = []
    identical = True
    for number in range(max(1, repeat)):
        order = (1, jobs) if number % 2 == 0 else (jobs, 1)
        pair = {n: timed_audit(f"--jobs {n}", [*audit_command(capture, anchor,
                                                               work / f"jobs{n}", []),
                                                "--jobs", str(n)])
                for n in order}
        identical &= same_files(work / "jobs1", work / f"jobs{jobs}")
        ratios.append(round(pair[1]["wall_s"] / pair[jobs]["wall_s"], 2))
        runs.extend(pair[n] for n in order)
        for n in order:  # a 1,000,000-frame audit writes about 500 MB
            shutil.rmtree(work / f"jobs{n}", ignore_errors=True)
    return runs, identical, ratios


def same_files(one: Path, other: Path) -> bool:
    """Byte-identical ``COMPARED`` outputs and flow tables (``--jobs 2`` writes its Parquet
    parts from both processes)."""
    return (all(filecmp.cmp(one / name, other / name, shallow=False) for name in COMPARED)
            and _tree(one / "responses.parquet") == _tree(other / "responses.parquet"))


def _tree(directory: Path) -> dict[str, bytes]:
    return {str(path.relative_to(directory)): path.read_bytes()
            for path in sorted(directory.rglob("*")) if path.is_file()}


def _without_pieces(value: Any) -> Any:
    import re

    if isinstance(value, dict):
        return {k: _without_pieces(v) for k, v in value.items() if k not in PIECE_FIELDS}
    if isinstance(value, list):
        return [_without_pieces(v) for v in value]
    if isinstance(value, str):
        return re.sub(r"frames? [0-9][0-9, -]*", "frame N", value)
    return value


def same_records(one: Path, other: Path) -> bool:
    """The same records in the same order, frame numbers aside."""
    for name in COMPARED:
        with (one / name).open() as a, (other / name).open() as b:
            for left, right in zip(a, b, strict=False):
                if _without_pieces(json.loads(left)) != _without_pieces(json.loads(right)):
                    return False
        if sum(1 for _ in (one / name).open()) != sum(1 for _ in (other / name).open()):
            return False
    return True


def split(capture: Path, pieces: int, directory: Path) -> list[Path]:
    """``editcap -c`` into ``pieces`` rotated files of equal frame counts."""
    frames = int(subprocess.run(["capinfos", "-c", "-M", "-T", "-r", str(capture)],
                                check=True, capture_output=True, text=True).stdout.split()[-1])
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(["editcap", "-c", str(-(-frames // pieces)), str(capture),
                    str(directory / "piece.pcap")], check=True, capture_output=True)
    return sorted(directory.glob("piece*.pcap"))


def model(capture: Path, anchor: Path | None) -> dict[str, float]:
    """Per-frame and per-response costs (CPU seconds, this process) behind the estimate."""
    from auditor.capture.sources import CaptureSet
    from auditor.engine.build import merged_key_material
    from auditor.pipeline import AuditOptions, run_audit
    from auditor.scale.jobs import ShardedJudging
    from auditor.scale.work import ShardSpec, harvest, judge_shard

    with CaptureSet([str(capture)]) as source:
        frames = sum(1 for _ in source)
    work = Path(tempfile.mkdtemp(prefix="bench-jobs-model-"))
    options = AuditOptions(captures=(str(capture),), out_dir=work,
                           trust_anchors=(str(anchor),) if anchor else ())

    def cpu(call: Any) -> tuple[float, Any]:
        started = time.process_time()
        result = call()
        return time.process_time() - started, result

    whole_h, found = cpu(lambda: harvest(ShardSpec(options, 0, 1)))
    snapshot = merged_key_material(options.limits, [found.material]).snapshot()
    # Shard 0 of 1,000 decodes about 0.1 % of the flows: nearly pure passing over.
    pass_h, _ = cpu(lambda: harvest(ShardSpec(options, 1, 1000)))
    whole_j, _ = cpu(lambda: judge_shard(ShardSpec(options, 0, 1, str(work)), snapshot))
    pass_j, _ = cpu(lambda: judge_shard(ShardSpec(options, 1, 1000, str(work)), snapshot))

    merge_s: list[float] = []

    class Timed(ShardedJudging):
        def judged(self, source: Any, stream: Any, judge: Any) -> Any:
            results = super().judged(source, stream, judge)
            first = next(results, None)  # the workers' phase 2 is done here
            started = time.process_time()
            if first is not None:
                yield first
            yield from results
            merge_s.append(time.process_time() - started)

    class Done:
        """A task run here, now."""

        def __init__(self, value: Any) -> None:
            self.value = value

        def result(self) -> Any:
            return self.value

        def done(self) -> bool:
            return True

    def submit(task: Any, spec: Any) -> Done:
        return Done(task(spec))

    started = time.process_time()
    outcome = run_audit(options, Timed(options, 1, submit, None))
    total = time.process_time() - started
    responses = outcome.stats["responses_written"]
    shutil.rmtree(work, ignore_errors=True)
    return {
        "frames": frames,
        "responses": responses,
        "harvest_pass_us_per_frame": round(pass_h / frames * 1e6, 2),
        "harvest_work_us_per_frame": round((whole_h - pass_h) / frames * 1e6, 2),
        "judge_pass_us_per_frame": round(pass_j / frames * 1e6, 2),
        "judge_work_us_per_frame": round((whole_j - pass_j) / frames * 1e6, 2),
        "merge_replay_us_per_response": round(merge_s[0] / responses * 1e6, 2),
        "merging_process_us_per_frame": round(
            (total - whole_h - whole_j) / frames * 1e6, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=200_000)
    parser.add_argument("--kind", choices=KINDS, default="standard")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--capture", type=Path, help="audit this capture instead")
    parser.add_argument("--anchor", type=Path, help="trust anchor file for --capture")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1,
                        help="run the --jobs pair this many times, alternating their order")
    parser.add_argument("--pieces", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-dask", action="store_true")
    parser.add_argument("--no-model", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    capture, anchor = capture_for(args)
    work = Path(tempfile.mkdtemp(prefix="bench-jobs-"))
    figures: dict[str, Any] = {"capture": str(capture), "cores": len(os.sched_getaffinity(0)),
                               "load_before": os.getloadavg()[0]}
    failed = False
    try:
        runs, identical, ratios = jobs_pairs(capture, anchor, work, args.jobs, args.repeat)
        figures["jobs"] = runs
        figures["jobs_identical"] = identical
        figures["jobs_speedups_wall"] = ratios
        figures["jobs_speedup_wall"] = round(statistics.median(ratios), 2)
        failed |= any(r["status"] not in (0, 1) for r in runs) or not identical
        if not args.no_dask:
            pieces = split(capture, args.pieces, work / "pieces")
            glob = str(work / "pieces" / "piece*.pcap")
            one = [sys.executable, "-m", "auditor", "audit", *map(str, pieces), "--out",
                   str(work / "pieces-one"), "-q", "--jobs", "1"]
            cluster = [sys.executable, "-m", "auditor", "audit", glob, "--out",
                       str(work / "pieces-cluster"), "-q", "--scheduler",
                       f"local:{args.workers}"]
            if anchor is not None:
                one += ["--trust-anchor", str(anchor)]
                cluster += ["--trust-anchor", str(anchor)]
            dask_runs = [timed_audit(f"{len(pieces)} pieces, one process", one),
                         timed_audit(f"{len(pieces)} pieces, LocalCluster of {args.workers}",
                                     cluster)]
            figures["dask"] = dask_runs
            figures["dask_same_records"] = same_records(work / "pieces-one",
                                                        work / "pieces-cluster")
            figures["dask_speedup_wall"] = round(dask_runs[0]["wall_s"] / dask_runs[1]["wall_s"],
                                                 2)
            failed |= (any(r["status"] not in (0, 1) for r in dask_runs)
                       or not figures["dask_same_records"])
        if not args.no_model:
            figures["model"] = model(capture, anchor)
        figures["load_after"] = os.getloadavg()[0]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(figures, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
