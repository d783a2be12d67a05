"""Generate (or reuse from a cache) BIND key pairs and derive DNSKEY and DS records."""

from __future__ import annotations

import hashlib
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import dns.dnssec
import dns.dnssectypes
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.DNSKEY
import dns.rdtypes.dsbase

from tests.lab.tools import run

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class KeySpec:
    """What key to generate for a zone."""

    algorithm: str
    """BIND algorithm mnemonic, e.g. ``RSASHA256``, ``ECDSAP256SHA256``, ``ED448``."""
    bits: int | None = None
    """Key size for RSA; ``None`` for algorithms with a fixed size."""
    ksk: bool = False
    """Set the SEP flag (257) and use the key to sign the DNSKEY RRset."""


@dataclass(frozen=True, slots=True)
class LabKey:
    """One generated key pair on disk."""

    base: Path
    """Path of the key files without extension (``.../Kname.+alg+tag``)."""
    dnskey: dns.rdtypes.ANY.DNSKEY.DNSKEY
    """The public DNSKEY rdata read from the ``.key`` file."""
    ksk: bool
    """Whether this is a key-signing key (SEP flag set)."""

    @property
    def key_tag(self) -> int:
        """RFC 4034 Appendix B key tag."""
        return dns.dnssec.key_id(self.dnskey)


def _cache_slot(cache: Path, zone: str, spec: KeySpec, index: int) -> Path:
    role = "ksk" if spec.ksk else "zsk"
    return cache / f"{zone.rstrip('.') or 'root'}_{spec.algorithm}_{spec.bits}_{role}_{index}"


def read_dnskey(key_file: Path) -> dns.rdtypes.ANY.DNSKEY.DNSKEY:
    """Parse the DNSKEY record of a BIND ``.key`` file."""
    for line in key_file.read_text().splitlines():
        if not line.strip() or line.startswith(";"):
            continue
        fields = line.split()
        type_index = fields.index("DNSKEY")
        rdata = dns.rdata.from_text(
            dns.rdataclass.IN, dns.rdatatype.DNSKEY, " ".join(fields[type_index + 1 :])
        )
        assert isinstance(rdata, dns.rdtypes.ANY.DNSKEY.DNSKEY)
        return rdata
    raise ValueError(f"no DNSKEY in {key_file}")


def _with(base: Path, suffix: str) -> Path:
    # Key names contain dots ("Ksec.test.+008+1234"), so Path.with_suffix would cut them.
    return base.with_name(base.name + suffix)


def _generate(zone: str, spec: KeySpec, keydir: Path) -> Path:
    argv = ["dnssec-keygen", "-q", "-K", str(keydir), "-a", spec.algorithm, "-L", "300"]
    if spec.bits is not None:
        argv += ["-b", str(spec.bits)]
    if spec.ksk:
        argv += ["-f", "KSK"]
    basename = run([*argv, zone], timeout=120).strip().splitlines()[-1]
    return keydir / basename


def make_key(
    zone: str, spec: KeySpec, keydir: Path, *, index: int = 0, cache: Path | None = None
) -> LabKey:
    """Create a key pair for *zone* in *keydir*, copying it from *cache* when present there."""
    slot = _cache_slot(cache, zone, spec, index) if cache is not None else None
    cached = sorted(slot.glob("K*.key")) if slot is not None and slot.is_dir() else []
    if cached:
        base = keydir / cached[0].name.removesuffix(".key")
        for suffix in (".key", ".private"):
            shutil.copyfile(cached[0].parent / (base.name + suffix), _with(base, suffix))
    else:
        base = _generate(zone, spec, keydir)
        if slot is not None:
            slot.mkdir(parents=True, exist_ok=True)
            for suffix in (".key", ".private"):
                shutil.copyfile(_with(base, suffix), slot / (base.name + suffix))
    return LabKey(base=base, dnskey=read_dnskey(_with(base, ".key")), ksk=spec.ksk)


def make_ds(zone: str, key: LabKey, digest_type: int) -> dns.rdtypes.dsbase.DSBase:
    """Return the DS rdata for *key* with the given digest type (2 SHA-256, 4 SHA-384)."""
    digest = dns.dnssectypes.DSDigest(digest_type)
    return dns.dnssec.make_ds(dns.name.from_text(zone), key.dnskey, digest)


def corrupt_ds(ds: dns.rdtypes.dsbase.DSBase) -> dns.rdtypes.dsbase.DSBase:
    """Return *ds* with the same key tag and algorithm but a digest matching no key."""
    wrong = hashlib.sha256(b"lab: matches no key" + ds.digest).digest()[: len(ds.digest)]
    corrupted = ds.replace(digest=wrong)
    assert isinstance(corrupted, dns.rdtypes.dsbase.DSBase)
    return corrupted
