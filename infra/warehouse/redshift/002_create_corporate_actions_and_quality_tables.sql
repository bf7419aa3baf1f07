-- The tables beside the fact table (issue 12): the corporate actions the
-- chart responses report, the bars quarantined by a hard data-quality rule,
-- and the soft rules' findings. Amazon Redshift.
--
-- Placeholder: {schema} (WAREHOUSE_SCHEMA), a plain identifier, double-quoted
-- here. The table names are fixed: they are shared by every fact table of the
-- schema. Every statement is idempotent (CREATE ... IF NOT EXISTS), so this
-- runs again when one of these tables has been dropped.
--
-- As in 001: distributed by ticker and sorted by (ticker, date), since every
-- load and query works on one ticker's rows by date; the unique constraints
-- are informational (Redshift does not enforce them: a load LOCKs the three
-- tables and writes each key once, see src/redshift/side.rs). VARCHAR
-- lengths count bytes: free text gets the maximum, 65535; lake keys 1024.

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
)
DISTSTYLE KEY
DISTKEY ("ticker")
COMPOUND SORTKEY ("ticker", "date");

-- Bars kept out of the curated zone: every hard rule they break (codes,
-- comma-separated), what was wrong, and the raw response they came in.
CREATE TABLE IF NOT EXISTS "{schema}"."quality_quarantine" (
    "ticker"         VARCHAR(16)      NOT NULL,
    "date"           DATE             NOT NULL,
    "raw_key"        VARCHAR(1024)    NOT NULL,
    "rules"          VARCHAR(1024)    NOT NULL,
    "detail"         VARCHAR(65535)   NOT NULL,
    "open"           DOUBLE PRECISION,
    "high"           DOUBLE PRECISION,
    "low"            DOUBLE PRECISION,
    "close"          DOUBLE PRECISION NOT NULL,
    "adj_close"      DOUBLE PRECISION,
    "volume"         BIGINT,
    "quarantined_at" TIMESTAMPTZ      NOT NULL,
    CONSTRAINT "uq_quality_quarantine_ticker_date_raw_key" UNIQUE ("ticker", "date", "raw_key")
)
DISTSTYLE KEY
DISTKEY ("ticker")
COMPOUND SORTKEY ("ticker", "date");

-- The soft rules' findings: one per ticker, date and rule.
CREATE TABLE IF NOT EXISTS "{schema}"."quality_findings" (
    "ticker"      VARCHAR(16)      NOT NULL,
    "date"        DATE             NOT NULL,
    "rule"        VARCHAR(32)      NOT NULL,
    "detail"      VARCHAR(65535)   NOT NULL,
    "recorded_at" TIMESTAMPTZ      NOT NULL,
    CONSTRAINT "uq_quality_findings_ticker_date_rule" UNIQUE ("ticker", "date", "rule")
)
DISTSTYLE KEY
DISTKEY ("ticker")
COMPOUND SORTKEY ("ticker", "date");
