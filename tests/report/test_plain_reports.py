"""Reports said plainly: retries of one question to one server are one row (times, first and
last seen), times are ISO 8601 (never Unix seconds), column headers are words, every finding
says what to do."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from auditor.cli import cli
from auditor.report.load import iso_epochs

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "captures" / "sample-dnssec.pcap"
ANCHOR = REPO / "captures" / "sample-dnssec.anchor"
UNIX_SECONDS = re.compile(r"\b1[0-9]{9}\b")


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("plain")
    result = CliRunner().invoke(cli, ["audit", str(SAMPLE), "--trust-anchor", str(ANCHOR),
                                      "--out", str(directory), "-q"])
    assert result.exit_code == 0, result.output
    return directory


def _table(markdown: str, heading: str) -> list[list[str]]:
    section = markdown.split(heading, 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in row.strip("|").split(" | ")] for row in rows]


def test_retries_of_one_question_to_one_server_are_one_row(out: Path) -> None:
    header, *rows = _table((out / "summary.md").read_text(), "## Bogus and forged answers")
    assert header[:3] == ["first seen (UTC)", "last seen (UTC)", "times"]
    by_question = {row[5]: row for row in rows}
    assert sorted(by_question) == ["expired.test. DNSKEY", "www.altered.test. A",
                                   "www.expired.test. A"]
    retried = by_question["expired.test. DNSKEY"]
    assert retried[2] == "6" and retried[0] < retried[1]
    assert retried[-1] == "85, 87, 89, 91, 93, 95"
    assert sum(int(row[2]) for row in rows) == 13  # every bogus answer counted once


class _Headers(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.headers: list[str] = []
        self._in = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in = tag == "th"
        if self._in:
            self.headers.append("")

    def handle_endtag(self, tag: str) -> None:
        self._in = self._in and tag != "th"

    def handle_data(self, data: str) -> None:
        if self._in:
            self.headers[-1] += data


def test_column_headers_are_words(out: Path) -> None:
    parser = _Headers()
    parser.feed((out / "report.html").read_text())
    markdown = (out / "summary.md").read_text()
    headers = parser.headers + [cell for line in markdown.splitlines()
                                if line.startswith("| ") and "---" not in line
                                for cell in line.strip("|").split(" | ")
                                if line in _header_lines(markdown)]
    assert parser.headers
    for header in headers:
        assert re.fullmatch(r"[A-Za-z][A-Za-z ,:()']*", header.strip()), header


def _header_lines(markdown: str) -> set[str]:
    lines = markdown.splitlines()
    return {lines[i - 1] for i, line in enumerate(lines) if line.startswith("|---")}


def test_no_unix_seconds_in_the_reports(out: Path) -> None:
    for name in ("report.html", "summary.md"):
        found = UNIX_SECONDS.findall((out / name).read_text())
        assert not found, (name, found)
    assert iso_epochs("RRSIG expired at 1795405049, judged at 1795577853") == (
        "RRSIG expired at 2026-11-23T03:37:29Z, judged at 2026-11-25T03:37:33Z")
    assert iso_epochs("key tag 12345 at 10.0.0.1") == "key tag 12345 at 10.0.0.1"


def test_findings_say_what_to_do(out: Path) -> None:
    header, *rows = _table((out / "summary.md").read_text(), "## Findings")
    column = header.index("what to do")
    assert all(row[column] not in ("", "-") for row in rows)
    assert "What to do:" in (out / "report.html").read_text()
