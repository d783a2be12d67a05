"""The memos of one run, made from its ``Limits`` and handed by its driver to the stages that
use them: each run (a worker process, a Dask task) has its own, sized by its own limits.

The key material's RRset digests (``KeyMaterial.digests``) and the validator's memos
(``SignatureChecker``, ``KeyTags``, ``DenialMemos``) belong to those objects, which are made
per run too."""

from __future__ import annotations

from auditor.decode.dissect import AddressMemos
from auditor.engine.limits import FILE_LIMITS, Limits
from auditor.evidence import FactsMemo, facts_memo
from auditor.forgery.common import NameMemos
from auditor.messages import ParseTables
from auditor.report.records import TimeTexts


class Caches:
    """Values derived from parsed messages, memoised for the length of a run (each capped).

    A memo only saves work: emptying one (``release``) changes no output, later lookups
    recompute. A driver makes one per run and hands it to every stream of the run (the key
    pass and the judging pass share it, as they share the parse cache).
    """

    __slots__ = ("addresses", "facts", "names", "parse", "times")

    def __init__(self, limits: Limits = FILE_LIMITS) -> None:
        self.addresses = AddressMemos(limits.address_memo)
        """Address texts and values of the decode stage (``DecodeChain``)."""
        self.parse = ParseTables(limits.record_cache)
        """Question and owner names, summaries, records and RRsets the parse stage shares
        between messages (``MessageParser``), and the name texts every later stage writes
        (``ParseTables.name_text``)."""
        self.facts: FactsMemo = facts_memo(limits.facts_memo)
        """Evidence facts (RRsets paired with their RRSIGs) per shared parsed message
        (``evidence.build_evidence``)."""
        self.names = NameMemos(limits.forgery_entries)
        """Names' case-insensitive keys and ancestor lineages (the forgery stage, the live
        judge's hold and verdict cache)."""
        self.times = TimeTexts()
        """Texts of capture seconds (the records: ``ts``, reference times, findings)."""

    def sizes(self) -> dict[str, int]:
        """Entries in the run's memos now, by their ``stats.json`` name (``state.memos``)."""
        return {"message_facts": len(self.facts), "name_texts": len(self.parse.name_text)}

    def release(self) -> None:
        """Empty every memo (the caps stay), e.g. between judging and report rendering."""
        self.addresses.clear()
        self.facts.clear()
        self.names.clear()
        self.parse.clear()
        self.times.clear()
