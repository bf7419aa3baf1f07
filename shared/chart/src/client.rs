//! HTTP client of the Yahoo Finance v8 chart API (DESIGN.md section 5a).

use std::time::Duration;

use async_trait::async_trait;
use chrono::{Days, NaiveDate};
use mdp_core::chart::{ChartOutcome, classify_response};
use mdp_core::encoding::{UNRESERVED, percent_encode};
use mdp_core::source::{ChartContent, ChartFetch, MarketDataSource};
use mdp_core::{Config, ErrorClass, StageError, Ticker};
use reqwest::header::{HeaderMap, RETRY_AFTER};

/// A current desktop browser: the chart API turns away obvious bots.
pub const BROWSER_USER_AGENT: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

/// The longest `Retry-After` honoured in-process; a longer one ends the
/// attempts with a transient error, so SQS redelivers instead of a Lambda waiting.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Why the chart of a ticker could not be had.
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    #[error("building the HTTP client")]
    Client(#[source] reqwest::Error),
    /// The API refused the request for good (404 unknown symbol, 400, an API error).
    #[error("{ticker}: {reason}")]
    Rejected { ticker: Ticker, reason: String },
    #[error("{ticker}: chart API still failing after {attempts} attempts")]
    GaveUp {
        ticker: Ticker,
        attempts: u32,
        #[source]
        last: AttemptError,
    },
    #[error("{ticker}: the server asks to retry after {seconds}s, longer than this process waits")]
    RetryAfterTooLong {
        ticker: Ticker,
        seconds: u64,
        #[source]
        last: AttemptError,
    },
}

impl ChartError {
    /// Refusals are final; a server that keeps failing may recover later.
    pub fn class(&self) -> ErrorClass {
        match self {
            ChartError::Client(_) | ChartError::Rejected { .. } => ErrorClass::Permanent,
            ChartError::GaveUp { .. } | ChartError::RetryAfterTooLong { .. } => {
                ErrorClass::Transient
            }
        }
    }
}

impl From<ChartError> for StageError {
    fn from(e: ChartError) -> Self {
        StageError::with_source(e.class(), e)
    }
}

/// Why one HTTP attempt failed (worth another attempt).
#[derive(Debug, thiserror::Error)]
pub enum AttemptError {
    /// No usable response: `kind` says what happened (timed out, connection failed, …).
    #[error("{kind}")]
    Http {
        kind: &'static str,
        #[source]
        source: reqwest::Error,
    },
    /// A response that says "later": 429, 5xx, an unparseable body.
    #[error("{0}")]
    Response(String),
}

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
    pub fn new(settings: ChartClientSettings) -> Result<ChartClient, ChartError> {
        let http = reqwest::Client::builder()
            .user_agent(BROWSER_USER_AGENT)
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(ChartError::Client)?;
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

    async fn attempt(&self, url: &str) -> Result<(u16, Option<Duration>, Vec<u8>), AttemptError> {
        let response = self.http.get(url).send().await.map_err(http_error)?;
        let status = response.status().as_u16();
        let retry_after = parse_retry_after(response.headers());
        let body = response.bytes().await.map_err(http_error)?;
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
        let mut last_error = AttemptError::Response("no attempt made".into());
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
                    ChartOutcome::Permanent(reason) => {
                        return Err(ChartError::Rejected {
                            ticker: ticker.clone(),
                            reason,
                        }
                        .into());
                    }
                    ChartOutcome::Transient(why) => {
                        last_error = AttemptError::Response(why);
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
                return Err(ChartError::RetryAfterTooLong {
                    ticker: ticker.clone(),
                    seconds: wait.as_secs(),
                    last: last_error,
                }
                .into());
            }
            let delay = self.backoff(attempt, retry_after);
            tracing::warn!(%ticker, attempt = attempt + 1, delay_ms = delay.as_millis() as u64, error = %mdp_core::error::chain(&last_error), "chart request failed, retrying");
            tokio::time::sleep(delay).await;
        }
        Err(ChartError::GaveUp {
            ticker: ticker.clone(),
            attempts: self.settings.max_retries + 1,
            last: last_error,
        }
        .into())
    }
}

fn http_error(source: reqwest::Error) -> AttemptError {
    let kind = if source.is_timeout() {
        "timed out"
    } else if source.is_connect() {
        "connection failed"
    } else if source.is_body() || source.is_decode() {
        "body interrupted"
    } else {
        "request failed"
    };
    AttemptError::Http { kind, source }
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
