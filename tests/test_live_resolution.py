"""Live mode links a resolver's client answers to its upstream exchanges as audit does: its
responses carry the ``resolution`` field (schema responses/2) and a finding about a failed
client answer carries the cause in its record."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from auditor.live import LiveOptions, run_live

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "captures" / "sample-dnssec.pcap"
ANCHOR = REPO / "captures" / "sample-dnssec.anchor"
SCHEMAS = REPO / "auditor" / "report" / "schemas"


def _lines(directory: Path, prefix: str) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for path in sorted(directory.rglob(f"{prefix}*.jsonl"))
            for line in path.read_text().splitlines()]


def test_live_responses_and_findings_say_why_clients_failed(tmp_path: Path) -> None:
    run_live(LiveOptions(out_dir=tmp_path, read=str(SAMPLE), trust_anchors=(str(ANCHOR),),
                         alerts_path=tmp_path / "alerts.jsonl"))
    responses = _lines(tmp_path, "responses")
    assert responses
    schema = json.loads((SCHEMAS / "responses-2.json").read_text())
    for record in responses:
        jsonschema.validate(record, schema)
    failed = {r["qname"]: r["resolution"] for r in responses
              if r["resolution"] and r["resolution"]["failed"]}
    assert set(failed) == {"www.expired.test.", "www.altered.test."}
    assert failed["www.expired.test."]["causing"][0]["zone"] == "expired.test."
    findings = [f for f in _lines(tmp_path, "findings") if f.get("kind") == "finding"]
    explained = [f for f in findings if f.get("cause")]
    assert explained, "no finding about a failed client answer carries its cause"
    assert all(f["cause"].startswith("SERVFAIL for www.") for f in explained)
    findings_schema = json.loads((SCHEMAS / "findings-2.json").read_text())
    for finding in findings:
        jsonschema.validate(finding, findings_schema)
