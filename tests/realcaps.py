"""The real captures published by other projects (``../shared/realcaps``, see its README): where
they are, and a skip (or, in CI, a failure) when they are not checked out beside the repo."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REALCAPS = Path(__file__).resolve().parents[1].parent / "shared" / "realcaps"
"""``../shared/realcaps`` next to the repository."""


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_realcaps() -> Path:
    """The corpus directory; skips without it, fails in CI (``CI=true``) where it must be."""
    if not (REALCAPS / "README.md").exists():
        reason = f"{REALCAPS} absent (../shared/realcaps is not checked out beside the repo)"
        if _in_ci():
            pytest.fail(reason)
        pytest.skip(reason)
    return REALCAPS


def require(path: Path) -> Path:
    """``path`` inside the corpus; skips when it is absent, fails in CI where it must be."""
    if not path.exists():
        reason = f"real capture {path} absent (../shared/realcaps is not checked out)"
        if _in_ci():
            pytest.fail(reason)
        pytest.skip(reason)
    return path


def absent_outside_ci(path: Path) -> bool:
    """For ``skipif``: the capture is missing and this is not CI (in CI the test runs and
    fails on the missing file instead of skipping)."""
    return not path.exists() and not _in_ci()


def realcap(relative: str) -> Path:
    """One capture of the corpus, e.g. ``realcap("zeek/dns53.pcap")``."""
    path = require_realcaps() / relative
    if not path.exists():
        pytest.fail(f"{path} is listed in the tests but missing from the corpus")
    return path


def corpus_captures() -> list[str]:
    """Every capture of the corpus, relative to it, sorted (empty when it is absent)."""
    if not REALCAPS.exists():
        return []
    return sorted(str(p.relative_to(REALCAPS)) for p in REALCAPS.rglob("*")
                  if p.is_file() and p.suffix in {".pcap", ".pcapng", ".gz"})
