"""The lake's files on their own and what describes them outside the lake:
check 1 (each curated file's layout, types, statistics and rows;
check_projection_reads, the byte ranges a 4-column read touches), check 7
(the SQLite warehouse holds the same rows) and check 8 (the Glue table of
template.yaml has the files' columns and partition keys).
"""

from __future__ import annotations

import base64
import io
import sqlite3
from pathlib import Path
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from template_check.cfn import load_template
from template_check.glue import partition_value

from .common import ARROW, COLUMNS, CONTRACT, PARQUET, PARTITION_KEYS, PROJECTED, TIMESTAMPS, fail, ts_text


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
