"""The flow table is converted by Arrow straight from the rows (issue 14): the same table as
the pandas DataFrame it used to go through, nulls, lists and times included."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from auditor.pipeline import AuditOptions, run_audit
from auditor.report.tables import FLOW_SCHEMA, flow_row, read_jsonl, write_flow_tables

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "captures" / "sample-dnssec.pcap"


def test_flow_table_equals_the_pandas_conversion(tmp_path: Path) -> None:
    run_audit(AuditOptions(captures=(str(SAMPLE),), out_dir=tmp_path,
                           trust_anchors=(str(SAMPLE.with_suffix(".anchor")),),
                           report_formats=frozenset()))
    rows = [flow_row(record) for record in read_jsonl(tmp_path / "responses.jsonl")]
    # Nulls of every kind: a response without an RRSIG has no signer, times or remaining validity.
    assert any(row["signer"] is None and row["inception"] is None for row in rows)
    write_flow_tables(tmp_path / "responses.jsonl", tmp_path, chunk_rows=7)
    written = pq.read_table(tmp_path / "responses.parquet").drop_columns(["date"])
    by_pandas = pa.Table.from_pandas(pd.DataFrame(rows, columns=FLOW_SCHEMA.names),
                                     schema=FLOW_SCHEMA, preserve_index=False)
    assert written.schema.equals(by_pandas.schema, check_metadata=False)
    assert written.to_pylist() == by_pandas.to_pylist()


def test_rows_through_the_time_memo_equal_rows_without_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # ``_chunks`` keeps the parsed reference, inception and expiration times (they repeat from
    # row to row): the same rows, also when the memo is emptied on the way.
    from auditor.report import tables

    run_audit(AuditOptions(captures=(str(SAMPLE),), out_dir=tmp_path,
                           trust_anchors=(str(SAMPLE.with_suffix(".anchor")),),
                           report_formats=frozenset()))
    records = list(read_jsonl(tmp_path / "responses.jsonl"))
    monkeypatch.setattr(tables, "TIMES_KEPT", 2)
    times: dict[str | None, datetime | None] = {}
    memo = tables._memo_time(times)
    assert [flow_row(r, memo) for r in records] == [flow_row(r) for r in records]
    assert len(times) <= 2
