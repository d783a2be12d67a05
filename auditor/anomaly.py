"""Traffic anomalies found while decoding: data about the capture, never exceptions."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class AnomalyCode(StrEnum):
    """Stable codes for problems found in the traffic below the DNS layer."""

    UNSUPPORTED_LINKTYPE = "unsupported_linktype"
    FRAGMENT_OVERLAP_CONFLICT = "fragment_overlap_conflict"
    """Two IP fragments of one datagram overlap with different bytes (a forgery technique)."""
    FRAGMENT_OVERLAP_SAME = "fragment_overlap_same"
    """Two IP fragments overlap with identical bytes (harmless but unusual)."""
    FRAGMENT_INCOMPLETE = "fragment_incomplete"
    FRAGMENT_EVICTED = "fragment_evicted"
    TCP_GAP = "tcp_gap"
    TCP_OVERLAP_CONFLICT = "tcp_overlap_conflict"
    """Retransmitted TCP bytes that differ from the bytes first seen (an injection sign)."""
    TCP_MIDSTREAM = "tcp_midstream"
    TCP_EVICTED = "tcp_evicted"
    TCP_INCOMPLETE_MESSAGE = "tcp_incomplete_message"
    DNS_PARSE_ERROR = "dns_parse_error"
    DECODER_ERROR = "decoder_error"


@dataclass(frozen=True, slots=True)
class Anomaly:
    """One problem found in the traffic, with the provenance needed to find it again."""

    code: AnomalyCode
    """What kind of problem."""
    capture: str
    """Capture (file name or interface) of the frame that revealed it."""
    frames: tuple[int, ...]
    """Frame numbers involved, 1-based, as Wireshark counts."""
    ts_ns: int
    """Capture time of the frame that revealed it, nanoseconds since the epoch."""
    detail: str
    """A human-readable sentence naming addresses, ports, offsets and sizes."""
    src: str | None = None
    """Source address, when known."""
    dst: str | None = None
    """Destination address, when known."""
    params: dict[str, object] = field(default_factory=dict)
    """Machine-readable parameters (offsets, lengths, ids) for the findings report."""
