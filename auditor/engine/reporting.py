"""The one reporting loop: each judged response is linked to its resolution, written as a
``responses.jsonl`` record, counted and handed to the finding stages, whose findings go to
the driver's outputs; a response that breaks it is contained (``engine.contain``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from auditor.engine.build import FindingSource
from auditor.engine.contain import Containment
from auditor.engine.judge import Rendered
from auditor.engine.stats import VerdictTally
from auditor.evidence import ResponseEvidence
from auditor.findings.catalogue import Finding
from auditor.forgery import ForgeryDetector
from auditor.messages import ObservedMessage
from auditor.report.resolution import resolution_record
from auditor.resolution import ResolutionLinker
from auditor.validate import Verdict

RecordHook = Callable[[ResponseEvidence, Verdict, dict[str, Any]], None]
"""Called with every response record written (the driver's own outputs and counts)."""


class Reporting:
    """Judged responses in, records and findings out, the same for every driver.

    ``render``: the capture-level fields of a response (None when the fields handed in are
    already whole: ``audit --jobs`` workers render what they judge). ``merged_per_response``:
    finding stages that merge until ``flush`` and are flushed after every response (live:
    findings are written as they are made).
    """

    def __init__(self, sources: list[FindingSource], linker: ResolutionLinker, *,
                 write: Callable[[dict[str, Any]], None],
                 on_findings: Callable[[Iterable[Finding]], None],
                 errors: Containment,
                 render: Callable[[ResponseEvidence], dict[str, Any]] | None,
                 on_record: RecordHook | None = None,
                 merged_per_response: tuple[FindingSource, ...] = ()) -> None:
        self.sources = sources
        self.linker = linker
        self.tally = VerdictTally()
        """Responses written per verdict status and code."""
        self._write = write
        self._on_findings = on_findings
        self._errors = errors
        self._render = render
        self._on_record = on_record
        self._merged = merged_per_response

    def report_all(self, judged: Iterable[Rendered], rendered: bool = False) -> None:
        """Report every judged response, containing a failure to the response it hit
        (``rendered``: their fields are whole already, rendered where they were judged)."""
        report = self.report
        for evidence, verdict, fields in judged:
            try:
                report(evidence, verdict, fields, rendered)
            except Exception as exc:  # our own bug must not stop the run
                self._errors.response_failed(evidence.transaction, exc)

    def report(self, evidence: ResponseEvidence, verdict: Verdict,
               fields: dict[str, Any], rendered: bool = False) -> None:
        """Write one judged response and feed it to the finding stages that see it."""
        linked = resolution_record(self.linker.feed(evidence, verdict))
        if self._render is not None and not rendered:
            fields = {**self._render(evidence), **fields}
        record = {**fields, "resolution": linked}
        self._write(record)
        self.tally.count(verdict)
        if self._on_record is not None:
            self._on_record(evidence, verdict, record)
        on_findings = self._on_findings
        for source in stages_for(self.sources, evidence):
            on_findings(source.feed(evidence, verdict))
            if source in self._merged:
                on_findings(source.flush())

    def expire(self, now_ns: int) -> None:
        """Timer (live): close the forgery stage's windows as of capture time ``now_ns``."""
        for source in self.sources:
            if isinstance(source, ForgeryDetector):
                self._on_findings(source.expire(now_ns))

    def flush(self) -> None:
        """End of input: every finding stage's pending findings."""
        for source in self.sources:
            self._on_findings(source.flush())

    def query_hook(self) -> Callable[[ObservedMessage], None]:
        """The hook every decoded query goes to: the forgery stage's, then the linker's."""
        return both_hooks(query_observer(self.sources), self.linker.observe_query)

    def release(self) -> None:
        """Drop the finding stages and the linker's state (before reports are rendered)."""
        self.sources.clear()
        self.linker.flush()


def stages_for(sources: list[FindingSource], evidence: ResponseEvidence) -> list[FindingSource]:
    """The finding stages that see a response: all of them for a query answer; for a NOTIFY
    or UPDATE answer only the forgery stage, which counts it (no validation or zone finding
    treats it as an answer); none for an answer the snapshot length cut (only its start
    was captured: no finding may rest on it)."""
    if evidence.transaction.response.wire.cut:
        return []
    if evidence.transaction.answers_query:
        return sources
    return [s for s in sources if isinstance(s, ForgeryDetector)]


def query_observer(sources: list[FindingSource]) -> Callable[[ObservedMessage], None] | None:
    """The forgery stage's query hook, if that stage runs."""
    detector = next((s for s in sources if isinstance(s, ForgeryDetector)), None)
    return detector.observe_query if detector is not None else None


def facts_observer(
    sources: list[FindingSource],
) -> Callable[[ResponseEvidence, Any], None] | None:
    """The forgery stage's hook for facts derived where a response was judged."""
    detector = next((s for s in sources if isinstance(s, ForgeryDetector)), None)
    return detector.prime if detector is not None else None


def both_hooks(first: Callable[[ObservedMessage], None] | None,
               second: Callable[[ObservedMessage], None]) -> Callable[[ObservedMessage], None]:
    """One query hook calling two (the forgery stage's and the resolution linker's)."""
    if first is None:
        return second

    def both(message: ObservedMessage) -> None:
        first(message)
        second(message)

    return both
