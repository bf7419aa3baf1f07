-- Drops the secondary indexes that the unique (ticker, date) index already
-- serves (DESIGN.md section 6: an index only for a query the key does not
-- serve). Postgres answers `WHERE ticker = ? ORDER BY date DESC LIMIT n` and
-- `WHERE ticker = ?` by scanning the unique index (backwards for DESC), so
-- (ticker) and (ticker, date [DESC]) only cost load time and space (64 MB
-- and 9 MB on 1.2 M rows). (date DESC) stays: cross-ticker date queries
-- need it.
--
-- Any such index goes, under whatever name (001/002 created ours; an
-- adopted Airflow table may carry its own), but only when a valid unique
-- index on exactly (ticker, date) exists, and never an index that is
-- unique, partial, or backs a constraint. Rerunning it finds nothing to do.
--
-- Placeholders as in 001 ({schema}, {table}); plain identifiers,
-- double-quoted here.

DO $mdp_drop$
DECLARE
    target    regclass := '"{schema}"."{table}"'::regclass;
    redundant record;
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_catalog.pg_index x
        WHERE x.indrelid = target AND x.indisunique AND x.indisvalid AND x.indpred IS NULL
          AND split_part(pg_catalog.pg_get_indexdef(x.indexrelid), ' USING ', 2) = 'btree (ticker, date)'
    ) THEN
        RETURN;
    END IF;
    FOR redundant IN
        SELECT x.indexrelid::regclass AS name
        FROM pg_catalog.pg_index x
        WHERE x.indrelid = target AND NOT x.indisunique AND x.indpred IS NULL
          AND split_part(pg_catalog.pg_get_indexdef(x.indexrelid), ' USING ', 2)
              IN ('btree (ticker)', 'btree (ticker, date)', 'btree (ticker, date DESC)')
          AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint c WHERE c.conindid = x.indexrelid)
    LOOP
        EXECUTE format('DROP INDEX %s', redundant.name);
    END LOOP;
END
$mdp_drop$;
