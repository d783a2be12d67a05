"""Sort comparisons into agreement, documented policy, known and new disagreements."""

from __future__ import annotations

import fnmatch
import tomllib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.differential.compare import CAPTURE_LOST, SERVER_FAILURE, Comparison

EXPECTATIONS = Path(__file__).with_name("expectations.toml")
"""The one data file of policy differences and known disagreements (edit it by hand)."""

TABLE_FIELDS = ("unbound", "auditor", "chain", "faults", "codes")


@dataclass(frozen=True, slots=True)
class Entry:
    """One [[policy]] or [[known]] entry."""

    id: str
    patterns: dict[str, str]
    """Field -> glob pattern."""
    text: str
    """The reason / note / RFC, for the report."""
    ci: bool = True
    """Whether the CI subset exercises it (only those are checked for staleness there)."""

    def matches(self, comparison: Comparison) -> bool:
        """Whether every pattern matches the comparison's field."""
        fields = comparison.fields()
        return all(fnmatch.fnmatchcase(fields.get(name, ""), pattern)
                   for name, pattern in self.patterns.items())  # fmt: skip


_TEXT_KEYS = frozenset({"id", "reason", "note", "rfc", "ci"})


def _entries(raw: Iterable[dict[str, object]]) -> list[Entry]:
    return [
        Entry(
            str(item["id"]),
            {k: str(v) for k, v in item.items() if k not in _TEXT_KEYS},
            " ".join(str(item.get(k, "")) for k in ("rfc", "reason", "note")).strip(),
            bool(item.get("ci", True)),
        )
        for item in raw
    ]


@dataclass(frozen=True, slots=True)
class Expectations:
    """The policy table and the known-disagreement list."""

    policy: list[Entry]
    known: list[Entry]

    @classmethod
    def load(cls, path: Path = EXPECTATIONS) -> Expectations:
        """Read *path* (TOML)."""
        data = tomllib.loads(path.read_text())
        return cls(_entries(data.get("policy", [])), _entries(data.get("known", [])))


@dataclass(slots=True)
class Tally:
    """The comparisons of a run, sorted."""

    agreed: int = 0
    policy: dict[str, list[Comparison]] = field(default_factory=dict)
    known: dict[str, list[Comparison]] = field(default_factory=dict)
    new: list[Comparison] = field(default_factory=list)
    unjudgeable: list[Comparison] = field(default_factory=list)
    """Questions Unbound did not answer (timeout, other rcodes)."""
    lost: list[Comparison] = field(default_factory=list)
    """Questions whose capture lost packets: neither agreement nor disagreement."""
    server_failures: int = 0
    """Agreements of Unbound's SERVFAIL with an upstream SERVFAIL/REFUSED (in ``agreed``)."""

    @property
    def total(self) -> int:
        """Questions compared."""
        disagreed = sum(map(len, self.policy.values())) + sum(map(len, self.known.values()))
        return self.agreed + disagreed + len(self.new)

    @property
    def agreement(self) -> float:
        """Share agreeing (policy differences excluded from the denominator)."""
        policy = sum(map(len, self.policy.values()))
        judged = self.total - policy
        return self.agreed / judged if judged else 1.0

    def stale(self, expectations: Expectations, *, ci_only: bool = False) -> list[Entry]:
        """Known entries that matched nothing: they agree now and must leave the list.

        With *ci_only*, only entries marked as exercised by the CI subset (``ci``).
        """
        return [
            entry
            for entry in expectations.known
            if not self.known.get(entry.id) and (entry.ci or not ci_only)
        ]


def tally(comparisons: Iterable[Comparison], expectations: Expectations) -> Tally:
    """Sort *comparisons*: agreed, policy (first matching entry), known, or new."""
    result = Tally()
    for comparison in comparisons:
        if comparison.unbound not in ("secure", "insecure", "bogus"):
            result.unjudgeable.append(comparison)
        elif comparison.auditor == CAPTURE_LOST:
            result.lost.append(comparison)
        elif comparison.agrees:
            result.agreed += 1
            result.server_failures += comparison.auditor == SERVER_FAILURE
        elif entry := next((e for e in expectations.policy if e.matches(comparison)), None):
            result.policy.setdefault(entry.id, []).append(comparison)
        elif entry := next((e for e in expectations.known if e.matches(comparison)), None):
            result.known.setdefault(entry.id, []).append(comparison)
        else:
            result.new.append(comparison)
    return result


def _class_key(comparison: Comparison) -> tuple[str, ...]:
    fields = comparison.fields()
    codes = ",".join(
        c
        for c in comparison.codes
        if c not in ("dnssec_bogus", "dnssec_indeterminate", "ad_on_bogus", "ad_on_insecure")
    )
    return (fields["unbound"], fields["auditor"], fields["chain"], fields["faults"], codes)


def class_table(comparisons: Sequence[Comparison], limit: int = 60) -> str:
    """Disagreements grouped by (Unbound, auditor, shape, faults, codes) with an example."""
    counts = Counter(_class_key(c) for c in comparisons)
    example: dict[tuple[str, ...], Comparison] = {}
    for comparison in comparisons:
        example.setdefault(_class_key(comparison), comparison)
    header = (
        f"{'count':>5}  {'unbound':8} {'auditor':14} {'shape':26} {'faults':28} codes / example"
    )
    lines = [header, "-" * len(header)]
    for key, count in counts.most_common(limit):
        unbound, auditor, chain, faults, codes = key
        sample = example[key]
        cd = " +cd" if sample.cd else ""
        lines.append(
            f"{count:>5}  {unbound:8} {auditor[:14]:14} {chain[:26]:26} {faults[:28]:28} "
            f"{codes} | {sample.scenario} {sample.probe}{cd}"
        )
    if len(counts) > limit:
        lines.append(f"... {len(counts) - limit} more classes")
    return "\n".join(lines)


def report(result: Tally, expectations: Expectations) -> str:
    """The agreement figure and the tables."""
    policy = sum(map(len, result.policy.values()))
    known = sum(map(len, result.known.values()))
    lines = [
        f"questions compared: {result.total} (unanswered: {len(result.unjudgeable)}, "
        f"capture lost, not compared: {len(result.lost)})",
        f"agreement: {result.agreed}/{result.total - policy} = {100 * result.agreement:.2f}% "
        f"(policy differences counted apart: {policy}; SERVFAIL paired with an upstream "
        f"server failure: {result.server_failures})",
        f"known disagreements: {known}; new (in neither list): {len(result.new)}",
    ]
    for title, groups in (("policy", result.policy), ("known", result.known)):
        for entry_id, members in sorted(groups.items()):
            lines.append(f"  {title} {entry_id}: {len(members)}")
    stale = result.stale(expectations)
    lines += [f"  known entry matching nothing (remove it?): {entry.id}" for entry in stale]
    everything = [c for group in result.known.values() for c in group] + result.new
    if everything:
        lines += ["", "disagreements by class (known and new):", class_table(everything)]
    return "\n".join(lines)
