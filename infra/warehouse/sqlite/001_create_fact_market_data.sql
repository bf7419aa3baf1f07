-- Warehouse fact table of the market data pipeline (DESIGN.md section 6), SQLite
-- (the embedded default warehouse).
--
-- Placeholders, substituted by mdp-warehouse at run time (Warehouse::migrate):
--   {table}   WAREHOUSE_TABLE_MARKET_DATA  (default fact_market_data)
--   {prefix}  the table name cut to 40 characters, for constraint and index names
-- SQLite has no schemas: WAREHOUSE_SCHEMA is ignored. Every statement is idempotent.
--
-- Columns in contract order (mdp_core::row::COLUMNS). Storage:
--   date                    TEXT 'YYYY-MM-DD'
--   created_at, updated_at  TEXT RFC 3339 UTC with 6 fractional digits,
--                           e.g. 2025-01-02T03:04:05.123456Z (sorts as time)
--   prices, indicators      REAL (every f64 exactly)
--   volume                  INTEGER

CREATE TABLE IF NOT EXISTS "{table}" (
    "ticker"               TEXT    NOT NULL,
    "date"                 TEXT    NOT NULL,
    "open"                 REAL,
    "high"                 REAL,
    "low"                  REAL,
    "close"                REAL,
    "adj_close"            REAL,
    "volume"               INTEGER,
    "sma_7"                REAL,
    "sma_14"               REAL,
    "sma_20"               REAL,
    "ema_12"               REAL,
    "macd"                 REAL,
    "macd_signal"          REAL,
    "macd_histogram"       REAL,
    "rsi"                  REAL,
    "bb_upper"             REAL,
    "bb_middle"            REAL,
    "bb_lower"             REAL,
    "volatility_20d"       REAL,
    "daily_return"         REAL,
    "daily_return_pct"     REAL,
    "currency"             TEXT,
    "exchange"             TEXT,
    "instrument_type"      TEXT,
    "regular_market_price" REAL,
    "fifty_two_week_high"  REAL,
    "fifty_two_week_low"   REAL,
    "long_name"            TEXT,
    "short_name"           TEXT,
    "created_at"           TEXT    NOT NULL,
    "updated_at"           TEXT    NOT NULL,
    CONSTRAINT "uq_{prefix}_ticker_date" UNIQUE ("ticker", "date")
);

-- Indexes of the original tuning guide.
CREATE INDEX IF NOT EXISTS "idx_{prefix}_ticker" ON "{table}" ("ticker");
CREATE INDEX IF NOT EXISTS "idx_{prefix}_date" ON "{table}" ("date" DESC);
CREATE INDEX IF NOT EXISTS "idx_{prefix}_ticker_date" ON "{table}" ("ticker", "date" DESC);
