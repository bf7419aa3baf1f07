//! Postgres: binary COPY into a temporary staging table, then one set-based
//! statement per strategy, all in one transaction.
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

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use mdp_core::CuratedRow;
use mdp_core::config::LoadStrategy;
use mdp_core::row::COLUMNS;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions, PgSslMode};
use sqlx::{AssertSqlSafe, Connection, PgPool, Row};

use crate::columns::{self, KINDS, Kind, Owned, column_list, quote_ident};
use crate::{Failure, Job, LoadReport, pgcopy};

/// How long the first connection may take before the warehouse counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a load waits for a pooled connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// The staging table of a load: temporary, dropped at commit or rollback.
const STAGE: &str = "pg_temp.\"mdp_stage_market_data\"";

pub(crate) async fn connect(url: &str, pool_size: u32) -> Result<PgPool, Failure> {
    let mut options = PgConnectOptions::from_str(url)?;
    // The URL may name the application (e.g. to tell functions apart in pg_stat_activity).
    if !url.contains("application_name=") {
        options = options.application_name("mdp-warehouse");
    }
    let ssl_mode = default_ssl_mode(url, options.get_host());
    connect_with(options.ssl_mode(ssl_mode), pool_size).await
}

/// A lazy pool on `options`, after one direct connection proves the
/// warehouse reachable (Postgres and Redshift).
pub(crate) async fn connect_with(
    options: PgConnectOptions,
    pool_size: u32,
) -> Result<PgPool, Failure> {
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

/// TLS when the URL (or `PGSSLMODE`) does not say: required for a remote
/// host, off on loopback or a Unix socket, where it only costs (sqlx's
/// "prefer" handshake against a self-signed local certificate takes ~180 ms).
fn default_ssl_mode(url: &str, host: &str) -> PgSslMode {
    let explicit = url.split_once('?').is_some_and(|(_, q)| {
        q.split('&')
            .any(|kv| kv.to_ascii_lowercase().starts_with("sslmode="))
    }) || std::env::var_os("PGSSLMODE").is_some();
    if explicit {
        return PgConnectOptions::from_str(url)
            .map(|o| o.get_ssl_mode())
            .unwrap_or(PgSslMode::Require);
    }
    let local = host.starts_with('/')
        || host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if local {
        PgSslMode::Disable
    } else {
        PgSslMode::Require
    }
}

fn target(schema: &str, table: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(table))
}

fn pg_type(kind: Kind) -> &'static str {
    match kind {
        Kind::Ticker => "VARCHAR(16)",
        Kind::Date => "DATE",
        Kind::Float => "DOUBLE PRECISION",
        Kind::Int => "BIGINT",
        Kind::Text => "TEXT",
        Kind::Timestamp => "TIMESTAMPTZ",
    }
}

pub(crate) async fn load(
    pool: &PgPool,
    schema: &str,
    table: &str,
    job: &Job<'_>,
) -> Result<LoadReport, Failure> {
    let mut tx = pool.begin().await?;
    match load_in(&mut tx, &target(schema, table), job).await {
        Ok(report) => {
            tx.commit().await?;
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

async fn load_in(
    conn: &mut PgConnection,
    target: &str,
    job: &Job<'_>,
) -> Result<LoadReport, Failure> {
    // Timestamps cross in binary (UTC instants); the zone only matters for a
    // legacy `timestamp without time zone` table: make that UTC too.
    sqlx::query("SET LOCAL TIME ZONE 'UTC'")
        .execute(&mut *conn)
        .await?;
    // Loads of one ticker run one at a time (SQS may deliver a load twice at
    // once): two truncate_inserts would otherwise both delete, then collide.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
        .bind(format!("mdp-warehouse load {target} {}", job.ticker))
        .execute(&mut *conn)
        .await?;

    let definitions: Vec<String> = COLUMNS
        .iter()
        .zip(KINDS)
        .map(|(c, k)| format!("{} {}", quote_ident(c), pg_type(k)))
        .collect();
    sqlx::query(AssertSqlSafe(format!(
        "CREATE TEMP TABLE {STAGE} ({}) ON COMMIT DROP",
        definitions.join(", ")
    )))
    .execute(&mut *conn)
    .await?;
    copy_rows(conn, STAGE, job.rows, job.batch_size).await?;

    let cols = column_list(&COLUMNS, "");
    let insert = format!("INSERT INTO {target} AS t ({cols}) SELECT {cols} FROM {STAGE}");
    let mut report = LoadReport {
        rows_in: job.rows.len(),
        ..LoadReport::default()
    };
    match job.strategy {
        LoadStrategy::Upsert => {
            let sets: Vec<String> = columns::updated_columns()
                .map(|c| format!("{0} = EXCLUDED.{0}", quote_ident(c)))
                .collect();
            let compared = columns::compared_columns();
            let sql = format!(
                "WITH written AS ({insert} ON CONFLICT (\"ticker\", \"date\") DO UPDATE SET {} \
                 WHERE ({}) IS DISTINCT FROM ({}) RETURNING (xmax = 0) AS inserted) \
                 SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM written",
                sets.join(", "),
                column_list(compared, "t."),
                column_list(compared, "EXCLUDED."),
            );
            let (inserted, updated): (i64, i64) = sqlx::query_as(AssertSqlSafe(sql))
                .fetch_one(&mut *conn)
                .await?;
            report.inserted = inserted as u64;
            report.updated = updated as u64;
        }
        LoadStrategy::Append => {
            let sql = format!("{insert} ON CONFLICT (\"ticker\", \"date\") DO NOTHING");
            report.inserted = sqlx::query(AssertSqlSafe(sql))
                .execute(&mut *conn)
                .await?
                .rows_affected();
        }
        LoadStrategy::TruncateInsert => {
            report.deleted = sqlx::query(AssertSqlSafe(format!(
                "DELETE FROM {target} WHERE \"ticker\" = $1"
            )))
            .bind(job.ticker)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            report.inserted = sqlx::query(AssertSqlSafe(insert))
                .execute(&mut *conn)
                .await?
                .rows_affected();
        }
    }
    Ok(report)
}

/// Streams `rows` into the table `stage` (all contract columns), `batch_size`
/// rows per COPY message.
pub(crate) async fn copy_rows(
    conn: &mut PgConnection,
    stage: &str,
    rows: &[CuratedRow],
    batch_size: usize,
) -> Result<(), Failure> {
    let statement = format!(
        "COPY {stage} ({}) FROM STDIN (FORMAT binary)",
        column_list(&COLUMNS, "")
    );
    let mut copy = conn.copy_in_raw(&statement).await?;
    let mut buf = Vec::new();
    pgcopy::header(&mut buf);
    for chunk in rows.chunks(batch_size.max(1)) {
        for row in chunk {
            pgcopy::row(&mut buf, row);
        }
        copy.send(std::mem::take(&mut buf)).await?;
    }
    pgcopy::trailer(&mut buf);
    copy.send(buf).await?;
    let copied = copy.finish().await?;
    if copied != rows.len() as u64 {
        return Err(Failure::Data(format!(
            "COPY took {copied} of {} rows",
            rows.len()
        )));
    }
    Ok(())
}

pub(crate) async fn read_rows(
    pool: &PgPool,
    schema: &str,
    table: &str,
    ticker: Option<&str>,
) -> Result<Vec<CuratedRow>, Failure> {
    // Read as types every client decodes (also from a legacy table with
    // NUMERIC prices): days since 2000-01-01, float8, int8, text, and
    // timestamps as RFC 3339 UTC text with microseconds.
    let select: Vec<String> = COLUMNS
        .iter()
        .zip(KINDS)
        .map(|(c, k)| {
            let c = quote_ident(c);
            match k {
                Kind::Ticker | Kind::Text => format!("{c}::text"),
                Kind::Date => format!("({c} - DATE '2000-01-01')::int4"),
                Kind::Float => format!("{c}::float8"),
                Kind::Int => format!("{c}::int8"),
                Kind::Timestamp => format!("to_char({c}, 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"),
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
            let mut values = Vec::with_capacity(COLUMNS.len());
            for (i, kind) in KINDS.into_iter().enumerate() {
                values.push(match kind {
                    Kind::Ticker | Kind::Text => Owned::Text(row.try_get(i)?),
                    Kind::Float => Owned::Float(row.try_get(i)?),
                    Kind::Int => Owned::Int(row.try_get(i)?),
                    Kind::Date => {
                        let days: i32 = row.try_get(i)?;
                        Owned::Date(pgcopy::date_from_pg(days).ok_or_else(|| {
                            Failure::Data(format!("date out of range: {days} days"))
                        })?)
                    }
                    Kind::Timestamp => {
                        Owned::Timestamp(parse_timestamp(&row.try_get::<String, _>(i)?)?)
                    }
                });
            }
            columns::row_from_values(values).map_err(Failure::Data)
        })
        .collect()
}

fn parse_timestamp(text: &str) -> Result<DateTime<Utc>, Failure> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| Failure::Data(format!("timestamp {text:?}: {e}")))
}

#[cfg(test)]
mod ssl_tests {
    use super::*;

    #[test]
    fn tls_is_required_for_remote_hosts_unless_the_url_says_otherwise() {
        let mode = |url: &str| {
            let o = PgConnectOptions::from_str(url).unwrap();
            default_ssl_mode(url, o.get_host())
        };
        assert!(matches!(
            mode("postgres://u@db.example.com:5432/x"),
            PgSslMode::Require
        ));
        assert!(matches!(
            mode("postgres://u@10.0.0.5/x"),
            PgSslMode::Require
        ));
        assert!(matches!(
            mode("postgres://u@127.0.0.1:5432/x"),
            PgSslMode::Disable
        ));
        assert!(matches!(
            mode("postgres://u@localhost/x"),
            PgSslMode::Disable
        ));
        assert!(matches!(mode("postgres://u@[::1]/x"), PgSslMode::Disable));
        assert!(matches!(
            mode("postgres://u@db.example.com/x?sslmode=disable"),
            PgSslMode::Disable
        ));
        assert!(matches!(
            mode("postgres://u@127.0.0.1/x?sslmode=verify-full"),
            PgSslMode::VerifyFull
        ));
    }
}
