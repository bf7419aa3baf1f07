//! The lake (DESIGN.md section 4, contract): key layout, the watermark, and
//! the object store port with its local-filesystem adapter.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{ErrorClass, StageError};
use crate::ticker::Ticker;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The key could escape the lake root or is not a plain relative path.
    #[error("invalid lake key {key:?}: {reason}")]
    InvalidKey { key: String, reason: &'static str },
    #[error("lake I/O on {key:?}: {source}")]
    Io {
        key: String,
        #[source]
        source: std::io::Error,
    },
    /// A failure worth retrying (throttling, 5xx, timeouts).
    #[error("lake backend error on {key:?}: {message}")]
    Backend { key: String, message: String },
    /// A failure retrying cannot fix (missing bucket, access denied).
    #[error("lake backend refused {key:?}: {message}")]
    Refused { key: String, message: String },
    /// An object that is there but unreadable as what its key says.
    #[error("{key} is not a valid {what}")]
    Corrupt {
        key: String,
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

impl StoreError {
    /// A bad key or a refusal stays so; I/O and backend errors may pass.
    pub fn class(&self) -> ErrorClass {
        match self {
            StoreError::InvalidKey { .. }
            | StoreError::Refused { .. }
            | StoreError::Corrupt { .. } => ErrorClass::Permanent,
            StoreError::Io { .. } | StoreError::Backend { .. } => ErrorClass::Transient,
        }
    }
}

impl From<StoreError> for StageError {
    fn from(e: StoreError) -> Self {
        StageError::with_source(e.class(), e)
    }
}

/// Port to the object store holding the lake. Keys are relative to the lake
/// root, `/`-separated. `put` is atomic: a reader sees the old object or the
/// whole new one, never a part.
#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// The object's bytes, or `None` when there is no such key.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError>;
    /// Every key under `prefix`, sorted.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError>;
    /// Where the lake lives, for logs (`file:///…`, `s3://…`).
    fn uri(&self) -> String;
}

/// Rejects keys that are absolute, empty, or contain `.`/`..` segments: keys
/// arrive in queue messages, and one must never reach outside the lake.
pub fn check_key(key: &str) -> Result<(), StoreError> {
    let bad = |reason| {
        Err(StoreError::InvalidKey {
            key: key.to_string(),
            reason,
        })
    };
    if key.is_empty() {
        return bad("empty");
    }
    if key.starts_with('/') || key.contains('\\') || key.contains('\0') {
        return bad("must be a relative /-separated path");
    }
    if key
        .split('/')
        .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return bad("empty, '.' or '..' path segment");
    }
    Ok(())
}

/// The lake on a local folder (`file://PATH`).
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    pub fn new(root: impl Into<PathBuf>) -> LocalStore {
        LocalStore { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path_of(&self, key: &str) -> Result<PathBuf, StoreError> {
        check_key(key)?;
        Ok(self.root.join(key))
    }
}

fn io_err(key: &str) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        key: key.to_string(),
        source,
    }
}

#[async_trait]
impl ObjectStore for LocalStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.path_of(key)?;
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(key)(e)),
        }
    }

    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        let path = self.path_of(key)?;
        let dir = path.parent().expect("a checked key has a parent folder");
        tokio::fs::create_dir_all(dir).await.map_err(io_err(key))?;
        let file_name = path
            .file_name()
            .expect("a checked key has a name")
            .to_string_lossy();
        // Hidden temporary name in the same folder: rename is atomic within a
        // file system, and list() skips dot-files, so readers never see a part.
        let tmp = dir.join(format!(
            ".{file_name}.{}-{:016x}.tmp",
            std::process::id(),
            fastrand::u64(..)
        ));
        let key_owned = key.to_string();
        let tmp_for_write = tmp.clone();
        let written = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp_for_write)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp_for_write, &path)
        })
        .await
        .map_err(|e| StoreError::Backend {
            key: key_owned,
            message: e.to_string(),
        })?;
        if let Err(e) = written {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(io_err(key)(e));
        }
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let root = self.root.clone();
        let prefix = prefix.to_string();
        tokio::task::spawn_blocking(move || {
            // Walk only the folder the prefix names, not the whole lake.
            let dir_part = match prefix.rfind('/') {
                Some(i) => &prefix[..i],
                None => "",
            };
            let start = root.join(dir_part);
            let mut keys = Vec::new();
            let mut stack = vec![start];
            while let Some(dir) = stack.pop() {
                let entries = match std::fs::read_dir(&dir) {
                    Ok(e) => e,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(io_err(&prefix)(e)),
                };
                for entry in entries {
                    let entry = entry.map_err(io_err(&prefix))?;
                    let name = entry.file_name();
                    if name.to_string_lossy().starts_with('.') {
                        continue;
                    }
                    let path = entry.path();
                    if entry.file_type().map_err(io_err(&prefix))?.is_dir() {
                        stack.push(path);
                    } else if let Ok(rel) = path.strip_prefix(&root) {
                        let key = rel.to_string_lossy().replace('\\', "/");
                        if key.starts_with(&prefix) {
                            keys.push(key);
                        }
                    }
                }
            }
            keys.sort();
            Ok(keys)
        })
        .await
        .map_err(|e| StoreError::Backend {
            key: String::new(),
            message: e.to_string(),
        })?
    }

    fn uri(&self) -> String {
        format!("file://{}", self.root.display())
    }
}

/// A ticker's watermark: `state/ticker=X.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Watermark {
    /// The last date with a curated row.
    pub last_date: NaiveDate,
    /// All curated rows of the ticker.
    pub rows: u64,
    pub updated_at: DateTime<Utc>,
}

/// Typed access to the lake layout over any [`ObjectStore`].
#[derive(Clone)]
pub struct Lake {
    store: Arc<dyn ObjectStore>,
}

impl Lake {
    pub fn new(store: Arc<dyn ObjectStore>) -> Lake {
        Lake { store }
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

    pub async fn read_watermark(&self, ticker: &Ticker) -> Result<Option<Watermark>, StoreError> {
        let key = Self::state_key(ticker);
        match self.store.get(&key).await? {
            None => Ok(None),
            Some(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|source| StoreError::Corrupt {
                        key,
                        what: "watermark",
                        source,
                    })
            }
        }
    }

    pub async fn write_watermark(
        &self,
        ticker: &Ticker,
        mark: &Watermark,
    ) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(mark).expect("a watermark serialises");
        self.store.put(&Self::state_key(ticker), bytes).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            last_date: "2025-06-30".parse().unwrap(),
            rows: 120,
            updated_at: Utc::now(),
        };
        lake.write_watermark(&t, &mark).await.unwrap();
        assert_eq!(lake.read_watermark(&t).await.unwrap(), Some(mark));
        let json: serde_json::Value = serde_json::from_slice(
            &std::fs::read(dir.path().join("state/ticker=MSFT.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(json["last_date"], "2025-06-30");
        assert_eq!(json["rows"], 120);
        assert!(json["updated_at"].is_string());
    }
}
