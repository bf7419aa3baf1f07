//! Is a ticker's lake up to date? The last session a run should have
//! brought in by now (the exchange calendar, or every day for crypto), how
//! many sessions the lake is behind it, whether the warehouse is behind the
//! lake, and whether the latest run failed a stage — from the lake's state
//! objects alone, so the validate function's freshness check (which links
//! no Parquet reader) and `mdp status` judge alike.

use chrono::{DateTime, NaiveDate, NaiveTime, TimeDelta, Utc};
use chrono_tz::America::New_York;

use crate::calendar::{is_early_close, is_session, session_on_or_before, sessions_after};
use crate::lake::{Lake, RunRecord};
use crate::ticker::Ticker;

/// The last session whose data a run `grace` after the close has brought
/// in by `now` (New York time; early closes at 13:00).
pub fn expected_session(now: DateTime<Utc>, grace: TimeDelta) -> NaiveDate {
    let local = now.with_timezone(&New_York);
    let today = local.date_naive();
    let close = if is_early_close(today) {
        NaiveTime::from_hms_opt(13, 0, 0)
    } else {
        NaiveTime::from_hms_opt(16, 0, 0)
    }
    .expect("a valid time");
    if is_session(today) && local.time() >= close + grace {
        today
    } else {
        session_on_or_before(today - TimeDelta::days(1))
    }
}

/// What the lake says about one ticker.
#[derive(Debug, Clone)]
pub struct LakeFreshness {
    pub last_date: Option<NaiveDate>,
    pub rows: Option<u64>,
    /// Bars the data-quality gate kept out, and soft findings recorded
    /// (0 without a watermark).
    pub quarantined_bars: u64,
    pub quality_findings: u64,
    /// The session the lake should reach by now.
    pub expected: NaiveDate,
    /// Sessions the lake is behind `expected` (`None`: no data).
    pub lag_sessions: Option<u32>,
    pub run: Option<RunRecord>,
    /// The lake holds partitions the warehouse has not loaded.
    pub warehouse_behind: bool,
    /// A state object could not be read (named, with the repair).
    pub state_error: Option<String>,
}

impl LakeFreshness {
    /// Up to date, nothing failed, the warehouse not behind.
    pub fn is_fresh(&self) -> bool {
        self.lag_sessions == Some(0)
            && !self.warehouse_behind
            && self.state_error.is_none()
            && self.run.as_ref().is_none_or(|r| r.failed().is_none())
    }
}

pub async fn lake_freshness(
    lake: &Lake,
    ticker: &Ticker,
    now: DateTime<Utc>,
    grace: TimeDelta,
) -> LakeFreshness {
    let mut state_error = None;
    let watermark = lake.read_watermark(ticker).await.unwrap_or_else(|e| {
        state_error = Some(format!(
            "{} (repair with `mdp state rebuild --tickers {ticker}`)",
            crate::error::chain(&e)
        ));
        None
    });
    let loaded = lake.read_load_mark(ticker).await.ok().flatten();
    let run = lake.read_run(ticker).await.ok().flatten();
    let crypto = watermark
        .as_ref()
        .and_then(|w| w.instrument_type.as_deref())
        == Some("CRYPTOCURRENCY");
    // Crypto trades every day: a day's bar is complete the day after.
    let expected = if crypto {
        now.with_timezone(&New_York).date_naive() - TimeDelta::days(1)
    } else {
        expected_session(now, grace)
    };
    let last_date = watermark.as_ref().map(|w| w.last_date);
    let lag_sessions = last_date.map(|last| {
        if crypto {
            (expected - last).num_days().max(0) as u32
        } else {
            sessions_after(last, expected)
        }
    });
    let warehouse_behind = watermark.as_ref().is_some_and(|w| {
        !w.years_after(loaded.as_ref().map_or(0, |l| l.generation))
            .is_empty()
    });
    LakeFreshness {
        last_date,
        rows: watermark.as_ref().map(|w| w.rows),
        quarantined_bars: watermark.as_ref().map_or(0, |w| w.quarantined_bars),
        quality_findings: watermark.as_ref().map_or(0, |w| w.quality_findings),
        expected,
        lag_sessions,
        run,
        warehouse_behind,
        state_error,
    }
}
