-- Drops the secondary indexes that the unique (ticker, date) constraint's
-- index already serves (DESIGN.md section 6): SQLite answers
-- `WHERE ticker = ? ORDER BY date DESC LIMIT n` from that index, so
-- (ticker) and (ticker, date DESC) only cost load time and space. (date DESC)
-- stays for cross-ticker date queries. Placeholders as in 001.

DROP INDEX IF EXISTS "idx_{prefix}_ticker";
DROP INDEX IF EXISTS "idx_{prefix}_ticker_date";
