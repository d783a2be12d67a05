"""dnssec-auditor: a passive DNSSEC auditor for packet captures and live taps."""

import warnings

__version__ = "0.1.0"

# dnspython imports its DSA support eagerly, and cryptography >= 44 warns about DSA at import.
# DSA (algorithms 3 and 6) is never validated here (RFC 8624 3.1: MUST NOT), so the warning on
# every start says nothing to a user; any other deprecation still shows.
warnings.filterwarnings("ignore", message="DSA is deprecated", module=r"dns\.dnssecalgs\.dsa")
