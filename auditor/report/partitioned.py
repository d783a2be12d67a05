"""The outputs of a cluster run as one dataset partitioned Hive-style by capture date and capture
file (``responses/date=YYYY-MM-DD/capture=NAME/``), so Spark, Trino and DuckDB read every
partition as one table: Parquet and JSON Lines per partition."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from auditor.report.tables import CHUNK_ROWS, FLOW_SCHEMA, _chunks

_PLAIN = re.compile(r"[A-Za-z0-9._-]+")


def partition_value(text: str) -> str:
    """A partition directory value: the text itself when plain, else percent-encoded."""
    return text if _PLAIN.fullmatch(text) else quote(text, safe="")


def _partition(record: dict[str, Any]) -> tuple[str, str]:
    """(capture date, capture name) of a record with ISO ``ts`` and ``capture`` fields."""
    ts = record.get("ts")
    date = ts[:10] if isinstance(ts, str) else "unknown"
    return date, partition_value(str(record.get("capture") or "unknown"))


def write_partitioned(out_dir: Path, chunk_rows: int = CHUNK_ROWS) -> list[Path]:
    """``dataset/responses/date=D/capture=C/{part-NNNNN.parquet,responses.jsonl}`` and
    ``dataset/findings/date=D/capture=C/findings.jsonl`` from the run's JSON Lines."""
    dataset = out_dir / "dataset"
    if dataset.exists():
        shutil.rmtree(dataset)
    written = [_split_jsonl(out_dir / "responses.jsonl", dataset / "responses"),
               _split_jsonl(out_dir / "findings.jsonl", dataset / "findings")]
    for number, _, rows in _chunks(out_dir / "responses.jsonl", chunk_rows):
        frame = pd.DataFrame(rows, columns=FLOW_SCHEMA.names)
        dates = frame["ts"].map(lambda t: t.strftime("%Y-%m-%d"))
        names = frame["capture"].map(lambda name: partition_value(str(name)))
        for (date, name), part in frame.groupby([dates, names], sort=True):
            directory = dataset / "responses" / f"date={date}" / f"capture={name}"
            directory.mkdir(parents=True, exist_ok=True)
            table = pa.Table.from_pandas(part, schema=FLOW_SCHEMA, preserve_index=False)
            pq.write_table(table, directory / f"part-{number:05d}.parquet")
    return written


def _split_jsonl(source: Path, target: Path) -> Path:
    """Copy every line of ``source`` into its partition's file, in order."""
    files: dict[tuple[str, str], IO[bytes]] = {}
    try:
        with source.open("rb") as lines:
            for line in lines:
                key = _partition(orjson.loads(line))
                out = files.get(key)
                if out is None:
                    directory = target / f"date={key[0]}" / f"capture={key[1]}"
                    directory.mkdir(parents=True, exist_ok=True)
                    out = files[key] = (directory / source.name).open("wb")
                out.write(line)
    finally:
        for out in files.values():
            out.close()
    target.mkdir(parents=True, exist_ok=True)
    return target
