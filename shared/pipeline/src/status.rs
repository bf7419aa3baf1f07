//! `mdp status`: is every ticker up to date, and if not, what failed? Per
//! ticker: the last bar in the lake and how many trading sessions it is
//! behind the last expected session (exchange holidays known), what the
//! latest run did at each stage, and whether the warehouse holds what the
//! lake holds. Read from the lake's state objects (watermark, load mark,
//! run ledger) and the warehouse; nothing is written.

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use mdp_core::freshness::{LakeFreshness, lake_freshness};
use mdp_core::lake::RunRecord;
use mdp_core::{Lake, Ticker};
use mdp_warehouse::RowWarehouse;
use serde::Serialize;

/// Where a ticker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Freshness {
    UpToDate,
    /// The lake misses sessions that should be there by now.
    Stale,
    /// The latest run failed a stage, the state is unreadable, or the
    /// warehouse is behind the lake.
    Failed,
}

#[derive(Debug, Clone, Serialize)]
pub struct TickerStatus {
    pub ticker: String,
    pub status: Freshness,
    pub last_date: Option<NaiveDate>,
    pub rows: Option<u64>,
    /// Bars the data-quality gate kept out of the curated zone
    /// (`quarantine/market_data/`, warehouse table `quality_quarantine`).
    pub quarantined_bars: u64,
    /// Soft-rule findings (`quality/findings/`, table `quality_findings`).
    pub quality_findings: u64,
    /// The session the lake should reach by now (calendar days for crypto).
    pub expected: NaiveDate,
    /// Sessions the lake is behind `expected`.
    pub lag_sessions: Option<u32>,
    pub run: Option<RunRecord>,
    pub warehouse_last_date: Option<NaiveDate>,
    pub warehouse_rows: Option<u64>,
    /// The lake holds partitions the warehouse has not loaded.
    pub warehouse_behind: bool,
    /// Why the status is what it is, in a line.
    pub problems: Vec<String>,
}

pub use mdp_core::freshness::expected_session;

/// The status of each ticker. `warehouse` is `None` for a warehouse that
/// does not give rows back (Redshift): its columns stay empty.
pub async fn ticker_statuses(
    lake: &Lake,
    warehouse: Option<&dyn RowWarehouse>,
    tickers: &[Ticker],
    now: DateTime<Utc>,
    grace: TimeDelta,
) -> Vec<TickerStatus> {
    let mut out = Vec::with_capacity(tickers.len());
    for ticker in tickers {
        let lake_state = lake_freshness(lake, ticker, now, grace).await;
        let mut problems: Vec<String> = lake_state.state_error.iter().cloned().collect();
        let (warehouse_last_date, warehouse_rows) = match warehouse {
            Some(w) => match w.read_rows(Some(ticker)).await {
                Ok(rows) => (rows.last().map(|r| r.date()), Some(rows.len() as u64)),
                Err(e) => {
                    problems.push(format!("warehouse: {}", mdp_core::error::chain(&e)));
                    (None, None)
                }
            },
            None => (None, None),
        };
        let LakeFreshness {
            last_date,
            rows,
            quarantined_bars,
            quality_findings,
            expected,
            lag_sessions,
            run,
            warehouse_behind,
            state_error,
        } = lake_state;
        if warehouse_behind {
            problems.push("the warehouse is behind the lake (the next run loads it)".into());
        }
        if let Some((stage, record)) = run.as_ref().and_then(|r| r.failed()) {
            problems.push(format!(
                "{stage} failed in run {}: {}",
                run.as_ref().map_or("", |r| r.run_id.as_str()),
                record.detail.as_deref().unwrap_or("no detail")
            ));
        }
        match lag_sessions {
            Some(lag) if lag > 0 => problems.push(format!("{lag} sessions behind {expected}")),
            None if problems.is_empty() => problems.push("no data in the lake".into()),
            _ => {}
        }
        let failed = run.as_ref().is_some_and(|r| r.failed().is_some())
            || warehouse_behind
            || state_error.is_some()
            || problems.iter().any(|p| p.starts_with("warehouse:"));
        let status = if failed {
            Freshness::Failed
        } else if lag_sessions != Some(0) {
            Freshness::Stale
        } else {
            Freshness::UpToDate
        };
        out.push(TickerStatus {
            ticker: ticker.to_string(),
            status,
            last_date,
            rows,
            quarantined_bars,
            quality_findings,
            expected,
            lag_sessions,
            run,
            warehouse_last_date,
            warehouse_rows,
            warehouse_behind,
            problems,
        });
    }
    out
}

/// The table `mdp status` prints.
pub fn render(statuses: &[TickerStatus]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<12} {:<10} {:<10} {:>7} {:>4} {:<10} {:>7} {:>5} {:>6} {:<26} problems",
        "ticker",
        "status",
        "last date",
        "rows",
        "lag",
        "wh last",
        "wh rows",
        "quar.",
        "finds",
        "last run"
    );
    let dash = |d: Option<String>| d.unwrap_or_else(|| "-".into());
    for s in statuses {
        let status = match s.status {
            Freshness::UpToDate => "up-to-date",
            Freshness::Stale => "STALE",
            Freshness::Failed => "FAILED",
        };
        let _ = writeln!(
            out,
            "{:<12} {:<10} {:<10} {:>7} {:>4} {:<10} {:>7} {:>5} {:>6} {:<26} {}",
            s.ticker,
            status,
            dash(s.last_date.map(|d| d.to_string())),
            dash(s.rows.map(|r| r.to_string())),
            dash(s.lag_sessions.map(|l| l.to_string())),
            dash(s.warehouse_last_date.map(|d| d.to_string())),
            dash(s.warehouse_rows.map(|r| r.to_string())),
            s.quarantined_bars,
            s.quality_findings,
            dash(s.run.as_ref().map(|r| r.run_id.clone())),
            s.problems.join("; ")
        );
    }
    out
}
