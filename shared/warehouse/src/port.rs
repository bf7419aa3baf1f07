//! The warehouse port: what the load stage needs from a warehouse, and what
//! it hands one. Each backend is an adapter taking only what it can use:
//! SQLite, Postgres and the in-memory warehouse read the curated rows
//! ([`CuratedBatch::read_rows`]) and write them; Redshift never sees a row,
//! it copies the curated objects from S3 ([`CuratedBatch::object_keys`]).

use std::collections::HashSet;

use async_trait::async_trait;
use mdp_core::config::LoadStrategy;
use mdp_core::schema::{MARKET_DATA, Value};
use mdp_core::{CuratedRow, ErrorClass, Lake, StageError, Ticker};
use mdp_lake::{CuratedError, read_history, read_partitions};

use crate::side::{SideBatch, SideReport, SideRows};

/// What one load did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Rows handed to the load.
    pub rows_in: usize,
    /// New (ticker, date) rows written.
    pub inserted: u64,
    /// Existing rows rewritten because some value changed (upsert only).
    pub updated: u64,
    /// Rows removed before inserting (truncate_insert only).
    pub deleted: u64,
}

impl LoadReport {
    /// Rows written: inserted plus updated.
    pub fn rows_loaded(&self) -> u64 {
        self.inserted + self.updated
    }
}

/// Which of a ticker's curated partitions a load takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Partitions {
    /// Every partition of the ticker, as found when the load reads them.
    WholeTicker,
    /// These lake keys, checked to be partitions of the ticker, oldest first.
    Keys(Vec<String>),
}

/// One ticker's curated data in the lake, as a load takes it.
pub struct CuratedBatch<'a> {
    pub lake: &'a Lake,
    pub ticker: &'a Ticker,
    pub partitions: Partitions,
}

impl CuratedBatch<'_> {
    /// The curated rows, read now (an adapter reads them once it holds its
    /// lock, so it loads what the lake holds at that moment).
    pub async fn read_rows(&self) -> Result<Vec<CuratedRow>, CuratedError> {
        match &self.partitions {
            Partitions::WholeTicker => read_history(self.lake, self.ticker).await,
            Partitions::Keys(keys) => read_partitions(self.lake, self.ticker, keys).await,
        }
    }

    /// The lake keys of the objects: the named partitions, or for the whole
    /// ticker its curated prefix (empty when the ticker has no partition).
    pub async fn object_keys(&self) -> Result<Vec<String>, CuratedError> {
        match &self.partitions {
            Partitions::Keys(keys) => Ok(keys.clone()),
            Partitions::WholeTicker => {
                let prefix = Lake::curated_prefix(self.ticker);
                let present =
                    self.lake
                        .curated_partitions(self.ticker)
                        .await
                        .map_err(|source| CuratedError::Store {
                            key: prefix.clone(),
                            source,
                        })?;
                Ok(if present.is_empty() {
                    Vec::new()
                } else {
                    vec![prefix]
                })
            }
        }
    }
}

/// A failed warehouse operation, classified where it was detected.
#[derive(Debug, thiserror::Error)]
pub enum WarehouseError {
    /// The database said no, or could not be reached.
    #[error("{what}")]
    Database {
        what: String,
        class: ErrorClass,
        #[source]
        source: DatabaseError,
    },
    /// Rows or files the table cannot take (never retried).
    #[error("{what}: {why}")]
    Refused { what: String, why: String },
    /// The curated data could not be read.
    #[error("{what}")]
    Lake {
        what: String,
        #[source]
        source: CuratedError,
    },
    /// A local file of the warehouse (SQLite) could not be prepared.
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The configuration does not fit this warehouse.
    #[error("invalid configuration: {0}")]
    Config(String),
}

impl WarehouseError {
    pub fn class(&self) -> ErrorClass {
        match self {
            WarehouseError::Database { class, .. } => *class,
            WarehouseError::Lake { source, .. } => source.class(),
            WarehouseError::Io { .. } => ErrorClass::Transient,
            WarehouseError::Refused { .. } | WarehouseError::Config(_) => ErrorClass::Permanent,
        }
    }
}

impl From<WarehouseError> for StageError {
    fn from(e: WarehouseError) -> Self {
        StageError::with_source(e.class(), e)
    }
}

/// A database error as text with its code, the password already scrubbed
/// out (so no link of a chain can show it).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct DatabaseError {
    pub message: String,
    /// SQLSTATE (Postgres, Redshift) or result code (SQLite).
    pub code: Option<String>,
}

/// The warehouse port: migrations and loads, whatever the backend.
#[async_trait]
pub trait WarehouseLoader: Send + Sync {
    /// Kind, URL without its password, and table, for logs.
    fn describe(&self) -> String;

    /// Creates or upgrades the table (idempotent; only reads when up to date).
    async fn migrate(&self) -> Result<(), WarehouseError>;

    /// Loads one ticker's curated partitions with `strategy`, as one
    /// transaction: on any error nothing of the load remains.
    ///
    /// - `Upsert`: inserts new (ticker, date) rows and rewrites existing ones
    ///   whose values (anything but the timestamps) differ, keeping their
    ///   `created_at`; identical rows are left alone.
    /// - `Append`: inserts new (ticker, date) rows only.
    /// - `TruncateInsert`: replaces all of the ticker's rows; the stage always
    ///   hands it the whole ticker, and a ticker without curated rows is
    ///   refused rather than wiped.
    async fn load(
        &self,
        batch: &CuratedBatch<'_>,
        strategy: LoadStrategy,
    ) -> Result<LoadReport, WarehouseError>;

    /// Loads one ticker's side data — corporate actions, quality findings,
    /// quarantined bars, each the ticker's complete current set — into
    /// `fact_corporate_actions`, `quality_findings` and `quality_quarantine`
    /// (see [`crate::side`] for what each strategy does to each table), as
    /// one transaction serialised with the other side loads of the ticker:
    /// on any error none of the three tables changes. Applying the same
    /// batch twice leaves the tables exactly as applying it once.
    /// A batch that fails [`crate::check_side`] is refused.
    async fn load_side(
        &self,
        side: &SideBatch<'_>,
        strategy: LoadStrategy,
    ) -> Result<SideReport, WarehouseError>;

    /// Closes the connections (waits for those in use).
    async fn close(&self);
}

/// Debug output is the description (never the password, never the pool).
impl std::fmt::Debug for dyn WarehouseLoader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl std::fmt::Debug for dyn RowWarehouse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// A warehouse that takes and gives back rows (SQLite, Postgres, in memory):
/// what tests and `mdp` use to compare the warehouse with the lake.
#[async_trait]
pub trait RowWarehouse: WarehouseLoader {
    /// Loads rows of one ticker, checked by [`check_rows`], as one transaction.
    async fn load_rows(
        &self,
        ticker: &Ticker,
        rows: &[CuratedRow],
        strategy: LoadStrategy,
    ) -> Result<LoadReport, WarehouseError>;

    /// The table's rows, of one ticker or of all, ordered by ticker (byte
    /// order) then date.
    async fn read_rows(&self, ticker: Option<&Ticker>) -> Result<Vec<CuratedRow>, WarehouseError>;

    /// The ticker's rows of the three side tables, in [`SideRows`]' order.
    async fn read_side(&self, ticker: &Ticker) -> Result<SideRows, WarehouseError>;

    /// Drops the table (benchmarks and tests start from an empty warehouse);
    /// the next `migrate` creates it again.
    async fn drop_table(&self) -> Result<(), WarehouseError>;
}

/// Where the rows of a row warehouse's load come from: given by the caller,
/// or read from the lake once the load holds its lock.
#[derive(Clone, Copy)]
pub(crate) enum RowSource<'a> {
    Rows(&'a [CuratedRow]),
    Lake(&'a CuratedBatch<'a>),
}

/// The rows to load, called by an adapter once it holds its lock (so a load
/// commits what the lake holds then, never an older read overtaking a newer
/// load). `None`: nothing to do. A truncate of nothing read from the lake is
/// refused (an empty lake must not wipe the ticker's rows); rows are checked
/// by [`check_rows`].
pub(crate) async fn rows_under_lock<'a>(
    source: RowSource<'a>,
    ticker: &Ticker,
    strategy: LoadStrategy,
    what: &str,
) -> Result<Option<std::borrow::Cow<'a, [CuratedRow]>>, WarehouseError> {
    use std::borrow::Cow;
    let rows: Cow<'a, [CuratedRow]> = match source {
        RowSource::Rows(rows) => Cow::Borrowed(rows),
        RowSource::Lake(batch) => {
            Cow::Owned(
                batch
                    .read_rows()
                    .await
                    .map_err(|source| WarehouseError::Lake {
                        what: format!("reading the curated rows of {ticker}"),
                        source,
                    })?,
            )
        }
    };
    if rows.is_empty() {
        return match (strategy, source) {
            (LoadStrategy::TruncateInsert, RowSource::Lake(_)) => Err(empty_truncate(ticker)),
            // Given no rows, truncate_insert leaves the ticker without rows.
            (LoadStrategy::TruncateInsert, RowSource::Rows(_)) => Ok(Some(rows)),
            _ => Ok(None),
        };
    }
    check_rows(ticker, &rows).map_err(|why| WarehouseError::Refused {
        what: what.to_string(),
        why,
    })?;
    Ok(Some(rows))
}

/// The side batch checked by [`crate::check_side`], or the refusal.
pub(crate) fn checked_side(side: &SideBatch<'_>, what: &str) -> Result<(), WarehouseError> {
    crate::side::check_side(side).map_err(|why| WarehouseError::Refused {
        what: what.to_string(),
        why,
    })
}

/// An empty lake must not wipe the warehouse's rows of the ticker.
pub(crate) fn empty_truncate(ticker: &Ticker) -> WarehouseError {
    WarehouseError::Refused {
        what: format!("loading {ticker}"),
        why: format!(
            "{ticker} has no curated rows in the lake: refusing to truncate its warehouse rows"
        ),
    }
}

/// Rows of another ticker, repeated dates, NaN or infinite values and texts
/// with NUL characters are refused, the same way on every backend: the table
/// is unique on (ticker, date), "missing" is NULL, never NaN (SQLite could not
/// even store NaN), and Postgres text cannot hold NUL.
pub fn check_rows(ticker: &Ticker, rows: &[CuratedRow]) -> Result<(), String> {
    let mut dates = HashSet::with_capacity(rows.len());
    for row in rows {
        if row.ticker != ticker.as_str() {
            return Err(format!(
                "row {} {} is not of ticker {ticker}: a load takes one ticker's rows",
                row.ticker,
                row.date()
            ));
        }
        if !dates.insert(row.date()) {
            return Err(format!(
                "duplicate date {} for {ticker}: rows must be unique per date",
                row.date()
            ));
        }
        for (column, value) in MARKET_DATA.iter().zip(row.values()) {
            match value {
                Value::Float(Some(f)) if !f.is_finite() => {
                    return Err(format!(
                        "{ticker} {}: {} is {f}; missing values must be null",
                        row.date(),
                        column.name
                    ));
                }
                Value::Text(Some(s)) if s.contains('\0') => {
                    return Err(format!(
                        "{ticker} {}: {} contains a NUL character, which Postgres text cannot hold",
                        row.date(),
                        column.name
                    ));
                }
                _ => {}
            }
        }
    }
    Ok(())
}
