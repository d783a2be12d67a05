"""Record loopback traffic with a real tcpdump into a pcap file for the duration of a block."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import threading
import time
import types
from dataclasses import dataclass, field
from pathlib import Path

from tests.lab.tools import LabError, server_program

logger = logging.getLogger(__name__)

_COUNT = re.compile(r"(\d+) packets? captured")
_DROPPED = re.compile(r"(\d+) packets? dropped by kernel")


@dataclass(slots=True)
class CaptureFile:
    """A pcap being (or having been) written by tcpdump."""

    path: Path
    """The pcap file."""
    bpf: str
    """Capture filter given to tcpdump."""
    started_at: float = 0.0
    """Wall-clock time when tcpdump reported it was listening."""
    stopped_at: float = 0.0
    """Wall-clock time when capture ended."""
    packets: int | None = None
    """Packet count reported by tcpdump on exit (``None`` until stopped)."""
    dropped: int | None = None
    """Packets the kernel dropped before tcpdump read them (``None`` if not reported)."""
    stderr: list[str] = field(default_factory=list)
    """tcpdump's diagnostic lines."""


class TcpdumpCapture:
    """Context manager running ``tcpdump -i lo -w FILE -U --immediate-mode -n -s 0 FILTER``.

    Entry returns once tcpdump says "listening on"; exit waits *settle* seconds so the
    last packets are written, stops tcpdump with SIGINT (SIGTERM, then SIGKILL as
    fallbacks) and waits for it, so the file is complete when the block is left.
    """

    def __init__(
        self,
        path: Path,
        bpf: str,
        *,
        interface: str = "lo",
        settle: float = 0.3,
        start_timeout: float = 10.0,
    ) -> None:
        self.result = CaptureFile(path=path, bpf=bpf)
        self.interface = interface
        self.settle = settle
        self.start_timeout = start_timeout
        self._popen: subprocess.Popen[str] | None = None
        self._listening = threading.Event()
        self._reader: threading.Thread | None = None

    def _argv(self) -> list[str]:
        return [
            server_program("tcpdump"),
            "-i", self.interface,
            "-w", str(self.result.path),
            "-U",
            "--immediate-mode",  # else TPACKET_V3 holds packets in blocks past SIGINT
            "-n",
            "-s", "0",
            "-B", "32768",  # 32 MiB kernel buffer: a busy 2-core CI machine must not drop
            "-Z", "root",  # Debian drops to user tcpdump, which may not write our tmp dir
            self.result.bpf,
        ]  # fmt: skip

    def _read_stderr(self, stream: object) -> None:
        assert hasattr(stream, "readline")
        for line in iter(stream.readline, ""):
            self.result.stderr.append(line.rstrip())
            if "listening on" in line:
                self._listening.set()

    def __enter__(self) -> CaptureFile:
        self.result.path.parent.mkdir(parents=True, exist_ok=True)
        self._popen = subprocess.Popen(
            self._argv(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        self._reader = threading.Thread(
            target=self._read_stderr, args=(self._popen.stderr,), daemon=True
        )
        self._reader.start()
        if not self._wait_listening():
            self._stop()
            raise LabError(f"tcpdump did not start: {' '.join(self.result.stderr)[-2000:]}")
        self.result.started_at = time.time()
        return self.result

    def _wait_listening(self) -> bool:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._listening.wait(0.05):
                return True
            if self._popen is not None and self._popen.poll() is not None:
                return False
        return False

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        time.sleep(self.settle)
        self._stop()

    def _stop(self) -> None:
        popen, self._popen = self._popen, None
        if popen is None:
            return
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            if popen.poll() is not None:
                break
            os.kill(popen.pid, sig)
            try:
                popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                logger.warning("tcpdump pid %s survived %s", popen.pid, sig.name)
        if self._reader is not None:
            self._reader.join(timeout=5)
        self.result.stopped_at = time.time()
        counts = [m for line in self.result.stderr if (m := _COUNT.search(line))]
        self.result.packets = int(counts[0].group(1)) if counts else None
        drops = [m for line in self.result.stderr if (m := _DROPPED.search(line))]
        self.result.dropped = int(drops[0].group(1)) if drops else None
