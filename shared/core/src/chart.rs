//! The Yahoo Finance v8 chart response (DESIGN.md section 5a): typed parsing,
//! bar dates in the exchange's time zone, and the outcome classes
//! (bars / no data / permanent / transient) of a status and body.

use std::str::FromStr;

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use serde::{Deserialize, Deserializer};

use crate::quality::{ActionKind, CorporateAction};
use crate::row::{DailyBar, InstrumentMeta};

#[derive(Deserialize)]
struct Envelope {
    chart: ChartBody,
}

#[derive(Deserialize)]
struct ChartBody {
    #[serde(default)]
    result: Option<Vec<ChartResult>>,
    #[serde(default)]
    error: Option<ApiError>,
}

/// The `chart.error` object of an error response.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ApiError {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Deserialize)]
struct ChartResult {
    meta: Meta,
    #[serde(default)]
    timestamp: Option<Vec<i64>>,
    #[serde(default)]
    indicators: Option<IndicatorArrays>,
    /// Dividends and splits; read leniently (see [`corporate_actions`]).
    #[serde(default)]
    events: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Meta {
    #[serde(default)]
    currency: Option<String>,
    #[serde(default)]
    symbol: Option<String>,
    #[serde(default)]
    exchange_name: Option<String>,
    #[serde(default)]
    instrument_type: Option<String>,
    #[serde(default)]
    exchange_timezone_name: Option<String>,
    #[serde(default)]
    gmtoffset: Option<f64>,
    #[serde(default)]
    regular_market_price: Option<f64>,
    #[serde(default)]
    fifty_two_week_high: Option<f64>,
    #[serde(default)]
    fifty_two_week_low: Option<f64>,
    #[serde(default)]
    long_name: Option<String>,
    #[serde(default)]
    short_name: Option<String>,
}

#[derive(Deserialize)]
struct IndicatorArrays {
    #[serde(default)]
    quote: Vec<QuoteArrays>,
    #[serde(default)]
    adjclose: Option<Vec<AdjCloseArray>>,
}

#[derive(Deserialize)]
struct QuoteArrays {
    #[serde(default)]
    open: Option<Vec<Option<f64>>>,
    #[serde(default)]
    high: Option<Vec<Option<f64>>>,
    #[serde(default)]
    low: Option<Vec<Option<f64>>>,
    #[serde(default)]
    close: Option<Vec<Option<f64>>>,
    #[serde(default, deserialize_with = "volumes")]
    volume: Option<Vec<Option<i64>>>,
}

#[derive(Deserialize)]
struct AdjCloseArray {
    #[serde(default)]
    adjclose: Option<Vec<Option<f64>>>,
}

/// Volumes are integers, but some feeds write them as whole floats (`1.2e7`).
fn volumes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Option<i64>>>, D::Error> {
    let raw: Option<Vec<Option<serde_json::Number>>> = Option::deserialize(d)?;
    let Some(raw) = raw else { return Ok(None) };
    raw.into_iter()
        .map(|n| match n {
            None => Ok(None),
            Some(n) => n
                .as_i64()
                .or_else(|| {
                    n.as_f64()
                        .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                        .map(|f| f as i64)
                })
                .map(Some)
                .ok_or_else(|| {
                    serde::de::Error::custom(format!("volume {n} is not a whole number"))
                }),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// The time zone bar dates are read in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ExchangeZone {
    Named(chrono_tz::Tz),
    Offset(FixedOffset),
}

/// The timestamps a daily bar may have: from 1970 to the year 9999. Beyond
/// them chrono's time zone arithmetic overflows (and panics near its own
/// limits); no market data is there.
const BAR_TIMESTAMPS: std::ops::RangeInclusive<i64> = -86_400..=253_402_300_799;

impl ExchangeZone {
    /// The calendar date of a timestamp in this zone; `None` outside 1970..=9999.
    pub fn local_date(&self, epoch_seconds: i64) -> Option<NaiveDate> {
        if !BAR_TIMESTAMPS.contains(&epoch_seconds) {
            return None;
        }
        let utc = DateTime::<Utc>::from_timestamp(epoch_seconds, 0)?;
        Some(match self {
            ExchangeZone::Named(tz) => utc.with_timezone(tz).date_naive(),
            ExchangeZone::Offset(off) => utc.with_timezone(off).date_naive(),
        })
    }
}

/// A parsed successful chart response.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartSeries {
    pub symbol: Option<String>,
    pub meta: InstrumentMeta,
    pub zone: ExchangeZone,
    /// Bars with a close, sorted by date, one per date (a later bar of the
    /// same date, such as the live "current day" bar, wins).
    pub bars: Vec<DailyBar>,
    /// Bars the response held without a close (holidays, gaps).
    pub dropped_without_close: usize,
    /// Bars with a close that a later bar of the same date replaced and that
    /// differ from it (the data-quality gate quarantines them), by date.
    pub superseded: Vec<DailyBar>,
    /// Dividends and splits of `events`, sorted by date and kind, one per
    /// date and kind (the last reported wins).
    pub actions: Vec<CorporateAction>,
    /// Entries of `events` that could not be read as a dividend or split
    /// (no date, no amount, a ratio that is not a positive number).
    pub events_ignored: usize,
}

impl ChartSeries {
    /// The bars dated `start..=end` (inclusive at both ends).
    pub fn bars_in_range(&self, start: NaiveDate, end: NaiveDate) -> Vec<DailyBar> {
        self.bars
            .iter()
            .filter(|b| b.date >= start && b.date <= end)
            .cloned()
            .collect()
    }

    /// The bars a later bar of the same date replaced, dated `start..=end`.
    pub fn superseded_in_range(&self, start: NaiveDate, end: NaiveDate) -> Vec<DailyBar> {
        self.superseded
            .iter()
            .filter(|b| b.date >= start && b.date <= end)
            .cloned()
            .collect()
    }

    /// The corporate actions dated `start..=end`.
    pub fn actions_in_range(&self, start: NaiveDate, end: NaiveDate) -> Vec<CorporateAction> {
        self.actions
            .iter()
            .filter(|a| a.date >= start && a.date <= end)
            .cloned()
            .collect()
    }
}

/// The dividends and splits of a result's `events` object:
/// `{"dividends": {"<ts>": {"amount", "date"}}, "splits": {"<ts>": {"date",
/// "numerator", "denominator", "splitRatio"}}}`. An entry that cannot be read
/// is counted and skipped rather than failing the response: the bars are
/// what the pipeline cannot do without, and a retry would get the same body.
fn corporate_actions(
    events: Option<&serde_json::Value>,
    zone: &ExchangeZone,
) -> (Vec<CorporateAction>, usize) {
    let mut actions = Vec::new();
    let mut ignored = 0;
    let Some(events) = events.and_then(serde_json::Value::as_object) else {
        return (actions, ignored);
    };
    let positive = |v: Option<&serde_json::Value>| {
        v.and_then(serde_json::Value::as_f64)
            .filter(|x| x.is_finite() && *x > 0.0)
    };
    let entries = |name: &str| {
        events
            .get(name)
            .and_then(serde_json::Value::as_object)
            .into_iter()
            .flat_map(|m| m.iter())
    };
    let date_of = |key: &str, entry: &serde_json::Value| {
        entry
            .get("date")
            .and_then(serde_json::Value::as_i64)
            .or_else(|| key.parse().ok())
            .and_then(|ts| zone.local_date(ts))
    };
    for (key, entry) in entries("dividends") {
        match (date_of(key, entry), positive(entry.get("amount"))) {
            (Some(date), Some(amount)) => actions.push(CorporateAction {
                date,
                kind: ActionKind::Dividend,
                amount: Some(amount),
                numerator: None,
                denominator: None,
            }),
            _ => ignored += 1,
        }
    }
    for (key, entry) in entries("splits") {
        let numerator = positive(entry.get("numerator"));
        let denominator = positive(entry.get("denominator"));
        match (date_of(key, entry), numerator, denominator) {
            (Some(date), Some(n), Some(d)) => actions.push(CorporateAction {
                date,
                kind: ActionKind::Split,
                amount: None,
                numerator: Some(n),
                denominator: Some(d),
            }),
            _ => ignored += 1,
        }
    }
    // Stable: of two entries of one date and kind, the later one wins.
    actions.sort_by_key(|a| (a.date, a.kind));
    let mut unique: Vec<CorporateAction> = Vec::with_capacity(actions.len());
    for action in actions {
        match unique.last_mut() {
            Some(last) if (last.date, last.kind) == (action.date, action.kind) => *last = action,
            _ => unique.push(action),
        }
    }
    (unique, ignored)
}

/// What a chart response means for the pipeline (DESIGN.md 5a "Outcomes").
#[derive(Debug, Clone)]
pub enum ChartOutcome {
    /// 200 with a result (possibly no bars).
    Series(Box<ChartSeries>),
    /// 400 "Data doesn't exist for startDate…": nothing to do for that range.
    NoData(String),
    /// 404 and other client errors: retrying cannot help.
    Permanent(String),
    /// 429, 5xx, unparseable bodies: retry later.
    Transient(String),
}

/// Classifies an HTTP status and body.
pub fn classify_response(status: u16, body: &[u8]) -> ChartOutcome {
    match status {
        200..=299 => match parse_chart(body) {
            Ok(series) => ChartOutcome::Series(Box::new(series)),
            Err(ChartParseError::ApiError(e)) => ChartOutcome::Permanent(format!(
                "chart API error in a {status} response: {}",
                describe(&e)
            )),
            Err(e) => ChartOutcome::Transient(format!("unparseable {status} body: {e}")),
        },
        400 => {
            let err = api_error(body);
            let description = err.description.clone().unwrap_or_default();
            if description.starts_with("Data doesn't exist") {
                ChartOutcome::NoData(description)
            } else {
                ChartOutcome::Permanent(format!("HTTP 400 Bad Request: {}", describe(&err)))
            }
        }
        404 => ChartOutcome::Permanent(format!(
            "HTTP 404, unknown or delisted symbol: {}",
            describe(&api_error(body))
        )),
        408 | 425 | 429 | 500..=599 => {
            ChartOutcome::Transient(format!("HTTP {status}: {}", describe(&api_error(body))))
        }
        _ => ChartOutcome::Permanent(format!("HTTP {status}: {}", describe(&api_error(body)))),
    }
}

fn api_error(body: &[u8]) -> ApiError {
    serde_json::from_slice::<Envelope>(body)
        .ok()
        .and_then(|e| e.chart.error)
        .unwrap_or_else(|| ApiError {
            code: None,
            description: Some(body_excerpt(body)),
        })
}

fn describe(e: &ApiError) -> String {
    match (&e.code, &e.description) {
        (Some(c), Some(d)) => format!("{c}: {d}"),
        (Some(c), None) => c.clone(),
        (None, Some(d)) => d.clone(),
        (None, None) => "no description".to_string(),
    }
}

/// The first bytes of a body, for error messages.
pub fn body_excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
    text.trim().to_string()
}

#[derive(Debug, thiserror::Error)]
pub enum ChartParseError {
    #[error("not a chart response: {0}")]
    Json(#[from] serde_json::Error),
    #[error("chart API error: {}", describe(.0))]
    ApiError(ApiError),
    #[error("chart response has no result")]
    NoResult,
    #[error("array {name} has {len} values for {expected} timestamps")]
    LengthMismatch {
        name: &'static str,
        len: usize,
        expected: usize,
    },
    #[error("timestamp {0} is out of range")]
    BadTimestamp(i64),
}

/// Parses a chart response body into dated bars. Bars without a close are
/// dropped; the other null fields of a kept bar stay null.
pub fn parse_chart(body: &[u8]) -> Result<ChartSeries, ChartParseError> {
    let envelope: Envelope = serde_json::from_slice(body)?;
    if let Some(err) = envelope.chart.error {
        return Err(ChartParseError::ApiError(err));
    }
    let result = envelope
        .chart
        .result
        .and_then(|r| r.into_iter().next())
        .ok_or(ChartParseError::NoResult)?;
    let meta = &result.meta;
    let zone = meta
        .exchange_timezone_name
        .as_deref()
        .and_then(|name| chrono_tz::Tz::from_str(name).ok())
        .map(ExchangeZone::Named)
        .or_else(|| {
            meta.gmtoffset
                .and_then(|s| FixedOffset::east_opt(s.round() as i32))
                .map(ExchangeZone::Offset)
        })
        .unwrap_or(ExchangeZone::Offset(
            FixedOffset::east_opt(0).expect("zero offset"),
        ));
    let instrument = InstrumentMeta {
        currency: meta.currency.clone(),
        exchange: meta.exchange_name.clone(),
        instrument_type: meta.instrument_type.clone(),
        regular_market_price: meta.regular_market_price,
        fifty_two_week_high: meta.fifty_two_week_high,
        fifty_two_week_low: meta.fifty_two_week_low,
        long_name: meta.long_name.clone(),
        short_name: meta.short_name.clone(),
    };
    let symbol = meta.symbol.clone();

    let timestamps = result.timestamp.unwrap_or_default();
    let n = timestamps.len();
    let (quote, adjclose) = match result.indicators {
        Some(ind) => (
            ind.quote.into_iter().next(),
            ind.adjclose
                .and_then(|a| a.into_iter().next())
                .and_then(|a| a.adjclose),
        ),
        None => (None, None),
    };
    let quote = quote.unwrap_or(QuoteArrays {
        open: None,
        high: None,
        low: None,
        close: None,
        volume: None,
    });
    fn column<T: Copy>(
        name: &'static str,
        values: Option<Vec<Option<T>>>,
        n: usize,
    ) -> Result<Vec<Option<T>>, ChartParseError> {
        match values {
            None => Ok(vec![None; n]),
            Some(v) if v.len() == n => Ok(v),
            Some(v) => Err(ChartParseError::LengthMismatch {
                name,
                len: v.len(),
                expected: n,
            }),
        }
    }
    let open = column("open", quote.open, n)?;
    let high = column("high", quote.high, n)?;
    let low = column("low", quote.low, n)?;
    let close = column("close", quote.close, n)?;
    let volume = column("volume", quote.volume, n)?;
    let adj_close = column("adjclose", adjclose, n)?;

    let mut bars = Vec::with_capacity(n);
    let mut dropped = 0;
    for (i, &ts) in timestamps.iter().enumerate() {
        let date = zone
            .local_date(ts)
            .ok_or(ChartParseError::BadTimestamp(ts))?;
        // JSON has no NaN, but keep the rule explicit: a non-finite close is no close.
        match close[i].filter(|c| c.is_finite()) {
            Some(c) => bars.push(DailyBar {
                date,
                open: open[i],
                high: high[i],
                low: low[i],
                close: c,
                adj_close: adj_close[i],
                volume: volume[i],
            }),
            None => dropped += 1,
        }
    }
    // Stable sort, then keep the last bar of each date.
    bars.sort_by_key(|b| b.date);
    let mut unique: Vec<DailyBar> = Vec::with_capacity(bars.len());
    let mut superseded = Vec::new();
    for bar in bars {
        match unique.last_mut() {
            Some(last) if last.date == bar.date => {
                let replaced = std::mem::replace(last, bar);
                if !replaced.same_values(last) {
                    superseded.push(replaced);
                }
            }
            _ => unique.push(bar),
        }
    }
    let (actions, events_ignored) = corporate_actions(result.events.as_ref(), &zone);
    Ok(ChartSeries {
        symbol,
        meta: instrument,
        zone,
        bars: unique,
        dropped_without_close: dropped,
        superseded,
        actions,
        events_ignored,
    })
}
