//! HTTP client of the Yahoo Finance v8 chart API (DESIGN.md section 5a).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{Days, NaiveDate};
use mdp_core::chart::{ChartOutcome, classify_response};
use mdp_core::config::{DEFAULT_API_CONCURRENCY, DEFAULT_MAX_RESPONSE_BYTES};
use mdp_core::encoding::{UNRESERVED, percent_encode};
use mdp_core::metrics::{Metric, Metrics, Stage};
use mdp_core::source::{ChartContent, ChartFetch, MarketDataSource};
use mdp_core::{Config, ErrorClass, StageError, Ticker};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use tokio::sync::Semaphore;

use crate::budget::RateLimiter;

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
    /// The response body is over `MARKET_DATA_MAX_RESPONSE_BYTES`: it is
    /// dropped unread (or as soon as the cap is passed), never landed.
    #[error(
        "{ticker}: chart response larger than MARKET_DATA_MAX_RESPONSE_BYTES={limit} bytes ({size}); not read further"
    )]
    ResponseTooLarge {
        ticker: Ticker,
        limit: u64,
        size: OversizedBody,
    },
    /// The API answered with another symbol's chart (`meta.symbol`).
    #[error("{ticker}: the chart API answered for another symbol, {symbol}")]
    OtherSymbol { ticker: Ticker, symbol: String },
}

/// How an oversized body was noticed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OversizedBody {
    /// Its `Content-Length` is over the cap: nothing of it was read.
    Declared(u64),
    /// Streamed past the cap (no `Content-Length`): this many bytes had
    /// arrived, the last chunk included, when reading stopped.
    Streamed(u64),
}

impl fmt::Display for OversizedBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OversizedBody::Declared(n) => write!(f, "Content-Length: {n}"),
            OversizedBody::Streamed(n) => {
                write!(f, "{n} bytes received without a declared length")
            }
        }
    }
}

impl ChartError {
    /// Refusals are final; a server that keeps failing may recover later.
    pub fn class(&self) -> ErrorClass {
        match self {
            ChartError::Client(_)
            | ChartError::Rejected { .. }
            | ChartError::ResponseTooLarge { .. }
            | ChartError::OtherSymbol { .. } => ErrorClass::Permanent,
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
    /// The largest response body read (`MARKET_DATA_MAX_RESPONSE_BYTES`).
    pub max_response_bytes: u64,
    /// The most HTTP attempts in flight at once through this client and its
    /// clones (`MARKET_DATA_API_CONCURRENCY`).
    pub concurrency: usize,
    /// The most HTTP attempts started per second through this client and
    /// its clones (`MARKET_DATA_API_RATE`); `None`: no limit.
    pub rate_per_second: Option<f64>,
}

impl ChartClientSettings {
    /// `base_url` with the configuration's defaults (30 s timeout, 3
    /// retries, 5 s backoff base, 32 MiB cap, 5 requests in flight, no rate).
    pub fn new(base_url: impl Into<String>) -> ChartClientSettings {
        ChartClientSettings {
            base_url: base_url.into(),
            timeout: Duration::from_secs(30),
            max_retries: 3,
            retry_delay: Duration::from_secs(5),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            concurrency: DEFAULT_API_CONCURRENCY,
            rate_per_second: None,
        }
    }
}

impl From<&Config> for ChartClientSettings {
    fn from(c: &Config) -> Self {
        ChartClientSettings {
            base_url: c.api_base_url.clone(),
            timeout: c.api_timeout,
            max_retries: c.max_retries,
            retry_delay: c.retry_delay,
            max_response_bytes: c.max_response_bytes,
            concurrency: c.api_concurrency,
            rate_per_second: c.api_rate,
        }
    }
}

/// Fetches daily charts: one request per ticker and range, retried with
/// exponential backoff and jitter on transient failures, honouring `Retry-After`.
///
/// The request budget is per process: clones share it. Each HTTP attempt
/// (retries included) holds one of `concurrency` slots from the request
/// until its body is read, and takes a token of the rate limiter before it
/// is sent; backoff waits hold neither.
///
/// With [`ChartClient::with_metrics`], each attempt records its latency
/// (`ChartApiLatency`, from sending to the body read), each retry
/// `ChartApiRetries` and each HTTP 429 `ChartApi429`, under `Stage=fetch`.
#[derive(Debug, Clone)]
pub struct ChartClient {
    http: reqwest::Client,
    settings: ChartClientSettings,
    slots: Arc<Semaphore>,
    rate: Option<Arc<RateLimiter>>,
    metrics: Option<Metrics>,
}

/// A response read within the cap: status, `Retry-After`, body.
type Answer = (u16, Option<Duration>, Vec<u8>);

/// Why an attempt produced no [`Answer`].
enum AttemptFailure {
    /// Worth another attempt.
    Retry(AttemptError),
    /// Over the body cap: final.
    TooLarge(OversizedBody),
}

impl From<AttemptError> for AttemptFailure {
    fn from(e: AttemptError) -> Self {
        AttemptFailure::Retry(e)
    }
}

impl ChartClient {
    pub fn new(settings: ChartClientSettings) -> Result<ChartClient, ChartError> {
        let http = reqwest::Client::builder()
            .user_agent(BROWSER_USER_AGENT)
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(ChartError::Client)?;
        let slots = Arc::new(Semaphore::new(
            settings.concurrency.clamp(1, Semaphore::MAX_PERMITS),
        ));
        let rate = settings
            .rate_per_second
            .and_then(RateLimiter::per_second)
            .map(Arc::new);
        Ok(ChartClient {
            http,
            settings,
            slots,
            rate,
            metrics: None,
        })
    }

    /// Records every attempt's latency, the retries and the 429 answers
    /// into `metrics` (the client's clones share it).
    pub fn with_metrics(mut self, metrics: Metrics) -> ChartClient {
        self.metrics = Some(metrics);
        self
    }

    fn count(&self, metric: Metric, n: u64) {
        if let Some(metrics) = &self.metrics {
            metrics.count(Stage::Fetch, metric, n);
        }
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

    /// One HTTP request within the budget; its body is read chunk by chunk
    /// and dropped as soon as it is known to be over the cap, so an attempt
    /// never holds more than the cap plus one chunk.
    async fn attempt(&self, url: &str) -> Result<Answer, AttemptFailure> {
        // Held until the body is read; the semaphore is never closed.
        let _slot = self.slots.acquire().await.ok();
        if let Some(rate) = &self.rate {
            rate.acquire().await;
        }
        let clock = Instant::now();
        let answer = self.exchange(url).await;
        if let Some(metrics) = &self.metrics {
            metrics.time(Stage::Fetch, Metric::ChartApiLatency, clock.elapsed());
        }
        if let Ok((429, _, _)) = answer {
            self.count(Metric::ChartApi429, 1);
        }
        answer
    }

    /// The request and its body, within the cap.
    async fn exchange(&self, url: &str) -> Result<Answer, AttemptFailure> {
        let mut response = self.http.get(url).send().await.map_err(http_error)?;
        let status = response.status().as_u16();
        let retry_after = parse_retry_after(response.headers());
        let limit = self.settings.max_response_bytes;
        let declared = response.content_length();
        if let Some(length) = declared
            && length > limit
        {
            return Err(AttemptFailure::TooLarge(OversizedBody::Declared(length)));
        }
        let mut body = BoundedBody::new(limit, declared);
        while let Some(chunk) = response.chunk().await.map_err(http_error)? {
            body.push(&chunk)?;
        }
        Ok((status, retry_after, body.bytes))
    }
}

/// A body being read under a cap. Its buffer never grows beyond the cap:
/// sized from a `Content-Length` within the cap, else doubled up to it.
struct BoundedBody {
    bytes: Vec<u8>,
    limit: usize,
}

impl BoundedBody {
    fn new(limit: u64, declared: Option<u64>) -> BoundedBody {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let expected = declared.map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX));
        BoundedBody {
            bytes: Vec::with_capacity(expected.min(limit)),
            limit,
        }
    }

    fn push(&mut self, chunk: &[u8]) -> Result<(), AttemptFailure> {
        let needed = self.bytes.len().saturating_add(chunk.len());
        if needed > self.limit {
            return Err(AttemptFailure::TooLarge(OversizedBody::Streamed(
                needed as u64,
            )));
        }
        if needed > self.bytes.capacity() {
            let grown = needed
                .max(self.bytes.capacity().saturating_mul(2))
                .min(self.limit);
            self.bytes.reserve_exact(grown - self.bytes.len());
        }
        self.bytes.extend_from_slice(chunk);
        Ok(())
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
        // Written even when 0: the dashboard and alarms see a value.
        self.count(Metric::ChartApiRetries, 0);
        self.count(Metric::ChartApi429, 0);
        let mut last_error = AttemptError::Response("no attempt made".into());
        for attempt in 0..=self.settings.max_retries {
            let retry_after = match self.attempt(&url).await {
                Ok((status, retry_after, body)) => match classify_response(status, &body) {
                    ChartOutcome::Series(series) => {
                        if let Some(symbol) = &series.symbol
                            && !symbol.eq_ignore_ascii_case(ticker.as_str())
                        {
                            return Err(ChartError::OtherSymbol {
                                ticker: ticker.clone(),
                                symbol: symbol.clone(),
                            }
                            .into());
                        }
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
                Err(AttemptFailure::Retry(why)) => {
                    last_error = why;
                    None
                }
                Err(AttemptFailure::TooLarge(size)) => {
                    return Err(ChartError::ResponseTooLarge {
                        ticker: ticker.clone(),
                        limit: self.settings.max_response_bytes,
                        size,
                    }
                    .into());
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
            self.count(Metric::ChartApiRetries, 1);
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

/// `Retry-After` as delta-seconds (fractions tolerated) or an HTTP date,
/// whatever the server sends, without panicking:
/// - a number of seconds too large for a `Duration` (`1e20`, `inf`) is
///   [`Duration::MAX`], i.e. longer than [`MAX_RETRY_AFTER`];
/// - a date in the past is zero, one in the future the wait until then;
/// - anything else (negative, NaN, empty, not a date) is ignored: `None`,
///   the exponential backoff applies.
fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    retry_after_value(headers.get(RETRY_AFTER)?.to_str().ok()?, chrono::Utc::now())
}

fn retry_after_value(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if let Ok(secs) = value.parse::<f64>() {
        if secs.is_nan() || secs < 0.0 {
            return None;
        }
        return Some(Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX));
    }
    let when = http_date(value)?;
    Some((when - now).to_std().unwrap_or(Duration::ZERO))
}

/// An HTTP date: IMF-fixdate (and other RFC 2822 forms), RFC 850 or asctime.
fn http_date(value: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    use chrono::{NaiveDateTime, Utc};
    if let Ok(when) = chrono::DateTime::parse_from_rfc2822(value) {
        return Some(when.with_timezone(&Utc));
    }
    ["%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(value, format).ok())
        .map(|naive| naive.and_utc())
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
            timeout: Duration::from_secs(1),
            max_retries: 0,
            retry_delay: Duration::ZERO,
            ..ChartClientSettings::new("http://127.0.0.1:9/v8/finance/chart")
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

    #[test]
    fn hostile_retry_after_values_are_clamped_or_ignored_never_a_panic() {
        let now = chrono::DateTime::parse_from_rfc3339("2025-06-02T12:00:00Z")
            .unwrap()
            .to_utc();
        let too_long = |v: &str| {
            let wait = retry_after_value(v, now);
            assert!(wait.is_some_and(|w| w > MAX_RETRY_AFTER), "{v}: {wait:?}");
        };
        // Longer than any wait in-process: the attempts end (transient).
        for v in [
            "1e20",
            "99999999999999999999",
            "18446744073709551616",
            "1e308",
            "inf",
            "+Infinity",
            "61",
            "Fri, 31 Dec 9999 23:59:59 GMT",
            "Tue, 03 Jun 2025 12:00:00 GMT",
        ] {
            too_long(v);
        }
        assert_eq!(
            retry_after_value("99999999999999999999", now),
            Some(Duration::MAX)
        );
        // Ignored: the exponential backoff applies.
        for v in [
            "",
            "   ",
            "-1",
            "-1e20",
            "-inf",
            "NaN",
            "-NaN",
            "soon",
            "1s",
            "0x10",
            "1,5",
            "\u{0}",
            "Mon, 99 Foo 2025 99:99:99 GMT",
        ] {
            assert_eq!(retry_after_value(v, now), None, "{v:?}");
        }
        // Dates: the past is now; the near future is the wait until then.
        for past in [
            "Wed, 21 Oct 2015 07:28:00 GMT",
            "Thu, 01 Jan 1970 00:00:00 GMT",
            "Wednesday, 21-Oct-15 07:28:00 GMT",
            "Wed Oct 21 07:28:00 2015",
        ] {
            assert_eq!(retry_after_value(past, now), Some(Duration::ZERO), "{past}");
        }
        assert_eq!(
            retry_after_value("Mon, 02 Jun 2025 12:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(retry_after_value(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(retry_after_value("-0", now), Some(Duration::ZERO));
        // Bytes that are not text are ignored.
        let mut h = HeaderMap::new();
        h.insert(
            RETRY_AFTER,
            reqwest::header::HeaderValue::from_bytes(b"\xff\xfe").unwrap(),
        );
        assert_eq!(parse_retry_after(&h), None);
    }

    #[test]
    fn a_body_buffer_never_grows_beyond_the_cap() {
        let mut body = BoundedBody::new(10_000, None);
        for _ in 0..9 {
            assert!(body.push(&[7; 1_000]).is_ok());
            assert!(body.bytes.capacity() <= 10_000, "{}", body.bytes.capacity());
        }
        assert!(body.push(&[7; 1_000]).is_ok(), "exactly at the cap");
        assert_eq!((body.bytes.len(), body.bytes.capacity()), (10_000, 10_000));
        assert!(matches!(
            body.push(&[7]),
            Err(AttemptFailure::TooLarge(OversizedBody::Streamed(10_001)))
        ));
        // A declared length within the cap is allocated once.
        let declared = BoundedBody::new(10_000, Some(4_000));
        assert_eq!(declared.bytes.capacity(), 4_000);
        assert_eq!(
            BoundedBody::new(10_000, Some(u64::MAX)).bytes.capacity(),
            10_000
        );
    }
}
