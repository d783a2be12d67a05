"""A cached pool of BIND key pairs per algorithm, copied under any zone's name on demand, and
of PEM keys for what BIND 9.18 no longer makes (RSAMD5, DSA, RSA under 1024 bits)."""

from __future__ import annotations

import fcntl
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.dnssec
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa
from cryptography.utils import CryptographyDeprecationWarning

from tests.lab.keys import LabKey, read_dnskey
from tests.lab.tools import run

POOL_SIZE = 6
"""Key pairs kept per (algorithm, size, role); the zones of one scenario take distinct ones."""

MNEMONICS = {5: "RSASHA1", 7: "NSEC3RSASHA1", 8: "RSASHA256", 10: "RSASHA512",
             13: "ECDSAP256SHA256", 14: "ECDSAP384SHA384", 15: "ED25519", 16: "ED448"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class PoolKey:
    """One pooled key pair, generated for the owner ``pool.``."""

    key_text: str
    """The ``.key`` file."""
    private_text: str
    """The ``.private`` file (no owner name in it)."""
    algorithm: int
    tag: int
    ksk: bool


def _file_base(zone: str, algorithm: int, tag: int) -> str:
    return f"K{zone}+{algorithm:03d}+{tag:05d}"


class KeyPool:
    """Keys generated once with dnssec-keygen into *cache* and reused across runs."""

    def __init__(self, cache: Path) -> None:
        self.cache = cache
        self._loaded: dict[tuple[int, int | None, bool, int], PoolKey] = {}

    def _slot(self, algorithm: int, bits: int | None, ksk: bool, index: int) -> Path:
        return self.cache / f"{algorithm}_{bits}_{'ksk' if ksk else 'zsk'}_{index}"

    def _generate(self, slot: Path, algorithm: int, bits: int | None, ksk: bool) -> None:
        argv = ["dnssec-keygen", "-q", "-K", str(slot), "-a", MNEMONICS[algorithm], "-L", "300"]
        argv += ["-b", str(bits)] if bits else []
        argv += ["-f", "KSK"] if ksk else []
        slot.mkdir(parents=True, exist_ok=True)
        run([*argv, "pool."], timeout=120)

    def get(self, algorithm: int, bits: int | None, ksk: bool, index: int) -> PoolKey:
        """The pooled key, generating it on first use (file-locked: parallel runs share)."""
        wanted = (algorithm, bits, ksk, index % POOL_SIZE)
        if wanted in self._loaded:
            return self._loaded[wanted]
        slot = self._slot(*wanted)
        self.cache.mkdir(parents=True, exist_ok=True)
        with (self.cache / ".lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not list(slot.glob("K*.key")):
                self._generate(slot, algorithm, bits, ksk)
        key_file = next(iter(sorted(slot.glob("K*.key"))))
        tag = int(key_file.name.removesuffix(".key").rsplit("+", 1)[1])
        private = key_file.with_name(key_file.name.removesuffix(".key") + ".private")
        key = PoolKey(key_file.read_text(), private.read_text(), algorithm, tag, ksk)
        self._loaded[wanted] = key
        return key

    def python(self, algorithm: int, bits: int | None, ksk: bool, index: int) -> LabKey:
        """A pooled PEM key for dnspython's signer (see `python_key`)."""
        return python_key(self.cache, algorithm, bits, ksk, index)


def _generate_pem(pem: Path, algorithm: int, bits: int | None) -> None:
    """A private key in PEM: DSA 1024 (RFC 2536), ECDSA P-256, RSA of *bits* (openssl for
    < 1024 bits: cryptography refuses to generate them)."""
    if algorithm in (3, 6):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)  # DSA, on purpose
            key: Any = dsa.generate_private_key(key_size=1024)
    elif algorithm == 13:
        key = ec.generate_private_key(ec.SECP256R1())
    elif bits is not None and bits < 1024:
        run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", f"rsa_keygen_bits:{bits}",
             "-out", str(pem)], timeout=60)  # fmt: skip
        return
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits or 1024)
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))  # fmt: skip


def python_key(cache: Path, algorithm: int, bits: int | None, ksk: bool, index: int) -> LabKey:
    """A pooled key dnspython signs with: ``base`` + ``.pem`` holds the private key."""
    slot = cache / f"py_{algorithm}_{bits}_{'ksk' if ksk else 'zsk'}_{index % POOL_SIZE}"
    pem = slot / "key.pem"
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not pem.exists():
            slot.mkdir(parents=True, exist_ok=True)
            _generate_pem(pem, algorithm, bits)
    private = load_private(slot / "key")
    dnskey = dns.dnssec.make_dnskey(private.public_key(), algorithm, flags=257 if ksk else 256)
    return LabKey(base=slot / "key", dnskey=dnskey, ksk=ksk)


def load_private(base: Path) -> Any:
    """The private key of a `python_key` (DSA or RSA, cryptography's object)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)  # DSA, on purpose
        return serialization.load_pem_private_key(base.with_suffix(".pem").read_bytes(), None)


def materialize(key: PoolKey, zone: str, keydir: Path) -> LabKey:
    """Write *key* as a key pair of *zone* in *keydir* (same key tag: it ignores the owner)."""
    base = keydir / _file_base(zone, key.algorithm, key.tag)
    lines = [
        line if line.startswith(";") or not line.strip() else f"{zone} {line.split(None, 1)[1]}"
        for line in key.key_text.splitlines()
    ]
    Path(f"{base}.key").write_text("\n".join(lines) + "\n")
    Path(f"{base}.private").write_text(key.private_text)
    Path(f"{base}.private").chmod(0o600)
    return LabKey(base=base, dnskey=read_dnskey(Path(f"{base}.key")), ksk=key.ksk)


def revoke(key: LabKey) -> LabKey:
    """The same key pair with the REVOKE flag (RFC 5011 2.1; a new key tag), via dnssec-revoke."""
    made = run(["dnssec-revoke", "-K", str(key.base.parent), "-r", "-f", str(key.base)])
    base = key.base.parent / Path(made.strip().splitlines()[-1]).name
    return LabKey(base=base, dnskey=read_dnskey(Path(f"{base}.key")), ksk=key.ksk)
