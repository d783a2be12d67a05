"""Findings vocabulary: stable codes shared by validation, aggregation and reports."""

from auditor.findings.codes import ValidationCode

__all__ = ["ValidationCode"]
