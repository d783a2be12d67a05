"""Start a long-running server process, wait until it is ready, and stop it by its PID."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
import types
from collections.abc import Callable, Sequence
from pathlib import Path

from tests.lab.tools import LabError, server_program

logger = logging.getLogger(__name__)


def _tail(path: Path, limit: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError:
        return "<no log>"


def wait_until(ready: Callable[[], bool], *, timeout: float, interval: float = 0.1) -> bool:
    """Poll *ready* until it returns true or *timeout* seconds pass; return the last result."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return True
        time.sleep(interval)
    return ready()


class ManagedProcess:
    """A foreground server whose output goes to a log file; stop() signals exactly its PID."""

    def __init__(self, name: str, argv: Sequence[str], log_path: Path) -> None:
        self.name = name
        self.argv = [server_program(argv[0]), *argv[1:]]
        self.log_path = log_path
        self._popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """PID of the running process, ``None`` before start or after stop."""
        return self._popen.pid if self._popen is not None else None

    def running(self) -> bool:
        """Whether the process was started and has not exited."""
        return self._popen is not None and self._popen.poll() is None

    def start(self, ready: Callable[[], bool], *, timeout: float = 15.0) -> None:
        """Launch the process and block until *ready* holds; raise `LabError` otherwise."""
        with self.log_path.open("ab") as log:
            self._popen = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        logger.info("started %s pid %s: %s", self.name, self._popen.pid, " ".join(self.argv))
        became_ready = wait_until(lambda: not self.running() or ready(), timeout=timeout)
        if not self.running() or not became_ready:
            self.stop()
            raise LabError(
                f"{self.name} did not become ready within {timeout}s; log tail:\n"
                f"{_tail(self.log_path)}"
            )

    def stop(self, *, timeout: float = 10.0) -> None:
        """Send SIGTERM to our PID, escalate to SIGKILL after *timeout*, reap it."""
        popen, self._popen = self._popen, None
        if popen is None:
            return
        if popen.poll() is None:
            os.kill(popen.pid, signal.SIGTERM)
            try:
                popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                logger.warning("%s pid %s ignored SIGTERM; killing", self.name, popen.pid)
                os.kill(popen.pid, signal.SIGKILL)
                popen.wait(timeout=timeout)
        logger.info("stopped %s pid %s (exit %s)", self.name, popen.pid, popen.returncode)

    def __enter__(self) -> ManagedProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        self.stop()
