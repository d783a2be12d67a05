"""Real-software DNSSEC test lab: signed private root, BIND, validating Unbound, tcpdump."""

import os

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
    "lab_unavailable_reason",
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
