"""IPv4 and IPv6 defragmentation: any arrival order, duplicates, expiry by capture time, bounded."""

from __future__ import annotations

from dataclasses import dataclass, field

from auditor.anomaly import Anomaly, AnomalyCode
from auditor.decode.dissect import IPDatagram, walk_ipv6_headers
from auditor.ledger import Ledger, Reason

_MAX_PAYLOAD = {4: 65535 - 20, 6: 65535}
"""Largest reassembled payload: IPv4 Total Length is 16 bits and counts a 20+ byte header
(RFC 791 3.1); the IPv6 Payload Length is 16 bits (RFC 8200 4.5)."""

_SetKey = tuple[int, str, str, int, int]
"""(version, src, dst, protocol, ident): RFC 791 3.2 / RFC 8200 4.5 fragment set identity."""


@dataclass(slots=True)
class _Piece:
    start: int
    end: int
    more: bool
    data: bytes


@dataclass(slots=True)
class _FragmentSet:
    """Mutable reassembly state of one datagram (internal, never handed on)."""

    capture: str
    """Capture of the frame that opened the set."""
    first_ts_ns: int
    last_ts_ns: int
    pieces: list[_Piece] = field(default_factory=list)
    frames: list[int] = field(default_factory=list)
    owned: int = 0
    """Frames held by this set (arrivals not settled as duplicates)."""
    held_bytes: int = 0
    total: int | None = None
    """Payload length, known once the last fragment (More Fragments clear) arrived."""
    max_end: int = 0
    head: IPDatagram | None = None
    """The offset-0 fragment, whose header fields the reassembled datagram keeps."""


@dataclass(frozen=True, slots=True)
class _Completed:
    """A recently reassembled datagram, to recognise late copies (or forgeries) of its pieces."""

    ts_ns: int
    payload: bytes
    """The reassembled bytes, before any IPv6 extension header was walked."""
    frames: tuple[int, ...]


class Defragmenter:
    """Sans-I/O reassembler: ``feed`` fragments, get whole datagrams; ``expire`` by capture time.

    Overlapping fragments are accepted only when their common bytes agree (noted as
    FRAGMENT_OVERLAP_SAME); any disagreement discards the whole set (FRAGMENT_OVERLAP_CONFLICT),
    since a forged later fragment is a known DNS cache poisoning technique. Missing bytes are
    never invented.

    A completed datagram is remembered for the timeout: a late exact copy of one of its pieces
    is settled as a duplicate (instead of opening a set that could only expire), and a late
    fragment that contradicts it is noted as FRAGMENT_OVERLAP_CONFLICT, naming the frames of the
    datagram already handed on. This catches the forged fragment that was planted before the
    genuine one arrived. The late fragment then opens a new set, as an Identification reused by
    a genuine new datagram must still reassemble.
    """

    def __init__(
        self,
        ledger: Ledger,
        *,
        timeout_ns: int = 30_000_000_000,
        max_sets: int = 10_000,
        max_bytes: int = 64 * 1024 * 1024,
        max_fragments: int = 128,
    ) -> None:
        """``max_sets``/``max_bytes`` bound the open sets (oldest evicted first);
        ``max_fragments`` bounds one set, whose overlap checks are quadratic in its size."""
        self._ledger = ledger
        self._max_fragments = max_fragments
        self._timeout_ns = timeout_ns
        self._max_sets = max_sets
        self._max_bytes = max_bytes
        self._sets: dict[_SetKey, _FragmentSet] = {}
        """Open sets, oldest first (dict insertion order)."""
        self._completed: dict[_SetKey, _Completed] = {}
        """Recently completed datagrams, oldest first."""
        self._held_bytes = 0
        self._held_frames = 0
        self._completed_bytes = 0

    @property
    def held_frames(self) -> int:
        """Frames currently held in incomplete sets (read but not yet settled)."""
        return self._held_frames

    @property
    def held_bytes(self) -> int:
        """Fragment payload bytes currently held."""
        return self._held_bytes

    def feed(self, datagram: IPDatagram) -> IPDatagram | None:
        """Pass whole datagrams through; hold fragments; return a datagram when a set completes."""
        fragment = datagram.fragment
        if fragment is None:
            return datagram
        key = (datagram.version, datagram.src, datagram.dst, datagram.protocol, fragment.ident)
        fset = self._sets.get(key)
        if fset is None:
            if self._settle_late_copy(key, datagram):
                return None
            fset = self._open(key, datagram)
        return self._add(key, fset, datagram)

    def expire(self, now_ns: int) -> None:
        """Drop sets older than the timeout at capture time ``now_ns``, settling their frames.

        Sets are checked oldest first and the scan stops at the first one still young, so a
        capture whose timestamps go backwards may keep a set a little longer than the timeout.
        """
        deadline = now_ns - self._timeout_ns
        while self._sets:
            key, fset = next(iter(self._sets.items()))
            if fset.first_ts_ns >= deadline:
                break
            self._discard(key, fset, Reason.FRAGMENT_INCOMPLETE, AnomalyCode.FRAGMENT_INCOMPLETE)
        while self._completed:
            key, completed = next(iter(self._completed.items()))
            if completed.ts_ns >= deadline:
                break
            self._drop_completed(key)

    def flush(self) -> None:
        """End of input: every held set is incomplete; settle its frames."""
        for key, fset in list(self._sets.items()):
            self._discard(key, fset, Reason.FRAGMENT_INCOMPLETE, AnomalyCode.FRAGMENT_INCOMPLETE)
        self._completed.clear()
        self._completed_bytes = 0

    # --- set life cycle ---------------------------------------------------------------------

    def _open(self, key: _SetKey, datagram: IPDatagram) -> _FragmentSet:
        while len(self._sets) >= self._max_sets:
            self._evict_oldest()
        fset = _FragmentSet(datagram.capture, datagram.ts_ns, datagram.ts_ns)
        self._sets[key] = fset
        return fset

    def _add(self, key: _SetKey, fset: _FragmentSet, datagram: IPDatagram) -> IPDatagram | None:
        fragment = datagram.fragment
        assert fragment is not None
        data = datagram.payload
        start = fragment.offset
        end = start + len(data)
        more = fragment.more
        fset.frames.append(datagram.frame)
        fset.last_ts_ns = max(fset.last_ts_ns, datagram.ts_ns)
        if end > _MAX_PAYLOAD[datagram.version]:  # RFC 8200 4.5 / RFC 791 3.2: too big
            fset.owned += 1
            self._release(key, fset, Reason.MALFORMED_IP)
            return None
        overlapping = False
        for piece in fset.pieces:
            if piece.start == start and piece.more == more and piece.data == data:
                self._ledger.settle(Reason.FRAGMENT_DUPLICATE)
                return None
            low, high = max(start, piece.start), min(end, piece.end)
            if low < high:
                theirs = piece.data[low - piece.start : high - piece.start]
                if data[low - start : high - start] != theirs:
                    self._conflict(key, fset, datagram, start, f"bytes {low}-{high} differ")
                    return None
                overlapping = True
        problem = self._length_problem(fset, end, more)
        if problem:
            self._conflict(key, fset, datagram, start, problem)
            return None
        if len(fset.pieces) >= self._max_fragments:
            fset.owned += 1  # the fragment over the cap is dropped with its set
            self._discard(key, fset, Reason.FRAGMENT_EVICTED, AnomalyCode.FRAGMENT_EVICTED)
            return None
        self._hold(fset, _Piece(start, end, more, data), datagram)
        if overlapping:
            self._note(AnomalyCode.FRAGMENT_OVERLAP_SAME, key, fset, datagram, "identical bytes")
        if self._held_bytes > self._max_bytes:
            while self._held_bytes > self._max_bytes:
                self._evict_oldest()
            if key not in self._sets:
                return None
        if self._is_complete(fset):
            return self._assemble(key, fset, datagram)
        return None

    @staticmethod
    def _length_problem(fset: _FragmentSet, end: int, more: bool) -> str:
        """Why this fragment's extent contradicts the set's known length ('' when it does not)."""
        if not more:
            if fset.total is not None and fset.total != end:
                return f"two last fragments end at {fset.total} and {end}"
            if fset.max_end > end:
                return f"last fragment ends at {end}, before data up to {fset.max_end}"
        elif fset.total is not None and end > fset.total:
            return f"fragment ends at {end}, after the last fragment's end {fset.total}"
        return ""

    def _hold(self, fset: _FragmentSet, piece: _Piece, datagram: IPDatagram) -> None:
        fset.pieces.append(piece)
        fset.owned += 1
        self._held_frames += 1
        size = piece.end - piece.start
        fset.held_bytes += size
        self._held_bytes += size
        fset.max_end = max(fset.max_end, piece.end)
        if not piece.more:
            fset.total = piece.end
        if piece.start == 0:
            fset.head = datagram

    @staticmethod
    def _is_complete(fset: _FragmentSet) -> bool:
        """The last fragment is held and the pieces cover [0, total) without a hole."""
        if fset.total is None:
            return False
        reach = 0
        for piece in sorted(fset.pieces, key=lambda p: p.start):
            if piece.start > reach:
                return False
            reach = max(reach, piece.end)
        return reach >= fset.total

    def _assemble(self, key: _SetKey, fset: _FragmentSet, last: IPDatagram) -> IPDatagram | None:
        head = fset.head
        assert head is not None and fset.total is not None
        buffer = bytearray(fset.total)
        for piece in fset.pieces:
            buffer[piece.start : piece.end] = piece.data
        payload = bytes(buffer)
        protocol = head.protocol
        self._close(key, fset)
        self._remember(key, _Completed(fset.last_ts_ns, payload, tuple(fset.frames)))
        if head.version == 6:
            walked = walk_ipv6_headers(payload, protocol, 0, len(payload))
            if walked is None or walked[2] is not None:  # cut header, or a fragment in a fragment
                self._ledger.settle(Reason.MALFORMED_IP, fset.owned)
                return None
            protocol, start, _, _ = walked
            payload = payload[start:]
        return IPDatagram(
            capture=last.capture,
            frame=last.frame,
            frames=tuple(fset.frames),
            ts_ns=last.ts_ns,
            version=head.version,
            src=head.src,
            dst=head.dst,
            protocol=protocol,
            hop_limit=head.hop_limit,
            ip_id=head.ip_id,
            payload=payload,
            fragment=None,
            owned_frames=fset.owned,
        )

    # --- discarding -------------------------------------------------------------------------

    def _settle_late_copy(self, key: _SetKey, datagram: IPDatagram) -> bool:
        """Settle an exact copy of a piece of a recently completed datagram; False otherwise.

        A late fragment that contradicts the completed datagram is noted as a conflict and
        left to open a new set.
        """
        completed = self._completed.get(key)
        fragment = datagram.fragment
        if completed is None or fragment is None:
            return False
        start = fragment.offset
        data = datagram.payload
        end = start + len(data)
        whole = completed.payload
        fits = end <= len(whole) if fragment.more else end == len(whole)
        if fits and whole[start:end] == data:
            self._ledger.settle(Reason.FRAGMENT_DUPLICATE)
            return True
        version, src, dst, protocol, ident = key
        self._ledger.note(
            Anomaly(
                code=AnomalyCode.FRAGMENT_OVERLAP_CONFLICT,
                capture=datagram.capture,
                frames=(*completed.frames, datagram.frame),
                ts_ns=datagram.ts_ns,
                detail=(
                    f"IPv{version} fragments {src} -> {dst} protocol {protocol} id {ident}: "
                    f"fragment {start}-{end} (more={fragment.more}) of frame {datagram.frame} "
                    f"contradicts the {len(whole)}-byte datagram already reassembled from "
                    f"frames {completed.frames}"
                ),
                src=src,
                dst=dst,
                params={
                    "version": version,
                    "protocol": protocol,
                    "ident": ident,
                    "conflicting_fragment": (start, end),
                    "frame": datagram.frame,
                    "reassembled_frames": completed.frames,
                    "total": len(whole),
                },
            )
        )
        return False

    def _remember(self, key: _SetKey, completed: _Completed) -> None:
        """Keep a completed datagram for late-fragment checks, within the count and byte caps."""
        if key in self._completed:
            self._drop_completed(key)
        self._completed[key] = completed
        self._completed_bytes += len(completed.payload)
        while len(self._completed) > self._max_sets or self._completed_bytes > self._max_bytes:
            self._drop_completed(next(iter(self._completed)))

    def _drop_completed(self, key: _SetKey) -> None:
        self._completed_bytes -= len(self._completed.pop(key).payload)

    def _close(self, key: _SetKey, fset: _FragmentSet) -> None:
        """Forget an open set and the bytes it held."""
        del self._sets[key]
        self._held_bytes -= fset.held_bytes
        self._held_frames -= len(fset.pieces)  # one held frame per piece

    def _release(self, key: _SetKey, fset: _FragmentSet, reason: Reason) -> None:
        """Close the set and settle every frame it holds as ``reason``."""
        self._close(key, fset)
        self._ledger.settle(reason, fset.owned)

    def _conflict(
        self, key: _SetKey, fset: _FragmentSet, datagram: IPDatagram, start: int, why: str
    ) -> None:
        fset.owned += 1  # the conflicting fragment is settled with the set
        self._release(key, fset, Reason.FRAGMENT_OVERLAP_CONFLICT)
        end = start + len(datagram.payload)
        why = f"fragment {start}-{end} of frame {datagram.frame} conflicts: {why}"
        self._note(
            AnomalyCode.FRAGMENT_OVERLAP_CONFLICT,
            key,
            fset,
            datagram,
            why,
            {"conflicting_fragment": (start, end)},
        )

    def _discard(self, key: _SetKey, fset: _FragmentSet, reason: Reason, code: AnomalyCode) -> None:
        self._release(key, fset, reason)
        self._note_set(code, key, fset, fset.last_ts_ns, fset.frames[-1], reason.value, {})

    def _evict_oldest(self) -> None:
        key, fset = next(iter(self._sets.items()))
        self._discard(key, fset, Reason.FRAGMENT_EVICTED, AnomalyCode.FRAGMENT_EVICTED)

    # --- anomalies --------------------------------------------------------------------------

    def _note(
        self,
        code: AnomalyCode,
        key: _SetKey,
        fset: _FragmentSet,
        datagram: IPDatagram,
        why: str,
        extra: dict[str, object] | None = None,
    ) -> None:
        self._note_set(code, key, fset, datagram.ts_ns, datagram.frame, why, extra or {})

    def _note_set(
        self,
        code: AnomalyCode,
        key: _SetKey,
        fset: _FragmentSet,
        ts_ns: int,
        frame: int,
        why: str,
        extra: dict[str, object],
    ) -> None:
        version, src, dst, protocol, ident = key
        offsets = sorted((p.start, p.end) for p in fset.pieces)
        self._ledger.note(
            Anomaly(
                code=code,
                capture=fset.capture,
                frames=tuple(fset.frames),
                ts_ns=ts_ns,
                detail=(
                    f"IPv{version} fragments {src} -> {dst} protocol {protocol} id {ident}: "
                    f"{why} (held byte ranges {offsets}, total "
                    f"{'unknown' if fset.total is None else fset.total}, frame {frame})"
                ),
                src=src,
                dst=dst,
                params={
                    "version": version,
                    "protocol": protocol,
                    "ident": ident,
                    "offsets": offsets,
                    "total": fset.total,
                    "frame": frame,
                    **extra,
                },
            )
        )
