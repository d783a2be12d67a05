"""Persistent SQLite key cache: keys validated in earlier runs stay trusted in later ones.

Schema version 1 (``PRAGMA user_version = 1``), one table ``keys``: zone, key tag, algorithm,
flags, the DNSKEY rdata (wire form), first/last capture time seen, state (``trusted`` once
validated through the chain or imported, ``seen`` if only observed, ``revoked``) and how it
was validated.

Export format: JSON by default (lossless: every column), or zone-file DNSKEY text when the
path ends in ``.zone``, ``.key`` or ``.txt`` (``; state=... validated_by=...`` comments).
``import_file`` reads either; imported zone-file DNSKEYs become ``trusted`` with
``validated_by = import:<path>``; imported DS records are not stored (a DS is not a key: use
it as a trust anchor file instead) and are reported as skipped.
"""

from __future__ import annotations

import base64
import json
import logging
import sqlite3
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path

import dns.dnssec
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.DNSKEY

from auditor.errors import KeyCacheError, TrustAnchorError
from auditor.trust.anchors import parse_anchor_text

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
EXPORT_FORMAT = "dnssec-auditor-keycache"
_ZONE_SUFFIXES = {".zone", ".key", ".txt"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (
    zone TEXT NOT NULL,
    key_tag INTEGER NOT NULL,
    algorithm INTEGER NOT NULL,
    flags INTEGER NOT NULL,
    dnskey BLOB NOT NULL,
    first_seen_ns INTEGER,
    last_seen_ns INTEGER,
    state TEXT NOT NULL,
    validated_by TEXT,
    PRIMARY KEY (zone, dnskey)
);
"""


class KeyState(StrEnum):
    """Lifecycle of a cached key."""

    TRUSTED = "trusted"
    """Validated through the chain of trust (or imported by the user)."""
    SEEN = "seen"
    """Observed but never validated."""
    REVOKED = "revoked"
    """Seen with the REVOKE bit and a valid self-signature (RFC 5011 2.1)."""


_STATE_RANK = {KeyState.SEEN: 0, KeyState.TRUSTED: 1, KeyState.REVOKED: 2}


@dataclass(frozen=True, slots=True)
class CachedKey:
    """One row of the key cache."""

    zone: str
    """Zone name in presentation format, absolute, lower case."""
    key_tag: int
    """RFC 4034 Appendix B key tag."""
    algorithm: int
    """DNSKEY algorithm number."""
    flags: int
    """DNSKEY flags."""
    dnskey: str
    """The DNSKEY rdata in presentation format."""
    first_seen_ns: int | None
    """Capture time the key was first seen (None for imported keys)."""
    last_seen_ns: int | None
    """Capture time the key was last seen."""
    state: KeyState
    """trusted, seen or revoked."""
    validated_by: str | None
    """How trust was established, e.g. 'ds:20326/8/2 via .' or 'import:/path'."""

    def rdata(self) -> dns.rdtypes.ANY.DNSKEY.DNSKEY:
        """The DNSKEY rdata."""
        rdata = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.DNSKEY, self.dnskey)
        assert isinstance(rdata, dns.rdtypes.ANY.DNSKEY.DNSKEY)
        return rdata


@dataclass(frozen=True, slots=True)
class CacheUpdate:
    """A change the pipeline should persist at the end of a run (``Validator.cache_updates``)."""

    zone: dns.name.Name
    """The key's zone."""
    dnskey: dns.rdtypes.ANY.DNSKEY.DNSKEY
    """The key."""
    state: KeyState
    """New state."""
    validated_by: str | None
    """How it was validated."""
    first_seen_ns: int | None
    """First capture time in this run."""
    last_seen_ns: int | None
    """Last capture time in this run."""


class KeyCache:
    """The SQLite key cache at ``path`` (created if missing). Use as a context manager or call
    ``close``."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self._db = sqlite3.connect(path)
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise KeyCacheError(
                    f"{path}: key cache schema version {version} is newer than supported "
                    f"({SCHEMA_VERSION})"
                )
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            self._db.commit()
        except sqlite3.Error as exc:
            raise KeyCacheError(f"{path}: not a usable key cache: {exc}") from exc

    def __enter__(self) -> KeyCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    # --- reading -----------------------------------------------------------------------------

    def list(self) -> list[CachedKey]:
        """Every row, ordered by zone, key tag."""
        try:
            rows = self._db.execute(
                "SELECT zone, key_tag, algorithm, flags, dnskey, first_seen_ns, last_seen_ns,"
                " state, validated_by FROM keys ORDER BY zone, key_tag"
            ).fetchall()
        except sqlite3.Error as exc:
            raise KeyCacheError(f"{self.path}: cannot read key cache: {exc}") from exc
        return [self._row(row) for row in rows]

    def trusted_keys(self) -> dict[dns.name.Name, tuple[CachedKey, ...]]:
        """Trusted keys by zone (what a KeyView consults when the chain is incomplete)."""
        keys: dict[dns.name.Name, tuple[CachedKey, ...]] = {}
        for key in self.list():
            if key.state is KeyState.TRUSTED:
                zone = dns.name.from_text(key.zone)
                keys[zone] = (*keys.get(zone, ()), key)
        return keys

    @staticmethod
    def _row(row: tuple[object, ...]) -> CachedKey:
        zone, tag, alg, flags, wire, first, last, state, how = row
        assert isinstance(wire, bytes)
        rdata = dns.rdata.from_wire(dns.rdataclass.IN, dns.rdatatype.DNSKEY, wire, 0, len(wire))
        return CachedKey(
            zone=str(zone),
            key_tag=int(tag),  # type: ignore[call-overload]
            algorithm=int(alg),  # type: ignore[call-overload]
            flags=int(flags),  # type: ignore[call-overload]
            dnskey=rdata.to_text(),
            first_seen_ns=first if isinstance(first, int) else None,
            last_seen_ns=last if isinstance(last, int) else None,
            state=KeyState(str(state)),
            validated_by=str(how) if how is not None else None,
        )

    # --- writing -----------------------------------------------------------------------------

    def record_validated(
        self,
        zone: dns.name.Name,
        dnskey: dns.rdtypes.ANY.DNSKEY.DNSKEY,
        *,
        validated_by: str | None,
        state: KeyState = KeyState.TRUSTED,
        first_seen_ns: int | None = None,
        last_seen_ns: int | None = None,
    ) -> None:
        """Insert or update one key; state only moves seen -> trusted -> revoked."""
        self._upsert(zone, dnskey, state, validated_by, first_seen_ns, last_seen_ns)
        self._commit()

    def apply(self, updates: Iterable[CacheUpdate]) -> int:
        """Persist the updates of a run in one transaction; return how many were applied."""
        count = 0
        for update in updates:
            self._upsert(update.zone, update.dnskey, update.state, update.validated_by,
                         update.first_seen_ns, update.last_seen_ns)
            count += 1
        self._commit()
        return count

    def _upsert(
        self,
        zone: dns.name.Name,
        dnskey: dns.rdtypes.ANY.DNSKEY.DNSKEY,
        state: KeyState,
        validated_by: str | None,
        first_seen_ns: int | None,
        last_seen_ns: int | None,
    ) -> None:
        zone_text = zone.canonicalize().to_text()
        wire = dnskey.to_digestable()
        try:
            old = self._db.execute(
                "SELECT state, validated_by, first_seen_ns, last_seen_ns FROM keys"
                " WHERE zone = ? AND dnskey = ?",
                (zone_text, wire),
            ).fetchone()
            if old is not None:
                old_state = KeyState(old[0])
                if _STATE_RANK[old_state] > _STATE_RANK[state]:
                    state, validated_by = old_state, old[1]
                elif old_state is state and validated_by is None:
                    validated_by = old[1]
                first_seen_ns = _min_or(old[2], first_seen_ns)
                last_seen_ns = _max_or(old[3], last_seen_ns)
            self._db.execute(
                "INSERT OR REPLACE INTO keys VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (zone_text, dns.dnssec.key_id(dnskey), int(dnskey.algorithm), int(dnskey.flags),
                 wire, first_seen_ns, last_seen_ns, str(state), validated_by),
            )
        except sqlite3.Error as exc:
            raise KeyCacheError(f"{self.path}: cannot write key cache: {exc}") from exc

    def _commit(self) -> None:
        try:
            self._db.commit()
        except sqlite3.Error as exc:
            raise KeyCacheError(f"{self.path}: cannot write key cache: {exc}") from exc

    # --- import / export ---------------------------------------------------------------------

    def export(self, path: str) -> int:
        """Write every row to ``path`` (JSON, or zone-file text for .zone/.key/.txt)."""
        rows = self.list()
        if Path(path).suffix.lower() in _ZONE_SUFFIXES:
            lines = [
                f"{row.zone} IN DNSKEY {row.dnskey} ; state={row.state} "
                f"validated_by={row.validated_by or '-'}"
                for row in rows
            ]
            text = "\n".join(lines) + ("\n" if lines else "")
        else:
            payload = {
                "format": EXPORT_FORMAT,
                "version": SCHEMA_VERSION,
                "keys": [asdict(row) for row in rows],
            }
            text = json.dumps(payload, indent=2) + "\n"
        try:
            Path(path).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise KeyCacheError(f"{path}: cannot write export: {exc}") from exc
        return len(rows)

    def import_file(self, path: str) -> int:
        """Import a JSON export or zone-file DNSKEY text; return the number of keys stored."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise KeyCacheError(f"{path}: cannot read: {exc}") from exc
        if text.lstrip().startswith("{"):
            count = self._import_json(text, path)
        else:
            count = self._import_zone_text(text, path)
        self._commit()
        return count

    def _import_json(self, text: str, path: str) -> int:
        try:
            payload = json.loads(text)
            if payload.get("format") != EXPORT_FORMAT:
                raise ValueError("not a dnssec-auditor key cache export")
            count = 0
            for row in payload["keys"]:
                rdata = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.DNSKEY, row["dnskey"])
                assert isinstance(rdata, dns.rdtypes.ANY.DNSKEY.DNSKEY)
                self._upsert(dns.name.from_text(row["zone"]), rdata, KeyState(row["state"]),
                             row.get("validated_by"), row.get("first_seen_ns"),
                             row.get("last_seen_ns"))
                count += 1
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise KeyCacheError(f"{path}: invalid key cache export: {exc}") from exc
        return count

    def _import_zone_text(self, text: str, path: str) -> int:
        try:
            anchors = parse_anchor_text(text, path)
        except TrustAnchorError as exc:
            raise KeyCacheError(str(exc)) from exc
        count = 0
        for anchor in anchors:
            if anchor.dnskey is None:
                logger.warning("%s: DS record for %s skipped (use it as a trust anchor file)",
                               anchor.source, anchor.zone)
                continue
            self._upsert(anchor.zone, anchor.dnskey, KeyState.TRUSTED, f"import:{path}",
                         None, None)
            count += 1
        return count


def _min_or(a: int | None, b: int | None) -> int | None:
    values = [v for v in (a, b) if v is not None]
    return min(values) if values else None


def _max_or(a: int | None, b: int | None) -> int | None:
    values = [v for v in (a, b) if v is not None]
    return max(values) if values else None


def dnskey_text(dnskey: dns.rdtypes.ANY.DNSKEY.DNSKEY) -> str:
    """Presentation text of a DNSKEY (helper for reports)."""
    return f"{dnskey.flags} {dnskey.protocol} {dnskey.algorithm} " + base64.b64encode(
        dnskey.key
    ).decode()
