"""pcapng capture files: sections, interface descriptions and the packet blocks between them."""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterator
from enum import IntEnum
from typing import NamedTuple

from auditor.capture.formats import (
    MAX_RECORD_BYTES,
    NANOSECONDS,
    READ_ERRORS,
    InterfaceInfo,
    ReadFn,
)
from auditor.capture.frame import Frame
from auditor.errors import CaptureError

logger = logging.getLogger(__name__)

SHB_MAGIC = b"\x0a\x0d\x0d\x0a"  # draft-ietf-opsawg-pcapng 4.1: palindromic Block Type
_BOM_BIG = b"\x1a\x2b\x3c\x4d"  # draft-ietf-opsawg-pcapng 4.1: Byte-Order Magic 0x1A2B3C4D
_BOM_LITTLE = b"\x4d\x3c\x2b\x1a"


class BlockType(IntEnum):
    """pcapng block types we act on (draft-ietf-opsawg-pcapng 11.1); others are skipped."""

    INTERFACE_DESCRIPTION = 0x00000001
    PACKET = 0x00000002
    """Obsolete Packet Block (draft-ietf-opsawg-pcapng Appendix A)."""
    SIMPLE_PACKET = 0x00000003
    ENHANCED_PACKET = 0x00000006
    SECTION_HEADER = 0x0A0D0D0A


class OptionCode(IntEnum):
    """Interface Description Block option codes we read (draft-ietf-opsawg-pcapng 4.2)."""

    END_OF_OPT = 0
    IF_NAME = 2
    IF_TSRESOL = 9
    IF_FCSLEN = 13
    IF_TSOFFSET = 14


# Smallest legal total lengths: block header (8) + fixed fields + trailing length (4).
_MIN_SHB = 28  # draft-ietf-opsawg-pcapng 4.1
_MIN_IDB = 20  # draft-ietf-opsawg-pcapng 4.2
_MIN_EPB = 32  # draft-ietf-opsawg-pcapng 4.3
_MIN_SPB = 16  # draft-ietf-opsawg-pcapng 4.4
_MIN_PB = 32  # draft-ietf-opsawg-pcapng Appendix A
_MIN_BLOCK = 12  # draft-ietf-opsawg-pcapng 3.1: type, length, trailing length

_EPB = int(BlockType.ENHANCED_PACKET)  # plain ints: the block loop compares them per packet
_SPB = int(BlockType.SIMPLE_PACKET)
_IDB = int(BlockType.INTERFACE_DESCRIPTION)
_PB = int(BlockType.PACKET)

_DEFAULT_TSRESOL = 6  # draft-ietf-opsawg-pcapng 4.2: if_tsresol absent means 10^-6 s


class _Corrupt(Exception):
    """Structural damage at a byte offset; fatal at open time, a recorded problem later."""

    def __init__(self, problem: str, offset: int) -> None:
        super().__init__(problem)
        self.problem = problem
        self.offset = offset


class _Clock(NamedTuple):
    """An interface plus the integer arithmetic turning its timestamp units into nanoseconds."""

    info: InterfaceInfo
    multiply: int
    divide: int
    offset_ns: int


class PcapngReader:
    """Reads a pcapng stream whose first 4 bytes (the Section Header Block type) are consumed."""

    def __init__(
        self, magic: bytes, read: ReadFn, capture: str, source: str, problems: list[CaptureError]
    ) -> None:
        """Parse the first Section Header Block; raise ``CaptureError`` if it is unusable."""
        del magic  # always SHB_MAGIC; the signature matches PcapReader's
        self._read = read
        self._capture = capture
        self._source = source
        self._problems = problems
        self.interfaces: dict[int, InterfaceInfo] = {}
        self._section = -1
        self._clocks: list[_Clock] = []
        self._offset = 0
        self._set_byte_order(">")
        try:
            length_field = read(4)
            self._read_section_header(0, length_field)
        except _Corrupt as exc:
            problem = f"not a usable pcapng file: {exc.problem}"
            raise CaptureError(source, problem, exc.offset) from None

    def frames(self) -> Iterator[Frame]:
        """Yield every packet block's frame; damage ends the stream as a recorded problem."""
        read = self._read
        capture = self._capture
        number = 0
        last_ts = 0
        start = self._offset
        try:
            while True:
                start = self._offset
                head = read(8)
                if len(head) < 8:
                    if head:
                        raise _Corrupt("truncated block header", start)
                    return
                if head[:4] == SHB_MAGIC:
                    self._read_section_header(start, head[4:])
                    continue
                block_type, length = self._block_head.unpack(head)
                body = self._read_block_body(start, length)
                if block_type == _EPB:
                    clock, ts_units, data, wirelen = self._enhanced_packet(body, length, start)
                elif block_type == _SPB:
                    clock, data, wirelen = self._simple_packet(body, length, start)
                    ts_units = -1
                elif block_type == _IDB:
                    self._interface_description(body, length, start)
                    continue
                elif block_type == _PB:
                    clock, ts_units, data, wirelen = self._obsolete_packet(body, length, start)
                else:
                    continue  # draft-ietf-opsawg-pcapng 3.1: skip unknown blocks by length
                if ts_units >= 0:
                    last_ts = ts_units * clock.multiply // clock.divide + clock.offset_ns
                number += 1
                info = clock.info
                yield Frame(
                    capture, number, last_ts, info.linktype, data, wirelen, info.index, info.name
                )
        except _Corrupt as exc:
            self._problems.append(CaptureError(self._source, exc.problem, exc.offset))
        except READ_ERRORS as exc:
            self._problems.append(CaptureError(self._source, f"read error: {exc}", start))
        except struct.error as exc:
            self._problems.append(CaptureError(self._source, f"malformed block: {exc}", start))

    # -- blocks -----------------------------------------------------------------------------

    def _set_byte_order(self, order: str) -> None:
        self._order = order
        self._block_head = struct.Struct(order + "II")
        self._u32 = struct.Struct(order + "I")
        self._epb = struct.Struct(order + "IIIII")
        self._pb = struct.Struct(order + "HHIIII")

    def _read_section_header(self, start: int, length_field: bytes) -> None:
        """Read a Section Header Block after its type; reset interfaces and byte order."""
        bom = self._read(4)
        if len(length_field) < 4 or len(bom) < 4:
            raise _Corrupt("truncated section header block", start)
        if bom == _BOM_BIG:  # draft-ietf-opsawg-pcapng 4.1: byte order is the section's
            order = ">"
        elif bom == _BOM_LITTLE:
            order = "<"
        else:
            raise _Corrupt(f"bad byte-order magic 0x{bom.hex()}", start)
        (length,) = struct.unpack(order + "I", length_field)
        _check_length(length, _MIN_SHB, start)
        body = self._read(length - 12)
        if len(body) < length - 12:
            raise _Corrupt(f"truncated section header block ({length} bytes announced)", start)
        major, minor = struct.unpack_from(order + "HH", body, 0)
        if struct.unpack_from(order + "I", body, length - 16)[0] != length:
            raise _Corrupt("section header block trailing length mismatch", start)
        if major != 1:  # draft-ietf-opsawg-pcapng 4.1: Major Version 1
            raise _Corrupt(f"unsupported pcapng version {major}.{minor}", start)
        self._set_byte_order(order)
        self._section += 1
        self._clocks = []  # draft-ietf-opsawg-pcapng 4.2: interface ids are per section
        self._offset = start + length
        logger.debug("%s: pcapng section %d (%s-endian)", self._source, self._section, order)

    def _read_block_body(self, start: int, length: int) -> bytes:
        """Read the rest of a block of ``length`` bytes whose 8-byte head was read."""
        _check_length(length, _MIN_BLOCK, start)
        body = self._read(length - 8)
        if len(body) < length - 8:
            raise _Corrupt(f"truncated block: {len(body) + 8} of {length} bytes", start)
        if self._u32.unpack_from(body, length - 12)[0] != length:
            raise _Corrupt("block trailing length mismatch", start)  # draft 3.1
        self._offset = start + length
        return body

    def _enhanced_packet(
        self, body: bytes, length: int, start: int
    ) -> tuple[_Clock, int, bytes, int]:
        """Decode an Enhanced Packet Block body (draft-ietf-opsawg-pcapng 4.3)."""
        if length < _MIN_EPB:
            raise _Corrupt(f"enhanced packet block too short ({length} bytes)", start)
        interface_id, high, low, caplen, wirelen = self._epb.unpack_from(body, 0)
        if caplen > length - _MIN_EPB:
            raise _Corrupt(f"captured length {caplen} overruns its block", start)
        clock = self._clock(interface_id, start)
        return clock, (high << 32) | low, body[20 : 20 + caplen], wirelen

    def _simple_packet(self, body: bytes, length: int, start: int) -> tuple[_Clock, bytes, int]:
        """Decode a Simple Packet Block body (draft-ietf-opsawg-pcapng 4.4)."""
        if length < _MIN_SPB:
            raise _Corrupt(f"simple packet block too short ({length} bytes)", start)
        clock = self._clock(0, start)  # draft-ietf-opsawg-pcapng 4.4: always interface 0
        (wirelen,) = self._u32.unpack_from(body, 0)
        # draft-ietf-opsawg-pcapng 4.4: captured length = min(original length, snaplen)
        caplen = min(wirelen, length - _MIN_SPB)
        if clock.info.snaplen:
            caplen = min(caplen, clock.info.snaplen)
        return clock, body[4 : 4 + caplen], wirelen

    def _obsolete_packet(
        self, body: bytes, length: int, start: int
    ) -> tuple[_Clock, int, bytes, int]:
        """Decode an obsolete Packet Block body (draft-ietf-opsawg-pcapng Appendix A)."""
        if length < _MIN_PB:
            raise _Corrupt(f"packet block too short ({length} bytes)", start)
        interface_id, _drops, high, low, caplen, wirelen = self._pb.unpack_from(body, 0)
        if caplen > length - _MIN_PB:
            raise _Corrupt(f"captured length {caplen} overruns its block", start)
        clock = self._clock(interface_id, start)
        return clock, (high << 32) | low, body[20 : 20 + caplen], wirelen

    def _clock(self, interface_id: int, start: int) -> _Clock:
        if interface_id >= len(self._clocks):
            raise _Corrupt(
                f"packet refers to interface {interface_id} but section {self._section} "
                f"describes {len(self._clocks)}",
                start,
            )
        return self._clocks[interface_id]

    def _interface_description(self, body: bytes, length: int, start: int) -> None:
        """Register an Interface Description Block (draft-ietf-opsawg-pcapng 4.2)."""
        if length < _MIN_IDB:
            raise _Corrupt(f"interface description block too short ({length} bytes)", start)
        linktype, _reserved, snaplen = struct.unpack_from(self._order + "HHI", body, 0)
        options = self._options(body, 8, length - 12, start)
        units = _tsresol_units(options.get(OptionCode.IF_TSRESOL, b""))
        info = InterfaceInfo(
            index=len(self.interfaces),
            section=self._section,
            local_id=len(self._clocks),
            linktype=linktype,
            snaplen=snaplen,
            name=_text(options.get(OptionCode.IF_NAME)),
            fcs_len=_fcs_len(options.get(OptionCode.IF_FCSLEN, b"")),
            ts_units_per_second=units,
            ts_offset_s=self._tsoffset(options.get(OptionCode.IF_TSOFFSET, b"")),
        )
        self.interfaces[info.index] = info
        multiply, divide = _ns_ratio(units)
        self._clocks.append(_Clock(info, multiply, divide, info.ts_offset_s * NANOSECONDS))
        logger.debug("%s: %s linktype %d", self._source, info.describe(), linktype)

    def _options(self, body: bytes, pos: int, end: int, start: int) -> dict[int, bytes]:
        """First value of each option between ``pos`` and ``end`` (draft-ietf-opsawg-pcapng 3.5)."""
        found: dict[int, bytes] = {}
        header = struct.Struct(self._order + "HH")
        while pos + 4 <= end:
            code, size = header.unpack_from(body, pos)
            if code == OptionCode.END_OF_OPT:
                break
            value_end = pos + 4 + size
            if value_end > end:
                self._problems.append(
                    CaptureError(self._source, f"option {code} overruns its block", start)
                )
                break
            found.setdefault(code, body[pos + 4 : value_end])
            pos = value_end + (-size % 4)  # draft-ietf-opsawg-pcapng 3.5: pad to 32 bits
        return found

    def _tsoffset(self, value: bytes) -> int:
        """``if_tsoffset``: signed 64-bit seconds (draft-ietf-opsawg-pcapng 4.2)."""
        if len(value) != 8:
            return 0
        return int(struct.unpack(self._order + "q", value)[0])


def _check_length(length: int, minimum: int, start: int) -> None:
    # draft-ietf-opsawg-pcapng 3.1: Block Total Length is a multiple of 4
    if length < minimum or length % 4 or length > MAX_RECORD_BYTES:
        raise _Corrupt(f"bad block length {length}", start)


def _tsresol_units(value: bytes) -> int:
    """Timestamp units per second from ``if_tsresol`` (draft-ietf-opsawg-pcapng 4.2)."""
    exponent = value[0] if len(value) == 1 else _DEFAULT_TSRESOL
    if exponent & 0x80:  # draft-ietf-opsawg-pcapng 4.2: MSB set means a power of two
        return 1 << (exponent & 0x7F)
    return int(10**exponent)


def _ns_ratio(units: int) -> tuple[int, int]:
    """(multiply, divide) so that ``ts * multiply // divide`` is nanoseconds, exact if possible."""
    if NANOSECONDS % units == 0:
        return NANOSECONDS // units, 1
    if units % NANOSECONDS == 0:
        return 1, units // NANOSECONDS
    return NANOSECONDS, units


def _fcs_len(value: bytes) -> int | None:
    """``if_fcslen``: FCS bytes per frame (draft-ietf-opsawg-pcapng 4.2)."""
    return value[0] if len(value) == 1 else None


def _text(value: bytes | None) -> str | None:
    """A UTF-8 string option, tolerating NUL padding and bad bytes."""
    if value is None:
        return None
    return value.rstrip(b"\x00").decode("utf-8", errors="replace")
