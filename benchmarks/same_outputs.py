"""Audits captures with two checkouts and diffs their outputs (issue 14: speed never changes a
verdict).

Usage: ``same_outputs.py --before DIR [--after DIR] [CAPTURE ...] [--realcaps N] [--jobs N]``.
Each capture is audited by ``python -m auditor audit`` of each checkout (``--repo`` of
``bench_audit.py``: that checkout first on the import path), with the capture's own anchor
(``X.anchor`` beside ``X.pcap``, ``root.ds`` beside a lab fixture) or, for the real captures
of ``../shared/realcaps``, every anchor of ``realcaps/anchors``. ``responses.jsonl`` and
``findings.jsonl`` must be byte-identical; ``stats.json`` must be equal once the figures
listed in ``VOLATILE`` (times, cache and memo counters, paths of the run) are set aside.
Without captures it audits ``captures/*.pcap*`` and the first ``--realcaps`` real captures
carrying DNSSEC (default 12). Exit status 1 if anything differs.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
REALCAPS = REPO_ROOT.parent / "shared" / "realcaps"
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

from bench_audit import audit_command, run_audit_child  # noqa: E402

COMPARED = ("responses.jsonl", "findings.jsonl")
VOLATILE: tuple[tuple[str, ...], ...] = (
    ("elapsed_s",),
    ("messages",),
    ("validation", "verdict_cache"),
    ("validation", "key_cache"),
    ("state",),
    ("key_cache", "path"),
    ("inputs",),
    ("evidence", "path"),
)
"""``stats.json`` figures that may differ between two runs or checkouts without any verdict,
finding or frame changing: elapsed time, the parse cache's and the verdict cache's counters,
table peaks and memo sizes, and paths inside the run's output directory."""


def realcaps(count: int) -> list[Path]:
    """The first ``count`` real captures (sorted) that carry DNSSEC records."""
    if not REALCAPS.exists():
        return []
    listed = (REALCAPS / "DNSSEC.txt").read_text().split() if (
        REALCAPS / "DNSSEC.txt").exists() else []
    found = [REALCAPS / name for name in listed if (REALCAPS / name).is_file()]
    return sorted(found)[:count]


def anchors_for(capture: Path) -> list[Path]:
    """The capture's own anchor, else (real captures) every corpus anchor."""
    own = capture.with_suffix(".anchor")
    if capture.suffix == ".gz":
        own = capture.with_suffix("").with_suffix(".anchor")
    if own.exists():
        return [own]
    if (capture.parent / "root.ds").exists():  # the lab-made differential fixtures
        return [capture.parent / "root.ds"]
    if REALCAPS in capture.resolve().parents:
        return sorted((REALCAPS / "anchors").glob("*.anchor"))
    return []


def audit(repo: Path, capture: Path, out: Path, cpu: int | None) -> int:
    """One audit of ``capture`` by ``repo``'s code; its exit status."""
    command = audit_command(capture, None, out, [])
    for anchor in anchors_for(capture):
        command += ["--trust-anchor", str(anchor)]
    return run_audit_child(repo, command, cpu).status


def _drop(stats: dict[str, Any], path: tuple[str, ...]) -> None:
    node: Any = stats
    for key in path[:-1]:
        node = node.get(key) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(path[-1], None)


def stable_stats(path: Path) -> dict[str, Any]:
    """``stats.json`` without the ``VOLATILE`` figures."""
    stats: dict[str, Any] = json.loads(path.read_text())
    for volatile in VOLATILE:
        _drop(stats, volatile)
    return stats


def compare(before: Path, after: Path) -> list[str]:
    """What differs between two audits' outputs (empty: the same)."""
    problems = [name for name in COMPARED
                if not filecmp.cmp(before / name, after / name, shallow=False)]
    old, new = stable_stats(before / "stats.json"), stable_stats(after / "stats.json")
    problems += [f"stats.json {key}" for key in sorted(set(old) | set(new))
                 if old.get(key) != new.get(key)]
    return problems


def check(capture: Path, repos: tuple[Path, Path], work: Path, cpu: int | None) -> list[str]:
    """Audit one capture with both checkouts; what differs, or why it could not be compared."""
    outs = []
    for index, repo in enumerate(repos):
        out = work / f"{capture.name}-{index}"
        status = audit(repo, capture, out, cpu)
        if status not in (0, 1, 2) or not (out / "stats.json").exists():
            return [f"audit by {repo} exited with status {status}"]
        outs.append(out)
    return compare(outs[0], outs[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("captures", nargs="*", type=Path)
    parser.add_argument("--before", type=Path, required=True, help="checkout of the baseline")
    parser.add_argument("--after", type=Path, default=REPO_ROOT, help="checkout to check")
    parser.add_argument("--realcaps", type=int, default=12,
                        help="real DNSSEC captures audited when no capture is given")
    parser.add_argument("--jobs", type=int, default=1, help="captures audited at once")
    parser.add_argument("--cpu", type=int, default=None, help="pin every audit to this CPU")
    args = parser.parse_args(argv)
    captures = args.captures or [
        *sorted((REPO_ROOT / "captures").glob("*.pcap*")), *realcaps(args.realcaps)]
    repos = (args.before.resolve(), args.after.resolve())
    failed = 0
    with tempfile.TemporaryDirectory(prefix="same-outputs-") as temporary, \
            ThreadPoolExecutor(max_workers=args.jobs) as pool:
        work = Path(temporary)
        results = pool.map(lambda capture: (capture, check(capture, repos, work, args.cpu)),
                           captures)
        for capture, problems in results:
            failed += bool(problems)
            print(f"{'DIFFERS' if problems else 'same   '} {capture}"
                  + (f": {', '.join(problems)}" if problems else ""), flush=True)
    print(f"{len(captures) - failed} of {len(captures)} captures identical")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
