"""Suricata EVE-style events (``event_type`` ``alert`` and ``dns``) for pipelines built on
eve.json; the shape is ``schemas/eve-1.json``."""

from __future__ import annotations

import base64
import zlib
from datetime import UTC, datetime
from typing import Any

import dns.flags
import dns.rdatatype

from auditor.evidence import ResponseEvidence, Section
from auditor.report.alerts import ResponseFacts, community_id
from auditor.validate.verdict import Verdict

EVE_SCHEMA = "dnssec-auditor/eve/1"
"""``$id`` of ``schemas/eve-1.json``, the shape of these events."""
SID_BASE = 9_700_000
"""Signature IDs are ``SID_BASE`` plus the CRC-32 of the finding code modulo 100,000: stable
across versions and runs, inside the range Suricata leaves to local rules."""
MAX_ANSWERS = 20
"""Answer records listed per ``dns`` event."""
_SEVERITY = {"critical": 1, "high": 1, "medium": 2, "low": 3, "info": 3}
"""Catalogue severity to Suricata's alert severity (1 highest)."""


def eve_time(ts_ns: int) -> str:
    """Suricata's timestamp form: ``2026-12-06T18:35:29.123456+0000``."""
    seconds, nanos = divmod(ts_ns, 1_000_000_000)
    stamp = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{nanos // 1000:06d}+0000"


def signature_id(code: str) -> int:
    """The stable Suricata signature ID of a finding code."""
    return SID_BASE + zlib.crc32(code.encode()) % 100_000


def flow_id(community: str | None) -> int | None:
    """A 48-bit flow ID derived from the Community ID (the same flow always gets the same)."""
    if community is None:
        return None
    digest = base64.b64decode(community.split(":", 1)[1])
    return int.from_bytes(digest[:6], "big")


def _flow(facts: ResponseFacts, ts_ns: int) -> dict[str, Any]:
    """The packet-level fields: the response travels from the server to the client."""
    community = community_id(facts)
    return {
        "timestamp": eve_time(ts_ns),
        "flow_id": flow_id(community),
        "in_iface": facts.capture,
        "event_type": "dns",
        "src_ip": facts.server,
        "src_port": facts.sport,
        "dest_ip": facts.client,
        "dest_port": facts.cport,
        "proto": facts.transport.upper(),
        "community_id": community,
        "app_proto": "dns",
    }


def eve_alert(record: dict[str, Any]) -> dict[str, Any]:
    """An ``alert`` event from a live ``findings/2`` alert record (its flow, time of the last
    occurrence, question); the full record is kept under ``dnssec_auditor``."""
    orig_h, resp_h = record["id.orig_h"], record["id.resp_h"]
    event: dict[str, Any] = {
        "timestamp": record["last_seen"].removesuffix("Z") + "+0000",
        "flow_id": flow_id(record["community_id"]),
        "in_iface": record["capture"],
        "event_type": "alert",
        "src_ip": resp_h if resp_h is not None else record["server"],
        "src_port": record["id.resp_p"],
        "dest_ip": orig_h if orig_h is not None else record["client"],
        "dest_port": record["id.orig_p"],
        "proto": record["proto"].upper() if record["proto"] else None,
        "community_id": record["community_id"],
        "app_proto": "dns",
    }
    event["alert"] = {
        "action": "allowed",
        "gid": 1,
        "signature_id": signature_id(record["code"]),
        "rev": 1,
        "signature": f"DNSSEC-AUDITOR {record['title']}",
        "category": "DNSSEC forgery" if record["verdict"] in ("forged", "suspicious")
        else "DNSSEC validation",
        "severity": _SEVERITY.get(record["severity"], 3),
        "metadata": {"code": [record["code"]], "verdict": [str(record["verdict"])],
                     "delivery": [str(record["delivery"])]},
    }
    event["dns"] = {"query": [{"type": "query", "id": record["id"], "rrname": record["qname"],
                               "rrtype": record["qtype"]}]}
    event["dnssec_auditor"] = record
    return event


def eve_dns(evidence: ResponseEvidence, verdict: Verdict, facts: ResponseFacts) -> dict[str, Any]:
    """A ``dns`` event (Suricata's version 2 answer form) for one judged response, with the
    validation verdict under ``dnssec``."""
    wire = evidence.transaction.response.wire
    flags = evidence.flags
    event = _flow(facts, wire.ts_ns)
    answers = [{"rrname": item.rrset.name.to_text(),
                "rrtype": dns.rdatatype.to_text(item.rrset.rdtype),
                "ttl": item.rrset.ttl, "rdata": rdata.to_text()}
               for item in evidence.section(Section.ANSWER) for rdata in item.rrset]
    event["dns"] = {
        "version": 2,
        "type": "answer",
        "id": facts.msg_id,
        "flags": f"{flags & 0xFFFF:x}",
        "qr": True,
        "aa": bool(flags & dns.flags.AA),
        "tc": bool(flags & dns.flags.TC),
        "rd": bool(flags & dns.flags.RD),
        "ra": bool(flags & dns.flags.RA),
        "rrname": facts.qname,
        "rrtype": facts.qtype,
        "rcode": facts.rcode,
        "answers": answers[:MAX_ANSWERS],
    }
    event["dnssec"] = {"verdict": verdict.status.value,
                       "codes": [code.value for code in verdict.codes],
                       "zone": verdict.zone, "frame": wire.frame}
    return event
