//! SQLite, the embedded default: multi-row `INSERT ... ON CONFLICT`
//! statements inside one `BEGIN IMMEDIATE` transaction (the write lock is
//! taken up front, so the before/after counts of a load cannot see another
//! writer).

use std::str::FromStr;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use mdp_core::config::{LoadStrategy, WarehouseKind};
use mdp_core::connection::{SqliteTarget, WarehouseConnection};
use mdp_core::schema::{ColumnType, MARKET_DATA, OwnedValue, Value, WIDTH};
use mdp_core::{CuratedRow, Ticker};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{AssertSqlSafe, Row, SqliteConnection, SqlitePool};

use crate::errors::{Failure, Secrets};
use crate::port::{
    CuratedBatch, LoadReport, RowSource, RowWarehouse, WarehouseError, WarehouseLoader, check_rows,
    checked_side, rows_under_lock,
};
use crate::side::{
    self, ACTIONS, FINDINGS, QUARANTINE, SideBatch, SidePlan, SideReport, SideRows, SideTable,
    StoredAction, StoredFinding,
};
use crate::sql::{all_columns, compared_columns, quote_ident, update_assignments};
use crate::{TableSettings, log_load, log_side, migrate};

/// SQLite's default limit of bound parameters per statement (SQLITE_MAX_VARIABLE_NUMBER).
const MAX_VARIABLES: usize = 32_766;
/// Rows per statement the parameter limit allows.
const MAX_ROWS_PER_STATEMENT: usize = MAX_VARIABLES / WIDTH;
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Dates as stored: `YYYY-MM-DD`.
const DATE_FORMAT: &str = "%Y-%m-%d";
/// Timestamps as stored: RFC 3339 UTC with exactly six fractional digits.
const TIMESTAMP_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.6fZ";

/// The SQLite type of a schema column (the DDL is checked against it):
/// dates and timestamps as sortable text.
#[cfg(test)]
pub(crate) fn sqlite_type(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::Ticker | ColumnType::Text | ColumnType::Date | ColumnType::Timestamp => "TEXT",
        ColumnType::Float => "REAL",
        ColumnType::Int => "INTEGER",
    }
}

/// The warehouse in a SQLite file (or in memory).
pub struct SqliteWarehouse {
    pool: SqlitePool,
    table: String,
    batch_size: usize,
    description: String,
}

impl SqliteWarehouse {
    /// Opens (and creates, with its folder) the database file, or an
    /// in-memory database.
    pub async fn connect(
        target: &SqliteTarget,
        settings: &TableSettings,
    ) -> Result<Self, WarehouseError> {
        let url = WarehouseConnection::Sqlite(target.clone()).redacted();
        let what = format!("connecting to warehouse {url}");
        let pool = connect(target, settings.pool_size)
            .await
            .map_err(|e| e.into_error(WarehouseKind::Sqlite, &Secrets::default(), &what))?;
        Ok(SqliteWarehouse {
            pool,
            table: settings.table.clone(),
            batch_size: settings.batch_size.max(1),
            description: format!("sqlite {url} table {}", settings.table),
        })
    }

    /// One load as one `BEGIN IMMEDIATE` transaction: the database's write
    /// lock is taken first, then the rows are read (from the lake, for a
    /// batch), so concurrent loads of a ticker apply one after the other,
    /// each with what the lake holds when it runs.
    async fn load_from(
        &self,
        ticker: &Ticker,
        source: RowSource<'_>,
        strategy: LoadStrategy,
    ) -> Result<LoadReport, WarehouseError> {
        let what = format!("loading {ticker} into {}", self.table);
        let started = Instant::now();
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| self.fail(&what)(e.into()))?;
        let result = async {
            let Some(rows) = rows_under_lock(source, ticker, strategy, &what).await? else {
                return Ok(LoadReport::default());
            };
            let job = Job {
                ticker: ticker.as_str(),
                rows: &rows,
                strategy,
                batch_size: self.batch_size,
            };
            load_in(&mut tx, &self.table, &job)
                .await
                .map_err(self.fail(&what))
        }
        .await;
        match result {
            Ok(report) => {
                mdp_core::crash::point("load.before_commit");
                tx.commit().await.map_err(|e| self.fail(&what)(e.into()))?;
                mdp_core::crash::point("load.after_commit");
                log_load(ticker, &self.table, strategy, &report, started);
                Ok(report)
            }
            Err(e) => {
                let _ = tx.rollback().await;
                Err(e)
            }
        }
    }

    fn fail(&self, what: &str) -> impl FnOnce(Failure) -> WarehouseError + '_ {
        let what = what.to_string();
        move |e| e.into_error(WarehouseKind::Sqlite, &Secrets::default(), &what)
    }
}

#[async_trait]
impl WarehouseLoader for SqliteWarehouse {
    fn describe(&self) -> String {
        self.description.clone()
    }

    async fn migrate(&self) -> Result<(), WarehouseError> {
        migrate::migrate_sqlite(&self.pool, &self.table)
            .await
            .map_err(self.fail(&format!("migrating warehouse table {}", self.table)))
    }

    async fn load(
        &self,
        batch: &CuratedBatch<'_>,
        strategy: LoadStrategy,
    ) -> Result<LoadReport, WarehouseError> {
        self.load_from(batch.ticker, RowSource::Lake(batch), strategy)
            .await
    }

    /// One `BEGIN IMMEDIATE` transaction: the write lock first (so side
    /// loads apply one after the other), then the ticker's stored rows are
    /// read, planned against and written.
    async fn load_side(
        &self,
        side: &SideBatch<'_>,
        strategy: LoadStrategy,
    ) -> Result<SideReport, WarehouseError> {
        let what = format!("loading the side data of {}", side.ticker);
        checked_side(side, &what)?;
        let started = Instant::now();
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| self.fail(&what)(e.into()))?;
        let result = async {
            let stored = read_side_in(&mut tx, side.ticker.as_str()).await?;
            let plan = side::plan(side, &stored, strategy);
            write_side(&mut tx, side.ticker.as_str(), &plan).await?;
            Ok(plan.report)
        }
        .await
        .map_err(self.fail(&what));
        match result {
            Ok(report) => {
                tx.commit().await.map_err(|e| self.fail(&what)(e.into()))?;
                log_side(side.ticker, "main", strategy, &report, started);
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
impl RowWarehouse for SqliteWarehouse {
    async fn load_rows(
        &self,
        ticker: &Ticker,
        rows: &[CuratedRow],
        strategy: LoadStrategy,
    ) -> Result<LoadReport, WarehouseError> {
        // Bad rows are refused before the write lock is taken.
        check_rows(ticker, rows).map_err(|why| WarehouseError::Refused {
            what: format!("loading {ticker} into {}", self.table),
            why,
        })?;
        self.load_from(ticker, RowSource::Rows(rows), strategy)
            .await
    }

    async fn read_rows(&self, ticker: Option<&Ticker>) -> Result<Vec<CuratedRow>, WarehouseError> {
        read_rows(&self.pool, &self.table, ticker.map(Ticker::as_str))
            .await
            .map_err(self.fail(&format!("reading {}", self.table)))
    }

    async fn read_side(&self, ticker: &Ticker) -> Result<SideRows, WarehouseError> {
        let what = format!("reading the side data of {ticker}");
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| self.fail(&what)(e.into()))?;
        read_side_in(&mut conn, ticker.as_str())
            .await
            .map_err(self.fail(&what))
    }

    async fn drop_table(&self) -> Result<(), WarehouseError> {
        sqlx::raw_sql(AssertSqlSafe(format!(
            "DROP TABLE IF EXISTS {}",
            quote_ident(&self.table)
        )))
        .execute(&self.pool)
        .await
        .map(drop)
        .map_err(|e| self.fail(&format!("dropping {}", self.table))(Failure::Db(e)))
    }
}

/// One load, as the statements see it: rows checked by [`check_rows`].
struct Job<'a> {
    ticker: &'a str,
    rows: &'a [CuratedRow],
    strategy: LoadStrategy,
    batch_size: usize,
}

async fn connect(target: &SqliteTarget, pool_size: u32) -> Result<SqlitePool, Failure> {
    let options = if target.in_memory {
        // A named in-memory database is shared by the pool's connections.
        SqliteConnectOptions::from_str(&WarehouseConnection::Sqlite(target.clone()).to_url())?
    } else {
        if let Some(parent) = target.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(Failure::Io)?;
        }
        SqliteConnectOptions::new().filename(&target.path)
    }
    .create_if_missing(true)
    .busy_timeout(BUSY_TIMEOUT);
    let mut pool = SqlitePoolOptions::new().max_connections(pool_size.max(1));
    if target.in_memory {
        // An in-memory database lives as long as one of its connections.
        pool = pool
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None);
    }
    Ok(pool.connect_with(options).await?)
}

pub(crate) fn format_timestamp(ts: DateTime<Utc>) -> String {
    ts.format(TIMESTAMP_FORMAT).to_string()
}

async fn count(conn: &mut SqliteConnection, target: &str, ticker: &str) -> Result<u64, Failure> {
    let n: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT count(*) FROM {target} WHERE \"ticker\" = ?"
    )))
    .bind(ticker)
    .fetch_one(&mut *conn)
    .await?;
    Ok(n as u64)
}

async fn load_in(
    conn: &mut SqliteConnection,
    table: &str,
    job: &Job<'_>,
) -> Result<LoadReport, Failure> {
    let target = quote_ident(table);
    let mut report = LoadReport {
        rows_in: job.rows.len(),
        ..LoadReport::default()
    };
    let conflict = match job.strategy {
        LoadStrategy::Upsert => {
            format!(
                " ON CONFLICT (\"ticker\", \"date\") DO UPDATE SET {} WHERE ({}) IS NOT ({})",
                update_assignments("excluded"),
                compared_columns("t."),
                compared_columns("excluded.")
            )
        }
        LoadStrategy::Append => " ON CONFLICT (\"ticker\", \"date\") DO NOTHING".to_string(),
        LoadStrategy::TruncateInsert => String::new(),
    };
    let before = match job.strategy {
        LoadStrategy::TruncateInsert => {
            report.deleted = sqlx::query(AssertSqlSafe(format!(
                "DELETE FROM {target} WHERE \"ticker\" = ?"
            )))
            .bind(job.ticker)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            0
        }
        LoadStrategy::Upsert | LoadStrategy::Append => count(conn, &target, job.ticker).await?,
    };

    let placeholders = format!("({})", vec!["?"; WIDTH].join(", "));
    let head = format!("INSERT INTO {target} AS t ({}) VALUES ", all_columns(""));
    let mut written = 0u64; // inserted + updated rows, as SQLite counts changes
    for chunk in job.rows.chunks(job.batch_size.min(MAX_ROWS_PER_STATEMENT)) {
        let sql = format!(
            "{head}{}{conflict}",
            vec![placeholders.as_str(); chunk.len()].join(", ")
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for row in chunk {
            for value in row.values() {
                query = match value {
                    Value::Text(v) => query.bind(v.map(str::to_string)),
                    Value::Date(d) => query.bind(d.format(DATE_FORMAT).to_string()),
                    Value::Float(v) => query.bind(v),
                    Value::Int(v) => query.bind(v),
                    Value::Timestamp(ts) => query.bind(format_timestamp(ts)),
                };
            }
        }
        written += query.execute(&mut *conn).await?.rows_affected();
    }

    // All rows are of the ticker and unique per date: the ticker's row count
    // grew by the inserted rows; every other change was an update.
    let after = count(conn, &target, job.ticker).await?;
    report.inserted = after - before;
    report.updated = written - report.inserted;
    Ok(report)
}

async fn read_rows(
    pool: &SqlitePool,
    table: &str,
    ticker: Option<&str>,
) -> Result<Vec<CuratedRow>, Failure> {
    let filter = if ticker.is_some() {
        "WHERE \"ticker\" = ?"
    } else {
        ""
    };
    let sql = format!(
        "SELECT {} FROM {} {filter} ORDER BY \"ticker\", \"date\"",
        all_columns(""),
        quote_ident(table)
    );
    let mut query = sqlx::query(AssertSqlSafe(sql));
    if let Some(ticker) = ticker {
        query = query.bind(ticker);
    }
    let rows = query.fetch_all(pool).await?;
    rows.iter()
        .map(|row| {
            let mut values = Vec::with_capacity(WIDTH);
            for (i, column) in MARKET_DATA.iter().enumerate() {
                let bad = |text: &str, e: &dyn std::fmt::Display| {
                    Failure::Data(format!("{} {text:?}: {e}", column.name))
                };
                values.push(match column.ty {
                    ColumnType::Ticker | ColumnType::Text => OwnedValue::Text(row.try_get(i)?),
                    ColumnType::Float => OwnedValue::Float(row.try_get(i)?),
                    ColumnType::Int => OwnedValue::Int(row.try_get(i)?),
                    ColumnType::Date => {
                        let text: String = row.try_get(i)?;
                        OwnedValue::Date(
                            NaiveDate::parse_from_str(&text, DATE_FORMAT)
                                .map_err(|e| bad(&text, &e))?,
                        )
                    }
                    ColumnType::Timestamp => {
                        let text: String = row.try_get(i)?;
                        OwnedValue::Timestamp(
                            DateTime::parse_from_rfc3339(&text)
                                .map(|t| t.with_timezone(&Utc))
                                .map_err(|e| bad(&text, &e))?,
                        )
                    }
                });
            }
            CuratedRow::from_values(values).map_err(|e| Failure::Data(e.to_string()))
        })
        .collect()
}

// ---------------------------------------------------------------------------
// The side tables: one statement per deleted or inserted row (a ticker has
// tens to hundreds of them, and an unchanged batch writes none).

fn parse_date(text: &str) -> Result<NaiveDate, Failure> {
    NaiveDate::parse_from_str(text, DATE_FORMAT)
        .map_err(|e| Failure::Data(format!("date {text:?}: {e}")))
}

fn parse_timestamp(text: &str) -> Result<DateTime<Utc>, Failure> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| Failure::Data(format!("timestamp {text:?}: {e}")))
}

fn select_side(table: &SideTable, order: &str) -> String {
    format!(
        "SELECT {} FROM {} WHERE \"ticker\" = ? ORDER BY {order}",
        table.columns[1..]
            .iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", "),
        quote_ident(table.name)
    )
}

fn insert_side(table: &SideTable) -> String {
    format!(
        "INSERT INTO {} ({}) VALUES ({})",
        quote_ident(table.name),
        table
            .columns
            .iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", "),
        vec!["?"; table.columns.len()].join(", ")
    )
}

fn delete_side(table: &SideTable) -> String {
    format!(
        "DELETE FROM {} WHERE {}",
        quote_ident(table.name),
        table
            .key
            .iter()
            .map(|c| format!("{} = ?", quote_ident(c)))
            .collect::<Vec<_>>()
            .join(" AND ")
    )
}

async fn read_side_in(conn: &mut SqliteConnection, ticker: &str) -> Result<SideRows, Failure> {
    let data = |e: String| Failure::Data(e);
    let mut out = SideRows::default();
    let rows = sqlx::query(AssertSqlSafe(select_side(&ACTIONS, "\"date\", \"kind\"")))
        .bind(ticker)
        .fetch_all(&mut *conn)
        .await?;
    for r in &rows {
        out.actions.push(StoredAction {
            action: mdp_core::quality::CorporateAction {
                date: parse_date(&r.try_get::<String, _>(0)?)?,
                kind: side::parse_kind(&r.try_get::<String, _>(1)?).map_err(data)?,
                amount: r.try_get(2)?,
                numerator: r.try_get(4)?,
                denominator: r.try_get(5)?,
            },
            ratio: r.try_get(3)?,
            created_at: parse_timestamp(&r.try_get::<String, _>(6)?)?,
            updated_at: parse_timestamp(&r.try_get::<String, _>(7)?)?,
        });
    }
    let rows = sqlx::query(AssertSqlSafe(select_side(&FINDINGS, "\"date\", \"rule\"")))
        .bind(ticker)
        .fetch_all(&mut *conn)
        .await?;
    for r in &rows {
        out.findings.push(StoredFinding {
            finding: mdp_core::quality::QualityFinding {
                date: parse_date(&r.try_get::<String, _>(0)?)?,
                rule: side::parse_rule(&r.try_get::<String, _>(1)?).map_err(data)?,
                detail: r.try_get(2)?,
            },
            recorded_at: parse_timestamp(&r.try_get::<String, _>(3)?)?,
        });
    }
    let rows = sqlx::query(AssertSqlSafe(select_side(
        &QUARANTINE,
        "\"date\", \"raw_key\"",
    )))
    .bind(ticker)
    .fetch_all(&mut *conn)
    .await?;
    for r in &rows {
        out.quarantine.push(mdp_core::quality::QuarantinedBar {
            bar: mdp_core::row::DailyBar {
                date: parse_date(&r.try_get::<String, _>(0)?)?,
                open: r.try_get(4)?,
                high: r.try_get(5)?,
                low: r.try_get(6)?,
                close: r.try_get(7)?,
                adj_close: r.try_get(8)?,
                volume: r.try_get(9)?,
            },
            raw_key: r.try_get(1)?,
            rules: side::parse_rules(&r.try_get::<String, _>(2)?).map_err(data)?,
            detail: r.try_get(3)?,
            quarantined_at: parse_timestamp(&r.try_get::<String, _>(10)?)?,
        });
    }
    // SQLite orders text by bytes: the documented order already.
    Ok(out)
}

async fn write_side(
    conn: &mut SqliteConnection,
    ticker: &str,
    plan: &SidePlan,
) -> Result<(), Failure> {
    let date = |d: NaiveDate| d.format(DATE_FORMAT).to_string();

    let delete = delete_side(&ACTIONS);
    for (d, kind) in &plan.actions.delete {
        sqlx::query(AssertSqlSafe(delete.clone()))
            .bind(ticker)
            .bind(date(*d))
            .bind(*kind)
            .execute(&mut *conn)
            .await?;
    }
    let insert = insert_side(&ACTIONS);
    for a in &plan.actions.insert {
        sqlx::query(AssertSqlSafe(insert.clone()))
            .bind(ticker)
            .bind(date(a.action.date))
            .bind(a.action.kind.code())
            .bind(a.action.amount)
            .bind(a.ratio)
            .bind(a.action.numerator)
            .bind(a.action.denominator)
            .bind(format_timestamp(a.created_at))
            .bind(format_timestamp(a.updated_at))
            .execute(&mut *conn)
            .await?;
    }

    let delete = delete_side(&FINDINGS);
    for (d, rule) in &plan.findings.delete {
        sqlx::query(AssertSqlSafe(delete.clone()))
            .bind(ticker)
            .bind(date(*d))
            .bind(*rule)
            .execute(&mut *conn)
            .await?;
    }
    let insert = insert_side(&FINDINGS);
    for f in &plan.findings.insert {
        sqlx::query(AssertSqlSafe(insert.clone()))
            .bind(ticker)
            .bind(date(f.finding.date))
            .bind(f.finding.rule.code())
            .bind(f.finding.detail.as_str())
            .bind(format_timestamp(f.recorded_at))
            .execute(&mut *conn)
            .await?;
    }

    let delete = delete_side(&QUARANTINE);
    for (d, raw_key) in &plan.quarantine.delete {
        sqlx::query(AssertSqlSafe(delete.clone()))
            .bind(ticker)
            .bind(date(*d))
            .bind(raw_key.as_str())
            .execute(&mut *conn)
            .await?;
    }
    let insert = insert_side(&QUARANTINE);
    for q in &plan.quarantine.insert {
        sqlx::query(AssertSqlSafe(insert.clone()))
            .bind(ticker)
            .bind(date(q.bar.date))
            .bind(q.raw_key.as_str())
            .bind(side::rules_text(&q.rules))
            .bind(q.detail.as_str())
            .bind(q.bar.open)
            .bind(q.bar.high)
            .bind(q.bar.low)
            .bind(q.bar.close)
            .bind(q.bar.adj_close)
            .bind(q.bar.volume)
            .bind(format_timestamp(q.quarantined_at))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn timestamps_have_six_fractional_digits_and_z() {
        let ts = Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap()
            + chrono::TimeDelta::microseconds(123_456);
        assert_eq!(format_timestamp(ts), "2025-01-02T03:04:05.123456Z");
        let whole = Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(format_timestamp(whole), "2025-01-02T03:04:05.000000Z");
    }

    #[test]
    fn statements_stay_within_the_parameter_limit() {
        assert_eq!(MAX_ROWS_PER_STATEMENT, 1023);
        const { assert!(MAX_ROWS_PER_STATEMENT * WIDTH <= MAX_VARIABLES) };
    }
}
