-- Warehouse fact table of the market data pipeline (DESIGN.md section 6),
-- Amazon Redshift.
--
-- Placeholders, substituted by mdp-warehouse at run time (Warehouse::migrate):
--   {schema}  WAREHOUSE_SCHEMA             (default public)
--   {table}   WAREHOUSE_TABLE_MARKET_DATA  (default fact_market_data)
--   {prefix}  the table name cut to 40 characters, for the constraint name
-- All are plain SQL identifiers (checked by the configuration) and are always
-- double-quoted here. Every statement is idempotent.
--
-- Columns in contract order (mdp_core::row::COLUMNS), the order of the
-- curated Parquet files too: COPY … FORMAT AS PARQUET maps file columns to
-- table columns by position. Types match the Parquet types the transform
-- writes: DATE, DOUBLE (every f64 exactly), INT64, UTF8 strings, and UTC
-- microsecond timestamps.
--
-- Distribution and sort: every load and every query works on one ticker's
-- rows by date, so the rows are distributed by ticker (a load's staging
-- table, created LIKE this one, joins its target without redistribution) and
-- sorted by (ticker, date). Redshift has no secondary indexes: the sort key
-- replaces the (ticker), (date DESC), (ticker, date DESC) indexes of the
-- Postgres warehouse. The unique constraint is informational only (Redshift
-- does not enforce it; the loader guarantees it: see src/redshift.rs).
--
-- Text: VARCHAR lengths count bytes. Codes (currency, exchange, instrument
-- type) get 256; the free-text names get the maximum, 65535, so that no name
-- the source sends can ever make a COPY fail.

CREATE SCHEMA IF NOT EXISTS "{schema}";

CREATE TABLE IF NOT EXISTS "{schema}"."{table}" (
    "ticker"               VARCHAR(16)      NOT NULL,
    "date"                 DATE             NOT NULL,
    "open"                 DOUBLE PRECISION,
    "high"                 DOUBLE PRECISION,
    "low"                  DOUBLE PRECISION,
    "close"                DOUBLE PRECISION,
    "adj_close"            DOUBLE PRECISION,
    "volume"               BIGINT,
    "sma_7"                DOUBLE PRECISION,
    "sma_14"               DOUBLE PRECISION,
    "sma_20"               DOUBLE PRECISION,
    "ema_12"               DOUBLE PRECISION,
    "macd"                 DOUBLE PRECISION,
    "macd_signal"          DOUBLE PRECISION,
    "macd_histogram"       DOUBLE PRECISION,
    "rsi"                  DOUBLE PRECISION,
    "bb_upper"             DOUBLE PRECISION,
    "bb_middle"            DOUBLE PRECISION,
    "bb_lower"             DOUBLE PRECISION,
    "volatility_20d"       DOUBLE PRECISION,
    "daily_return"         DOUBLE PRECISION,
    "daily_return_pct"     DOUBLE PRECISION,
    "currency"             VARCHAR(256),
    "exchange"             VARCHAR(256),
    "instrument_type"      VARCHAR(256),
    "regular_market_price" DOUBLE PRECISION,
    "fifty_two_week_high"  DOUBLE PRECISION,
    "fifty_two_week_low"   DOUBLE PRECISION,
    "long_name"            VARCHAR(65535),
    "short_name"           VARCHAR(65535),
    "created_at"           TIMESTAMPTZ      NOT NULL,
    "updated_at"           TIMESTAMPTZ      NOT NULL,
    CONSTRAINT "uq_{prefix}_ticker_date" UNIQUE ("ticker", "date")
)
DISTSTYLE KEY
DISTKEY ("ticker")
COMPOUND SORTKEY ("ticker", "date");
