"""The "Why clients failed" section: failed client answers of the sample capture (Unbound
answering SERVFAIL for www.expired.test. and www.altered.test.) grouped by upstream cause, in
responses.jsonl, summary.md and report.html."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from auditor.cli import cli
from auditor.report.load import load_report_data
from auditor.report.markdown import render_markdown

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "captures" / "sample-dnssec.pcap"
ANCHOR = REPO / "captures" / "sample-dnssec.anchor"


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("why")
    result = CliRunner().invoke(cli, ["audit", str(SAMPLE), "--trust-anchor", str(ANCHOR),
                                      "--out", str(directory), "--quiet"])
    assert result.exit_code in (0, 1), result.output
    return directory


def _failed(out: Path) -> list[dict]:  # type: ignore[type-arg]
    records = [json.loads(line) for line in (out / "responses.jsonl").read_text().splitlines()]
    return [r for r in records if r["resolution"] and r["resolution"]["failed"]]


def test_each_servfail_names_its_upstream_answer(out: Path) -> None:
    failed = {r["qname"]: r["resolution"] for r in _failed(out)}
    assert set(failed) == {"www.expired.test.", "www.altered.test."}
    expired, altered = failed["www.expired.test."], failed["www.altered.test."]
    assert (expired["cause"], expired["causing"][0]["zone"]) == ("bogus_upstream",
                                                                 "expired.test.")
    assert "signature_expired" in expired["causing"][0]["codes"]
    assert "bad_signature" in altered["causing"][0]["codes"]
    frames = {json.loads(line)["frame"]: json.loads(line) for line in
              (out / "responses.jsonl").read_text().splitlines()}
    cited = frames[expired["causing"][0]["frame"]]
    assert (cited["qname"], cited["verdict"]) == ("www.expired.test.", "bogus")


def test_markdown_groups_them_by_cause(out: Path) -> None:
    text = render_markdown(load_report_data(out))
    section = text.split("## Why clients failed (2)", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| An upstream")]
    assert sorted(row.split(" | ")[1] for row in rows) == ["altered.test.", "expired.test."]
    assert "- SERVFAIL for www.expired.test. A: " in section


class _Section(HTMLParser):
    """Collects the text of the ``<section id="why">`` element."""

    def __init__(self) -> None:
        super().__init__()
        self.inside = False
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "section":
            self.inside = ("id", "why") in attrs

    def handle_data(self, data: str) -> None:
        if self.inside:
            self.text.append(data)


def test_html_has_the_section(out: Path) -> None:
    parser = _Section()
    parser.feed((out / "report.html").read_text())
    text = " ".join(parser.text)
    assert "Why clients failed (2)" in text
    assert text.count("An upstream answer failed validation") == 2
    assert "SERVFAIL for www.altered.test. A:" in text
