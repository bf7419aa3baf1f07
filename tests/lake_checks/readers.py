"""The lake read the way its users read it, on the copy with the synthetic
partitions: check 3 (pandas, pyarrow.dataset, polars and duckdb read every
row once, equal to the files), 4 (ticker filters prune files), 5 (date
filters prune row groups by their statistics) and 6 (each reader's
4-column projection).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from .common import ALL, ARROW, COLUMNS, CONTRACT, DAY, PARTITION_KEYS, READER_COLUMNS, SYNTHETIC, fail, norm


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
