"""BPF filter expressions applied to captured frames, as tcpdump -r FILE EXPR applies them.

libpcap compiles the expression (``pcap_compile`` on a dead handle per link type) and runs
it on each frame (``pcap_offline_filter``), so the syntax and semantics are exactly tcpdump's;
frame numbers stay those of the capture, unlike filtering through ``tcpdump -w -``."""

from __future__ import annotations

import ctypes
import ctypes.util

from auditor.capture.frame import Frame
from auditor.errors import CaptureError

_PCAP_NETMASK_UNKNOWN = 0xFFFFFFFF
_SNAPLEN = 262_144


class _BpfProgram(ctypes.Structure):
    _fields_ = [("bf_len", ctypes.c_uint), ("bf_insns", ctypes.c_void_p)]


class _PacketHeader(ctypes.Structure):
    _fields_ = [("ts_sec", ctypes.c_long), ("ts_usec", ctypes.c_long),
                ("caplen", ctypes.c_uint32), ("len", ctypes.c_uint32)]


def _libpcap() -> ctypes.CDLL:
    name = ctypes.util.find_library("pcap")
    if name is None:
        raise CaptureError("--filter", "libpcap is not installed (apt-get install libpcap0.8)")
    lib = ctypes.CDLL(name)
    lib.pcap_open_dead.restype = ctypes.c_void_p
    lib.pcap_open_dead.argtypes = [ctypes.c_int, ctypes.c_int]
    lib.pcap_compile.argtypes = [ctypes.c_void_p, ctypes.POINTER(_BpfProgram), ctypes.c_char_p,
                                 ctypes.c_int, ctypes.c_uint32]
    lib.pcap_geterr.restype = ctypes.c_char_p
    lib.pcap_geterr.argtypes = [ctypes.c_void_p]
    lib.pcap_offline_filter.argtypes = [ctypes.POINTER(_BpfProgram),
                                        ctypes.POINTER(_PacketHeader), ctypes.c_char_p]
    lib.pcap_freecode.argtypes = [ctypes.POINTER(_BpfProgram)]
    lib.pcap_close.argtypes = [ctypes.c_void_p]
    return lib


class FrameFilter:
    """``matches(frame)``: whether a frame passes a BPF expression (compiled once per link
    type met; an expression that does not compile is a ``CaptureError`` naming it)."""

    def __init__(self, expression: str) -> None:
        self.expression = expression
        self._lib = _libpcap()
        self._programs: dict[int, _BpfProgram] = {}
        self._header = _PacketHeader()
        self.compile(1)  # Ethernet: a syntax error shows before any input is read

    def compile(self, linktype: int) -> _BpfProgram:
        """The program for one link type (compiled on first use)."""
        program = self._programs.get(linktype)
        if program is not None:
            return program
        program = _BpfProgram()
        handle = self._lib.pcap_open_dead(linktype, _SNAPLEN)
        if not handle:
            raise CaptureError("--filter", f"libpcap knows no link type {linktype}")
        try:
            status = self._lib.pcap_compile(handle, ctypes.byref(program),
                                            self.expression.encode(), 1, _PCAP_NETMASK_UNKNOWN)
            if status != 0:
                error = (self._lib.pcap_geterr(handle) or b"").decode(errors="replace")
                raise CaptureError("--filter", f"cannot compile BPF {self.expression!r} for "
                                               f"link type {linktype}: {error}")
        finally:
            self._lib.pcap_close(handle)
        self._programs[linktype] = program
        return program

    def matches(self, frame: Frame) -> bool:
        """Whether the frame's captured bytes pass the expression."""
        program = self._programs.get(frame.linktype) or self.compile(frame.linktype)
        header = self._header
        header.caplen = len(frame.data)
        header.len = frame.wirelen
        return bool(self._lib.pcap_offline_filter(ctypes.byref(program), ctypes.byref(header),
                                                  frame.data))

    def close(self) -> None:
        """Free the compiled programs."""
        for program in self._programs.values():
            self._lib.pcap_freecode(ctypes.byref(program))
        self._programs.clear()
