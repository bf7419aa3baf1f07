//! The side tables on Redshift, as data: the `LOCK` of the three tables
//! (Redshift enforces no unique key and has no advisory locks: the lock
//! makes a second delivery of the same load wait, then find its work done),
//! then, after the read of the ticker's stored rows and the plan
//! ([`crate::side::plan`]), per table one `DELETE` of the keys gone or
//! rewritten and one multi-row `INSERT ... VALUES` of the new or rewritten
//! rows ([`write_statements`]).
//!
//! The side data is small and in this process (no S3 file to `COPY`), and
//! Redshift statements go through the simple query protocol (see the module
//! above), so values are literals:
//! - floats as the shortest text that parses back to the same f64
//!   (Rust's `{:e}`), cast with `CAST('…' AS DOUBLE PRECISION)`: the server
//!   parses it to exactly the bits sent (no digits are dropped, and the
//!   exponent form never makes a long NUMERIC literal);
//! - text quoted with doubled quotes, and each backslash as `CHR(92)`
//!   (Redshift literals may treat a backslash as an escape, Postgres' do not:
//!   this reads the same on both);
//! - dates `DATE 'YYYY-MM-DD'`, timestamps `CAST('… +00' AS TIMESTAMPTZ)`
//!   with their microseconds.

use chrono::{DateTime, NaiveDate, Utc};
use mdp_core::config::{LoadStrategy, WarehouseKind};
use mdp_core::quality::QuarantinedBar;
use sqlx::{AssertSqlSafe, PgConnection};

use crate::errors::Failure;
use crate::postgres::side::{read_side_in, side_target};
use crate::side::{
    self, ACTIONS, FINDINGS, QUARANTINE, SideBatch, SidePlan, SideReport, SideTable, StoredAction,
    StoredFinding,
};
use crate::sql::{literal, quote_ident};

/// One side load on `conn`, inside the caller's transaction: the lock, the
/// read of the ticker's stored rows, the plan, its statements.
pub(crate) async fn run(
    conn: &mut PgConnection,
    schema: &str,
    batch: &SideBatch<'_>,
    strategy: LoadStrategy,
) -> Result<SideReport, Failure> {
    let ticker = batch.ticker.as_str();
    sqlx::raw_sql(AssertSqlSafe(lock_statement(schema)))
        .execute(&mut *conn)
        .await?;
    let stored = read_side_in(conn, WarehouseKind::Redshift, schema, ticker).await?;
    let plan = side::plan(batch, &stored, strategy);
    for statement in write_statements(schema, ticker, &plan) {
        sqlx::raw_sql(AssertSqlSafe(statement))
            .execute(&mut *conn)
            .await?;
    }
    Ok(plan.report)
}

/// `LOCK` of the three side tables, always in the same order.
pub(crate) fn lock_statement(schema: &str) -> String {
    format!(
        "LOCK {}",
        side::SIDE_TABLES
            .iter()
            .map(|t| side_target(schema, t))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// A text literal that reads the same under Redshift's and Postgres' rules.
pub(crate) fn text(s: &str) -> String {
    s.split('\\')
        .map(literal)
        .collect::<Vec<_>>()
        .join(" || CHR(92) || ")
}

pub(crate) fn float(v: Option<f64>) -> String {
    match v {
        Some(x) => format!("CAST('{x:e}' AS DOUBLE PRECISION)"),
        None => "NULL".to_string(),
    }
}

fn int(v: Option<i64>) -> String {
    match v {
        Some(x) => format!("CAST({x} AS BIGINT)"),
        None => "NULL".to_string(),
    }
}

fn date(d: NaiveDate) -> String {
    format!("DATE '{}'", d.format("%Y-%m-%d"))
}

fn timestamp(ts: DateTime<Utc>) -> String {
    format!(
        "CAST('{}' AS TIMESTAMPTZ)",
        ts.format("%Y-%m-%d %H:%M:%S%.6f+00")
    )
}

fn delete(schema: &str, table: &SideTable, ticker: &str, keys: &[(String, String)]) -> String {
    let third = quote_ident(table.key[2]);
    let any: Vec<String> = keys
        .iter()
        .map(|(d, k)| format!("(\"date\" = {d} AND {third} = {k})"))
        .collect();
    format!(
        "DELETE FROM {} WHERE \"ticker\" = {} AND ({})",
        side_target(schema, table),
        text(ticker),
        any.join(" OR ")
    )
}

fn insert(schema: &str, table: &SideTable, rows: &[Vec<String>]) -> String {
    let values: Vec<String> = rows.iter().map(|r| format!("({})", r.join(", "))).collect();
    format!(
        "INSERT INTO {} ({}) VALUES {}",
        side_target(schema, table),
        table
            .columns
            .iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", "),
        values.join(", ")
    )
}

fn action_values(ticker: &str, a: &StoredAction) -> Vec<String> {
    vec![
        text(ticker),
        date(a.action.date),
        text(a.action.kind.code()),
        float(a.action.amount),
        float(a.ratio),
        float(a.action.numerator),
        float(a.action.denominator),
        timestamp(a.created_at),
        timestamp(a.updated_at),
    ]
}

fn finding_values(ticker: &str, f: &StoredFinding) -> Vec<String> {
    vec![
        text(ticker),
        date(f.finding.date),
        text(f.finding.rule.code()),
        text(&f.finding.detail),
        timestamp(f.recorded_at),
    ]
}

fn quarantine_values(ticker: &str, q: &QuarantinedBar) -> Vec<String> {
    vec![
        text(ticker),
        date(q.bar.date),
        text(&q.raw_key),
        text(&side::rules_text(&q.rules)),
        text(&q.detail),
        float(q.bar.open),
        float(q.bar.high),
        float(q.bar.low),
        float(Some(q.bar.close)),
        float(q.bar.adj_close),
        int(q.bar.volume),
        timestamp(q.quarantined_at),
    ]
}

/// The statements that write `plan` for `ticker`, in order (none when
/// nothing changed), to run after [`lock_statement`] and the read in the
/// same transaction.
pub(crate) fn write_statements(schema: &str, ticker: &str, plan: &SidePlan) -> Vec<String> {
    let mut out = Vec::new();
    let a = &plan.actions;
    if !a.delete.is_empty() {
        let keys: Vec<_> = a.delete.iter().map(|(d, k)| (date(*d), text(k))).collect();
        out.push(delete(schema, &ACTIONS, ticker, &keys));
    }
    if !a.insert.is_empty() {
        let rows: Vec<_> = a.insert.iter().map(|r| action_values(ticker, r)).collect();
        out.push(insert(schema, &ACTIONS, &rows));
    }
    let f = &plan.findings;
    if !f.delete.is_empty() {
        let keys: Vec<_> = f.delete.iter().map(|(d, r)| (date(*d), text(r))).collect();
        out.push(delete(schema, &FINDINGS, ticker, &keys));
    }
    if !f.insert.is_empty() {
        let rows: Vec<_> = f.insert.iter().map(|r| finding_values(ticker, r)).collect();
        out.push(insert(schema, &FINDINGS, &rows));
    }
    let q = &plan.quarantine;
    if !q.delete.is_empty() {
        let keys: Vec<_> = q.delete.iter().map(|(d, k)| (date(*d), text(k))).collect();
        out.push(delete(schema, &QUARANTINE, ticker, &keys));
    }
    if !q.insert.is_empty() {
        let rows: Vec<_> = q
            .insert
            .iter()
            .map(|r| quarantine_values(ticker, r))
            .collect();
        out.push(insert(schema, &QUARANTINE, &rows));
    }
    out
}

#[cfg(test)]
mod tests {
    use chrono::{TimeDelta, TimeZone};
    use mdp_core::quality::{ActionKind, CorporateAction, HardRule, QualityFinding, SoftRule};
    use mdp_core::row::DailyBar;

    use super::*;
    use crate::side::Changes;

    #[test]
    fn literals_are_exact_and_safe() {
        assert_eq!(float(Some(0.205)), "CAST('2.05e-1' AS DOUBLE PRECISION)");
        assert_eq!(
            float(Some(1.0 / 3.0)),
            "CAST('3.333333333333333e-1' AS DOUBLE PRECISION)"
        );
        assert_eq!(float(None), "NULL");
        for x in [0.205, 1.0 / 3.0, f64::MAX, 5e-324, -0.0, 1e-300, 123456.789] {
            let shown = format!("{x:e}");
            assert_eq!(shown.parse::<f64>().unwrap().to_bits(), x.to_bits(), "{x}");
        }
        assert_eq!(text("it's"), "'it''s'");
        assert_eq!(text("a\\b\\"), "'a' || CHR(92) || 'b' || CHR(92) || ''");
        assert_eq!(int(Some(i64::MIN)), "CAST(-9223372036854775808 AS BIGINT)");
        let ts = Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap() + TimeDelta::microseconds(7);
        assert_eq!(
            timestamp(ts),
            "CAST('2025-01-02 03:04:05.000007+00' AS TIMESTAMPTZ)"
        );
    }

    /// The exact statements of a plan touching every table.
    #[test]
    fn statements_of_a_plan() {
        let d = NaiveDate::from_ymd_opt(2024, 3, 1).unwrap();
        let at = Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap();
        let plan = SidePlan {
            actions: Changes {
                delete: vec![(d, "dividend"), (d, "split")],
                insert: vec![StoredAction {
                    action: CorporateAction {
                        date: d,
                        kind: ActionKind::Split,
                        amount: None,
                        numerator: Some(4.0),
                        denominator: Some(1.0),
                    },
                    ratio: Some(4.0),
                    created_at: at,
                    updated_at: at,
                }],
            },
            findings: Changes {
                delete: vec![],
                insert: vec![StoredFinding {
                    finding: QualityFinding {
                        date: d,
                        rule: SoftRule::LargeMove,
                        detail: "x's".into(),
                    },
                    recorded_at: at,
                }],
            },
            quarantine: Changes {
                delete: vec![(d, "raw/k.json".into())],
                insert: vec![QuarantinedBar {
                    bar: DailyBar {
                        date: d,
                        open: None,
                        high: None,
                        low: None,
                        close: -1.0,
                        adj_close: None,
                        volume: None,
                    },
                    rules: vec![HardRule::PriceNotPositive],
                    detail: "close -1".into(),
                    raw_key: "raw/k.json".into(),
                    quarantined_at: at,
                }],
            },
            report: Default::default(),
        };
        let ts = "CAST('2025-01-02 03:04:05.000000+00' AS TIMESTAMPTZ)";
        assert_eq!(
            lock_statement("s"),
            "LOCK \"s\".\"fact_corporate_actions\", \"s\".\"quality_findings\", \"s\".\"quality_quarantine\""
        );
        assert_eq!(
            write_statements("s", "BRK-B", &plan),
            vec![
                "DELETE FROM \"s\".\"fact_corporate_actions\" WHERE \"ticker\" = 'BRK-B' AND \
                 ((\"date\" = DATE '2024-03-01' AND \"kind\" = 'dividend') OR \
                 (\"date\" = DATE '2024-03-01' AND \"kind\" = 'split'))"
                    .to_string(),
                format!(
                    "INSERT INTO \"s\".\"fact_corporate_actions\" (\"ticker\", \"date\", \"kind\", \
                     \"amount\", \"ratio\", \"numerator\", \"denominator\", \"created_at\", \
                     \"updated_at\") VALUES ('BRK-B', DATE '2024-03-01', 'split', NULL, \
                     CAST('4e0' AS DOUBLE PRECISION), CAST('4e0' AS DOUBLE PRECISION), \
                     CAST('1e0' AS DOUBLE PRECISION), {ts}, {ts})"
                ),
                format!(
                    "INSERT INTO \"s\".\"quality_findings\" (\"ticker\", \"date\", \"rule\", \
                     \"detail\", \"recorded_at\") VALUES ('BRK-B', DATE '2024-03-01', \
                     'large_move', 'x''s', {ts})"
                ),
                "DELETE FROM \"s\".\"quality_quarantine\" WHERE \"ticker\" = 'BRK-B' AND \
                 ((\"date\" = DATE '2024-03-01' AND \"raw_key\" = 'raw/k.json'))"
                    .to_string(),
                format!(
                    "INSERT INTO \"s\".\"quality_quarantine\" (\"ticker\", \"date\", \"raw_key\", \
                     \"rules\", \"detail\", \"open\", \"high\", \"low\", \"close\", \"adj_close\", \
                     \"volume\", \"quarantined_at\") VALUES ('BRK-B', DATE '2024-03-01', \
                     'raw/k.json', 'price_not_positive', 'close -1', NULL, NULL, NULL, \
                     CAST('-1e0' AS DOUBLE PRECISION), NULL, NULL, {ts})"
                ),
            ]
        );
        assert!(write_statements("s", "X", &SidePlan::default()).is_empty());
    }
}
