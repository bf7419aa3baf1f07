-- The tables beside the fact table (issue 12): the corporate actions the
-- chart responses report, the bars quarantined by a hard data-quality rule,
-- and the soft rules' findings. SQLite.
--
-- No placeholders: the table names are fixed and shared by every fact table
-- of the database. Every statement is idempotent (CREATE ... IF NOT EXISTS),
-- so this runs again when one of these tables has been dropped.
--
-- Storage as in 001: dates TEXT 'YYYY-MM-DD', timestamps TEXT RFC 3339 UTC
-- with 6 fractional digits, floats REAL (every f64 exactly), volume INTEGER.

-- Dividends (amount: cash per share) and splits (numerator shares after per
-- denominator shares before; ratio = numerator / denominator).
CREATE TABLE IF NOT EXISTS "fact_corporate_actions" (
    "ticker"      TEXT    NOT NULL,
    "date"        TEXT    NOT NULL,
    "kind"        TEXT    NOT NULL,
    "amount"      REAL,
    "ratio"       REAL,
    "numerator"   REAL,
    "denominator" REAL,
    "created_at"  TEXT    NOT NULL,
    "updated_at"  TEXT    NOT NULL,
    CONSTRAINT "uq_fact_corporate_actions_ticker_date_kind" UNIQUE ("ticker", "date", "kind")
);

-- Bars kept out of the curated zone: every hard rule they break (codes,
-- comma-separated), what was wrong, and the raw response they came in.
CREATE TABLE IF NOT EXISTS "quality_quarantine" (
    "ticker"         TEXT    NOT NULL,
    "date"           TEXT    NOT NULL,
    "raw_key"        TEXT    NOT NULL,
    "rules"          TEXT    NOT NULL,
    "detail"         TEXT    NOT NULL,
    "open"           REAL,
    "high"           REAL,
    "low"            REAL,
    "close"          REAL    NOT NULL,
    "adj_close"      REAL,
    "volume"         INTEGER,
    "quarantined_at" TEXT    NOT NULL,
    CONSTRAINT "uq_quality_quarantine_ticker_date_raw_key" UNIQUE ("ticker", "date", "raw_key")
);

-- The soft rules' findings: one per ticker, date and rule.
CREATE TABLE IF NOT EXISTS "quality_findings" (
    "ticker"      TEXT    NOT NULL,
    "date"        TEXT    NOT NULL,
    "rule"        TEXT    NOT NULL,
    "detail"      TEXT    NOT NULL,
    "recorded_at" TEXT    NOT NULL,
    CONSTRAINT "uq_quality_findings_ticker_date_rule" UNIQUE ("ticker", "date", "rule")
);
