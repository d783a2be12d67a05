"""Differential testing: generated zone trees resolved by Unbound, audited, verdicts compared."""
