//! A scratch lake and SQLite warehouse, and the `mdp` binary run against them
//! and a local chart server: what the command tests share.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use mdp_core::{Config, CuratedRow, Lake, LocalStore, Ticker};
use mdp_devtools::ChartReplayServer;

pub const MSFT: &str = "msft_1d_range_2021-02-01_2022-01-28_dividends.json";

pub fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/yahoo")
        .join(name);
    std::fs::read(path).unwrap()
}

/// A scratch lake and SQLite warehouse served by `server`.
pub struct Scratch {
    pub dir: tempfile::TempDir,
    pub base_url: String,
}

impl Scratch {
    pub fn new(server: &ChartReplayServer) -> Scratch {
        Scratch {
            dir: tempfile::tempdir().unwrap(),
            base_url: server.base_url(),
        }
    }

    pub fn lake_dir(&self) -> PathBuf {
        self.dir.path().join("lake")
    }

    pub fn vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("YAHOO_FINANCE_API_BASE_URL", self.base_url.clone()),
            (
                "MARKET_DATA_LAKE_URI",
                format!("file://{}", self.lake_dir().display()),
            ),
            (
                "WAREHOUSE_URL",
                format!(
                    "sqlite://{}",
                    self.dir.path().join("warehouse.db").display()
                ),
            ),
            ("MARKET_DATA_RETRY_DELAY", "0.05".into()),
        ]
    }

    pub fn command(&self, args: &[&str], extra: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mdp"));
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "warn");
        for (k, v) in self.vars() {
            cmd.env(k, v);
        }
        for (k, v) in extra {
            cmd.env(k, v);
        }
        cmd
    }

    pub fn run(&self, args: &[&str], extra: &[(&str, &str)]) -> Output {
        self.command(args, extra).output().unwrap()
    }

    pub fn config(&self) -> Config {
        let vars = self.vars();
        Config::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())).unwrap()
    }

    pub async fn lake_rows(&self) -> Vec<CuratedRow> {
        let lake = Lake::new(Arc::new(LocalStore::new(self.lake_dir())));
        mdp_lake::read_history(&lake, &Ticker::parse("MSFT").unwrap())
            .await
            .unwrap()
    }

    pub async fn warehouse_rows(&self) -> Vec<CuratedRow> {
        let warehouse = mdp_warehouse::connect_rows(&self.config()).await.unwrap();
        let rows = warehouse.read_rows(None).await.unwrap();
        warehouse.close().await;
        rows
    }

    pub fn watermark(&self) -> serde_json::Value {
        let text = std::fs::read(self.lake_dir().join("state/ticker=MSFT.json")).unwrap();
        serde_json::from_slice(&text).unwrap()
    }
}

pub fn text(output: &Output) -> String {
    format!(
        "status {:?}\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

pub async fn msft_server() -> ChartReplayServer {
    let server = ChartReplayServer::start().await.unwrap();
    server.add_series("MSFT", &fixture(MSFT)).unwrap();
    server
}

/// Same values, bit for bit, ignoring the timestamps (a rerun stamps its rows
/// with its own start).
pub fn assert_same_values(actual: &[CuratedRow], expected: &[CuratedRow], what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: row count");
    for (a, e) in actual.iter().zip(expected) {
        assert!(
            a.same_values(e),
            "{what}: {} {} differs",
            a.ticker,
            a.date()
        );
    }
}
