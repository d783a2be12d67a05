"""Two processes write one flow table (``audit --jobs 2``): each writes the chunks it claims
from a shared counter, and together they write the files one process writes, part numbers
and bytes included (``report.tables.write_flow_tables`` with ``claim``)."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from pathlib import Path

import pytest

from auditor.pipeline import AuditOptions, run_audit
from auditor.report.tables import ChunkClaim, clear_flow_dataset, write_flow_tables
from auditor.scale.reporting import _shared_counter

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "captures" / "sample-dnssec.pcap"
CHUNK = 3
"""Records per chunk: the sample's responses make several chunks."""


@pytest.fixture(scope="module")
def responses(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("audit")
    run_audit(AuditOptions(captures=(str(SAMPLE),), out_dir=out,
                           trust_anchors=(str(SAMPLE.with_suffix(".anchor")),),
                           report_formats=frozenset()))
    return out / "responses.jsonl"


def _files(out: Path) -> dict[str, bytes]:
    dataset = out / "responses.parquet"
    return {str(path.relative_to(dataset)): path.read_bytes()
            for path in sorted(dataset.rglob("*")) if path.is_file()}


def _alone(responses: Path, out: Path) -> dict[str, bytes]:
    write_flow_tables(responses, out, chunk_rows=CHUNK)
    return _files(out)


def _claims(numbers: list[int]) -> Iterator[int]:
    yield from numbers
    while True:
        yield 10_000  # past the end: nothing more for this writer


def test_two_writers_with_interleaved_claims_write_the_same_files(
        responses: Path, tmp_path: Path) -> None:
    alone = _alone(responses, tmp_path / "alone")
    chunks = len(alone)
    assert chunks >= 4, "the sample must make several chunks"
    first = [n for n in range(chunks) if n % 3 == 0]
    second = [n for n in range(chunks) if n % 3]
    shared = tmp_path / "shared"
    shared.mkdir()
    clear_flow_dataset(shared)
    for numbers in (second, first):  # either may run first
        claims = _claims(numbers)
        write_flow_tables(responses, shared, chunk_rows=CHUNK, claim=lambda c=claims: next(c))
    assert _files(shared) == alone


def _write_claimed(responses: Path, out: Path, claim: ChunkClaim) -> None:
    write_flow_tables(responses, out, chunk_rows=CHUNK, claim=claim)


def test_a_forked_process_and_this_one_share_the_counter(
        responses: Path, tmp_path: Path) -> None:
    alone = _alone(responses, tmp_path / "alone")
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "responses.parquet").mkdir()
    (shared / "responses.parquet" / "stale.parquet").write_bytes(b"an earlier run's")
    clear_flow_dataset(shared)
    claim = _shared_counter()
    other = multiprocessing.get_context("fork").Process(
        target=_write_claimed, args=(responses, shared, claim))
    other.start()
    _write_claimed(responses, shared, claim)
    other.join(60)
    assert other.exitcode == 0
    assert _files(shared) == alone
    assert claim() >= len(alone)  # every chunk was handed out once


def test_a_csv_table_is_never_written_in_claimed_chunks(responses: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="one process"):
        write_flow_tables(responses, tmp_path, csv=True, claim=lambda: 0)
