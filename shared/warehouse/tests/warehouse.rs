//! The warehouse against real databases: a SQLite file in a temporary folder,
//! and Postgres (`MDP_TEST_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`) in a schema of its own per test,
//! dropped at the end, so tests run in parallel.
//!
//! Every scenario runs on both backends: `<scenario>::sqlite` and `<scenario>::postgres`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, TimeDelta, TimeZone, Utc};
use mdp_core::config::LoadStrategy::{self, Append, TruncateInsert, Upsert};
use mdp_core::row::{COLUMNS, DailyBar};
use mdp_core::{Config, CuratedRow, ErrorClass, Indicators, InstrumentMeta, StageError, Ticker};
use mdp_warehouse::{LoadReport, Warehouse};
use sqlx::{AssertSqlSafe, PgPool, Row, SqlitePool};

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const TABLE: &str = "fact_market_data";

fn postgres_url() -> String {
    std::env::var("MDP_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| DEFAULT_POSTGRES_URL.into())
}

fn config(vars: &[(&str, String)]) -> Config {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    Config::from_lookup(|k| map.get(k).cloned()).expect("valid test configuration")
}

fn ticker(s: &str) -> Ticker {
    Ticker::parse(s).unwrap()
}

// ---------------------------------------------------------------------------
// Test rows

fn day(i: usize) -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 1, 2).unwrap() + TimeDelta::days(i as i64)
}

fn base_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap()
}

/// `n` rows of `ticker` from day `first`, every column filled, with NULLs where
/// the pipeline has them (warm-up indicators, a missing open, volume and long
/// name) and floats that only survive a bit-exact round trip. Timestamps are
/// whole microseconds.
fn rows(ticker: &str, first: usize, n: usize) -> Vec<CuratedRow> {
    (first..first + n).map(|i| row(ticker, i)).collect()
}

fn row(ticker: &str, i: usize) -> CuratedRow {
    let x = i as f64;
    let close = 100.0 + x * 0.1 + (0.1 + 0.2);
    let warm = |n: usize, v: f64| (i >= n).then_some(v);
    let created_at = base_time() + TimeDelta::seconds(i as i64) + TimeDelta::microseconds(123_456);
    CuratedRow {
        ticker: ticker.to_string(),
        bar: DailyBar {
            date: day(i),
            open: (i % 10 != 1).then_some(close - 0.5),
            high: Some(close + 1.0 / 3.0),
            low: Some(close - 2.0 / 7.0),
            close,
            adj_close: Some(if i == 0 { 0.1 + 0.2 } else { close * 0.98 }),
            volume: match i % 10 {
                2 => None,
                3 => Some(i64::MAX - 1),
                _ => Some(1_000_000 + 17 * i as i64),
            },
        },
        indicators: Indicators {
            sma_7: warm(6, close - 0.01),
            sma_14: warm(13, close - 0.02),
            sma_20: warm(19, close - 0.03),
            ema_12: Some(close * 0.999),
            macd: Some(1e-300 * (x + 1.0)),
            macd_signal: Some(-1e-300),
            macd_histogram: Some(5e-324),
            rsi: warm(14, 50.0 + (i % 10) as f64 + 1.0 / 7.0),
            bb_upper: warm(19, close + 2.0 * std::f64::consts::PI),
            bb_middle: warm(19, close - 0.03),
            bb_lower: warm(19, close - 2.0 * std::f64::consts::E),
            volatility_20d: warm(20, 1.0 / (x + 3.0)),
            daily_return: warm(1, 1.0 / (x + 7.0)),
            daily_return_pct: warm(1, 100.0 / (x + 7.0)),
        },
        meta: InstrumentMeta {
            currency: Some("USD".into()),
            exchange: Some("NMS".into()),
            instrument_type: Some("EQUITY".into()),
            regular_market_price: Some(123.456),
            fifty_two_week_high: Some(f64::MAX),
            fifty_two_week_low: Some(f64::MIN_POSITIVE),
            long_name: (i % 10 != 4).then(|| "Ünïcode Corp ✓ \"quoted\" 'and' \\".to_string()),
            short_name: Some(format!("{ticker} short")),
        },
        created_at,
        updated_at: created_at + TimeDelta::microseconds(654_321),
    }
}

/// Same rows, bit for bit, with the same timestamps.
fn assert_identical(actual: &[CuratedRow], expected: &[CuratedRow]) {
    assert_eq!(actual.len(), expected.len(), "row count");
    for (a, e) in actual.iter().zip(expected) {
        assert!(
            a.same_values(e),
            "values differ:\n  actual   {a:?}\n  expected {e:?}"
        );
        assert_eq!(
            (a.created_at, a.updated_at),
            (e.created_at, e.updated_at),
            "timestamps of {} {}",
            a.ticker,
            a.date()
        );
        assert_eq!(a, e);
    }
}

fn report(rows_in: usize, inserted: u64, updated: u64, deleted: u64) -> LoadReport {
    LoadReport {
        rows_in,
        inserted,
        updated,
        deleted,
    }
}

fn later(mut rows: Vec<CuratedRow>, by: TimeDelta) -> Vec<CuratedRow> {
    for r in &mut rows {
        r.updated_at += by;
    }
    rows
}

// ---------------------------------------------------------------------------
// Test environment: a database of each kind, with a side connection for raw SQL

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Db {
    Sqlite,
    Postgres,
}

enum Admin {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

struct Env {
    db: Db,
    url: String,
    schema: String,
    admin: Admin,
    _dir: Option<tempfile::TempDir>,
}

impl Env {
    async fn new(db: Db) -> Env {
        match db {
            Db::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                // A folder that does not exist yet: connect creates it.
                let path = dir.path().join("nested/deeper/warehouse.db");
                let url = format!("sqlite://{}", path.display());
                let env_config = config(&[("WAREHOUSE_URL", url.clone())]);
                // The warehouse creates the file; the side connection opens it.
                Warehouse::connect(&env_config).await.unwrap().close().await;
                assert!(path.is_file(), "sqlite file created");
                let admin = SqlitePool::connect(&url).await.unwrap();
                Env {
                    db,
                    url,
                    schema: "ignored_by_sqlite".into(),
                    admin: Admin::Sqlite(admin),
                    _dir: Some(dir),
                }
            }
            Db::Postgres => {
                let url = postgres_url();
                let schema = format!("mdp_wh_test_{:016x}", fastrand::u64(..));
                let admin = sqlx::postgres::PgPoolOptions::new()
                    .max_connections(2)
                    .connect(&url)
                    .await
                    .unwrap_or_else(|e| {
                        panic!("Postgres for tests at {url} (MDP_TEST_POSTGRES_URL): {e}")
                    });
                Env {
                    db,
                    url,
                    schema,
                    admin: Admin::Postgres(admin),
                    _dir: None,
                }
            }
        }
    }

    async fn cleanup(&self) {
        match &self.admin {
            Admin::Sqlite(pool) => pool.close().await,
            Admin::Postgres(pool) => {
                let drop = format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.schema);
                sqlx::raw_sql(AssertSqlSafe(drop))
                    .execute(pool)
                    .await
                    .unwrap();
                pool.close().await;
            }
        }
    }

    fn config(&self, table: &str, batch_size: usize) -> Config {
        config(&[
            ("WAREHOUSE_URL", self.url.clone()),
            ("WAREHOUSE_SCHEMA", self.schema.clone()),
            ("WAREHOUSE_TABLE_MARKET_DATA", table.to_string()),
            ("WAREHOUSE_BATCH_SIZE", batch_size.to_string()),
        ])
    }

    /// A connected warehouse on `table` with its table created.
    async fn warehouse_on(&self, table: &str, batch_size: usize) -> Warehouse {
        let wh = Warehouse::connect(&self.config(table, batch_size))
            .await
            .unwrap();
        wh.migrate().await.unwrap();
        wh
    }

    async fn warehouse(&self, batch_size: usize) -> Warehouse {
        self.warehouse_on(TABLE, batch_size).await
    }

    fn qualified(&self, table: &str) -> String {
        match self.db {
            Db::Sqlite => format!("\"{table}\""),
            Db::Postgres => format!("\"{}\".\"{table}\"", self.schema),
        }
    }

    async fn exec(&self, sql: &str) {
        let sql = AssertSqlSafe(sql.to_string());
        match &self.admin {
            Admin::Sqlite(pool) => sqlx::raw_sql(sql).execute(pool).await.map(drop),
            Admin::Postgres(pool) => sqlx::raw_sql(sql).execute(pool).await.map(drop),
        }
        .unwrap();
    }

    /// Rows of `table` counted with plain SQL (duplicates would show here).
    async fn count(&self, table: &str) -> i64 {
        let sql = AssertSqlSafe(format!("SELECT count(*) FROM {}", self.qualified(table)));
        match &self.admin {
            Admin::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
            Admin::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
        }
        .unwrap()
    }

    /// (name, declared type) of the table's columns, in order.
    async fn columns(&self, table: &str) -> Vec<(String, String)> {
        match &self.admin {
            Admin::Sqlite(pool) => {
                let rows = sqlx::query("SELECT name, type FROM pragma_table_info(?) ORDER BY cid")
                    .bind(table)
                    .fetch_all(pool)
                    .await
                    .unwrap();
                rows.iter().map(|r| (r.get(0), r.get(1))).collect()
            }
            Admin::Postgres(pool) => {
                let rows = sqlx::query(
                    "SELECT column_name::text, data_type::text FROM information_schema.columns \
                     WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
                )
                .bind(&self.schema)
                .bind(table)
                .fetch_all(pool)
                .await
                .unwrap();
                rows.iter().map(|r| (r.get(0), r.get(1))).collect()
            }
        }
    }

    /// Names of the table's indexes, sorted.
    async fn indexes(&self, table: &str) -> Vec<String> {
        let mut names: Vec<String> = match &self.admin {
            Admin::Sqlite(pool) => sqlx::query_scalar(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ?",
            )
            .bind(table)
            .fetch_all(pool)
            .await
            .unwrap(),
            Admin::Postgres(pool) => sqlx::query_scalar(
                "SELECT indexname::text FROM pg_indexes WHERE schemaname = $1 AND tablename = $2",
            )
            .bind(&self.schema)
            .bind(table)
            .fetch_all(pool)
            .await
            .unwrap(),
        };
        names.sort();
        names
    }
}

/// Runs `scenario` on a fresh environment of `db` and cleans up, also when
/// the scenario fails.
async fn run<F, Fut>(db: Db, scenario: F)
where
    F: FnOnce(Arc<Env>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let env = Arc::new(Env::new(db).await);
    let outcome = tokio::spawn(scenario(env.clone())).await;
    env.cleanup().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test]
            async fn sqlite() {
                crate::run(crate::Db::Sqlite, crate::scenarios::$scenario).await;
            }

            #[tokio::test]
            async fn postgres() {
                crate::run(crate::Db::Postgres, crate::scenarios::$scenario).await;
            }
        }
    )*};
}

on_both_backends!(
    migrate_is_idempotent_and_creates_the_contract_table,
    load_then_read_gives_back_identical_rows,
    upsert_twice_changes_nothing,
    upsert_rewrites_changed_rows_and_keeps_created_at,
    append_never_duplicates_nor_modifies,
    truncate_insert_replaces_only_that_tickers_rows,
    batch_sizes_give_the_same_table,
    failed_load_leaves_the_table_unchanged,
    bad_input_is_rejected_before_touching_the_table,
    the_same_load_twice_at_once_leaves_one_copy,
);

fn assert_permanent(err: &StageError, needles: &[&str]) {
    assert_eq!(err.class, ErrorClass::Permanent, "{err}");
    for needle in needles {
        assert!(err.message.contains(needle), "{needle:?} not in {err}");
    }
}

mod scenarios {
    use super::*;

    /// SQS may deliver one load message twice at the same time: both copies
    /// succeed and the table holds one copy, for every strategy.
    pub async fn the_same_load_twice_at_once_leaves_one_copy(env: Arc<Env>) {
        let wh = env.warehouse(100).await;
        let t = ticker("DUP");
        let other = rows("KEEP", 0, 5);
        wh.load(&ticker("KEEP"), &other, Upsert).await.unwrap();
        for strategy in [Upsert, Append, TruncateInsert] {
            let batch = rows("DUP", 0, 300);
            let (a, b) = tokio::join!(wh.load(&t, &batch, strategy), wh.load(&t, &batch, strategy));
            a.unwrap_or_else(|e| panic!("{strategy}: {e}"));
            b.unwrap_or_else(|e| panic!("{strategy}: {e}"));
            assert_identical(&wh.read_rows(Some(&t)).await.unwrap(), &batch);
            assert_identical(&wh.read_rows(Some(&ticker("KEEP"))).await.unwrap(), &other);
        }
    }

    pub async fn migrate_is_idempotent_and_creates_the_contract_table(env: Arc<Env>) {
        let wh = env.warehouse(1000).await; // first migrate
        wh.migrate().await.unwrap();
        env.warehouse(1000).await.migrate().await.unwrap();

        let columns = env.columns(TABLE).await;
        let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, COLUMNS);
        let type_of = |name: &str| {
            columns
                .iter()
                .find(|(n, _)| n == name)
                .unwrap()
                .1
                .to_lowercase()
        };
        let expected: [(&str, &str, &str); 7] = [
            ("ticker", "text", "character varying"),
            ("date", "text", "date"),
            ("close", "real", "double precision"),
            ("rsi", "real", "double precision"),
            ("volume", "integer", "bigint"),
            ("long_name", "text", "text"),
            ("updated_at", "text", "timestamp with time zone"),
        ];
        for (name, sqlite, postgres) in expected {
            let want = if env.db == Db::Sqlite {
                sqlite
            } else {
                postgres
            };
            assert_eq!(type_of(name), want, "{name}");
        }

        let indexes = env.indexes(TABLE).await;
        for name in [
            "idx_fact_market_data_ticker",
            "idx_fact_market_data_date",
            "idx_fact_market_data_ticker_date",
        ] {
            assert!(indexes.iter().any(|i| i == name), "{name} in {indexes:?}");
        }
        // The unique constraint's index (Postgres names it after the constraint).
        if env.db == Db::Postgres {
            assert!(
                indexes
                    .iter()
                    .any(|i| i == "uq_fact_market_data_ticker_date"),
                "{indexes:?}"
            );
        }
        assert!(wh.read_rows(None).await.unwrap().is_empty());

        let described = wh.describe();
        assert!(
            described.contains(if env.db == Db::Sqlite {
                "sqlite"
            } else {
                "postgres"
            }),
            "{described}"
        );
        assert!(described.contains(TABLE), "{described}");
        wh.close().await;
    }

    pub async fn load_then_read_gives_back_identical_rows(env: Arc<Env>) {
        let wh = env.warehouse(1000).await;
        let msft = rows("MSFT", 0, 30);
        let aapl = rows("AAPL", 5, 25);
        let gspc = rows("^GSPC", 0, 3);
        assert_eq!(
            wh.load(&ticker("MSFT"), &msft, Upsert).await.unwrap(),
            report(30, 30, 0, 0)
        );
        assert_eq!(
            wh.load(&ticker("^GSPC"), &gspc, Upsert).await.unwrap(),
            report(3, 3, 0, 0)
        );
        assert_eq!(
            wh.load(&ticker("AAPL"), &aapl, Upsert).await.unwrap(),
            report(25, 25, 0, 0)
        );

        // Ordered by ticker in byte order, then date.
        let all: Vec<CuratedRow> = aapl.iter().chain(&msft).chain(&gspc).cloned().collect();
        assert_identical(&wh.read_rows(None).await.unwrap(), &all);
        assert_identical(&wh.read_rows(Some(&ticker("MSFT"))).await.unwrap(), &msft);
        assert!(
            wh.read_rows(Some(&ticker("NONE")))
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(env.count(TABLE).await, 58);
        wh.close().await;
    }

    pub async fn upsert_twice_changes_nothing(env: Arc<Env>) {
        let wh = env.warehouse(1000).await;
        let msft = rows("MSFT", 0, 40);
        assert_eq!(
            wh.load(&ticker("MSFT"), &msft, Upsert).await.unwrap(),
            report(40, 40, 0, 0)
        );
        // The same values again, stamped later: nothing is rewritten.
        let again = later(msft.clone(), TimeDelta::days(1));
        let second = wh.load(&ticker("MSFT"), &again, Upsert).await.unwrap();
        assert_eq!(second, report(40, 0, 0, 0));
        assert_eq!(second.rows_loaded(), 0);
        assert_identical(&wh.read_rows(None).await.unwrap(), &msft);
        wh.close().await;
    }

    pub async fn upsert_rewrites_changed_rows_and_keeps_created_at(env: Arc<Env>) {
        let wh = env.warehouse(1000).await;
        let msft = rows("MSFT", 0, 30);
        wh.load(&ticker("MSFT"), &msft, Upsert).await.unwrap();

        let stamp = TimeDelta::days(2);
        let mut changed = msft.clone();
        changed[5].bar.close += 1.0;
        changed[5].updated_at += stamp;
        changed[5].created_at += stamp; // an incoming created_at never replaces the stored one
        let r = wh.load(&ticker("MSFT"), &changed, Upsert).await.unwrap();
        assert_eq!(r, report(30, 0, 1, 0));
        assert_eq!(r.rows_loaded(), 1);

        let mut expected = msft.clone();
        expected[5].bar.close += 1.0;
        expected[5].updated_at += stamp;
        assert_identical(&wh.read_rows(None).await.unwrap(), &expected);

        // NULL-aware comparison: NULL -> value, value -> NULL, plus two new days.
        let mut next = expected.clone();
        assert_eq!(next[1].bar.open, None);
        next[1].bar.open = Some(1.25);
        assert_eq!(next[4].meta.long_name, None);
        next[4].meta.long_name = Some("Now named".into());
        next[0].bar.adj_close = None;
        for i in [0, 1, 4] {
            next[i].updated_at += stamp;
        }
        next.extend(rows("MSFT", 30, 2));
        let r = wh.load(&ticker("MSFT"), &next, Upsert).await.unwrap();
        assert_eq!(r, report(32, 2, 3, 0));
        assert_eq!(r.rows_loaded(), 5);
        assert_identical(&wh.read_rows(None).await.unwrap(), &next);
        wh.close().await;
    }

    pub async fn append_never_duplicates_nor_modifies(env: Arc<Env>) {
        let wh = env.warehouse(1000).await;
        let msft = rows("MSFT", 0, 30);
        assert_eq!(
            wh.load(&ticker("MSFT"), &msft[..20], Append).await.unwrap(),
            report(20, 20, 0, 0)
        );

        // The first 20 come again with other values: skipped, never updated.
        let mut more = later(msft.clone(), TimeDelta::days(1));
        for r in &mut more[..20] {
            r.bar.close += 7.0;
        }
        let tail_as_loaded = more[20..].to_vec();
        assert_eq!(
            wh.load(&ticker("MSFT"), &more, Append).await.unwrap(),
            report(30, 10, 0, 0)
        );
        assert_eq!(
            wh.load(&ticker("MSFT"), &more, Append).await.unwrap(),
            report(30, 0, 0, 0)
        );
        assert_eq!(env.count(TABLE).await, 30);

        let expected: Vec<CuratedRow> = msft[..20].iter().cloned().chain(tail_as_loaded).collect();
        assert_identical(&wh.read_rows(None).await.unwrap(), &expected);
        wh.close().await;
    }

    pub async fn truncate_insert_replaces_only_that_tickers_rows(env: Arc<Env>) {
        let wh = env.warehouse(1000).await;
        let msft = rows("MSFT", 0, 30);
        let aapl = rows("AAPL", 0, 20);
        wh.load(&ticker("MSFT"), &msft, Upsert).await.unwrap();
        wh.load(&ticker("AAPL"), &aapl, Upsert).await.unwrap();

        let replacement = rows("MSFT", 25, 10); // overlaps 5 old dates, 5 new
        let r = wh
            .load(&ticker("MSFT"), &replacement, TruncateInsert)
            .await
            .unwrap();
        assert_eq!(r, report(10, 10, 0, 30));
        assert_identical(
            &wh.read_rows(Some(&ticker("MSFT"))).await.unwrap(),
            &replacement,
        );
        assert_identical(&wh.read_rows(Some(&ticker("AAPL"))).await.unwrap(), &aapl);
        assert_eq!(env.count(TABLE).await, 30);

        // Again: same outcome, idempotent.
        let r = wh
            .load(&ticker("MSFT"), &replacement, TruncateInsert)
            .await
            .unwrap();
        assert_eq!(r, report(10, 10, 0, 10));
        assert_eq!(env.count(TABLE).await, 30);
        wh.close().await;
    }

    pub async fn batch_sizes_give_the_same_table(env: Arc<Env>) {
        let msft = rows("MSFT", 0, 1100); // more than SQLite's 1023 rows per statement
        let mut changed = later(msft.clone(), TimeDelta::hours(1));
        for r in changed.iter_mut().step_by(3) {
            r.indicators.rsi = Some(42.0);
        }
        let updates = changed
            .iter()
            .zip(&msft)
            .filter(|(a, b)| !a.same_values(b))
            .count() as u64;
        let mut expected = msft.clone();
        for (e, c) in expected.iter_mut().zip(&changed) {
            if !e.same_values(c) {
                *e = CuratedRow {
                    created_at: e.created_at,
                    ..c.clone()
                };
            }
        }

        for batch in [1, 7, 1000, 5000] {
            let table = format!("facts_batch_{batch}");
            let wh = env.warehouse_on(&table, batch).await;
            assert_eq!(
                wh.load(&ticker("MSFT"), &msft, Upsert).await.unwrap(),
                report(1100, 1100, 0, 0),
                "batch {batch}"
            );
            let r = wh.load(&ticker("MSFT"), &changed, Upsert).await.unwrap();
            assert_eq!(r, report(1100, 0, updates, 0), "batch {batch}");
            assert_identical(&wh.read_rows(None).await.unwrap(), &expected);
            assert_eq!(env.count(&table).await, 1100);
            wh.close().await;
        }
    }

    pub async fn failed_load_leaves_the_table_unchanged(env: Arc<Env>) {
        let wh = env.warehouse(1000).await;
        let baseline = rows("MSFT", 0, 300);
        let other = rows("AAPL", 0, 5);
        wh.load(&ticker("MSFT"), &baseline, Upsert).await.unwrap();
        wh.load(&ticker("AAPL"), &other, Upsert).await.unwrap();
        let before = wh.read_rows(None).await.unwrap();

        // 2500 rows: updates of the 300 stored ones and 2200 new ones; only the
        // last breaks the limit, so with batches of 1000 the first batches
        // have already been written inside the transaction when it fails.
        let mut incoming = later(rows("MSFT", 0, 2500), TimeDelta::days(1));
        for r in &mut incoming[..300] {
            r.bar.close += 0.5;
        }
        incoming[2499].bar.close = 5000.0;
        let table = env.qualified(TABLE);
        let (add_limit, drop_limit, needle) = match env.db {
            Db::Postgres => (
                format!("ALTER TABLE {table} ADD CONSTRAINT close_limit CHECK (close < 1000)"),
                format!("ALTER TABLE {table} DROP CONSTRAINT close_limit"),
                "close_limit",
            ),
            Db::Sqlite => (
                format!(
                    "CREATE TRIGGER close_limit BEFORE INSERT ON {table} WHEN NEW.close >= 1000 \
                     BEGIN SELECT RAISE(ABORT, 'close limit'); END"
                ),
                "DROP TRIGGER close_limit".to_string(),
                "close limit",
            ),
        };
        env.exec(&add_limit).await;

        for strategy in [Upsert, Append, TruncateInsert] {
            let err = wh
                .load(&ticker("MSFT"), &incoming, strategy)
                .await
                .unwrap_err();
            assert_permanent(&err, &["loading MSFT into", needle]);
            assert_eq!(env.count(TABLE).await, 305, "{strategy}");
            assert_identical(&wh.read_rows(None).await.unwrap(), &before);
        }

        // The warehouse (and its pooled connections) still work afterwards.
        env.exec(&drop_limit).await;
        let r = wh.load(&ticker("MSFT"), &incoming, Upsert).await.unwrap();
        assert_eq!(r, report(2500, 2200, 300, 0));
        assert_eq!(env.count(TABLE).await, 2505);
        wh.close().await;
    }

    pub async fn bad_input_is_rejected_before_touching_the_table(env: Arc<Env>) {
        let wh = env.warehouse(1000).await;
        let msft = ticker("MSFT");

        let mut mixed = rows("MSFT", 0, 5);
        mixed.push(row("AAPL", 5));
        let err = wh.load(&msft, &mixed, Upsert).await.unwrap_err();
        assert_permanent(&err, &["loading MSFT into", "AAPL", "not of ticker MSFT"]);

        let mut duplicated = rows("MSFT", 0, 5);
        duplicated.push(row("MSFT", 2));
        let err = wh.load(&msft, &duplicated, Append).await.unwrap_err();
        assert_permanent(&err, &["duplicate date 2024-01-04", "MSFT"]);

        let mut nan = rows("MSFT", 0, 5);
        nan[3].indicators.rsi = Some(f64::NAN);
        let err = wh.load(&msft, &nan, TruncateInsert).await.unwrap_err();
        assert_permanent(&err, &["rsi is NaN", "2024-01-05"]);

        let mut nul = rows("MSFT", 0, 5);
        nul[1].meta.short_name = Some("nul\0byte".into());
        let err = wh.load(&msft, &nul, Upsert).await.unwrap_err();
        assert_permanent(&err, &["short_name contains a NUL character", "2024-01-03"]);

        assert_eq!(env.count(TABLE).await, 0);
        // Nothing to do is not an error.
        assert_eq!(
            wh.load(&msft, &[], Upsert).await.unwrap(),
            report(0, 0, 0, 0)
        );
        wh.close().await;
    }
}

// ---------------------------------------------------------------------------
// Backend-specific behaviour

fn strategy_names() -> [LoadStrategy; 3] {
    [Upsert, Append, TruncateInsert]
}

#[tokio::test]
async fn postgres_unreachable_is_transient_and_hides_the_password() {
    let started = Instant::now();
    let cfg = config(&[(
        "WAREHOUSE_URL",
        "postgres://postgres:hunter2@127.0.0.1:1/test".into(),
    )]);
    let err = Warehouse::connect(&cfg).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Transient, "{err}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert!(
        err.message
            .contains("postgres://postgres:***@127.0.0.1:1/test"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "failed fast: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn redshift_is_not_supported_yet() {
    let cfg = config(&[(
        "WAREHOUSE_URL",
        "redshift://etl:hunter2@cluster:5439/dev".into(),
    )]);
    let err = Warehouse::connect(&cfg).await.unwrap_err();
    assert_permanent(&err, &["redshift warehouse is not supported yet"]);
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[tokio::test]
async fn postgres_describe_never_shows_the_password() {
    let url = postgres_url();
    // Add a password when the test URL has none (trust auth ignores it).
    let with_password = match url
        .split_once("://")
        .and_then(|(scheme, rest)| Some((scheme, rest.split_once('@')?)))
    {
        Some((scheme, (user, host))) if !user.contains(':') => {
            format!("{scheme}://{user}:hunter2@{host}")
        }
        _ => url.clone(),
    };
    let cfg = config(&[("WAREHOUSE_URL", with_password.clone())]);
    match Warehouse::connect(&cfg).await {
        Ok(wh) => {
            let described = wh.describe();
            assert!(!described.contains("hunter2"), "{described}");
            assert!(!format!("{wh:?}").contains("hunter2"));
            if with_password.contains("hunter2") {
                assert!(described.contains(":***@"), "{described}");
            }
            assert!(
                described.starts_with("postgres ")
                    && described.ends_with("table public.fact_market_data"),
                "{described}"
            );
            wh.close().await;
        }
        Err(err) => assert!(!err.to_string().contains("hunter2"), "{err}"),
    }
}

/// A table made by the original Airflow DDL (`id SERIAL`, DECIMAL(18,6)
/// numbers, timestamps without time zone) loads in place.
#[tokio::test]
async fn postgres_loads_into_a_legacy_airflow_table() {
    run(Db::Postgres, |env: Arc<Env>| async move {
        let table = env.qualified(TABLE);
        env.exec(&format!("CREATE SCHEMA \"{}\"", env.schema)).await;
        let numbers: Vec<String> = COLUMNS[2..30]
            .iter()
            .map(|c| match *c {
                "volume" => "volume BIGINT".to_string(),
                "currency" | "exchange" | "instrument_type" => format!("{c} VARCHAR(50)"),
                "long_name" | "short_name" => format!("{c} VARCHAR(255)"),
                c => format!("{c} DECIMAL(18,6)"),
            })
            .collect();
        env.exec(&format!(
            "CREATE TABLE {table} (id SERIAL PRIMARY KEY, ticker VARCHAR(10) NOT NULL, date DATE NOT NULL, {}, \
             created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP, updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP, \
             UNIQUE (ticker, date))",
            numbers.join(", ")
        ))
        .await;
        let wh = env.warehouse(1000).await; // migrate adds only the indexes
        let mut msft = rows("MSFT", 0, 30);
        for r in &mut msft {
            r.meta.fifty_two_week_high = Some(200.0);
            r.meta.fifty_two_week_low = Some(50.0);
            r.bar.volume = Some(1000);
        }
        assert_eq!(wh.load(&ticker("MSFT"), &msft, Upsert).await.unwrap(), report(30, 30, 0, 0));
        assert_eq!(wh.load(&ticker("MSFT"), &msft, Upsert).await.unwrap(), report(30, 0, 0, 0));
        for strategy in strategy_names() {
            wh.load(&ticker("MSFT"), &msft, strategy).await.unwrap();
        }
        let back = wh.read_rows(None).await.unwrap();
        assert_eq!(back.len(), 30);
        for (b, r) in back.iter().zip(&msft) {
            assert_eq!(b.date(), r.date());
            assert!((b.bar.close - r.bar.close).abs() < 1e-6, "{} vs {}", b.bar.close, r.bar.close);
            assert_eq!(b.created_at, r.created_at);
        }
        assert!(env.indexes(TABLE).await.iter().any(|i| i == "idx_fact_market_data_ticker_date"));
        wh.close().await;
    })
    .await;
}

/// A failure while the rows stream in (here a date Postgres cannot hold)
/// aborts the COPY: the table is unchanged and the pooled connection is fine.
#[tokio::test]
async fn postgres_copy_failure_leaves_the_table_unchanged() {
    run(Db::Postgres, |env: Arc<Env>| async move {
        let wh = env.warehouse(100).await;
        let msft = rows("MSFT", 0, 50);
        wh.load(&ticker("MSFT"), &msft, Upsert).await.unwrap();

        let mut incoming = rows("MSFT", 0, 400);
        incoming[399].bar.date = NaiveDate::from_ymd_opt(-10_000, 1, 1).unwrap();
        for strategy in strategy_names() {
            let err = wh
                .load(&ticker("MSFT"), &incoming, strategy)
                .await
                .unwrap_err();
            assert_permanent(&err, &["loading MSFT into", "out of range"]);
            assert_identical(&wh.read_rows(None).await.unwrap(), &msft);
        }
        incoming.pop();
        let r = wh
            .load(&ticker("MSFT"), &incoming, TruncateInsert)
            .await
            .unwrap();
        assert_eq!(r, report(399, 399, 0, 50));
        assert_identical(&wh.read_rows(None).await.unwrap(), &incoming);
        wh.close().await;
    })
    .await;
}
