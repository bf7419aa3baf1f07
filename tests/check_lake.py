#!/usr/bin/env python3
"""Reads a pipeline lake with pyarrow and duckdb, exactly as written, and
checks it against DESIGN.md section 4 and the SQLite warehouse.

usage: check_lake.py LAKE_DIR SQLITE_DB

Checks: every curated file is snappy Parquet with the contract columns in
order and the contract types (DATE, INT64 volume, DOUBLE prices and
indicators, UTF8 text); rows sorted and unique per date; Hive folders decode
to the ticker; duckdb reads the same rows; the warehouse holds exactly the
lake's rows (all columns, floats compared exactly).
"""
import sqlite3
import sys
from pathlib import Path
from urllib.parse import unquote

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

COLUMNS = """ticker date open high low close adj_close volume sma_7 sma_14 sma_20 ema_12 macd
macd_signal macd_histogram rsi bb_upper bb_middle bb_lower volatility_20d daily_return
daily_return_pct currency exchange instrument_type regular_market_price fifty_two_week_high
fifty_two_week_low long_name short_name created_at updated_at""".split()
TEXT = {"ticker", "currency", "exchange", "instrument_type", "long_name", "short_name"}


def fail(msg):
    print(f"FAIL: {msg}")
    sys.exit(1)


def check_types(path, schema):
    if schema.names != COLUMNS:
        fail(f"{path}: columns {schema.names}")
    for field in schema:
        t = field.type
        if field.name == "date":
            ok = t == pa.date32()
        elif field.name == "volume":
            ok = t == pa.int64()
        elif field.name in TEXT:
            ok = pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)
        elif field.name in ("created_at", "updated_at"):
            ok = pa.types.is_timestamp(t) and t.tz in ("UTC", "+00:00")
        else:
            ok = t == pa.float64()
        if not ok:
            fail(f"{path}: column {field.name} has type {t}")


def main():
    lake, db = Path(sys.argv[1]), sys.argv[2]
    files = sorted((lake / "curated" / "market_data").glob("ticker=*/year=*/part-0.parquet"))
    if not files:
        fail("no curated files")
    lake_rows = {}
    for path in files:
        meta = pq.ParquetFile(path).metadata
        for rg in range(meta.num_row_groups):
            for c in range(meta.num_columns):
                codec = meta.row_group(rg).column(c).compression
                if codec != "SNAPPY":
                    fail(f"{path}: column {c} compressed with {codec}")
        table = pq.read_table(path)
        check_types(path, table.schema)
        ticker = unquote(path.parent.parent.name.removeprefix("ticker="))
        year = int(path.parent.name.removeprefix("year="))
        rows = table.to_pylist()
        dates = [r["date"] for r in rows]
        if dates != sorted(set(dates)):
            fail(f"{path}: dates not sorted and unique")
        for r in rows:
            if r["ticker"] != ticker or r["date"].year != year:
                fail(f"{path}: row {r['ticker']} {r['date']} outside its partition")
            if r["close"] is None:
                fail(f"{path}: row without close")
            for k, v in r.items():
                if isinstance(v, float) and v != v:
                    fail(f"{path}: NaN in {k}")
            lake_rows[(r["ticker"], r["date"].isoformat())] = r

    # The whole folder at once: the ticker is both a file column and a folder
    # name, so pyarrow reads it with the folder names ignored.
    whole = pq.read_table(lake / "curated" / "market_data", partitioning=None)
    if whole.num_rows != len(lake_rows):
        fail(f"pyarrow read {whole.num_rows} rows from the folder, {len(lake_rows)} from the files")

    # duckdb reads the same files, with Hive partition decoding.
    glob = str(lake / "curated" / "market_data" / "*" / "*" / "*.parquet")
    n = duckdb.sql(f"select count(*) from read_parquet('{glob}')").fetchall()[0][0]
    if n != len(lake_rows):
        fail(f"duckdb counted {n} rows, pyarrow {len(lake_rows)}")
    hive = duckdb.sql(
        f"select distinct ticker from read_parquet('{glob}', hive_partitioning = true) order by 1"
    ).fetchall()
    if sorted(t for (t,) in hive) != sorted({t for (t, _) in lake_rows}):
        fail(f"duckdb hive tickers {hive}")

    con = sqlite3.connect(db)
    cur = con.execute(f"select {', '.join(COLUMNS)} from fact_market_data order by ticker, date")
    wh = {(r[0], r[1]): dict(zip(COLUMNS, r)) for r in cur}
    if set(wh) != set(lake_rows):
        fail(f"warehouse has {len(wh)} rows, lake {len(lake_rows)}; differ on {sorted(set(wh) ^ set(lake_rows))[:5]}")
    for key, lr in lake_rows.items():
        wr = wh[key]
        for col in COLUMNS:
            a, b = lr[col], wr[col]
            if col == "date":
                a = a.isoformat()
            elif col in ("created_at", "updated_at"):
                a = a.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            if a != b:
                fail(f"{key} {col}: lake {a!r} warehouse {b!r}")
    print(f"ok: {len(files)} files, {len(lake_rows)} rows, snappy, contract columns and types, warehouse equal")


if __name__ == "__main__":
    main()
