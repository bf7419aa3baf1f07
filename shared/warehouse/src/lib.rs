//! The warehouse (DESIGN.md section 6): the `fact_market_data` table in
//! SQLite (the embedded default), Postgres or Redshift, its versioned
//! migrations (`infra/warehouse/<dialect>/NNN_description.sql`, applied by
//! [`Warehouse::migrate`]), and the loader with the three load strategies.
//!
//! Every load is one transaction: it either applies completely or leaves the
//! table exactly as it was. Postgres loads stream the rows with binary `COPY`
//! into a temporary staging table, then apply them with one set-based
//! statement; SQLite loads use multi-row `INSERT ... ON CONFLICT` statements of
//! at most `WAREHOUSE_BATCH_SIZE` rows; Redshift loads `COPY` the curated
//! Parquet files straight from S3 into a staging table, then `MERGE` (or
//! insert-where-absent, or delete-then-insert): see [`Warehouse::load_from_lake`].
//!
//! Values round-trip exactly: floats bit for bit, dates, and timestamps to
//! the microsecond (finer digits are dropped, as Postgres keeps microseconds).

mod columns;
mod ddl;
mod errors;
mod migrate;
mod pgcopy;
mod postgres;
mod redshift;
mod sqlite;
mod stage;

pub use stage::{load_stage, reload_ticker};

use std::collections::HashSet;
use std::fmt;
use std::time::Instant;

use mdp_core::config::{LoadStrategy, WarehouseKind, redact_url};
use mdp_core::{Config, CuratedRow, StageError, Ticker};
use sqlx::{PgPool, SqlitePool};

use crate::columns::{Value, values};
use crate::errors::{Dialect, Secrets};

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

#[derive(Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
    /// Redshift over the Postgres wire protocol (simple queries only).
    Redshift(PgPool),
}

/// A connection pool to the warehouse and where its table is.
#[derive(Clone)]
pub struct Warehouse {
    pool: Pool,
    kind: WarehouseKind,
    redacted_url: String,
    secrets: Secrets,
    schema: String,
    table: String,
    batch_size: usize,
    /// The role Redshift assumes for `COPY` (`WAREHOUSE_REDSHIFT_IAM_ROLE`).
    redshift_iam_role: Option<String>,
}

impl fmt::Debug for Warehouse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Warehouse")
            .field("kind", &self.kind)
            .field("url", &self.redacted_url)
            .field("table", &self.qualified_name())
            .field("batch_size", &self.batch_size)
            .finish()
    }
}

impl Warehouse {
    /// Connects to `WAREHOUSE_URL` (`config.warehouse_url`): `sqlite://PATH`
    /// (the file and its folder are created if missing), `postgres://…`, or
    /// `redshift://user:pass@host:5439/db` (Postgres wire protocol, TLS
    /// required by default; needs `WAREHOUSE_REDSHIFT_IAM_ROLE`).
    /// The connection is tried at once, so an unreachable warehouse is a
    /// transient error here.
    pub async fn connect(config: &Config) -> Result<Warehouse, StageError> {
        let redacted_url = redact_url(&config.warehouse_url);
        let secrets = Secrets::of_url(&config.warehouse_url);
        let what = format!("connecting to warehouse {redacted_url}");
        let pool = match config.warehouse_kind {
            WarehouseKind::Sqlite => Pool::Sqlite(
                sqlite::connect(&config.warehouse_url, config.warehouse_pool_size)
                    .await
                    .map_err(|e| e.into_stage_error(Dialect::Sqlite, &secrets, &what))?,
            ),
            WarehouseKind::Postgres => Pool::Postgres(
                postgres::connect(&config.warehouse_url, config.warehouse_pool_size)
                    .await
                    .map_err(|e| e.into_stage_error(Dialect::Postgres, &secrets, &what))?,
            ),
            WarehouseKind::Redshift => {
                if config.warehouse_redshift_iam_role.is_none() {
                    return Err(StageError::permanent(format!(
                        "{what}: invalid configuration: WAREHOUSE_REDSHIFT_IAM_ROLE is not set; \
                         a redshift warehouse loads with COPY from S3 under that role"
                    )));
                }
                Pool::Redshift(
                    redshift::connect(&config.warehouse_url, config.warehouse_pool_size)
                        .await
                        .map_err(|e| e.into_stage_error(Dialect::Redshift, &secrets, &what))?,
                )
            }
        };
        let warehouse = Warehouse {
            pool,
            kind: config.warehouse_kind,
            redacted_url,
            secrets,
            schema: config.warehouse_schema.clone(),
            table: config.warehouse_table.clone(),
            batch_size: config.batch_size.max(1),
            redshift_iam_role: config.warehouse_redshift_iam_role.clone(),
        };
        tracing::debug!(warehouse = %warehouse.describe(), "connected to warehouse");
        Ok(warehouse)
    }

    /// Kind, URL without its password, and table, e.g.
    /// `postgres postgres://etl:***@db:5432/market table public.fact_market_data`.
    pub fn describe(&self) -> String {
        let kind = match self.kind {
            WarehouseKind::Sqlite => "sqlite",
            WarehouseKind::Postgres => "postgres",
            WarehouseKind::Redshift => "redshift",
        };
        format!(
            "{kind} {} table {}",
            self.redacted_url,
            self.qualified_name()
        )
    }

    /// Which warehouse this is.
    pub fn kind(&self) -> WarehouseKind {
        self.kind
    }

    /// `schema.table` (Postgres, Redshift) or `table` (SQLite, which has no schemas).
    fn qualified_name(&self) -> String {
        match self.pool {
            Pool::Sqlite(_) => self.table.clone(),
            Pool::Postgres(_) | Pool::Redshift(_) => format!("{}.{}", self.schema, self.table),
        }
    }

    fn dialect(&self) -> Dialect {
        match self.pool {
            Pool::Sqlite(_) => Dialect::Sqlite,
            Pool::Postgres(_) => Dialect::Postgres,
            Pool::Redshift(_) => Dialect::Redshift,
        }
    }

    fn fail(&self, what: &str, err: Failure) -> StageError {
        err.into_stage_error(self.dialect(), &self.secrets, what)
    }

    /// Applies the migrations of `infra/warehouse/<dialect>/` the table has
    /// not had yet, each in its own transaction with its record in
    /// `mdp_schema_migrations`: 001 creates the schema (Postgres, Redshift),
    /// the table, its unique constraint and indexes (Redshift: distribution
    /// and sort keys instead); Postgres 002 adopts a table made by the
    /// original Airflow DDL in place. Idempotent: when every version is
    /// recorded it only reads. A table that predates the versioning is
    /// recognised (its 001 is recorded, not run). See `migrate.rs`.
    pub async fn migrate(&self) -> Result<(), StageError> {
        let result = match &self.pool {
            Pool::Sqlite(pool) => migrate::migrate_sqlite(pool, &self.table).await,
            Pool::Postgres(pool) => {
                migrate::migrate_pg(pool, migrate::Flavor::Postgres, &self.schema, &self.table)
                    .await
            }
            Pool::Redshift(pool) => {
                migrate::migrate_pg(pool, migrate::Flavor::Redshift, &self.schema, &self.table)
                    .await
            }
        };
        result.map_err(|e| {
            self.fail(
                &format!("migrating warehouse table {}", self.qualified_name()),
                e,
            )
        })
    }

    /// Loads one ticker's curated rows with `strategy`, as one transaction:
    /// on any error nothing of the load remains. `rows` must all be of
    /// `ticker` and have distinct dates (anything else is a permanent error).
    ///
    /// - `Upsert`: inserts new (ticker, date) rows and rewrites existing ones
    ///   whose values (anything but the timestamps) differ, keeping their
    ///   `created_at`; identical rows are left alone.
    /// - `Append`: inserts new (ticker, date) rows only.
    /// - `TruncateInsert`: deletes all of the ticker's rows, then inserts
    ///   `rows` (an empty `rows` leaves the ticker without rows).
    pub async fn load(
        &self,
        ticker: &Ticker,
        rows: &[CuratedRow],
        strategy: LoadStrategy,
    ) -> Result<LoadReport, StageError> {
        let what = format!("loading {ticker} into {}", self.qualified_name());
        check_rows(ticker, rows).map_err(|why| StageError::permanent(format!("{what}: {why}")))?;
        if rows.is_empty() && strategy != LoadStrategy::TruncateInsert {
            return Ok(LoadReport::default());
        }
        let started = Instant::now();
        let job = Job {
            ticker: ticker.as_str(),
            rows,
            strategy,
            batch_size: self.batch_size,
        };
        let result = match &self.pool {
            Pool::Sqlite(pool) => sqlite::load(pool, &self.table, &job).await,
            Pool::Postgres(pool) => postgres::load(pool, &self.schema, &self.table, &job).await,
            Pool::Redshift(_) => Err(Failure::Data(
                "a redshift warehouse loads the curated files from S3 (load_from_lake), \
                 not rows sent by the client"
                    .into(),
            )),
        };
        let report = result.map_err(|e| self.fail(&what, e))?;
        self.log_load(ticker, strategy, &report, started);
        Ok(report)
    }

    fn log_load(
        &self,
        ticker: &Ticker,
        strategy: LoadStrategy,
        report: &LoadReport,
        started: Instant,
    ) {
        tracing::info!(
            ticker = %ticker,
            table = %self.qualified_name(),
            %strategy,
            rows_in = report.rows_in,
            inserted = report.inserted,
            updated = report.updated,
            deleted = report.deleted,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "loaded into warehouse"
        );
    }

    /// The table's rows, of one ticker or of all, ordered by ticker (byte
    /// order) then date.
    pub async fn read_rows(&self, ticker: Option<&Ticker>) -> Result<Vec<CuratedRow>, StageError> {
        let ticker = ticker.map(Ticker::as_str);
        let result = match &self.pool {
            Pool::Sqlite(pool) => sqlite::read_rows(pool, &self.table, ticker).await,
            Pool::Postgres(pool) => {
                postgres::read_rows(pool, &self.schema, &self.table, ticker).await
            }
            Pool::Redshift(_) => Err(Failure::Data(
                "reading rows back is not supported on redshift; query the table with SQL".into(),
            )),
        };
        result.map_err(|e| self.fail(&format!("reading {}", self.qualified_name()), e))
    }

    /// Drops the table (benchmarks start from an empty warehouse); the next
    /// [`Warehouse::migrate`] creates it again (its migration records are
    /// then stale and replaced).
    pub async fn drop_table(&self) -> Result<(), StageError> {
        let sql = match &self.pool {
            // Schema and table are checked identifiers (Config), quoted here.
            Pool::Sqlite(_) => format!("DROP TABLE IF EXISTS \"{}\"", self.table),
            Pool::Postgres(_) | Pool::Redshift(_) => format!(
                "DROP TABLE IF EXISTS \"{}\".\"{}\"",
                self.schema, self.table
            ),
        };
        let result = match &self.pool {
            Pool::Sqlite(pool) => sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
                .execute(pool)
                .await
                .map(drop),
            Pool::Postgres(pool) | Pool::Redshift(pool) => {
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
                    .execute(pool)
                    .await
                    .map(drop)
            }
        };
        result.map_err(|e| {
            self.fail(
                &format!("dropping {}", self.qualified_name()),
                Failure::Db(e),
            )
        })
    }

    /// Closes the pool's connections (waits for connections in use).
    pub async fn close(&self) {
        match &self.pool {
            Pool::Sqlite(pool) => pool.close().await,
            Pool::Postgres(pool) | Pool::Redshift(pool) => pool.close().await,
        }
    }
}

/// One load, as the backends see it: rows checked by [`check_rows`].
pub(crate) struct Job<'a> {
    pub ticker: &'a str,
    pub rows: &'a [CuratedRow],
    pub strategy: LoadStrategy,
    pub batch_size: usize,
}

/// A failure inside a backend: from the database, or data that cannot be
/// stored or read back faithfully (always permanent).
#[derive(Debug)]
pub(crate) enum Failure {
    Db(sqlx::Error),
    Io(std::io::Error),
    Data(String),
}

impl From<sqlx::Error> for Failure {
    fn from(e: sqlx::Error) -> Self {
        Failure::Db(e)
    }
}

impl Failure {
    fn into_stage_error(self, dialect: Dialect, secrets: &Secrets, what: &str) -> StageError {
        match self {
            Failure::Db(e) => errors::stage_error(dialect, secrets, what, &e),
            Failure::Io(e) => StageError::transient(secrets.scrub(&format!("{what}: {e}"))),
            Failure::Data(why) => StageError::permanent(secrets.scrub(&format!("{what}: {why}"))),
        }
    }
}

/// Rows of another ticker, repeated dates, NaN or infinite values and texts
/// with NUL characters are refused, the same way on every backend: the table
/// is unique on (ticker, date), "missing" is NULL, never NaN (SQLite could not
/// even store NaN), and Postgres text cannot hold NUL.
fn check_rows(ticker: &Ticker, rows: &[CuratedRow]) -> Result<(), String> {
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
        for (name, value) in mdp_core::row::COLUMNS.iter().zip(values(row)) {
            match value {
                Value::Float(Some(f)) if !f.is_finite() => {
                    return Err(format!(
                        "{ticker} {}: {name} is {f}; missing values must be null",
                        row.date()
                    ));
                }
                Value::Text(Some(s)) if s.contains('\0') => {
                    return Err(format!(
                        "{ticker} {}: {name} contains a NUL character, which Postgres text cannot hold",
                        row.date()
                    ));
                }
                _ => {}
            }
        }
    }
    Ok(())
}
