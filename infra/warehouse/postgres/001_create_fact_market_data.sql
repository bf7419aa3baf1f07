-- Warehouse fact table of the market data pipeline (DESIGN.md section 6), Postgres.
--
-- Placeholders, substituted by mdp-warehouse at run time (Warehouse::migrate):
--   {schema}  WAREHOUSE_SCHEMA             (default public)
--   {table}   WAREHOUSE_TABLE_MARKET_DATA  (default fact_market_data)
--   {prefix}  the table name cut to 40 characters, for constraint and index
--             names (Postgres truncates names to 63 bytes)
-- All are plain SQL identifiers (checked by the configuration) and are always
-- double-quoted here. Every statement is idempotent.
--
-- Columns in contract order (mdp_core::row::COLUMNS). Values round-trip
-- exactly: DOUBLE PRECISION holds every f64, TIMESTAMPTZ keeps microseconds.

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
    "currency"             TEXT,
    "exchange"             TEXT,
    "instrument_type"      TEXT,
    "regular_market_price" DOUBLE PRECISION,
    "fifty_two_week_high"  DOUBLE PRECISION,
    "fifty_two_week_low"   DOUBLE PRECISION,
    "long_name"            TEXT,
    "short_name"           TEXT,
    "created_at"           TIMESTAMPTZ      NOT NULL,
    "updated_at"           TIMESTAMPTZ      NOT NULL,
    CONSTRAINT "uq_{prefix}_ticker_date" UNIQUE ("ticker", "date")
);

-- Indexes of the original tuning guide.
CREATE INDEX IF NOT EXISTS "idx_{prefix}_ticker" ON "{schema}"."{table}" ("ticker");
CREATE INDEX IF NOT EXISTS "idx_{prefix}_date" ON "{schema}"."{table}" ("date" DESC);
CREATE INDEX IF NOT EXISTS "idx_{prefix}_ticker_date" ON "{schema}"."{table}" ("ticker", "date" DESC);
