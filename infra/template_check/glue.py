"""Checks of the Athena side of the lake: the Glue database and the table over
the curated zone, queried with no crawler through partition projection.

- one AWS::Glue::Database, named <stack name>_lake with "-" as "_" (a name
  Athena takes unquoted), and no AWS::Glue::Crawler;
- one AWS::Glue::Table in it, named market_data, an EXTERNAL_TABLE at the
  curated zone of the functions' lake (MARKET_DATA_LAKE_URI +
  /curated/market_data/), Parquet input/output formats and SerDe;
- its columns are exactly the curated file's columns (DESIGN.md sections 4
  and 6: the Postgres DDL's list less the partition keys, see
  expected.lake_file_columns), in order, with their Glue types; its
  partition keys are ticker (string) then year (int);
- partition projection: enabled, year an integer range from 1970 (or
  earlier) to 2100 (or later), ticker an enum whose values are the
  partition values of the Tickers parameter as the lake writes them in the
  path (DESIGN.md section 4 percent-encoding), for every character Tickers'
  AllowedPattern lets through, and storage.location.template the table's
  location + ticker=${ticker}/year=${year}/.

tests/check_lake.py compares the same columns with the schema of files the
transform wrote.
"""

from __future__ import annotations

import re
import string
from typing import Any

from .cfn import Context, Unresolvable, as_list, check, referenced
from .expected import CURATED_TABLE_KEY, LAKE_PARTITION_KEYS, LAKE_PREFIX, lake_file_columns

PARQUET_INPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
PARQUET_OUTPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
TABLE_NAME = "market_data"
# The projected years must reach back to this one and forward to that one.
FIRST_YEAR = 1970
LAST_YEAR = 2100
# DESIGN.md section 4: every character outside these is percent-encoded in
# the partition value (UTF-8 bytes, upper-case hex).
UNENCODED = set(string.ascii_letters + string.digits + "._-")


def partition_value(ticker: str) -> str:
    """The ticker's partition value in the path, as the lake writes it."""
    return "".join(c if c in UNENCODED else "".join(f"%{b:02X}" for b in c.encode()) for c in ticker)


def database_name(stack: str) -> str:
    """The Glue database the README names for a stack."""
    return stack.replace("-", "_") + "_lake"


def check_glue(ctx: Context) -> None:
    """Records in ctx.glue_table the table's <database>.<table> (default stack name)."""
    res = ctx.res
    crawlers = sorted(k for k, v in res.items() if v["Type"] == "AWS::Glue::Crawler")
    check(not crawlers, f"Glue crawlers {crawlers}: partition projection makes them unnecessary (and a crawler would rewrite the table)")

    dbs = {k: v.get("Properties") or {} for k, v in res.items() if v["Type"] == "AWS::Glue::Database"}
    tables = {k: v.get("Properties") or {} for k, v in res.items() if v["Type"] == "AWS::Glue::Table"}
    if not check(len(dbs) == 1, f"{len(dbs)} AWS::Glue::Database, expected 1 (the lake's, for Athena)"):
        return
    (db_id, db), = dbs.items()
    check(db.get("CatalogId") == {"Ref": "AWS::AccountId"}, f"{db_id}: CatalogId is not the stack's account")
    db_input = db.get("DatabaseInput") or {}
    db_name = None
    for stack in ("mdp", "My-Market-Data-2"):
        try:
            got = ctx.resolve(db_input.get("Name"), dict(ctx.params, **{"AWS::StackName": stack}))
        except Unresolvable as e:
            check(False, f"{db_id}: DatabaseInput.Name not understood ({e})")
            break
        want = database_name(stack)
        check(got == want, f"{db_id}: database name for stack {stack!r} is {got!r}, expected {want!r} (the README names it so)")
        check(
            isinstance(got, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,254}", got),
            f"{db_id}: database name {got!r} for stack {stack!r} is not letters, digits and underscores (Athena would need it quoted)",
        )
        if stack == "mdp":
            db_name = got

    if not check(len(tables) == 1, f"{len(tables)} AWS::Glue::Table, expected 1 (the curated zone)"):
        return
    (tid, t), = tables.items()
    check(t.get("CatalogId") == {"Ref": "AWS::AccountId"}, f"{tid}: CatalogId is not the stack's account")
    check(referenced(t.get("DatabaseName")) == {db_id}, f"{tid}: DatabaseName is not Ref {db_id}")
    ti = t.get("TableInput") or {}
    check(ti.get("Name") == TABLE_NAME, f"{tid}: Name {ti.get('Name')!r}, expected {TABLE_NAME!r}")
    check(ti.get("TableType") == "EXTERNAL_TABLE", f"{tid}: TableType {ti.get('TableType')!r}, expected EXTERNAL_TABLE (the files belong to the lake)")
    ctx.glue_table = f"{db_name}.{ti.get('Name')}"
    sd = ti.get("StorageDescriptor") or {}

    # Location: the curated zone of the lake the functions write.
    lake_uri = (((ctx.sam.get("Globals") or {}).get("Function") or {}).get("Environment") or {}).get("Variables", {}).get("MARKET_DATA_LAKE_URI")
    try:
        lake = str(ctx.resolve(lake_uri))
        location = str(ctx.resolve(sd.get("Location")))
    except Unresolvable as e:
        check(False, f"{tid}: Location not understood ({e})")
        return
    want_location = f"{lake.rstrip('/')}/{CURATED_TABLE_KEY}"
    check(lake == f"s3://<LakeBucket>/{LAKE_PREFIX}", f"the functions' MARKET_DATA_LAKE_URI is {lake!r}, expected s3://<LakeBucket>/{LAKE_PREFIX}")
    check(location == want_location, f"{tid}: Location {location!r}, expected the curated zone {want_location!r}")

    # Parquet.
    check(sd.get("InputFormat") == PARQUET_INPUT, f"{tid}: InputFormat {sd.get('InputFormat')!r}, expected {PARQUET_INPUT}")
    check(sd.get("OutputFormat") == PARQUET_OUTPUT, f"{tid}: OutputFormat {sd.get('OutputFormat')!r}, expected {PARQUET_OUTPUT}")
    serde = (sd.get("SerdeInfo") or {}).get("SerializationLibrary")
    check(serde == PARQUET_SERDE, f"{tid}: SerDe {serde!r}, expected {PARQUET_SERDE}")

    # Columns: the file's, in order, with their Glue types.
    want_columns = lake_file_columns()
    got_columns = [(c.get("Name"), str(c.get("Type", "")).lower()) for c in as_list(sd.get("Columns") or [])]
    if got_columns != want_columns:
        got_names, want_names = [c[0] for c in got_columns], [c[0] for c in want_columns]
        missing = [n for n in want_names if n not in got_names]
        extra = [n for n in got_names if n not in want_names]
        check(not missing, f"{tid}: columns missing: {missing}")
        check(not extra, f"{tid}: columns not in the curated files: {extra}")
        if not missing and not extra:
            check(got_names == want_names, f"{tid}: columns out of the files' order: {got_names}")
        want_types = dict(want_columns)
        for name, ty in got_columns:
            if name in want_types:
                check(ty == want_types[name], f"{tid}: column {name} has type {ty!r}, expected {want_types[name]!r}")
    keys = [(k.get("Name"), str(k.get("Type", "")).lower()) for k in as_list(ti.get("PartitionKeys") or [])]
    check(keys == LAKE_PARTITION_KEYS, f"{tid}: PartitionKeys {keys}, expected {LAKE_PARTITION_KEYS} (the path's ticker=/year=)")

    check_projection(ctx, tid, ti.get("Parameters") or {}, location)


def check_projection(ctx: Context, tid: str, params: dict[str, Any], location: str) -> None:
    def prop(name: str, p: dict[str, Any] | None = None) -> str | None:
        value = params.get(name)
        if value is None:
            return None
        try:
            return str(ctx.resolve(value, p))
        except Unresolvable as e:
            check(False, f"{tid}: {name} not understood ({e})")
            return None

    check((prop("projection.enabled") or "").strip().lower() == "true", f"{tid}: projection.enabled is not \"true\" (Athena would need partitions added or crawled)")
    keys = [k for k, _ in LAKE_PARTITION_KEYS]
    for name in params:
        m = re.fullmatch(r"projection\.(.+)\.(type|values|range|interval|digits|format)", name)
        if m:
            check(m.group(1) in keys, f"{tid}: {name} projects {m.group(1)!r}, not a partition key")

    # year: every year the lake can hold.
    check((prop("projection.year.type") or "").strip().lower() == "integer", f"{tid}: projection.year.type is not integer")
    rng = prop("projection.year.range") or ""
    m = re.fullmatch(r"\s*(-?\d+)\s*,\s*(-?\d+)\s*", rng)
    check(
        m and int(m.group(1)) <= FIRST_YEAR and int(m.group(2)) >= LAST_YEAR,
        f"{tid}: projection.year.range {rng!r}, expected from {FIRST_YEAR} (or earlier) to {LAST_YEAR} (or later)",
    )
    digits = prop("projection.year.digits")
    check(digits in (None, "4"), f"{tid}: projection.year.digits {digits!r}: the lake's year folders have 4 digits")
    check(prop("projection.year.interval") in (None, "1"), f"{tid}: projection.year.interval must be 1 (every year)")

    # ticker: the Tickers parameter, spelled as the lake's paths spell it.
    check((prop("projection.ticker.type") or "").strip().lower() == "enum", f"{tid}: projection.ticker.type is not enum")
    pattern = ctx.sam["Parameters"]["Tickers"].get("AllowedPattern", ".*")
    cases = ["AAPL", "AAPL,MSFT", " AAPL , MSFT ", "^GSPC,EURUSD=X,BRK-B,ES=F,BRK.B", "^GSPC", "EURUSD=X, ^N225 ,GC=F"]
    # Every character the pattern lets into a ticker, alone and beside others.
    cases += [f"A{c}" for c in map(chr, range(32, 127)) if re.fullmatch(pattern, f"A{c}") and c != " "]
    for value in cases:
        if not check(re.fullmatch(pattern, value), f"Tickers AllowedPattern rejects {value!r}"):
            continue
        got = prop("projection.ticker.values", dict(ctx.params, Tickers=value))
        if got is None:
            check(False, f"{tid}: no projection.ticker.values")
            break
        want = ",".join(partition_value(t.strip()) for t in value.split(","))
        check(got == want, f"{tid}: projection.ticker.values for Tickers={value!r} is {got!r}, expected the lake's partition values {want!r}")

    template = prop("storage.location.template")
    want = f"{location}ticker=${{ticker}}/year=${{year}}/"
    check(template == want, f"{tid}: storage.location.template {template!r}, expected {want!r}")
