//! The offline HTML report of the lake (issue 12): an `index.html` of every
//! ticker (last close, change, a sparkline, freshness against the NYSE
//! calendar, data-quality status) and a page per ticker (candles with SMA 7,
//! SMA 20 and Bollinger bands, dividends and splits marked; volume; RSI;
//! MACD; the quality findings and quarantined bars).
//!
//! The pages need nothing but a browser: CSS inline, charts inline SVG drawn
//! by plotters, no script and no external resource. Rendering is pure
//! ([`render_ticker_page`], [`index_entry`], [`render_index`] over
//! [`TickerData`]); [`write_report`] reads the lake and writes the pages
//! through the [`ObjectStore`] port (atomic puts), to a folder or to S3.

mod charts;
mod html;
mod summary;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use mdp_core::error::{ErrorClass, StageError};
use mdp_core::{Lake, ObjectStore, StoreError, Ticker};

pub use charts::{CHART_WIDTH, ChartError};
pub use html::{
    IndexEntry, SPARKLINE_DAYS, WHOLE_HISTORY_MAX_DAYS, WINDOW_DAYS, chart_window, index_entry,
    page_href, page_key, render_index, render_ticker_page,
};
pub use summary::{
    FRESHNESS_GRACE, Freshness, LastClose, QualityStatus, TickerData, freshness, last_close,
};

/// The prefix under the lake root the report goes to by default.
pub const LAKE_REPORT_PREFIX: &str = "reports";
pub const INDEX_FILE: &str = "index.html";
/// Tickers read and rendered at a time.
const TICKERS_IN_FLIGHT: usize = 4;

/// The whole report in memory: the index and `(key, html)` per ticker page
/// (keys relative to the report's prefix).
#[derive(Debug, Clone)]
pub struct Report {
    pub index: String,
    pub pages: Vec<(String, String)>,
}

/// Renders every page from data already read (tests, small reports).
pub fn render_report(tickers: &[TickerData], now: DateTime<Utc>) -> Report {
    let entries: Vec<IndexEntry> = tickers.iter().map(|d| index_entry(d, now)).collect();
    Report {
        index: render_index(&entries, now),
        pages: tickers
            .iter()
            .map(|d| (page_key(&d.ticker), render_ticker_page(d, now)))
            .collect(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("listing the lake's tickers")]
    List(#[source] StoreError),
    #[error("writing the report")]
    Write(#[source] StoreError),
}

impl ReportError {
    pub fn class(&self) -> ErrorClass {
        match self {
            ReportError::List(e) | ReportError::Write(e) => e.class(),
        }
    }
}

impl From<ReportError> for StageError {
    fn from(e: ReportError) -> Self {
        StageError::with_source(e.class(), e)
    }
}

/// What [`write_report`] wrote.
#[derive(Debug, Clone)]
pub struct ReportOutcome {
    /// The index's key in the output store.
    pub index_key: String,
    /// The index's URI (`file:///…/index.html`, `s3://…/index.html`).
    pub index_uri: String,
    pub tickers: usize,
    /// `TICKER: what could not be read` (its page and index row say so too).
    pub problems: Vec<String>,
}

/// `prefix/name`, or `name` for an empty prefix.
pub fn report_key(prefix: &str, name: &str) -> String {
    let prefix = prefix.trim_matches('/');
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}/{name}")
    }
}

/// Everything the report shows of a ticker; what cannot be read is noted
/// in [`TickerData::read_errors`] (and logged), the rest still shown.
pub async fn read_ticker(lake: &Lake, ticker: &Ticker) -> TickerData {
    let mut data = TickerData::empty(ticker.clone());
    let mut note = |what: &str, e: &(dyn std::error::Error + 'static)| {
        let message = format!("{what}: {}", mdp_core::error::chain(e));
        tracing::warn!(%ticker, "{message}");
        data.read_errors.push(message);
    };
    match mdp_lake::read_history(lake, ticker).await {
        Ok(rows) => data.rows = rows,
        Err(e) => note("the curated history", &e),
    }
    match lake.read_watermark(ticker).await {
        Ok(mark) => data.watermark = mark,
        Err(e) => note("the watermark", &e),
    }
    match mdp_lake::read_corporate_actions(lake, ticker).await {
        Ok(v) => data.actions = v,
        Err(e) => note("the corporate actions", &e),
    }
    match mdp_lake::read_quality_findings(lake, ticker).await {
        Ok(v) => data.findings = v,
        Err(e) => note("the quality findings", &e),
    }
    match mdp_lake::read_quarantine(lake, ticker).await {
        Ok(v) => data.quarantine = v,
        Err(e) => note("the quarantined bars", &e),
    }
    data
}

/// Reads each ticker (`None`: every ticker with curated data) from the
/// lake, writes its page, then the index, under `prefix` of `out`. A
/// ticker that cannot be read still gets a page saying so; only a failed
/// listing or write fails the report.
pub async fn write_report(
    lake: &Lake,
    tickers: Option<Vec<Ticker>>,
    out: &dyn ObjectStore,
    prefix: &str,
    now: DateTime<Utc>,
) -> Result<ReportOutcome, ReportError> {
    let tickers = match tickers {
        Some(list) => list,
        None => lake.curated_tickers().await.map_err(ReportError::List)?,
    };
    let results: Vec<Result<(IndexEntry, Vec<String>), ReportError>> =
        futures::stream::iter(tickers.iter())
            .map(|ticker| async move {
                let data = read_ticker(lake, ticker).await;
                let page = render_ticker_page(&data, now);
                let entry = index_entry(&data, now);
                out.put(&report_key(prefix, &page_key(ticker)), page.into_bytes())
                    .await
                    .map_err(ReportError::Write)?;
                let problems = data
                    .read_errors
                    .iter()
                    .map(|e| format!("{ticker}: {e}"))
                    .collect();
                Ok((entry, problems))
            })
            .buffered(TICKERS_IN_FLIGHT)
            .collect()
            .await;
    let mut entries = Vec::with_capacity(results.len());
    let mut problems = Vec::new();
    for result in results {
        let (entry, mut p) = result?;
        entries.push(entry);
        problems.append(&mut p);
    }
    let index_key = report_key(prefix, INDEX_FILE);
    out.put(&index_key, render_index(&entries, now).into_bytes())
        .await
        .map_err(ReportError::Write)?;
    Ok(ReportOutcome {
        index_uri: format!("{}/{index_key}", out.uri().trim_end_matches('/')),
        index_key,
        tickers: entries.len(),
        problems,
    })
}

#[cfg(test)]
mod tests;
