//! The side tables on Postgres (and the reads of the Redshift adapter): the
//! ticker's stored rows read under the load's lock, then per table one
//! `DELETE` of the keys gone or rewritten and one `INSERT` of the new or
//! rewritten rows, each binding the values as one array per column (every
//! f64 and microsecond exact, as in the fact-table loads).

use chrono::{DateTime, NaiveDate, Utc};
use mdp_core::config::WarehouseKind;
use mdp_core::quality::{CorporateAction, QualityFinding, QuarantinedBar};
use mdp_core::row::DailyBar;
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, PgConnection, Row};

use crate::errors::Failure;
use crate::side::{
    self, ACTIONS, FINDINGS, QUARANTINE, SidePlan, SideRows, SideTable, StoredAction, StoredFinding,
};
use crate::sql::{literal, quote_ident};

pub(crate) fn side_target(schema: &str, table: &SideTable) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(table.name))
}

/// Serialises the side loads of one ticker in one schema (SQS may deliver a
/// load twice at once), and makes the session's zone UTC.
pub(crate) async fn lock_side(
    conn: &mut PgConnection,
    schema: &str,
    ticker: &str,
) -> Result<(), Failure> {
    sqlx::query("SET LOCAL TIME ZONE 'UTC'")
        .execute(&mut *conn)
        .await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
        .bind(format!(
            "mdp-warehouse side {} {ticker}",
            quote_ident(schema)
        ))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The SELECT of one side table's rows of a ticker (all columns but the
/// ticker, in order), text ordered by bytes. Postgres binds the ticker as
/// `$1`; Redshift, which runs everything through the simple query
/// protocol, gets it as a literal.
pub(crate) fn select_side(
    flavor: WarehouseKind,
    schema: &str,
    table: &SideTable,
    ticker: &str,
) -> String {
    let order = match table.name {
        side::CORPORATE_ACTIONS_TABLE => "\"date\", \"kind\" COLLATE \"C\"",
        side::FINDINGS_TABLE => "\"date\", \"rule\" COLLATE \"C\"",
        _ => "\"date\", \"raw_key\" COLLATE \"C\"",
    };
    let order = match flavor {
        // Redshift compares VARCHARs by bytes already and has no COLLATE "C".
        WarehouseKind::Redshift => order.replace(" COLLATE \"C\"", ""),
        _ => order.to_string(),
    };
    let ticker = match flavor {
        WarehouseKind::Redshift => literal(ticker),
        _ => "$1".to_string(),
    };
    format!(
        "SELECT {} FROM {} WHERE \"ticker\" = {ticker} ORDER BY {order}",
        table.columns[1..]
            .iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", "),
        side_target(schema, table)
    )
}

/// The ticker's stored side rows, read on `conn` (inside the load's
/// transaction, after its lock).
pub(crate) async fn read_side_in(
    conn: &mut PgConnection,
    flavor: WarehouseKind,
    schema: &str,
    ticker: &str,
) -> Result<SideRows, Failure> {
    let actions = fetch(conn, flavor, schema, &ACTIONS, ticker).await?;
    let findings = fetch(conn, flavor, schema, &FINDINGS, ticker).await?;
    let quarantine = fetch(conn, flavor, schema, &QUARANTINE, ticker).await?;
    decode_side(&actions, &findings, &quarantine)
}

async fn fetch(
    conn: &mut PgConnection,
    flavor: WarehouseKind,
    schema: &str,
    table: &SideTable,
    ticker: &str,
) -> Result<Vec<PgRow>, Failure> {
    let sql = AssertSqlSafe(select_side(flavor, schema, table, ticker));
    Ok(match flavor {
        WarehouseKind::Redshift => sqlx::raw_sql(sql).fetch_all(conn).await?,
        _ => sqlx::query(sql).bind(ticker).fetch_all(conn).await?,
    })
}

fn decode_side(
    actions: &[PgRow],
    findings: &[PgRow],
    quarantine: &[PgRow],
) -> Result<SideRows, Failure> {
    let data = Failure::Data;
    let mut out = SideRows::default();
    for r in actions {
        out.actions.push(StoredAction {
            action: CorporateAction {
                date: r.try_get(0)?,
                kind: side::parse_kind(&r.try_get::<String, _>(1)?).map_err(data)?,
                amount: r.try_get(2)?,
                numerator: r.try_get(4)?,
                denominator: r.try_get(5)?,
            },
            ratio: r.try_get(3)?,
            created_at: r.try_get(6)?,
            updated_at: r.try_get(7)?,
        });
    }
    for r in findings {
        out.findings.push(StoredFinding {
            finding: QualityFinding {
                date: r.try_get(0)?,
                rule: side::parse_rule(&r.try_get::<String, _>(1)?).map_err(data)?,
                detail: r.try_get(2)?,
            },
            recorded_at: r.try_get(3)?,
        });
    }
    for r in quarantine {
        out.quarantine.push(QuarantinedBar {
            bar: DailyBar {
                date: r.try_get(0)?,
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
            quarantined_at: r.try_get(10)?,
        });
    }
    Ok(out)
}

/// `DELETE` of the ticker's rows whose (date, <third key column>) is one of
/// the pairs bound as two arrays.
fn delete_sql(schema: &str, table: &SideTable) -> String {
    format!(
        "DELETE FROM {} WHERE \"ticker\" = $1 AND (\"date\", {}) IN \
         (SELECT * FROM unnest($2::date[], $3::text[]))",
        side_target(schema, table),
        quote_ident(table.key[2])
    )
}

/// `INSERT` of rows bound as one array per column (the ticker as `$1`).
fn insert_sql(schema: &str, table: &SideTable, array_types: &[&str]) -> String {
    let arrays: Vec<String> = array_types
        .iter()
        .enumerate()
        .map(|(i, ty)| format!("${}::{ty}[]", i + 2))
        .collect();
    format!(
        "INSERT INTO {} ({}) SELECT $1, * FROM unnest({})",
        side_target(schema, table),
        table
            .columns
            .iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", "),
        arrays.join(", ")
    )
}

/// Writes the plan (deletes first, then inserts, table by table).
pub(crate) async fn write_side(
    conn: &mut PgConnection,
    schema: &str,
    ticker: &str,
    plan: &SidePlan,
) -> Result<(), Failure> {
    let actions = &plan.actions;
    if !actions.delete.is_empty() {
        let (dates, kinds): (Vec<NaiveDate>, Vec<&str>) = actions.delete.iter().copied().unzip();
        sqlx::query(AssertSqlSafe(delete_sql(schema, &ACTIONS)))
            .bind(ticker)
            .bind(dates)
            .bind(kinds)
            .execute(&mut *conn)
            .await?;
    }
    if !actions.insert.is_empty() {
        let rows = &actions.insert;
        let sql = insert_sql(
            schema,
            &ACTIONS,
            &[
                "date",
                "text",
                "float8",
                "float8",
                "float8",
                "float8",
                "timestamptz",
                "timestamptz",
            ],
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(ticker)
            .bind(rows.iter().map(|r| r.action.date).collect::<Vec<_>>())
            .bind(
                rows.iter()
                    .map(|r| r.action.kind.code())
                    .collect::<Vec<_>>(),
            )
            .bind(rows.iter().map(|r| r.action.amount).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.ratio).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.action.numerator).collect::<Vec<_>>())
            .bind(
                rows.iter()
                    .map(|r| r.action.denominator)
                    .collect::<Vec<_>>(),
            )
            .bind(rows.iter().map(|r| r.created_at).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.updated_at).collect::<Vec<_>>())
            .execute(&mut *conn)
            .await?;
    }

    let findings = &plan.findings;
    if !findings.delete.is_empty() {
        let (dates, rules): (Vec<NaiveDate>, Vec<&str>) = findings.delete.iter().copied().unzip();
        sqlx::query(AssertSqlSafe(delete_sql(schema, &FINDINGS)))
            .bind(ticker)
            .bind(dates)
            .bind(rules)
            .execute(&mut *conn)
            .await?;
    }
    if !findings.insert.is_empty() {
        let rows = &findings.insert;
        let sql = insert_sql(schema, &FINDINGS, &["date", "text", "text", "timestamptz"]);
        sqlx::query(AssertSqlSafe(sql))
            .bind(ticker)
            .bind(rows.iter().map(|r| r.finding.date).collect::<Vec<_>>())
            .bind(
                rows.iter()
                    .map(|r| r.finding.rule.code())
                    .collect::<Vec<_>>(),
            )
            .bind(
                rows.iter()
                    .map(|r| r.finding.detail.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(rows.iter().map(|r| r.recorded_at).collect::<Vec<_>>())
            .execute(&mut *conn)
            .await?;
    }

    let quarantine = &plan.quarantine;
    if !quarantine.delete.is_empty() {
        let dates: Vec<NaiveDate> = quarantine.delete.iter().map(|k| k.0).collect();
        let keys: Vec<&str> = quarantine.delete.iter().map(|k| k.1.as_str()).collect();
        sqlx::query(AssertSqlSafe(delete_sql(schema, &QUARANTINE)))
            .bind(ticker)
            .bind(dates)
            .bind(keys)
            .execute(&mut *conn)
            .await?;
    }
    if !quarantine.insert.is_empty() {
        let rows = &quarantine.insert;
        let sql = insert_sql(
            schema,
            &QUARANTINE,
            &[
                "date",
                "text",
                "text",
                "text",
                "float8",
                "float8",
                "float8",
                "float8",
                "float8",
                "int8",
                "timestamptz",
            ],
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(ticker)
            .bind(rows.iter().map(|r| r.bar.date).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.raw_key.as_str()).collect::<Vec<_>>())
            .bind(
                rows.iter()
                    .map(|r| side::rules_text(&r.rules))
                    .collect::<Vec<_>>(),
            )
            .bind(rows.iter().map(|r| r.detail.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.bar.open).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.bar.high).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.bar.low).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.bar.close).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.bar.adj_close).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.bar.volume).collect::<Vec<_>>())
            .bind(
                rows.iter()
                    .map(|r| r.quarantined_at)
                    .collect::<Vec<DateTime<Utc>>>(),
            )
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_name_every_column_in_order() {
        assert_eq!(
            insert_sql("s", &FINDINGS, &["date", "text", "text", "timestamptz"]),
            "INSERT INTO \"s\".\"quality_findings\" (\"ticker\", \"date\", \"rule\", \"detail\", \
             \"recorded_at\") SELECT $1, * FROM unnest($2::date[], $3::text[], $4::text[], \
             $5::timestamptz[])"
        );
        assert_eq!(
            delete_sql("s", &QUARANTINE),
            "DELETE FROM \"s\".\"quality_quarantine\" WHERE \"ticker\" = $1 AND (\"date\", \
             \"raw_key\") IN (SELECT * FROM unnest($2::date[], $3::text[]))"
        );
        assert_eq!(
            select_side(WarehouseKind::Redshift, "s", &ACTIONS, "O'K"),
            "SELECT \"date\", \"kind\", \"amount\", \"ratio\", \"numerator\", \"denominator\", \
             \"created_at\", \"updated_at\" FROM \"s\".\"fact_corporate_actions\" \
             WHERE \"ticker\" = 'O''K' ORDER BY \"date\", \"kind\""
        );
    }
}
