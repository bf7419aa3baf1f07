//! The curated row: one ticker-day with its indicators and instrument meta,
//! as stored in the Parquet lake and the warehouse (DESIGN.md sections 4 and 6).

use chrono::{DateTime, NaiveDate, Utc};

pub use crate::schema::{COLUMNS, INDICATOR_COLUMNS};

/// Section 5 indicators of one bar; `None` is SQL NULL / Parquet null.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Indicators {
    pub sma_7: Option<f64>,
    pub sma_14: Option<f64>,
    pub sma_20: Option<f64>,
    pub ema_12: Option<f64>,
    pub macd: Option<f64>,
    pub macd_signal: Option<f64>,
    pub macd_histogram: Option<f64>,
    pub rsi: Option<f64>,
    pub bb_upper: Option<f64>,
    pub bb_middle: Option<f64>,
    pub bb_lower: Option<f64>,
    pub volatility_20d: Option<f64>,
    pub daily_return: Option<f64>,
    pub daily_return_pct: Option<f64>,
}

impl Indicators {
    /// The values in [`INDICATOR_COLUMNS`] order.
    pub fn values(&self) -> [Option<f64>; 14] {
        [
            self.sma_7,
            self.sma_14,
            self.sma_20,
            self.ema_12,
            self.macd,
            self.macd_signal,
            self.macd_histogram,
            self.rsi,
            self.bb_upper,
            self.bb_middle,
            self.bb_lower,
            self.volatility_20d,
            self.daily_return,
            self.daily_return_pct,
        ]
    }

    /// Builds from values in [`INDICATOR_COLUMNS`] order.
    pub fn from_values(v: [Option<f64>; 14]) -> Indicators {
        Indicators {
            sma_7: v[0],
            sma_14: v[1],
            sma_20: v[2],
            ema_12: v[3],
            macd: v[4],
            macd_signal: v[5],
            macd_histogram: v[6],
            rsi: v[7],
            bb_upper: v[8],
            bb_middle: v[9],
            bb_lower: v[10],
            volatility_20d: v[11],
            daily_return: v[12],
            daily_return_pct: v[13],
        }
    }
}

/// What the chart API's `meta` says about the instrument (DESIGN.md 5a).
/// Each row keeps the meta of the response that brought its bar.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InstrumentMeta {
    pub currency: Option<String>,
    pub exchange: Option<String>,
    pub instrument_type: Option<String>,
    pub regular_market_price: Option<f64>,
    pub fifty_two_week_high: Option<f64>,
    pub fifty_two_week_low: Option<f64>,
    pub long_name: Option<String>,
    pub short_name: Option<String>,
}

/// One daily bar as the chart API gives it, after dropping bars without close.
#[derive(Debug, Clone, PartialEq)]
pub struct DailyBar {
    pub date: NaiveDate,
    pub open: Option<f64>,
    pub high: Option<f64>,
    pub low: Option<f64>,
    pub close: f64,
    pub adj_close: Option<f64>,
    pub volume: Option<i64>,
}

impl DailyBar {
    /// Every field equal, floats bit for bit (a NaN equals itself here).
    pub fn same_values(&self, other: &DailyBar) -> bool {
        let bits = |x: Option<f64>| x.map(f64::to_bits);
        self.date == other.date
            && bits(self.open) == bits(other.open)
            && bits(self.high) == bits(other.high)
            && bits(self.low) == bits(other.low)
            && self.close.to_bits() == other.close.to_bits()
            && bits(self.adj_close) == bits(other.adj_close)
            && self.volume == other.volume
    }
}

/// A curated row: the bar, its indicators, the instrument meta, and when the
/// row first appeared in the lake / last changed there.
#[derive(Debug, Clone, PartialEq)]
pub struct CuratedRow {
    pub ticker: String,
    pub bar: DailyBar,
    pub indicators: Indicators,
    pub meta: InstrumentMeta,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl CuratedRow {
    pub fn date(&self) -> NaiveDate {
        self.bar.date
    }

    /// True when every column but the two timestamps is identical, bit for bit
    /// for floats: such a row needs no rewrite and no warehouse update.
    pub fn same_values(&self, other: &CuratedRow) -> bool {
        use crate::schema::{MARKET_DATA, Role, Value};
        let same = |a: &Value<'_>, b: &Value<'_>| match (a, b) {
            (Value::Float(x), Value::Float(y)) => x.map(f64::to_bits) == y.map(f64::to_bits),
            _ => a == b,
        };
        self.values()
            .iter()
            .zip(other.values().iter())
            .zip(MARKET_DATA.iter())
            .all(|((a, b), column)| {
                !(column.role == Role::Key || column.is_compared()) || same(a, b)
            })
    }
}
