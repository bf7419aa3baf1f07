"""What every check of check_lake.py shares: the lake's contract (the
columns and types of the curated files, from infra/template_check's one list),
the synthetic partitions and projections the checks use, and fail / ts_text /
norm. Importing it puts infra/ on sys.path for template_check.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT / "infra"))
# The template checker's loader and its one list of the lake's columns
# (derived from the Postgres DDL, which the Rust tests tie to schema.rs).
from template_check.expected import LAKE_PARTITION_KEYS, lake_file_columns  # noqa: E402

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
