"""Forgery detection: races, blind spoofing, Hold-On consistency, bailiwick, DNSSEC downgrade
and cross-checks against validated data, as catalogue findings marked forged or suspicious."""

from auditor.forgery.common import ForgeryVerdict
from auditor.forgery.detector import (
    ForgeryConfig,
    ForgeryDetector,
    evidence_refs,
    finding_frames,
)

__all__ = ["ForgeryConfig", "ForgeryDetector", "ForgeryVerdict", "evidence_refs", "finding_frames"]
