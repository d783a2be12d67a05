"""The HTML report of the sample capture, opened from disk in headless Chromium: the rendered
page shows the headline counts, the bogus answers and a chain of trust; nothing is fetched."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from auditor.cli import cli

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "captures" / "sample-dnssec.pcap"
ANCHOR = REPO / "captures" / "sample-dnssec.anchor"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _chromium_missing() -> None:
    if CHROMIUM is None:
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail("chromium is not installed (apt-get install chromium)")
        pytest.skip("chromium is not installed")


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    profile = tmp_path / "profile"
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
               "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run", "--disable-default-apps",
               "--disable-extensions", f"--user-data-dir={profile}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


class _Text(HTMLParser):
    """Visible text of a DOM dump, plus the class attributes seen."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.classes: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("style", "title", "script"):
            self._skip += 1
        self.classes.extend((v or "") for k, v in attrs if k == "class")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "title", "script"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip and data.strip():
            self.parts.append(" ".join(data.split()))

    @property
    def text(self) -> str:
        return " ".join(self.parts)


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("html")
    result = CliRunner().invoke(
        cli, ["audit", str(SAMPLE), "--trust-anchor", str(ANCHOR), "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    return out


def test_report_is_self_contained(report_dir: Path) -> None:
    html = (report_dir / "report.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "<script" not in html and "@import" not in html and "url(" not in html
    assert "default-src 'none'" in html


@pytest.mark.slow
def test_rendered_page_shows_counts_answers_and_chain(report_dir: Path, tmp_path: Path) -> None:
    _chromium_missing()
    url = (report_dir / "report.html").resolve().as_uri()
    dom = _chromium(tmp_path, "--dump-dom", url).stdout
    page = _Text()
    page.feed(dom)
    text = page.text
    stats = json.loads((report_dir / "stats.json").read_text())
    verdicts = stats["validation"]["verdicts"]
    for name in ("secure", "insecure", "bogus", "indeterminate"):
        assert re.search(rf"\b{verdicts[name]} {name}\b", text, re.IGNORECASE), name
    assert f"Bogus and forged answers ({verdicts['bogus']})" in text
    assert "www.altered.test. A bogus signature does not verify" in text
    chain = text[text.index("Chains of trust"):]
    assert re.search(r"anchor trusted \. trust anchor DS 23515/8", chain)
    assert re.search(r"DNSKEY bogus expired\.test\. DNSKEY .*signature had expired", chain)
    assert re.search(r"RRSIG bogus altered\.test\. RRSIG over www\.altered\.test\. A", chain)
    assert "link bogus" in page.classes and "link trusted" in page.classes

    shot = tmp_path / "report.png"
    _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1400,2400", url)
    header = shot.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", header[16:24]) == (1400, 2400)
    assert shot.stat().st_size > 50_000
