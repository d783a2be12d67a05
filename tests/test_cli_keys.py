"""The key cache on the command line: what a rerun reads, what it says, and the keys commands
on damaged caches and imports (issue 11, point 8)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from auditor.cli import cli
from tests.realcaps import REALCAPS, absent_outside_ci
from tests.trust.test_cache import _garbage_rows, corrupt_cache
from tests.validate.signing import Lab

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "captures" / "sample-dnssec.pcap"
SAMPLE_ANCHOR = ROOT / "captures" / "sample-dnssec.anchor"
ECS = REALCAPS / "zeek" / "dns-edns-ecs.pcap"
"""A 2016 capture of a resolver resolving ripe.net, weberdns.de and weberlab.de names with
DO=1; the zones' own KSKs in ``anchors/`` make 15 of its answers secure."""
ECS_ANCHORS = [REALCAPS / "anchors" / f"{zone}.anchor"
               for zone in ("ripe", "weberdns", "weberlab")]


def _run(out: Path, capture: Path | str, *extra: str, stdin: bytes | None = None
         ) -> tuple[str, dict, list[dict]]:
    result = CliRunner().invoke(
        cli, ["audit", str(capture), "--out", str(out), *extra], input=stdin)
    assert result.exit_code == 0, result.output
    stats = json.loads((out / "stats.json").read_text())
    records = [json.loads(line) for line in (out / "responses.jsonl").read_text().splitlines()]
    return result.output, stats, records


def _verdicts(records: list[dict]) -> list[tuple[int, str, list[str]]]:
    return [(r["frame"], r["verdict"], r["codes"]) for r in records]


needs_realcaps = pytest.mark.skipif(
    absent_outside_ci(ECS), reason=f"real captures not found at {REALCAPS} (see its README)")


@needs_realcaps
def test_a_rerun_does_not_read_the_cache_an_earlier_run_left(tmp_path: Path) -> None:
    """Run 1 validates with the zones' anchors and fills keys.sqlite in the output directory;
    run 2, without anchors, must not quietly inherit them: nothing secure, and it says the
    cache's trusted keys were not used."""
    out = tmp_path / "out"
    anchors = [arg for a in ECS_ANCHORS for arg in ("--trust-anchor", str(a))]
    _, first, _ = _run(out, ECS, *anchors)
    assert first["validation"]["verdicts"]["secure"] == 15
    assert first["key_cache"]["read"] is False and first["key_cache"]["rows_written"] == 6
    stderr, second, _ = _run(out, ECS)
    assert second["validation"]["verdicts"]["secure"] == 0
    use = second["key_cache"]
    assert use["read"] is False and use["keys_loaded"] == 0
    assert use["rows_before"]["trusted"] == 6 and use["verdicts_using_cache"] == 0
    assert second["validation"]["key_cache"] == str(out / "keys.sqlite")  # kept as it was
    assert (f"key cache {out / 'keys.sqlite'}: 6 rows written; not read: its 6 trusted keys "
            f"from earlier runs were not used") in stderr


@needs_realcaps
def test_naming_the_cache_uses_it_and_counts_what_relied_on_it(tmp_path: Path) -> None:
    """Negative twin: the same second run with --keys reads the earlier run's keys, and the
    verdicts that changed are the ones counted as relying on the cache."""
    out = tmp_path / "out"
    anchors = [arg for a in ECS_ANCHORS for arg in ("--trust-anchor", str(a))]
    _run(out, ECS, *anchors)
    keys = out / "keys.sqlite"
    _, _, without = _run(tmp_path / "without", ECS)
    stderr, second, records = _run(out, ECS, "--keys", str(keys))
    assert second["validation"]["verdicts"]["secure"] == 15
    use = second["key_cache"]
    assert use["read"] is True and use["keys_loaded"] == 6 and use["zones_loaded"] == 3
    changed = [b for a, b in zip(without, records, strict=True)
               if (a["verdict"], a["codes"]) != (b["verdict"], b["codes"])]
    assert len(changed) >= 15
    assert use["verdicts_using_cache"] >= len(changed)
    assert (f"key cache {keys} (--keys): 6 trusted keys of 3 zones loaded from earlier runs "
            f"and imports; {use['verdicts_using_cache']} verdicts relied on them") in stderr


def test_the_same_command_twice_gives_the_same_verdicts(tmp_path: Path) -> None:
    """Standard input is judged in one pass, so keys cached by run 1 would let run 2 judge
    early answers from the cache; without --keys it does not."""
    data = SAMPLE.read_bytes()
    out = tmp_path / "out"
    args = ("--trust-anchor", str(SAMPLE_ANCHOR), "-q")
    _, first, records1 = _run(out, "-", *args, stdin=data)
    _, second, records2 = _run(out, "-", *args, stdin=data)
    assert second["key_cache"]["rows_before"]["trusted"] > 0
    assert _verdicts(records2) == _verdicts(records1)
    assert second["key_cache"]["verdicts_using_cache"] == 0


def test_the_same_command_with_keys_says_what_the_cache_changed(tmp_path: Path) -> None:
    """Negative twin: with --keys the second run's verdicts differ (trust from the cache), and
    stats.json counts each of them."""
    data = SAMPLE.read_bytes()
    out = tmp_path / "out"
    args = ("--trust-anchor", str(SAMPLE_ANCHOR), "-q", "--keys", str(tmp_path / "k.sqlite"))
    _, _, records1 = _run(out, "-", *args, stdin=data)
    _, second, records2 = _run(out, "-", *args, stdin=data)
    changed = [b for a, b in zip(records1, records2, strict=True)
               if (a["verdict"], a["codes"]) != (b["verdict"], b["codes"])]
    assert changed and all("trust_from_cache" in r["codes"] for r in changed)
    assert second["key_cache"]["verdicts_using_cache"] >= len(changed)


def test_keys_list_on_a_corrupt_cache_is_exit_3_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.sqlite"
    corrupt_cache(path)
    result = CliRunner().invoke(cli, ["keys", "list", "--keys", str(path)])
    assert result.exit_code == 3, result.output
    assert f"error: {path}: cannot read key cache" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("command", [["list"], ["export", "-"]])
@pytest.mark.parametrize("damage", ["not_sqlite", "foreign_keys_table"])
def test_keys_commands_on_a_file_that_is_no_key_cache_are_exit_3(
        tmp_path: Path, command: list[str], damage: str) -> None:
    path = tmp_path / "cache.sqlite"
    if damage == "not_sqlite":
        path.write_bytes(b"garbage, not an SQLite file\n" * 40)
    else:  # an SQLite file whose ``keys`` table is someone else's
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE keys (a, b)")
            db.execute("INSERT INTO keys VALUES (1, 2)")
        db.close()
    result = CliRunner().invoke(cli, ["keys", *command, "--keys", str(path)])
    assert result.exit_code == 3, result.output
    assert str(path) in result.output and "key cache" in result.output
    assert "Traceback" not in result.output


def test_keys_list_skips_garbage_rows_with_one_warning(tmp_path: Path) -> None:
    path = tmp_path / "garbage.sqlite"
    _garbage_rows(path, Lab())
    result = CliRunner().invoke(cli, ["keys", "list", "--keys", str(path)])
    assert result.exit_code == 0, result.output
    assert f"{path}: 5 key cache rows skipped as unusable" in result.output
    assert "example.test.\t" in result.output


def test_an_audit_with_a_corrupt_named_cache_is_exit_3(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.sqlite"
    corrupt_cache(path)
    result = CliRunner().invoke(
        cli, ["audit", str(SAMPLE), "--keys", str(path), "--out", str(tmp_path / "o"), "-q"])
    assert result.exit_code == 3, result.output
    assert str(path) in result.output


def test_keys_import_of_plain_dnskeys_is_seen_unless_trusted(tmp_path: Path) -> None:
    lab = Lab()
    source = tmp_path / "leaf.keys"
    source.write_text(f"example.test. IN DNSKEY {lab.leaf.ksk.to_text()}\n")
    for flag, state in (((), "seen"), (("--trusted",), "trusted")):
        keys = tmp_path / f"{state}.sqlite"
        result = CliRunner().invoke(cli, ["keys", "import", *flag, "--keys", str(keys),
                                          str(source)])
        assert result.exit_code == 0, result.output
        listed = CliRunner().invoke(cli, ["keys", "list", "--keys", str(keys), "--json"])
        assert [json.loads(line)["state"] for line in listed.output.splitlines()] == [state]


def test_keys_list_and_export_of_a_missing_cache_are_errors_not_new_databases(
        tmp_path: Path) -> None:
    missing = tmp_path / "typo.sqlite"
    for command in (["keys", "list", "--keys", str(missing)],
                    ["keys", "export", "--keys", str(missing), str(tmp_path / "out.json")]):
        result = CliRunner().invoke(cli, command)
        assert result.exit_code == 3, result.output
        assert f"{missing}: no key cache there" in result.output
        assert not missing.exists()


def test_keys_export_dash_writes_json_to_standard_output(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _run(out, SAMPLE, "--keys", str(out / "k.sqlite"), "-q")
    result = CliRunner().invoke(
        cli, ["keys", "export", "--keys", str(out / "k.sqlite"), "-"])
    assert result.exit_code == 0, result.output
    exported = json.loads(result.stdout)
    assert exported["format"] == "dnssec-auditor-keycache" and exported["keys"]
    assert not Path("-").exists()
    assert f"exported {len(exported['keys'])} keys to standard output" in result.stderr
