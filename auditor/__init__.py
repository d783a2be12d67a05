"""dnssec-auditor: a passive DNSSEC auditor for packet captures and live taps."""

__version__ = "0.1.0"
