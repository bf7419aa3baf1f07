#!/usr/bin/env python3
"""Reads a pipeline lake the way its users do, with no arguments beyond the
folder, and checks it against DESIGN.md section 4, the SQLite warehouse and
the Athena table of template.yaml.

usage: check_lake.py DATA_DIR WAREHOUSE_DB      (offline; DATA_DIR is never modified)

DATA_DIR is the lake root (MARKET_DATA_LAKE_URI file://DATA_DIR, e.g. the ./data
of `mdp demo`); the curated table is DATA_DIR/curated/market_data.

1. Every file, on its own (pyarrow.parquet): only ticker=<enc>/year=YYYY/part-0.parquet
   files under the table; the folder name is the DESIGN.md percent-encoding of
   the ticker it decodes to; PAR1 magic; one row group; every column chunk
   snappy, with min/max statistics (unless all its values are null), and its
   own byte range (chunks disjoint, between the magic and the footer); the
   Parquet types (DATE, INT64 volume, DOUBLE, UTF8 strings, UTC microsecond
   TIMESTAMP); the embedded Arrow schema and the schema pyarrow reads are
   exactly the contract's columns, in order, with no partition key (no
   ticker), plain `string` (no string_view / large_string), date32, int64
   volume, double prices and indicators, timestamp[us, tz=UTC]; rows sorted
   and unique by date, inside the folder's year, with a close, no NaN; the
   row group's date statistics are its first and last date.
2. A temporary COPY of the table (DATA_DIR is left as it is: checked at the
   end) gets two more partitions, copies of existing files at
   ticker=%5EGSPC/year=2021/ and ticker=EURUSD%3DX/year=2021/: the files hold
   no ticker, so those rows are ^GSPC's and EURUSD=X's, and a reader must
   decode the folder names to find them.
3. The folder, read with no argument but the path, by
      pandas.read_parquet(dir)
      pyarrow.dataset.dataset(dir, partitioning="hive")
      polars.scan_parquet(dir, hive_partitioning=True)
      duckdb: read_parquet('dir/**/*.parquet', hive_partitioning = true)
   returns every row exactly once, every column equal to the file's (floats
   exactly, timestamps to the microsecond), with `ticker` decoded from the
   path (^GSPC, EURUSD=X) and `year` an integer partition column.
4. Partition pruning: a pyarrow dataset filter on ticker yields only that
   ticker's fragments and rows; pandas read_parquet(dir, filters=[("ticker",
   "=", t)]) returns only its rows (and the expression pandas turns the
   filters into keeps only its files); duckdb reads only its files (filename=true); polars
   filters the same rows.
5. Pruning by date: for date ranges cut from the data (before a file's first
   date, after its last, one day), a dataset filter on `date` alone keeps
   exactly the row groups whose rows intersect the range
   (ParquetFileFragment.split_by_row_group, i.e. the statistics), at least one
   skipped file being in the range's own year (so it is the statistics, not the
   year folder, that skip it); the rows the scan returns are exactly those of
   the range (also through pandas, polars and duckdb).
6. Projection: reading 4 columns of a file reads only their column chunks
   (every read after the footer lies inside those chunks' byte ranges, and
   covers them); each reader asked for [ticker, date, close, rsi] returns
   exactly those columns, with the right values.
7. The warehouse table fact_market_data holds exactly the lake's rows of the
   real tickers, every column equal (floats exactly, dates and timestamps as
   the SQLite loader stores them).
8. The Glue table of template.yaml (read with infra/template_check's own
   loader) has exactly the columns, order and types of the files the
   transform wrote, and the partition keys the folder's Hive partitioning
   has (ticker string, year int).

Verified with the versions pinned in tests/requirements.txt (pyarrow 26.0.1,
pandas 3.1.1, polars 2.1.0, duckdb 2.0.1; Python 3.11). The issue asks the
files be readable by pyarrow 12 and newer: the folder was also read by hand
with pyarrow 12.0.1 (pyarrow.dataset with hive partitioning, ^GSPC and
EURUSD=X decoded, ticker filter pruning, date statistics pruning, pandas 2.0.3
read_parquet; the same values as pyarrow 26) in a throwaway virtualenv.
pandas 3.1 needs pyarrow 16 or newer, so 12 is not what this script runs with.
"""
from __future__ import annotations

import base64
import datetime as dt
import io
import shutil
import sqlite3
import sys
import tempfile
from pathlib import Path
from urllib.parse import unquote

import duckdb
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "infra"))
# The template checker's loader and its one list of the lake's columns
# (derived from the Postgres DDL, which the Rust tests tie to schema.rs).
from template_check.cfn import load_template  # noqa: E402
from template_check.expected import LAKE_PARTITION_KEYS, lake_file_columns  # noqa: E402
from template_check.glue import partition_value  # noqa: E402

# The Arrow type a curated file holds for each Glue type of the contract.
ARROW = {
    "string": pa.string(),
    "date": pa.date32(),
    "double": pa.float64(),
    "bigint": pa.int64(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}
# The Parquet (physical type, logical type) of each.
PARQUET = {
    "string": ("BYTE_ARRAY", "STRING"),
    "date": ("INT32", "DATE"),
    "double": ("DOUBLE", "NONE"),
    "bigint": ("INT64", "NONE"),
    "timestamp": ("INT64", "TIMESTAMP"),
}
CONTRACT = lake_file_columns()  # [(name, glue type)], file order
COLUMNS = [name for name, _ in CONTRACT]
PARTITION_KEYS = [name for name, _ in LAKE_PARTITION_KEYS]  # ticker, year
ALL = COLUMNS + PARTITION_KEYS
TIMESTAMPS = [name for name, ty in CONTRACT if ty == "timestamp"]
# The synthetic partitions: (ticker, folder), copies of real files.
SYNTHETIC = [("^GSPC", "ticker=%5EGSPC"), ("EURUSD=X", "ticker=EURUSD%3DX")]
SYNTHETIC_YEAR = 2021
PROJECTED = ["date", "close", "rsi", "volume"]  # the 4 columns a file read asks for
READER_COLUMNS = ["ticker", "date", "close", "rsi"]  # the 4 columns each reader asks for
DAY = dt.timedelta(days=1)


def fail(msg: str) -> None:
    print(f"FAIL: {msg}")
    sys.exit(1)


def ts_text(v: dt.datetime) -> str:
    """A UTC instant as the SQLite warehouse stores it."""
    if v.tzinfo is None:
        fail(f"timestamp {v!r} has no time zone")
    return v.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def norm(v):
    """A value of any reader as a plain Python value: numpy scalars unboxed,
    pandas' missing values (NaN, NaT) as None (the files hold no NaN: checked
    file by file), instants as UTC text, dates as datetime.date."""
    if v is None or v is pd.NaT:
        return None
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and v != v:
        return None
    if isinstance(v, dt.datetime):
        return ts_text(v)
    return v


# ------------------------------------------------------------ 1. the files
def chunk_range(col) -> tuple[int, int]:
    """[start, end) of a column chunk's pages in the file."""
    start = col.dictionary_page_offset if col.has_dictionary_page and col.dictionary_page_offset else col.data_page_offset
    return start, start + col.total_compressed_size


def check_file(path: Path, rel: str) -> list[dict]:
    """Checks one curated file; returns its rows with ticker and year from the path."""
    ticker_dir, year_dir = path.parent.parent.name, path.parent.name
    enc = ticker_dir.removeprefix("ticker=")
    ticker = unquote(enc)
    if partition_value(ticker) != enc:
        fail(f"{rel}: folder {ticker_dir} is not the DESIGN.md encoding of {ticker!r} ({partition_value(ticker)})")
    if not (year_dir.startswith("year=") and year_dir[5:].isdigit() and len(year_dir) == 9):
        fail(f"{rel}: folder {year_dir} is not year=YYYY")
    year = int(year_dir[5:])

    raw = path.read_bytes()
    if raw[:4] != b"PAR1" or raw[-4:] != b"PAR1":
        fail(f"{rel}: no PAR1 magic")
    footer_start = len(raw) - 8 - int.from_bytes(raw[-8:-4], "little")
    pf = pq.ParquetFile(path)
    meta = pf.metadata

    # Arrow schema: the embedded one (what pyarrow, polars and pandas adopt)
    # and the one pyarrow reads, both exactly the contract.
    embedded = (meta.metadata or {}).get(b"ARROW:schema")
    if embedded is None:
        fail(f"{rel}: no embedded Arrow schema (ARROW:schema)")
    schemas = {"embedded Arrow schema": pa.ipc.read_schema(pa.py_buffer(base64.b64decode(embedded))), "schema read": pf.schema_arrow}
    for label, schema in schemas.items():
        if schema.names != COLUMNS:
            extra = [n for n in schema.names if n in PARTITION_KEYS]
            fail(f"{rel}: {label} has columns {schema.names}" + (f"; {extra} belong in the path only" if extra else f", expected {COLUMNS}"))
        for (name, glue), field in zip(CONTRACT, schema):
            if field.type != ARROW[glue]:
                note = " (plain string: no string_view / large_string)" if glue == "string" else ""
                fail(f"{rel}: {label}: {name} is {field.type}, expected {ARROW[glue]}{note}")
    for i, (name, glue) in enumerate(CONTRACT):
        col = pf.schema.column(i)
        got = (col.physical_type, col.logical_type.type)
        if got != PARQUET[glue]:
            fail(f"{rel}: Parquet column {name} is {got}, expected {PARQUET[glue]}")
        if glue == "timestamp" and not ("isAdjustedToUTC=true" in str(col.logical_type) and "microseconds" in str(col.logical_type)):
            fail(f"{rel}: {name} is {col.logical_type}, expected a UTC microsecond timestamp")

    # One row group; chunks snappy, with statistics, each its own byte range.
    if meta.num_row_groups != 1:
        fail(f"{rel}: {meta.num_row_groups} row groups, expected one per file-year")
    rg = meta.row_group(0)
    ranges = []
    for c in range(rg.num_columns):
        col = rg.column(c)
        if col.compression != "SNAPPY":
            fail(f"{rel}: column {col.path_in_schema} compressed with {col.compression}")
        st = col.statistics
        if st is None or not col.is_stats_set:
            fail(f"{rel}: column {col.path_in_schema} has no statistics")
        if not st.has_min_max and st.null_count != rg.num_rows:
            fail(f"{rel}: column {col.path_in_schema} has no min/max statistics")
        ranges.append((*chunk_range(col), col.path_in_schema))
    ranges.sort()
    if ranges[0][0] < 4 or ranges[-1][1] > footer_start:
        fail(f"{rel}: column chunks outside the data pages: {ranges[0]} .. {ranges[-1]} (footer at {footer_start})")
    for (s1, e1, n1), (s2, e2, n2) in zip(ranges, ranges[1:]):
        if e1 > s2:
            fail(f"{rel}: column chunks {n1} [{s1}, {e1}) and {n2} [{s2}, {e2}) overlap")

    rows = pf.read().to_pylist()
    dates = [r["date"] for r in rows]
    if not rows or dates != sorted(set(dates)):
        fail(f"{rel}: dates not sorted and unique (or no row)")
    date_stats = rg.column(COLUMNS.index("date")).statistics
    if (date_stats.min, date_stats.max) != (dates[0], dates[-1]):
        fail(f"{rel}: date statistics {date_stats.min}..{date_stats.max}, rows {dates[0]}..{dates[-1]}")
    for r in rows:
        if r["date"].year != year:
            fail(f"{rel}: row dated {r['date']} in year={year}")
        if r["close"] is None:
            fail(f"{rel}: {r['date']} has no close")
        for k, v in r.items():
            if isinstance(v, float) and v != v:
                fail(f"{rel}: NaN in {k} on {r['date']}")
        r["ticker"], r["year"] = ticker, year
        for k in TIMESTAMPS:
            r[k] = ts_text(r[k])
    return rows


def check_projection_reads(path: Path, rel: str) -> None:
    """Reading PROJECTED columns reads only their column chunks."""

    class Tracked(io.RawIOBase):
        def __init__(self):
            self.f = open(path, "rb")
            self.reads: list[tuple[int, int]] = []

        def readable(self):
            return True

        def seekable(self):
            return True

        def seek(self, offset, whence=0):
            return self.f.seek(offset, whence)

        def tell(self):
            return self.f.tell()

        def read(self, n=-1):
            pos = self.f.tell()
            data = self.f.read(n)
            self.reads.append((pos, len(data)))
            return data

        def readinto(self, b):
            pos = self.f.tell()
            n = self.f.readinto(b)
            self.reads.append((pos, n))
            return n

        def close(self):
            self.f.close()
            super().close()

    src = Tracked()
    try:
        # pre_buffer off: pyarrow would otherwise coalesce nearby ranges
        # into one read (a read-ahead choice, not the file's layout).
        pf = pq.ParquetFile(src, pre_buffer=False)
        src.reads.clear()  # the footer (and, for a small file, what pyarrow reads speculatively with it)
        table = pf.read(columns=PROJECTED)
        reads = [r for r in src.reads if r[1] > 0]
    finally:
        src.close()
    if table.column_names != PROJECTED:
        fail(f"{rel}: read of {PROJECTED} returned {table.column_names}")
    rg = pf.metadata.row_group(0)
    chunks = {rg.column(i).path_in_schema: chunk_range(rg.column(i)) for i in range(rg.num_columns)}
    wanted = sorted(chunks[c] for c in PROJECTED)
    merged: list[list[int]] = []
    for s, e in wanted:
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    for pos, n in reads:
        if not any(s <= pos and pos + n <= e for s, e in merged):
            others = [c for c, (s, e) in chunks.items() if c not in PROJECTED and pos < e and s < pos + n]
            fail(f"{rel}: reading {PROJECTED} read bytes [{pos}, {pos + n}) outside their chunks (of {others})")
    touched = {c for c in PROJECTED if any(pos < chunks[c][1] and chunks[c][0] < pos + n for pos, n in reads)}
    if touched != set(PROJECTED):
        fail(f"{rel}: reading {PROJECTED} did not read the chunks of {sorted(set(PROJECTED) - touched)}")


# ------------------------------------------------------------ 3. readers
def keyed(label: str, rows: list[dict], columns: list[str]) -> dict:
    out = {}
    for r in rows:
        r = {k: norm(v) for k, v in r.items()}
        if set(r) != set(columns):
            fail(f"{label}: columns {sorted(r)}, expected {sorted(columns)}")
        key = (r["ticker"], r["date"])
        if key in out:
            fail(f"{label}: row {key} twice")
        out[key] = r
    return out


def compare(label: str, got: dict, truth: dict, columns: list[str]) -> None:
    if set(got) != set(truth):
        diff = sorted(set(got) ^ set(truth), key=str)[:5]
        fail(f"{label}: {len(got)} rows, expected {len(truth)}; differ on {diff}")
    for key, want in truth.items():
        row = got[key]
        for c in columns:
            a, b = row[c], want[c]
            # pandas holds an int64 column with nulls as float64: an
            # integral float equal to the int is the same value there.
            pandas_int = label.startswith("pandas") and isinstance(a, float) and type(b) is int and a.is_integer()
            if a != b or (type(a) is not type(b) and not pandas_int):
                fail(f"{label}: {key} {c} is {a!r}, expected {b!r}")


def read_pandas(path: Path, **kw) -> tuple[list[str], list[dict]]:
    df = pd.read_parquet(path, **kw)
    return list(df.columns), df.to_dict("records")


def read_pyarrow(path: Path, columns=None, filter=None) -> tuple[list[str], list[dict]]:
    t = ds.dataset(path, partitioning="hive").to_table(columns=columns, filter=filter)
    return t.column_names, t.to_pylist()


def read_polars(path: Path, columns=None, predicate=None) -> tuple[list[str], list[dict]]:
    lf = pl.scan_parquet(path, hive_partitioning=True)
    if predicate is not None:
        lf = lf.filter(predicate)
    if columns is not None:
        lf = lf.select(columns)
    df = lf.collect()
    return df.columns, df.to_dicts()


def duck(sql: str, *params) -> tuple[list[str], list[dict]]:
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        cur = con.execute(sql, list(params))
        names = [d[0] for d in cur.description]
        return names, [dict(zip(names, r)) for r in cur.fetchall()]
    finally:
        con.close()


def duck_source(path: Path, filename: bool = False) -> str:
    glob = (path.as_posix() + "/**/*.parquet").replace("'", "''")
    return f"read_parquet('{glob}', hive_partitioning = true{', filename = true' if filename else ''})"


def check_readers(table: Path, truth: dict) -> None:
    by_reader = {
        "pandas.read_parquet(dir)": read_pandas(table),
        'pyarrow.dataset.dataset(dir, partitioning="hive")': read_pyarrow(table),
        "polars.scan_parquet(dir, hive_partitioning=True)": read_polars(table),
        "duckdb read_parquet('dir/**/*.parquet', hive_partitioning = true)": duck(f"SELECT * FROM {duck_source(table)}"),
    }
    for label, (names, rows) in by_reader.items():
        if sorted(names) != sorted(ALL) or [n for n in names if n in COLUMNS] != COLUMNS:
            fail(f"{label}: columns {names}, expected the files' {COLUMNS} and the partition keys {PARTITION_KEYS}")
        compare(label, keyed(label, rows, ALL), truth, ALL)

    # The partition columns' types, reader by reader.
    schema = ds.dataset(table, partitioning="hive").schema
    if schema.field("ticker").type != pa.string() or not pa.types.is_integer(schema.field("year").type):
        fail(f"pyarrow dataset: ticker {schema.field('ticker').type}, year {schema.field('year').type}")
    for (name, glue), field in zip(CONTRACT, schema):
        if field.type != ARROW[glue]:
            fail(f"pyarrow dataset: {name} is {field.type}, expected {ARROW[glue]}")
    pls = pl.scan_parquet(table, hive_partitioning=True).collect_schema()
    if pls["ticker"] != pl.String or not pls["year"].is_integer():
        fail(f"polars: ticker {pls['ticker']}, year {pls['year']}")
    types = {r["column_name"]: r["column_type"] for r in duck(f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM {duck_source(table)})")[1]}
    if types["ticker"] != "VARCHAR" or types["year"] not in ("BIGINT", "INTEGER"):
        fail(f"duckdb: ticker {types['ticker']}, year {types['year']}")
    df = pd.read_parquet(table)
    if not all(isinstance(t, str) for t in df["ticker"].unique()) or not pd.api.types.is_integer_dtype(df["year"].dtype.categories if isinstance(df["year"].dtype, pd.CategoricalDtype) else df["year"]):
        fail(f"pandas: ticker {df['ticker'].dtype}, year {df['year'].dtype}")


# ------------------------------------------------------------ 4. partitions
def check_partition_pruning(table: Path, truth: dict, files_of: dict) -> None:
    dataset = ds.dataset(table, partitioning="hive")
    for ticker in [t for t, _ in SYNTHETIC] + sorted({t for t, _ in truth} - {t for t, _ in SYNTHETIC})[:1]:
        want_rows = {k: r for k, r in truth.items() if k[0] == ticker}
        want_files = sorted(files_of[ticker])
        expr = ds.field("ticker") == ticker
        frags = sorted(Path(f.path).relative_to(table).as_posix() for f in dataset.get_fragments(filter=expr))
        if frags != want_files:
            fail(f"pyarrow dataset filter ticker == {ticker!r}: fragments {frags}, expected {want_files}")
        label = f"pyarrow dataset filter ticker == {ticker!r}"
        compare(label, keyed(label, read_pyarrow(table, filter=expr)[1], ALL), want_rows, ALL)

        # pandas hands its filters to pyarrow as this expression; the
        # fragments it keeps are the files pandas reads.
        pandas_expr = pq.filters_to_expression([("ticker", "=", ticker)])
        files = sorted(Path(f.path).relative_to(table).as_posix() for f in dataset.get_fragments(filter=pandas_expr))
        if files != want_files:
            fail(f"pandas filters [('ticker', '=', {ticker!r})] ({pandas_expr}): files {files}, expected {want_files}")
        label = f"pandas.read_parquet(dir, filters=[('ticker', '=', {ticker!r})])"
        compare(label, keyed(label, read_pandas(table, filters=[("ticker", "=", ticker)])[1], ALL), want_rows, ALL)

        label = f"polars filter ticker == {ticker!r}"
        compare(label, keyed(label, read_polars(table, predicate=pl.col("ticker") == ticker)[1], ALL), want_rows, ALL)

        _, rows = duck(f"SELECT DISTINCT filename FROM {duck_source(table, filename=True)} WHERE ticker = ?", ticker)
        read = sorted(Path(r["filename"]).relative_to(table).as_posix() for r in rows)
        if read != want_files:
            fail(f"duckdb WHERE ticker = {ticker!r}: read {read}, expected {want_files}")
        label = f"duckdb WHERE ticker = {ticker!r}"
        compare(label, keyed(label, duck(f"SELECT * FROM {duck_source(table)} WHERE ticker = ?", ticker)[1], ALL), want_rows, ALL)


# ------------------------------------------------------------ 5. dates
def check_date_pruning(table: Path, truth: dict, spans: dict) -> int:
    """spans: relative file path -> (year, first date, last date). Returns
    the number of date ranges checked."""
    dataset = ds.dataset(table, partitioning="hive")
    ranges = set()
    for year, first, last in spans.values():
        if first > dt.date(year, 1, 1):
            ranges.add((dt.date(year, 1, 1), first - DAY))
        if last < dt.date(year, 12, 31):
            ranges.add((last + DAY, dt.date(year, 12, 31)))
        ranges.add((first, first))
    same_year_skips = 0
    shown = None
    for lo, hi in sorted(ranges):
        expr = (ds.field("date") >= pa.scalar(lo, pa.date32())) & (ds.field("date") <= pa.scalar(hi, pa.date32()))
        kept, scanned_rows = [], 0
        for frag in dataset.get_fragments(filter=expr):
            for piece in frag.split_by_row_group(expr, schema=dataset.schema):
                kept.append(Path(frag.path).relative_to(table).as_posix())
                scanned_rows += ds.Scanner.from_fragment(piece, schema=dataset.schema, filter=expr).count_rows()
        want = sorted(p for p, (_, first, last) in spans.items() if first <= hi and last >= lo)
        if sorted(kept) != want:
            fail(f"date {lo}..{hi}: the statistics kept the row groups of {sorted(kept)}, expected {want}")
        want_rows = {k: r for k, r in truth.items() if lo <= k[1] <= hi}
        if scanned_rows != len(want_rows):
            fail(f"date {lo}..{hi}: the kept row groups hold {scanned_rows} rows in range, expected {len(want_rows)}")
        label = f"pyarrow dataset filter date {lo}..{hi}"
        compare(label, keyed(label, read_pyarrow(table, filter=expr)[1], ALL), want_rows, ALL)
        skipped_same_year = [p for p, (year, _, _) in spans.items() if p not in want and year == lo.year == hi.year]
        if skipped_same_year and want:
            same_year_skips += 1
            shown = shown or (lo, hi, want_rows)
    if not same_year_skips:
        fail("no date range skipped a file of its own year: pruning by statistics not shown (lake too regular?)")

    # The other readers filter the same rows.
    lo, hi, want_rows = shown
    for label, rows in [
        ("pandas filters date", read_pandas(table, filters=[("date", ">=", lo), ("date", "<=", hi)])[1]),
        ("polars filter date", read_polars(table, predicate=pl.col("date").is_between(lo, hi))[1]),
        ("duckdb WHERE date", duck(f"SELECT * FROM {duck_source(table)} WHERE date BETWEEN ? AND ?", lo, hi)[1]),
    ]:
        compare(f"{label} {lo}..{hi}", keyed(label, rows, ALL), want_rows, ALL)
    return len(ranges)


# ------------------------------------------------------------ 6. projection
def check_reader_projection(table: Path, truth: dict) -> None:
    sub = {k: {c: r[c] for c in READER_COLUMNS} for k, r in truth.items()}
    for label, (names, rows) in {
        "pandas.read_parquet(dir, columns=...)": read_pandas(table, columns=READER_COLUMNS),
        "pyarrow dataset to_table(columns=...)": read_pyarrow(table, columns=READER_COLUMNS),
        "polars select(...)": read_polars(table, columns=READER_COLUMNS),
        "duckdb SELECT ticker, date, close, rsi": duck(f"SELECT ticker, date, close, rsi FROM {duck_source(table)}"),
    }.items():
        if list(names) != READER_COLUMNS:
            fail(f"{label}: columns {list(names)}, expected {READER_COLUMNS}")
        compare(label, keyed(label, rows, READER_COLUMNS), sub, READER_COLUMNS)


# ------------------------------------------------------------ 7. warehouse
def check_warehouse(db: str, truth: dict) -> int:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        cur = con.execute(f"SELECT {', '.join(['ticker'] + COLUMNS)} FROM fact_market_data")
        names = [d[0] for d in cur.description]
        wh = {(r[0], r[1]): dict(zip(names, r)) for r in cur}
    finally:
        con.close()
    lake = {(t, d.isoformat()): r for (t, d), r in truth.items()}
    if set(wh) != set(lake):
        fail(f"warehouse has {len(wh)} rows, lake {len(lake)}; differ on {sorted(set(wh) ^ set(lake))[:5]}")
    for key, lr in lake.items():
        for col in ["ticker"] + COLUMNS:
            a, b = lr[col], wh[key][col]
            if col == "date":
                a = a.isoformat()
            if a != b or (isinstance(a, float) and not isinstance(b, float)):
                fail(f"{key} {col}: lake {a!r}, warehouse {b!r}")
    return len(wh)


# ------------------------------------------------------------ 8. Glue
GLUE_OF_ARROW = {str(t): g for g, t in ARROW.items()}


def check_glue_table(files: list[Path]) -> str:
    tables = {k: r for k, r in (load_template().get("Resources") or {}).items() if r.get("Type") == "AWS::Glue::Table"}
    if len(tables) != 1:
        fail(f"template.yaml: {len(tables)} AWS::Glue::Table, expected 1")
    (tid, t), = tables.items()
    ti = t["Properties"]["TableInput"]
    glue = [(c["Name"], str(c["Type"]).lower()) for c in ti["StorageDescriptor"]["Columns"]]
    for path in files:
        schema = pq.read_schema(path)
        written = [(f.name, GLUE_OF_ARROW.get(str(f.type), f"no Glue type for {f.type}")) for f in schema]
        if glue != written:
            diff = [(i, g, w) for i, (g, w) in enumerate(zip(glue, written)) if g != w][:3]
            fail(f"template.yaml {tid}: columns differ from the schema of {path.name} in {path.parent}: {len(glue)} vs {len(written)} columns; first differences {diff}")
    keys = [(k["Name"], str(k["Type"]).lower()) for k in ti["PartitionKeys"]]
    part = ds.dataset(files[0].parent.parent.parent, partitioning="hive").partitioning.schema
    found = [(f.name, "int" if pa.types.is_integer(f.type) else "string" if f.type == pa.string() else str(f.type)) for f in part]
    if keys != found:
        fail(f"template.yaml {tid}: partition keys {keys}, the folder's Hive partitioning is {found}")
    return tid


# ------------------------------------------------------------ main
def snapshot(root: Path) -> list[tuple[str, int, int]]:
    return sorted((p.relative_to(root).as_posix(), p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file())


def main() -> None:
    if len(sys.argv) != 3:
        print(__doc__.split("\n\n")[1])
        sys.exit(2)
    data, db = Path(sys.argv[1]), sys.argv[2]
    table = data / "curated" / "market_data"
    before = snapshot(data / "curated")
    files = sorted(table.glob("ticker=*/year=*/part-0.parquet"))
    if not files:
        fail(f"no curated files under {table}")
    strays = [p.relative_to(table).as_posix() for p in table.rglob("*") if p.is_file() and p not in files and not any(part.startswith((".", "_")) for part in p.relative_to(table).parts)]
    if strays:
        fail(f"files other than ticker=*/year=*/part-0.parquet under the table (readers would read them): {strays[:5]}")

    # 1. every file on its own.
    real: dict = {}
    spans: dict = {}
    for path in files:
        rel = path.relative_to(table).as_posix()
        rows = check_file(path, rel)
        check_projection_reads(path, rel)
        spans[rel] = (rows[0]["year"], rows[0]["date"], rows[-1]["date"])
        for r in rows:
            real[(r["ticker"], r["date"])] = r

    with tempfile.TemporaryDirectory(prefix="check_lake-") as tmp:
        # 2. a copy of the table with two tickers that need decoding.
        copy = Path(tmp) / "market_data"
        shutil.copytree(table, copy)
        truth = dict(real)
        files_of: dict = {}
        for p in spans:
            files_of.setdefault(unquote(p.split("/")[0].removeprefix("ticker=")), []).append(p)
        sources = [p for p in sorted(spans) if spans[p][0] == SYNTHETIC_YEAR] or sorted(spans)
        for i, (ticker, folder) in enumerate(SYNTHETIC):
            src = sources[i % len(sources)]
            year = spans[src][0]
            dest = f"{folder}/year={year}/part-0.parquet"
            (copy / dest).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(table / src, copy / dest)
            src_ticker = unquote(src.split("/")[0].removeprefix("ticker="))
            # A partition of that ticker and year already in the lake is replaced.
            truth = {k: r for k, r in truth.items() if not (k[0] == ticker and r["year"] == year)}
            for (t, d), r in real.items():
                if t == src_ticker and r["year"] == year:
                    truth[(ticker, d)] = dict(r, ticker=ticker)
            files_of[ticker] = sorted(set(files_of.get(ticker, [])) | {dest})
            spans[dest] = spans[src]

        # 3-6. the readers on the copy.
        check_readers(copy, truth)
        check_partition_pruning(copy, truth, files_of)
        n_ranges = check_date_pruning(copy, truth, spans)
        check_reader_projection(copy, truth)

    # 7. the warehouse holds the real tickers' rows.
    n_wh = check_warehouse(db, real)
    # 8. the Athena table describes the files the transform wrote.
    tid = check_glue_table(files)

    if snapshot(data / "curated") != before:
        fail(f"{data / 'curated'} changed while it was read")
    tickers = sorted({t for t, _ in real})
    print(
        f"ok: {len(files)} files ({', '.join(tickers)}), {len(real)} rows; snappy, one row group with statistics, "
        f"no ticker column, plain string; pandas {pd.__version__}, pyarrow {pa.__version__}, polars {pl.__version__} "
        f"and duckdb {duckdb.__version__} read the folder with ^GSPC and EURUSD=X decoded ({len(truth)} rows); "
        f"ticker filters prune files; {n_ranges} date ranges pruned by statistics; 4-column reads touch only their chunks; "
        f"warehouse equal ({n_wh} rows); Glue table {tid} matches the files"
    )


if __name__ == "__main__":
    main()
