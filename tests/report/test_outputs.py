"""Output directory of an audit of the sample capture: JSON Lines against their published
schemas, the Parquet flow table and zone inventory read back with pandas, Markdown and HTML,
``report DIR`` re-rendering, and ``--anonymize`` reaching every file."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import jsonschema
import pandas as pd
import pytest
from click.testing import CliRunner

from auditor.cli import cli

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "captures" / "sample-dnssec.pcap"
ANCHOR = REPO / "captures" / "sample-dnssec.anchor"
SCHEMAS = REPO / "auditor" / "report" / "schemas"
CLIENTS = ("127.53.0.100", "127.53.0.254", "::1")


def _audit(out: Path, *extra: str) -> None:
    result = CliRunner().invoke(
        cli, ["audit", str(SAMPLE), "--trust-anchor", str(ANCHOR), "--out", str(out), *extra])
    assert result.exit_code == 0, result.output
    assert "findings:" in result.output and "report.html" in result.output


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("sample")
    _audit(directory, "--csv")
    return directory


def _lines(path: Path) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize(("name", "schema"), [("responses.jsonl", "responses-2.json"),
                                              ("findings.jsonl", "findings-1.json")])
def test_json_lines_follow_their_published_schema(out: Path, name: str, schema: str) -> None:
    document = json.loads((SCHEMAS / schema).read_text())
    jsonschema.Draft202012Validator.check_schema(document)
    validator = jsonschema.Draft202012Validator(document)
    records = _lines(out / name)
    assert records
    for record in records:
        validator.validate(record)
    broken = {**records[0], "schema": "dnssec-auditor/other/9"}
    assert not validator.is_valid(broken)


def test_chains_follow_their_schema_and_reach_the_bogus_zones(out: Path) -> None:
    chains = json.loads((out / "chains.json").read_text())
    jsonschema.validate(chains, json.loads((SCHEMAS / "chains-1.json").read_text()))
    expired = chains["zones"]["expired.test."]
    assert [link["kind"] for link in expired][0] == "anchor"
    assert expired[-1] == {**expired[-1], "kind": "DNSKEY", "status": "bogus"}
    assert any(link["kind"] == "DS" and link["status"] == "secure" for link in expired)


def test_findings_merge_bogus_answers_with_provenance(out: Path) -> None:
    findings = [r for r in _lines(out / "findings.jsonl") if r["kind"] == "finding"]
    bogus = {r["params"]["zone"]: r for r in findings if r["code"] == "bogus_answer"}
    responses = _lines(out / "responses.jsonl")
    per_zone = Counter(r["zone"] for r in responses if r["verdict"] == "bogus")
    assert {zone: r["count"] for zone, r in bogus.items()} == dict(per_zone)
    altered = bogus["altered.test."]
    assert altered["severity"] == "high" and "RFC 4035 5.5" in altered["rfcs"]
    assert altered["server"] == "127.53.0.3" and altered["capture"] == "sample-dnssec.pcap"
    assert altered["first_seen"] <= altered["last_seen"] and altered["frames"]


def test_parquet_flow_table_matches_the_json_lines(out: Path) -> None:
    table = pd.read_parquet(out / "responses.parquet")
    responses = _lines(out / "responses.jsonl")
    assert len(table) == len(responses)
    table = table.sort_values("frame").reset_index(drop=True)
    assert list(table["frame"]) == [r["frame"] for r in responses]
    assert list(table["verdict"]) == [r["verdict"] for r in responses]
    assert list(table["client"]) == [r["dst"] for r in responses]
    assert set(table["date"].astype(str)) == {"2026-11-25"}
    bogus = table[table["verdict"] == "bogus"]
    assert set(bogus["zone"]) == {"expired.test.", "altered.test."}
    altered = table[(table["qname"] == "www.altered.test.") & (table["server"] == "127.53.0.3")]
    assert {tuple(codes) for codes in altered["codes"]} == {("bad_signature", "dnssec_bogus")}
    assert set(altered["signer"]) == {"altered.test."}
    secure = table[table["verdict"] == "secure"]
    assert (secure["remaining_validity_s"] > 0).all()
    assert str(table["expiration"].dtype).startswith("datetime64")
    csv = pd.read_csv(out / "responses.csv")
    assert list(csv["verdict"]) == [r["verdict"] for r in responses]
    assert set(csv[csv["frame"].isin(altered["frame"])]["codes"]) == {
        "bad_signature,dnssec_bogus"}  # the CSV joins list columns as text


def test_parquet_list_columns_query_in_duckdb_without_parsing(out: Path) -> None:
    import duckdb  # in the test extras: a missing one is a failure, not a skip
    dataset = f"{out}/responses.parquet/*/*.parquet"
    connection = duckdb.connect()
    types = dict(connection.execute(
        f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM '{dataset}')").fetchall())
    assert {name: types[name] for name in ("flags", "codes", "ede", "key_tags",
                                           "algorithms")} == {
        "flags": "VARCHAR[]", "codes": "VARCHAR[]", "ede": "INTEGER[]",
        "key_tags": "INTEGER[]", "algorithms": "INTEGER[]"}
    expired = connection.execute(
        f"SELECT DISTINCT qname FROM '{dataset}' WHERE list_contains(codes, "
        "'signature_expired') ORDER BY qname").fetchall()
    assert expired == [("expired.test.",), ("www.expired.test.",)]
    flagged = connection.execute(
        f"SELECT count(*) FROM '{dataset}' WHERE list_contains(flags, 'AD')").fetchone()
    responses = _lines(out / "responses.jsonl")
    assert flagged == (sum("AD" in r["flags"] for r in responses),)
    p256 = connection.execute(
        f"SELECT count(*) FROM '{dataset}' WHERE list_contains(algorithms, 13)").fetchone()
    assert p256 is not None and p256[0] > 0


def test_zone_inventory_reads_back_from_parquet_and_csv(out: Path) -> None:
    zones = pd.read_parquet(out / "zones.parquet").set_index("zone")
    csv = pd.read_csv(out / "zones.csv").set_index("zone")
    assert list(zones.index) == list(csv.index)
    assert zones.loc["expired.test.", "chain_status"] == "bogus"
    assert zones.loc["altered.test.", "bogus"] == 6
    assert zones.loc["big.test.", "ksk_count"] == 2
    assert "ksk_rollover_in_progress" in zones.loc["big.test.", "findings"]
    assert zones.loc["nsec3.test.", "denial"] == "NSEC3"
    assert zones.loc["p384.test.", "algorithms"] == "14"


def test_summary_markdown_lists_the_bogus_answers(out: Path) -> None:
    text = (out / "summary.md").read_text()
    responses = _lines(out / "responses.jsonl")
    bogus = sum(r["verdict"] == "bogus" for r in responses)
    assert f"bogus **{bogus}**" in text
    assert f"## Bogus and forged answers ({bogus})" in text
    assert re.search(r"\| www\.altered\.test\. A \| bogus \| signature does not verify", text)


def test_report_command_rerenders_from_saved_files(out: Path, tmp_path: Path) -> None:
    html, md = (out / "report.html").read_text(), (out / "summary.md").read_text()
    (out / "report.html").unlink()
    (out / "summary.md").unlink()
    result = CliRunner().invoke(cli, ["report", str(out), "--format", "html"])
    assert result.exit_code == 0, result.output
    assert (out / "report.html").read_text() == html and not (out / "summary.md").exists()
    result = CliRunner().invoke(cli, ["report", str(out)])
    assert result.exit_code == 0 and (out / "summary.md").read_text() == md
    missing = CliRunner().invoke(cli, ["report", str(tmp_path)])
    assert missing.exit_code == 3


def test_anonymize_replaces_clients_in_every_output(tmp_path: Path) -> None:
    key = tmp_path / "secret"
    key.write_text("shared secret")
    out = tmp_path / "anon"
    _audit(out, "--anonymize-key", str(key), "--csv")
    responses = _lines(out / "responses.jsonl")
    assert "127.53.0.100" not in {r["dst"] for r in responses}
    pseudonym = next(r["dst"] for r in responses if r["src"] == "127.53.0.1")
    assert pseudonym != "127.53.0.254" and pseudonym.count(".") == 3
    findings = _lines(out / "findings.jsonl")
    assert all(f.get("client") not in CLIENTS for f in findings)
    for name in ("report.html", "summary.md", "responses.csv"):
        text = (out / name).read_text()
        assert "127.53.0.100" not in text, name
    table = pd.read_parquet(out / "responses.parquet")
    assert not set(table["client"]) & set(CLIENTS)
    again = tmp_path / "again"
    _audit(again, "--anonymize-key", str(key))
    assert _lines(again / "responses.jsonl") == responses
    assert json.loads((out / "stats.json").read_text())["anonymized"] is True
