"""Real-software DNSSEC test lab: signed private root, BIND, validating Unbound, tcpdump."""

import os

import pytest

from tests.lab.addresses import LAB_NETWORK, LoopbackAddresses
from tests.lab.capture import CaptureFile, TcpdumpCapture
from tests.lab.lab import DEFAULT_ADDRESSES, Lab, LabAddresses, build_lab
from tests.lab.query import QueryOptions, QueryResult, Tool, query
from tests.lab.tools import REQUIRED_PROGRAMS, LabError, missing_programs
from tests.lab.zones import (
    ALL_ZONES,
    LEAF_ZONES,
    BuiltZone,
    DsMode,
    Expectation,
    Mutation,
    Role,
    SigningWindow,
    Validity,
    ZoneSpec,
)

__all__ = [
    "ALL_ZONES",
    "DEFAULT_ADDRESSES",
    "LAB_NETWORK",
    "LEAF_ZONES",
    "REQUIRED_PROGRAMS",
    "BuiltZone",
    "CaptureFile",
    "DsMode",
    "Expectation",
    "Lab",
    "LabAddresses",
    "LabError",
    "LoopbackAddresses",
    "Mutation",
    "QueryOptions",
    "QueryResult",
    "Role",
    "SigningWindow",
    "TcpdumpCapture",
    "Tool",
    "Validity",
    "ZoneSpec",
    "build_lab",
    "lab_required",
    "lab_unavailable_reason",
    "skip_unless_lab",
    "missing_programs",
    "query",
]


def lab_unavailable_reason() -> str | None:
    """Why the lab cannot run here (not root, programs missing), or ``None`` if it can."""
    if os.geteuid() != 0:
        return "lab needs root: it adds 127.53.0.x to lo, binds port 53 and runs tcpdump"
    missing = missing_programs()
    if missing:
        return f"lab programs not installed: {', '.join(missing)}"
    return None


_REQUIRE_LAB_ENV = ("DNSSEC_AUDITOR_REQUIRE_LAB", "CI")


def lab_required() -> bool:
    """Whether a lab test must run here (CI or DNSSEC_AUDITOR_REQUIRE_LAB set): it then fails
    instead of skipping, so CI never silently checks nothing."""
    return any(
        os.environ.get(name, "").lower() in {"1", "true", "yes"} for name in _REQUIRE_LAB_ENV
    )


def skip_unless_lab(reason: str | None = None) -> None:
    """Skip (on a workstation) or fail (in CI) when the lab cannot run here; ``reason``
    overrides ``lab_unavailable_reason()`` for tests with needs of their own."""
    reason = reason if reason is not None else lab_unavailable_reason()
    if reason is None:
        return
    if lab_required():
        pytest.fail(reason)
    pytest.skip(reason)
