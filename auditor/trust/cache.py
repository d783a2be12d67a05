"""Persistent SQLite key cache: keys validated in earlier runs, reused when the user asks.

Schema version 1 (``PRAGMA user_version = 1``), one table ``keys``: zone, key tag, algorithm,
flags, the DNSKEY rdata (wire form), first/last capture time seen, state and how it was
validated. States: ``trusted`` (validated through the chain of trust from an anchor in an
earlier run, or imported by a user who said so), ``seen`` (observed, never validated: it is
never used to validate anything) and ``revoked`` (seen with the REVOKE bit and a valid
self-signature). A key only becomes ``trusted`` by a validation or by the user's explicit
choice (an export's own annotation, or ``import_file(..., trusted=True)``).

Export format: JSON by default (lossless: every column), or zone-file DNSKEY text when the
path ends in ``.zone``, ``.key`` or ``.txt``, one record per line, annotated
``; dnssec-auditor-keycache state=... validated_by=...``. ``import_file`` reads either and keeps
each key's state; a DNSKEY without the annotation (a plain zone file, a BIND or Unbound anchor
file) is imported as ``seen`` unless ``trusted=True``, which also promotes ``seen`` keys to
``trusted`` (never a ``revoked`` one). Imported DS records are not stored (a DS is not a key:
use it as a trust anchor file instead) and are reported as skipped.

Rows that do not make sense (a blob that is not a DNSKEY, a key tag that does not match the key,
an unknown state, ...) are skipped, counted in ``skipped_rows`` and named in one warning; a file
that SQLite cannot read raises ``KeyCacheError`` naming it.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import sqlite3
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path

import dns.dnssec
import dns.exception
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
_ANNOTATION_TAG = "dnssec-auditor-keycache"
_ANNOTATION = re.compile(
    r";.*?\bstate=(?P<state>\S+)(?:\s+validated_by=(?P<how>.*?))?\s*$"
)
"""The trust annotation of an exported zone-file line (earlier exports wrote the same
``state=... validated_by=...`` without the tag)."""

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
        self.skipped_rows = 0
        """Rows the last ``list`` skipped as unusable."""
        self._warned = False

    def __enter__(self) -> KeyCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    # --- reading -----------------------------------------------------------------------------

    def list(self) -> list[CachedKey]:
        """Every usable row, ordered by zone, key tag; rows that do not make sense are skipped,
        counted in ``skipped_rows`` and reported in one warning per cache."""
        try:
            rows = self._db.execute(
                "SELECT zone, key_tag, algorithm, flags, dnskey, first_seen_ns, last_seen_ns,"
                " state, validated_by FROM keys ORDER BY zone, key_tag"
            ).fetchall()
        except sqlite3.Error as exc:
            raise KeyCacheError(f"{self.path}: cannot read key cache: {exc}") from exc
        keys: list[CachedKey] = []
        problems: list[str] = []
        for number, row in enumerate(rows, start=1):
            try:
                keys.append(_cached_key(row))
            except _BadRow as exc:
                problems.append(f"row {number} ({exc})")
        self.skipped_rows = len(problems)
        if problems and not self._warned:
            self._warned = True
            logger.warning("%s: %d key cache rows skipped as unusable: %s", self.path,
                           len(problems), "; ".join(problems[:3]) +
                           ("; ..." if len(problems) > 3 else ""))
        return keys

    def trusted_keys(self) -> dict[dns.name.Name, tuple[CachedKey, ...]]:
        """Trusted keys by zone (what a KeyView consults when the chain is incomplete)."""
        keys: dict[dns.name.Name, tuple[CachedKey, ...]] = {}
        for key in self.list():
            if key.state is KeyState.TRUSTED:
                zone = dns.name.from_text(key.zone)
                keys[zone] = (*keys.get(zone, ()), key)
        return keys

    def state_counts(self) -> dict[str, int]:
        """How many usable rows the cache holds per state, and how many rows were skipped."""
        counts = {str(state): 0 for state in KeyState}
        for key in self.list():
            counts[str(key.state)] += 1
        return {**counts, "skipped_rows": self.skipped_rows}

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
            old_state = _state_or_none(old[0]) if old is not None else None
            if old is not None and old_state is not None:  # an unusable old row is replaced
                old_how = old[1] if isinstance(old[1], str) else None
                if _STATE_RANK[old_state] > _STATE_RANK[state]:
                    state, validated_by = old_state, old_how
                elif old_state is state and validated_by is None:
                    validated_by = old_how
                first_seen_ns = _min_or(_int_or_none(old[2]), first_seen_ns)
                last_seen_ns = _max_or(_int_or_none(old[3]), last_seen_ns)
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
        text, count = self.export_text(zone_format=Path(path).suffix.lower() in _ZONE_SUFFIXES)
        try:
            Path(path).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise KeyCacheError(f"{path}: cannot write export: {exc}") from exc
        return count

    def export_text(self, *, zone_format: bool) -> tuple[str, int]:
        """Every row as export text (JSON, or annotated zone-file lines) and the row count."""
        rows = self.list()
        if zone_format:
            lines = [
                f"{row.zone} IN DNSKEY {row.dnskey} ; {_ANNOTATION_TAG} state={row.state} "
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
        return text, len(rows)

    def import_file(self, path: str, *, trusted: bool = False) -> int:
        """Import a JSON export or zone-file DNSKEY text; return the number of keys stored.

        Each key keeps the state its export recorded; a DNSKEY without one is ``seen``. With
        ``trusted`` (the user vouches for the file) ``seen`` keys are stored as ``trusted``.
        """
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise KeyCacheError(f"{path}: cannot read: {exc}") from exc
        if text.lstrip().startswith("{"):
            count = self._import_json(text, path, trusted)
        else:
            count = self._import_zone_text(text, path, trusted)
        self._commit()
        return count

    def _import_json(self, text: str, path: str, trusted: bool) -> int:
        try:
            payload = json.loads(text)
            if payload.get("format") != EXPORT_FORMAT:
                raise ValueError("not a dnssec-auditor key cache export")
            count = 0
            for row in payload["keys"]:
                rdata = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.DNSKEY, row["dnskey"])
                if not isinstance(rdata, dns.rdtypes.ANY.DNSKEY.DNSKEY):
                    raise ValueError(f"not a DNSKEY: {row['dnskey']!r}")
                state, how = KeyState(row["state"]), row.get("validated_by")
                if trusted and state is KeyState.SEEN:
                    state, how = KeyState.TRUSTED, f"import:{path} (--trusted)"
                self._upsert(dns.name.from_text(row["zone"]), rdata, state, how,
                             _int_or_none(row.get("first_seen_ns")),
                             _int_or_none(row.get("last_seen_ns")))
                count += 1
        except (ValueError, KeyError, TypeError, AttributeError,
                dns.exception.DNSException) as exc:
            raise KeyCacheError(f"{path}: invalid key cache export: {exc}") from exc
        return count

    def _import_zone_text(self, text: str, path: str, trusted: bool) -> int:
        try:
            anchors = parse_anchor_text(text, path)
        except TrustAnchorError as exc:
            raise KeyCacheError(str(exc)) from exc
        annotations = _annotations(text, path)
        count = 0
        for anchor in anchors:
            if anchor.dnskey is None:
                logger.warning("%s: DS record for %s skipped (use it as a trust anchor file)",
                               anchor.source, anchor.zone)
                continue
            line = _line_of(anchor.source, path)
            state, how = annotations.get(line, (KeyState.SEEN, None)) if line else (
                KeyState.SEEN, None)
            if state is KeyState.TRUSTED:
                how = f"import:{path} ({how or 'exported as trusted'})"
            elif trusted and state is KeyState.SEEN:
                state, how = KeyState.TRUSTED, f"import:{path} (--trusted)"
            self._upsert(anchor.zone, anchor.dnskey, state, how, None, None)
            count += 1
        return count


class _BadRow(ValueError):
    """A key cache row that does not describe a key."""


def _cached_key(row: tuple[object, ...]) -> CachedKey:
    """One row as a CachedKey, or _BadRow saying what is wrong with it."""
    if len(row) != 9:
        raise _BadRow(f"{len(row)} columns")
    zone, tag, alg, flags, wire, first, last, state, how = row
    if not isinstance(wire, bytes):
        raise _BadRow("key is not a DNSKEY in wire form")
    try:
        rdata = dns.rdata.from_wire(dns.rdataclass.IN, dns.rdatatype.DNSKEY, wire, 0, len(wire))
        name = dns.name.from_text(str(zone))
    except (dns.exception.DNSException, ValueError, IndexError) as exc:
        raise _BadRow(f"unreadable key or zone: {exc}") from exc
    if not isinstance(rdata, dns.rdtypes.ANY.DNSKEY.DNSKEY):
        raise _BadRow("key is not a DNSKEY")
    # The stored tag, algorithm and flags must be those of the key itself (RFC 4034 B).
    if (tag, alg, flags) != (dns.dnssec.key_id(rdata), int(rdata.algorithm), int(rdata.flags)):
        raise _BadRow(f"key tag/algorithm/flags {tag!r}/{alg!r}/{flags!r} do not match the key")
    known_state = _state_or_none(state)
    if known_state is None:
        raise _BadRow(f"unknown state {state!r}")
    if how is not None and not isinstance(how, str):
        raise _BadRow("validated_by is not text")
    return CachedKey(
        zone=name.canonicalize().to_text(),
        key_tag=dns.dnssec.key_id(rdata),
        algorithm=int(rdata.algorithm),
        flags=int(rdata.flags),
        dnskey=rdata.to_text(),
        first_seen_ns=_int_or_none(first),
        last_seen_ns=_int_or_none(last),
        state=known_state,
        validated_by=how,
    )


def _state_or_none(value: object) -> KeyState | None:
    try:
        return KeyState(str(value)) if isinstance(value, str) else None
    except ValueError:
        return None


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _annotations(text: str, path: str) -> dict[int, tuple[KeyState, str | None]]:
    """Line number -> (state, validated_by) of every line an export annotated."""
    found: dict[int, tuple[KeyState, str | None]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        match = _ANNOTATION.search(line)
        if match is None:
            continue
        state = _state_or_none(match["state"])
        if state is None:
            raise KeyCacheError(f"{path}:{number}: unknown key state {match['state']!r}")
        how = match["how"]
        found[number] = (state, None if how in (None, "", "-") else how)
    return found


def _line_of(source: str, path: str) -> int | None:
    """The line number in an anchor's ``source`` (``path:line``)."""
    prefix = f"{path}:"
    if source.startswith(prefix) and source[len(prefix):].isdigit():
        return int(source[len(prefix):])
    return None


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


@dataclass(slots=True)
class CacheUse:
    """What a run did with its key cache: ``stats.json``'s ``key_cache`` and the stderr line.

    A run reads trusted keys from the cache only when the user named it (``--keys``): the
    default cache in the output directory is written by every run but never read, so the same
    command on the same capture gives the same verdicts whatever earlier runs left there.
    """

    path: str
    """The cache file."""
    read: bool
    """Whether its trusted keys were used to validate (only when named with ``--keys``)."""
    rows_before: dict[str, int]
    """Usable rows per state before the run, and ``skipped_rows`` (unusable ones)."""
    keys_loaded: int = 0
    """Trusted keys loaded for validation (0 when not read)."""
    zones_loaded: int = 0
    """Zones those keys belong to."""
    verdicts_using_cache: int = 0
    """Verdicts that relied on a cached key: a zone's trust came from the cache."""
    rows_written: int = 0
    """Rows inserted or updated at the end of the run."""

    def as_dict(self) -> dict[str, object]:
        """The ``key_cache`` object of ``stats.json`` (fields are only ever added)."""
        return {
            "path": self.path,
            "read": self.read,
            "rows_before": dict(self.rows_before),
            "keys_loaded": self.keys_loaded,
            "zones_loaded": self.zones_loaded,
            "verdicts_using_cache": self.verdicts_using_cache,
            "rows_written": self.rows_written,
        }


def cache_use_line(use: dict[str, object]) -> str:
    """The one stderr line saying which cache a run read or wrote and what depended on it."""
    path = use.get("path")
    before = use.get("rows_before")
    trusted_before = before.get("trusted", 0) if isinstance(before, dict) else 0
    if use.get("read"):
        return (f"key cache {path} (--keys): {use.get('keys_loaded', 0)} trusted keys of "
                f"{use.get('zones_loaded', 0)} zones loaded from earlier runs and imports; "
                f"{use.get('verdicts_using_cache', 0)} verdicts relied on them "
                f"(trust_from_cache); {use.get('rows_written', 0)} rows written")
    if trusted_before:
        return (f"key cache {path}: {use.get('rows_written', 0)} rows written; not read: its "
                f"{trusted_before} trusted keys from earlier runs were not used (pass --keys "
                f"{path} to use them)")
    return (f"key cache {path}: {use.get('rows_written', 0)} rows written; not read (pass "
            f"--keys FILE to validate with keys from earlier runs)")
