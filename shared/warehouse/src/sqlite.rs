//! SQLite: multi-row `INSERT ... ON CONFLICT` statements inside one
//! `BEGIN IMMEDIATE` transaction (the write lock is taken up front, so the
//! before/after counts of a load cannot see another writer).

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use mdp_core::CuratedRow;
use mdp_core::config::LoadStrategy;
use mdp_core::row::COLUMNS;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{AssertSqlSafe, Row, SqliteConnection, SqlitePool};

use crate::columns::{self, KINDS, Kind, Owned, Value, column_list, quote_ident, values};
use crate::{Failure, Job, LoadReport};

/// SQLite's default limit of bound parameters per statement (SQLITE_MAX_VARIABLE_NUMBER).
const MAX_VARIABLES: usize = 32_766;
/// Rows per statement the parameter limit allows.
const MAX_ROWS_PER_STATEMENT: usize = MAX_VARIABLES / COLUMNS.len();
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Dates as stored: `YYYY-MM-DD`.
const DATE_FORMAT: &str = "%Y-%m-%d";
/// Timestamps as stored: RFC 3339 UTC with exactly six fractional digits.
const TIMESTAMP_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.6fZ";

pub(crate) async fn connect(url: &str, pool_size: u32) -> Result<SqlitePool, Failure> {
    let options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .busy_timeout(BUSY_TIMEOUT);
    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
    if !in_memory
        && let Some(parent) = options
            .get_filename()
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
    {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(Failure::Io)?;
    }
    let mut pool = SqlitePoolOptions::new().max_connections(pool_size.max(1));
    if in_memory {
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

pub(crate) async fn load(
    pool: &SqlitePool,
    table: &str,
    job: &Job<'_>,
) -> Result<LoadReport, Failure> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    match load_in(&mut tx, table, job).await {
        Ok(report) => {
            tx.commit().await?;
            Ok(report)
        }
        Err(e) => {
            let _ = tx.rollback().await;
            Err(e)
        }
    }
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
            let sets: Vec<String> = columns::updated_columns()
                .map(|c| format!("{0} = excluded.{0}", quote_ident(c)))
                .collect();
            let compared = columns::compared_columns();
            format!(
                " ON CONFLICT (\"ticker\", \"date\") DO UPDATE SET {} WHERE ({}) IS NOT ({})",
                sets.join(", "),
                column_list(compared, "t."),
                column_list(compared, "excluded.")
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

    let placeholders = format!("({})", vec!["?"; COLUMNS.len()].join(", "));
    let head = format!(
        "INSERT INTO {target} AS t ({}) VALUES ",
        column_list(&COLUMNS, "")
    );
    let mut written = 0u64; // inserted + updated rows, as SQLite counts changes
    for chunk in job.rows.chunks(job.batch_size.min(MAX_ROWS_PER_STATEMENT)) {
        let sql = format!(
            "{head}{}{conflict}",
            vec![placeholders.as_str(); chunk.len()].join(", ")
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for row in chunk {
            for value in values(row) {
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

pub(crate) async fn read_rows(
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
        column_list(&COLUMNS, ""),
        quote_ident(table)
    );
    let mut query = sqlx::query(AssertSqlSafe(sql));
    if let Some(ticker) = ticker {
        query = query.bind(ticker);
    }
    let rows = query.fetch_all(pool).await?;
    rows.iter()
        .map(|row| {
            let mut values = Vec::with_capacity(COLUMNS.len());
            for (i, kind) in KINDS.into_iter().enumerate() {
                values.push(match kind {
                    Kind::Ticker | Kind::Text => Owned::Text(row.try_get(i)?),
                    Kind::Float => Owned::Float(row.try_get(i)?),
                    Kind::Int => Owned::Int(row.try_get(i)?),
                    Kind::Date => {
                        let text: String = row.try_get(i)?;
                        Owned::Date(
                            NaiveDate::parse_from_str(&text, DATE_FORMAT).map_err(|e| {
                                Failure::Data(format!("{} {text:?}: {e}", COLUMNS[i]))
                            })?,
                        )
                    }
                    Kind::Timestamp => {
                        let text: String = row.try_get(i)?;
                        Owned::Timestamp(
                            DateTime::parse_from_rfc3339(&text)
                                .map(|t| t.with_timezone(&Utc))
                                .map_err(|e| {
                                    Failure::Data(format!("{} {text:?}: {e}", COLUMNS[i]))
                                })?,
                        )
                    }
                });
            }
            columns::row_from_values(values).map_err(Failure::Data)
        })
        .collect()
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
        assert!(MAX_ROWS_PER_STATEMENT * COLUMNS.len() <= MAX_VARIABLES);
    }
}
