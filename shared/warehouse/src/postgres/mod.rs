//! Postgres: one set-based statement per strategy, in one transaction, over
//! the rows bound as column arrays (small loads) or binary-COPied into a
//! temporary staging table (large ones).
//!
//! The staging → target statements name their columns (`INSERT INTO target
//! (ticker, date, …) SELECT ticker, date, … FROM stage`), so they work on any
//! table holding the contract columns, in any order and with more columns:
//! also on a table created by the original Airflow DDL and adopted in place
//! by migration 002 (`id SERIAL` keeps drawing from its sequence; upserts
//! never touch it).
//!
//! On such a table the prices and indicators are DECIMAL(18,6), and the
//! staged DOUBLE PRECISION values reach them through Postgres' assignment
//! cast float8 → numeric: the value is first written with 15 significant
//! digits (`float8_numeric` uses DBL_DIG), then rounded half away from zero
//! to 6 decimal places. So 1/3 is stored as 0.333333, 2.5e-7 as 0.000000,
//! 5e-7 as 0.000001, -5e-7 as -0.000001, 123456789012.345678 as
//! 123456789012.346000 (15 digits); a value of 10^12 or more does not fit
//! (numeric field overflow, a permanent error that rolls the load back).
//! Reading back (`read_rows`) casts to float8, so the stored decimal comes
//! back as the nearest double. Upserts compare after the cast (`EXCLUDED`
//! holds the rounded values), so reloading the same rows rewrites nothing.

mod copy;
pub(crate) mod side;

use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use mdp_core::config::{LoadStrategy, WarehouseKind};
use mdp_core::connection::{ServerTarget, TlsMode, WarehouseConnection};
use mdp_core::schema::{ColumnType, MARKET_DATA, OwnedValue, Value, WIDTH};
use mdp_core::{CuratedRow, Ticker};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions, PgSslMode};
use sqlx::{AssertSqlSafe, Connection, PgPool, Row};

use crate::errors::{Failure, Secrets};
use crate::port::{
    CuratedBatch, LoadReport, RowSource, RowWarehouse, WarehouseError, WarehouseLoader, check_rows,
    checked_side, rows_under_lock,
};
use crate::side::{SideBatch, SideReport, SideRows};
use crate::sql::{all_columns, compared_columns, quote_ident, update_assignments};
use crate::{TableSettings, log_load, log_side, migrate};

pub(crate) use copy::copy_rows;

/// The warehouse in a Postgres database.
pub struct PostgresWarehouse {
    pool: PgPool,
    schema: String,
    table: String,
    batch_size: usize,
    direct_load_max_rows: usize,
    /// Whether the table's contract columns have exactly the types binary
    /// COPY sends (the table migrate creates; not an adopted Airflow table
    /// with DECIMAL prices), checked once per process.
    copies_into_table: tokio::sync::OnceCell<bool>,
    secrets: Secrets,
    description: String,
}

impl PostgresWarehouse {
    /// Connects to a Postgres server (one direct connection first, so an
    /// unreachable server is a transient error here).
    pub async fn connect(
        target: &ServerTarget,
        settings: &TableSettings,
    ) -> Result<Self, WarehouseError> {
        check_ssl_root_cert(target)?;
        let connection = WarehouseConnection::Server(target.clone());
        let secrets = Secrets::of(&connection);
        let redacted = connection.redacted();
        let pool = connect_with(connect_options(target), settings.pool_size)
            .await
            .map_err(|e| {
                e.into_error(
                    WarehouseKind::Postgres,
                    &secrets,
                    &format!("connecting to warehouse {redacted}"),
                )
            })?;
        Ok(PostgresWarehouse {
            pool,
            schema: settings.schema.clone(),
            table: settings.table.clone(),
            batch_size: settings.batch_size.max(1),
            direct_load_max_rows: settings.direct_load_max_rows,
            copies_into_table: tokio::sync::OnceCell::new(),
            secrets,
            description: format!(
                "postgres {redacted} table {}.{}",
                settings.schema, settings.table
            ),
        })
    }

    fn qualified_name(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }

    fn fail(&self, what: String) -> impl FnOnce(Failure) -> WarehouseError + '_ {
        move |e| e.into_error(WarehouseKind::Postgres, &self.secrets, &what)
    }

    async fn load_from(
        &self,
        ticker: &Ticker,
        source: RowSource<'_>,
        strategy: LoadStrategy,
    ) -> Result<LoadReport, WarehouseError> {
        let what = format!("loading {ticker} into {}", self.qualified_name());
        let started = Instant::now();
        let copies_into_table = *self
            .copies_into_table
            .get_or_try_init(|| exact_column_types(&self.pool, &self.schema, &self.table))
            .await
            .map_err(self.fail(what.clone()))?;
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| self.fail(what.clone())(e.into()))?;
        let target = target(&self.schema, &self.table);
        let result = async {
            lock_ticker(&mut tx, &target, ticker.as_str())
                .await
                .map_err(self.fail(what.clone()))?;
            let Some(rows) = rows_under_lock(source, ticker, strategy, &what).await? else {
                return Ok(LoadReport::default());
            };
            let job = Job {
                ticker: ticker.as_str(),
                rows: &rows,
                strategy,
                batch_size: self.batch_size,
                direct_load_max_rows: self.direct_load_max_rows,
                copies_into_table,
            };
            load_in(&mut tx, &target, &job)
                .await
                .map_err(self.fail(what.clone()))
        }
        .await;
        match result {
            Ok(report) => {
                mdp_core::crash::point("load.before_commit");
                tx.commit().await.map_err(|e| self.fail(what)(e.into()))?;
                mdp_core::crash::point("load.after_commit");
                log_load(ticker, &self.qualified_name(), strategy, &report, started);
                Ok(report)
            }
            Err(e) => {
                // Dropping the transaction would roll back too; doing it here
                // returns a clean connection to the pool before the error leaves.
                let _ = tx.rollback().await;
                Err(e)
            }
        }
    }
}

#[async_trait]
impl WarehouseLoader for PostgresWarehouse {
    fn describe(&self) -> String {
        self.description.clone()
    }

    async fn migrate(&self) -> Result<(), WarehouseError> {
        migrate::migrate_pg(
            &self.pool,
            WarehouseKind::Postgres,
            &self.schema,
            &self.table,
        )
        .await
        .map_err(self.fail(format!(
            "migrating warehouse table {}",
            self.qualified_name()
        )))
    }

    async fn load(
        &self,
        batch: &CuratedBatch<'_>,
        strategy: LoadStrategy,
    ) -> Result<LoadReport, WarehouseError> {
        self.load_from(batch.ticker, RowSource::Lake(batch), strategy)
            .await
    }

    /// One transaction: the ticker's side lock, the read of its stored
    /// rows, then the plan's statements.
    async fn load_side(
        &self,
        batch: &SideBatch<'_>,
        strategy: LoadStrategy,
    ) -> Result<SideReport, WarehouseError> {
        let what = format!(
            "loading the side data of {} into schema {}",
            batch.ticker, self.schema
        );
        checked_side(batch, &what)?;
        let started = Instant::now();
        let ticker = batch.ticker.as_str();
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| self.fail(what.clone())(e.into()))?;
        let result = async {
            side::lock_side(&mut tx, &self.schema, ticker).await?;
            let stored =
                side::read_side_in(&mut tx, WarehouseKind::Postgres, &self.schema, ticker).await?;
            let plan = crate::side::plan(batch, &stored, strategy);
            side::write_side(&mut tx, &self.schema, ticker, &plan).await?;
            Ok(plan.report)
        }
        .await
        .map_err(self.fail(what.clone()));
        match result {
            Ok(report) => {
                tx.commit().await.map_err(|e| self.fail(what)(e.into()))?;
                log_side(batch.ticker, &self.schema, strategy, &report, started);
                Ok(report)
            }
            Err(e) => {
                let _ = tx.rollback().await;
                Err(e)
            }
        }
    }

    async fn close(&self) {
        self.pool.close().await
    }
}

#[async_trait]
impl RowWarehouse for PostgresWarehouse {
    async fn load_rows(
        &self,
        ticker: &Ticker,
        rows: &[CuratedRow],
        strategy: LoadStrategy,
    ) -> Result<LoadReport, WarehouseError> {
        // Bad rows are refused before any connection is taken.
        check_rows(ticker, rows).map_err(|why| WarehouseError::Refused {
            what: format!("loading {ticker} into {}", self.qualified_name()),
            why,
        })?;
        if rows.is_empty() && strategy != LoadStrategy::TruncateInsert {
            return Ok(LoadReport::default());
        }
        self.load_from(ticker, RowSource::Rows(rows), strategy)
            .await
    }

    async fn read_rows(&self, ticker: Option<&Ticker>) -> Result<Vec<CuratedRow>, WarehouseError> {
        read_rows(
            &self.pool,
            &self.schema,
            &self.table,
            ticker.map(Ticker::as_str),
        )
        .await
        .map_err(self.fail(format!("reading {}", self.qualified_name())))
    }

    async fn read_side(&self, ticker: &Ticker) -> Result<SideRows, WarehouseError> {
        let what = format!(
            "reading the side data of {ticker} from schema {}",
            self.schema
        );
        let result = async {
            let mut tx = self.pool.begin().await?;
            let rows = side::read_side_in(
                &mut tx,
                WarehouseKind::Postgres,
                &self.schema,
                ticker.as_str(),
            )
            .await?;
            tx.commit().await?;
            Ok(rows)
        }
        .await;
        result.map_err(self.fail(what))
    }

    async fn drop_table(&self) -> Result<(), WarehouseError> {
        sqlx::raw_sql(AssertSqlSafe(format!(
            "DROP TABLE IF EXISTS {}",
            target(&self.schema, &self.table)
        )))
        .execute(&self.pool)
        .await
        .map(drop)
        .map_err(|e| self.fail(format!("dropping {}", self.qualified_name()))(e.into()))
    }
}

/// One load, as the statements see it: rows checked by [`check_rows`].
struct Job<'a> {
    ticker: &'a str,
    rows: &'a [CuratedRow],
    strategy: LoadStrategy,
    batch_size: usize,
    direct_load_max_rows: usize,
    copies_into_table: bool,
}

/// How long the first connection may take before the warehouse counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a load waits for a pooled connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// The staging table of a load: temporary, dropped at commit or rollback.
const STAGE: &str = "pg_temp.\"mdp_stage_market_data\"";

/// A CA bundle that cannot be read would fail every connect the same way:
/// a permanent configuration error naming the file, found before connecting.
pub(crate) fn check_ssl_root_cert(target: &ServerTarget) -> Result<(), WarehouseError> {
    match &target.ssl_root_cert {
        Some(path) => std::fs::metadata(path).map(drop).map_err(|e| {
            WarehouseError::Config(format!(
                "the CA bundle {} (sslrootcert / WAREHOUSE_SSL_ROOT_CERT) cannot be read: {e}",
                path.display()
            ))
        }),
        None => Ok(()),
    }
}

/// Connection options built from the target's fields (never from a URL
/// string: the one parser is `mdp_core::connection`, which also chose TLS).
pub(crate) fn connect_options(target: &ServerTarget) -> PgConnectOptions {
    let mut options = PgConnectOptions::new_without_pgpass()
        .port(target.port)
        .username(&target.user)
        .ssl_mode(ssl_mode(target.tls))
        // The URL may name the application (e.g. to tell functions apart in pg_stat_activity).
        .application_name(
            target
                .application_name
                .as_deref()
                .unwrap_or("mdp-warehouse"),
        );
    options = if target.host.starts_with('/') {
        options.socket(&target.host)
    } else {
        options.host(&target.host)
    };
    if let Some(password) = &target.password {
        options = options.password(password.expose());
    }
    if let Some(database) = &target.database {
        options = options.database(database);
    }
    if let Some(cert) = &target.ssl_root_cert {
        options = options.ssl_root_cert(cert);
    }
    options
}

fn ssl_mode(tls: TlsMode) -> PgSslMode {
    match tls {
        TlsMode::Disable => PgSslMode::Disable,
        TlsMode::Prefer => PgSslMode::Prefer,
        TlsMode::Require => PgSslMode::Require,
        TlsMode::VerifyCa => PgSslMode::VerifyCa,
        TlsMode::VerifyFull => PgSslMode::VerifyFull,
    }
}

/// Makes ring the process's TLS crypto provider, once. The functions link
/// rustls with two providers (ring for sqlx, aws-lc-rs for reqwest and the
/// AWS SDK); with both, rustls cannot pick one by itself, and verifying a
/// server against a CA bundle (`sslrootcert`) would panic at connect.
fn ensure_tls_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // An error only means another part of the process installed one first.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A lazy pool on `options`, after one direct connection proves the
/// warehouse reachable (Postgres and Redshift).
pub(crate) async fn connect_with(
    options: PgConnectOptions,
    pool_size: u32,
) -> Result<PgPool, Failure> {
    ensure_tls_provider();
    // One direct connection first: the pool would retry a refused connection
    // until its timeout and then report only "pool timed out".
    let probe = tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options))
        .await
        .map_err(|_| {
            sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connection timed out",
            ))
        })??;
    probe.close().await?;
    // Connections are checked before each use (sqlx's default), so one the
    // server dropped while a function was frozen is replaced, not handed out.
    Ok(PgPoolOptions::new()
        .max_connections(pool_size.max(1))
        .test_before_acquire(true)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_lazy_with(options))
}

fn target(schema: &str, table: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(table))
}

/// The Postgres type of a schema column (also Redshift's: the DDL of both
/// is checked against it).
pub(crate) fn pg_type(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::Ticker => "VARCHAR(16)",
        ColumnType::Date => "DATE",
        ColumnType::Float => "DOUBLE PRECISION",
        ColumnType::Int => "BIGINT",
        ColumnType::Text => "TEXT",
        ColumnType::Timestamp => "TIMESTAMPTZ",
    }
}

/// Serialises the loads of one ticker (SQS may deliver a load twice at
/// once: two truncate_inserts would otherwise both delete, then collide).
async fn lock_ticker(conn: &mut PgConnection, target: &str, ticker: &str) -> Result<(), Failure> {
    // Timestamps cross in binary (UTC instants); the zone only matters for a
    // legacy `timestamp without time zone` table: make that UTC too.
    sqlx::query("SET LOCAL TIME ZONE 'UTC'")
        .execute(&mut *conn)
        .await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
        .bind(format!("mdp-warehouse load {target} {ticker}"))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn load_in(
    conn: &mut PgConnection,
    target: &str,
    job: &Job<'_>,
) -> Result<LoadReport, Failure> {
    // Loads up to `direct_load_max_rows` (WAREHOUSE_DIRECT_LOAD_MAX_ROWS;
    // a daily load is a year's partition) send the rows as one array per
    // column bound to the strategy's statement itself; larger ones COPY
    // into a temporary staging table first. Both give the same rows and
    // reports (the warehouse tests run every scenario both ways); the
    // arrays spare a small load the staging table's creation, catalog churn
    // and COPY round trips, which cost more than its rows.
    let direct = job.rows.len() <= job.direct_load_max_rows;
    if !direct && job.copies_into_table {
        // When the table holds nothing of the ticker (a backfill, a reload
        // into a new warehouse; or once truncate_insert has deleted its
        // rows), and the ticker's lock keeps it so, every strategy comes
        // down to inserting the rows, which COPY does straight into the
        // table, sparing the staging table's second write of every row.
        let deleted = match job.strategy {
            LoadStrategy::TruncateInsert => Some(delete_ticker(conn, target, job.ticker).await?),
            LoadStrategy::Upsert | LoadStrategy::Append => {
                (!ticker_in_table(conn, target, job.ticker).await?).then_some(0)
            }
        };
        if let Some(deleted) = deleted {
            copy_rows(conn, target, job.rows, job.batch_size).await?;
            return Ok(LoadReport {
                rows_in: job.rows.len(),
                inserted: job.rows.len() as u64,
                deleted,
                ..LoadReport::default()
            });
        }
    }
    let cols = all_columns("");
    let source = if direct {
        // Unconstrained element types: the assignment to the table's
        // columns checks lengths (an explicit cast to VARCHAR(16) would
        // silently truncate instead).
        let arrays: Vec<String> = MARKET_DATA
            .iter()
            .enumerate()
            .map(|(i, c)| format!("${}::{}[]", i + 1, array_element_type(c.ty)))
            .collect();
        format!("UNNEST({}) AS s({cols})", arrays.join(", "))
    } else {
        let definitions: Vec<String> = MARKET_DATA
            .iter()
            .map(|c| format!("{} {}", quote_ident(c.name), pg_type(c.ty)))
            .collect();
        sqlx::query(AssertSqlSafe(format!(
            "CREATE TEMP TABLE {STAGE} ({}) ON COMMIT DROP",
            definitions.join(", ")
        )))
        .execute(&mut *conn)
        .await?;
        copy_rows(conn, STAGE, job.rows, job.batch_size).await?;
        STAGE.to_string()
    };
    let insert = format!("INSERT INTO {target} AS t ({cols}) SELECT {cols} FROM {source}");
    let columns = if direct {
        Some(ColumnArrays::of(job.rows)?)
    } else {
        None
    };
    let statement = |sql: String| {
        let query = sqlx::query(AssertSqlSafe(sql));
        match &columns {
            Some(columns) => columns.bind(query),
            None => query,
        }
    };
    let mut report = LoadReport {
        rows_in: job.rows.len(),
        ..LoadReport::default()
    };
    match job.strategy {
        LoadStrategy::Upsert => {
            let sql = format!(
                "WITH written AS ({insert} ON CONFLICT (\"ticker\", \"date\") DO UPDATE SET {} \
                 WHERE ({}) IS DISTINCT FROM ({}) RETURNING (xmax = 0) AS inserted) \
                 SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM written",
                update_assignments("EXCLUDED"),
                compared_columns("t."),
                compared_columns("EXCLUDED."),
            );
            let counts = statement(sql).fetch_one(&mut *conn).await?;
            report.inserted = counts.try_get::<i64, _>(0)? as u64;
            report.updated = counts.try_get::<i64, _>(1)? as u64;
        }
        LoadStrategy::Append => {
            let sql = format!("{insert} ON CONFLICT (\"ticker\", \"date\") DO NOTHING");
            report.inserted = statement(sql).execute(&mut *conn).await?.rows_affected();
        }
        LoadStrategy::TruncateInsert => {
            report.deleted = delete_ticker(conn, target, job.ticker).await?;
            report.inserted = statement(insert).execute(&mut *conn).await?.rows_affected();
        }
    }
    Ok(report)
}

async fn delete_ticker(
    conn: &mut PgConnection,
    target: &str,
    ticker: &str,
) -> Result<u64, Failure> {
    Ok(sqlx::query(AssertSqlSafe(format!(
        "DELETE FROM {target} WHERE \"ticker\" = $1"
    )))
    .bind(ticker)
    .execute(&mut *conn)
    .await?
    .rows_affected())
}

async fn ticker_in_table(
    conn: &mut PgConnection,
    target: &str,
    ticker: &str,
) -> Result<bool, Failure> {
    let sql = format!("SELECT EXISTS (SELECT 1 FROM {target} WHERE \"ticker\" = $1)");
    Ok(sqlx::query_scalar(AssertSqlSafe(sql))
        .bind(ticker)
        .fetch_one(&mut *conn)
        .await?)
}

/// Whether every contract column of the table has the type binary COPY
/// sends for it ([`pg_type`], length limits aside).
async fn exact_column_types(pool: &PgPool, schema: &str, table: &str) -> Result<bool, Failure> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT attname::text, format_type(atttypid, NULL) FROM pg_catalog.pg_attribute \
         WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped",
    )
    .bind(target(schema, table))
    .fetch_all(pool)
    .await?;
    Ok(MARKET_DATA.iter().all(|column| {
        let expected = match column.ty {
            ColumnType::Ticker => "character varying",
            ColumnType::Date => "date",
            ColumnType::Float => "double precision",
            ColumnType::Int => "bigint",
            ColumnType::Text => "text",
            ColumnType::Timestamp => "timestamp with time zone",
        };
        rows.iter()
            .any(|(name, ty)| name == column.name && ty == expected)
    }))
}

/// The array element type a column's values are bound as.
fn array_element_type(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::Ticker | ColumnType::Text => "TEXT",
        ColumnType::Date => "DATE",
        ColumnType::Float => "FLOAT8",
        ColumnType::Int => "INT8",
        ColumnType::Timestamp => "TIMESTAMPTZ",
    }
}

/// The rows of a direct load as one array per column, in schema order;
/// bound as binary parameters, so every f64 and microsecond arrives exactly,
/// as with COPY.
enum ColumnArray {
    Text(Vec<Option<String>>),
    Date(Vec<NaiveDate>),
    Float(Vec<Option<f64>>),
    Int(Vec<Option<i64>>),
    Timestamp(Vec<DateTime<Utc>>),
}

struct ColumnArrays(Vec<ColumnArray>);

impl ColumnArrays {
    fn of(rows: &[CuratedRow]) -> Result<ColumnArrays, Failure> {
        let mut arrays: Vec<ColumnArray> = MARKET_DATA
            .iter()
            .map(|c| match c.ty {
                ColumnType::Ticker | ColumnType::Text => ColumnArray::Text(Vec::new()),
                ColumnType::Date => ColumnArray::Date(Vec::new()),
                ColumnType::Float => ColumnArray::Float(Vec::new()),
                ColumnType::Int => ColumnArray::Int(Vec::new()),
                ColumnType::Timestamp => ColumnArray::Timestamp(Vec::new()),
            })
            .collect();
        for row in rows {
            for ((array, value), column) in arrays.iter_mut().zip(row.values()).zip(&MARKET_DATA) {
                match (array, value) {
                    (ColumnArray::Text(a), Value::Text(v)) => a.push(v.map(str::to_owned)),
                    (ColumnArray::Date(a), Value::Date(v)) => a.push(v),
                    (ColumnArray::Float(a), Value::Float(v)) => a.push(v),
                    (ColumnArray::Int(a), Value::Int(v)) => a.push(v),
                    (ColumnArray::Timestamp(a), Value::Timestamp(v)) => a.push(v),
                    (_, value) => {
                        return Err(Failure::Data(format!(
                            "column {} holds {value:?}, not a {:?}",
                            column.name, column.ty
                        )));
                    }
                }
            }
        }
        Ok(ColumnArrays(arrays))
    }

    fn bind<'q>(&'q self, mut query: PgQuery<'q>) -> PgQuery<'q> {
        for array in &self.0 {
            query = match array {
                ColumnArray::Text(a) => query.bind(a),
                ColumnArray::Date(a) => query.bind(a),
                ColumnArray::Float(a) => query.bind(a),
                ColumnArray::Int(a) => query.bind(a),
                ColumnArray::Timestamp(a) => query.bind(a),
            };
        }
        query
    }
}

type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

pub(crate) async fn read_rows(
    pool: &PgPool,
    schema: &str,
    table: &str,
    ticker: Option<&str>,
) -> Result<Vec<CuratedRow>, Failure> {
    // Read as types every client decodes (also from a legacy table with
    // NUMERIC prices): days since 2000-01-01, float8, int8, text, and
    // timestamps as RFC 3339 UTC text with microseconds.
    let select: Vec<String> = MARKET_DATA
        .iter()
        .map(|column| {
            let c = quote_ident(column.name);
            match column.ty {
                ColumnType::Ticker | ColumnType::Text => format!("{c}::text"),
                ColumnType::Date => format!("({c} - DATE '2000-01-01')::int4"),
                ColumnType::Float => format!("{c}::float8"),
                ColumnType::Int => format!("{c}::int8"),
                ColumnType::Timestamp => {
                    format!("to_char({c}, 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
                }
            }
        })
        .collect();
    let filter = if ticker.is_some() {
        "WHERE \"ticker\" = $1"
    } else {
        ""
    };
    let sql = format!(
        "SELECT {} FROM {} {filter} ORDER BY \"ticker\" COLLATE \"C\", \"date\"",
        select.join(", "),
        target(schema, table)
    );
    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL TIME ZONE 'UTC'")
        .execute(&mut *tx)
        .await?;
    let mut query = sqlx::query(AssertSqlSafe(sql));
    if let Some(ticker) = ticker {
        query = query.bind(ticker);
    }
    let rows = query.fetch_all(&mut *tx).await?;
    tx.commit().await?;

    rows.iter()
        .map(|row| {
            let mut values = Vec::with_capacity(WIDTH);
            for (i, column) in MARKET_DATA.iter().enumerate() {
                values.push(match column.ty {
                    ColumnType::Ticker | ColumnType::Text => OwnedValue::Text(row.try_get(i)?),
                    ColumnType::Float => OwnedValue::Float(row.try_get(i)?),
                    ColumnType::Int => OwnedValue::Int(row.try_get(i)?),
                    ColumnType::Date => {
                        let days: i32 = row.try_get(i)?;
                        OwnedValue::Date(copy::date_from_pg(days).ok_or_else(|| {
                            Failure::Data(format!("date out of range: {days} days"))
                        })?)
                    }
                    ColumnType::Timestamp => {
                        OwnedValue::Timestamp(parse_timestamp(&row.try_get::<String, _>(i)?)?)
                    }
                });
            }
            CuratedRow::from_values(values).map_err(|e| Failure::Data(e.to_string()))
        })
        .collect()
}

fn parse_timestamp(text: &str) -> Result<DateTime<Utc>, Failure> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| Failure::Data(format!("timestamp {text:?}: {e}")))
}
