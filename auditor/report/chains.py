"""Chains of trust drawn from the packets (anchor, DS, DNSKEY with each link's status) for the
zones of bogus or forged answers, saved as ``chains.json`` for the HTML report."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import dns.dnssec
import dns.name

from auditor.findings.words import plain
from auditor.findings.zones import key_text
from auditor.trust.material import SignedRRset
from auditor.validate.chain import ZoneTrust, signature_times
from auditor.validate.ds import ds_names_any
from auditor.validate.validator import Validator
from auditor.validate.verdict import Status

logger = logging.getLogger(__name__)

CHAINS_SCHEMA = "dnssec-auditor/chains/1"
"""Schema identifier of ``chains.json``."""
MAX_CHAINS = 200
"""Zones whose chain is drawn (the first ones named by bogus/forged findings)."""


@dataclass(frozen=True, slots=True)
class ChainLink:
    """One box of a drawn chain of trust."""

    zone: str
    """The zone this link belongs to."""
    kind: str
    """``anchor``, ``DS`` or ``DNSKEY``."""
    status: str
    """secure, insecure, bogus or indeterminate (``trusted`` for an anchor)."""
    text: str
    """What was seen, e.g. ``DS 126/8/2 signed by . (key 23515)``."""
    detail: tuple[str, ...]
    """Why the status is what it is."""


def _trust_detail(trust: ZoneTrust) -> tuple[str, ...]:
    words = [plain(code.value) for code in trust.codes]
    return tuple(dict.fromkeys([*words, *trust.missing, *trust.detail]))


def _path(zone: dns.name.Name) -> list[dns.name.Name]:
    names = [zone]
    while names[-1] != dns.name.root:
        names.append(names[-1].parent())
    return names[::-1]


class ChainDrawer:
    """Draws chains from the validator's view (anchors, observed material, cache)."""

    def __init__(self, validator: Validator) -> None:
        self.validator = validator
        self.view = validator.keys
        self._at_s: int | None = None
        """The time of the chain being drawn (anchors in force, parents' trust)."""

    def chain(self, zone_text: str, at_s: int | None = None) -> list[ChainLink]:
        """Links from the closest trust anchor down to ``zone_text``, with the trust anchors in
        force at ``at_s`` (the time of the answer the chain explains)."""
        zone = dns.name.from_text(zone_text)
        fixed = self.validator.chain.at_s
        self._at_s = fixed if fixed is not None else at_s
        levels = _path(zone)
        anchored = [n for n in levels if self.view.anchors.for_zone(n)]
        start = levels.index(anchored[-1]) if anchored else 0
        links: list[ChainLink] = []
        with_material = [n for n in levels[start:] if self._has_material(n)]
        for name in with_material or [zone]:  # a query name below its zone adds no level
            links.extend(self._level(name))
        return links

    def _has_material(self, name: dns.name.Name) -> bool:
        material = self.view.material
        return bool(material.dnskey_rrsets(name) or material.ds_rrsets(name)
                    or self.view.anchors.for_zone(name))

    def _level(self, name: dns.name.Name) -> list[ChainLink]:
        zone = name.to_text()
        at_s = self._at_s
        trust = self.validator.zone_trust(name, at_s)
        anchors = self.view.anchors.for_zone(name)
        links: list[ChainLink] = []
        if anchors:
            in_force = self.view.anchors.for_zone(name, at_s)
            for anchor in anchors:
                kind = "DS" if anchor.ds is not None else "DNSKEY"
                text = f"trust anchor {kind} {anchor.describe()}"
                if anchor in in_force:
                    links.append(ChainLink(zone, "anchor", "trusted", text, ()))
                else:  # RFC 9718 2.2: outside its validity period it is not an anchor
                    links.append(ChainLink(zone, "anchor", "not in force", text,
                                           ("not valid at the time of the answer",)))
        else:
            links.append(self._ds_link(name, trust))
        links.append(self._dnskey_link(name, trust))
        return links

    def _ds_link(self, name: dns.name.Name, trust: ZoneTrust) -> ChainLink:
        zone = name.to_text()
        entries = self.view.material.ds_rrsets(name)
        if not entries:
            if trust.status is Status.INSECURE:
                return ChainLink(zone, "DS", Status.INSECURE.value,
                                 "no DS: proven unsigned delegation", _trust_detail(trust))
            return ChainLink(zone, "DS", Status.INDETERMINATE.value, "DS not seen",
                             _trust_detail(trust) or (f"DS for {zone} not in the capture",))
        statuses: list[str] = []
        detail: list[str] = []
        texts: list[str] = []
        for entry in entries:
            status, why, signers = self._ds_entry_status(name, entry)
            statuses.append(status)
            detail.extend(why)
            records = ", ".join(_ds_label(ds) for ds in entry.rrset)
            texts.append(f"DS {records} signed by {signers or 'nobody (unsigned)'}")
        best = next((s for s in ("secure", "insecure", "indeterminate", "bogus")
                     if s in statuses), "indeterminate")
        return ChainLink(zone, "DS", best, "; ".join(texts), tuple(dict.fromkeys(detail)))

    def _ds_entry_status(
        self, name: dns.name.Name, entry: SignedRRset
    ) -> tuple[str, list[str], str]:
        signers = sorted({f"{seen.rrsig.signer} (key {seen.rrsig.key_tag})"
                          for seen in entry.signatures.values()})
        if not entry.signatures:
            return Status.BOGUS.value, ["DS RRset arrived without RRSIG"], ""
        why: list[str] = []
        for wire, seen in entry.signatures.items():
            parent = self.validator.zone_trust(seen.rrsig.signer, self._at_s)
            if parent.status is not Status.SECURE:
                why.append(f"signer {seen.rrsig.signer} is {parent.status.value}")
                continue
            times = signature_times(entry, wire, self.validator.chain.at_s)
            result = self.validator.checker.check(entry.rrset, seen.rrsig, seen.rrsig.signer,
                                                  parent.keys, times)
            if result.valid:
                return Status.SECURE.value, [f"DS RRset of {name} validated by its parent"], \
                    ", ".join(signers)
            why.extend(result.detail)
        status = Status.BOGUS.value if not any("signer" in w for w in why) else (
            Status.INDETERMINATE.value)
        return status, why, ", ".join(signers)

    def _dnskey_link(self, name: dns.name.Name, trust: ZoneTrust) -> ChainLink:
        zone = name.to_text()
        keys: dict[bytes, Any] = {}
        for entry in self.view.material.dnskey_rrsets(name):
            for key in entry.rrset:
                keys[key.to_digestable()] = key
        text = ("DNSKEY " + ", ".join(key_text(k) for k in keys.values())) if keys else (
            "DNSKEY not seen")
        detail = list(_trust_detail(trust))
        detail.extend(
            f"DS {_ds_label(ds)} matches none of these keys"
            for entry in self.view.material.ds_rrsets(name)
            for ds in entry.rrset
            if not _digest_matches(name, ds, keys.values())
        )
        return ChainLink(zone, "DNSKEY", trust.status.value, text, tuple(detail))


def _ds_label(ds: Any) -> str:
    return f"{ds.key_tag}/{int(ds.algorithm)}/{int(ds.digest_type)}"


def _digest_matches(name: dns.name.Name, ds: Any, keys: Iterable[Any]) -> bool:
    return ds_names_any(name, ds, keys)


def chains_document(
    validator: Validator | None, zones: Mapping[str, int | None]
) -> dict[str, Any]:
    """``chains.json``: the drawn chain of every zone in ``zones`` (at most ``MAX_CHAINS``),
    each with the trust anchors in force at the time given for it."""
    drawn: dict[str, list[dict[str, Any]]] = {}
    if validator is not None:
        drawer = ChainDrawer(validator)
        for zone, at_s in list(zones.items())[:MAX_CHAINS]:
            try:
                drawn[zone] = [asdict(link) for link in drawer.chain(zone, at_s)]
            except (dns.name.NameTooLong, dns.name.EmptyLabel, ValueError) as exc:
                logger.warning("no chain drawn for %r: %s", zone, exc)
    return {"schema": CHAINS_SCHEMA, "zones": drawn}
