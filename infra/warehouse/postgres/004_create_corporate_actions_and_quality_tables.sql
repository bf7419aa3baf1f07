-- The tables beside the fact table (issue 12): the corporate actions the
-- chart responses report, the bars quarantined by a hard data-quality rule,
-- and the soft rules' findings. Postgres.
--
-- Placeholder: {schema} (WAREHOUSE_SCHEMA), a plain identifier, double-quoted
-- here. The table names are fixed: they are shared by every fact table of the
-- schema. Every statement is idempotent (CREATE ... IF NOT EXISTS), so this
-- runs unchanged on a schema whose fact table was adopted from the Airflow
-- DDL, and runs again when one of these tables has been dropped.
--
-- Types as in 001: DOUBLE PRECISION holds every f64 exactly, TIMESTAMPTZ
-- keeps microseconds. Each table's unique key starts with (ticker, date),
-- which also serves `WHERE ticker = ? ORDER BY date` queries.

CREATE SCHEMA IF NOT EXISTS "{schema}";

-- Dividends (amount: cash per share) and splits (numerator shares after per
-- denominator shares before; ratio = numerator / denominator).
CREATE TABLE IF NOT EXISTS "{schema}"."fact_corporate_actions" (
    "ticker"      VARCHAR(16)      NOT NULL,
    "date"        DATE             NOT NULL,
    "kind"        VARCHAR(16)      NOT NULL,
    "amount"      DOUBLE PRECISION,
    "ratio"       DOUBLE PRECISION,
    "numerator"   DOUBLE PRECISION,
    "denominator" DOUBLE PRECISION,
    "created_at"  TIMESTAMPTZ      NOT NULL,
    "updated_at"  TIMESTAMPTZ      NOT NULL,
    CONSTRAINT "uq_fact_corporate_actions_ticker_date_kind" UNIQUE ("ticker", "date", "kind")
);

-- Bars kept out of the curated zone: every hard rule they break (codes,
-- comma-separated), what was wrong, and the raw response they came in.
CREATE TABLE IF NOT EXISTS "{schema}"."quality_quarantine" (
    "ticker"         VARCHAR(16)      NOT NULL,
    "date"           DATE             NOT NULL,
    "raw_key"        TEXT             NOT NULL,
    "rules"          TEXT             NOT NULL,
    "detail"         TEXT             NOT NULL,
    "open"           DOUBLE PRECISION,
    "high"           DOUBLE PRECISION,
    "low"            DOUBLE PRECISION,
    "close"          DOUBLE PRECISION NOT NULL,
    "adj_close"      DOUBLE PRECISION,
    "volume"         BIGINT,
    "quarantined_at" TIMESTAMPTZ      NOT NULL,
    CONSTRAINT "uq_quality_quarantine_ticker_date_raw_key" UNIQUE ("ticker", "date", "raw_key")
);

-- The soft rules' findings: one per ticker, date and rule.
CREATE TABLE IF NOT EXISTS "{schema}"."quality_findings" (
    "ticker"      VARCHAR(16)      NOT NULL,
    "date"        DATE             NOT NULL,
    "rule"        VARCHAR(32)      NOT NULL,
    "detail"      TEXT             NOT NULL,
    "recorded_at" TIMESTAMPTZ      NOT NULL,
    CONSTRAINT "uq_quality_findings_ticker_date_rule" UNIQUE ("ticker", "date", "rule")
);
