//! One Redshift load as data: every statement in order, with its step
//! ([`load_statements`]), and the runner that executes them in the caller's
//! transaction and turns their counts into a report ([`run`]).
//!
//! The statements, in one transaction:
//! 1. `LOCK` the target: a second delivery of the same load waits, then
//!    finds its work done (instead of a serialization abort).
//! 2. `CREATE TEMP TABLE "mdp_stage" (…)`: every column of the schema, the
//!    partition key `ticker` with the load's ticker as its DEFAULT — the
//!    curated files do not hold it (its value is in their path).
//! 3. One `COPY "mdp_stage" (<the file columns, in file order>) FROM 's3://…'
//!    IAM_ROLE '…' FORMAT AS PARQUET` per partition (truncate_insert: one
//!    COPY of the ticker's prefix). A columnar COPY maps columns by position;
//!    naming them makes the mapping explicit, and `ticker` takes its default.
//!    Files of the earlier layout (which held the ticker) must be rewritten
//!    first: `mdp lake migrate`.
//! 4. A check of the staged rows: all of the ticker, one per date (MERGE
//!    needs each target row to match at most one source row).
//! 5. The strategy: upsert drops the staged rows identical to their stored
//!    row (so unchanged rows keep `updated_at`), counts the new ones, then
//!    `MERGE`s; append inserts where the key is absent; truncate_insert
//!    deletes the ticker's rows and inserts the stage.
//! 6. `DROP TABLE "mdp_stage"` (session temporary tables outlive a commit).

use mdp_core::config::LoadStrategy;
use sqlx::{AssertSqlSafe, PgConnection, Row};

use crate::errors::Failure;
use crate::port::LoadReport;
use mdp_core::schema::ColumnType;

use crate::sql::{all_columns, column_list, literal, quote_ident, update_assignments};

/// The staging table of a load: a session temporary table, named without a
/// schema (Redshift has no `pg_temp.` qualifier; temporary tables come first
/// in the search path).
pub(crate) const STAGE: &str = "\"mdp_stage\"";

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

/// The staging table's columns, from the schema: the target's types (text
/// as wide as Redshift allows, the merge narrows), NOT NULL where the schema
/// forbids NULL, and the ticker, which the files do not hold, as a default.
fn stage_definitions(ticker: &str) -> String {
    mdp_core::schema::MARKET_DATA
        .iter()
        .map(|c| {
            let ty = match c.ty {
                ColumnType::Text => "VARCHAR(65535)",
                other => crate::postgres::pg_type(other),
            };
            let not_null = if c.nullable { "" } else { " NOT NULL" };
            let default = if c.partition {
                format!(" DEFAULT {}", literal(ticker))
            } else {
                String::new()
            };
            format!("{} {ty}{not_null}{default}", quote_ident(c.name))
        })
        .collect::<Vec<_>>()
        .join(", ")
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
    let cols = all_columns("");
    let stage_cols = all_columns(&format!("{STAGE}."));
    let file_cols = column_list(mdp_core::schema::file_columns(), "");
    let same_key =
        format!("{t}.\"ticker\" = {STAGE}.\"ticker\" AND {t}.\"date\" = {STAGE}.\"date\"");
    let absent = format!("NOT EXISTS (SELECT 1 FROM {target} WHERE {same_key})");
    let st = |step, sql: String| Statement { step, sql };

    let mut out = vec![
        st(Step::Lock, format!("LOCK {target}")),
        st(
            Step::CreateStage,
            format!("CREATE TEMP TABLE {STAGE} ({})", stage_definitions(ticker)),
        ),
    ];
    for uri in s3_uris {
        out.push(st(
            Step::CopyFromS3,
            format!(
                "COPY {STAGE} ({file_cols}) FROM {} {} FORMAT AS PARQUET",
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
            let unchanged: Vec<String> = mdp_core::schema::compared_columns()
                .map(|c| {
                    let (a, b) = (
                        format!("{t}.{}", quote_ident(c.name)),
                        format!("{STAGE}.{}", quote_ident(c.name)),
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
            out.push(st(
                Step::Merge,
                format!(
                    "MERGE INTO {target} USING {STAGE} ON {same_key} \
                     WHEN MATCHED THEN UPDATE SET {} \
                     WHEN NOT MATCHED THEN INSERT ({cols}) VALUES ({stage_cols})",
                    update_assignments(STAGE)
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
pub(crate) async fn load(
    pool: &sqlx::PgPool,
    statements: &[Statement],
) -> Result<LoadReport, Failure> {
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
