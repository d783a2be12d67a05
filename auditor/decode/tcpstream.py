"""TCP reassembly per flow and RFC 1035 4.2.2 / RFC 7766 two-byte length framing of DNS."""

from __future__ import annotations

import bisect
import logging
import re
from collections import OrderedDict, deque
from dataclasses import dataclass, field

import dns.message

from auditor.anomaly import Anomaly, AnomalyCode
from auditor.decode.transport import TCPSegment, Transport, WireMessage
from auditor.ledger import Ledger, Reason

logger = logging.getLogger(__name__)

FIN = 0x01
SYN = 0x02
RST = 0x04

_SEQ_MOD = 1 << 32
_SEQ_MASK = _SEQ_MOD - 1
_SEQ_HALF = 1 << 31
_HEADER = 12
"""RFC 1035 4.1.1: a DNS message is at least its 12-byte header."""
_PEEK = 2 + _HEADER
"""Bytes needed to judge a resynchronisation candidate: length prefix plus header."""
_OPCODES = frozenset({0, 1, 2, 4, 5, 6})
"""Assigned DNS opcodes (QUERY, IQUERY, STATUS, NOTIFY, UPDATE, DSO)."""
_CANDIDATE = re.compile(rb"(?=.{6}\x00[\x00\x01])", re.DOTALL)
"""Where a length prefix may start: QDCOUNT (bytes 6-7 after it) is 0 or 1 (RFC 9619 3)."""
_MAX_LISTED_FRAMES = 32
"""Frame numbers kept per anomaly; the byte counts stay exact."""

FlowKey = tuple[str, int, str, int]
"""(src, sport, dst, dport): one direction of a TCP connection is one byte stream."""


FLOW_OVERHEAD = 1_024
"""Bytes a tracked flow costs besides its buffered payload (the flow object, its key, its
table entry), counted against ``max_total_bytes`` so that many small flows are bounded too."""

@dataclass(slots=True, eq=False)
class _Contribution:
    """One data segment's share of a stream (internal): the bytes it was first to bring.

    The segment is settled by whatever happens to its last new byte: the message containing
    that byte owns it, or the reason that byte was dropped settles it.
    """

    frames: tuple[int, ...]
    owned: int
    capture: str
    frame: int
    ts_ns: int
    hop_limit: int
    arrival: int
    last_end: int = 0
    """Stream offset just past the last byte this segment was first to bring."""


_Pending = tuple[int, int, bytes, _Contribution]
"""An out-of-order run of new bytes: (start, end, data, contributor)."""


@dataclass(slots=True, eq=False)
class _Flow:
    """Reassembly state of one direction of one connection (internal, never handed on).

    Stream offsets are unwrapped integers; ``base`` is the sequence number of offset 0.
    ``buf`` holds [hist_off, next_off): already framed bytes kept as history (to compare
    retransmissions with) followed by the bytes not framed yet, [cons_off, next_off).
    """

    key: FlowKey
    base: int
    has_syn: bool
    synced: bool
    capture: str
    last_ts: int
    unsync_reason: Reason = Reason.TCP_MIDSTREAM
    buf: bytearray = field(default_factory=bytearray)
    hist_off: int = 0
    cons_off: int = 0
    next_off: int = 0
    scan_off: int = 0
    """Resynchronisation: no message starts in [cons_off, scan_off)."""
    resync_start: int = 0
    pieces: deque[tuple[int, _Contribution]] = field(default_factory=deque)
    """Contributors of [cons_off, next_off) in stream order, as (end offset, contributor)."""
    pending: list[_Pending] = field(default_factory=list)
    pending_starts: list[int] = field(default_factory=list)
    pending_bytes: int = 0
    end_off: int | None = None
    """Stream offset of the first FIN/RST seen: the stream closes once delivered up to it."""
    closed: bool = False
    abandoned: bool = False
    gaps: deque[tuple[int, int]] = field(default_factory=lambda: deque(maxlen=16))
    skipped: int = 0
    skipped_frames: list[int] = field(default_factory=list)
    midstream_noted: bool = False
    accounted: int = 0

    @property
    def held(self) -> int:
        """Bytes waiting to be framed (contiguous or out of order)."""
        return self.next_off - self.cons_off + self.pending_bytes

    @property
    def memory(self) -> int:
        """Accounted bytes: those held in memory, history included, plus ``FLOW_OVERHEAD``."""
        return len(self.buf) + self.pending_bytes + FLOW_OVERHEAD

    def offset(self, seq: int) -> int:
        """The stream offset of ``seq`` nearest the delivery point (RFC 9293 3.4 wraparound)."""
        delta = (seq - self.base - self.next_off) & _SEQ_MASK
        if delta >= _SEQ_HALF:
            delta -= _SEQ_MOD
        return self.next_off + delta

    def seq(self, offset: int) -> int:
        """The sequence number of stream offset ``offset``."""
        return (self.base + offset) & _SEQ_MASK


class TCPReassembler:
    """Sans-I/O: ``feed`` segments of any flow, get framed DNS messages, bounded in memory.

    Each direction of a connection is an independent byte stream. Out-of-order data waits for
    the gap to fill; a FIN or RST closes the stream once every byte before it has arrived, and
    a hole that never fills is skipped at expiry, at the end of input, or when the flow's
    buffer cap is reached. Data that does not start at a known stream start (no SYN, or after
    a hole) is framed only after resynchronising on a plausible DNS message.
    """

    def __init__(
        self,
        ledger: Ledger,
        *,
        timeout_ns: int = 120_000_000_000,
        max_flows: int = 50_000,
        max_flow_bytes: int = 256 * 1024,
        max_total_bytes: int = 64 * 1024 * 1024,
        resync_limit: int = 80 * 1024,
        history_bytes: int = 16 * 1024,
    ) -> None:
        self._ledger = ledger
        self._timeout_ns = timeout_ns
        self._max_flows = max(1, max_flows)
        self._max_flow_bytes = max_flow_bytes
        self._max_total_bytes = max_total_bytes
        self._resync_limit = resync_limit
        """Bytes scanned without finding a message before giving up on a flow; above the
        largest framed message (2 + 65535 bytes) so a real DNS stream always resynchronises."""
        self._history_bytes = history_bytes
        self._flows: OrderedDict[FlowKey, _Flow] = OrderedDict()
        """Flows, least recently active first."""
        self._total = 0
        self._arrivals = 0

    @property
    def flows(self) -> int:
        """Flows currently tracked (closed ones are kept until expiry to spot retransmissions)."""
        return len(self._flows)

    @property
    def held_bytes(self) -> int:
        """Bytes currently held across all flows."""
        return self._total

    def feed(self, segment: TCPSegment) -> list[WireMessage]:
        """Take one segment; return every DNS message it completes, in stream order."""
        out: list[WireMessage] = []
        ip = segment.ip
        key = (ip.src, segment.sport, ip.dst, segment.dport)
        flow = self._flows.get(key)
        seq = segment.seq & _SEQ_MASK
        if segment.flags & SYN:
            flow = self._on_syn(key, segment, flow, out)
            seq = (seq + 1) & _SEQ_MASK  # RFC 9293 3.4: the SYN occupies one sequence number
        if segment.payload:
            flow = self._on_data(key, flow, segment, seq, out)
        else:
            self._ledger.settle(Reason.TCP_CONTROL, ip.owned_frames)
        if flow is not None and self._flows.get(key) is flow:
            flow.last_ts = ip.ts_ns
            self._flows.move_to_end(key)
            if segment.flags & (FIN | RST) and flow.end_off is None:
                flow.end_off = flow.offset(seq) + len(segment.payload)
            if not flow.closed and flow.end_off is not None and flow.next_off >= flow.end_off:
                self._close(flow, out)
            self._enforce_flow_cap(flow, out)
            self._account(flow)
        self._enforce_total_cap()
        return out

    def expire(self, now_ns: int) -> list[WireMessage]:
        """Close flows idle longer than the timeout at capture time ``now_ns``.

        Flows are checked least recently active first and the scan stops at the first one
        still young, so a capture whose timestamps go backwards may keep a flow a little longer.
        """
        out: list[WireMessage] = []
        deadline = now_ns - self._timeout_ns
        while self._flows:
            flow = next(iter(self._flows.values()))
            if flow.last_ts >= deadline:  # idle for longer than the timeout only
                break
            self._retire(flow, out)
        return out

    def flush(self) -> list[WireMessage]:
        """End of input: close every flow, settling what could not be framed."""
        out: list[WireMessage] = []
        for flow in list(self._flows.values()):
            self._retire(flow, out)
        return out

    # --- flow life cycle --------------------------------------------------------------------

    def _on_syn(
        self, key: FlowKey, segment: TCPSegment, flow: _Flow | None, out: list[WireMessage]
    ) -> _Flow:
        start = (segment.seq + 1) & _SEQ_MASK  # RFC 9293 3.4: data starts at ISN + 1
        if flow is not None:
            if flow.has_syn and flow.base == start:
                return flow  # a retransmitted SYN
            joined_at = (flow.base - start) & _SEQ_MASK
            if not flow.has_syn and joined_at <= self._max_flow_bytes:
                return flow  # a late SYN of the connection we joined mid-stream: keep going
            self._retire(flow, out)  # a new connection reusing the 4-tuple
        return self._open(key, segment, start, has_syn=True)

    def _on_data(
        self,
        key: FlowKey,
        flow: _Flow | None,
        segment: TCPSegment,
        seq: int,
        out: list[WireMessage],
    ) -> _Flow:
        if flow is not None and flow.closed:
            if flow.offset(seq) + len(segment.payload) > flow.next_off:
                self._retire(flow, out)  # new bytes after the close: treat as a new stream
                flow = None
        if flow is None:
            flow = self._open(key, segment, seq, has_syn=False)
        flow.last_ts = segment.ip.ts_ns  # anomalies noted below carry this frame's time
        if flow.abandoned:
            flow.next_off = max(flow.next_off, flow.offset(seq) + len(segment.payload))
            flow.hist_off = flow.cons_off = flow.next_off
            self._ledger.settle(flow.unsync_reason, segment.ip.owned_frames)
            return flow
        self._add_bytes(flow, segment, seq)
        if not flow.closed:
            self._frame(flow, out, closing=False)
        return flow

    def _open(self, key: FlowKey, segment: TCPSegment, base: int, *, has_syn: bool) -> _Flow:
        while len(self._flows) >= self._max_flows:
            self._evict(next(iter(self._flows.values())))
        flow = _Flow(
            key=key,
            base=base,
            has_syn=has_syn,
            synced=has_syn,
            capture=segment.ip.capture,
            last_ts=segment.ip.ts_ns,
        )
        self._flows[key] = flow
        return flow

    def _close(self, flow: _Flow, out: list[WireMessage]) -> None:
        """Frame what can be framed, skip persisting holes, settle the rest; keep a tombstone."""
        if not flow.abandoned:
            self._frame(flow, out, closing=True)
            while flow.pending:
                self._skip_hole(flow)
                self._frame(flow, out, closing=True)
            if flow.next_off > flow.cons_off:
                if flow.synced:
                    self._drop_incomplete(flow)
                else:
                    self._skip(flow, flow.next_off, flow.unsync_reason)
        self._note_midstream(flow)
        flow.closed = True
        self._trim_history(flow, keep=self._history_bytes)

    def _retire(self, flow: _Flow, out: list[WireMessage]) -> None:
        """Close ``flow`` if still open and forget it."""
        if not flow.closed:
            self._close(flow, out)
        self._forget(flow)

    def _forget(self, flow: _Flow) -> None:
        self._total -= flow.accounted
        flow.accounted = 0
        self._flows.pop(flow.key, None)

    def _account(self, flow: _Flow) -> None:
        memory = flow.memory
        self._total += memory - flow.accounted
        flow.accounted = memory

    # --- bytes in ---------------------------------------------------------------------------

    def _add_bytes(self, flow: _Flow, segment: TCPSegment, seq: int) -> None:
        """Store the bytes this segment is first to bring; settle it if it brings none."""
        payload = segment.payload
        start = flow.offset(seq)
        end = start + len(payload)
        ip = segment.ip
        self._arrivals += 1
        contribution = _Contribution(
            ip.frames or (ip.frame,),
            ip.owned_frames,
            ip.capture,
            ip.frame,
            ip.ts_ns,
            ip.hop_limit,
            self._arrivals,
        )
        if start < flow.next_off:
            self._compare_history(flow, contribution, payload, start)
        low = max(start, flow.next_off)
        if low >= end:
            self._settle_old(flow, contribution, start, end)
            return
        if not flow.pending and low == flow.next_off:  # the common in-order case
            flow.buf += payload[low - start :] if low > start else payload
            flow.next_off = end
            flow.pieces.append((end, contribution))
            contribution.last_end = end
            return
        fresh = self._fresh_runs(flow, contribution, payload, start, low)
        if not fresh:
            self._settle_old(flow, contribution, start, end)
            return
        contribution.last_end = fresh[-1][1]
        for run_start, run_end in fresh:
            self._hold_pending(
                flow,
                (run_start, run_end, payload[run_start - start : run_end - start], contribution),
            )
        self._pull_pending(flow)

    def _settle_old(self, flow: _Flow, contribution: _Contribution, start: int, end: int) -> None:
        """A segment that brought no new byte: before our start, lost to a gap, or a copy."""
        if start < 0 and not flow.has_syn:
            reason = Reason.TCP_MIDSTREAM  # bytes from before the point the capture joined
        elif any(low < end and start < high for low, high in flow.gaps):
            reason = Reason.TCP_GAP
        else:
            reason = Reason.TCP_RETRANSMISSION
        self._ledger.settle(reason, contribution.owned)

    def _compare_history(
        self, flow: _Flow, contribution: _Contribution, payload: bytes, start: int
    ) -> None:
        low = max(start, flow.hist_off)
        high = min(start + len(payload), flow.next_off)
        if low >= high:
            return
        seen = flow.buf[low - flow.hist_off : high - flow.hist_off]
        again = payload[low - start : high - start]
        if seen != again:
            self._note_conflict(flow, contribution, low, high, seen, again, ())

    def _fresh_runs(
        self, flow: _Flow, contribution: _Contribution, payload: bytes, start: int, low: int
    ) -> list[tuple[int, int]]:
        """The runs of [low, end) not already held out of order; compare the overlaps."""
        end = start + len(payload)
        pending = flow.pending
        index = bisect.bisect_right(flow.pending_starts, low) - 1
        if index < 0 or pending[index][1] <= low:
            index += 1
        fresh: list[tuple[int, int]] = []
        cursor = low
        while index < len(pending) and pending[index][0] < end:
            held_start, held_end, held, other = pending[index]
            if held_start > cursor:
                fresh.append((cursor, held_start))
            over_low, over_high = max(held_start, cursor), min(held_end, end)
            again = payload[over_low - start : over_high - start]
            seen = held[over_low - held_start : over_high - held_start]
            if seen != again:
                self._note_conflict(flow, contribution, over_low, over_high, seen, again, (other,))
            cursor = max(cursor, held_end)
            index += 1
        if cursor < end:
            fresh.append((cursor, end))
        return fresh

    def _hold_pending(self, flow: _Flow, run: _Pending) -> None:
        index = bisect.bisect_left(flow.pending_starts, run[0])
        flow.pending_starts.insert(index, run[0])
        flow.pending.insert(index, run)
        flow.pending_bytes += run[1] - run[0]

    def _pull_pending(self, flow: _Flow) -> None:
        """Move out-of-order runs that now continue the stream into the contiguous buffer."""
        while flow.pending and flow.pending_starts[0] == flow.next_off:
            run_start, run_end, data, contribution = flow.pending.pop(0)
            flow.pending_starts.pop(0)
            flow.pending_bytes -= run_end - run_start
            flow.buf += data
            flow.next_off = run_end
            flow.pieces.append((run_end, contribution))

    # --- framing ----------------------------------------------------------------------------

    def _frame(self, flow: _Flow, out: list[WireMessage], *, closing: bool) -> None:
        """Emit every complete message; resynchronise first when the framing point is lost."""
        while True:
            if flow.synced:
                if not self._frame_one(flow, out):
                    break
            elif flow.abandoned or not self._resync(flow, closing=closing):
                break
        self._trim_history(flow, keep=self._history_bytes, slack=4096)

    def _frame_one(self, flow: _Flow, out: list[WireMessage]) -> bool:
        start = flow.cons_off
        if flow.next_off - start < 2:
            return False
        buf = flow.buf
        at = start - flow.hist_off
        length = (buf[at] << 8) | buf[at + 1]  # RFC 1035 4.2.2: two-byte length, then message
        end = start + 2 + length
        if end > flow.next_off:
            return False
        wire = bytes(buf[at + 2 : at + 2 + length])
        involved, resolved = self._take(flow, end)
        out.append(self._message(flow, wire, involved, resolved))
        return True

    def _take(self, flow: _Flow, end: int) -> tuple[list[_Contribution], list[_Contribution]]:
        """Consume [cons_off, end): its contributors, and those whose last new byte is in it."""
        involved: dict[_Contribution, None] = {}
        resolved: list[_Contribution] = []
        pieces = flow.pieces
        reached = flow.cons_off
        while pieces and pieces[0][0] <= end:
            piece_end, contribution = pieces.popleft()
            involved[contribution] = None
            if piece_end == contribution.last_end:
                resolved.append(contribution)
            reached = piece_end
        if pieces and reached < end:
            involved[pieces[0][1]] = None
        flow.cons_off = end
        return list(involved), resolved

    def _message(
        self,
        flow: _Flow,
        wire: bytes,
        involved: list[_Contribution],
        resolved: list[_Contribution],
    ) -> WireMessage:
        ordered = sorted(involved, key=lambda c: c.arrival)
        last = ordered[-1]
        src, sport, dst, dport = flow.key
        return WireMessage(
            transport=Transport.TCP,
            src=src,
            sport=sport,
            dst=dst,
            dport=dport,
            wire=wire,
            capture=last.capture,
            frame=last.frame,
            frames=tuple(frame for c in ordered for frame in c.frames),
            ts_ns=last.ts_ns,
            hop_limit=last.hop_limit,
            owned_frames=sum(c.owned for c in resolved),
        )

    def _skip(self, flow: _Flow, end: int, reason: Reason) -> list[int]:
        """Drop unframed bytes [cons_off, end), settling the segments that end in them."""
        if end <= flow.cons_off:
            return []
        resyncing = not flow.synced and reason is flow.unsync_reason
        if resyncing:
            flow.skipped += end - flow.cons_off
        involved, resolved = self._take(flow, end)
        self._ledger.settle(reason, sum(c.owned for c in resolved))
        frames = [f for c in involved for f in c.frames]
        room = _MAX_LISTED_FRAMES - len(flow.skipped_frames)
        if resyncing and room > 0:
            flow.skipped_frames.extend(frames[:room])
        return frames

    def _trim_history(self, flow: _Flow, *, keep: int, slack: int = 0) -> None:
        framed = flow.cons_off - flow.hist_off
        if framed > keep + slack:
            del flow.buf[: framed - keep]
            flow.hist_off = flow.cons_off - keep

    # --- resynchronisation ------------------------------------------------------------------

    def _resync(self, flow: _Flow, *, closing: bool) -> bool:
        """Look for the next plausible message start; True once the flow is framed again."""
        buf = flow.buf
        origin = flow.hist_off
        position = max(flow.scan_off, flow.cons_off)
        found = False
        while True:
            match = _CANDIDATE.search(buf, position - origin)
            if match is None:
                position = max(position, flow.next_off - 7)  # too few bytes yet to match
                break
            candidate = origin + match.start()
            verdict = self._judge(flow, candidate, closing=closing)
            if verdict is None:
                position = candidate  # wait for more bytes
                break
            if verdict:
                position = candidate
                found = True
                break
            position = candidate + 1
        flow.scan_off = position
        self._skip(flow, position, flow.unsync_reason)
        if found:
            flow.synced = True
            self._note_midstream(flow)
            return True
        if position - flow.resync_start > self._resync_limit:
            self._give_up(flow)
        return False

    def _judge(self, flow: _Flow, candidate: int, *, closing: bool) -> bool | None:
        """Is a message framed at ``candidate``? None: cannot tell until more bytes arrive."""
        available = flow.next_off - candidate
        if available < _PEEK:
            return False if closing else None
        buf = flow.buf
        at = candidate - flow.hist_off
        length = (buf[at] << 8) | buf[at + 1]
        if length < _HEADER:
            return False
        if (buf[at + 4] >> 3) & 0xF not in _OPCODES or buf[at + 5] & 0x40:
            return False  # RFC 1035 4.1.1: unassigned opcode, or Z not zero
        questions = buf[at + 7]
        records = sum((buf[at + i] << 8) | buf[at + i + 1] for i in (8, 10, 12))
        if 5 * questions + 11 * records > length - _HEADER:
            return False  # RFC 1035 4.1.2/4.1.3: a question takes >= 5 bytes, an RR >= 11
        if available < 2 + length:
            return False if closing else None
        if available >= 4 + length:
            following = (buf[at + 2 + length] << 8) | buf[at + 3 + length]
            if following < _HEADER:
                return False  # the next length prefix would be impossible
        try:
            dns.message.from_wire(bytes(buf[at + 2 : at + 2 + length]), keyring=False)
        except Exception:  # any parse failure only rejects the candidate
            return False
        return True

    def _give_up(self, flow: _Flow) -> None:
        """No message found within the resync limit: drop what is held and ignore the flow."""
        self._skip(flow, flow.next_off, flow.unsync_reason)
        self._drop_pending(flow, flow.unsync_reason)
        flow.abandoned = True
        flow.buf = bytearray()
        flow.hist_off = flow.cons_off = flow.next_off
        code = _code_for(flow.unsync_reason)
        self._note(
            flow,
            code,
            flow.skipped_frames,
            f"no DNS message found in {flow.skipped} bytes; ignoring the rest of the stream",
            {"skipped_bytes": flow.skipped},
        )
        flow.midstream_noted = True

    def _note_midstream(self, flow: _Flow) -> None:
        if flow.midstream_noted or flow.skipped == 0 or flow.unsync_reason != Reason.TCP_MIDSTREAM:
            return
        flow.midstream_noted = True
        self._note(
            flow,
            AnomalyCode.TCP_MIDSTREAM,
            flow.skipped_frames,
            f"capture starts mid-stream: {flow.skipped} bytes skipped before the first message "
            f"(resynchronised at seq {flow.seq(flow.cons_off)})"
            if flow.synced
            else f"capture starts mid-stream: {flow.skipped} bytes skipped, no message found",
            {"skipped_bytes": flow.skipped, "resync_seq": flow.seq(flow.cons_off)},
        )

    # --- holes, incomplete messages, caps ---------------------------------------------------

    def _skip_hole(self, flow: _Flow) -> None:
        """Declare the hole before the first out-of-order run lost and restart framing after it."""
        hole_start, hole_end = flow.next_off, flow.pending_starts[0]
        before = [flow.pieces[-1][1].frame] if flow.pieces else []
        after = [flow.pending[0][3].frame]
        # Bytes before a hole can never complete their message: they are lost to the gap.
        self._skip(flow, flow.next_off, Reason.TCP_GAP if flow.synced else flow.unsync_reason)
        self._note_midstream(flow)
        flow.skipped = 0
        flow.skipped_frames = []
        self._note(
            flow,
            AnomalyCode.TCP_GAP,
            before + after,
            f"{hole_end - hole_start} bytes never captured (seq {flow.seq(hole_start)} to "
            f"{flow.seq(hole_end)}); framing resumes after a resynchronisation",
            {
                "start_offset": hole_start,
                "end_offset": hole_end,
                "start_seq": flow.seq(hole_start),
                "end_seq": flow.seq(hole_end),
                "missing_bytes": hole_end - hole_start,
            },
        )
        flow.gaps.append((hole_start, hole_end))
        flow.buf = bytearray()
        flow.hist_off = flow.cons_off = flow.next_off = flow.scan_off = hole_end
        flow.resync_start = hole_end
        flow.synced = False
        flow.unsync_reason = Reason.TCP_GAP
        self._pull_pending(flow)

    def _drop_incomplete(self, flow: _Flow) -> None:
        start = flow.cons_off
        held = flow.next_off - start
        at = start - flow.hist_off
        expected = (flow.buf[at] << 8) | flow.buf[at + 1] if held >= 2 else None
        frames = self._skip(flow, flow.next_off, Reason.TCP_INCOMPLETE_MESSAGE)
        self._note(
            flow,
            AnomalyCode.TCP_INCOMPLETE_MESSAGE,
            frames[:_MAX_LISTED_FRAMES],
            f"stream ended inside a message: {held} bytes of "
            f"{'?' if expected is None else expected + 2} held (seq {flow.seq(start)})",
            {"offset": start, "seq": flow.seq(start), "held_bytes": held, "length": expected},
        )

    def _drop_pending(self, flow: _Flow, reason: Reason) -> list[int]:
        """Drop every out-of-order run, settling the segments whose last byte was in one."""
        frames: list[int] = []
        owned = 0
        for _, run_end, _, contribution in flow.pending:
            frames.extend(contribution.frames)
            if run_end == contribution.last_end:
                owned += contribution.owned
        self._ledger.settle(reason, owned)
        flow.pending.clear()
        flow.pending_starts.clear()
        flow.pending_bytes = 0
        return frames

    def _enforce_flow_cap(self, flow: _Flow, out: list[WireMessage]) -> None:
        if flow.held <= self._max_flow_bytes or flow.closed:
            return
        while flow.pending and flow.held > self._max_flow_bytes:
            self._skip_hole(flow)
            self._frame(flow, out, closing=False)
        if flow.held > self._max_flow_bytes:
            held = flow.held
            frames = self._skip(flow, flow.next_off, Reason.TCP_EVICTED)
            self._note(
                flow,
                AnomalyCode.TCP_EVICTED,
                frames[:_MAX_LISTED_FRAMES],
                f"{held} unframed bytes exceed the per-flow cap of {self._max_flow_bytes}",
                {"dropped_bytes": held, "cap": self._max_flow_bytes},
            )
            flow.synced = False
            flow.unsync_reason = Reason.TCP_EVICTED
            flow.scan_off = flow.resync_start = flow.next_off

    def _enforce_total_cap(self) -> None:
        while self._total > self._max_total_bytes and self._flows:
            self._evict(next(iter(self._flows.values())))

    def _evict(self, flow: _Flow) -> None:
        """Forget the least recently active flow, settling what it holds as TCP_EVICTED."""
        self._ledger.observe("tcp_flow_evicted")
        held = flow.held
        if held:
            frames = self._skip(flow, flow.next_off, Reason.TCP_EVICTED)
            frames += self._drop_pending(flow, Reason.TCP_EVICTED)
            self._note(
                flow,
                AnomalyCode.TCP_EVICTED,
                frames[:_MAX_LISTED_FRAMES],
                f"flow evicted by the reassembler's caps with {held} unframed bytes",
                {"dropped_bytes": held, "flows": len(self._flows), "held_total": self._total},
            )
        self._forget(flow)

    # --- anomalies --------------------------------------------------------------------------

    def _note_conflict(
        self,
        flow: _Flow,
        contribution: _Contribution,
        low: int,
        high: int,
        seen: bytes | bytearray,
        again: bytes,
        others: tuple[_Contribution, ...],
    ) -> None:
        # Keep the first-seen bytes, as most TCP stacks do (RFC 9293 3.10.7.4 trims a segment
        # to the receive window, so bytes already received are never replaced); report both.
        first = next(i for i, (a, b) in enumerate(zip(seen, again, strict=True)) if a != b)
        frames = tuple(f for c in (*others, contribution) for f in c.frames)
        self._note(
            flow,
            AnomalyCode.TCP_OVERLAP_CONFLICT,
            frames,
            f"frame {contribution.frame} resends bytes {low}-{high} (seq {flow.seq(low)}) "
            f"with different content from offset {low + first}; the first-seen bytes are kept",
            {
                "start_offset": low,
                "end_offset": high,
                "start_seq": flow.seq(low),
                "first_difference": low + first,
                "frame": contribution.frame,
            },
            ts_ns=contribution.ts_ns,
        )

    def _note(
        self,
        flow: _Flow,
        code: AnomalyCode,
        frames: list[int] | tuple[int, ...],
        why: str,
        params: dict[str, object],
        *,
        ts_ns: int | None = None,
    ) -> None:
        src, sport, dst, dport = flow.key
        self._ledger.note(
            Anomaly(
                code=code,
                capture=flow.capture,
                frames=tuple(frames),
                ts_ns=flow.last_ts if ts_ns is None else ts_ns,
                detail=f"TCP {src}:{sport} -> {dst}:{dport}: {why}",
                src=src,
                dst=dst,
                params={"sport": sport, "dport": dport, **params},
            )
        )


def _code_for(reason: Reason) -> AnomalyCode:
    """The anomaly code that explains bytes skipped for ``reason``."""
    if reason == Reason.TCP_GAP:
        return AnomalyCode.TCP_GAP
    if reason == Reason.TCP_EVICTED:
        return AnomalyCode.TCP_EVICTED
    return AnomalyCode.TCP_MIDSTREAM
