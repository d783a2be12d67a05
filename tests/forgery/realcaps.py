"""Real captures from other projects (``../shared/realcaps``, see its README) for the forgery
heuristics' false-alarm tests, and small edits of them that turn them into attack twins."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace

from auditor.capture.frame import Frame
from auditor.capture.sources import CaptureReader
from auditor.decode.transport import DNS_PORTS
from auditor.evidence import ResponseEvidence
from auditor.findings.catalogue import Finding
from auditor.forgery import ForgeryConfig, ForgeryDetector
from auditor.pipeline import EvidenceStream
from auditor.validate.verdict import Verdict
from tests.forgery.builders import insecure
from tests.realcaps import REALCAPS, require


def realcap(relative: str) -> list[Frame]:
    """The frames of one real capture; the test is skipped when the corpus is absent."""
    path = REALCAPS / relative
    require(path)
    with CaptureReader(str(path)) as reader:
        return list(reader)


def detect(
    frames: Iterable[Frame],
    judge: Callable[[ResponseEvidence], Verdict] = insecure,
    config: ForgeryConfig | None = None,
    ports: frozenset[int] = DNS_PORTS,
) -> tuple[ForgeryDetector, list[Finding]]:
    """Run decode, matching and the forgery detector over frames (verdicts from ``judge``:
    the heuristics tested here do not depend on them)."""
    detector = ForgeryDetector(config)
    stream = EvidenceStream(on_query=detector.observe_query, ports=ports)
    found: list[Finding] = []
    for evidence in stream.run(frames):
        found.extend(detector.feed(evidence, judge(evidence)))
    found.extend(detector.flush())
    return detector, found


def patched(frame: Frame, old: bytes, new: bytes) -> Frame:
    """The frame with one byte string replaced (the UDP checksum goes stale: the auditor
    counts bad checksums and never drops a packet for one)."""
    assert frame.data.count(old) == 1, "the bytes to patch must occur exactly once"
    return replace(frame, data=frame.data.replace(old, new))

