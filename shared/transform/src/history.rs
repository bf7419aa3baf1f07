//! Merging fetched bars into a ticker's stored history.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use mdp_core::row::DailyBar;
use mdp_core::{CuratedRow, Indicators, InstrumentMeta};

use crate::indicators::compute_indicators;

/// `now` at the microsecond precision the lake and warehouse keep, so a
/// timestamp reads back equal to what was written.
pub fn lake_now() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

/// The new full history: stored rows, with `incoming` bars replacing stored
/// bars of the same date, indicators recomputed over the whole series.
///
/// A row whose values come out identical to its stored version keeps both
/// timestamps; a changed row keeps `created_at` and gets `updated_at = now`;
/// a new row gets `now` for both. So replaying the same bars changes nothing.
pub fn merge_history(
    ticker: &str,
    stored: &[CuratedRow],
    incoming: &[DailyBar],
    meta: &InstrumentMeta,
    now: DateTime<Utc>,
) -> Vec<CuratedRow> {
    let stored: BTreeMap<NaiveDate, &CuratedRow> = stored.iter().map(|r| (r.date(), r)).collect();
    let mut merged: BTreeMap<NaiveDate, CuratedRow> =
        stored.iter().map(|(d, r)| (*d, (*r).clone())).collect();
    for bar in incoming {
        merged.insert(
            bar.date,
            CuratedRow {
                ticker: ticker.to_string(),
                bar: bar.clone(),
                indicators: Indicators::default(),
                meta: meta.clone(),
                created_at: now,
                updated_at: now,
            },
        );
    }
    let mut rows: Vec<CuratedRow> = merged.into_values().collect();
    let closes: Vec<f64> = rows.iter().map(|r| r.bar.close).collect();
    for (row, indicators) in rows.iter_mut().zip(compute_indicators(&closes)) {
        row.indicators = indicators;
        match stored.get(&row.date()) {
            Some(old) if row.same_values(old) => {
                row.created_at = old.created_at;
                row.updated_at = old.updated_at;
            }
            Some(old) => {
                row.created_at = old.created_at;
                row.updated_at = now;
            }
            None => {
                row.created_at = now;
                row.updated_at = now;
            }
        }
    }
    rows
}
