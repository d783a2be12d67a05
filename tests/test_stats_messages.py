"""stats.json counts the distinct messages parsed the same whether a capture is read as a file
(two passes sharing one parse cache) or from standard input (one pass)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from auditor.cli import cli

SAMPLE = Path(__file__).resolve().parent.parent / "captures" / "sample-dnssec.pcap"


def _messages(out: Path, *args: str, stdin: bytes | None = None) -> dict[str, int]:
    result = CliRunner().invoke(cli, ["audit", *args, "--out", str(out), "-q"], input=stdin)
    assert result.exit_code == 0, result.output
    stats = json.loads((out / "stats.json").read_text())
    assert stats["validation"]["mode"] == ("single_pass" if stdin else "two_pass")
    return dict(stats["messages"])


def test_parsed_distinct_is_counted_in_file_mode(tmp_path: Path) -> None:
    # One process: with --jobs 2 (the default on 2 cores) each process parses what it reads.
    from_file = _messages(tmp_path / "file", str(SAMPLE), "--jobs", "1")
    from_stdin = _messages(tmp_path / "stdin", "-", stdin=SAMPLE.read_bytes())
    assert from_file["parsed_distinct"] == from_stdin["parsed_distinct"] > 0
    dns_messages = from_stdin["parsed_distinct"] + from_stdin["parse_cache_hits"]
    assert from_file["parse_cache_hits"] == dns_messages  # the judging pass finds all cached
