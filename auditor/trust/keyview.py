"""The read-only view of trust the validator uses: anchors, observed material, cached keys."""

from __future__ import annotations

import dns.name

from auditor.trust.anchors import TrustAnchors
from auditor.trust.cache import CachedKey, KeyCache
from auditor.trust.material import KeyMaterial


class KeyView:
    """Anchors + live key material + a snapshot of the cache's trusted keys.

    The material keeps growing while the view is used (live mode); ``generation`` tells
    a validator when memoised chain results must be recomputed.
    """

    def __init__(
        self,
        anchors: TrustAnchors,
        material: KeyMaterial,
        cache: KeyCache | None = None,
    ) -> None:
        self.anchors = anchors
        self.material = material
        self._cached: dict[dns.name.Name, tuple[CachedKey, ...]] = {}
        if cache is not None:
            self._cached = cache.trusted_keys()

    @property
    def generation(self) -> int:
        """Changes whenever the observed chain material changes."""
        return self.material.generation

    @property
    def key_generation(self) -> int:
        """Changes whenever observed DNSKEY/DS material changes (not on denial material)."""
        return self.material.key_generation

    def cached_keys(self, zone: dns.name.Name) -> tuple[CachedKey, ...]:
        """Keys of ``zone`` trusted in an earlier run."""
        return self._cached.get(zone, ())

    def cached_zones(self) -> frozenset[dns.name.Name]:
        """Zones with trusted cached keys."""
        return frozenset(self._cached)
