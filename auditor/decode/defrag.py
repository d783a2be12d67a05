"""IPv4 and IPv6 defragmentation: any arrival order, duplicates, expiry by capture time, bounded."""

from __future__ import annotations

from auditor.decode.dissect import IPDatagram
from auditor.ledger import Ledger


class Defragmenter:
    """Sans-I/O reassembler: ``feed`` fragments, get whole datagrams; ``expire`` by capture time."""

    def __init__(
        self,
        ledger: Ledger,
        *,
        timeout_ns: int = 30_000_000_000,
        max_sets: int = 10_000,
        max_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        raise NotImplementedError

    def feed(self, datagram: IPDatagram) -> IPDatagram | None:
        """Pass whole datagrams through; hold fragments; return a datagram when a set completes."""
        raise NotImplementedError

    def expire(self, now_ns: int) -> None:
        """Drop sets older than the timeout at capture time ``now_ns``, settling their frames."""
        raise NotImplementedError

    def flush(self) -> None:
        """End of input: every held set is incomplete; settle its frames."""
        raise NotImplementedError
