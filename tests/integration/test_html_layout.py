"""The chain-of-trust drawing wraps cleanly in headless Chromium at 1024 px and 1400 px: every
arrow sits on the row of the link it points at (no arrow pointing at nothing at a row's end),
no link or its text spills out of the drawing, and screenshots of both widths are taken."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from auditor.cli import cli

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "captures" / "sample-dnssec.pcap"
ANCHOR = REPO / "captures" / "sample-dnssec.anchor"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

GEOMETRY = """<script>
const out = {width: window.innerWidth, chains: 0, rows: 0, steps: 0, problems: []};
for (const chain of document.querySelectorAll('.chain')) {
  out.chains++;
  const c = chain.getBoundingClientRect();
  if (c.right > window.innerWidth + 1) out.problems.push('drawing wider than the page');
  const tops = new Set();
  for (const step of chain.children) {
    out.steps++;
    const box = step.querySelector('.link');
    if (!box) { out.problems.push('an arrow or item outside a step'); continue; }
    const link = box.getBoundingClientRect();
    tops.add(Math.round(link.top));
    if (link.right > c.right + 1) out.problems.push('link outside the drawing');
    if (box.scrollWidth > box.clientWidth + 1) out.problems.push('text spills out of a link');
    const arrow = step.querySelector('.arrow');
    if (arrow) {
      const a = arrow.getBoundingClientRect(), middle = (a.top + a.bottom) / 2;
      if (middle < link.top || middle > link.bottom || a.right > link.left + 1)
        out.problems.push('arrow away from its link');
    }
  }
  const arrows = chain.querySelectorAll('.arrow').length;
  if (arrows !== chain.children.length - 1) out.problems.push('arrows do not join the links');
  out.rows += tops.size;
}
document.body.insertAdjacentHTML('beforeend',
  '<pre id="geometry">' + JSON.stringify(out) + '</pre>');
</script>"""


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    if CHROMIUM is None:
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail("chromium is not installed (apt-get install chromium)")
        pytest.skip("chromium is not installed")
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
               "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run", "--disable-default-apps",
               "--disable-extensions", "--hide-scrollbars",
               f"--user-data-dir={tmp_path / 'profile'}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("layout")
    result = CliRunner().invoke(
        cli, ["audit", str(SAMPLE), "--trust-anchor", str(ANCHOR), "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    return out / "report.html"


def _measured(report: Path, tmp_path: Path) -> Path:
    """The report with its no-script policy lifted and the geometry probe added."""
    html = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", report.read_text())
    probe = tmp_path / "probe.html"
    probe.write_text(html.replace("</body>", GEOMETRY + "</body>"))
    return probe


@pytest.mark.parametrize("width", [1024, 1400])
def test_chain_drawing_wraps_cleanly(report: Path, tmp_path: Path, width: int) -> None:
    url = _measured(report, tmp_path).resolve().as_uri()
    dom = _chromium(tmp_path, "--dump-dom", f"--window-size={width},2000", url).stdout
    found = re.findall(r'<pre id="geometry">(\{.*?)</pre>', dom)  # not the script's own text
    assert found, dom[-2000:]
    geometry = json.loads(found[-1].replace("&quot;", '"'))
    assert geometry["width"] == width
    assert geometry["chains"] >= 2
    assert geometry["rows"] > geometry["chains"], "nothing wrapped: the test proves nothing"
    assert geometry["problems"] == [], geometry

    shot = tmp_path / f"report-{width}.png"
    _chromium(tmp_path, f"--screenshot={shot}", f"--window-size={width},2400",
              report.resolve().as_uri())
    header = shot.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", header[16:24]) == (width, 2400)
