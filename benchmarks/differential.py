"""Differential testing against Unbound on demand (issue 12): N generated scenarios of a seed.

    sudo .venv/bin/python benchmarks/differential.py --seed 1 --count 2000 [--fixtures DIR]

Same as ``python -m tests.differential``; prints the agreement figure, the disagreement
classes and the wall time. Exit 1 when a disagreement is in neither list of
tests/differential/expectations.toml.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.differential.__main__ import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
