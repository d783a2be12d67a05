"""TCP reassembly per flow and RFC 1035 4.2.2 / RFC 7766 two-byte length framing of DNS."""

from __future__ import annotations

from auditor.decode.transport import TCPSegment, WireMessage
from auditor.ledger import Ledger


class TCPReassembler:
    """Sans-I/O: ``feed`` segments of any flow, get framed DNS messages, bounded in memory."""

    def __init__(
        self,
        ledger: Ledger,
        *,
        timeout_ns: int = 120_000_000_000,
        max_flows: int = 50_000,
        max_flow_bytes: int = 256 * 1024,
        max_total_bytes: int = 256 * 1024 * 1024,
    ) -> None:
        raise NotImplementedError

    def feed(self, segment: TCPSegment) -> list[WireMessage]:
        """Take one segment; return every DNS message it completes, in stream order."""
        raise NotImplementedError

    def expire(self, now_ns: int) -> list[WireMessage]:
        """Close flows idle longer than the timeout at capture time ``now_ns``."""
        raise NotImplementedError

    def flush(self) -> list[WireMessage]:
        """End of input: close every flow, settling what could not be framed."""
        raise NotImplementedError
