"""Validation work budgets: what one response, one zone's chain of trust, and (live) one zone
per second may cost in signature checks and NSEC3 hashing (KeyTrap CVE-2023-50387, NSEC3
CVE-2023-50868)."""

from __future__ import annotations

from collections import OrderedDict

import dns.name

from auditor.validate.policy import BudgetLimits

_NS = 1_000_000_000


class BudgetExceeded(Exception):  # noqa: N818 - control flow inside the proofs, never escapes
    """Raised inside an NSEC3 proof when its hashing budget runs out; the proof catches it
    and fails with ``validation_budget_exceeded``."""


class WorkBudget:
    """The work one response (or one zone's chain of trust) may still do. Charges depend
    only on the evidence judged, never on what memos hold, so a verdict is the same whatever
    was judged before; ``crypto_calls`` and ``hash_rounds_computed`` count what was really
    computed (for the live per-zone rate)."""

    def __init__(self, limits: BudgetLimits | None) -> None:
        self.limits = limits
        """None: unlimited (work outside any response, e.g. the end-of-run cache update)."""
        self.checks = 0
        self.failures = 0
        self.crypto_calls = 0
        self._hashes: set[tuple[dns.name.Name, bytes, int]] = set()
        self.hash_rounds = 0
        self.exhausted: str | None = None
        """Which limit ran out first, in words; None while within budget."""

    # --- signatures --------------------------------------------------------------------------

    def may_check(self) -> bool:
        """Whether one more signature check is allowed; records the limit that stops it."""
        limits = self.limits
        if limits is None:
            return True
        if self.checks >= limits.signature_checks:
            self._exhaust(f"{limits.signature_checks} signature checks")
        elif self.failures >= limits.failures:
            self._exhaust(f"{limits.failures} failed signature checks")
        else:
            return True
        return False

    def charge_check(self, *, failed: bool, computed: bool) -> None:
        """Count one signature check (``computed``: not answered from the memo)."""
        self.checks += 1
        self.failures += failed
        self.crypto_calls += computed

    # --- NSEC3 -------------------------------------------------------------------------------

    def charge_hash(self, name: dns.name.Name, salt: bytes, iterations: int) -> None:
        """Count one NSEC3 hash, once per distinct (name, salt, iterations) in this budget;
        raises BudgetExceeded when the hash count or the SHA-1 rounds would run out."""
        key = (name, salt, iterations)
        if key in self._hashes:
            return
        limits = self.limits
        # RFC 5155 5: iterations + 1 SHA-1 applications, each over digest (or name) || salt.
        rounds = (iterations + 1) * (1 + len(salt) // 64)
        if limits is not None:
            if len(self._hashes) >= limits.nsec3_hashes:
                self._exhaust(f"{limits.nsec3_hashes} NSEC3 hashes")
                raise BudgetExceeded(self.exhausted)
            if self.hash_rounds + rounds > limits.nsec3_rounds:
                self._exhaust(f"{limits.nsec3_rounds} NSEC3 SHA-1 rounds")
                raise BudgetExceeded(self.exhausted)
        self._hashes.add(key)
        self.hash_rounds += rounds

    @property
    def hashes(self) -> int:
        """Distinct NSEC3 hashes charged."""
        return len(self._hashes)

    def _exhaust(self, what: str) -> None:
        if self.exhausted is None:
            self.exhausted = what

    def note(self, what: str) -> None:
        """Record that a per-signature or per-RRset limit stopped the work."""
        self._exhaust(what)

    def detail(self, scope: str) -> str:
        """Why the work stopped, for verdict details."""
        return (f"validation budget of {scope} exhausted ({self.exhausted}): stopped as "
                f"validators do since KeyTrap (CVE-2023-50387) and the NSEC3 hash attack "
                f"(CVE-2023-50868)")


class ZoneRate:
    """Live mode: the work spent per zone in the current second of capture time; a zone over
    its allowance is not validated again until the next second (its answers are bogus with
    ``validation_budget_exceeded``). Bounded: at most ``max_zones`` zones are tracked."""

    def __init__(self, limits: BudgetLimits, *, max_zones: int = 10_000) -> None:
        self.limits = limits
        self._spent: OrderedDict[str, tuple[int, int, int]] = OrderedDict()
        self._max_zones = max_zones
        self.refused = 0
        """Responses not validated because their zone was over its allowance."""

    def over(self, zone: str, ts_ns: int) -> str | None:
        """Which allowance ``zone`` has used up in the second of ``ts_ns``, else None."""
        second, checks, rounds = self._spent.get(zone, (-1, 0, 0))
        if second != ts_ns // _NS:
            return None
        if checks >= self.limits.zone_checks_per_second:
            return f"{self.limits.zone_checks_per_second} signature checks per second"
        if rounds >= self.limits.zone_nsec3_rounds_per_second:
            return f"{self.limits.zone_nsec3_rounds_per_second} NSEC3 rounds per second"
        return None

    def spend(self, zone: str, ts_ns: int, budget: WorkBudget) -> None:
        """Add what one response of ``zone`` at ``ts_ns`` computed."""
        second = ts_ns // _NS
        held, checks, rounds = self._spent.pop(zone, (second, 0, 0))
        if held != second:
            checks = rounds = 0
        self._spent[zone] = (second, checks + budget.crypto_calls, rounds + budget.hash_rounds)
        if len(self._spent) > self._max_zones:
            self._spent.popitem(last=False)
