//! What a report says about one ticker before anything is drawn: its last
//! close and change, how fresh its lake is against the exchange calendar,
//! and its data-quality status.

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use chrono_tz::America::New_York;
use mdp_core::calendar::sessions_after;
use mdp_core::freshness::expected_session;
use mdp_core::quality::{CorporateAction, QualityFinding, QuarantinedBar};
use mdp_core::{CuratedRow, Ticker, Watermark};

/// How long after the close a day's data is expected: the daily schedule
/// runs two hours after it (as the validate function's freshness check).
pub const FRESHNESS_GRACE: TimeDelta = TimeDelta::hours(2);

/// Everything the report shows of one ticker, as read from the lake.
#[derive(Debug, Clone)]
pub struct TickerData {
    pub ticker: Ticker,
    /// Curated rows, oldest first (as `mdp_lake::read_history` gives them).
    pub rows: Vec<CuratedRow>,
    pub actions: Vec<CorporateAction>,
    pub findings: Vec<QualityFinding>,
    pub quarantine: Vec<QuarantinedBar>,
    pub watermark: Option<Watermark>,
    /// What could not be read (the page and the index say so; the rest of
    /// what was read is still shown).
    pub read_errors: Vec<String>,
}

impl TickerData {
    /// A ticker with nothing read yet.
    pub fn empty(ticker: Ticker) -> TickerData {
        TickerData {
            ticker,
            rows: Vec::new(),
            actions: Vec::new(),
            findings: Vec::new(),
            quarantine: Vec::new(),
            watermark: None,
            read_errors: Vec::new(),
        }
    }

    /// The instrument's long name, else its short name, from the latest row.
    pub fn name(&self) -> Option<&str> {
        let meta = &self.rows.last()?.meta;
        meta.long_name.as_deref().or(meta.short_name.as_deref())
    }

    pub fn currency(&self) -> Option<&str> {
        self.rows.last()?.meta.currency.as_deref()
    }

    fn instrument_type(&self) -> Option<&str> {
        self.watermark
            .as_ref()
            .and_then(|w| w.instrument_type.as_deref())
            .or_else(|| self.rows.last()?.meta.instrument_type.as_deref())
    }
}

/// The last close and its change from the close before.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LastClose {
    pub date: NaiveDate,
    pub close: f64,
    /// `None` with a single row.
    pub change: Option<f64>,
    pub change_pct: Option<f64>,
}

pub fn last_close(rows: &[CuratedRow]) -> Option<LastClose> {
    let last = rows.last()?;
    let previous = rows.len().checked_sub(2).map(|i| rows[i].bar.close);
    let change = previous.map(|p| last.bar.close - p);
    let change_pct = previous
        .filter(|p| *p != 0.0)
        .map(|p| 100.0 * (last.bar.close / p - 1.0));
    Some(LastClose {
        date: last.bar.date,
        close: last.bar.close,
        change: change.filter(|c| c.is_finite()),
        change_pct: change_pct.filter(|c| c.is_finite()),
    })
}

/// The lake's last date against the session a run should have brought in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    pub last_date: Option<NaiveDate>,
    /// The session (or, for crypto, the day) the lake should reach by now.
    pub expected: NaiveDate,
    /// Sessions (days for crypto) behind `expected`; `None` without data.
    pub lag: Option<u32>,
    pub crypto: bool,
}

impl Freshness {
    pub fn is_fresh(&self) -> bool {
        self.lag == Some(0)
    }

    /// "up to date", "3 sessions behind", "no data".
    pub fn describe(&self) -> String {
        let unit = if self.crypto { "day" } else { "session" };
        match self.lag {
            None => "no data".to_string(),
            Some(0) => "up to date".to_string(),
            Some(1) => format!("1 {unit} behind"),
            Some(n) => format!("{n} {unit}s behind"),
        }
    }
}

/// Judged as `mdp status` and the validate function judge it
/// (`mdp_core::freshness`): the NYSE calendar, or every day for crypto,
/// whose day is complete the day after.
pub fn freshness(data: &TickerData, now: DateTime<Utc>) -> Freshness {
    let crypto = data.instrument_type() == Some("CRYPTOCURRENCY");
    let expected = if crypto {
        now.with_timezone(&New_York).date_naive() - TimeDelta::days(1)
    } else {
        expected_session(now, FRESHNESS_GRACE)
    };
    let last_date = data
        .watermark
        .as_ref()
        .map(|w| w.last_date)
        .or_else(|| data.rows.last().map(|r| r.bar.date));
    let lag = last_date.map(|last| {
        if crypto {
            (expected - last).num_days().max(0) as u32
        } else {
            sessions_after(last, expected)
        }
    });
    Freshness {
        last_date,
        expected,
        lag,
        crypto,
    }
}

/// Counts behind the OK / warning marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QualityStatus {
    pub quarantined: usize,
    pub findings: usize,
    pub unreadable: usize,
}

impl QualityStatus {
    pub fn of(data: &TickerData) -> QualityStatus {
        QualityStatus {
            quarantined: data.quarantine.len(),
            findings: data.findings.len(),
            unreadable: data.read_errors.len(),
        }
    }

    pub fn is_ok(&self) -> bool {
        self.quarantined == 0 && self.findings == 0 && self.unreadable == 0
    }
}
