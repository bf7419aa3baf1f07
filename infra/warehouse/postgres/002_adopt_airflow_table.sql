-- Brings a fact table created by the original Airflow DDL up to the contract
-- (DESIGN.md section 6), in place, without losing or changing a row.
--
-- The Airflow table has `id SERIAL PRIMARY KEY`, DECIMAL(18,6) numbers,
-- `ticker VARCHAR(10)`, timestamps without time zone, UNIQUE (ticker, date),
-- and no `adj_close`. This migration:
--   * adds `adj_close DOUBLE PRECISION` when it is missing (a catalog-only
--     change: existing rows read NULL, nothing is rewritten);
--   * widens `ticker` to VARCHAR(16) when it is narrower (our tickers are up
--     to 12 characters; widening a VARCHAR is a catalog-only change too: no
--     table or index rewrite);
--   * creates the indexes of the original tuning guide, (ticker),
--     (date DESC) and (ticker, date DESC), unless an equivalent valid,
--     non-partial btree index already exists under any name.
-- It leaves everything else alone: `id` keeps its sequence, DECIMAL columns
-- keep their type (loads cast DOUBLE PRECISION to them: see
-- shared/warehouse/src/postgres.rs), timestamps keep theirs.
--
-- On a table created by 001 every step finds nothing to do and changes
-- nothing (no ALTER TABLE runs, so no lock is taken and no ownership needed).
--
-- Placeholders as in 001 ({schema}, {table}, {prefix}); plain identifiers,
-- double-quoted here.

DO $mdp_adopt$
DECLARE
    target  regclass := '"{schema}"."{table}"'::regclass;
    width   integer;
    wanted  text[][] := ARRAY[
        ['idx_{prefix}_ticker',      '"ticker"',               'btree (ticker)'],
        ['idx_{prefix}_date',        '"date" DESC',            'btree (date DESC)'],
        ['idx_{prefix}_ticker_date', '"ticker", "date" DESC',  'btree (ticker, date DESC)']
    ];
    i       integer;
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_catalog.pg_attribute
        WHERE attrelid = target AND attname = 'adj_close' AND attnum > 0 AND NOT attisdropped
    ) THEN
        EXECUTE format('ALTER TABLE %s ADD COLUMN "adj_close" DOUBLE PRECISION', target);
    END IF;

    -- atttypmod of VARCHAR(n) is n + 4; -1 means unbounded (VARCHAR, TEXT).
    SELECT a.atttypmod - 4 INTO width
    FROM pg_catalog.pg_attribute a
    WHERE a.attrelid = target AND a.attname = 'ticker' AND NOT a.attisdropped
      AND a.atttypid = 'pg_catalog.varchar'::regtype AND a.atttypmod > 0;
    IF width IS NOT NULL AND width < 16 THEN
        EXECUTE format('ALTER TABLE %s ALTER COLUMN "ticker" TYPE VARCHAR(16)', target);
    END IF;

    FOR i IN 1 .. array_length(wanted, 1) LOOP
        IF NOT EXISTS (
            SELECT 1 FROM pg_catalog.pg_index x
            WHERE x.indrelid = target AND x.indisvalid AND x.indpred IS NULL
              AND split_part(pg_catalog.pg_get_indexdef(x.indexrelid), ' USING ', 2) = wanted[i][3]
        ) THEN
            EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %s (%s)', wanted[i][1], target, wanted[i][2]);
        END IF;
    END LOOP;
END
$mdp_adopt$;
