//! HTTP client of the Yahoo Finance v8 chart API (DESIGN.md section 5a).

use std::time::Duration;

use async_trait::async_trait;
use chrono::{Days, NaiveDate};
use mdp_core::chart::{ChartOutcome, classify_response};
use mdp_core::encoding::{UNRESERVED, percent_encode};
use mdp_core::source::{ChartContent, ChartFetch, MarketDataSource};
use mdp_core::{Config, StageError, Ticker};
use reqwest::header::{HeaderMap, RETRY_AFTER};

/// A current desktop browser: the chart API turns away obvious bots.
pub const BROWSER_USER_AGENT: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

/// The longest `Retry-After` honoured in-process; a longer one ends the
/// attempts with a transient error, so SQS redelivers instead of a Lambda waiting.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct ChartClientSettings {
    pub base_url: String,
    pub timeout: Duration,
    pub max_retries: u32,
    pub retry_delay: Duration,
}

impl From<&Config> for ChartClientSettings {
    fn from(c: &Config) -> Self {
        ChartClientSettings {
            base_url: c.api_base_url.clone(),
            timeout: c.api_timeout,
            max_retries: c.max_retries,
            retry_delay: c.retry_delay,
        }
    }
}

/// Fetches daily charts: one request per ticker and range, retried with
/// exponential backoff and jitter on transient failures, honouring `Retry-After`.
#[derive(Debug, Clone)]
pub struct ChartClient {
    http: reqwest::Client,
    settings: ChartClientSettings,
}

impl ChartClient {
    pub fn new(settings: ChartClientSettings) -> Result<ChartClient, StageError> {
        let http = reqwest::Client::builder()
            .user_agent(BROWSER_USER_AGENT)
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| StageError::permanent(format!("building the HTTP client: {e}")))?;
        Ok(ChartClient { http, settings })
    }

    /// The request URL: the window is one day wider than the range on each
    /// side (UTC midnights), because a daily bar is stamped at the session open
    /// in exchange-local time, which can fall on the previous UTC day (Sydney)
    /// or late in the UTC day (New York). Bars are then kept by local date.
    pub fn chart_url(&self, ticker: &Ticker, start: NaiveDate, end: NaiveDate) -> String {
        let midnight = |d: NaiveDate| {
            d.and_hms_opt(0, 0, 0)
                .expect("midnight exists")
                .and_utc()
                .timestamp()
        };
        let period1 = midnight(start.checked_sub_days(Days::new(1)).unwrap_or(start));
        let period2 = midnight(end.checked_add_days(Days::new(2)).unwrap_or(end));
        format!(
            "{}/{}?period1={period1}&period2={period2}&interval=1d&events=div%7Csplit&includeAdjustedClose=true",
            self.settings.base_url,
            encode_path_segment(ticker.as_str())
        )
    }

    /// The delay before retry number `retry` (0-based): `Retry-After` when the
    /// server sent one, else `retry_delay × 2^retry` plus up to 25 % jitter.
    fn backoff(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(wait) = retry_after {
            return wait;
        }
        let base = self.settings.retry_delay.as_secs_f64() * 2f64.powi(retry.min(16) as i32);
        Duration::from_secs_f64(base * (1.0 + 0.25 * fastrand::f64()))
    }

    async fn attempt(&self, url: &str) -> Result<(u16, Option<Duration>, Vec<u8>), String> {
        let response = self.http.get(url).send().await.map_err(describe_reqwest)?;
        let status = response.status().as_u16();
        let retry_after = parse_retry_after(response.headers());
        let body = response
            .bytes()
            .await
            .map_err(|e| format!("reading the HTTP {status} body: {}", describe_reqwest(e)))?;
        Ok((status, retry_after, body.to_vec()))
    }
}

#[async_trait]
impl MarketDataSource for ChartClient {
    async fn fetch_daily(
        &self,
        ticker: &Ticker,
        start: NaiveDate,
        end: NaiveDate,
    ) -> Result<ChartFetch, StageError> {
        let url = self.chart_url(ticker, start, end);
        let mut last_error = String::new();
        for attempt in 0..=self.settings.max_retries {
            let retry_after = match self.attempt(&url).await {
                Ok((status, retry_after, body)) => match classify_response(status, &body) {
                    ChartOutcome::Series(series) => {
                        return Ok(ChartFetch {
                            body,
                            content: ChartContent::Series(series),
                            attempts: attempt + 1,
                        });
                    }
                    ChartOutcome::NoData(why) => {
                        return Ok(ChartFetch {
                            body,
                            content: ChartContent::NoData(why),
                            attempts: attempt + 1,
                        });
                    }
                    ChartOutcome::Permanent(why) => {
                        return Err(StageError::permanent(format!("{ticker}: {why}")));
                    }
                    ChartOutcome::Transient(why) => {
                        last_error = why;
                        retry_after
                    }
                },
                Err(why) => {
                    last_error = why;
                    None
                }
            };
            if attempt == self.settings.max_retries {
                break;
            }
            if let Some(wait) = retry_after
                && wait > MAX_RETRY_AFTER
            {
                return Err(StageError::transient(format!(
                    "{ticker}: {last_error}; server asks to retry after {}s, longer than this process waits",
                    wait.as_secs()
                )));
            }
            let delay = self.backoff(attempt, retry_after);
            tracing::warn!(%ticker, attempt = attempt + 1, delay_ms = delay.as_millis() as u64, error = %last_error, "chart request failed, retrying");
            tokio::time::sleep(delay).await;
        }
        Err(StageError::transient(format!(
            "{ticker}: chart API still failing after {} attempts: {last_error}",
            self.settings.max_retries + 1
        )))
    }
}

fn describe_reqwest(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "body interrupted"
    } else {
        "request failed"
    };
    // The source chain says why (refused, reset, …); keep it, it is short.
    let mut detail = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        detail = format!("{detail}: {s}");
        source = s.source();
    }
    format!("{kind}: {detail}")
}

/// `Retry-After` as delta-seconds (fractions tolerated) or an HTTP date.
fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = when.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// Percent-encodes a URL path segment (`^GSPC` → `%5EGSPC`, `EURUSD=X` → `EURUSD%3DX`).
pub fn encode_path_segment(s: &str) -> String {
    percent_encode(s, UNRESERVED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_covers_the_range_with_a_day_of_margin_and_encodes_the_symbol() {
        let client = ChartClient::new(ChartClientSettings {
            base_url: "http://127.0.0.1:9/v8/finance/chart".into(),
            timeout: Duration::from_secs(1),
            max_retries: 0,
            retry_delay: Duration::ZERO,
        })
        .unwrap();
        let url = client.chart_url(
            &Ticker::parse("^GSPC").unwrap(),
            "2020-01-02".parse().unwrap(),
            "2020-01-03".parse().unwrap(),
        );
        // 2020-01-01T00:00Z and 2020-01-05T00:00Z
        assert_eq!(
            url,
            "http://127.0.0.1:9/v8/finance/chart/%5EGSPC?period1=1577836800&period2=1578182400&interval=1d&events=div%7Csplit&includeAdjustedClose=true"
        );
        assert_eq!(encode_path_segment("EURUSD=X"), "EURUSD%3DX");
        assert_eq!(encode_path_segment("BRK-B"), "BRK-B");
    }

    #[test]
    fn retry_after_accepts_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "1".parse().unwrap());
        assert_eq!(parse_retry_after(&h), Some(Duration::from_secs(1)));
        h.insert(RETRY_AFTER, "0.5".parse().unwrap());
        assert_eq!(parse_retry_after(&h), Some(Duration::from_millis(500)));
        h.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(parse_retry_after(&h), Some(Duration::ZERO));
        h.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(parse_retry_after(&h), None);
    }
}
