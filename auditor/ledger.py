"""Frame accounting: every frame read is settled exactly once, as DNS or under a named reason."""

from __future__ import annotations

from collections import Counter
from enum import StrEnum

from auditor.anomaly import Anomaly


class Reason(StrEnum):
    """Why a frame ended where it did. The values are the keys of ``stats.json``'s ``frames``."""

    DNS_MESSAGE = "dns_message"
    """The frame completed (or was the last part of) a DNS message that parsed, maybe leniently."""
    DNS_PARSE_ERROR = "dns_parse_error"
    """The frame completed a message on a DNS port that dnspython could not parse at all."""
    FILTERED_OUT = "filtered_out"
    """The frame did not match the user's BPF ``--filter`` expression (tcpdump's semantics)."""
    UNSUPPORTED_LINKTYPE = "unsupported_linktype"
    """The interface's link type is not one we decode."""
    NOT_IP = "not_ip"
    """The link layer carried something other than IPv4/IPv6 (ARP, LLDP, ...)."""
    MALFORMED_LINK = "malformed_link"
    """The link-layer header itself was cut short or inconsistent."""
    MALFORMED_IP = "malformed_ip"
    """The IP header (or an IPv6 extension header) was invalid."""
    TRUNCATED_SNAPLEN = "truncated_snaplen"
    """The frame was cut by the capture's snapshot length before the DNS payload ended."""
    NOT_UDP_TCP = "not_udp_tcp"
    """IP carried another protocol (ICMP, ESP, ...)."""
    MALFORMED_TRANSPORT = "malformed_transport"
    """The UDP or TCP header was invalid or cut short."""
    NOT_DNS_PORT = "not_dns_port"
    """UDP/TCP traffic on ports outside the DNS port set."""
    EMPTY_UDP = "empty_udp"
    """A UDP datagram on a DNS port with no payload."""
    FRAGMENT_DUPLICATE = "fragment_duplicate"
    """An IP fragment identical to one already held (a retransmission or a mirrored copy)."""
    FRAGMENT_INCOMPLETE = "fragment_incomplete"
    """An IP fragment whose set never completed before it expired or the capture ended."""
    FRAGMENT_OVERLAP_CONFLICT = "fragment_overlap_conflict"
    """A fragment overlapping another one with different bytes; the set is reported, not merged."""
    FRAGMENT_EVICTED = "fragment_evicted"
    """A fragment dropped because the defragmenter's memory cap was reached."""
    TCP_CONTROL = "tcp_control"
    """A TCP segment without payload (SYN, ACK, FIN, RST)."""
    TCP_RETRANSMISSION = "tcp_retransmission"
    """A TCP segment whose payload had already been seen in full."""
    TCP_GAP = "tcp_gap"
    """TCP payload that could not be framed because bytes before it were never captured."""
    TCP_MIDSTREAM = "tcp_midstream"
    """TCP payload skipped because the capture started in the middle of a stream."""
    TCP_INCOMPLETE_MESSAGE = "tcp_incomplete_message"
    """TCP payload of a DNS message whose end never arrived."""
    TCP_EVICTED = "tcp_evicted"
    """TCP payload dropped because a per-flow or total memory cap was reached."""
    DECODER_ERROR = "decoder_error"
    """Our own decoder failed on this frame (a bug; logged with the frame number)."""


class Ledger:
    """Counts frames read and where each one was settled.

    Each stage settles the frames whose fate it decides; the invariant checked at the end of a
    run is ``frames_read == sum(settled.values())`` once every stage has been flushed.
    """

    __slots__ = ("anomalies", "frames_read", "observed", "settled")

    def __init__(self) -> None:
        self.frames_read = 0
        self.settled: Counter[Reason] = Counter()
        self.observed: Counter[str] = Counter()
        self.anomalies: list[Anomaly] = []

    def observe(self, what: str, count: int = 1) -> None:
        """Count something noticed that does not settle a frame (``udp_bad_checksum``, ...)."""
        self.observed[what] += count

    def note(self, anomaly: Anomaly) -> None:
        """Hold an anomaly until the pipeline drains it with ``take_anomalies``."""
        self.anomalies.append(anomaly)

    def take_anomalies(self) -> list[Anomaly]:
        """Return and forget the anomalies noted since the last call."""
        taken, self.anomalies = self.anomalies, []
        return taken

    def read(self, count: int = 1) -> None:
        """Record that ``count`` frames entered the pipeline."""
        self.frames_read += count

    def settle(self, reason: Reason, count: int = 1) -> None:
        """Record that ``count`` frames ended for ``reason``."""
        if count:
            self.settled[reason] += count

    @property
    def pending(self) -> int:
        """Frames read but not yet settled (held in reassembly state)."""
        return self.frames_read - sum(self.settled.values())

    def as_dict(self) -> dict[str, int]:
        """The counts as a JSON-ready mapping with every reason present."""
        return {reason.value: self.settled.get(reason, 0) for reason in Reason}
