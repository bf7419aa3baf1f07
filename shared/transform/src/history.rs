//! Merging fetched bars into a ticker's stored history.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use mdp_core::lake::{INDICATOR_TAIL_BARS, IndicatorTail, TailBar};
use mdp_core::row::DailyBar;
use mdp_core::{CuratedRow, Indicators, InstrumentMeta};

use crate::indicators::{EmaState, IndicatorState, LOOKBACK, resume_indicators};

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
    let resume = Resume::FromFirstBar;
    merge_span(ticker, stored, incoming, meta, now, resume)
        .expect("a merge from the first bar needs no stored state")
        .rows
}

/// Where a merge's indicators come from.
#[derive(Debug, Clone, Copy)]
pub enum Resume<'a> {
    /// The stored rows are the whole history: every indicator is recomputed.
    FromFirstBar,
    /// The stored rows are the history from some year on, and the tail
    /// holds the state after each of the last stored bars: indicators are
    /// recomputed from the first bar whose close is new or changed.
    FromTail(&'a IndicatorTail),
}

/// A merge of incoming bars into a span of the stored history.
#[derive(Debug, Clone)]
pub struct MergedSpan {
    /// The span's rows after the merge, oldest first.
    pub rows: Vec<CuratedRow>,
    /// Dates the span did not hold before.
    pub added: u64,
    /// The state after each of the history's last bars after the merge;
    /// `None` when a value is not finite (the next merge starts over).
    pub tail: Option<IndicatorTail>,
}

/// Merges `incoming` into `stored` (sorted by date; the whole history for
/// [`Resume::FromFirstBar`], a suffix of it for [`Resume::FromTail`]), with
/// the timestamps rule of [`merge_history`]. `None` when the tail does not
/// reach back to the first changed close: the caller merges the whole
/// history instead.
pub fn merge_span(
    ticker: &str,
    stored: &[CuratedRow],
    incoming: &[DailyBar],
    meta: &InstrumentMeta,
    now: DateTime<Utc>,
    resume: Resume<'_>,
) -> Option<MergedSpan> {
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
    let added = (rows.len() - stored.len()) as u64;

    // Indicators depend on the closes only, so those of the bars before the
    // first new or changed close stay as they are.
    let first_change = rows
        .iter()
        .position(|row| {
            stored.get(&row.date()).map(|old| old.bar.close.to_bits())
                != Some(row.bar.close.to_bits())
        })
        .unwrap_or(rows.len());
    let (restart, state, kept_tail, first_index) = match resume {
        Resume::FromFirstBar => (0, IndicatorState::default(), &[][..], 0),
        Resume::FromTail(tail) => {
            let restart_date = rows.get(first_change).map(|r| r.date());
            let before = tail
                .bars
                .iter()
                .take_while(|b| restart_date.is_none_or(|d| b.date < d))
                .count();
            let state = state_before(tail, before)?;
            (first_change, state, &tail.bars[..before], tail.first_index)
        }
    };
    let closes: Vec<f64> = rows[restart..].iter().map(|r| r.bar.close).collect();
    let (indicators, emas) = resume_indicators(&state, &closes);
    for row in &mut rows[..restart] {
        // Unchanged closes: the stored row of the date has the indicators.
        row.indicators = stored[&row.date()].indicators;
    }
    for (row, values) in rows[restart..].iter_mut().zip(indicators) {
        row.indicators = values;
    }
    for row in &mut rows {
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

    let recomputed = rows[restart..].iter().zip(&emas).map(|(row, ema)| TailBar {
        date: row.date(),
        close: row.bar.close,
        ema_12: ema.ema_12,
        ema_26: ema.ema_26,
        macd_signal: ema.macd_signal,
    });
    let mut bars: Vec<TailBar> = kept_tail.iter().copied().chain(recomputed).collect();
    let dropped = bars.len().saturating_sub(INDICATOR_TAIL_BARS);
    bars.drain(..dropped);
    let tail = (!bars.is_empty() && bars.iter().all(TailBar::is_finite)).then(|| IndicatorTail {
        first_index: first_index + dropped as u64,
        bars,
    });
    Some(MergedSpan { rows, added, tail })
}

/// The state after the first `before` bars of the tail; `None` when the
/// tail holds fewer of the earlier closes than the windows read.
fn state_before(tail: &IndicatorTail, before: usize) -> Option<IndicatorState> {
    let bars_before = tail.first_index + before as u64;
    let lookback = (bars_before as usize).min(LOOKBACK);
    let from = before.checked_sub(lookback)?;
    let closes = tail.bars[from..before].iter().map(|b| b.close).collect();
    let ema = before.checked_sub(1).map(|last| {
        let b = &tail.bars[last];
        EmaState {
            ema_12: b.ema_12,
            ema_26: b.ema_26,
            macd_signal: b.macd_signal,
        }
    });
    IndicatorState::new(bars_before, closes, ema)
}
