"""The stderr summary says what went wrong in words (zone, what is wrong, how many, first
frame, what to do), with and without -q, and why clients failed."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from auditor.cli import cli

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "captures" / "sample-dnssec.pcap"
ANCHOR = REPO / "captures" / "sample-dnssec.anchor"


def _run(tmp_path: Path, *extra: str) -> tuple[int, str]:
    runner = CliRunner()
    result = runner.invoke(cli, ["audit", str(SAMPLE), "--trust-anchor", str(ANCHOR),
                                 "--out", str(tmp_path / "out"), *extra])
    return result.exit_code, result.stderr if hasattr(result, "stderr") else result.output


def _problems(text: str) -> list[str]:
    lines = text.splitlines()
    start = lines.index("  top problems:")
    return [line.strip() for line in lines[start + 1:] if line.startswith("    ")]


def test_the_summary_lists_the_top_problems_in_words(tmp_path: Path) -> None:
    code, text = _run(tmp_path)
    assert code == 0
    problems = _problems(text)
    first = problems[0]
    assert first.startswith("1. [high] 127.53.0.3 served signatures of zone expired.test. "
                            "past their expiration")
    assert first.endswith("(9 times, first frame 83 of sample-dnssec.pcap)")
    assert problems[1].startswith("what to do: Re-sign zone expired.test. on 127.53.0.3")
    assert "  why clients failed (2 answers):" in text.splitlines()
    assert any("SERVFAIL for www.altered.test. A: " in line and "frame 114" in line
               for line in text.splitlines())


def test_quiet_says_nothing_unless_the_run_fails(tmp_path: Path) -> None:
    code, text = _run(tmp_path, "-q")
    assert (code, text.strip()) == (0, "")
    code, text = _run(tmp_path, "-q", "--fail-on", "bogus")
    assert code == 1
    assert text.splitlines()[0].startswith("dnssec-auditor: responses at --fail-on bogus")
    assert _problems(text)[0].startswith("1. [high] ")
    assert "frames read" not in text  # only the problems, not the whole summary
