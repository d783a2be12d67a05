"""Keyed, prefix-preserving anonymisation of client addresses (Crypto-PAn) for shared reports.

Crypto-PAn (Xu, Fan, Ammar, Moon, 2002): bit ``i`` of the output is bit ``i`` of the address
XOR the first bit of AES(key, first ``i`` address bits || pad bits). Two addresses sharing a
``k``-bit prefix map to addresses sharing exactly a ``k``-bit prefix. AES comes from
``cryptography``; the 32-byte working key is derived with HKDF-SHA256 from any secret.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

logger = logging.getLogger(__name__)

KEY_FILE_NAME = "anonymize.key"
"""Where a random key is kept in the output directory (never share this file)."""
_INFO = b"dnssec-auditor prefix-preserving anonymisation v1"
_MAX_MEMO = 200_000


def derive_key(secret: bytes) -> bytes:
    """32 bytes (AES-128 key + pad seed) from any secret, with HKDF-SHA256."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(secret)


class PrefixPreservingAnonymizer:
    """Maps IPv4 and IPv6 addresses one-to-one, preserving shared prefixes.

    >>> anon = PrefixPreservingAnonymizer(b"a test secret")
    >>> a, b = anon.address("192.0.2.1"), anon.address("192.0.2.77")
    >>> a != "192.0.2.1" and a.rsplit(".", 1)[0] == b.rsplit(".", 1)[0]
    True
    >>> anon.address("192.0.2.1") == a
    True
    >>> anon.address("not an address")
    'not an address'
    """

    def __init__(self, secret: bytes) -> None:
        key = derive_key(secret)
        self._encryptor = Cipher(algorithms.AES(key[:16]), modes.ECB()).encryptor()
        pad = self._encryptor.update(key[16:])
        self._pad = int.from_bytes(pad, "big")
        self._memo: dict[str, str] = {}

    def _first_bit(self, block: int) -> int:
        return self._encryptor.update(block.to_bytes(16, "big"))[0] >> 7

    def _scramble(self, value: int, bits: int) -> int:
        """Crypto-PAn over a ``bits``-long address placed at the top of a 128-bit block."""
        mask = 0
        for i in range(bits):
            prefix = (value >> (bits - i)) << (128 - i) if i else 0
            keep = (1 << (128 - i)) - 1
            mask |= self._first_bit(prefix | (self._pad & keep)) << (bits - 1 - i)
        return value ^ mask

    def address(self, text: str) -> str:
        """The anonymised form of an address; anything else is returned unchanged."""
        known = self._memo.get(text)
        if known is not None:
            return known
        try:
            parsed = ipaddress.ip_address(text)
        except ValueError:
            return text
        bits = parsed.max_prefixlen
        out = ipaddress.ip_address(self._scramble(int(parsed), bits)) if bits == 32 else (
            ipaddress.IPv6Address(self._scramble(int(parsed), bits)))
        result = str(out)
        if len(self._memo) < _MAX_MEMO:
            self._memo[text] = result
        return result


def _replace_in(value: Any, pattern: re.Pattern[str], mapping: dict[str, str]) -> Any:
    if isinstance(value, str):
        return pattern.sub(lambda m: mapping[m.group(0)], value)
    if isinstance(value, list):
        return [_replace_in(v, pattern, mapping) for v in value]
    if isinstance(value, dict):
        return {k: _replace_in(v, pattern, mapping) for k, v in value.items()}
    return value


class RecordAnonymizer:
    """Rewrites output records: client addresses replaced in their fields and wherever else
    the same address appears in text (messages, details, parameters)."""

    def __init__(self, anonymizer: PrefixPreservingAnonymizer) -> None:
        self.anonymizer = anonymizer

    def _rewrite(self, record: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
        originals = [record[f] for f in fields if isinstance(record.get(f), str)]
        if not originals:
            return record
        mapping = {a: self.anonymizer.address(a) for a in originals}
        alternatives = "|".join(re.escape(a) for a in sorted(mapping, key=len, reverse=True))
        pattern = re.compile(rf"(?<![\w.:])(?:{alternatives})(?![\w:]|\.\d)")
        return {key: _replace_in(value, pattern, mapping) if key != "schema" else value
                for key, value in record.items()}

    def response(self, record: dict[str, Any]) -> dict[str, Any]:
        """A ``responses.jsonl`` record: the client is the response's destination."""
        return self._rewrite(record, ("dst",))

    def finding(self, record: dict[str, Any]) -> dict[str, Any]:
        """A ``findings.jsonl`` record: ``client`` for findings; both addresses for decode
        anomalies, whose direction is unknown."""
        if record.get("kind") == "anomaly":
            return self._rewrite(record, ("src", "dst"))
        return self._rewrite(record, ("client",))


def load_or_create_key(out_dir: Path, key_file: Path | None) -> bytes:
    """The secret: the content of ``key_file`` when given, else ``anonymize.key`` in the output
    directory (created with 32 random bytes, mode 0600, on first use)."""
    if key_file is not None:
        return key_file.read_bytes().strip()
    path = out_dir / KEY_FILE_NAME
    if path.exists():
        return path.read_bytes().strip()
    out_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_hex(32).encode()
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(secret + b"\n")
    logger.info("anonymisation key written to %s (keep it out of shared reports)", path)
    return secret


Transform = Callable[[dict[str, Any]], dict[str, Any]]
"""A record rewriter applied before a line is written."""
