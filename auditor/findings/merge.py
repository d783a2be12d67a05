"""Merging repeated findings into one with a count and first/last seen, in bounded memory."""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Mapping
from dataclasses import dataclass, field

from auditor.findings.catalogue import Finding, Provenance, Severity, make_finding
from auditor.findings.codes import FindingCode

MAX_FRAMES = 20
"""Frame numbers kept per merged finding (the first ones seen)."""
MAX_LISTED = 10
"""Distinct values kept per list-valued parameter (e.g. example query names)."""
MAX_BYTES = 16 << 20
"""Accounted bytes (``KEY_OVERHEAD`` per key plus its texts) of the keys a merger holds."""
KEY_OVERHEAD = 2_048
"""Bytes a merge key costs besides the texts of its key, parameters and listed values (the
occurrence record, its provenance, parameter dict and frame list of up to ``MAX_FRAMES``)."""


@dataclass(slots=True)
class _Occurrences:
    """Everything remembered about one merge key."""

    code: FindingCode
    first: Provenance
    params: dict[str, object]
    lists: dict[str, list[str]]
    severity: Severity | None
    count: int = 0
    last_ts_ns: int = 0
    frames: list[int] = field(default_factory=list)


def _joined(values: list[str]) -> str:
    return ", ".join(values) if values else "-"


class FindingMerger:
    """Collects occurrences keyed by (code, zone, server, ...) and emits one finding per key.

    Scalar parameters are taken from the first occurrence; list parameters (``lists``)
    accumulate distinct values (at most ``MAX_LISTED``), and are rendered joined by commas,
    so a template field such as ``{reasons}`` names every reason seen.

    >>> merger = FindingMerger()
    >>> for ts, frame, reason in ((5, 1, "expired"), (9, 7, "bad signature"), (7, 3, "expired")):
    ...     merger.add(FindingCode.BOGUS_ANSWER, ("example.", "192.0.2.53"),
    ...                {"zone": "example.", "server": "192.0.2.53"},
    ...                Provenance("a.pcap", (frame,), ts, "192.0.2.53"),
    ...                lists={"reasons": [reason]})
    >>> [found] = merger.flush()
    >>> found.count, found.first_seen_ns, found.last_seen_ns, found.provenance.frames
    (3, 5, 9, (1, 7, 3))
    >>> found.message
    '192.0.2.53 returned answers for zone example. that fail validation: expired, bad signature'
    """

    def __init__(self, max_keys: int = 100_000, max_bytes: int = MAX_BYTES) -> None:
        """Over ``max_keys`` distinct keys or ``max_bytes`` accounted bytes (``KEY_OVERHEAD``
        per key plus the length of its key, parameter and listed texts) an occurrence of a
        new key is not merged (``dropped``); the keys held go on counting."""
        self._by_key: dict[tuple[FindingCode, Hashable], _Occurrences] = {}
        self._max_keys = max_keys
        self._max_bytes = max_bytes
        self._bytes = 0
        self.dropped = 0
        """Occurrences not merged because ``max_keys`` distinct keys or ``max_bytes`` were
        already held."""
        self.peak_bytes = 0
        """The most accounted bytes held at once."""

    @property
    def held_bytes(self) -> int:
        """Accounted bytes of the keys held now."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._by_key)

    def add(
        self,
        code: FindingCode,
        key: Hashable,
        params: Mapping[str, object],
        provenance: Provenance,
        *,
        lists: Mapping[str, list[str]] | None = None,
        severity: Severity | None = None,
    ) -> None:
        """Count one occurrence of ``code`` under ``key``."""
        slot = (code, key)
        held = self._by_key.get(slot)
        if held is None:
            cost = KEY_OVERHEAD + len(repr(key)) + sum(len(str(v)) for v in params.values())
            if len(self._by_key) >= self._max_keys or (self._bytes + cost > self._max_bytes
                                                       and self._by_key):
                self.dropped += 1
                return
            held = _Occurrences(code, provenance, dict(params), {}, severity,
                                last_ts_ns=provenance.ts_ns)
            self._by_key[slot] = held
            self._bytes += cost
            self.peak_bytes = max(self.peak_bytes, self._bytes)
        held.count += 1
        if provenance.ts_ns < held.first.ts_ns:
            held.first = provenance
        held.last_ts_ns = max(held.last_ts_ns, provenance.ts_ns)
        for number in provenance.frames:
            if len(held.frames) < MAX_FRAMES and number not in held.frames:
                held.frames.append(number)
        for name, values in (lists or {}).items():
            kept = held.lists.setdefault(name, [])
            for value in values:
                if value not in kept and len(kept) < MAX_LISTED:
                    kept.append(value)
                    self._bytes += len(value) + 64
                    self.peak_bytes = max(self.peak_bytes, self._bytes)

    def flush(self) -> Iterator[Finding]:
        """One rendered finding per key, in the order keys were first added; then forget."""
        held, self._by_key = self._by_key, {}
        self._bytes = 0
        for occurrences in held.values():
            yield _render(occurrences)


def _render(held: _Occurrences) -> Finding:
    params: dict[str, object] = dict(held.params)
    for name, values in held.lists.items():
        params[name] = _joined(values)
        params[f"{name}_list"] = list(values)
    first = held.first
    provenance = Provenance(first.capture, tuple(held.frames) or first.frames, first.ts_ns,
                            first.server, first.client)
    return make_finding(held.code, params, provenance, severity=held.severity,
                        count=held.count, last_ts_ns=held.last_ts_ns)
