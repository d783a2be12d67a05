"""Build pcap and pcapng captures byte by byte with struct, for the capture reader tests."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

from auditor.capture.frame import Frame
from auditor.capture.sources import CaptureReader, open_capture
from auditor.errors import CaptureError

PCAP_USEC_MAGIC = 0xA1B2C3D4
PCAP_NSEC_MAGIC = 0xA1B23C4D

SHB = 0x0A0D0D0A
IDB = 1
PB = 2
SPB = 3
NRB = 4
ISB = 5
EPB = 6
DSB = 0x0A
CUSTOM = 0x40000BAD

IF_NAME = 2
IF_TSRESOL = 9
IF_FCSLEN = 13
IF_TSOFFSET = 14


@dataclass
class Built:
    """Capture bytes plus where each packet record starts and ends."""

    data: bytes = b""
    packets: list[tuple[int, int]] = field(default_factory=list)
    """(start, end) byte offsets of each packet record, in order."""
    blocks: list[tuple[int, int]] = field(default_factory=list)
    """(start, end) of every record or block after the first header, packets included."""

    def add(self, chunk: bytes, *, packet: bool) -> None:
        start = len(self.data)
        self.data += chunk
        self.blocks.append((start, len(self.data)))
        if packet:
            self.packets.append((start, len(self.data)))


def pcap_header(
    order: str = "<", *, nano: bool = False, linktype_field: int = 1, snaplen: int = 65535
) -> bytes:
    magic = PCAP_NSEC_MAGIC if nano else PCAP_USEC_MAGIC
    return struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype_field)


def pcap_record(order: str, sec: int, frac: int, data: bytes, wirelen: int | None = None) -> bytes:
    wire = len(data) if wirelen is None else wirelen
    return struct.pack(order + "IIII", sec, frac, len(data), wire) + data


def build_pcap(
    records: list[tuple[int, int, bytes]], order: str = "<", *, nano: bool = False
) -> Built:
    built = Built(pcap_header(order, nano=nano))
    for sec, frac, data in records:
        built.add(pcap_record(order, sec, frac, data), packet=True)
    return built


def block(order: str, block_type: int, body: bytes) -> bytes:
    body += b"\x00" * (-len(body) % 4)
    length = len(body) + 12
    return struct.pack(order + "II", block_type, length) + body + struct.pack(order + "I", length)


def option(order: str, code: int, value: bytes) -> bytes:
    return struct.pack(order + "HH", code, len(value)) + value + b"\x00" * (-len(value) % 4)


def options(order: str, *pairs: tuple[int, bytes]) -> bytes:
    if not pairs:
        return b""
    return b"".join(option(order, code, value) for code, value in pairs) + option(order, 0, b"")


def shb(order: str, major: int = 1) -> bytes:
    bom = struct.pack(order + "I", 0x1A2B3C4D)
    return block(order, SHB, bom + struct.pack(order + "HHq", major, 0, -1))


def idb(order: str, linktype: int, snaplen: int = 262144, *opts: tuple[int, bytes]) -> bytes:
    return block(
        order, IDB, struct.pack(order + "HHI", linktype, 0, snaplen) + options(order, *opts)
    )


def epb(order: str, interface: int, ts: int, data: bytes, wirelen: int | None = None) -> bytes:
    wire = len(data) if wirelen is None else wirelen
    fixed = struct.pack(order + "IIIII", interface, ts >> 32, ts & 0xFFFFFFFF, len(data), wire)
    return block(order, EPB, fixed + data)


def spb(order: str, data: bytes, wirelen: int | None = None) -> bytes:
    wire = len(data) if wirelen is None else wirelen
    return block(order, SPB, struct.pack(order + "I", wire) + data)


def obsolete_pb(order: str, interface: int, ts: int, data: bytes) -> bytes:
    fixed = struct.pack(
        order + "HHIIII", interface, 0, ts >> 32, ts & 0xFFFFFFFF, len(data), len(data)
    )
    return block(order, PB, fixed + data)


def build_pcapng(packets: list[tuple[int, bytes]], order: str = "<") -> Built:
    """One section, one Ethernet interface with nanosecond timestamps, one EPB per packet."""
    built = Built(shb(order))
    built.add(idb(order, 1, 262144, (IF_TSRESOL, b"\x09")), packet=False)
    for ts, data in packets:
        built.add(epb(order, 0, ts, data), packet=True)
    return built


def write(directory: Path, name: str, data: bytes) -> str:
    path = directory / name
    path.write_bytes(data)
    return str(path)


def read_all(path: str) -> tuple[list[Frame], list[CaptureError], CaptureReader]:
    """Open and drain one capture; return its frames, its problems and the reader."""
    reader = open_capture(path)
    frames = list(reader)
    return frames, reader.problems, reader
