//! The lake's state objects: the watermark the transform writes after its
//! partitions (`state/ticker=X.json`), and the load mark the load writes
//! after the warehouse commit (`state/loaded/ticker=X.json`). Comparing the
//! two tells which partitions the warehouse has not loaded yet, so a failed
//! or killed load is caught up by the next run instead of being forgotten.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{Lake, StoreError};
use crate::ticker::Ticker;

/// A ticker's watermark: `state/ticker=X.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Watermark {
    /// The last date with a curated row.
    pub last_date: NaiveDate,
    /// All curated rows of the ticker.
    pub rows: u64,
    pub updated_at: DateTime<Utc>,
    /// Counts the transforms that rewrote at least one partition (0 for a
    /// watermark written before generations existed).
    #[serde(default)]
    pub generation: u64,
    /// The generation that last rewrote each year's partition.
    #[serde(default)]
    pub partitions: BTreeMap<i32, u64>,
    /// The chart API's instrument type of the latest bar (`EQUITY`,
    /// `CRYPTOCURRENCY`, …): which calendar the ticker trades on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instrument_type: Option<String>,
    /// Where the indicators of the next bars resume from, so a daily
    /// transform reads the partitions it rewrites instead of the whole
    /// history. A cache: without it (older watermarks, `mdp state rebuild`,
    /// a transform that rewrote old years) the transform recomputes in full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub indicator_tail: Option<IndicatorTail>,
    /// Bars the data-quality gate has kept out of the curated zone
    /// (`quarantine/market_data/`), for `mdp status`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub quarantined_bars: u64,
    /// Soft-rule findings recorded for the ticker (`quality/findings/`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub quality_findings: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Bars an [`IndicatorTail`] keeps: the 20 closes the widest indicator
/// window reads, and 20 more, so a restatement of the last 20 sessions also
/// resumes instead of recomputing the history.
pub const INDICATOR_TAIL_BARS: usize = 40;

/// The ticker's last bars (at most [`INDICATOR_TAIL_BARS`]) with the
/// exponential averages after each: what the indicators of later bars depend
/// on (DESIGN.md 5). Floats round-trip exactly through JSON (serde_json's
/// `float_roundtrip`), so resuming gives the values of a full recomputation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndicatorTail {
    /// Position of `bars[0]` in the ticker's history (0 for its first bar).
    pub first_index: u64,
    pub bars: Vec<TailBar>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TailBar {
    pub date: NaiveDate,
    pub close: f64,
    pub ema_12: f64,
    pub ema_26: f64,
    pub macd_signal: f64,
}

impl TailBar {
    /// Every value is finite: JSON has no other numbers, and a tail that
    /// could not be read back would make the whole watermark unreadable.
    pub fn is_finite(&self) -> bool {
        [self.close, self.ema_12, self.ema_26, self.macd_signal]
            .iter()
            .all(|x| x.is_finite())
    }
}

impl Watermark {
    /// The years rewritten after generation `loaded`, oldest first: what a
    /// warehouse that loaded up to `loaded` is missing.
    pub fn years_after(&self, loaded: u64) -> Vec<i32> {
        self.partitions
            .iter()
            .filter(|(_, generation)| **generation > loaded)
            .map(|(year, _)| *year)
            .collect()
    }
}

/// What the warehouse has loaded of a ticker: `state/loaded/ticker=X.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadMark {
    /// The watermark generation the last successful load had read: every
    /// partition rewritten up to it is in the warehouse.
    pub generation: u64,
    pub loaded_at: DateTime<Utc>,
}

impl Lake {
    pub fn load_mark_key(ticker: &Ticker) -> String {
        format!("state/loaded/ticker={}.json", ticker.partition_value())
    }

    pub async fn read_watermark(&self, ticker: &Ticker) -> Result<Option<Watermark>, StoreError> {
        self.read_state(Self::state_key(ticker), "watermark").await
    }

    pub async fn write_watermark(
        &self,
        ticker: &Ticker,
        mark: &Watermark,
    ) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(mark).expect("a watermark serialises");
        self.store().put(&Self::state_key(ticker), bytes).await
    }

    pub async fn read_load_mark(&self, ticker: &Ticker) -> Result<Option<LoadMark>, StoreError> {
        self.read_state(Self::load_mark_key(ticker), "load mark")
            .await
    }

    /// Records a load; a mark never moves backwards (loads of one ticker can
    /// finish out of order), and one that would not move is not rewritten (a
    /// reload of an unchanged lake costs no write).
    pub async fn write_load_mark(
        &self,
        ticker: &Ticker,
        mark: &LoadMark,
    ) -> Result<(), StoreError> {
        if let Ok(Some(stored)) = self.read_load_mark(ticker).await
            && stored.generation >= mark.generation
        {
            return Ok(());
        }
        let bytes = serde_json::to_vec(mark).expect("a load mark serialises");
        // A mark lost to a power cut only makes the next run load again
        // what it covered, which loads are idempotent for.
        self.store()
            .put_advisory(&Self::load_mark_key(ticker), bytes)
            .await
    }

    async fn read_state<T: DeserializeOwned>(
        &self,
        key: String,
        what: &'static str,
    ) -> Result<Option<T>, StoreError> {
        match self.store().get(&key).await? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| StoreError::Corrupt { key, what, source }),
        }
    }
}
