"""Our own failures are contained per unit of input, the same way in every driver: a message
that breaks matching, a response that breaks evidence, judging, its records or a finding stage
is counted, logged (the first few, then counted only) and reported as a ``decoder_error``
anomaly citing its frame; the run goes on (STYLE.md: bad traffic must never crash the tool)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from auditor.anomaly import Anomaly, AnomalyCode
from auditor.capture.frame import Frame
from auditor.decode.transport import WireMessage
from auditor.messages import ObservedMessage
from auditor.transactions import Transaction

logger = logging.getLogger(__name__)


class Containment:
    """Counts and reports internal errors; ``on_anomaly`` gets one anomaly per error."""

    def __init__(self, on_anomaly: Callable[[Anomaly], None] | None = None,
                 limit: int = 10) -> None:
        self.on_anomaly = on_anomaly
        """Where the anomaly of each error goes (the findings output); None: counted only."""
        self.limit = limit
        self.count = 0
        """Internal errors contained so far (``stats.json`` of live runs: ``internal_errors``)."""

    def frame_failed(self, frame: Frame, exc: Exception) -> None:
        """Handling ``frame`` raised ``exc``."""
        self.failed(frame.capture, frame.number, frame.ts_ns, exc)

    def message_failed(self, message: ObservedMessage, exc: Exception) -> None:
        """Matching ``message`` (or a hook that observes it) raised ``exc``."""
        self._failed_at(message.wire, exc)

    def response_failed(self, transaction: Transaction, exc: Exception) -> None:
        """Building the evidence of, judging or reporting ``transaction``'s response raised."""
        self._failed_at(transaction.response.wire, exc)

    def _failed_at(self, wire: WireMessage, exc: Exception) -> None:
        self.failed(wire.capture, wire.frame, wire.ts_ns, exc)

    def failed(self, capture: str, number: int, ts_ns: int, exc: Exception) -> None:
        """Count, log and report one internal error at frame ``number`` of ``capture``."""
        self.count += 1
        if self.count <= self.limit:
            logger.error("%s frame %d: internal error %s: %s (counted; the audit goes on)",
                         capture, number, type(exc).__name__, exc, exc_info=exc)
        elif self.count == self.limit + 1:
            logger.error("further internal errors are counted, not logged")
        if self.on_anomaly is not None:
            self.on_anomaly(Anomaly(
                code=AnomalyCode.DECODER_ERROR, capture=capture, frames=(number,),
                ts_ns=ts_ns, detail=f"internal error {type(exc).__name__}: {exc}"))

    def flush_failed(self, exc: Exception) -> None:
        """Flushing reassembly and matching state at the end of input raised ``exc``."""
        self.count += 1
        logger.error("internal error while flushing reassembly state: %s", exc, exc_info=exc)
