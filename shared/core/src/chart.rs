//! The Yahoo Finance v8 chart response (DESIGN.md section 5a): typed parsing,
//! bar dates in the exchange's time zone, and the outcome classes
//! (bars / no data / permanent / transient) of a status and body.

use std::str::FromStr;

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use serde::{Deserialize, Deserializer};

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

impl ExchangeZone {
    pub fn local_date(&self, epoch_seconds: i64) -> Option<NaiveDate> {
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
    for bar in bars {
        match unique.last_mut() {
            Some(last) if last.date == bar.date => *last = bar,
            _ => unique.push(bar),
        }
    }
    Ok(ChartSeries {
        symbol,
        meta: instrument,
        zone,
        bars: unique,
        dropped_without_close: dropped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/../../tests/fixtures/yahoo/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn series(name: &str) -> ChartSeries {
        match classify_response(200, &fixture(name)) {
            ChartOutcome::Series(s) => *s,
            other => panic!("{name}: {other:?}"),
        }
    }

    #[test]
    fn msft_year_of_daily_bars_with_meta_and_whole_number_prices() {
        let s = series("msft_1d_range_2021-02-01_2022-01-28_dividends.json");
        assert_eq!(s.bars.len(), 252);
        assert_eq!(s.dropped_without_close, 0);
        assert_eq!(s.bars[0].date, d("2021-02-01"));
        assert_eq!(s.bars[251].date, d("2022-01-28"));
        assert_eq!(s.zone, ExchangeZone::Named(chrono_tz::America::New_York));
        assert!(
            s.bars
                .iter()
                .all(|b| b.adj_close.is_some() && b.volume.is_some() && b.open.is_some())
        );
        assert!(s.bars.windows(2).all(|w| w[0].date < w[1].date));
        // The fixture writes some prices as bare integers (`243`): they parse as floats.
        let raw: serde_json::Value = serde_json::from_slice(&fixture(
            "msft_1d_range_2021-02-01_2022-01-28_dividends.json",
        ))
        .unwrap();
        let quote = &raw["chart"]["result"][0]["indicators"]["quote"][0];
        for (i, bar) in s.bars.iter().enumerate() {
            assert_eq!(bar.close, quote["close"][i].as_f64().unwrap());
            assert_eq!(bar.volume, quote["volume"][i].as_i64());
        }
        assert!(
            quote["close"]
                .as_array()
                .unwrap()
                .iter()
                .chain(quote["open"].as_array().unwrap())
                .any(|v| v.is_u64())
        );
        assert_eq!(s.meta.currency.as_deref(), Some("USD"));
        assert_eq!(s.meta.exchange.as_deref(), Some("NMS"));
        assert_eq!(s.meta.instrument_type.as_deref(), Some("EQUITY"));
        assert_eq!(s.meta.long_name.as_deref(), Some("Microsoft Corporation"));
        assert_eq!(s.meta.short_name.as_deref(), Some("Microsoft Corporation"));
        assert_eq!(s.meta.regular_market_price, Some(408.21));
        assert_eq!(s.meta.fifty_two_week_high, Some(468.35));
        assert!(s.meta.fifty_two_week_low.is_some());
        assert_eq!(s.symbol.as_deref(), Some("MSFT"));
    }

    #[test]
    fn btc_drops_the_four_null_bars_and_keeps_utc_dates() {
        let s = series("btc-usd_1d_range_2020_nulls.json");
        assert_eq!(s.dropped_without_close, 4);
        assert_eq!(s.bars.len(), 366);
        assert_eq!(s.zone, ExchangeZone::Named(chrono_tz::UTC));
        assert_eq!(s.bars[0].date, d("2020-01-01"));
        assert_eq!(s.bars.last().unwrap().date, d("2021-01-04"));
        for gap in ["2020-04-17", "2020-10-09", "2020-10-12", "2020-10-13"] {
            assert!(
                s.bars.iter().all(|b| b.date != d(gap)),
                "{gap} should be dropped"
            );
        }
        assert!(s.bars.iter().any(|b| b.date == d("2020-10-10")));
        assert_eq!(s.meta.long_name, None);
        assert_eq!(s.meta.instrument_type.as_deref(), Some("CRYPTOCURRENCY"));
        let range = s.bars_in_range(d("2020-10-01"), d("2020-10-31"));
        assert_eq!(range.len(), 31 - 3);
        assert_eq!(range[0].date, d("2020-10-01"));
        assert_eq!(range.last().unwrap().date, d("2020-10-31"));
    }

    #[test]
    fn wsu_null_middle_row_is_dropped_and_dates_are_berlin_dates() {
        let body = fixture("wsu.de_1d_range_2023-08-04_2023-08-08_null_row.json");
        let s = series("wsu.de_1d_range_2023-08-04_2023-08-08_null_row.json");
        let dates: Vec<NaiveDate> = s.bars.iter().map(|b| b.date).collect();
        assert_eq!(dates, [d("2023-08-04"), d("2023-08-08")]);
        assert_eq!(s.dropped_without_close, 1);
        assert_eq!(s.meta.currency.as_deref(), Some("EUR"));
        assert_eq!(s.meta.exchange.as_deref(), Some("GER"));
        assert_eq!(s.zone, ExchangeZone::Named(chrono_tz::Europe::Berlin));

        // Without the zone name, meta.gmtoffset (7200 s) decides the date.
        let mut v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let meta = v["chart"]["result"][0]["meta"].as_object_mut().unwrap();
        meta.remove("exchangeTimezoneName");
        let s2 = parse_chart(&serde_json::to_vec(&v).unwrap()).unwrap();
        assert_eq!(
            s2.zone,
            ExchangeZone::Offset(FixedOffset::east_opt(7200).unwrap())
        );
        assert_eq!(s2.bars.iter().map(|b| b.date).collect::<Vec<_>>(), dates);
    }

    #[test]
    fn exchange_zone_not_utc_decides_the_date() {
        // A Sydney session opening at 10:00 AEDT is 23:00 UTC the day before.
        let mut v: serde_json::Value =
            serde_json::from_slice(&fixture("aps.ax_1d_empty_result_no_timestamp.json")).unwrap();
        let result = &mut v["chart"]["result"][0];
        result["timestamp"] = serde_json::json!([1_704_150_000]); // 2024-01-01T23:00:00Z
        result["indicators"] = serde_json::json!({"quote":[{"open":[1.0],"high":[1.0],"low":[1.0],"close":[1.0],"volume":[null]}]});
        let s = parse_chart(&serde_json::to_vec(&v).unwrap()).unwrap();
        assert_eq!(s.bars[0].date, d("2024-01-02"));
        assert_eq!(s.bars[0].volume, None, "null volume stays null");
        assert_eq!(s.bars[0].adj_close, None, "absent adjclose is null");
    }

    #[test]
    fn aapl_dst_crossing_single_day_and_live_last_bar() {
        let s = series("aapl_1d_range_2020-08-31_2020-11-06_div_split.json");
        assert_eq!(s.bars.len(), 49);
        assert_eq!(s.bars[0].date, d("2020-08-31"));
        assert_eq!(s.bars[48].date, d("2020-11-06"));
        // 13:30Z before and 14:30Z after the DST change are both 09:30 New York.
        assert!(s.bars.iter().any(|b| b.date == d("2020-10-30")));
        assert!(s.bars.iter().any(|b| b.date == d("2020-11-02")));
        assert!(
            s.bars
                .iter()
                .all(|b| !matches!(b.date.format("%a").to_string().as_str(), "Sat" | "Sun"))
        );

        let one = series("aapl_1d_single_day_2020-01-02.json");
        assert_eq!(one.bars.len(), 1);
        assert_eq!(one.bars[0].date, d("2020-01-02"));
        assert!(one.bars[0].adj_close.is_some());

        // The live bar is stamped 20:00:01Z = 16:00:01 New York, same date.
        let live = series("aapl_1d_range6mo_live_last_bar_dividends.json");
        assert_eq!(live.bars.len(), 127);
        assert_eq!(live.bars[0].date, d("2025-04-30"));
        assert_eq!(live.bars[126].date, d("2025-10-29"));
    }

    #[test]
    fn intraday_null_bar_is_dropped_and_no_adjclose_means_null() {
        let s = series("aapl_1m_intraday_2024-10-02_null_bar.json");
        assert_eq!(s.dropped_without_close, 1);
        assert!(s.bars.iter().all(|b| b.adj_close.is_none()));
    }

    #[test]
    fn empty_result_is_success_with_zero_bars() {
        let s = series("aps.ax_1d_empty_result_no_timestamp.json");
        assert!(s.bars.is_empty());
        assert_eq!(s.dropped_without_close, 0);
        assert_eq!(s.meta.currency.as_deref(), Some("AUD"));
        assert_eq!(s.zone, ExchangeZone::Named(chrono_tz::Australia::Sydney));
    }

    #[test]
    fn error_statuses_are_classified_as_the_design_says() {
        match classify_response(404, &fixture("six_error_404_not_found.json")) {
            ChartOutcome::Permanent(m) => assert!(
                m.contains("404") && m.contains("symbol may be delisted"),
                "{m}"
            ),
            other => panic!("{other:?}"),
        }
        match classify_response(
            400,
            &fixture("beke_error_400_bad_request_range_before_listing.json"),
        ) {
            ChartOutcome::NoData(m) => {
                assert!(m.starts_with("Data doesn't exist for startDate"), "{m}")
            }
            other => panic!("{other:?}"),
        }
        let other_400 = br#"{"chart":{"result":null,"error":{"code":"Bad Request","description":"Invalid input - interval=2x is not supported"}}}"#;
        assert!(matches!(
            classify_response(400, other_400),
            ChartOutcome::Permanent(_)
        ));
        for status in [429, 500, 502, 503, 504] {
            assert!(
                matches!(
                    classify_response(status, b"<html>busy</html>"),
                    ChartOutcome::Transient(_)
                ),
                "{status}"
            );
        }
        assert!(matches!(
            classify_response(401, b"{}"),
            ChartOutcome::Permanent(_)
        ));
    }

    #[test]
    fn unparseable_or_inconsistent_200_bodies_are_transient() {
        let full = fixture("msft_1d_range_2021-02-01_2022-01-28_dividends.json");
        let truncated = &full[..full.len() / 2];
        match classify_response(200, truncated) {
            ChartOutcome::Transient(m) => assert!(m.contains("unparseable"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            classify_response(200, b"<html>captcha</html>"),
            ChartOutcome::Transient(_)
        ));
        assert!(matches!(
            classify_response(200, br#"{"chart":{"result":[],"error":null}}"#),
            ChartOutcome::Transient(_)
        ));
        let mut v: serde_json::Value = serde_json::from_slice(&full).unwrap();
        v["chart"]["result"][0]["indicators"]["quote"][0]["close"]
            .as_array_mut()
            .unwrap()
            .pop();
        match parse_chart(&serde_json::to_vec(&v).unwrap()) {
            Err(ChartParseError::LengthMismatch {
                name: "close",
                len: 251,
                expected: 252,
            }) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn duplicate_dates_keep_the_later_bar() {
        let mut v: serde_json::Value =
            serde_json::from_slice(&fixture("aapl_1d_single_day_2020-01-02.json")).unwrap();
        let r = &mut v["chart"]["result"][0];
        r["timestamp"] = serde_json::json!([1_577_975_400, 1_578_000_000]); // 09:30 and 16:20 NY
        r["indicators"] = serde_json::json!({"quote":[{"close":[1.0, 2.0],"volume":[10, 1.2e3]}]});
        let s = parse_chart(&serde_json::to_vec(&v).unwrap()).unwrap();
        assert_eq!(s.bars.len(), 1);
        assert_eq!(s.bars[0].close, 2.0);
        assert_eq!(s.bars[0].volume, Some(1200));
        assert_eq!(s.bars[0].open, None);
    }
}
