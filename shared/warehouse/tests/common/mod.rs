#![allow(dead_code, unused_imports)]
//! The warehouse against real databases: a SQLite file in a temporary folder,
//! and Postgres (`MDP_TEST_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`) in a schema of its own per test,
//! dropped at the end, so tests run in parallel.
//!
//! Every scenario runs on both backends: `<scenario>::sqlite` and `<scenario>::postgres`.
//! This module holds the rows, the environments and the runner they share.

pub use std::collections::HashMap;
pub use std::future::Future;
pub use std::sync::Arc;
pub use std::time::{Duration, Instant};

pub use chrono::{DateTime, NaiveDate, TimeDelta, TimeZone, Utc};
pub use mdp_core::config::LoadStrategy::{self, Append, TruncateInsert, Upsert};
pub use mdp_core::row::{COLUMNS, DailyBar};
pub use mdp_core::{
    Config, CuratedRow, ErrorClass, Indicators, InstrumentMeta, Lake, LocalStore, StageError,
    Ticker,
};
pub use mdp_warehouse::{
    CuratedBatch, LoadReport, Partitions, RowWarehouse, WarehouseError, connect_rows, load_stage,
    reload_ticker,
};
pub use sqlx::{AssertSqlSafe, PgPool, Row, SqlitePool};

pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
pub const TABLE: &str = "fact_market_data";

pub fn postgres_url() -> String {
    std::env::var("MDP_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| DEFAULT_POSTGRES_URL.into())
}

pub fn config(vars: &[(&str, String)]) -> Config {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    Config::from_lookup(|k| map.get(k).cloned()).expect("valid test configuration")
}

pub fn ticker(s: &str) -> Ticker {
    Ticker::parse(s).unwrap()
}

// ---------------------------------------------------------------------------
// Test rows

pub fn day(i: usize) -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 1, 2).unwrap() + TimeDelta::days(i as i64)
}

pub fn base_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap()
}

/// `n` rows of `ticker` from day `first`, every column filled, with NULLs where
/// the pipeline has them (warm-up indicators, a missing open, volume and long
/// name) and floats that only survive a bit-exact round trip. Timestamps are
/// whole microseconds.
pub fn rows(ticker: &str, first: usize, n: usize) -> Vec<CuratedRow> {
    (first..first + n).map(|i| row(ticker, i)).collect()
}

pub fn row(ticker: &str, i: usize) -> CuratedRow {
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
pub fn assert_identical(actual: &[CuratedRow], expected: &[CuratedRow]) {
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

pub fn report(rows_in: usize, inserted: u64, updated: u64, deleted: u64) -> LoadReport {
    LoadReport {
        rows_in,
        inserted,
        updated,
        deleted,
    }
}

pub fn later(mut rows: Vec<CuratedRow>, by: TimeDelta) -> Vec<CuratedRow> {
    for r in &mut rows {
        r.updated_at += by;
    }
    rows
}

// ---------------------------------------------------------------------------
// Test environment: a database of each kind, with a side connection for raw SQL

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

pub enum Admin {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

pub struct Env {
    pub db: Db,
    /// Postgres loads always COPY through the staging table (no direct loads).
    pub copy_only: bool,
    pub url: String,
    pub schema: String,
    pub admin: Admin,
    _dir: Option<tempfile::TempDir>,
}

impl Env {
    pub async fn new(db: Db) -> Env {
        match db {
            Db::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                // A folder that does not exist yet: connect creates it.
                let path = dir.path().join("nested/deeper/warehouse.db");
                let url = format!("sqlite://{}", path.display());
                let env_config = config(&[("WAREHOUSE_URL", url.clone())]);
                // The warehouse creates the file; the side connection opens it.
                connect_rows(&env_config).await.unwrap().close().await;
                assert!(path.is_file(), "sqlite file created");
                let admin = SqlitePool::connect(&url).await.unwrap();
                Env {
                    db,
                    copy_only: false,
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
                    copy_only: false,
                    url,
                    schema,
                    admin: Admin::Postgres(admin),
                    _dir: None,
                }
            }
        }
    }

    pub async fn cleanup(&self) {
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

    pub fn config(&self, table: &str, batch_size: usize) -> Config {
        let direct_load_max_rows = if self.copy_only { "0" } else { "1000" };
        config(&[
            ("WAREHOUSE_URL", self.url.clone()),
            ("WAREHOUSE_SCHEMA", self.schema.clone()),
            ("WAREHOUSE_TABLE_MARKET_DATA", table.to_string()),
            ("WAREHOUSE_BATCH_SIZE", batch_size.to_string()),
            (
                "WAREHOUSE_DIRECT_LOAD_MAX_ROWS",
                direct_load_max_rows.into(),
            ),
        ])
    }

    /// A connected warehouse on `table` with its table created.
    pub async fn warehouse_on(&self, table: &str, batch_size: usize) -> Arc<dyn RowWarehouse> {
        let wh = connect_rows(&self.config(table, batch_size)).await.unwrap();
        wh.migrate().await.unwrap();
        wh
    }

    pub async fn warehouse(&self, batch_size: usize) -> Arc<dyn RowWarehouse> {
        self.warehouse_on(TABLE, batch_size).await
    }

    pub fn qualified(&self, table: &str) -> String {
        match self.db {
            Db::Sqlite => format!("\"{table}\""),
            Db::Postgres => format!("\"{}\".\"{table}\"", self.schema),
        }
    }

    pub async fn exec(&self, sql: &str) {
        let sql = AssertSqlSafe(sql.to_string());
        match &self.admin {
            Admin::Sqlite(pool) => sqlx::raw_sql(sql).execute(pool).await.map(drop),
            Admin::Postgres(pool) => sqlx::raw_sql(sql).execute(pool).await.map(drop),
        }
        .unwrap();
    }

    /// Rows of `table` counted with plain SQL (duplicates would show here).
    pub async fn count(&self, table: &str) -> i64 {
        let sql = AssertSqlSafe(format!("SELECT count(*) FROM {}", self.qualified(table)));
        match &self.admin {
            Admin::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
            Admin::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
        }
        .unwrap()
    }

    /// (name, declared type) of the table's columns, in order.
    pub async fn columns(&self, table: &str) -> Vec<(String, String)> {
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
    pub async fn indexes(&self, table: &str) -> Vec<String> {
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
    pub async fn migrations(&self, table: &str) -> Vec<(i32, String, String)> {
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
    pub async fn has_migrations_table(&self) -> bool {
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
    pub fn create_table_sql(&self, table: &str) -> String {
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
pub async fn put_partition(lake: &Lake, rows: &[CuratedRow], year: i32) -> String {
    let key = Lake::curated_key(&ticker(&rows[0].ticker), year);
    let bytes =
        mdp_lake::encode_parquet(rows, mdp_core::config::ParquetCompression::Snappy).unwrap();
    lake.store().put(&key, bytes).await.unwrap();
    key
}

/// Runs `scenario` on a fresh environment of `db` and cleans up, also when
/// the scenario fails.
pub async fn run<F, Fut>(db: Db, scenario: F)
where
    F: FnOnce(Arc<Env>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    run_in(Env::new(db).await, scenario).await
}

/// [`run`] on Postgres with every load going through COPY and the staging
/// table, the way loads of more than WAREHOUSE_DIRECT_LOAD_MAX_ROWS go.
pub async fn run_copy_only<F, Fut>(scenario: F)
where
    F: FnOnce(Arc<Env>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut env = Env::new(Db::Postgres).await;
    env.copy_only = true;
    run_in(env, scenario).await
}

async fn run_in<F, Fut>(env: Env, scenario: F)
where
    F: FnOnce(Arc<Env>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let env = Arc::new(env);
    let outcome = tokio::spawn(scenario(env.clone())).await;
    env.cleanup().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

#[macro_export]
macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test]
            async fn sqlite() {
                $crate::common::run($crate::common::Db::Sqlite, $crate::scenarios::$scenario).await;
            }

            #[tokio::test]
            async fn postgres() {
                $crate::common::run($crate::common::Db::Postgres, $crate::scenarios::$scenario).await;
            }
        }
    )*};
}

/// [`on_both_backends`], and Postgres once more with every load through
/// COPY (`copy_path::<scenario>`): the load scenarios hold for both ways
/// Postgres loads.
#[macro_export]
macro_rules! on_every_load_path {
    ($($scenario:ident),* $(,)?) => {
        $crate::on_both_backends!($($scenario),*);

        mod copy_path {$(
            #[tokio::test]
            async fn $scenario() {
                $crate::common::run_copy_only($crate::scenarios::$scenario).await;
            }
        )*}
    };
}

pub fn assert_permanent(err: StageError, needles: &[&str]) {
    assert_eq!(err.class, ErrorClass::Permanent, "{err}");
    for needle in needles {
        assert!(err.message().contains(needle), "{needle:?} not in {err}");
    }
}

pub fn strategy_names() -> [LoadStrategy; 3] {
    [Upsert, Append, TruncateInsert]
}
