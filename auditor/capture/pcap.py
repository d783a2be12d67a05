"""Classic libpcap capture files: the 24-byte file header and the packet records after it."""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterator

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

FILE_HEADER_LEN = 24
RECORD_HEADER_LEN = 16

# draft-ietf-opsawg-pcap section 4: the magic gives byte order and timestamp fraction unit.
_MAGICS: dict[bytes, tuple[str, int, int]] = {
    # magic as stored: (struct byte order, nanoseconds per fraction unit, units per second)
    b"\xa1\xb2\xc3\xd4": (">", 1000, 1_000_000),
    b"\xd4\xc3\xb2\xa1": ("<", 1000, 1_000_000),
    b"\xa1\xb2\x3c\x4d": (">", 1, NANOSECONDS),
    b"\x4d\x3c\xb2\xa1": ("<", 1, NANOSECONDS),
}
_MODIFIED_MAGICS = frozenset({b"\xa1\xb2\xcd\x34", b"\x34\xcd\xb2\xa1"})
"""Kuznetzov's "modified" pcap (24-byte record headers); recognised only to say so."""

_LINKTYPE_MASK = 0x0000FFFF  # draft-ietf-opsawg-pcap section 4: link type is the low 16 bits
_FCS_PRESENT = 0x04000000  # draft-ietf-opsawg-pcap section 4: P bit, FCS length is valid
_FCS_WORDS_SHIFT = 28  # draft-ietf-opsawg-pcap section 4: FCS length in 16-bit words, bits 28-31


def is_pcap_magic(head: bytes) -> bool:
    """Whether the first four bytes of a stream are a classic pcap magic number we read."""
    return head in _MAGICS


def is_modified_pcap_magic(head: bytes) -> bool:
    """Whether the first four bytes are the magic of the unsupported "modified" pcap variant."""
    return head in _MODIFIED_MAGICS


class PcapReader:
    """Reads a classic pcap stream whose 4-byte magic has already been consumed."""

    def __init__(
        self, magic: bytes, read: ReadFn, capture: str, source: str, problems: list[CaptureError]
    ) -> None:
        """Parse the rest of the file header; raise ``CaptureError`` if it is unusable."""
        self._read = read
        self._capture = capture
        self._source = source
        self._problems = problems
        byte_order, self._frac_ns, units = _MAGICS[magic]
        self._record_header = struct.Struct(byte_order + "IIII")
        rest = read(FILE_HEADER_LEN - 4)
        if len(rest) < FILE_HEADER_LEN - 4:
            raise CaptureError(source, "truncated pcap file header", 0)
        major, minor, _zone, _sigfigs, snaplen, link_field = struct.unpack(
            byte_order + "HHiIII", rest
        )
        if major != 2:  # draft-ietf-opsawg-pcap section 4: current major version is 2
            raise CaptureError(source, f"unsupported pcap version {major}.{minor}", 0)
        self.snaplen = snaplen
        self.interface = InterfaceInfo(
            index=0,
            section=0,
            local_id=0,
            linktype=link_field & _LINKTYPE_MASK,
            snaplen=snaplen,
            fcs_len=_fcs_length(link_field),
            ts_units_per_second=units,
        )
        self.interfaces = {0: self.interface}
        logger.debug("%s: pcap %d.%d, linktype %d", source, major, minor, self.interface.linktype)

    def frames(self) -> Iterator[Frame]:
        """Yield every complete record; a cut or implausible record ends the stream as a
        recorded problem."""
        read = self._read
        unpack = self._record_header.unpack
        capture = self._capture
        linktype = self.interface.linktype
        frac_ns = self._frac_ns
        offset = FILE_HEADER_LEN
        number = 0
        try:
            while True:
                header = read(RECORD_HEADER_LEN)
                if len(header) < RECORD_HEADER_LEN:
                    if header:
                        self._problem("truncated record header", offset)
                    return
                seconds, fraction, caplen, wirelen = unpack(header)
                if caplen > MAX_RECORD_BYTES:
                    self._problem(f"implausible captured length {caplen}", offset)
                    return
                data = read(caplen)
                if len(data) < caplen:
                    self._problem(
                        f"truncated record: {len(data)} of {caplen} captured bytes", offset
                    )
                    return
                number += 1
                yield Frame(
                    capture,
                    number,
                    seconds * NANOSECONDS + fraction * frac_ns,
                    linktype,
                    data,
                    wirelen,
                    0,
                    None,
                )
                offset += RECORD_HEADER_LEN + caplen
        except READ_ERRORS as exc:
            self._problem(f"read error: {exc}", offset)

    def _problem(self, problem: str, offset: int) -> None:
        self._problems.append(CaptureError(self._source, problem, offset))


def _fcs_length(link_field: int) -> int | None:
    """FCS bytes per frame from the header's additional information, None when not given."""
    if not link_field & _FCS_PRESENT:
        return None
    return ((link_field >> _FCS_WORDS_SHIFT) & 0xF) * 2
