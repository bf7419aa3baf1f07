//! Amazon Redshift: the connection over the Postgres wire protocol, and the
//! load from the curated Parquet files in S3 — `COPY … FORMAT AS PARQUET`
//! into a temporary staging table, then one set-based statement per
//! strategy, all in one transaction.
//!
//! # What sqlx sends, and what Redshift gets (sqlx-postgres 0.9.0)
//!
//! At connect (`connection/establish.rs`), the startup message carries
//! `user`, `database`, `DateStyle=ISO, MDY`, `client_encoding=UTF8`,
//! `TimeZone=UTC`, then `extra_float_digits` (sqlx's default `2`; omitted
//! when set to `None`), `application_name` (when set, also from
//! `PGAPPNAME`) and `options` (only when set, e.g. from `PGOPTIONS`). sqlx
//! sends no `SET` or `SHOW` at connect and reads `server_version` from the
//! ParameterStatus messages only. Redshift accepts all of these: `datestyle`,
//! `timezone`, `extra_float_digits` (range -15 to 2, so sqlx's Postgres-12
//! style `3` would be refused: we pin `2`, the largest Redshift takes, which
//! also keeps text-mode floats at 17 significant digits) and
//! `application_name` are Redshift configuration parameters, and UTF8 is its
//! only encoding. Keep `PGOPTIONS` unset for Redshift: sqlx forwards it as
//! the `options` startup parameter and offers no way to drop it.
//!
//! After connect: a pool ping is a bare `Sync` message; `BEGIN`, `COMMIT`
//! and `ROLLBACK` go as simple queries. Every `sqlx::query(…)` (extended
//! protocol: a named prepared statement, Parse/Describe/Bind, binary
//! results) whose parameter or column type OID is not one sqlx knows makes
//! sqlx run its type resolver (`connection/resolve.rs`: `pg_type` joined
//! with `pg_range` and `pg_enum`, `array_agg`, `DISTINCT ON`,
//! `to_regtype`), which Redshift's catalog cannot run. So every Redshift
//! statement here goes through `sqlx::raw_sql` — the simple query protocol:
//! no prepare, no type lookups, text results — with values as escaped
//! literals ([`crate::migrate::literal`]) and counts decoded from text.
//!
//! # The load
//!
//! One transaction ([`load_statements`] generates it, [`run`] executes it):
//!
//! 1. `LOCK` the target: Redshift's serializable isolation would otherwise
//!    abort one of two concurrent loads of the table (the Redshift guide's
//!    advice for concurrent writers); a second delivery of the same load
//!    waits, then finds its work done.
//! 2. `CREATE TEMP TABLE "mdp_stage" (LIKE target)`: same columns, NOT NULLs,
//!    DISTKEY and SORTKEY as the target, so the merge joins are collocated.
//! 3. One `COPY "mdp_stage" (32 contract columns) FROM 's3://…' IAM_ROLE '…'
//!    FORMAT AS PARQUET` per partition file (truncate_insert: one COPY of the
//!    ticker's whole prefix `…/ticker=X/`). Per the Redshift guide ("COPY from
//!    columnar data formats"), a columnar COPY maps file columns to table
//!    columns by position and takes only FROM, IAM_ROLE/CREDENTIALS,
//!    ACCEPTINVCHARS, FILLRECORD, STATUPDATE, MANIFEST and EXPLICIT_IDS (no
//!    REGION: the bucket must be in the cluster's region). The column list
//!    names the target columns in file order (the curated files hold exactly
//!    the 32 contract columns in contract order): it makes the mapping
//!    explicit and keeps working should the table gain columns.
//! 4. A check of the staged rows: all of the ticker, one per date. Redshift
//!    does not enforce the unique (ticker, date) constraint, and MERGE
//!    requires that a target row match at most one source row, so the load
//!    refuses anything else (permanent error, nothing written).
//! 5. The strategy:
//!    - upsert: `DELETE FROM stage USING target` the staged rows identical to
//!      their stored row (NULL-aware comparison of every value column, as the
//!      Redshift guide's merge advice suggests: "add a filter to exclude rows
//!      that have not changed"; Redshift rewrites every updated row, and
//!      stored rows keep their `updated_at`, as on Postgres), count the staged
//!      rows without a stored row (the inserts), then `MERGE INTO target USING
//!      stage ON target.ticker = stage.ticker AND target.date = stage.date
//!      WHEN MATCHED THEN UPDATE SET <every column but the key and created_at>
//!      WHEN NOT MATCHED THEN INSERT (<32 columns>) VALUES (<stage's 32>)` —
//!      the syntax of the Redshift MERGE reference: no target alias, target
//!      columns unqualified in SET, a table (not a subquery) as source.
//!    - append: `INSERT INTO target (<32>) SELECT <32> FROM stage WHERE NOT
//!      EXISTS (<the stored row of that key>)`.
//!    - truncate_insert: `DELETE FROM target WHERE ticker = '…'`, then
//!      `INSERT INTO target (<32>) SELECT <32> FROM stage`.
//! 6. `DROP TABLE "mdp_stage"`: Redshift temporary tables live for the
//!    session (no `ON COMMIT DROP`), and pooled sessions are reused. On a
//!    failure the rollback undoes the CREATE as well.
//!
//! Tested locally: the exact statements of every strategy, and all of them
//! except the `COPY … FROM 's3://…'` lines run against Postgres 15 (which
//! has MERGE) on a staging table filled by other means. The COPY from S3 is
//! the only statement not run before it meets a real Redshift cluster.

use std::str::FromStr;

use mdp_core::config::LoadStrategy;
use mdp_core::row::COLUMNS;
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use sqlx::{AssertSqlSafe, PgConnection, PgPool, Row};

use crate::columns::{self, column_list, quote_ident};
use crate::migrate::literal;
use crate::{Failure, LoadReport, postgres};

/// Redshift's default port.
pub(crate) const DEFAULT_PORT: u16 = 5439;

/// The staging table of a load: a session temporary table, named without a
/// schema (Redshift has no `pg_temp.` qualifier; temporary tables come first
/// in the search path).
pub(crate) const STAGE: &str = "\"mdp_stage\"";

/// Connection options for a `redshift://user:pass@host:5439/db` URL: the
/// same host, port (5439 when the URL has none), database, user and
/// password over the Postgres protocol, TLS required unless the URL (or
/// `PGSSLMODE`) says otherwise, and only startup parameters Redshift accepts
/// (see the module documentation).
pub(crate) fn connect_options(url: &str) -> Result<PgConnectOptions, Failure> {
    let rest = url
        .strip_prefix("redshift://")
        .ok_or_else(|| Failure::Data("a redshift warehouse URL starts with redshift://".into()))?;
    let as_postgres = format!("postgres://{rest}");
    let mut options = PgConnectOptions::from_str(&as_postgres)?
        .application_name("mdp-warehouse")
        .extra_float_digits(2);
    if !has_port(rest) {
        options = options.port(DEFAULT_PORT);
    }
    let ssl_mode = if explicit_ssl_mode(url) {
        options.get_ssl_mode()
    } else {
        PgSslMode::Require
    };
    Ok(options.ssl_mode(ssl_mode))
}

fn explicit_ssl_mode(url: &str) -> bool {
    url.split_once('?').is_some_and(|(_, q)| {
        q.split('&').any(|kv| {
            let kv = kv.to_ascii_lowercase();
            kv.starts_with("sslmode=") || kv.starts_with("ssl-mode=")
        })
    }) || std::env::var_os("PGSSLMODE").is_some()
}

/// Whether the authority of `user:pass@host:port/db…` names a port.
fn has_port(after_scheme: &str) -> bool {
    let authority = &after_scheme[..after_scheme.find(['/', '?']).unwrap_or(after_scheme.len())];
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let after_host = match host_port.rfind(']') {
        Some(i) => &host_port[i + 1..], // [IPv6]:port
        None => host_port,
    };
    after_host
        .rsplit_once(':')
        .is_some_and(|(_, port)| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
}

pub(crate) async fn connect(url: &str, pool_size: u32) -> Result<PgPool, Failure> {
    postgres::connect_with(connect_options(url)?, pool_size).await
}

/// What a statement of a load is, for [`run`]: most are just executed; some
/// feed the report or check the staged rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    Lock,
    CreateStage,
    /// `COPY … FROM 's3://…'`: the only step not run by the local tests.
    CopyFromS3,
    /// Returns (rows, distinct dates, rows of another ticker) of the stage.
    CheckStage,
    /// Upsert: drops staged rows identical to their stored row.
    DropUnchanged,
    /// Upsert: counts staged rows without a stored row (the inserts).
    CountNew,
    Merge,
    /// Append: inserts the staged rows whose key is absent.
    InsertAbsent,
    /// Truncate_insert: deletes the ticker's rows.
    DeleteTicker,
    /// Truncate_insert: inserts every staged row.
    InsertAll,
    DropStage,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Statement {
    pub step: Step,
    pub sql: String,
}

/// The `IAM_ROLE` clause: `default` (the cluster's default role) or a quoted ARN (chain).
fn iam_role_clause(role: &str) -> String {
    if role.eq_ignore_ascii_case("default") {
        "IAM_ROLE default".to_string()
    } else {
        format!("IAM_ROLE {}", literal(role))
    }
}

/// Every statement of one Redshift load of `ticker` into `schema.table` from
/// the Parquet objects `s3_uris` (files, or the ticker's prefix), in order,
/// to run in one transaction. `ticker`, `s3_uris` and `iam_role` become SQL
/// literals: the caller has checked they hold no backslash.
pub(crate) fn load_statements(
    schema: &str,
    table: &str,
    s3_uris: &[String],
    iam_role: &str,
    strategy: LoadStrategy,
    ticker: &str,
) -> Vec<Statement> {
    let target = format!("{}.{}", quote_ident(schema), quote_ident(table));
    let t = quote_ident(table);
    let cols = column_list(&COLUMNS, "");
    let stage_cols = column_list(&COLUMNS, &format!("{STAGE}."));
    let same_key =
        format!("{t}.\"ticker\" = {STAGE}.\"ticker\" AND {t}.\"date\" = {STAGE}.\"date\"");
    let absent = format!("NOT EXISTS (SELECT 1 FROM {target} WHERE {same_key})");
    let st = |step, sql: String| Statement { step, sql };

    let mut out = vec![
        st(Step::Lock, format!("LOCK {target}")),
        st(
            Step::CreateStage,
            format!("CREATE TEMP TABLE {STAGE} (LIKE {target})"),
        ),
    ];
    for uri in s3_uris {
        out.push(st(
            Step::CopyFromS3,
            format!(
                "COPY {STAGE} ({cols}) FROM {} {} FORMAT AS PARQUET",
                literal(uri),
                iam_role_clause(iam_role)
            ),
        ));
    }
    out.push(st(
        Step::CheckStage,
        format!(
            "SELECT count(*), count(DISTINCT \"date\"), \
             count(CASE WHEN \"ticker\" <> {} THEN 1 END) FROM {STAGE}",
            literal(ticker)
        ),
    ));
    match strategy {
        LoadStrategy::Upsert => {
            let unchanged: Vec<String> = columns::compared_columns()
                .iter()
                .map(|c| {
                    let (a, b) = (
                        format!("{t}.{}", quote_ident(c)),
                        format!("{STAGE}.{}", quote_ident(c)),
                    );
                    format!("({a} = {b} OR ({a} IS NULL AND {b} IS NULL))")
                })
                .collect();
            out.push(st(
                Step::DropUnchanged,
                format!(
                    "DELETE FROM {STAGE} USING {target} WHERE {same_key} AND {}",
                    unchanged.join(" AND ")
                ),
            ));
            out.push(st(
                Step::CountNew,
                format!("SELECT count(*) FROM {STAGE} WHERE {absent}"),
            ));
            let sets: Vec<String> = columns::updated_columns()
                .map(|c| format!("{0} = {STAGE}.{0}", quote_ident(c)))
                .collect();
            out.push(st(
                Step::Merge,
                format!(
                    "MERGE INTO {target} USING {STAGE} ON {same_key} \
                     WHEN MATCHED THEN UPDATE SET {} \
                     WHEN NOT MATCHED THEN INSERT ({cols}) VALUES ({stage_cols})",
                    sets.join(", ")
                ),
            ));
        }
        LoadStrategy::Append => out.push(st(
            Step::InsertAbsent,
            format!("INSERT INTO {target} ({cols}) SELECT {cols} FROM {STAGE} WHERE {absent}"),
        )),
        LoadStrategy::TruncateInsert => {
            out.push(st(
                Step::DeleteTicker,
                format!(
                    "DELETE FROM {target} WHERE \"ticker\" = {}",
                    literal(ticker)
                ),
            ));
            out.push(st(
                Step::InsertAll,
                format!("INSERT INTO {target} ({cols}) SELECT {cols} FROM {STAGE}"),
            ));
        }
    }
    out.push(st(Step::DropStage, format!("DROP TABLE {STAGE}")));
    out
}

/// Loads as [`load_statements`] says, in one transaction.
pub(crate) async fn load(pool: &PgPool, statements: &[Statement]) -> Result<LoadReport, Failure> {
    let mut tx = pool.begin().await?;
    match run(&mut tx, statements).await {
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

async fn count(conn: &mut PgConnection, sql: &str) -> Result<Vec<u64>, Failure> {
    let row = sqlx::raw_sql(AssertSqlSafe(sql.to_string()))
        .fetch_one(conn)
        .await?;
    (0..row.len())
        .map(|i| {
            let n: i64 = row.try_get(i)?;
            Ok(n.max(0) as u64)
        })
        .collect()
}

/// Runs `statements` in order on `conn` (inside the caller's transaction)
/// and reports what they did.
pub(crate) async fn run(
    conn: &mut PgConnection,
    statements: &[Statement],
) -> Result<LoadReport, Failure> {
    let mut report = LoadReport::default();
    let mut unchanged = 0u64;
    for Statement { step, sql } in statements {
        if *step == Step::DeleteTicker && report.rows_in == 0 {
            // Like the other warehouses: no rows never wipe the ticker's rows.
            return Err(Failure::Data(
                "the curated files hold no rows: refusing to truncate the ticker's rows".into(),
            ));
        }
        match step {
            Step::CheckStage => {
                let counts = count(conn, sql).await?;
                let (rows, dates, foreign) = (counts[0], counts[1], counts[2]);
                if foreign > 0 {
                    return Err(Failure::Data(format!(
                        "the curated files hold {foreign} rows of another ticker"
                    )));
                }
                if dates != rows {
                    return Err(Failure::Data(format!(
                        "the curated files hold {rows} rows for {dates} dates: rows must be unique per date"
                    )));
                }
                report.rows_in = rows as usize;
            }
            Step::CountNew => report.inserted = count(conn, sql).await?[0],
            _ => {
                let affected = sqlx::raw_sql(AssertSqlSafe(sql.clone()))
                    .execute(&mut *conn)
                    .await?
                    .rows_affected();
                match step {
                    Step::DropUnchanged => unchanged = affected,
                    Step::Merge => {
                        let written = (report.rows_in as u64).saturating_sub(unchanged);
                        report.updated = written.saturating_sub(report.inserted);
                    }
                    Step::InsertAbsent | Step::InsertAll => report.inserted = affected,
                    Step::DeleteTicker => report.deleted = affected,
                    _ => {}
                }
            }
        }
    }
    Ok(report)
}

/// `s3://bucket/prefix` + `/` + lake key. Redshift copies from S3 only, and
/// the URIs become SQL literals: anything else is refused.
pub(crate) fn s3_uri(lake_uri: &str, key: &str) -> Result<String, String> {
    if !lake_uri.starts_with("s3://") {
        return Err(format!(
            "a redshift warehouse loads with COPY from S3, but the lake is {lake_uri}: \
             set MARKET_DATA_LAKE_URI to s3://BUCKET/PREFIX"
        ));
    }
    let uri = format!("{}/{key}", lake_uri.trim_end_matches('/'));
    if uri.contains('\\') {
        return Err(format!(
            "{uri:?}: a backslash cannot be part of a COPY source"
        ));
    }
    Ok(uri)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    const ROLE: &str = "arn:aws:iam::123456789012:role/mdp-copy";
    const COLS: &str = "\"ticker\", \"date\", \"open\", \"high\", \"low\", \"close\", \"adj_close\", \"volume\", \
        \"sma_7\", \"sma_14\", \"sma_20\", \"ema_12\", \"macd\", \"macd_signal\", \"macd_histogram\", \"rsi\", \
        \"bb_upper\", \"bb_middle\", \"bb_lower\", \"volatility_20d\", \"daily_return\", \"daily_return_pct\", \
        \"currency\", \"exchange\", \"instrument_type\", \"regular_market_price\", \
        \"fifty_two_week_high\", \"fifty_two_week_low\", \"long_name\", \"short_name\", \
        \"created_at\", \"updated_at\"";

    fn uris() -> Vec<String> {
        vec![
            "s3://lake-bucket/prod/curated/market_data/ticker=AAPL/year=2024/part-0.parquet".into(),
            "s3://lake-bucket/prod/curated/market_data/ticker=AAPL/year=2025/part-0.parquet".into(),
        ]
    }

    fn head(copies: &[String]) -> Vec<String> {
        let mut v = vec![
            "LOCK \"public\".\"fact_market_data\"".to_string(),
            "CREATE TEMP TABLE \"mdp_stage\" (LIKE \"public\".\"fact_market_data\")".to_string(),
        ];
        for uri in copies {
            v.push(format!(
                "COPY \"mdp_stage\" ({COLS}) FROM '{uri}' IAM_ROLE '{ROLE}' FORMAT AS PARQUET"
            ));
        }
        v.push(
            "SELECT count(*), count(DISTINCT \"date\"), count(CASE WHEN \"ticker\" <> 'AAPL' THEN 1 END) \
             FROM \"mdp_stage\""
                .to_string(),
        );
        v
    }

    fn sqls(strategy: LoadStrategy, uris: &[String]) -> Vec<String> {
        load_statements("public", "fact_market_data", uris, ROLE, strategy, "AAPL")
            .into_iter()
            .map(|s| s.sql)
            .collect()
    }

    fn assert_statements(actual: Vec<String>, expected: Vec<String>) {
        for (i, (a, e)) in actual.iter().zip(&expected).enumerate() {
            assert_eq!(a, e, "statement {i}");
        }
        assert_eq!(actual.len(), expected.len());
    }

    const KEY: &str = "\"fact_market_data\".\"ticker\" = \"mdp_stage\".\"ticker\" AND \
        \"fact_market_data\".\"date\" = \"mdp_stage\".\"date\"";

    #[test]
    fn upsert_statements() {
        let unchanged: Vec<String> = [
            "open",
            "high",
            "low",
            "close",
            "adj_close",
            "volume",
            "sma_7",
            "sma_14",
            "sma_20",
            "ema_12",
            "macd",
            "macd_signal",
            "macd_histogram",
            "rsi",
            "bb_upper",
            "bb_middle",
            "bb_lower",
            "volatility_20d",
            "daily_return",
            "daily_return_pct",
            "currency",
            "exchange",
            "instrument_type",
            "regular_market_price",
            "fifty_two_week_high",
            "fifty_two_week_low",
            "long_name",
            "short_name",
        ]
        .iter()
        .map(|c| {
            format!(
                "(\"fact_market_data\".\"{c}\" = \"mdp_stage\".\"{c}\" OR \
                 (\"fact_market_data\".\"{c}\" IS NULL AND \"mdp_stage\".\"{c}\" IS NULL))"
            )
        })
        .collect();
        let sets = "\"open\" = \"mdp_stage\".\"open\", \"high\" = \"mdp_stage\".\"high\", \
            \"low\" = \"mdp_stage\".\"low\", \"close\" = \"mdp_stage\".\"close\", \
            \"adj_close\" = \"mdp_stage\".\"adj_close\", \"volume\" = \"mdp_stage\".\"volume\", \
            \"sma_7\" = \"mdp_stage\".\"sma_7\", \"sma_14\" = \"mdp_stage\".\"sma_14\", \
            \"sma_20\" = \"mdp_stage\".\"sma_20\", \"ema_12\" = \"mdp_stage\".\"ema_12\", \
            \"macd\" = \"mdp_stage\".\"macd\", \"macd_signal\" = \"mdp_stage\".\"macd_signal\", \
            \"macd_histogram\" = \"mdp_stage\".\"macd_histogram\", \"rsi\" = \"mdp_stage\".\"rsi\", \
            \"bb_upper\" = \"mdp_stage\".\"bb_upper\", \"bb_middle\" = \"mdp_stage\".\"bb_middle\", \
            \"bb_lower\" = \"mdp_stage\".\"bb_lower\", \"volatility_20d\" = \"mdp_stage\".\"volatility_20d\", \
            \"daily_return\" = \"mdp_stage\".\"daily_return\", \
            \"daily_return_pct\" = \"mdp_stage\".\"daily_return_pct\", \
            \"currency\" = \"mdp_stage\".\"currency\", \"exchange\" = \"mdp_stage\".\"exchange\", \
            \"instrument_type\" = \"mdp_stage\".\"instrument_type\", \
            \"regular_market_price\" = \"mdp_stage\".\"regular_market_price\", \
            \"fifty_two_week_high\" = \"mdp_stage\".\"fifty_two_week_high\", \
            \"fifty_two_week_low\" = \"mdp_stage\".\"fifty_two_week_low\", \
            \"long_name\" = \"mdp_stage\".\"long_name\", \"short_name\" = \"mdp_stage\".\"short_name\", \
            \"updated_at\" = \"mdp_stage\".\"updated_at\"";
        let stage_cols = COLS.replace(
            "\"ticker\", \"date\"",
            "\"mdp_stage\".\"ticker\", \"mdp_stage\".\"date\"",
        );
        let stage_cols = stage_cols
            .split(", ")
            .map(|c| {
                if c.starts_with("\"mdp_stage\".") {
                    c.to_string()
                } else {
                    format!("\"mdp_stage\".{c}")
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        let mut expected = head(&uris());
        expected.extend([
            format!(
                "DELETE FROM \"mdp_stage\" USING \"public\".\"fact_market_data\" WHERE {KEY} AND {}",
                unchanged.join(" AND ")
            ),
            format!(
                "SELECT count(*) FROM \"mdp_stage\" WHERE NOT EXISTS \
                 (SELECT 1 FROM \"public\".\"fact_market_data\" WHERE {KEY})"
            ),
            format!(
                "MERGE INTO \"public\".\"fact_market_data\" USING \"mdp_stage\" ON {KEY} \
                 WHEN MATCHED THEN UPDATE SET {sets} \
                 WHEN NOT MATCHED THEN INSERT ({COLS}) VALUES ({stage_cols})"
            ),
            "DROP TABLE \"mdp_stage\"".to_string(),
        ]);
        assert_statements(sqls(LoadStrategy::Upsert, &uris()), expected);
        let steps: Vec<Step> = load_statements(
            "public",
            "fact_market_data",
            &uris(),
            ROLE,
            LoadStrategy::Upsert,
            "AAPL",
        )
        .into_iter()
        .map(|s| s.step)
        .collect();
        assert_eq!(
            steps,
            [
                Step::Lock,
                Step::CreateStage,
                Step::CopyFromS3,
                Step::CopyFromS3,
                Step::CheckStage,
                Step::DropUnchanged,
                Step::CountNew,
                Step::Merge,
                Step::DropStage
            ]
        );
    }

    #[test]
    fn append_statements() {
        let mut expected = head(&uris());
        expected.extend([
            format!(
                "INSERT INTO \"public\".\"fact_market_data\" ({COLS}) SELECT {COLS} FROM \"mdp_stage\" \
                 WHERE NOT EXISTS (SELECT 1 FROM \"public\".\"fact_market_data\" WHERE {KEY})"
            ),
            "DROP TABLE \"mdp_stage\"".to_string(),
        ]);
        assert_statements(sqls(LoadStrategy::Append, &uris()), expected);
    }

    #[test]
    fn truncate_insert_statements() {
        let prefix = vec!["s3://lake-bucket/prod/curated/market_data/ticker=AAPL/".to_string()];
        let mut expected = head(&prefix);
        expected.extend([
            "DELETE FROM \"public\".\"fact_market_data\" WHERE \"ticker\" = 'AAPL'".to_string(),
            format!("INSERT INTO \"public\".\"fact_market_data\" ({COLS}) SELECT {COLS} FROM \"mdp_stage\""),
            "DROP TABLE \"mdp_stage\"".to_string(),
        ]);
        assert_statements(sqls(LoadStrategy::TruncateInsert, &prefix), expected);
    }

    #[test]
    fn the_default_role_and_quotes_in_literals() {
        let s = load_statements(
            "s",
            "t",
            &["s3://b/k".into()],
            "default",
            LoadStrategy::Append,
            "A'B",
        );
        assert_eq!(
            s[2].sql,
            format!(
                "COPY \"mdp_stage\" ({COLS}) FROM 's3://b/k' IAM_ROLE default FORMAT AS PARQUET"
            )
        );
        assert!(s[3].sql.contains("<> 'A''B'"), "{}", s[3].sql);
    }

    #[test]
    fn s3_uris_of_lake_keys() {
        assert_eq!(
            s3_uri("s3://bucket/lake", "curated/market_data/ticker=%5EGSPC/").unwrap(),
            "s3://bucket/lake/curated/market_data/ticker=%5EGSPC/"
        );
        assert_eq!(
            s3_uri("s3://bucket/", "curated/x").unwrap(),
            "s3://bucket/curated/x"
        );
        let err = s3_uri("file://./data", "curated/x").unwrap_err();
        assert!(err.contains("MARKET_DATA_LAKE_URI"), "{err}");
        assert!(s3_uri("s3://b/a\\b", "k").is_err());
    }

    #[test]
    fn connect_options_for_redshift() {
        let o = connect_options(
            "redshift://etl:p%40ss@cluster.abc.eu-west-1.redshift.amazonaws.com:5439/dev",
        )
        .unwrap();
        assert_eq!(o.get_host(), "cluster.abc.eu-west-1.redshift.amazonaws.com");
        assert_eq!(o.get_port(), 5439);
        assert_eq!(o.get_username(), "etl");
        assert_eq!(o.get_database(), Some("dev"));
        assert_eq!(o.get_application_name(), Some("mdp-warehouse"));
        if std::env::var_os("PGSSLMODE").is_none() {
            assert!(matches!(o.get_ssl_mode(), PgSslMode::Require));
        }
        // No accessor for these: Debug shows them (never log options: it shows the password too).
        let debug = format!("{o:?}");
        assert!(
            debug.contains("extra_float_digits: Some(\"2\")"),
            "extra_float_digits"
        );
        assert!(
            debug.contains("password: Some(\"p@ss\")"),
            "password decoded"
        );

        assert_eq!(
            connect_options("redshift://u:p@host/dev")
                .unwrap()
                .get_port(),
            5439
        );
        assert_eq!(
            connect_options("redshift://u:p@host:5440/dev")
                .unwrap()
                .get_port(),
            5440
        );
        assert_eq!(
            connect_options("redshift://u@[::1]/dev")
                .unwrap()
                .get_port(),
            5439
        );
        assert_eq!(
            connect_options("redshift://u@[::1]:6000/dev")
                .unwrap()
                .get_port(),
            6000
        );
        let local = connect_options("redshift://u@127.0.0.1/dev").unwrap();
        if std::env::var_os("PGSSLMODE").is_none() {
            // Unlike postgres://, TLS stays required on loopback (an SSH tunnel to a cluster).
            assert!(matches!(local.get_ssl_mode(), PgSslMode::Require));
        }
        let disabled = connect_options("redshift://u@host/dev?sslmode=disable").unwrap();
        assert!(matches!(disabled.get_ssl_mode(), PgSslMode::Disable));
        assert!(connect_options("postgres://u@host/dev").is_err());
    }

    /// A fake server reads what sqlx really sends at connect: the SSLRequest
    /// (TLS required: declined here, so the connect fails), and with TLS off
    /// the startup parameters.
    async fn startup_seen_by_server(options: PgConnectOptions) -> (bool, BTreeMap<String, String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut ssl_requested = false;
            loop {
                // The client hangs up after a declined SSLRequest when TLS is required.
                let Ok(len) = socket.read_i32().await else {
                    return (ssl_requested, BTreeMap::new());
                };
                let len = len as usize;
                let mut body = vec![0u8; len - 4];
                socket.read_exact(&mut body).await.unwrap();
                let code = i32::from_be_bytes(body[..4].try_into().unwrap());
                if code == 80_877_103 {
                    // SSLRequest: decline.
                    ssl_requested = true;
                    socket.write_all(b"N").await.unwrap();
                    continue;
                }
                assert_eq!(code, 196_608, "protocol 3.0");
                let fields: Vec<String> = body[4..]
                    .split(|b| *b == 0)
                    .filter(|f| !f.is_empty())
                    .map(|f| String::from_utf8(f.to_vec()).unwrap())
                    .collect();
                let params = fields
                    .chunks(2)
                    .map(|kv| (kv[0].clone(), kv[1].clone()))
                    .collect::<BTreeMap<_, _>>();
                // ErrorResponse, so the client gives up cleanly.
                let mut msg = Vec::new();
                for (t, v) in [(b'S', "FATAL"), (b'C', "28000"), (b'M', "fake server")] {
                    msg.push(t);
                    msg.extend_from_slice(v.as_bytes());
                    msg.push(0);
                }
                msg.push(0);
                let mut frame = vec![b'E'];
                frame.extend_from_slice(&((msg.len() + 4) as i32).to_be_bytes());
                frame.extend_from_slice(&msg);
                socket.write_all(&frame).await.unwrap();
                return (ssl_requested, params);
            }
        });
        let options = options.host("127.0.0.1").port(port);
        use sqlx::ConnectOptions;
        assert!(options.connect().await.is_err());
        server.await.unwrap()
    }

    #[tokio::test]
    async fn startup_parameters_are_ones_redshift_accepts() {
        let options =
            connect_options("redshift://etl:secret@cluster:5439/dev?sslmode=disable").unwrap();
        let (ssl, params) = startup_seen_by_server(options).await;
        assert!(!ssl);
        let mut expected: BTreeMap<String, String> = [
            ("user", "etl"),
            ("database", "dev"),
            ("DateStyle", "ISO, MDY"),
            ("client_encoding", "UTF8"),
            ("TimeZone", "UTC"),
            ("extra_float_digits", "2"),
            ("application_name", "mdp-warehouse"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        if let Ok(options) = std::env::var("PGOPTIONS") {
            expected.insert("options".into(), options);
        }
        assert_eq!(params, expected);
    }

    #[tokio::test]
    async fn tls_is_requested_first_by_default() {
        if std::env::var_os("PGSSLMODE").is_some() {
            return;
        }
        let options = connect_options("redshift://etl:secret@cluster:5439/dev").unwrap();
        let (ssl, _) = startup_seen_by_server(options).await;
        assert!(ssl);
    }
}

/// The staging → target statements of every strategy, run against the local
/// Postgres 15 (`MDP_TEST_POSTGRES_URL`, default
/// `postgres://postgres@127.0.0.1:5432/test`), which has MERGE: a target made
/// by the Postgres migrations in a schema of its own, a staging table filled
/// by binary COPY instead of the `COPY … FROM 's3://…'` lines — the only
/// statements not run here.
#[cfg(test)]
mod on_postgres {
    use chrono::{NaiveDate, TimeDelta, TimeZone, Utc};
    use mdp_core::row::DailyBar;
    use mdp_core::{CuratedRow, Indicators, InstrumentMeta};
    use sqlx::postgres::PgPoolOptions;

    use super::*;
    use crate::migrate::{Flavor, migrate_pg};

    const TABLE: &str = "fact_market_data";

    fn row(ticker: &str, i: i64) -> CuratedRow {
        let close = 100.0 + i as f64 * 0.1 + (0.1 + 0.2);
        let at = Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap()
            + TimeDelta::seconds(i)
            + TimeDelta::microseconds(123_456);
        CuratedRow {
            ticker: ticker.into(),
            bar: DailyBar {
                date: NaiveDate::from_ymd_opt(2024, 1, 2).unwrap() + TimeDelta::days(i),
                open: (i % 3 != 1).then_some(close - 0.5),
                high: Some(close + 1.0 / 3.0),
                low: Some(close - 2.0 / 7.0),
                close,
                adj_close: Some(close * 0.98),
                volume: (i % 4 != 2).then_some(1_000_000 + i),
            },
            indicators: Indicators {
                rsi: (i >= 3).then_some(50.0 + 1.0 / 7.0),
                macd: Some(1e-300 * (i as f64 + 1.0)),
                ..Indicators::default()
            },
            meta: InstrumentMeta {
                currency: Some("USD".into()),
                long_name: (i % 5 != 4).then(|| "Ünïcode ✓ 'quoted'".to_string()),
                short_name: Some(format!("{ticker} short")),
                fifty_two_week_high: Some(f64::MAX),
                ..InstrumentMeta::default()
            },
            created_at: at,
            updated_at: at + TimeDelta::microseconds(654_321),
        }
    }

    fn rows(ticker: &str, first: i64, n: i64) -> Vec<CuratedRow> {
        (first..first + n).map(|i| row(ticker, i)).collect()
    }

    struct Env {
        /// One connection: every load reuses the session of the one before,
        /// as pooled Redshift sessions are, so a leftover staging table would show.
        pool: PgPool,
        admin: PgPool,
        schema: String,
    }

    impl Env {
        async fn new() -> Env {
            let url = std::env::var("MDP_TEST_POSTGRES_URL")
                .ok()
                .filter(|u| !u.is_empty())
                .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".into());
            let connect = |n| PgPoolOptions::new().max_connections(n).connect(&url);
            let pool = connect(1)
                .await
                .expect("Postgres for tests (MDP_TEST_POSTGRES_URL)");
            let admin = connect(1).await.unwrap();
            let schema = format!("mdp_rs_test_{:016x}", fastrand::u64(..));
            migrate_pg(&pool, Flavor::Postgres, &schema, TABLE)
                .await
                .unwrap();
            Env {
                pool,
                admin,
                schema,
            }
        }

        /// One load: the statements before the COPYs, the rows copied into
        /// the stage by other means, then every statement after the COPYs.
        async fn load(
            &self,
            ticker: &str,
            staged: &[CuratedRow],
            strategy: LoadStrategy,
        ) -> Result<LoadReport, Failure> {
            let uri = format!(
                "s3://bucket/lake/curated/market_data/ticker={ticker}/year=2024/part-0.parquet"
            );
            let statements =
                load_statements(&self.schema, TABLE, &[uri], "default", strategy, ticker);
            let first_copy = statements
                .iter()
                .position(|s| s.step == Step::CopyFromS3)
                .unwrap();
            assert_eq!(statements[first_copy + 1].step, Step::CheckStage);
            let (before, after) = (&statements[..first_copy], &statements[first_copy + 1..]);
            assert!(after.iter().all(|s| s.step != Step::CopyFromS3));

            let mut tx = self.pool.begin().await?;
            let result = async {
                run(&mut tx, before).await?;
                postgres::copy_rows(&mut tx, STAGE, staged, 100).await?;
                run(&mut tx, after).await
            }
            .await;
            match result {
                Ok(report) => {
                    tx.commit().await?;
                    Ok(report)
                }
                Err(e) => {
                    tx.rollback().await?;
                    Err(e)
                }
            }
        }

        async fn read(&self, ticker: Option<&str>) -> Vec<CuratedRow> {
            postgres::read_rows(&self.admin, &self.schema, TABLE, ticker)
                .await
                .unwrap()
        }

        async fn exec(&self, sql: &str) {
            sqlx::raw_sql(AssertSqlSafe(sql.to_string()))
                .execute(&self.admin)
                .await
                .unwrap();
        }

        async fn cleanup(&self) {
            self.exec(&format!(
                "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
                self.schema
            ))
            .await;
            self.pool.close().await;
            self.admin.close().await;
        }
    }

    fn report(rows_in: usize, inserted: u64, updated: u64, deleted: u64) -> LoadReport {
        LoadReport {
            rows_in,
            inserted,
            updated,
            deleted,
        }
    }

    fn assert_rows(actual: &[CuratedRow], expected: &[CuratedRow]) {
        assert_eq!(actual.len(), expected.len(), "row count");
        for (a, e) in actual.iter().zip(expected) {
            assert_eq!(a, e);
            assert!(
                a.same_values(e),
                "bit-exact values of {} {}",
                a.ticker,
                a.date()
            );
        }
    }

    fn later(mut rows: Vec<CuratedRow>, by: TimeDelta) -> Vec<CuratedRow> {
        for r in &mut rows {
            r.updated_at += by;
        }
        rows
    }

    #[tokio::test]
    async fn every_strategy_after_the_copy_runs_on_postgres() {
        let env = std::sync::Arc::new(Env::new().await);
        // Spawned, so a failed assertion still drops the schema below.
        let outcome = tokio::spawn(scenario(env.clone())).await;
        env.cleanup().await;
        if let Err(e) = outcome {
            std::panic::resume_unwind(e.into_panic());
        }
    }

    async fn scenario(env: std::sync::Arc<Env>) {
        let other = rows("KEEP", 0, 4);
        assert_eq!(
            env.load("KEEP", &other, LoadStrategy::Upsert)
                .await
                .unwrap(),
            report(4, 4, 0, 0)
        );

        // Upsert: all new, then the same values again (nothing rewritten, the
        // stored updated_at stays), then 2 changed and 3 new.
        let msft = rows("MSFT", 0, 10);
        assert_eq!(
            env.load("MSFT", &msft, LoadStrategy::Upsert).await.unwrap(),
            report(10, 10, 0, 0)
        );
        let again = later(msft.clone(), TimeDelta::days(1));
        assert_eq!(
            env.load("MSFT", &again, LoadStrategy::Upsert)
                .await
                .unwrap(),
            report(10, 0, 0, 0)
        );
        assert_rows(&env.read(Some("MSFT")).await, &msft);

        let mut changed = later(rows("MSFT", 0, 13), TimeDelta::days(2));
        changed[1].bar.open = Some(42.0); // NULL -> value
        changed[5].meta.long_name = None; // value -> NULL
        for r in &mut changed {
            r.created_at += TimeDelta::days(9); // never replaces a stored created_at
        }
        assert_eq!(
            env.load("MSFT", &changed, LoadStrategy::Upsert)
                .await
                .unwrap(),
            report(13, 3, 2, 0)
        );
        let mut expected = msft.clone();
        for i in [1, 5] {
            expected[i] = CuratedRow {
                created_at: msft[i].created_at,
                ..changed[i].clone()
            };
        }
        expected.extend(changed[10..].iter().cloned());
        assert_rows(&env.read(Some("MSFT")).await, &expected);

        // Append: existing keys skipped (even with other values), new ones inserted.
        let mut appended = later(rows("MSFT", 8, 7), TimeDelta::days(3));
        for r in &mut appended {
            r.bar.close += 7.0;
        }
        assert_eq!(
            env.load("MSFT", &appended, LoadStrategy::Append)
                .await
                .unwrap(),
            report(7, 2, 0, 0)
        );
        expected.extend(appended[5..].iter().cloned());
        assert_rows(&env.read(Some("MSFT")).await, &expected);

        // Truncate_insert: the ticker's 15 rows replaced by 4; KEEP untouched.
        let replacement = rows("MSFT", 20, 4);
        assert_eq!(
            env.load("MSFT", &replacement, LoadStrategy::TruncateInsert)
                .await
                .unwrap(),
            report(4, 4, 0, 15)
        );
        assert_rows(&env.read(Some("MSFT")).await, &replacement);
        assert_rows(&env.read(Some("KEEP")).await, &other);

        // Staged rows of another ticker, or two of one date: refused, nothing written.
        let before = env.read(None).await;
        let mut foreign = rows("MSFT", 30, 3);
        foreign.push(row("AAPL", 40));
        let mut twice = rows("MSFT", 30, 3);
        twice.push(row("MSFT", 31));
        for strategy in [
            LoadStrategy::Upsert,
            LoadStrategy::Append,
            LoadStrategy::TruncateInsert,
        ] {
            match env.load("MSFT", &foreign, strategy).await {
                Err(Failure::Data(why)) => {
                    assert!(why.contains("1 rows of another ticker"), "{why}")
                }
                other => panic!("{strategy}: {other:?}"),
            }
            match env.load("MSFT", &twice, strategy).await {
                Err(Failure::Data(why)) => assert!(why.contains("4 rows for 3 dates"), "{why}"),
                other => panic!("{strategy}: {other:?}"),
            }
        }
        assert_rows(&env.read(None).await, &before);

        // A failure in the statement after the staging (a trigger refusing
        // one row) rolls everything back, for every strategy; the session's
        // staging table goes with it, so the next load works.
        let target = format!("\"{}\".\"{TABLE}\"", env.schema);
        env.exec(&format!(
            "CREATE FUNCTION \"{0}\".refuse() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN IF NEW.\"date\" = DATE '2024-01-26' THEN RAISE EXCEPTION 'refused row %', NEW.\"date\"; END IF; \
             RETURN NEW; END $$; \
             CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON {target} FOR EACH ROW EXECUTE FUNCTION \"{0}\".refuse()",
            env.schema
        ))
        .await;
        let mut incoming = later(rows("MSFT", 20, 5), TimeDelta::days(5)); // day 24 (2024-01-26) is new
        incoming[0].bar.close += 1.0;
        for strategy in [
            LoadStrategy::Upsert,
            LoadStrategy::Append,
            LoadStrategy::TruncateInsert,
        ] {
            match env.load("MSFT", &incoming, strategy).await {
                Err(Failure::Db(e)) => {
                    assert!(e.to_string().contains("refused row 2024-01-26"), "{e}")
                }
                other => panic!("{strategy}: {other:?}"),
            }
            assert_rows(&env.read(None).await, &before);
        }
        env.exec(&format!("DROP TRIGGER refuse ON {target}")).await;
        assert_eq!(
            env.load("MSFT", &incoming, LoadStrategy::Upsert)
                .await
                .unwrap(),
            report(5, 1, 1, 0)
        );
    }
}
