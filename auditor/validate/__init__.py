"""Validation: signatures, chain of trust, DS-absence proofs, verdicts and policy."""

from auditor.validate.chain import ChainResolver, ZoneTrust
from auditor.validate.policy import (
    PERMISSIVE,
    PRESETS,
    RFC8624,
    RFC9904,
    ValidationPolicy,
    policy_from_name,
)
from auditor.validate.signature import SignatureChecker, SignatureResult
from auditor.validate.validator import Validator
from auditor.validate.verdict import RRsetVerdict, Status, Verdict, worst

__all__ = [
    "PERMISSIVE",
    "PRESETS",
    "RFC8624",
    "RFC9904",
    "ChainResolver",
    "RRsetVerdict",
    "SignatureChecker",
    "SignatureResult",
    "Status",
    "ValidationPolicy",
    "Validator",
    "Verdict",
    "ZoneTrust",
    "policy_from_name",
    "worst",
]
