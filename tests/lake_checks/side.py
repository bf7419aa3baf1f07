"""Check 9: the per-ticker side files (corporate actions, quality findings,
quarantined bars) read like the curated table: a folder of
ticker=<enc>/part-0.parquet files that pandas and pyarrow read with no
argument but the path, the ticker decoded from the folder name, no column
that clashes with it, plain `string` text and date32 dates."""
from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from lake_checks.common import fail

SIDE_TABLES = {
    "curated/corporate_actions": ["date", "kind", "amount", "ratio", "numerator", "denominator"],
    "quality/findings": ["date", "rule", "detail"],
    "quarantine/market_data": [
        "date", "open", "high", "low", "close", "adj_close", "volume",
        "rules", "detail", "raw_key", "quarantined_at",
    ],
}


def check_side_tables(data: Path) -> dict[str, int]:
    """Rows per side table found under `data` (tables with no file are skipped)."""
    counts: dict[str, int] = {}
    for rel, columns in SIDE_TABLES.items():
        table = data / rel
        files = sorted(table.glob("ticker=*/part-0.parquet"))
        if not files:
            continue
        expected_rows = 0
        for path in files:
            schema = pq.read_schema(path)
            if schema.names != columns:
                fail(f"{path}: columns {schema.names}, expected {columns}")
            for field in schema:
                if field.type in (pa.string_view(), pa.large_string()):
                    fail(f"{path}: {field.name} is {field.type}, not plain string")
            if schema.field("date").type != pa.date32():
                fail(f"{path}: date is {schema.field('date').type}")
            expected_rows += pq.read_metadata(path).num_rows
        frame = pd.read_parquet(table)
        if len(frame) != expected_rows:
            fail(f"pandas read {len(frame)} rows of {rel}, the files hold {expected_rows}")
        tickers = {unquote(p.parent.name.removeprefix("ticker=")) for p in files}
        if set(frame["ticker"].astype(str)) - tickers:
            fail(f"{rel}: tickers {set(frame['ticker'].astype(str))} not decoded from {tickers}")
        dataset = ds.dataset(table, partitioning="hive")
        if dataset.count_rows() != expected_rows:
            fail(f"pyarrow read {dataset.count_rows()} rows of {rel}, expected {expected_rows}")
        counts[rel] = expected_rows
    return counts
