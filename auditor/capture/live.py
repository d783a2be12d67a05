"""Live capture: raw Linux packet sockets with a kernel BPF filter, or a pcap stream read in a
thread, delivered as batches of ``Frame`` to a loop that must also wake up on a timer."""

from __future__ import annotations

import ctypes
import logging
import os
import queue
import select
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from auditor.capture.frame import Frame, LinkType
from auditor.capture.sources import STDIN, CaptureReader, display_name
from auditor.errors import CaptureError

logger = logging.getLogger(__name__)

ETH_P_ALL = 0x0003  # linux/if_ether.h: every protocol
SOL_PACKET = 263  # linux/socket.h
PACKET_STATISTICS = 6  # linux/if_packet.h
PACKET_OUTGOING = 4  # linux/if_packet.h: sll_pkttype of a frame this host sent
SO_ATTACH_FILTER = 26  # asm-generic/socket.h
SO_RCVBUFFORCE = 33  # asm-generic/socket.h (needs CAP_NET_ADMIN, else SO_RCVBUF is used)
SO_TIMESTAMPNS = 35  # asm-generic/socket.h; the cmsg type SCM_TIMESTAMPNS has the same value
CAP_NET_RAW = 13  # linux/capability.h

ARPHRD_ETHER = 1
ARPHRD_LOOPBACK = 772
_ETHERNET_LIKE = frozenset({ARPHRD_ETHER, ARPHRD_LOOPBACK})  # lo has a zeroed Ethernet header
"""Interfaces read with their link header; any other kind is read cooked (``SOCK_DGRAM``,
the frame starts at the IP header) as raw IP."""

SNAPLEN = 262_144
"""Largest frame read in one piece (tcpdump's default snapshot length)."""
RCVBUF_BYTES = 64 << 20
"""Kernel receive buffer asked for each socket: absorbs bursts while Python catches up."""
BATCH_FRAMES = 512
"""Frames read per socket per wake-up, so a busy interface cannot starve the timer."""

_TIMESPEC = struct.Struct("qq")
_TPACKET_STATS = struct.Struct("II")
_BPF_INSN = struct.Struct("HBBI")
_BPF_RET_K = 0x06  # linux/filter.h: BPF_RET | BPF_K


def default_filter(ports: Iterable[int] = (53,)) -> str:
    """BPF for DNS on ``ports`` plus every IP fragment (a non-first fragment has no port)."""
    port_terms = " or ".join(f"port {port}" for port in sorted(set(ports)))
    return (
        f"({port_terms})"
        " or (ip and ip[6:2] & 0x1fff != 0)"  # RFC 791: fragment offset is not zero
        " or (ip6 and ip6[6] == 44)"  # RFC 8200 4.5: a Fragment header follows the fixed header
    )


class FrameSource(Protocol):
    """Where the live loop gets frames from."""

    def poll(self, timeout_s: float) -> list[Frame]:
        """Frames available now, waiting at most ``timeout_s`` for the first one."""
        ...

    @property
    def exhausted(self) -> bool:
        """True once no frame will ever come again (end of a stream)."""
        ...

    def counters(self) -> dict[str, int]:
        """Frames received and dropped below us (kernel or queue), cumulative."""
        ...

    def close(self) -> None:
        """Stop capturing and release everything."""
        ...


def has_capture_privilege() -> bool:
    """Whether this process may open packet sockets: root or CAP_NET_RAW in the effective set."""
    if os.geteuid() == 0:
        return True
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> CAP_NET_RAW & 1)
    except OSError:
        return False
    return False


def privilege_error(interface: str) -> CaptureError:
    """The error naming what is missing to capture on ``interface``."""
    return CaptureError(
        interface,
        f"capturing needs root or the CAP_NET_RAW capability, and this process (uid "
        f"{os.geteuid()}) has neither; run as root, or grant it with "
        f"'setcap cap_net_raw+ep' on the Python interpreter, or pipe 'tcpdump -w -' into "
        f"'dnssec-auditor live --read -'",
    )


def compile_bpf(expression: str, linktype: int) -> bytes:
    """Compile a BPF expression for ``linktype`` to ``struct sock_filter`` bytes, with libpcap
    through scapy, or with ``tcpdump -ddd`` when libpcap cannot be loaded."""
    try:
        program = _compile_with_libpcap(expression, linktype)
    except ImportError:
        program = _compile_with_tcpdump(expression, linktype)
    return _accept_whole_frames(program)


def _accept_whole_frames(program: bytes) -> bytes:
    """Make every accepting ``ret #k`` keep ``SNAPLEN`` bytes (scapy compiles with 65535)."""
    out = bytearray(program)
    for offset in range(0, len(out), _BPF_INSN.size):
        code, jt, jf, k = _BPF_INSN.unpack_from(out, offset)
        if code == _BPF_RET_K and k:
            _BPF_INSN.pack_into(out, offset, code, jt, jf, SNAPLEN)
    return bytes(out)


def _compile_with_libpcap(expression: str, linktype: int) -> bytes:
    from scapy.arch.common import compile_filter, free_filter
    from scapy.error import Scapy_Exception

    try:
        program = compile_filter(expression, linktype=linktype)
    except (Scapy_Exception, OSError) as exc:
        raise CaptureError("--filter", f"cannot compile BPF {expression!r}: {exc}") from exc
    try:
        size = program.bf_len * _BPF_INSN.size
        return ctypes.string_at(program.bf_insns, size)
    finally:
        free_filter(program)


def _compile_with_tcpdump(expression: str, linktype: int) -> bytes:
    dlt = "RAW" if linktype == LinkType.RAW else "EN10MB"
    try:
        done = subprocess.run(
            ["tcpdump", "-ddd", "-y", dlt, expression],
            capture_output=True, text=True, timeout=30, check=False,
        )
    except OSError as exc:
        raise CaptureError("--filter", f"neither libpcap nor tcpdump available: {exc}") from exc
    if done.returncode != 0:
        raise CaptureError("--filter", f"cannot compile BPF {expression!r}: {done.stderr}")
    lines = done.stdout.split("\n")
    count = int(lines[0])
    return b"".join(
        _BPF_INSN.pack(*(int(value) for value in line.split())) for line in lines[1 : count + 1]
    )


def attach_bpf(sock: socket.socket, program: bytes) -> None:
    """Attach compiled BPF to a socket (``SO_ATTACH_FILTER`` takes ``struct sock_fprog``)."""
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = struct.pack("HL", len(program) // _BPF_INSN.size, ctypes.addressof(buffer))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


def _interface_type(interface: str) -> int:
    try:
        with open(f"/sys/class/net/{interface}/type", encoding="ascii") as handle:
            return int(handle.read().strip())
    except FileNotFoundError as exc:
        raise CaptureError(interface, "no such network interface") from exc
    except (OSError, ValueError):
        return ARPHRD_ETHER


class InterfaceSocket:
    """One non-blocking ``AF_PACKET`` socket on one interface, BPF-filtered in the kernel,
    with kernel nanosecond timestamps and kernel drop counters."""

    def __init__(self, interface: str, bpf: str) -> None:
        self.interface = interface
        hatype = _interface_type(interface)
        ethernet = hatype in _ETHERNET_LIKE
        self.linktype = int(LinkType.ETHERNET if ethernet else LinkType.RAW)
        self.skip_outgoing = hatype == ARPHRD_LOOPBACK  # lo shows each packet out and in
        program = compile_bpf(bpf, self.linktype)
        self.sock = self._open(interface, program)
        self.number = 0
        self.kernel_received = 0
        self.kernel_dropped = 0
        self._buffer = bytearray(SNAPLEN)
        self._ancillary = socket.CMSG_SPACE(_TIMESPEC.size)

    def _open(self, interface: str, program: bytes) -> socket.socket:
        kind = socket.SOCK_DGRAM if self.linktype == LinkType.RAW else socket.SOCK_RAW
        try:
            sock = socket.socket(socket.AF_PACKET, kind, 0)  # protocol 0: nothing until bound
        except PermissionError as exc:
            raise privilege_error(interface) from exc
        try:
            attach_bpf(sock, program)
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF_BYTES)
            except OSError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF_BYTES)
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            sock.bind((interface, ETH_P_ALL))
        except OSError as exc:
            sock.close()
            raise CaptureError(interface, f"cannot capture: {exc.strerror or exc}") from exc
        sock.setblocking(False)
        return sock

    def fileno(self) -> int:
        """The socket's descriptor, for ``select.poll``."""
        return self.sock.fileno()

    def read(self, limit: int = BATCH_FRAMES) -> list[Frame]:
        """Up to ``limit`` frames already queued in the kernel; never blocks."""
        frames: list[Frame] = []
        recv = self.sock.recvmsg_into
        buffers = [self._buffer]
        for _ in range(limit):
            try:
                size, ancillary, _flags, address = recv(buffers, self._ancillary, socket.MSG_TRUNC)
            except (BlockingIOError, InterruptedError):
                break
            if self.skip_outgoing and address[2] == PACKET_OUTGOING:
                continue
            frames.append(self._frame(size, ancillary))
        return frames

    def _frame(self, size: int, ancillary: list[tuple[int, int, bytes]]) -> Frame:
        ts_ns = 0
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                seconds, nanos = _TIMESPEC.unpack_from(data)
                ts_ns = seconds * 1_000_000_000 + nanos
        if not ts_ns:
            ts_ns = time.time_ns()
        self.number += 1
        caplen = min(size, SNAPLEN)
        return Frame(self.interface, self.number, ts_ns, self.linktype,
                     bytes(self._buffer[:caplen]), size, 0, self.interface)

    def update_counters(self) -> None:
        """Add the kernel's counts since the last call (reading them resets them)."""
        try:
            raw = self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, _TPACKET_STATS.size)
        except OSError:
            return
        received, dropped = _TPACKET_STATS.unpack(raw)
        self.kernel_received += received
        self.kernel_dropped += dropped

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()


class LiveCapture:
    """Several interfaces captured at once; ``poll`` waits on all of them."""

    def __init__(self, interfaces: Sequence[str], bpf: str) -> None:
        if not interfaces:
            raise CaptureError("--interface", "no interface given")
        if not has_capture_privilege():
            raise privilege_error(interfaces[0])
        self.sockets: list[InterfaceSocket] = []
        try:
            for interface in dict.fromkeys(interfaces):
                self.sockets.append(InterfaceSocket(interface, bpf))
        except BaseException:
            self.close()
            raise
        self._poller = select.poll()
        self._by_fd = {sock.fileno(): sock for sock in self.sockets}
        for fd in self._by_fd:
            self._poller.register(fd, select.POLLIN)

    @property
    def exhausted(self) -> bool:
        """An interface never ends."""
        return False

    def poll(self, timeout_s: float) -> list[Frame]:
        """Frames from every ready interface, waiting at most ``timeout_s`` for the first."""
        frames: list[Frame] = []
        for fd, _event in self._poller.poll(max(0, int(timeout_s * 1000))):
            frames.extend(self._by_fd[fd].read())
        if len(self.sockets) > 1 and frames:
            frames.sort(key=_timestamp)
        return frames

    def counters(self) -> dict[str, int]:
        """Kernel counts summed over interfaces: frames passing the filter, and drops."""
        for sock in self.sockets:
            sock.update_counters()
        return {
            "received": sum(sock.kernel_received for sock in self.sockets),
            "dropped": sum(sock.kernel_dropped for sock in self.sockets),
        }

    def close(self) -> None:
        """Close every socket."""
        for sock in self.sockets:
            sock.close()


def _timestamp(frame: Frame) -> int:
    return frame.ts_ns


_END = object()


@dataclass(slots=True)
class _StreamState:
    error: BaseException | None = None
    finished: bool = False


class StreamCapture:
    """A pcap/pcapng stream (``-`` is standard input, e.g. ``tcpdump -w - | ...``) read by a
    thread into a bounded queue, so the live loop keeps its timer while the pipe is quiet.
    A full queue blocks the reader (the writer is slowed down), it never drops."""

    def __init__(self, path: str, max_queued: int = 50_000) -> None:
        # Standard input is opened anew (/dev/stdin) so the reading thread owns its buffer:
        # a thread blocked inside sys.stdin.buffer would stop interpreter shutdown.
        own_path = "/dev/stdin" if path == STDIN else path
        self.reader = CaptureReader(own_path, name=display_name(path))  # CaptureError if unusable
        self._queue: queue.Queue[object] = queue.Queue(max_queued)
        self._state = _StreamState()
        self.received = 0
        self._thread = threading.Thread(target=self._pump, name="capture-stream", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        try:
            for frame in self.reader:
                self._queue.put(frame)
        except BaseException as exc:  # handed to the loop thread; never lost
            self._state.error = exc
        finally:
            self._queue.put(_END)

    @property
    def exhausted(self) -> bool:
        """True once the stream ended and every frame was taken."""
        return self._state.finished

    @property
    def problems(self) -> list[CaptureError]:
        """Damage found in the stream (a cut last record)."""
        return self.reader.problems

    def poll(self, timeout_s: float) -> list[Frame]:
        """Queued frames, waiting at most ``timeout_s`` for the first."""
        frames: list[Frame] = []
        if self._state.finished:
            return frames
        try:
            item = self._queue.get(timeout=timeout_s)
        except queue.Empty:
            return frames
        while True:
            if item is _END:
                self._state.finished = True
                if self._state.error is not None:
                    raise self._state.error
                break
            assert isinstance(item, Frame)
            frames.append(item)
            if len(frames) >= BATCH_FRAMES:
                break
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
        self.received += len(frames)
        return frames

    def counters(self) -> dict[str, int]:
        """Frames taken from the stream; a stream never drops (it blocks its writer)."""
        return {"received": self.received, "dropped": 0}

    def close(self) -> None:
        """Stop taking frames; the file is closed once the reading thread has ended (a thread
        still blocked on a quiet pipe is a daemon and ends with the process)."""
        self._state.finished = True
        if not self._thread.is_alive():
            self.reader.close()
