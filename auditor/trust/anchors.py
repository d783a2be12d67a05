"""Trust anchors: the embedded IANA root anchors and user anchor files in every common format.

Accepted formats (detected from the content):

* zone-file text with DS or DNSKEY records (also Unbound ``trust-anchor-file`` and
  ``auto-trust-anchor-file`` files, whose ``;;state=`` annotations are comments);
* Unbound configuration lines ``trust-anchor: "<DS or DNSKEY record>"``;
* BIND ``trust-anchors { }`` (``static-key``, ``initial-key``, ``static-ds``, ``initial-ds``),
  ``managed-keys { }`` and ``trusted-keys { }`` clauses;
* IANA ``root-anchors.xml`` (RFC 9718), honouring ``validFrom``/``validUntil``.

Root rule: the embedded IANA root anchors are used only when no user file gives an anchor for
the root zone. A user root anchor replaces them entirely, so a private-root lab validates with
its own anchor only and a forged chain to the real root cannot be trusted by accident.
Anchors for other zones are always added (islands of trust); the closest anchor at or above a
name is the one that names start from.
"""

from __future__ import annotations

import bisect
import logging
import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import dns.dnssec
import dns.exception
import dns.immutable
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.DNSKEY
import dns.rdtypes.ANY.DS

from auditor.errors import TrustAnchorError

logger = logging.getLogger(__name__)

IANA_ROOT_SOURCE = "iana:root-anchors.xml"
"""The ``source`` of the embedded IANA root anchors."""

_DS = dns.rdtypes.ANY.DS.DS
_DNSKEY = dns.rdtypes.ANY.DNSKEY.DNSKEY


@dataclass(frozen=True, slots=True)
class TrustAnchor:
    """One configured trust anchor: a DS digest or a DNSKEY for a zone."""

    zone: dns.name.Name
    """The zone the anchor is for (absolute)."""
    ds: dns.rdtypes.ANY.DS.DS | None
    """The anchor as a DS record (digest of the zone's key), or None for a DNSKEY anchor."""
    dnskey: dns.rdtypes.ANY.DNSKEY.DNSKEY | None
    """The anchor as a DNSKEY record, or None for a DS anchor."""
    source: str
    """Where it came from: ``file:line`` or ``iana:root-anchors.xml``."""
    valid_from_s: int | None = None
    """Start of validity (seconds since the epoch), from root-anchors.xml ``validFrom``."""
    valid_until_s: int | None = None
    """End of validity (seconds since the epoch), from root-anchors.xml ``validUntil``."""
    problem: str = ""
    """Why the anchor can match no key (a DS digest whose length does not fit its digest
    type), or empty for a usable anchor. Such an anchor is kept: its zone is then bogus with
    trust_anchor_mismatch, as a validator holding it would say, unless another anchor of the
    zone validates it."""

    def valid_at(self, at_s: int) -> bool:
        """Whether the anchor may be used at ``at_s`` (RFC 9718 2.2 validity period)."""
        if self.valid_from_s is not None and at_s < self.valid_from_s:
            return False
        return not (self.valid_until_s is not None and at_s > self.valid_until_s)

    def describe(self) -> str:
        """``19036/8 (iana:root-anchors.xml, 2010-07-15..2019-01-11)`` style text."""
        period = ""
        if self.valid_from_s is not None or self.valid_until_s is not None:
            period = f", {_day(self.valid_from_s)}..{_day(self.valid_until_s)}"
        unusable = f"; {self.problem}" if self.problem else ""
        return f"{self.key_tag}/{self.algorithm} ({self.source}{period}{unusable})"

    @property
    def key_tag(self) -> int:
        """Key tag of the anchored key."""
        if self.ds is not None:
            return int(self.ds.key_tag)
        assert self.dnskey is not None
        return int(dns.dnssec.key_id(self.dnskey))

    @property
    def algorithm(self) -> int:
        """DNSKEY algorithm of the anchored key."""
        record = self.ds if self.ds is not None else self.dnskey
        assert record is not None
        return int(record.algorithm)


def _day(at_s: int | None) -> str:
    if at_s is None:
        return ""
    return datetime.fromtimestamp(at_s, tz=UTC).strftime("%Y-%m-%d")


class TrustAnchors:
    """An immutable set of trust anchors indexed by zone."""

    def __init__(self, anchors: Sequence[TrustAnchor] = ()) -> None:
        self._anchors = tuple(anchors)
        self._by_zone: dict[dns.name.Name, tuple[TrustAnchor, ...]] = {}
        for anchor in self._anchors:
            self._by_zone[anchor.zone] = (*self._by_zone.get(anchor.zone, ()), anchor)
        bounds = {a.valid_from_s for a in self._anchors if a.valid_from_s is not None}
        bounds.update(a.valid_until_s + 1 for a in self._anchors if a.valid_until_s is not None)
        self._boundaries = sorted(bounds)

    @property
    def problems(self) -> tuple[str, ...]:
        """``file:line: problem`` for every anchor that can match no key."""
        return tuple(f"{a.source}: {a.problem}" for a in self._anchors if a.problem)

    def __iter__(self) -> Iterator[TrustAnchor]:
        return iter(self._anchors)

    def __len__(self) -> int:
        return len(self._anchors)

    @property
    def zones(self) -> frozenset[dns.name.Name]:
        """Every zone with at least one anchor."""
        return frozenset(self._by_zone)

    def for_zone(self, zone: dns.name.Name, at_s: int | None = None) -> tuple[TrustAnchor, ...]:
        """Anchors of exactly ``zone``, only those valid at ``at_s`` when given."""
        anchors = self._by_zone.get(zone, ())
        if at_s is None:
            return anchors
        return tuple(a for a in anchors if a.valid_at(at_s))

    def epoch_of(self, at_s: int | None) -> int | None:
        """Which validity period ``at_s`` falls in: the number of anchor validity boundaries
        (``validFrom``/``validUntil``) at or before it. Within one epoch the same anchors are
        in force, so chain results can be shared; None (no time) stays None."""
        if at_s is None:
            return None
        return bisect.bisect_right(self._boundaries, at_s)

    def period_text(self, at_s: int | None) -> str:
        """The anchor validity period ``at_s`` falls in, in words: ``before 2010-07-15``,
        ``from 2019-01-12 until 2024-07-17``, ``from 2024-07-18 on``."""
        epoch = self.epoch_of(at_s)
        if epoch is None:
            return "at any time"
        bounds = self._boundaries
        start = bounds[epoch - 1] if epoch > 0 else None
        end = bounds[epoch] - 1 if epoch < len(bounds) else None
        if start is None and end is None:
            return "at any time"
        if start is None:
            return f"before {_day(end + 1)}" if end is not None else ""
        if end is None:
            return f"from {_day(start)} on"
        return f"from {_day(start)} until {_day(end)}"

    def closest(self, name: dns.name.Name) -> dns.name.Name | None:
        """The deepest anchored zone at or above ``name`` (where validation of it starts)."""
        candidate = name
        while True:
            if candidate in self._by_zone:
                return candidate
            if candidate == dns.name.root or len(candidate) <= 1:
                return None
            candidate = candidate.parent()


def load_anchors(files: Sequence[str], *, include_iana_root: bool = True) -> TrustAnchors:
    """Read anchor ``files`` (any supported format) plus, unless a file anchors the root
    zone or ``include_iana_root`` is False, the embedded IANA root anchors."""
    anchors: list[TrustAnchor] = []
    for path in files:
        anchors.extend(read_anchor_file(path))
    if include_iana_root and not any(a.zone == dns.name.root for a in anchors):
        anchors.extend(iana_root_anchors())
    return TrustAnchors(anchors)


def iana_root_anchors() -> list[TrustAnchor]:
    """The IANA root anchors shipped in ``auditor/trust/data/root-anchors.xml``."""
    text = resources.files("auditor.trust").joinpath("data/root-anchors.xml").read_text("utf-8")
    return parse_anchor_text(text, IANA_ROOT_SOURCE)


def read_anchor_file(path: str) -> list[TrustAnchor]:
    """Parse one anchor file; raise TrustAnchorError naming the file (and line) if unusable."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TrustAnchorError(path, f"cannot read: {exc}") from exc
    anchors = parse_anchor_text(text, path)
    if not anchors:
        raise TrustAnchorError(path, "no DS or DNSKEY trust anchor found")
    return anchors


def parse_anchor_text(text: str, source: str) -> list[TrustAnchor]:
    """Parse anchor text of any supported format; ``source`` names it in errors."""
    stripped = text.lstrip()
    if stripped.startswith("<?xml") or "<TrustAnchor" in text:
        return _parse_iana_xml(text, source)
    if re.search(r"\b(trust-anchors|trusted-keys|managed-keys)\s*\{", text):
        return _parse_bind(text, source)
    return _parse_zone_text(text, source)


# --- zone-file and Unbound text -----------------------------------------------------------------


def _logical_records(text: str) -> Iterator[tuple[int, str]]:
    """(first line number, record text) per record, joining parentheses, dropping comments."""
    pending: list[str] = []
    start = 0
    depth = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = _strip_comment(raw)
        if not pending:
            start = number
        depth += line.count("(") - line.count(")")
        pending.append(line.replace("(", " ").replace(")", " "))
        if depth <= 0:
            record = " ".join(pending).strip()
            pending = []
            depth = 0
            if record:
                yield start, record
    if pending and " ".join(pending).strip():
        yield start, " ".join(pending).strip()


def _strip_comment(line: str) -> str:
    quoted = False
    for index, char in enumerate(line):
        if char == '"':
            quoted = not quoted
        elif char == ";" and not quoted:
            return line[:index]
    return line


def _parse_zone_text(text: str, source: str) -> list[TrustAnchor]:
    anchors: list[TrustAnchor] = []
    for line, record in _logical_records(text):
        if record.startswith("$"):
            continue  # $TTL / $ORIGIN directives are irrelevant to anchors
        unbound = re.match(r"^(?:trust-anchor|domain-insecure)\s*:\s*(.*)$", record)
        if unbound is not None:
            if record.startswith("domain-insecure"):
                continue
            record = unbound.group(1).strip().strip('"')
        elif re.match(r"^[a-z-]+\s*:", record):
            continue  # other unbound.conf options
        anchors.append(_anchor_from_record(record, source, line))
    return anchors


def _anchor_from_record(record: str, source: str, line: int) -> TrustAnchor:
    tokens = record.split()
    if len(tokens) < 3:
        raise TrustAnchorError(source, f"not a DS or DNSKEY record: {record!r}", line)
    owner = tokens[0]
    index = 1
    rdclass = dns.rdataclass.IN
    while index < len(tokens) - 1:
        token = tokens[index]
        if token.isdigit():
            index += 1  # TTL
            continue
        try:
            rdclass = dns.rdataclass.from_text(token)
            index += 1
            continue
        except dns.exception.DNSException:
            break
    rdtype_text = tokens[index].upper()
    if rdtype_text not in {"DS", "DNSKEY"}:
        raise TrustAnchorError(source, f"expected DS or DNSKEY, found {tokens[index]!r}", line)
    rdtype = dns.rdatatype.from_text(rdtype_text)
    return _make_anchor(owner, rdclass, rdtype, " ".join(tokens[index + 1 :]), source, line)


def _make_anchor(
    owner: str,
    rdclass: int,
    rdtype: int,
    rdata_text: str,
    source: str,
    line: int | None,
    *,
    valid_from_s: int | None = None,
    valid_until_s: int | None = None,
) -> TrustAnchor:
    where = f"{source}:{line}" if line is not None else source
    try:
        zone = dns.name.from_text(owner)
        rdata = dns.rdata.from_text(
            dns.rdataclass.RdataClass.make(rdclass),
            dns.rdatatype.RdataType.make(rdtype),
            rdata_text,
            origin=dns.name.root,
        )
    except (dns.exception.DNSException, ValueError) as exc:
        kind = dns.rdatatype.to_text(dns.rdatatype.RdataType.make(rdtype))
        misfit = _misfit_ds(rdclass, rdtype, rdata_text) if rdtype == dns.rdatatype.DS else None
        owner_name = _name_or_none(owner)
        if misfit is None or owner_name is None:
            raise TrustAnchorError(source, f"invalid {kind}: {exc}", line) from exc
        # Issue 12 class 7: a validator holding this anchor matches no key with it and calls
        # the zone bogus; the run goes on, the cause named here and in the verdicts.
        ds, problem = misfit
        logger.warning("trust anchor %s for %s: %s; kept as an anchor that matches no key, so "
                       "%s is bogus unless another anchor validates it", where, owner_name,
                       problem, owner_name)
        return TrustAnchor(owner_name, ds, None, where, valid_from_s, valid_until_s, problem)
    if isinstance(rdata, _DS):
        return TrustAnchor(zone, rdata, None, where, valid_from_s, valid_until_s)
    assert isinstance(rdata, _DNSKEY)
    if rdata.protocol != 3:  # RFC 4034 2.1.2
        raise TrustAnchorError(source, f"DNSKEY protocol {rdata.protocol} is not 3", line)
    return TrustAnchor(zone, None, rdata, where, valid_from_s, valid_until_s)


# RFC 3658 2.4 (SHA-1), RFC 4509 2.2 (SHA-256), RFC 5933 4 (GOST), RFC 6605 2 (SHA-384).
_DIGEST_LENGTHS = {1: 20, 2: 32, 3: 32, 4: 48}


@dns.immutable.immutable
class MisfitDS(_DS):
    """A DS whose digest length does not fit its digest type (a SHA-256 digest of 31 bytes).
    dnspython refuses to build one; this keeps it as read so it names no key: its digest can
    never equal one computed for a DNSKEY (RFC 4034 5.1.4)."""

    def __init__(self, rdclass: dns.rdataclass.RdataClass, rdtype: dns.rdatatype.RdataType,
                 key_tag: int, algorithm: int, digest_type: int, digest: bytes) -> None:
        dns.rdata.Rdata.__init__(self, rdclass, rdtype)
        self.key_tag = self._as_uint16(key_tag)
        self.algorithm = dns.dnssec.Algorithm.make(algorithm)
        self.digest_type = dns.dnssec.DSDigest.make(self._as_uint8(digest_type))
        self.digest = self._as_bytes(digest)


def _name_or_none(text: str) -> dns.name.Name | None:
    try:
        return dns.name.from_text(text)
    except (dns.exception.DNSException, ValueError):
        return None


def _misfit_ds(rdclass: int, rdtype: int, rdata_text: str) -> tuple[_DS, str] | None:
    """The DS in ``rdata_text`` and what is wrong with it when its only fault is a digest
    length that does not fit a known digest type; None for any other fault."""
    tokens = rdata_text.split()
    if len(tokens) < 3:
        return None
    try:
        key_tag = int(tokens[0])
        algorithm = int(dns.dnssec.Algorithm.from_text(tokens[1]))
        digest_type = int(tokens[2])
        digest = bytes.fromhex("".join(tokens[3:]))
        expected = _DIGEST_LENGTHS[digest_type]
        ds = MisfitDS(dns.rdataclass.RdataClass.make(rdclass),
                      dns.rdatatype.RdataType.make(rdtype), key_tag, algorithm, digest_type,
                      digest)
    except (ValueError, KeyError, dns.exception.DNSException):
        return None
    if len(digest) == expected:
        return None  # the length fits: the fault is elsewhere
    name = dns.dnssec.DSDigest(digest_type).name
    return ds, (f"DS digest of {len(digest)} bytes does not fit digest type {digest_type} "
                f"({name}, {expected} bytes)")


# --- BIND --------------------------------------------------------------------------------------

_BIND_CLAUSE = re.compile(r"\b(trust-anchors|trusted-keys|managed-keys)\s*\{")
_BIND_KINDS = {"static-key", "initial-key", "static-ds", "initial-ds"}


def _strip_bind_comments(text: str) -> str:
    """Blank out //, # and /* */ comments (not inside strings), keeping newlines."""

    def replace(match: re.Match[str]) -> str:
        found = match.group(0)
        return found if found.startswith('"') else re.sub(r"[^\n]", " ", found)

    return re.sub(r'"(?:[^"\\]|\\.)*"|/\*.*?\*/|//[^\n]*|#[^\n]*', replace, text, flags=re.S)


def _parse_bind(text: str, source: str) -> list[TrustAnchor]:
    clean = _strip_bind_comments(text)
    anchors: list[TrustAnchor] = []
    for clause in _BIND_CLAUSE.finditer(clean):
        body_start = clause.end()
        body_end = clean.find("}", body_start)
        if body_end < 0:
            line = clean.count("\n", 0, clause.start()) + 1
            raise TrustAnchorError(source, f"unterminated {clause.group(1)} clause", line)
        offset = body_start
        for entry in clean[body_start:body_end].split(";"):
            line = clean.count("\n", 0, offset + len(entry) - len(entry.lstrip())) + 1
            offset += len(entry) + 1
            if entry.strip():
                anchors.append(_bind_entry(entry, clause.group(1), source, line))
    return anchors


def _bind_entry(entry: str, clause: str, source: str, line: int) -> TrustAnchor:
    tokens = re.findall(r'"[^"]*"|\S+', entry)
    words = [t.strip('"') for t in tokens]
    if len(words) < 2:
        raise TrustAnchorError(source, f"incomplete {clause} entry", line)
    owner, rest = words[0], words[1:]
    kind = "static-key" if clause == "trusted-keys" else ""
    if rest[0] in _BIND_KINDS:
        kind, rest = rest[0], rest[1:]
    if not kind:
        raise TrustAnchorError(source, f"missing anchor type in {clause} entry", line)
    if len(rest) < 4:
        raise TrustAnchorError(source, f"{kind} entry needs four fields", line)
    rdtype = dns.rdatatype.DS if kind.endswith("-ds") else dns.rdatatype.DNSKEY
    rdata_text = " ".join(rest[:3]) + " " + "".join("".join(rest[3:]).split())
    return _make_anchor(owner, dns.rdataclass.IN, rdtype, rdata_text, source, line)


# --- IANA root-anchors.xml -------------------------------------------------------------------


def _parse_iana_xml(text: str, source: str) -> list[TrustAnchor]:
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError as exc:
        raise TrustAnchorError(source, f"invalid XML: {exc}", exc.position[0]) from exc
    zone_text = (root.findtext("Zone") or "").strip()
    if not zone_text:
        raise TrustAnchorError(source, "TrustAnchor has no Zone element")
    return [_xml_key_digest(digest, zone_text, source) for digest in root.iter("KeyDigest")]


def _xml_key_digest(element: ElementTree.Element, zone: str, source: str) -> TrustAnchor:
    fields = {}
    for tag in ("KeyTag", "Algorithm", "DigestType", "Digest"):
        value = (element.findtext(tag) or "").strip()
        if not value:
            raise TrustAnchorError(source, f"KeyDigest {element.get('id')!r} lacks {tag}")
        fields[tag] = value
    rdata_text = " ".join(fields[tag] for tag in ("KeyTag", "Algorithm", "DigestType", "Digest"))
    return _make_anchor(
        zone,
        dns.rdataclass.IN,
        dns.rdatatype.DS,
        rdata_text,
        source,
        None,
        valid_from_s=_xml_time(element.get("validFrom"), source),
        valid_until_s=_xml_time(element.get("validUntil"), source),
    )


def _xml_time(value: str | None, source: str) -> int | None:
    if value is None:
        return None
    try:
        return int(datetime.fromisoformat(value.strip().replace("Z", "+00:00")).timestamp())
    except ValueError as exc:
        raise TrustAnchorError(source, f"invalid validFrom/validUntil {value!r}") from exc

