"""Every saved output ``report DIR`` reads back (responses.jsonl, findings.jsonl, stats.json,
chains.json, the zone table) fails cleanly when damaged: exit 3 and a message naming the file
(and line), never a traceback. Captures and trust anchors likewise (issue 13)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditor.cli import EXIT_INPUT, cli

SAMPLE = Path(__file__).resolve().parents[2] / "captures" / "sample-dnssec.pcap"
FORMATS = ["--format", "html", "--format", "md", "--format", "parquet", "--format", "csv"]


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("audited")
    result = CliRunner().invoke(cli, ["audit", str(SAMPLE), "--out", str(out), "-q", "--csv"])
    assert result.exit_code == 0, result.output
    return out


def _copy(audited: Path, tmp_path: Path) -> Path:
    target = tmp_path / "out"
    shutil.copytree(audited, target)
    return target


def _report(directory: Path) -> Result:
    return CliRunner().invoke(cli, ["report", str(directory), *FORMATS])


def _assert_clean(result: Result, names: str | None = None) -> None:
    """Exit 0, or exit 3 with a message naming the damaged file; never another exception."""
    assert isinstance(result.exception, SystemExit | None), result.exception
    assert result.exit_code in (0, EXIT_INPUT), result.output
    if result.exit_code == EXIT_INPUT and names is not None:
        assert names in result.output, result.output
        assert "Traceback" not in result.output


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_undamaged_outputs_render(audited: Path, tmp_path: Path) -> None:
    result = _report(_copy(audited, tmp_path))
    assert result.exit_code == 0, result.output


DAMAGE = {
    "garbage": lambda data: b"\x00\xffnot json at all\n" + data[:40],
    "truncated": lambda data: data[: len(data) // 2],
    "not_utf8": lambda data: data[:10] + b"\xff\xfe" + data[10:],
    "array_line": lambda data: b"[1, 2, 3]\n" + data,
    "deep": lambda data: b"[" * 100_000 + b"\n" + data,
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
@pytest.mark.parametrize("name", ["responses.jsonl", "findings.jsonl", "stats.json",
                                  "chains.json"])
def test_damaged_file_names_the_file(audited: Path, tmp_path: Path, name: str,
                                     damage: str) -> None:
    directory = _copy(audited, tmp_path)
    path = directory / name
    path.write_bytes(DAMAGE[damage](path.read_bytes()))
    result = _report(directory)
    _assert_clean(result, name)
    if damage in ("garbage", "not_utf8", "array_line", "deep"):
        assert result.exit_code == EXIT_INPUT, result.output


@pytest.mark.parametrize("name", ["zones.parquet", "zones.csv"])
def test_damaged_zone_table(audited: Path, tmp_path: Path, name: str) -> None:
    directory = _copy(audited, tmp_path)
    if name == "zones.csv":
        (directory / "zones.parquet").unlink()
    (directory / name).write_bytes(b"PAR1 garbage \x00\x01")
    result = CliRunner().invoke(cli, ["report", str(directory)])
    _assert_clean(result, name)


def test_line_number_of_a_bad_record(audited: Path, tmp_path: Path) -> None:
    directory = _copy(audited, tmp_path)
    path = directory / "responses.jsonl"
    records = _lines(path)
    del records[2]["ts"]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    result = _report(directory)
    assert result.exit_code == EXIT_INPUT
    assert "responses.jsonl:3" in result.output and "'ts'" in result.output


def test_missing_outputs(audited: Path, tmp_path: Path) -> None:
    directory = _copy(audited, tmp_path)
    for name in ("findings.jsonl", "stats.json", "chains.json", "zones.parquet", "zones.csv"):
        (directory / name).unlink()
    assert _report(directory).exit_code == 0
    (directory / "responses.jsonl").unlink()
    result = _report(directory)
    assert result.exit_code == EXIT_INPUT and "responses.jsonl" in result.output


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3),
    max_leaves=6,
)


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(["responses.jsonl", "findings.jsonl"]), data=st.data())
def test_any_field_of_any_record_may_be_wrong(audited: Path, tmp_path: Path, name: str,
                                              data: st.DataObject) -> None:
    directory = tmp_path / "out"
    if directory.exists():
        shutil.rmtree(directory)
    shutil.copytree(audited, directory)
    path = directory / name
    records = _lines(path)
    index = data.draw(st.integers(0, len(records) - 1))
    record = records[index]
    field = data.draw(st.sampled_from(sorted(record)))
    if data.draw(st.booleans()):
        del record[field]
    else:
        record[field] = data.draw(_JSON)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    _assert_clean(_report(directory), f"{name}:{index + 1}")


@pytest.mark.parametrize("content", [b"", b"garbage", b"\xd4\xc3\xb2\xa1" + b"\x00" * 5,
                                     b"\x1f\x8b\x08\x00garbage"])
def test_damaged_capture_exits_3(tmp_path: Path, content: bytes) -> None:
    capture = tmp_path / "bad.pcap"
    capture.write_bytes(content)
    result = CliRunner().invoke(cli, ["audit", str(capture), "--out", str(tmp_path / "o"), "-q"])
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == EXIT_INPUT and "bad.pcap" in result.output


def test_missing_capture_and_anchor(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["audit", str(tmp_path / "none.pcap"), "--out",
                                      str(tmp_path / "o"), "-q"])
    assert result.exit_code in (2, EXIT_INPUT) and "none.pcap" in result.output
    result = CliRunner().invoke(cli, ["audit", str(SAMPLE), "--trust-anchor",
                                      str(tmp_path / "none.anchor"), "--out",
                                      str(tmp_path / "o"), "-q"])
    assert result.exit_code in (2, EXIT_INPUT) and "none.anchor" in result.output


@pytest.mark.parametrize("content", [b"\x00\xff\xfe garbage", b"example. IN DS 1 2 3",
                                     b"<?xml version='1.0'?><TrustAnchor><Zone>",
                                     b"trust-anchors { \"example.\" initial-key 257 3 8 \"\""])
def test_damaged_anchor_exits_3(tmp_path: Path, content: bytes) -> None:
    anchor = tmp_path / "bad.anchor"
    anchor.write_bytes(content)
    result = CliRunner().invoke(cli, ["audit", str(SAMPLE), "--trust-anchor", str(anchor),
                                      "--out", str(tmp_path / "o"), "-q"])
    assert isinstance(result.exception, SystemExit | None), result.exception
    assert result.exit_code in (0, EXIT_INPUT), result.output
    if result.exit_code == EXIT_INPUT:
        assert "bad.anchor" in result.output
