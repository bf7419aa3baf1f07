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
9. The side tables (curated/corporate_actions, quality/findings,
   quarantine/market_data; ticker=<enc>/part-0.parquet) have their columns,
   plain strings and date32 dates, and pandas and pyarrow read each folder
   with the ticker decoded from the path.

Verified with the versions pinned in tests/requirements.txt (pyarrow 26.0.1,
pandas 3.1.1, polars 2.1.0, duckdb 2.0.1; Python 3.11). The issue asks the
files be readable by pyarrow 12 and newer: the folder was also read by hand
with pyarrow 12.0.1 (pyarrow.dataset with hive partitioning, ^GSPC and
EURUSD=X decoded, ticker filter pruning, date statistics pruning, pandas 2.0.3
read_parquet; the same values as pyarrow 26) in a throwaway virtualenv.
pandas 3.1 needs pyarrow 16 or newer, so 12 is not what this script runs with.

The checks live in tests/lake_checks/ (common, files, readers); this script
reads the arguments, makes the copy of check 2, runs them in order and prints
the result.
"""
from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path
from urllib.parse import unquote

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa

from lake_checks.common import SYNTHETIC, SYNTHETIC_YEAR, fail
from lake_checks.files import check_file, check_glue_table, check_projection_reads, check_warehouse
from lake_checks.side import check_side_tables
from lake_checks.readers import check_date_pruning, check_partition_pruning, check_reader_projection, check_readers


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

    # 9. the side tables (corporate actions, findings, quarantine) read the same way.
    side = check_side_tables(data)

    if snapshot(data / "curated") != before:
        fail(f"{data / 'curated'} changed while it was read")
    tickers = sorted({t for t, _ in real})
    print(
        f"ok: {len(files)} files ({', '.join(tickers)}), {len(real)} rows; snappy, one row group with statistics, "
        f"no ticker column, plain string; pandas {pd.__version__}, pyarrow {pa.__version__}, polars {pl.__version__} "
        f"and duckdb {duckdb.__version__} read the folder with ^GSPC and EURUSD=X decoded ({len(truth)} rows); "
        f"ticker filters prune files; {n_ranges} date ranges pruned by statistics; 4-column reads touch only their chunks; "
        f"warehouse equal ({n_wh} rows); Glue table {tid} matches the files; "
        f"side tables read by pandas and pyarrow: {side}"
    )


if __name__ == "__main__":
    main()
