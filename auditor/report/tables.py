"""Columnar outputs: the ENTRADA-style flow table (Parquet partitioned by date, optional CSV)
built from ``responses.jsonl``, and the zone health inventory (``zones.csv``/``.parquet``)."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from auditor.errors import ReportInputError
from auditor.findings.zones import ZoneHealthRow
from auditor.report import check
from auditor.report.check import SCHEMA_CHECKS

logger = logging.getLogger(__name__)

CHUNK_ROWS = 5_000
"""Responses converted per batch: memory stays bounded whatever the capture size (a batch of
rows, its DataFrame and Arrow table cost about 5-9 KB per row at its peak: 50,000 rows took
the flow table from 125 to 361 MB, 10,000 to 212 MB, 5,000 to 175 MB)."""

FLOW_SCHEMA = pa.schema([
    ("ts", pa.timestamp("us", tz="UTC")),
    ("capture", pa.string()),
    ("frame", pa.int64()),
    ("transport", pa.string()),
    ("client", pa.string()),
    ("client_port", pa.int32()),
    ("server", pa.string()),
    ("server_port", pa.int32()),
    ("id", pa.int32()),
    ("qname", pa.string()),
    ("qtype", pa.string()),
    ("qclass", pa.string()),
    ("rcode", pa.string()),
    ("flags", pa.list_(pa.string())),
    ("ad", pa.bool_()),
    ("do", pa.bool_()),
    ("ede", pa.list_(pa.int32())),
    ("size", pa.int32()),
    ("hop_limit", pa.int32()),
    ("answer_count", pa.int32()),
    ("query_frame", pa.int64()),
    ("verdict", pa.string()),
    ("codes", pa.list_(pa.string())),
    ("zone", pa.string()),
    ("signer", pa.string()),
    ("key_tags", pa.list_(pa.int32())),
    ("algorithms", pa.list_(pa.int32())),
    ("inception", pa.timestamp("us", tz="UTC")),
    ("expiration", pa.timestamp("us", tz="UTC")),
    ("remaining_validity_s", pa.int64()),
    ("reference_time", pa.timestamp("us", tz="UTC")),
])
"""Columns of ``responses.parquet`` (plus the ``date`` partition) and ``responses.csv``.
``flags``, ``ede``, ``codes``, ``key_tags`` and ``algorithms`` are list columns, so DuckDB,
Spark and pandas query them without parsing (``list_contains(codes, 'signature_expired')``);
the CSV joins them with commas (flags with spaces)."""
LIST_COLUMNS = ("flags", "ede", "codes", "key_tags", "algorithms")
"""Flow-table columns holding lists."""


def _time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00"))


TIMES_KEPT = 4_096
"""Distinct reference, inception and expiration texts ``_chunks`` keeps parsed."""


def _memo_time(times: dict[str | None, datetime | None]) -> Callable[[str | None],
                                                                     datetime | None]:
    """``_time`` through ``times`` (emptied when it holds ``TIMES_KEPT``)."""
    def time(text: str | None) -> datetime | None:
        try:
            return times[text]
        except KeyError:
            if len(times) >= TIMES_KEPT:
                times.clear()
            parsed = times[text] = _time(text)
            return parsed
    return time


def _primary_rrset(record: dict[str, Any]) -> dict[str, Any] | None:
    """The signed RRset that speaks for the answer: first signed answer RRset, else the first
    signed one in any section."""
    rrsets = record.get("rrsets") or []
    for section in ("answer", None):
        for rrset in rrsets:
            if rrset.get("signer") and (section is None or rrset["section"] == section):
                return rrset
    return None


def flow_row(record: dict[str, Any],
             time: Callable[[str | None], datetime | None] = _time) -> dict[str, Any]:
    """One ``responses.jsonl`` record as a flat flow-table row (``time``: how the reference,
    inception and expiration times are parsed; they repeat from row to row, so ``_chunks``
    passes ``_memo_time``)."""
    primary = _primary_rrset(record)
    reference = time(record.get("reference_time"))
    expiration = time(primary.get("expiration")) if primary else None
    remaining = (int((expiration - reference).total_seconds())
                 if expiration is not None and reference is not None else None)
    return {
        "ts": _time(record["ts"]),
        "capture": record["capture"],
        "frame": record["frame"],
        "transport": record["transport"],
        "client": record["dst"],
        "client_port": record["dport"],
        "server": record["src"],
        "server_port": record["sport"],
        "id": record["id"],
        "qname": record.get("qname"),
        "qtype": record.get("qtype"),
        "qclass": record.get("qclass"),
        "rcode": record.get("rcode"),
        "flags": list(record.get("flags", [])),
        "ad": "AD" in record.get("flags", []),
        "do": record.get("do"),
        "ede": list(record.get("ede", [])),
        "size": record.get("size"),
        "hop_limit": record.get("hop_limit"),
        "answer_count": record.get("answer_count"),
        "query_frame": record.get("query_frame"),
        "verdict": record.get("verdict"),
        "codes": list(record.get("codes", [])),
        "zone": record.get("zone"),
        "signer": primary.get("signer") if primary else None,
        "key_tags": list(primary.get("key_tags", [])) if primary else [],
        "algorithms": list(primary.get("algorithms", [])) if primary else [],
        "inception": time(primary.get("inception")) if primary else None,
        "expiration": expiration,
        "remaining_validity_s": remaining,
        "reference_time": reference,
    }


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """The records of a JSON Lines file, one at a time (blank lines skipped); a line that is
    not a JSON object raises ``ReportInputError`` naming the file and line."""
    for _, record in numbered_jsonl(path):
        yield record


def numbered_jsonl(path: Path, kind: str | None = None,
                   wanted: Callable[[int], bool] | None = None,
                   ) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) of every record of a JSON Lines file (blank lines skipped);
    with ``kind`` (``responses``, ``findings``) and ``SCHEMA_CHECKS`` set each record must
    fit that schema. ``wanted``: given the 0-based position of a record among the records,
    whether to read it (one not wanted is passed over unparsed)."""
    checked = kind is not None and SCHEMA_CHECKS.get()
    position = -1
    try:
        with path.open("rb") as handle:
            for number, raw in enumerate(handle, 1):
                if raw.strip():
                    position += 1
                    if wanted is not None and not wanted(position):
                        continue
                    record = _record(path, number, raw)
                    found = (check.problem(check.schema_of(kind, record), record)
                             if checked and kind is not None else None)
                    if found:
                        raise ReportInputError(str(path), found, number)
                    yield number, record
    except OSError as exc:
        raise ReportInputError(str(path), f"cannot be read: {exc.strerror or exc}") from exc


def _record(path: Path, number: int, raw: bytes) -> dict[str, Any]:
    try:
        fast = orjson.loads(raw)  # several times faster; anything it refuses goes below
    except orjson.JSONDecodeError:
        fast = None
    if isinstance(fast, dict):
        return fast
    try:
        record = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ReportInputError(str(path), f"not UTF-8 text: {exc.reason}", number) from exc
    except ValueError as exc:  # json.JSONDecodeError, RecursionError is not one of these
        cut = "" if raw.endswith(b"\n") else " (the file is cut short here)"
        raise ReportInputError(str(path), f"not a JSON record: {exc}{cut}", number) from exc
    except RecursionError as exc:
        raise ReportInputError(str(path), "JSON nested too deeply", number) from exc
    if not isinstance(record, dict):
        raise ReportInputError(str(path), f"a JSON {type(record).__name__}, not a record "
                               "(an object)", number)
    return record


def record_problem(path: Path, number: int, exc: Exception) -> ReportInputError:
    """The error for a record that parsed as JSON but lacks a field, or has one of the wrong
    type, that the reports need."""
    if isinstance(exc, KeyError):
        problem = f"record has no field {exc.args[0]!r}"
    else:
        problem = f"record unusable: {type(exc).__name__}: {exc}"
    return ReportInputError(str(path), problem, number)


RECORD_ERRORS = (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError)
"""What reading a malformed record's fields raises (``record_problem`` turns it into a
``ReportInputError``)."""


ChunkClaim = Callable[[], int]
"""Hands out flow-table chunk numbers, each once and in increasing order, to the processes
writing one flow table together (``audit --jobs 2``: a counter they share)."""


class _Claimed:
    """Whether a record's chunk is one this process claimed: as its reading reaches a chunk
    past the last one it claimed, it claims the next one not yet taken and passes over the
    records before it (another process writes them)."""

    def __init__(self, size: int, claim: ChunkClaim) -> None:
        self._size = size
        self._claim = claim
        self.chunk = claim()
        """The chunk this process writes next."""

    def __call__(self, position: int) -> bool:
        chunk = position // self._size
        while chunk > self.chunk:
            self.chunk = self._claim()
        return chunk == self.chunk


def _chunks(path: Path, size: int, claim: ChunkClaim | None = None,
            ) -> Iterator[tuple[int, int, list[dict[str, Any]]]]:
    """(chunk number, first line number, rows) batches of the flow table: every chunk of
    ``size`` records, or with ``claim`` those this process claims."""
    claimed = _Claimed(size, claim) if claim is not None else None
    batch: list[dict[str, Any]] = []
    first = 1
    chunk = 0
    time = _memo_time({})
    for number, record in numbered_jsonl(path, "responses", claimed):
        try:
            row = flow_row(record, time)
        except RECORD_ERRORS as exc:
            raise record_problem(path, number, exc) from exc
        if not batch:
            first = number
            if claimed is not None:
                chunk = claimed.chunk
        batch.append(row)
        if len(batch) >= size:
            yield chunk, first, batch
            batch = []
            chunk += 1
    if batch:
        yield chunk, first, batch


def clear_flow_dataset(out_dir: Path) -> None:
    """Remove an earlier run's ``responses.parquet`` (before one is written in chunks)."""
    dataset = out_dir / "responses.parquet"
    if dataset.exists():
        shutil.rmtree(dataset) if dataset.is_dir() else dataset.unlink()


def write_flow_tables(
    responses: Path, out_dir: Path, *, parquet: bool = True, csv: bool = False,
    chunk_rows: int | None = None, claim: ChunkClaim | None = None,
) -> list[Path]:
    """``responses.parquet/date=YYYY-MM-DD/part-NNNNN.parquet`` (a Hive-partitioned dataset,
    readable with ``pandas.read_parquet``) and, on request, ``responses.csv``.

    ``claim``: write only the chunks it hands out (Parquet only: the CSV is one file written
    in order), into a dataset the caller has cleared (``clear_flow_dataset``); the processes
    sharing ``claim`` write together the files one process writes alone, part numbers
    included."""
    if claim is not None and csv:
        raise ValueError("a CSV flow table is written by one process, in order")
    dataset = out_dir / "responses.parquet"
    csv_path = out_dir / "responses.csv"
    if parquet and claim is None:
        clear_flow_dataset(out_dir)
    written: list[Path] = []
    for number, first, batch in _chunks(responses, chunk_rows or CHUNK_ROWS, claim):
        if parquet:
            try:
                _write_partitions(batch, dataset, number)
            except (pa.ArrowException, *RECORD_ERRORS) as exc:  # a field of the wrong type
                raise ReportInputError(
                    str(responses), f"records from line {first} on do not fit the flow "
                    f"table: {type(exc).__name__}: {exc}", first) from exc
        if csv:
            frame = pd.DataFrame(batch, columns=FLOW_SCHEMA.names)
            _flat(frame).to_csv(csv_path, mode="w" if number == 0 else "a",
                                header=number == 0, index=False)
    if parquet:
        dataset.mkdir(exist_ok=True)
        written.append(dataset)
    if csv:
        if not csv_path.exists():
            pd.DataFrame(columns=FLOW_SCHEMA.names).to_csv(csv_path, index=False)
        written.append(csv_path)
    return written


def _flat(frame: pd.DataFrame) -> pd.DataFrame:
    """The flow table for CSV: list columns joined as text (flags with spaces, the rest with
    commas, as in earlier versions)."""
    flat = frame.copy()
    for column in LIST_COLUMNS:
        glue = " " if column == "flags" else ","
        flat[column] = flat[column].map(lambda values, g=glue: g.join(str(v) for v in values))
    return flat


def _write_partitions(rows: list[dict[str, Any]], dataset: Path, number: int) -> None:
    """One Parquet file per capture date of a batch, rows in their order, converted by Arrow
    itself (``from_pylist``): a pandas DataFrame in between cost more than the rest of the
    flow table (issue 14)."""
    dates: dict[date, list[dict[str, Any]]] = {}
    for row in rows:
        dates.setdefault(row["ts"].date(), []).append(row)
    for day in sorted(dates):
        directory = dataset / f"date={day.isoformat()}"  # YYYY-MM-DD: pcap years are 4 digits
        directory.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pylist(dates[day], schema=FLOW_SCHEMA)
        pq.write_table(table, directory / f"part-{number:05d}.parquet")


def zone_frame(rows: Sequence[ZoneHealthRow]) -> pd.DataFrame:
    """The zone inventory as a DataFrame (times as UTC timestamps)."""
    columns = [f.name for f in dataclasses.fields(ZoneHealthRow)]
    frame = pd.DataFrame([dataclasses.asdict(r) for r in rows], columns=columns)
    for column in ("first_seen", "last_seen"):
        frame[column] = pd.to_datetime(frame[column], unit="ns", utc=True)
    for column in ("nsec3_iterations", "min_signature_validity_s"):
        frame[column] = frame[column].astype("Int64")
    for column in ("nsec3_opt_out", "cds_matches_dnskey", "cds_signed_by_ds_key"):
        frame[column] = frame[column].astype("boolean")
    return frame


def write_zone_tables(rows: Sequence[ZoneHealthRow], out_dir: Path) -> list[Path]:
    """``zones.csv`` and ``zones.parquet``."""
    frame = zone_frame(rows)
    paths = [out_dir / "zones.csv", out_dir / "zones.parquet"]
    frame.to_csv(paths[0], index=False)
    frame.to_parquet(paths[1], index=False)
    return paths


def read_zone_table(out_dir: Path) -> list[dict[str, Any]]:
    """The saved zone inventory as plain records (Parquet preferred, CSV otherwise)."""
    parquet, csv = out_dir / "zones.parquet", out_dir / "zones.csv"
    source = parquet if parquet.exists() else csv if csv.exists() else None
    if source is None:
        return []
    try:
        if source is parquet:
            frame = pd.read_parquet(parquet)
        else:
            frame = pd.read_csv(csv, keep_default_na=False)
    except (OSError, pa.ArrowException, pd.errors.ParserError, pd.errors.EmptyDataError,
            *RECORD_ERRORS) as exc:
        raise ReportInputError(str(source), f"not a readable zone table: "
                               f"{type(exc).__name__}: {exc}") from exc
    frame = frame.astype(object).where(frame.notna(), None)
    return [{str(k): v for k, v in row.items()} for row in frame.to_dict(orient="records")]
