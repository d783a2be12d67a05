"""DS to DNSKEY matching (RFC 4034 5.1.4): the one place a DS digest is computed."""

from __future__ import annotations

from collections.abc import Iterable

import dns.dnssec
import dns.name
import dns.rdtypes.ANY.CDNSKEY
import dns.rdtypes.ANY.DNSKEY
import dns.rdtypes.dsbase

DNSKEY = dns.rdtypes.ANY.DNSKEY.DNSKEY | dns.rdtypes.ANY.CDNSKEY.CDNSKEY
"""DNSKEY or CDNSKEY rdata."""
DS = dns.rdtypes.dsbase.DSBase
"""DS or CDS rdata."""


def ds_digest(zone: dns.name.Name, key: DNSKEY, digest_type: int) -> bytes | None:
    """The digest a DS of ``digest_type`` for ``key`` must carry, or None when the digest
    type cannot be computed (RFC 4034 5.1.4: digest = hash(owner name | DNSKEY RDATA))."""
    try:
        made = dns.dnssec.make_ds(
            zone, key, dns.dnssec.DSDigest.make(digest_type), policy=dns.dnssec.allow_all_policy
        )
    except (dns.dnssec.UnsupportedAlgorithm, ValueError):
        return None
    return bytes(made.digest)


def ds_names_key(zone: dns.name.Name, ds: DS, key: DNSKEY) -> bool:
    """Whether ``ds`` names ``key``: same key tag and algorithm, and the digest matches."""
    if key.algorithm != ds.algorithm or dns.dnssec.key_id(key) != ds.key_tag:
        return False
    return ds_digest(zone, key, ds.digest_type) == ds.digest


def ds_names_any(zone: dns.name.Name, ds: DS, keys: Iterable[DNSKEY]) -> bool:
    """Whether ``ds`` names one of ``keys``."""
    return any(ds_names_key(zone, ds, key) for key in keys)
