"""Locate and run the external programs the lab depends on."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

logger = logging.getLogger(__name__)

REQUIRED_PROGRAMS: tuple[str, ...] = (
    "ip",
    "named",
    "dnssec-keygen",
    "dnssec-signzone",
    "unbound",
    "unbound-control",
    "tcpdump",
    "dig",
)
"""Programs without which the lab cannot run (kdig is optional)."""

_SBIN_DIRS = ("/usr/sbin", "/sbin", "/usr/local/sbin")


class LabError(RuntimeError):
    """The lab (our own test machinery) failed; never a verdict about DNS traffic."""


def find_program(name: str) -> str | None:
    """Return the path of *name*, also looking in sbin directories missing from PATH."""
    found = shutil.which(name)
    if found:
        return found
    extra_path = os.pathsep.join(_SBIN_DIRS)
    return shutil.which(name, path=extra_path)


_APPARMOR_PROFILES = Path("/sys/kernel/security/apparmor/profiles")
_UNCONFINED_DIR = Path(tempfile.gettempdir()) / "dnssec-lab-bin"


def apparmor_enforces(name: str) -> bool:
    """Whether a loaded AppArmor profile for program *name* is in enforce mode."""
    try:
        profiles = _APPARMOR_PROFILES.read_text()
    except OSError:
        return False
    return any(
        line.endswith("(enforce)") and line.split()[0].rsplit("/", 1)[-1] == name
        for line in profiles.splitlines()
    )


def server_program(name: str) -> str:
    """Path to run *name* from, escaping its distribution AppArmor profile if enforced.

    Debian/Ubuntu profiles for named, unbound and tcpdump confine them to their system
    directories; profiles attach by path, so a private copy of the binary runs with the
    lab's files in a temporary directory.
    """
    path = program(name)
    if not apparmor_enforces(name):
        return path
    _UNCONFINED_DIR.mkdir(mode=0o700, exist_ok=True)
    copy = _UNCONFINED_DIR / name
    if not copy.exists() or copy.stat().st_size != Path(path).stat().st_size:
        shutil.copy2(path, copy)
    logger.info("AppArmor enforces a profile on %s; running the copy %s", path, copy)
    return str(copy)


def missing_programs(names: Sequence[str] = REQUIRED_PROGRAMS) -> list[str]:
    """Return the subset of *names* that cannot be found."""
    return [name for name in names if find_program(name) is None]


def program(name: str) -> str:
    """Return the path of *name* or raise `LabError`."""
    path = find_program(name)
    if path is None:
        raise LabError(f"required program not found: {name}")
    return path


def run(argv: Sequence[str], *, timeout: float = 60.0, check: bool = True) -> str:
    """Run a program to completion and return its stdout; raise `LabError` on failure."""
    resolved = [program(argv[0]), *argv[1:]]
    try:
        done = subprocess.run(
            resolved, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"timed out after {timeout}s: {' '.join(resolved)}") from exc
    if check and done.returncode != 0:
        raise LabError(
            f"{' '.join(resolved)} exited {done.returncode}: {done.stderr.strip()[-2000:]}"
        )
    return done.stdout
