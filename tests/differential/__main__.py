"""Command line: ``python -m tests.differential --seed 1 --count 2000``."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from tests.differential.classify import Expectations, tally
from tests.differential.driver import summarize, timed_run
from tests.lab import lab_unavailable_reason


def main(argv: list[str] | None = None) -> int:
    """Run, print the agreement table; exit 1 on a disagreement in neither list."""
    parser = argparse.ArgumentParser(prog="python -m tests.differential", description=__doc__)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--start", type=int, default=0, help="first scenario index")
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--fixtures", type=Path, help="write disagreeing scenarios here")
    parser.add_argument("--keep", type=Path, help="copy every batch's work directory here")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    reason = lab_unavailable_reason()
    if reason is not None:
        print(reason, file=sys.stderr)
        return 2
    expectations = Expectations.load()
    summary, wall = timed_run(
        args.seed,
        args.count,
        batch_size=args.batch_size,
        start=args.start,
        fixtures=args.fixtures,
        keep=args.keep,
    )
    print(summarize(summary, expectations, wall, args.seed))
    return 1 if tally(summary.comparisons, expectations).new else 0


if __name__ == "__main__":
    sys.exit(main())
