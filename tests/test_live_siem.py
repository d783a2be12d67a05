"""SIEM-ready live output: alerts and live findings match the findings/2 JSON Schema, the EVE
events match eve-1.json and read as a SIEM reads eve.json (field names, types, timestamps,
flow joins), and the Community ID is the spec's."""

from __future__ import annotations

import ipaddress
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pandas as pd
import pytest
import referencing
from referencing.jsonschema import DRAFT202012

from auditor.live import AlertFormat, LiveOptions, run_live
from auditor.report.alerts import ResponseFacts, community_id
from auditor.report.eve import SID_BASE, flow_id, signature_id

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "captures" / "sample-dnssec.pcap"
ANCHOR = REPO / "captures" / "sample-dnssec.anchor"
SCHEMAS = REPO / "auditor" / "report" / "schemas"
DOC_SAMPLE = REPO / "docs" / "live-eve-sample.jsonl"


def _validator(name: str) -> jsonschema.Draft202012Validator:
    schemas = [json.loads((SCHEMAS / f).read_text()) for f in ("eve-1.json", "findings-2.json")]
    registry = referencing.Registry().with_resources(
        [(schema["$id"], DRAFT202012.create_resource(schema)) for schema in schemas])
    wanted = json.loads((SCHEMAS / name).read_text())
    return jsonschema.Draft202012Validator(wanted, registry=registry)


def _facts(transport: str, client: str, cport: int, server: str, sport: int) -> ResponseFacts:
    return ResponseFacts("eth0", 1, transport, server, sport, client, cport, 1, "a.", "A",
                         "NOERROR", "secure", (), True)


# Source: Community ID spec test vectors as run by Zeek's community-id plugin
# (testing/btest/.../community-id-v1 baselines; seed 0): 1.2.3.4:1122 -> 5.6.7.8:3344.
COMMUNITY_ID_VECTORS = [
    ("udp", "1.2.3.4", 1122, "5.6.7.8", 3344, "1:0Mu9InQx6z4ZiCZM/7HXi2WMhOg="),
    ("tcp", "1.2.3.4", 1122, "5.6.7.8", 3344, "1:wCb3OG7yAFWelaUydu0D+125CLM="),
]


@pytest.mark.parametrize(("proto", "orig_h", "orig_p", "resp_h", "resp_p", "expected"),
                         COMMUNITY_ID_VECTORS)
def test_community_id_is_the_specs_test_vector(proto: str, orig_h: str, orig_p: int,
                                               resp_h: str, resp_p: int, expected: str) -> None:
    assert community_id(_facts(proto, orig_h, orig_p, resp_h, resp_p)) == expected
    # a flow hash: the same both ways, another for another port
    assert community_id(_facts(proto, resp_h, resp_p, orig_h, orig_p)) == expected
    assert community_id(_facts(proto, orig_h, orig_p + 1, resp_h, resp_p)) != expected


def test_signature_ids_are_stable_and_local() -> None:
    assert signature_id("bogus_answer") == signature_id("bogus_answer")
    assert signature_id("bogus_answer") != signature_id("ad_on_bogus")
    assert SID_BASE <= signature_id("wrong_id_burst") < SID_BASE + 100_000
    assert flow_id(None) is None


def _run(tmp_path: Path, alert_format: AlertFormat) -> tuple[list[dict[str, Any]], Path]:
    alerts = tmp_path / "alerts.jsonl"
    out = tmp_path / "live"
    run_live(LiveOptions(out_dir=out, read=str(SAMPLE), trust_anchors=(str(ANCHOR),),
                         alerts_path=alerts, alert_format=alert_format))
    return [json.loads(line) for line in alerts.read_text().splitlines()], out


def test_json_alerts_and_live_findings_match_the_findings_2_schema(tmp_path: Path) -> None:
    alerts, out = _run(tmp_path, AlertFormat.JSON)
    validator = _validator("findings-2.json")
    assert alerts
    for alert in alerts:
        validator.validate(alert)
        assert alert["delivery"] in ("client", "upstream")
        assert alert["id.resp_p"] == 53 and alert["community_id"]
        assert alert["frame_refs"][0].startswith("sample-dnssec.pcap/")
    findings = [json.loads(line) for path in sorted(out.glob("findings-*.jsonl"))
                for line in path.read_text().splitlines()]
    live = [f for f in findings if f["schema"] == "dnssec-auditor/findings/2"]
    assert live
    for record in live:
        validator.validate(record)
    # an upstream bogus answer is not as severe as one that reached a client
    by_delivery = {a["delivery"]: a["severity"] for a in alerts if a["code"] == "bogus_answer"}
    assert by_delivery.get("upstream", "medium") == "medium"
    assert by_delivery.get("client", "critical") == "critical"


def _parse_like_a_siem(lines: list[str]) -> pd.DataFrame:
    """What an eve.json pipeline does: one JSON object per line, flattened, timestamps and
    addresses parsed, ports as integers."""
    events = [json.loads(line) for line in lines]
    table = pd.json_normalize(events)
    table["timestamp"] = [datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z")
                          for text in table["timestamp"]]
    for column in ("src_ip", "dest_ip"):
        table[column] = [ipaddress.ip_address(text) for text in table[column]]
    for column in ("src_port", "dest_port", "flow_id"):
        assert table[column].map(lambda v: isinstance(v, int)).all(), column
    return table


def test_eve_output_validates_and_parses_as_a_siem_reads_eve_json(tmp_path: Path) -> None:
    _, _ = _run(tmp_path, AlertFormat.EVE)
    lines = (tmp_path / "alerts.jsonl").read_text().splitlines()
    validator = _validator("eve-1.json")
    for line in lines:
        validator.validate(json.loads(line))
    table = _parse_like_a_siem(lines)
    kinds = table["event_type"].value_counts().to_dict()
    assert kinds["dns"] == 63 and kinds["alert"] >= 2  # every response, every alert
    assert (table["timestamp"].map(lambda t: t.tzinfo) == UTC).all()
    alerts = table[table["event_type"] == "alert"]
    dns = table[table["event_type"] == "dns"]
    for _, alert in alerts.iterrows():
        assert alert["alert.signature"].startswith("DNSSEC-AUDITOR ")
        assert alert["alert.severity"] in (1, 2, 3)
        # the join an analyst makes: the alert's flow and DNS ID to the dns events
        joined = dns[(dns["community_id"] == alert["community_id"])
                     & (dns["dns.id"] == alert["dnssec_auditor.id"])]
        assert len(joined) >= 1
        assert "bogus" in set(joined["dnssec.verdict"])


def test_the_documented_eve_sample_matches_the_schema() -> None:
    lines = DOC_SAMPLE.read_text().splitlines()
    validator = _validator("eve-1.json")
    for line in lines:
        validator.validate(json.loads(line))
    assert {json.loads(line)["event_type"] for line in lines} == {"alert", "dns"}
