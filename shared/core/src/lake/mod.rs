//! The lake (DESIGN.md section 4, contract): key layout, the watermark, and
//! the object store port with its local-filesystem adapter.

mod failures;
mod local;
mod runs;
mod state;
mod store;

use std::sync::Arc;

use chrono::NaiveDate;

use crate::ticker::Ticker;

pub use failures::{Failure, FailureRecord};
pub use local::LocalStore;
pub use runs::{RunRecord, StageOutcome, StageRecord};
pub use state::{INDICATOR_TAIL_BARS, IndicatorTail, LoadMark, TailBar, Watermark};
pub use store::{ObjectStore, StoreError, StoreLock, check_key};

/// Per-ticker locks of one process, shared by every clone of a [`Lake`].
type TickerMutexes =
    std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>;

/// A ticker's writes are serialised while this is held (dropping releases).
pub struct TickerLock {
    _process: tokio::sync::OwnedMutexGuard<()>,
    _store: StoreLock,
}

/// Typed access to the lake layout over any [`ObjectStore`].
#[derive(Clone)]
pub struct Lake {
    store: Arc<dyn ObjectStore>,
    ticker_locks: Arc<TickerMutexes>,
}

impl Lake {
    pub fn new(store: Arc<dyn ObjectStore>) -> Lake {
        Lake {
            store,
            ticker_locks: Arc::default(),
        }
    }

    /// Serialises the writers of one ticker's history and state: in this
    /// process (concurrent runs or messages), and across processes as far as
    /// the store can ([`ObjectStore::lock`]). Concurrent runs of one ticker
    /// then end exactly as if run one after the other.
    pub async fn lock_ticker(&self, ticker: &Ticker) -> Result<TickerLock, StoreError> {
        let name = format!("ticker={}", ticker.partition_value());
        let mutex = {
            let mut locks = self
                .ticker_locks
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            locks.entry(name.clone()).or_default().clone()
        };
        let process = mutex.lock_owned().await;
        let store = self.store.lock(&name).await?;
        Ok(TickerLock {
            _process: process,
            _store: store,
        })
    }

    pub fn store(&self) -> &dyn ObjectStore {
        self.store.as_ref()
    }

    pub fn uri(&self) -> String {
        self.store.uri()
    }

    pub fn raw_key(ticker: &Ticker, start: NaiveDate, end: NaiveDate) -> String {
        format!(
            "raw/yahoo/chart/ticker={}/{start}_{end}.json",
            ticker.partition_value()
        )
    }

    pub fn curated_prefix(ticker: &Ticker) -> String {
        format!("curated/market_data/ticker={}/", ticker.partition_value())
    }

    pub fn curated_key(ticker: &Ticker, year: i32) -> String {
        format!("{}year={year}/part-0.parquet", Self::curated_prefix(ticker))
    }

    /// The ticker's dividends and splits (one file, every action reported so far).
    pub fn corporate_actions_key(ticker: &Ticker) -> String {
        format!(
            "curated/corporate_actions/ticker={}/part-0.parquet",
            ticker.partition_value()
        )
    }

    /// The ticker's soft-rule findings, one per date and rule.
    pub fn quality_findings_key(ticker: &Ticker) -> String {
        format!(
            "quality/findings/ticker={}/part-0.parquet",
            ticker.partition_value()
        )
    }

    /// The ticker's quarantined bars: every bar a hard rule kept out of the
    /// curated zone, with its reasons and raw response.
    pub fn quarantine_key(ticker: &Ticker) -> String {
        format!(
            "quarantine/market_data/ticker={}/part-0.parquet",
            ticker.partition_value()
        )
    }

    pub fn state_key(ticker: &Ticker) -> String {
        format!("state/ticker={}.json", ticker.partition_value())
    }

    /// The year a curated key belongs to, if it is one of this ticker's partitions.
    pub fn partition_year(ticker: &Ticker, key: &str) -> Option<i32> {
        key.strip_prefix(&Self::curated_prefix(ticker))?
            .strip_suffix("/part-0.parquet")?
            .strip_prefix("year=")?
            .parse()
            .ok()
    }

    /// Every curated partition of the ticker, oldest year first.
    pub async fn curated_partitions(
        &self,
        ticker: &Ticker,
    ) -> Result<Vec<(i32, String)>, StoreError> {
        let mut parts: Vec<(i32, String)> = self
            .store
            .list(&Self::curated_prefix(ticker))
            .await?
            .into_iter()
            .filter_map(|k| Self::partition_year(ticker, &k).map(|y| (y, k)))
            .collect();
        parts.sort();
        Ok(parts)
    }

    /// Every ticker with curated partitions, from the `ticker=` folder names.
    pub async fn curated_tickers(&self) -> Result<Vec<Ticker>, StoreError> {
        let mut tickers: Vec<Ticker> = Vec::new();
        for key in self.store.list("curated/market_data/").await? {
            let Some(value) = key
                .strip_prefix("curated/market_data/ticker=")
                .and_then(|rest| rest.split('/').next())
            else {
                continue;
            };
            match Ticker::parse(&crate::encoding::percent_decode(value)) {
                Ok(t) if !tickers.contains(&t) => tickers.push(t),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(%key, "skipping a curated folder that is not a ticker: {e}")
                }
            }
        }
        tickers.sort();
        Ok(tickers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::StageError;

    #[tokio::test]
    async fn local_store_round_trips_lists_and_hides_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        assert_eq!(store.get("a/b.json").await.unwrap(), None);
        store.put("a/b.json", b"one".to_vec()).await.unwrap();
        store.put("a/b.json", b"two".to_vec()).await.unwrap();
        store.put("a/c/d.bin", vec![0, 1]).await.unwrap();
        store.put("x/y.json", b"{}".to_vec()).await.unwrap();
        std::fs::write(dir.path().join("a/.half-written.tmp"), b"partial").unwrap();
        assert_eq!(store.get("a/b.json").await.unwrap().unwrap(), b"two");
        assert_eq!(store.list("a/").await.unwrap(), ["a/b.json", "a/c/d.bin"]);
        assert_eq!(store.list("a/c").await.unwrap(), ["a/c/d.bin"]);
        assert_eq!(
            store.list("nothing/here/").await.unwrap(),
            Vec::<String>::new()
        );
        // No temporary files are left behind by put.
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("a"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .filter(|n| n.ends_with(".tmp") && n != ".half-written.tmp")
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[tokio::test]
    async fn keys_cannot_escape_the_lake() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path().join("lake"));
        for key in [
            "../outside",
            "/etc/passwd",
            "a/../../b",
            "a//b",
            "",
            "a/./b",
        ] {
            let err = store.put(key, b"x".to_vec()).await.unwrap_err();
            assert!(matches!(err, StoreError::InvalidKey { .. }), "{key}");
            assert!(!StageError::from(err).is_transient());
        }
        assert!(!dir.path().join("outside").exists());
    }

    #[test]
    fn layout_matches_the_contract() {
        let t = Ticker::parse("^GSPC").unwrap();
        let d = |s: &str| s.parse::<NaiveDate>().unwrap();
        assert_eq!(
            Lake::raw_key(&t, d("2025-01-02"), d("2025-06-30")),
            "raw/yahoo/chart/ticker=%5EGSPC/2025-01-02_2025-06-30.json"
        );
        assert_eq!(
            Lake::curated_key(&t, 2025),
            "curated/market_data/ticker=%5EGSPC/year=2025/part-0.parquet"
        );
        assert_eq!(Lake::state_key(&t), "state/ticker=%5EGSPC.json");
        assert_eq!(
            Lake::partition_year(&t, &Lake::curated_key(&t, 2021)),
            Some(2021)
        );
        let other = Ticker::parse("^GSPCX").unwrap();
        assert_eq!(
            Lake::partition_year(&t, &Lake::curated_key(&other, 2021)),
            None
        );
    }

    #[tokio::test]
    async fn curated_tickers_are_decoded_from_folder_names() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::new(Arc::new(LocalStore::new(dir.path())));
        for t in ["^GSPC", "MSFT", "EURUSD=X"] {
            let t = Ticker::parse(t).unwrap();
            lake.store()
                .put(&Lake::curated_key(&t, 2024), b"x".to_vec())
                .await
                .unwrap();
            lake.store()
                .put(&Lake::curated_key(&t, 2025), b"x".to_vec())
                .await
                .unwrap();
        }
        let names: Vec<String> = lake
            .curated_tickers()
            .await
            .unwrap()
            .iter()
            .map(|t| t.to_string())
            .collect();
        assert_eq!(names, ["EURUSD=X", "MSFT", "^GSPC"]);
    }

    #[tokio::test]
    async fn watermark_round_trips_with_contract_fields() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::new(Arc::new(LocalStore::new(dir.path())));
        let t = Ticker::parse("MSFT").unwrap();
        assert_eq!(lake.read_watermark(&t).await.unwrap(), None);
        let mark = Watermark {
            indicator_tail: None,
            quarantined_bars: 0,
            quality_findings: 0,
            last_date: "2025-06-30".parse().unwrap(),
            rows: 120,
            updated_at: chrono::Utc::now(),
            generation: 3,
            partitions: [(2024, 1), (2025, 3)].into(),
            instrument_type: None,
        };
        lake.write_watermark(&t, &mark).await.unwrap();
        assert_eq!(lake.read_watermark(&t).await.unwrap(), Some(mark.clone()));
        let json: serde_json::Value = serde_json::from_slice(
            &std::fs::read(dir.path().join("state/ticker=MSFT.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(json["last_date"], "2025-06-30");
        assert_eq!(json["rows"], 120);
        assert!(json["updated_at"].is_string());
        assert_eq!(mark.years_after(1), [2025]);
        assert_eq!(mark.years_after(0), [2024, 2025]);
        assert!(mark.years_after(3).is_empty());

        // A watermark written before generations existed still reads.
        std::fs::write(
            dir.path().join("state/ticker=MSFT.json"),
            r#"{"last_date":"2025-01-02","rows":5,"updated_at":"2025-01-02T00:00:00Z"}"#,
        )
        .unwrap();
        let old = lake.read_watermark(&t).await.unwrap().unwrap();
        assert_eq!((old.generation, old.partitions.len()), (0, 0));

        // Load marks never move backwards.
        let at = chrono::Utc::now();
        assert_eq!(lake.read_load_mark(&t).await.unwrap(), None);
        let five = LoadMark {
            generation: 5,
            loaded_at: at,
        };
        lake.write_load_mark(&t, &five).await.unwrap();
        lake.write_load_mark(
            &t,
            &LoadMark {
                generation: 4,
                loaded_at: at,
            },
        )
        .await
        .unwrap();
        assert_eq!(lake.read_load_mark(&t).await.unwrap(), Some(five));
        assert!(dir.path().join("state/loaded/ticker=MSFT.json").is_file());
    }

    #[tokio::test]
    async fn ticker_locks_serialise_writers_in_and_across_processes() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::new(Arc::new(LocalStore::new(dir.path())));
        let t = Ticker::parse("^GSPC").unwrap();
        let held = lake.lock_ticker(&t).await.unwrap();
        // Another clone of the lake in this process waits...
        let other = lake.clone();
        let t2 = t.clone();
        let waiter = tokio::spawn(async move { other.lock_ticker(&t2).await.map(drop) });
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert!(!waiter.is_finished(), "the second writer waits");
        // ...and so does another handle on the same folder (as another process would).
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(dir.path().join(".locks/ticker=%5EGSPC.lock"))
            .unwrap();
        assert!(file.try_lock().is_err(), "the file lock is held");
        drop(held);
        waiter.await.unwrap().unwrap();
        file.try_lock().unwrap();
        // Lock files are hidden from listings of the lake.
        assert!(lake.store().list("").await.unwrap().is_empty());
    }
}
