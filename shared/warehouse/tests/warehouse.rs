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
use mdp_core::{
    Config, CuratedRow, ErrorClass, Indicators, InstrumentMeta, Lake, LocalStore, StageError,
    Ticker,
};
use mdp_warehouse::{LoadReport, Warehouse, load_stage, reload_ticker};
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

impl Env {
    /// (version, description, applied_at) recorded for `table`, by version.
    async fn migrations(&self, table: &str) -> Vec<(i32, String, String)> {
        match &self.admin {
            Admin::Sqlite(pool) => sqlx::query_as(
                "SELECT version, description, applied_at FROM mdp_schema_migrations \
                 WHERE table_name = ? ORDER BY version",
            )
            .bind(table)
            .fetch_all(pool)
            .await
            .unwrap(),
            Admin::Postgres(pool) => sqlx::query_as(AssertSqlSafe(format!(
                "SELECT version, description, applied_at::text FROM \"{}\".mdp_schema_migrations \
                 WHERE table_name = $1 ORDER BY version",
                self.schema
            )))
            .bind(table)
            .fetch_all(pool)
            .await
            .unwrap(),
        }
    }

    /// Whether the bookkeeping table exists at all.
    async fn has_migrations_table(&self) -> bool {
        match &self.admin {
            Admin::Sqlite(pool) => {
                sqlx::query_scalar::<_, i64>(
                    "SELECT count(*) FROM sqlite_master WHERE name = 'mdp_schema_migrations'",
                )
                .fetch_one(pool)
                .await
                .unwrap()
                    > 0
            }
            Admin::Postgres(pool) => sqlx::query_scalar::<_, bool>(
                "SELECT to_regclass(format('%I.mdp_schema_migrations', $1::text)) IS NOT NULL",
            )
            .bind(&self.schema)
            .fetch_one(pool)
            .await
            .unwrap(),
        }
    }

    /// The first migration of this backend, as the runner would render it.
    fn create_table_sql(&self, table: &str) -> String {
        let dir = match self.db {
            Db::Sqlite => "sqlite",
            Db::Postgres => "postgres",
        };
        let path = format!(
            "{}/../../infra/warehouse/{dir}/001_create_fact_market_data.sql",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(path)
            .unwrap()
            .replace("{schema}", &self.schema)
            .replace("{table}", table)
            .replace("{prefix}", table)
    }
}

/// Writes `rows` as the curated partition of their ticker and `year`; returns its key.
async fn put_partition(lake: &Lake, rows: &[CuratedRow], year: i32) -> String {
    let key = Lake::curated_key(&ticker(&rows[0].ticker), year);
    let bytes =
        mdp_transform::encode_parquet(rows, mdp_core::config::ParquetCompression::Snappy).unwrap();
    lake.store().put(&key, bytes).await.unwrap();
    key
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
    migrations_are_versioned_recorded_and_applied_once,
    a_table_from_before_the_versioning_is_recognised,
    loads_from_the_lake_partitions,
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

    pub async fn migrations_are_versioned_recorded_and_applied_once(env: Arc<Env>) {
        let expected: &[(i32, &str)] = match env.db {
            Db::Sqlite => &[(1, "create_fact_market_data")],
            Db::Postgres => &[(1, "create_fact_market_data"), (2, "adopt_airflow_table")],
        };
        let wh = env.warehouse(1000).await;
        let first = env.migrations(TABLE).await;
        let got: Vec<(i32, &str)> = first.iter().map(|(v, d, _)| (*v, d.as_str())).collect();
        assert_eq!(got, expected);
        assert!(
            first.iter().all(|(_, _, at)| at.starts_with("20")),
            "{first:?}"
        );

        // Again, from this and from a new warehouse: nothing applied, nothing recorded.
        wh.migrate().await.unwrap();
        env.warehouse(1000).await.migrate().await.unwrap();
        assert_eq!(env.migrations(TABLE).await, first);

        // A dropped table comes back with the next migrate.
        wh.load(&ticker("MSFT"), &rows("MSFT", 0, 2), Upsert)
            .await
            .unwrap();
        wh.drop_table().await.unwrap();
        wh.migrate().await.unwrap();
        assert_eq!(env.count(TABLE).await, 0);
        let again = env.migrations(TABLE).await;
        let got: Vec<(i32, &str)> = again.iter().map(|(v, d, _)| (*v, d.as_str())).collect();
        assert_eq!(got, expected);
        let first = again;

        // Another table of the schema has its own history.
        env.warehouse_on("other_facts", 1000).await;
        assert_eq!(env.migrations("other_facts").await.len(), expected.len());
        assert_eq!(env.migrations(TABLE).await, first);

        // Cold starts at once: every version applied and recorded once.
        let cfg = env.config("concurrent_facts", 1000);
        let mut cold_starts = tokio::task::JoinSet::new();
        for _ in 0..4 {
            let cfg = cfg.clone();
            cold_starts.spawn(async move {
                let wh = Warehouse::connect(&cfg).await?;
                wh.migrate().await?;
                wh.close().await;
                Ok::<(), StageError>(())
            });
        }
        while let Some(result) = cold_starts.join_next().await {
            result.unwrap().unwrap();
        }
        let got: Vec<i32> = env
            .migrations("concurrent_facts")
            .await
            .iter()
            .map(|(v, _, _)| *v)
            .collect();
        assert_eq!(got, expected.iter().map(|(v, _)| *v).collect::<Vec<_>>());
        let msft = rows("MSFT", 0, 3);
        let wh = env.warehouse_on("concurrent_facts", 1000).await;
        assert_eq!(
            wh.load(&ticker("MSFT"), &msft, Upsert).await.unwrap(),
            report(3, 3, 0, 0)
        );
        wh.close().await;
    }

    /// A database made by the 001 file before migrations were versioned (no
    /// `mdp_schema_migrations`): its 001 is recorded, not run, the rest
    /// applies, and every row stays.
    pub async fn a_table_from_before_the_versioning_is_recognised(env: Arc<Env>) {
        env.exec(&env.create_table_sql(TABLE)).await;
        let wh = Warehouse::connect(&env.config(TABLE, 1000)).await.unwrap();
        let msft = rows("MSFT", 0, 20);
        wh.load(&ticker("MSFT"), &msft, Upsert).await.unwrap();
        assert!(!env.has_migrations_table().await);
        let indexes = env.indexes(TABLE).await;

        wh.migrate().await.unwrap();
        let records = env.migrations(TABLE).await;
        assert_eq!(
            records[0].1, "create_fact_market_data (table existed: recorded, not run)",
            "{records:?}"
        );
        assert_eq!(records.len(), if env.db == Db::Postgres { 2 } else { 1 });
        assert_eq!(env.indexes(TABLE).await, indexes, "no index added twice");
        assert_identical(&wh.read_rows(None).await.unwrap(), &msft);
        wh.migrate().await.unwrap();
        assert_eq!(env.migrations(TABLE).await, records);
        wh.close().await;
    }

    pub async fn loads_from_the_lake_partitions(env: Arc<Env>) {
        let wh = env.warehouse(1000).await;
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::new(Arc::new(LocalStore::new(dir.path())));
        let msft = ticker("MSFT");
        let y2024 = rows("MSFT", 0, 30);
        let y2025 = rows("MSFT", 400, 10);
        let k2024 = put_partition(&lake, &y2024, 2024).await;
        let k2025 = put_partition(&lake, &y2025, 2025).await;
        let request = |keys: Vec<String>| mdp_core::messages::LoadRequest {
            v: 1,
            run_id: "test".into(),
            ticker: msft.clone(),
            partition_keys: keys,
            rows: 0,
            min_date: None,
            max_date: None,
        };

        let r = load_stage(&lake, &wh, &request(vec![k2025.clone()]), Upsert)
            .await
            .unwrap();
        assert_eq!(r, report(10, 10, 0, 0));
        // Repeated keys load once; partitions in year order.
        let keys = vec![k2025.clone(), k2024.clone(), k2025.clone()];
        let r = load_stage(&lake, &wh, &request(keys), Append)
            .await
            .unwrap();
        assert_eq!(r, report(40, 30, 0, 0));
        let all: Vec<CuratedRow> = y2024.iter().chain(&y2025).cloned().collect();
        assert_identical(&wh.read_rows(None).await.unwrap(), &all);

        let err = load_stage(
            &lake,
            &wh,
            &request(vec![
                "curated/market_data/ticker=AAPL/year=2024/part-0.parquet".into(),
            ]),
            Upsert,
        )
        .await
        .unwrap_err();
        assert_permanent(&err, &["is not a curated partition of MSFT"]);

        // truncate_insert loads every partition, whatever the message lists.
        let r = load_stage(&lake, &wh, &request(vec![k2025]), TruncateInsert)
            .await
            .unwrap();
        assert_eq!(r, report(40, 40, 0, 40));
        let r = reload_ticker(&lake, &wh, &msft, Upsert).await.unwrap();
        assert_eq!(r, report(40, 0, 0, 0));
        // An empty lake never wipes the warehouse.
        let empty = Lake::new(Arc::new(LocalStore::new(dir.path().join("none"))));
        let err = reload_ticker(&empty, &wh, &msft, TruncateInsert)
            .await
            .unwrap_err();
        assert_permanent(&err, &["no curated rows in the lake"]);
        assert_eq!(env.count(TABLE).await, 40);
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
async fn redshift_unreachable_is_transient_and_hides_the_password() {
    let started = Instant::now();
    let cfg = config(&[
        (
            "WAREHOUSE_URL",
            "redshift://etl:hunter2@127.0.0.1:1/dev".into(),
        ),
        ("WAREHOUSE_REDSHIFT_IAM_ROLE", "default".into()),
    ]);
    let err = Warehouse::connect(&cfg).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Transient, "{err}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert!(
        err.message.contains("redshift://etl:***@127.0.0.1:1/dev"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// A `redshift://` URL speaks the Postgres protocol: pointed at the local
/// Postgres (TLS off) it connects, and the Redshift load refuses what it
/// cannot do before sending any SQL.
#[tokio::test]
async fn redshift_url_connects_over_the_postgres_protocol() {
    let url = postgres_url();
    let Some(rest) = url.strip_prefix("postgres://") else {
        return;
    };
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    if !authority.rsplit('@').next().unwrap_or("").contains(':') {
        return; // no explicit port: redshift:// would default to 5439
    }
    let sep = if rest.contains('?') { '&' } else { '?' };
    let cfg = config(&[
        (
            "WAREHOUSE_URL",
            format!("redshift://{rest}{sep}sslmode=disable"),
        ),
        (
            "WAREHOUSE_REDSHIFT_IAM_ROLE",
            "arn:aws:iam::1:role/copy".into(),
        ),
    ]);
    let wh = Warehouse::connect(&cfg).await.unwrap();
    assert!(
        wh.describe().starts_with("redshift redshift://"),
        "{}",
        wh.describe()
    );
    assert_eq!(wh.kind(), mdp_core::config::WarehouseKind::Redshift);

    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::new(Arc::new(LocalStore::new(dir.path())));
    let keys = vec![mdp_core::Lake::curated_key(&ticker("MSFT"), 2024)];
    put_partition(&lake, &rows("MSFT", 0, 3), 2024).await;
    let err = wh
        .load_from_lake(&lake, &ticker("MSFT"), Some(&keys), Upsert)
        .await
        .unwrap_err();
    assert_permanent(
        &err,
        &["loads with COPY from S3", "MARKET_DATA_LAKE_URI", "file://"],
    );
    let err = wh
        .load(&ticker("MSFT"), &rows("MSFT", 0, 3), Upsert)
        .await
        .unwrap_err();
    assert_permanent(&err, &["from S3 (load_from_lake)"]);
    wh.close().await;
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

/// The original Airflow DDL, exactly (run with the test schema as search path).
const AIRFLOW_DDL: &str = "CREATE TABLE IF NOT EXISTS fact_market_data (
    id SERIAL PRIMARY KEY,
    ticker VARCHAR(10) NOT NULL,
    date DATE NOT NULL,
    open DECIMAL(18,6), high DECIMAL(18,6), low DECIMAL(18,6), close DECIMAL(18,6),
    volume BIGINT,
    sma_7 DECIMAL(18,6), sma_14 DECIMAL(18,6), sma_20 DECIMAL(18,6), ema_12 DECIMAL(18,6),
    macd DECIMAL(18,6), macd_signal DECIMAL(18,6), macd_histogram DECIMAL(18,6), rsi DECIMAL(18,6),
    bb_upper DECIMAL(18,6), bb_middle DECIMAL(18,6), bb_lower DECIMAL(18,6),
    volatility_20d DECIMAL(18,6), daily_return DECIMAL(18,6), daily_return_pct DECIMAL(18,6),
    currency VARCHAR(10), exchange VARCHAR(50), instrument_type VARCHAR(50),
    regular_market_price DECIMAL(18,6), fifty_two_week_high DECIMAL(18,6), fifty_two_week_low DECIMAL(18,6),
    long_name VARCHAR(255), short_name VARCHAR(100),
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP, updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    UNIQUE(ticker, date)
);";

/// The Airflow table's own columns, for before/after snapshots.
const AIRFLOW_COLUMNS: &str = "id, ticker, date, open, high, low, close, volume, sma_7, sma_14, \
    sma_20, ema_12, macd, macd_signal, macd_histogram, rsi, bb_upper, bb_middle, bb_lower, \
    volatility_20d, daily_return, daily_return_pct, currency, exchange, instrument_type, \
    regular_market_price, fifty_two_week_high, fifty_two_week_low, long_name, short_name, \
    created_at, updated_at";

impl Env {
    fn pg(&self) -> &PgPool {
        match &self.admin {
            Admin::Postgres(pool) => pool,
            Admin::Sqlite(_) => panic!("a Postgres test"),
        }
    }

    /// Every row as text, by id (the DECIMALs exactly as stored).
    async fn snapshot(&self, columns: &str) -> Vec<String> {
        sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT ({columns})::text FROM {} ORDER BY id",
            self.qualified(TABLE)
        )))
        .fetch_all(self.pg())
        .await
        .unwrap()
    }

    /// Columns with their full types, and index definitions with names.
    async fn shape(&self) -> (Vec<String>, Vec<String>) {
        let columns = sqlx::query_scalar(
            "SELECT attname || ' ' || format_type(atttypid, atttypmod) || \
             coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '') \
             FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
             WHERE attrelid = format('%I.%I', $1::text, $2::text)::regclass AND attnum > 0 AND NOT attisdropped \
             ORDER BY attnum",
        )
        .bind(&self.schema)
        .bind(TABLE)
        .fetch_all(self.pg())
        .await
        .unwrap();
        let mut indexes: Vec<String> = sqlx::query_scalar(
            "SELECT indexrelid::regclass::text || ' ' || split_part(pg_get_indexdef(indexrelid), ' USING ', 2) \
             FROM pg_index WHERE indrelid = format('%I.%I', $1::text, $2::text)::regclass",
        )
        .bind(&self.schema)
        .bind(TABLE)
        .fetch_all(self.pg())
        .await
        .unwrap();
        indexes.sort();
        (columns, indexes)
    }
}

/// Rows whose values fit DECIMAL(18,6) (under 10^12).
fn fitting(mut rows: Vec<CuratedRow>) -> Vec<CuratedRow> {
    for r in &mut rows {
        r.meta.fifty_two_week_high = Some(200.0);
        r.meta.fifty_two_week_low = Some(50.0);
    }
    rows
}

/// The stored value of a DECIMAL(18,6) read back as f64 is within the rounding.
fn assert_close(actual: &[CuratedRow], expected: &[CuratedRow]) {
    assert_eq!(actual.len(), expected.len(), "row count");
    for (a, e) in actual.iter().zip(expected) {
        assert_eq!((a.ticker.as_str(), a.date()), (e.ticker.as_str(), e.date()));
        assert!(
            (a.bar.close - e.bar.close).abs() <= 5e-7,
            "{} vs {}",
            a.bar.close,
            e.bar.close
        );
        // adj_close is the DOUBLE PRECISION column migrate added: exact.
        assert_eq!(
            a.bar.adj_close.map(f64::to_bits),
            e.bar.adj_close.map(f64::to_bits)
        );
        assert_eq!(a.bar.volume, e.bar.volume);
        assert_eq!(a.meta.long_name, e.meta.long_name);
        assert_eq!(a.updated_at, e.updated_at);
    }
}

/// The exact Airflow DDL, with rows inserted by plain INSERTs: migrate adopts
/// it in place (every row and value kept, adj_close and the indexes added,
/// ticker widened, DECIMALs left alone, versions recorded), twice is a no-op,
/// and then every strategy loads into it, each as one transaction.
#[tokio::test]
async fn postgres_migrates_the_airflow_table_in_place_and_loads_into_it() {
    run(Db::Postgres, |env: Arc<Env>| async move {
        let table = env.qualified(TABLE);
        env.exec(&format!(
            "CREATE SCHEMA \"{0}\"; BEGIN; SET LOCAL search_path TO \"{0}\"; {AIRFLOW_DDL} COMMIT;",
            env.schema
        ))
        .await;
        // Rows as the Airflow pipeline left them, and one index of its tuning
        // guide under its own name (migrate must not add a twin).
        env.exec(&format!(
            "INSERT INTO {table} (ticker, date, open, high, low, close, volume, sma_7, rsi, currency, \
             exchange, instrument_type, regular_market_price, fifty_two_week_high, fifty_two_week_low, \
             long_name, short_name) VALUES \
             ('AAPL', '2024-01-02', 187.150002, 188.440002, 183.885, 185.639999, 82488700, NULL, 54.321012, \
              'USD', 'NMS', 'EQUITY', 185.64, 199.62, 164.08, 'Apple Inc.', 'Apple'), \
             ('AAPL', '2024-01-03', 184.220001, 185.880005, 183.429993, 184.25, 58414500, 186.1, 48.5, \
              'USD', 'NMS', 'EQUITY', 184.25, 199.62, 164.08, 'Apple Inc.', 'Apple'); \
             INSERT INTO {table} (ticker, date, close, volume, long_name, created_at, updated_at) VALUES \
             ('MSFT', '2024-01-02', 370.869995, 25258600, 'Microsoft Corporation', '2024-01-02 21:00:00', '2024-01-02 21:00:00'), \
             ('MSFT', '2024-01-03', 370.600006, NULL, NULL, '2024-01-03 21:00:00', '2024-01-03 21:30:00.123456'); \
             CREATE INDEX idx_market_data_ticker_date ON {table} (ticker, date DESC);"
        ))
        .await;
        let before = env.snapshot(AIRFLOW_COLUMNS).await;
        assert_eq!(before.len(), 4);
        let (columns_before, _) = env.shape().await;

        let wh = env.warehouse(1000).await; // migrates
        assert_eq!(env.snapshot(AIRFLOW_COLUMNS).await, before, "every row and value kept");
        let (columns, indexes) = env.shape().await;
        let mut expected_columns: Vec<String> = columns_before
            .iter()
            .map(|c| c.replace("ticker character varying(10)", "ticker character varying(16)"))
            .collect();
        expected_columns.push("adj_close double precision".into());
        assert_eq!(columns, expected_columns);
        assert!(columns.iter().any(|c| c == "close numeric(18,6)"), "{columns:?}");
        assert!(columns.iter().any(|c| c.starts_with("id integer default nextval(")), "{columns:?}");
        let s = &env.schema;
        let mut expected_indexes = vec![
            format!("{s}.fact_market_data_pkey btree (id)"),
            format!("{s}.fact_market_data_ticker_date_key btree (ticker, date)"),
            format!("{s}.idx_market_data_ticker_date btree (ticker, date DESC)"),
            format!("{s}.idx_fact_market_data_ticker btree (ticker)"),
            format!("{s}.idx_fact_market_data_date btree (date DESC)"),
        ];
        expected_indexes.sort();
        assert_eq!(indexes, expected_indexes);
        let records = env.migrations(TABLE).await;
        let got: Vec<(i32, &str)> = records.iter().map(|(v, d, _)| (*v, d.as_str())).collect();
        assert_eq!(
            got,
            [
                (1, "create_fact_market_data (table existed: recorded, not run)"),
                (2, "adopt_airflow_table")
            ]
        );

        // Twice: nothing changes, not even the records' times.
        wh.migrate().await.unwrap();
        assert_eq!(env.migrations(TABLE).await, records);
        assert_eq!(env.shape().await, (columns.clone(), indexes.clone()));
        assert_eq!(env.snapshot(AIRFLOW_COLUMNS).await, before);

        let id_of = |ticker: &'static str, date: &'static str| {
            let env = env.clone();
            async move {
                sqlx::query_scalar::<_, i32>(AssertSqlSafe(format!(
                    "SELECT id FROM {} WHERE ticker = $1 AND date = $2::date",
                    env.qualified(TABLE)
                )))
                .bind(ticker)
                .bind(date)
                .fetch_one(env.pg())
                .await
                .unwrap()
            }
        };
        let aapl_first = id_of("AAPL", "2024-01-02").await;
        let msft_rows = |env: Arc<Env>| async move {
            sqlx::query_scalar::<_, String>(AssertSqlSafe(format!(
                "SELECT ({AIRFLOW_COLUMNS})::text FROM {} WHERE ticker = 'MSFT' ORDER BY id",
                env.qualified(TABLE)
            )))
            .fetch_all(env.pg())
            .await
            .unwrap()
        };
        let msft_before = msft_rows(env.clone()).await;

        // Upsert: the two stored AAPL days are updated in place, three are new.
        let aapl = fitting(rows("AAPL", 0, 5));
        assert_eq!(wh.load(&ticker("AAPL"), &aapl, Upsert).await.unwrap(), report(5, 3, 2, 0));
        assert_eq!(env.count(TABLE).await, 7);
        assert_eq!(id_of("AAPL", "2024-01-02").await, aapl_first, "updated in place");
        let new_id = id_of("AAPL", "2024-01-06").await;
        assert!(new_id > 4, "serial continues: {new_id}");
        let back = wh.read_rows(Some(&ticker("AAPL"))).await.unwrap();
        assert_close(&back, &aapl);
        // Updated rows keep the created_at the Airflow pipeline stored; new rows get theirs.
        assert_ne!(back[0].created_at, aapl[0].created_at);
        assert_eq!(back[4].created_at, aapl[4].created_at);
        // Reloading the same rows rewrites nothing: compared after the DECIMAL cast.
        assert_eq!(
            wh.load(&ticker("AAPL"), &later(aapl.clone(), TimeDelta::days(1)), Upsert)
                .await
                .unwrap(),
            report(5, 0, 0, 0)
        );

        // Append: days 3 and 4 exist, 5 and 6 are new.
        let more = fitting(rows("AAPL", 3, 4));
        assert_eq!(wh.load(&ticker("AAPL"), &more, Append).await.unwrap(), report(4, 2, 0, 0));
        assert_eq!(env.count(TABLE).await, 9);

        // Truncate_insert: AAPL's 7 rows replaced; MSFT's stored rows untouched.
        let replacement = fitting(rows("AAPL", 10, 3));
        assert_eq!(
            wh.load(&ticker("AAPL"), &replacement, TruncateInsert).await.unwrap(),
            report(3, 3, 0, 7)
        );
        assert_eq!(env.count(TABLE).await, 5);
        assert_close(&wh.read_rows(Some(&ticker("AAPL"))).await.unwrap(), &replacement);
        assert_eq!(msft_rows(env.clone()).await, msft_before);
        let distinct: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT count(DISTINCT (ticker, date)) FROM {table}"
        )))
        .fetch_one(env.pg())
        .await
        .unwrap();
        assert_eq!(distinct, 5, "never a duplicate");

        // DECIMAL(18,6) rounding of the loaded doubles (15 significant digits,
        // then half away from zero to 6 places), and a 12-character ticker
        // the widened column now holds.
        let long = ticker("ABCDEFGHIJ.K");
        let mut r = fitting(rows("ABCDEFGHIJ.K", 0, 1)).remove(0);
        r.bar.open = Some(1.0 / 3.0);
        r.bar.high = Some(5e-7);
        r.bar.low = Some(-5e-7);
        r.bar.close = 123_456_789_012.345_67;
        r.indicators.sma_7 = Some(2.5e-7);
        r.indicators.rsi = Some(0.123_456_5);
        r.bar.adj_close = Some(1.0 / 3.0);
        assert_eq!(wh.load(&long, &[r], Upsert).await.unwrap(), report(1, 1, 0, 0));
        let stored: (String, String, String, String, String, String, f64) = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT open::text, high::text, low::text, close::text, sma_7::text, rsi::text, adj_close \
             FROM {table} WHERE ticker = 'ABCDEFGHIJ.K'"
        )))
        .fetch_one(env.pg())
        .await
        .unwrap();
        assert_eq!(
            stored,
            (
                "0.333333".into(),
                "0.000001".into(),
                "-0.000001".into(),
                "123456789012.346000".into(),
                "0.000000".into(),
                "0.123457".into(),
                1.0 / 3.0
            )
        );
        // 10^12 does not fit: a permanent error, nothing written.
        let mut too_big = fitting(rows("AAPL", 20, 2));
        too_big[1].bar.close = 1e12;
        let full = env.snapshot(&format!("{AIRFLOW_COLUMNS}, adj_close")).await;
        let err = wh.load(&ticker("AAPL"), &too_big, Upsert).await.unwrap_err();
        assert_permanent(&err, &["numeric field overflow"]);
        assert_eq!(env.snapshot(&format!("{AIRFLOW_COLUMNS}, adj_close")).await, full);

        // A failure between staging and merge (a trigger refusing one row)
        // leaves the table as it was, for every strategy.
        env.exec(&format!(
            "CREATE FUNCTION \"{s}\".refuse() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN IF NEW.ticker = 'AAPL' AND NEW.date = DATE '2024-01-16' THEN \
             RAISE EXCEPTION 'refused AAPL 2024-01-16'; END IF; RETURN NEW; END $$; \
             CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON {table} FOR EACH ROW EXECUTE FUNCTION \"{s}\".refuse()"
        ))
        .await;
        let mut incoming = later(fitting(rows("AAPL", 10, 5)), TimeDelta::days(2)); // 2 new, ending 2024-01-16
        incoming[0].bar.close += 1.0;
        for strategy in strategy_names() {
            let err = wh.load(&ticker("AAPL"), &incoming, strategy).await.unwrap_err();
            assert_permanent(&err, &["loading AAPL into", "refused AAPL 2024-01-16"]);
            assert_eq!(env.snapshot(&format!("{AIRFLOW_COLUMNS}, adj_close")).await, full, "{strategy}");
        }
        env.exec(&format!("DROP TRIGGER refuse ON {table}")).await;
        assert_eq!(wh.load(&ticker("AAPL"), &incoming, Upsert).await.unwrap(), report(5, 2, 1, 0));
        wh.close().await;
    })
    .await;
}

/// A warm function's pooled connection can be cut by the server (idle
/// timeout, failover, restart): the next load gets a new one.
#[tokio::test]
async fn postgres_pool_replaces_a_connection_the_server_dropped() {
    let app = format!("mdp_wh_test_drop_{:016x}", fastrand::u64(..));
    let schema = app.clone();
    let url = format!("{}?application_name={app}", postgres_url());
    let wh = Warehouse::connect(&config(&[
        ("WAREHOUSE_URL", url),
        ("WAREHOUSE_SCHEMA", schema.clone()),
        ("WAREHOUSE_POOL_SIZE", "1".into()),
    ]))
    .await
    .unwrap();
    wh.migrate().await.unwrap();
    let t = ticker("DROP");
    wh.load(&t, &rows("DROP", 0, 10), Upsert).await.unwrap();

    let admin = PgPool::connect(&postgres_url()).await.unwrap();
    let killed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1) t",
    )
    .bind(&app)
    .fetch_one(&admin)
    .await
    .unwrap();
    assert!(killed >= 1, "the pooled connection was there to drop");

    let result = wh.load(&t, &rows("DROP", 0, 20), Upsert).await;
    let rows_after = wh.read_rows(Some(&t)).await;
    sqlx::query(AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
    )))
    .execute(&admin)
    .await
    .unwrap();
    let report = result.expect("the next load reconnects");
    assert_eq!(report.inserted, 10);
    assert_identical(&rows_after.unwrap(), &rows("DROP", 0, 20));
}
