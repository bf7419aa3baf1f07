#!/usr/bin/env python3
"""Reads the curated table of a lake on S3 the way its users do, with nothing
but its s3:// URL (the endpoint from AWS_ENDPOINT_URL, credentials and region
from the standard AWS_* variables), and checks the rows are the expected ones.

usage: check_lake_s3.py s3://BUCKET/PREFIX/curated/market_data EXPECTED.json

EXPECTED.json is a list of rows, one object per row with every column of the
contract but `year` (tests/lake_checks/common.py: ALL): dates as YYYY-MM-DD,
timestamps as UTC text (ts_text), null for missing values.

1. pandas.read_parquet(url), pyarrow.dataset.dataset(url, partitioning="hive")
   and polars.scan_parquet(url + "/") return exactly the expected rows, once
   each, every column equal (floats exactly), `ticker` decoded from the path
   (e.g. ticker=%5EGSPC is ^GSPC) and `year` an integer partition column.
2. For every ticker, pandas read_parquet(url, filters=[("ticker", "=", t)])
   and a dataset filter return exactly its rows, the dataset's fragments only
   from its own folder.

duckdb is not run: it reads S3 only through its httpfs extension, which is
downloaded on first use. polars (object_store) needs the trailing slash to
list the folder: `s3://…/market_data` alone is read as one object (404).
"""
from __future__ import annotations

import datetime as dt
import json
import sys
from urllib.parse import unquote

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds

from lake_checks.common import ALL, fail
from lake_checks.readers import compare, keyed


def expected_rows(path: str) -> dict:
    truth = {}
    for r in json.load(open(path)):
        r = dict(r, date=dt.date.fromisoformat(r["date"]))
        r["year"] = r["date"].year
        if set(r) != set(ALL):
            fail(f"{path}: row columns {sorted(r)}, expected {sorted(ALL)}")
        truth[(r["ticker"], r["date"])] = r
    if not truth:
        fail(f"{path}: no expected rows")
    return truth


def main() -> None:
    if len(sys.argv) != 3 or not sys.argv[1].startswith("s3://"):
        print(__doc__.split("\n\n")[1])
        sys.exit(2)
    url, truth = sys.argv[1].rstrip("/"), expected_rows(sys.argv[2])
    tickers = sorted({t for t, _ in truth})

    # 1. every reader, the URL alone.
    df = pd.read_parquet(url)
    compare("pandas", keyed("pandas", df.to_dict("records"), ALL), truth, ALL)
    dataset = ds.dataset(url, partitioning="hive")
    compare("pyarrow.dataset", keyed("pyarrow.dataset", dataset.to_table().to_pylist(), ALL), truth, ALL)
    polars_rows = pl.scan_parquet(url + "/", hive_partitioning=True).collect().to_dicts()
    compare("polars", keyed("polars", polars_rows, ALL), truth, ALL)

    # 2. ticker filters.
    for t in tickers:
        want = {k: r for k, r in truth.items() if k[0] == t}
        got = pd.read_parquet(url, filters=[("ticker", "=", t)]).to_dict("records")
        compare(f"pandas filter {t}", keyed(f"pandas filter {t}", got, ALL), want, ALL)
        expr = ds.field("ticker") == t
        got = dataset.to_table(filter=expr).to_pylist()
        compare(f"pyarrow filter {t}", keyed(f"pyarrow filter {t}", got, ALL), want, ALL)
        folders = {unquote(f.path.split("/ticker=")[1].split("/")[0]) for f in dataset.get_fragments(filter=expr)}
        if folders != {t}:
            fail(f"pyarrow filter {t}: fragments of {sorted(folders)}")

    print(
        f"ok: {url}: {len(dataset.files)} files ({', '.join(tickers)}), {len(truth)} rows equal to the expected, "
        f"read by pandas {pd.__version__}, pyarrow {pa.__version__} and polars {pl.__version__} with the URL alone; "
        f"ticker filters return one ticker's rows and files"
    )


if __name__ == "__main__":
    main()
