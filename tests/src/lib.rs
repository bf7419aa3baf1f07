//! Support for the workspace integration tests: fixtures, a scratch lake and
//! warehouse per test, and independent expectations read from the oracle files.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use mdp_core::{Config, CuratedRow, Ticker};
use mdp_devtools::ChartReplayServer;
use mdp_pipeline::Pipeline;

pub const MSFT: &str = "msft_1d_range_2021-02-01_2022-01-28_dividends.json";
pub const NVDA: &str = "nvda_1d_range_2021-02-01_2022-01-28_split.json";
pub const BTC: &str = "btc-usd_1d_range_2020_nulls.json";
pub const AAPL: &str = "aapl_1d_range_2020-08-31_2020-11-06_div_split.json";

pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

pub fn yahoo_fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixtures_dir().join("yahoo").join(name)).unwrap()
}

pub fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

pub fn ticker(s: &str) -> Ticker {
    Ticker::parse(s).unwrap()
}

/// The Postgres the tests use (`MDP_TEST_POSTGRES_URL`, default the local `test` database).
pub fn postgres_url() -> String {
    std::env::var("MDP_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A replay server serving the recorded MSFT, NVDA, BTC-USD and AAPL series.
pub async fn recorded_server() -> ChartReplayServer {
    let server = ChartReplayServer::start().await.unwrap();
    for (symbol, file) in [
        ("MSFT", MSFT),
        ("NVDA", NVDA),
        ("BTC-USD", BTC),
        ("AAPL", AAPL),
    ] {
        server.add_series(symbol, &yahoo_fixture(file)).unwrap();
    }
    server
}

/// Where the warehouse of a scratch environment lives.
pub enum Store {
    Sqlite,
    /// A fresh schema in the test Postgres, dropped with the environment.
    Postgres,
}

/// A scratch lake folder and warehouse, with the configuration pointing at them.
pub struct Scratch {
    pub dir: tempfile::TempDir,
    pub vars: HashMap<String, String>,
    pub schema: Option<String>,
}

impl Scratch {
    pub fn new(server: &ChartReplayServer, store: Store) -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        let mut vars = HashMap::new();
        vars.insert("YAHOO_FINANCE_API_BASE_URL".into(), server.base_url());
        vars.insert(
            "MARKET_DATA_LAKE_URI".into(),
            format!("file://{}", dir.path().join("lake").display()),
        );
        vars.insert("MARKET_DATA_RETRY_DELAY".into(), "0.05".into());
        let schema = match store {
            Store::Sqlite => {
                vars.insert(
                    "WAREHOUSE_URL".into(),
                    format!("sqlite://{}", dir.path().join("warehouse.db").display()),
                );
                None
            }
            Store::Postgres => {
                let schema = format!("mdp_it_{:016x}", fastrand::u64(..));
                vars.insert("WAREHOUSE_URL".into(), postgres_url());
                vars.insert("WAREHOUSE_SCHEMA".into(), schema.clone());
                Some(schema)
            }
        };
        Scratch { dir, vars, schema }
    }

    pub fn set(&mut self, key: &str, value: &str) -> &mut Scratch {
        self.vars.insert(key.into(), value.into());
        self
    }

    pub fn config(&self) -> Config {
        Config::from_lookup(|k| self.vars.get(k).cloned()).unwrap()
    }

    pub fn lake_dir(&self) -> PathBuf {
        self.dir.path().join("lake")
    }

    pub async fn pipeline(&self) -> Pipeline {
        Pipeline::from_config(self.config()).await.unwrap()
    }

    /// Drops the Postgres schema, if any. Call at the end of a test.
    pub async fn cleanup(&self) {
        if let Some(schema) = &self.schema {
            let pool = sqlx::PgPool::connect(&postgres_url()).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
            )))
            .execute(&pool)
            .await
            .unwrap();
            pool.close().await;
        }
    }
}

/// Expected indicator values from the independent oracle
/// (tests/fixtures/indicators/*_expected.csv): date → (close, 14 indicators).
pub fn oracle(name: &str) -> Vec<(NaiveDate, f64, Vec<Option<f64>>)> {
    let text = std::fs::read_to_string(fixtures_dir().join("indicators").join(name)).unwrap();
    text.lines()
        .skip(1)
        .map(|line| {
            let cells: Vec<&str> = line.split(',').collect();
            let values = cells[2..]
                .iter()
                .map(|c| {
                    if c.is_empty() {
                        None
                    } else {
                        Some(c.parse().unwrap())
                    }
                })
                .collect();
            (d(cells[0]), cells[1].parse().unwrap(), values)
        })
        .collect()
}

/// Asserts stored rows agree with the oracle within the DESIGN.md section 5
/// tolerance, row for row, with the same null pattern.
pub fn assert_rows_match_oracle(
    rows: &[CuratedRow],
    expected: &[(NaiveDate, f64, Vec<Option<f64>>)],
) {
    assert_eq!(rows.len(), expected.len(), "row count");
    for (row, (date, close, values)) in rows.iter().zip(expected) {
        assert_eq!(row.date(), *date);
        assert_eq!(row.bar.close, *close, "close on {date}");
        for (k, (got, want)) in row.indicators.values().iter().zip(values).enumerate() {
            match (got, want) {
                (None, None) => {}
                (Some(a), Some(b)) => assert!(
                    (a - b).abs() <= 1e-9 * b.abs().max(close.abs()),
                    "{} on {date}: {a} vs {b}",
                    mdp_core::row::INDICATOR_COLUMNS[k]
                ),
                _ => panic!(
                    "{} on {date}: {got:?} vs {want:?}",
                    mdp_core::row::INDICATOR_COLUMNS[k]
                ),
            }
        }
    }
}

/// Asserts two row sets are equal in every column but the timestamps.
/// Every row of the configured warehouse (SQLite or Postgres), of one
/// ticker or all, read back through a connection of its own.
pub async fn warehouse_rows(config: &Config, ticker: Option<&Ticker>) -> Vec<CuratedRow> {
    let warehouse = mdp_warehouse::connect_rows(config)
        .await
        .expect("a SQLite or Postgres warehouse");
    let rows = warehouse.read_rows(ticker).await.unwrap();
    warehouse.close().await;
    rows
}

pub fn assert_same_values(a: &[CuratedRow], b: &[CuratedRow]) {
    assert_eq!(a.len(), b.len(), "row count");
    for (x, y) in a.iter().zip(b) {
        assert!(
            x.same_values(y),
            "rows differ on {} {}:\n{x:?}\n{y:?}",
            x.ticker,
            x.date()
        );
    }
}
