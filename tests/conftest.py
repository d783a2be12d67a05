"""Shared pytest fixtures: the real-software DNSSEC lab and tcpdump captures of it."""

from __future__ import annotations

import fcntl
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

_REPO_ROOT = Path(__file__).resolve().parent.parent
if str(_REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(_REPO_ROOT))

from tests.lab import Lab, TcpdumpCapture, build_lab, skip_unless_lab  # noqa: E402

_LAB_FIXTURES = frozenset({"lab", "capture"})
_LAB_LOCK = Path("/tmp/dnssec-auditor-lab.lock")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that uses the lab as ``integration``."""
    for item in items:
        if _LAB_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Lab]:
    """Signed private hierarchy served by named, validated by Unbound; stopped at session end.

    Skips when not root or a program is missing; fails instead when CI (or
    DNSSEC_AUDITOR_REQUIRE_LAB) is set, so CI can never silently skip the lab.
    """
    skip_unless_lab()
    cache = getattr(request.config, "cache", None)  # absent with -p no:cacheprovider
    key_cache = cache.mkdir("dnssec-lab-keys") if cache is not None else None
    built = build_lab(tmp_path_factory.mktemp("lab"), key_cache=key_cache)
    # Every lab uses the same 127.53.0.x addresses: two test sessions on one machine would
    # answer each other's queries, so sessions take turns.
    with _LAB_LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with built.running():
            yield built


@pytest.fixture
def capture(lab: Lab, tmp_path: Path) -> Callable[[str], TcpdumpCapture]:
    """Factory: ``with capture("name") as pcap:`` records lab traffic to ``pcap.path``."""

    def start(name: str) -> TcpdumpCapture:
        return lab.capture(tmp_path / f"{name}.pcap")

    return start
