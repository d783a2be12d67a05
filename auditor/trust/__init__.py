"""Trust: anchors, key material observed in the capture, and the persistent key cache."""

from auditor.trust.anchors import (
    IANA_ROOT_SOURCE,
    TrustAnchor,
    TrustAnchors,
    iana_root_anchors,
    load_anchors,
    parse_anchor_text,
)
from auditor.trust.cache import CachedKey, CacheUpdate, KeyCache, KeyState
from auditor.trust.keyview import KeyView
from auditor.trust.material import KeyMaterial, SeenSignature, SignedRRset, rdata_set_digest

__all__ = [
    "IANA_ROOT_SOURCE",
    "CacheUpdate",
    "CachedKey",
    "KeyCache",
    "KeyMaterial",
    "KeyState",
    "KeyView",
    "SeenSignature",
    "SignedRRset",
    "TrustAnchor",
    "TrustAnchors",
    "iana_root_anchors",
    "load_anchors",
    "parse_anchor_text",
    "rdata_set_digest",
]
