//! The warehouse (DESIGN.md section 6): the `fact_market_data` table behind
//! the [`WarehouseLoader`] port, with one adapter per backend — SQLite (the
//! embedded default), Postgres, Redshift, and an in-memory one for tests —
//! their versioned migrations (`infra/warehouse/<dialect>/NNN_*.sql`), and
//! the load stage over the port.
//!
//! Every load is one transaction: it either applies completely or leaves the
//! table exactly as it was. Postgres streams the rows with binary `COPY`
//! into a temporary staging table, then applies them with one set-based
//! statement; SQLite uses multi-row `INSERT ... ON CONFLICT` statements of
//! at most `WAREHOUSE_BATCH_SIZE` rows; Redshift `COPY`s the curated Parquet
//! files straight from S3 into a staging table, then `MERGE`s (or
//! inserts-where-absent, or deletes-then-inserts).
//!
//! Values round-trip exactly: floats bit for bit, dates, and timestamps to
//! the microsecond (finer digits are dropped, as Postgres keeps microseconds).
//!
//! Beside the fact table, the side tables of issue 12 (`fact_corporate_actions`,
//! `quality_quarantine`, `quality_findings`) take a ticker's corporate actions
//! and data-quality results through [`WarehouseLoader::load_side`]: see
//! [`side`](crate::SideBatch) for what each strategy does to each table.

mod ddl;
mod errors;
mod memory;
mod migrate;
mod port;
mod postgres;
mod redshift;
mod side;
mod sql;
mod sqlite;
mod stage;

use std::sync::Arc;
use std::time::Instant;

use mdp_core::config::{LoadStrategy, WarehouseKind};
use mdp_core::connection::WarehouseConnection;
use mdp_core::{Config, Ticker};

pub use memory::MemoryWarehouse;
pub use port::{
    CuratedBatch, DatabaseError, LoadReport, Partitions, RowWarehouse, WarehouseError,
    WarehouseLoader, check_rows,
};
pub use postgres::PostgresWarehouse;
pub use redshift::RedshiftWarehouse;
pub use side::{
    CORPORATE_ACTIONS_TABLE, FINDINGS_TABLE, QUARANTINE_TABLE, SideBatch, SideReport, SideRows,
    StoredAction, StoredFinding, check_side,
};
pub use sqlite::SqliteWarehouse;
pub use stage::{load_stage, reload_ticker};

/// Where the table is and how loads are cut, from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSettings {
    /// Postgres/Redshift schema (SQLite has none).
    pub schema: String,
    pub table: String,
    /// Rows per statement (SQLite) or per COPY message (Postgres).
    pub batch_size: usize,
    /// Postgres loads up to this many rows go without a staging table.
    pub direct_load_max_rows: usize,
    /// Connections in the pool of one process.
    pub pool_size: u32,
}

impl TableSettings {
    pub fn from_config(config: &Config) -> TableSettings {
        TableSettings {
            schema: config.warehouse_schema.clone(),
            table: config.warehouse_table.clone(),
            batch_size: config.batch_size.max(1),
            direct_load_max_rows: config.direct_load_max_rows,
            pool_size: config.warehouse_pool_size,
        }
    }
}

/// Connects the warehouse the configuration names — the one place a backend
/// is chosen. The connection is tried at once, so an unreachable warehouse
/// is a transient error here.
pub async fn connect(config: &Config) -> Result<Arc<dyn WarehouseLoader>, WarehouseError> {
    let settings = TableSettings::from_config(config);
    let warehouse: Arc<dyn WarehouseLoader> = match &config.warehouse {
        WarehouseConnection::Sqlite(target) => {
            Arc::new(SqliteWarehouse::connect(target, &settings).await?)
        }
        WarehouseConnection::Server(target) if target.kind == WarehouseKind::Redshift => {
            let role = config
                .warehouse_redshift_iam_role
                .as_deref()
                .ok_or_else(|| {
                    WarehouseError::Config(
                        "WAREHOUSE_REDSHIFT_IAM_ROLE is not set; a redshift warehouse loads \
                     with COPY from S3 under that role"
                            .into(),
                    )
                })?;
            Arc::new(RedshiftWarehouse::connect(target, role, &settings).await?)
        }
        WarehouseConnection::Server(target) => {
            Arc::new(PostgresWarehouse::connect(target, &settings).await?)
        }
    };
    tracing::debug!(warehouse = %warehouse.describe(), "connected to warehouse");
    Ok(warehouse)
}

/// Connects a warehouse that gives rows back (SQLite or Postgres), for
/// comparing it with the lake; Redshift is queried with SQL instead.
pub async fn connect_rows(config: &Config) -> Result<Arc<dyn RowWarehouse>, WarehouseError> {
    let settings = TableSettings::from_config(config);
    Ok(match &config.warehouse {
        WarehouseConnection::Sqlite(target) => {
            Arc::new(SqliteWarehouse::connect(target, &settings).await?)
        }
        WarehouseConnection::Server(target) if target.kind == WarehouseKind::Postgres => {
            Arc::new(PostgresWarehouse::connect(target, &settings).await?)
        }
        WarehouseConnection::Server(_) => {
            return Err(WarehouseError::Config(
                "rows are read back from SQLite or Postgres; query Redshift with SQL".into(),
            ));
        }
    })
}

fn log_side(
    ticker: &Ticker,
    schema: &str,
    strategy: LoadStrategy,
    report: &SideReport,
    started: Instant,
) {
    let r = report;
    tracing::info!(
        ticker = %ticker,
        schema,
        %strategy,
        actions_in = r.actions.rows_in,
        actions_inserted = r.actions.inserted,
        actions_updated = r.actions.updated,
        actions_deleted = r.actions.deleted,
        findings_in = r.findings.rows_in,
        findings_inserted = r.findings.inserted,
        findings_updated = r.findings.updated,
        findings_deleted = r.findings.deleted,
        quarantine_in = r.quarantine.rows_in,
        quarantine_inserted = r.quarantine.inserted,
        quarantine_updated = r.quarantine.updated,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "loaded side data into warehouse"
    );
}

fn log_load(
    ticker: &Ticker,
    table: &str,
    strategy: LoadStrategy,
    report: &LoadReport,
    started: Instant,
) {
    tracing::info!(
        ticker = %ticker,
        table,
        %strategy,
        rows_in = report.rows_in,
        inserted = report.inserted,
        updated = report.updated,
        deleted = report.deleted,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "loaded into warehouse"
    );
}
